"""The package's one C extension; everything else is in pyproject.toml.

``optional=True``: where it cannot be compiled (no C compiler), the install
still succeeds and ``ome_writers`` copies with numpy instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ome_writers._chunk_order",
            sources=["src/ome_writers/_chunk_order.c"],
            optional=True,
        )
    ]
)
