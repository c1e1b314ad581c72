"""Backend name -> lazily imported backend class.

A leaf module: settings validators and the stream both ask it which engines
exist without importing any engine, so an optional engine that is not
installed costs nothing until it is selected.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from ome_writers._errors import BackendUnavailableError

if TYPE_CHECKING:
    from ome_writers._backends._base import Backend

#: backend name -> (module, class name, modules it needs, pip extra)
_BACKENDS: dict[str, tuple[str, str, tuple[str, ...], str | None]] = {
    "scratch": ("ome_writers._backends.scratch._backend", "ScratchBackend", (), None),
    "tensorstore": (
        "ome_writers._backends.zarr._tensorstore",
        "TensorstoreBackend",
        ("tensorstore",),
        "tensorstore",
    ),
    "acquire-zarr": (
        "ome_writers._backends.zarr._acquire",
        "AcquireZarrBackend",
        ("acquire_zarr",),
        "acquire-zarr",
    ),
    "zarr-python": (
        "ome_writers._backends.zarr._python",
        "ZarrPythonBackend",
        ("zarr",),
        "zarr",
    ),
    "tifffile": (
        "ome_writers._backends.tiff._backend",
        "TiffBackend",
        ("tifffile", "ome_types"),
        "tifffile",
    ),
}


def backend_names() -> list[str]:
    """Every backend this version knows, installed or not."""
    return sorted(_BACKENDS)


def is_backend_available(name: str) -> bool:
    """True when the engine behind ``name`` can be imported."""
    _module, _cls, needs, _extra = _lookup(name)
    return all(importlib.util.find_spec(mod) is not None for mod in needs)


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the backend class for ``name``.

    Raises
    ------
    BackendUnavailableError
        When the engine is not installed; the message names the pip command.
    """
    module_name, class_name, needs, extra = _lookup(name)
    missing = [mod for mod in needs if importlib.util.find_spec(mod) is None]
    if missing:
        raise BackendUnavailableError(
            f"backend {name!r} needs {missing!r}, which is not installed; "
            f"install it with: pip install 'ome-writers[{extra or name}]'"
        )
    module = importlib.import_module(module_name)
    cls: type[Backend] = getattr(module, class_name)
    return cls


def _lookup(name: str) -> tuple[str, str, tuple[str, ...], str | None]:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; known backends are {backend_names()!r}"
        ) from None
