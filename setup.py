"""The package's C extensions; everything else is in pyproject.toml.

``optional=True``: where one cannot be compiled (no C compiler), the install
still succeeds and ``ome_writers`` uses numpy instead (the chunk-order copy,
the pyramid levels).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ome_writers._chunk_order",
            sources=["src/ome_writers/_chunk_order.c"],
            optional=True,
        ),
        Extension(
            "ome_writers._pyramid_kernel",
            sources=["src/ome_writers/_pyramid_kernel.c"],
            optional=True,
        ),
    ]
)
