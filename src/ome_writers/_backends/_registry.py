"""Backend name -> lazily imported backend class.

A leaf module (it imports no backend, not even for types): the format models
ask it which engines exist and the backend contract imports engines through
it, so an optional engine that is not installed costs nothing until it is
selected, and the settings never reach into the backend layer.
"""

from __future__ import annotations

import importlib
import importlib.util

from ome_writers._errors import BackendUnavailableError

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


def import_backend(name: str) -> object:
    """Import the engine behind ``name``; return its backend class.

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
    return getattr(importlib.import_module(module_name), class_name)


def _lookup(name: str) -> tuple[str, str, tuple[str, ...], str | None]:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; known backends are {backend_names()!r}"
        ) from None
