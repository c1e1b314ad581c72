"""Where scratch data lives on disk: the user's root, or a temporary one.

A root given by the user is created, or replaced with ``overwrite=True`` only
when it holds a scratch acquisition of ours (or nothing): any other file or
folder is refused, never deleted. A temporary root is made when data spills
past the memory budget without a root; it is removed at interpreter exit.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from pathlib import Path

from ome_writers._backends.scratch import _files as files
from ome_writers._util import user_stacklevel

_temporary_roots: list[Path] = []


def _remove_temporary_roots() -> None:
    for root in _temporary_roots:
        shutil.rmtree(root, ignore_errors=True)


atexit.register(_remove_temporary_roots)


def prepare_root(root: Path, *, overwrite: bool) -> None:
    """Create ``root``, or empty an earlier scratch root there if ``overwrite``."""
    if root.exists() or root.is_symlink():
        if not root.is_dir():
            raise FileExistsError(
                f"root_path {str(root)!r} exists and is not a directory; "
                "a scratch root is a directory: choose another root_path "
                "(a file is never replaced)"
            )
        if not overwrite:
            raise FileExistsError(
                f"root_path {str(root)!r} already exists; choose a new "
                "root_path or pass overwrite=True to replace an earlier "
                "scratch acquisition"
            )
        if files.is_scratch_root(root):
            files.remove_scratch_files(root)
        elif any(root.iterdir()):
            raise FileExistsError(
                f"root_path {str(root)!r} is not a scratch root written by "
                "ome_writers (it has no ome_writers manifest.json) and is not "
                "empty; refusing to delete it even with overwrite=True: "
                "choose another root_path"
            )
    root.mkdir(parents=True, exist_ok=True)


def make_temporary_root(needed_bytes: int, max_memory_bytes: int) -> Path:
    """A new temporary root (removed at exit), with a warning that names it."""
    root = Path(tempfile.mkdtemp(prefix="ome-writers-scratch-"))
    _temporary_roots.append(root)
    warnings.warn(
        f"scratch data needs {needed_bytes:,} bytes, more than "
        f"max_memory_bytes={max_memory_bytes:,}; writing it to the "
        f"temporary directory {str(root)!r} instead (removed at exit). Give a "
        "root_path to keep it, or raise max_memory_bytes to stay in memory.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
    return root
