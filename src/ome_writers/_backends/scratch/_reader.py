"""Reading a scratch root back, including one whose writer was killed.

``open_scratch`` never writes: it maps the data files read-only and parses the
manifest, the progress counter and the metadata lines. For an interrupted run
the progress counter is the authority on how many frames were written (it is
updated after every frame, while the manifest is rewritten only when the
arrays grow, and from a thread of its own, so it may trail the last frames).
An interrupted unbounded array's shape is therefore the larger of the
manifest's and the one the counter implies; the writer extends the files
before it counts a frame, so either is covered by them.
"""

from __future__ import annotations

import json
import math
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ome_writers._backends.scratch import _files as files
from ome_writers._errors import NotADatasetError
from ome_writers._router import build_router
from ome_writers._settings import AcquisitionSettings
from ome_writers._util import user_stacklevel


class ScratchDataset:
    """A scratch root opened for reading; see ``open_scratch``.

    Attributes
    ----------
    path
        The scratch root.
    arrays
        One read-only memory-mapped array per position, logical shape, storage
        order (dimension names in ``storage_dimension_names``).
    settings
        The ``AcquisitionSettings`` rebuilt from the manifest.
    frame_metadata
        Per-frame metadata records in write order, each with ``frame_number``,
        ``position_index`` and ``storage_index`` beside the caller's keys.
    global_metadata
        The namespaces set with ``set_global_metadata``.
    frames_written
        Frames appended or skipped.
    complete
        True when the stream was closed cleanly; False for a recovered run.
    """

    def __init__(
        self,
        path: Path,
        arrays: list[np.ndarray],
        settings: AcquisitionSettings,
        frame_metadata: list[dict[str, Any]],
        global_metadata: dict[str, Any],
        frames_written: int,
        complete: bool,
        storage_dimension_names: list[str],
    ) -> None:
        self.path = path
        self.arrays = arrays
        self.settings = settings
        self.frame_metadata = frame_metadata
        self.global_metadata = global_metadata
        self.frames_written = frames_written
        self.complete = complete
        self.storage_dimension_names = storage_dimension_names

    @property
    def nbytes_on_disk(self) -> int:
        """Bytes the root's files occupy on disk (sparse regions excluded)."""
        return sum(p.stat().st_blocks * 512 for p in self.path.iterdir() if p.is_file())

    def __repr__(self) -> str:
        state = "complete" if self.complete else "recovered"
        return (
            f"<ScratchDataset {str(self.path)!r} {state}, {self.frames_written} "
            f"frames, {len(self.arrays)} position(s)>"
        )


def open_scratch(root_path: str | Path) -> ScratchDataset:
    """Open a scratch root written by ``ome_writers``, read-only.

    Works on roots whose writing process was killed (``complete`` is then
    False). Nothing in the root is modified.

    Raises
    ------
    NotADatasetError
        ``root_path`` is not a scratch root, its manifest is missing or corrupt,
        or a data file is shorter than the manifest says.
    """
    root = Path(root_path)
    if not root.is_dir():
        raise NotADatasetError(
            f"{str(root)!r} is not a directory; a scratch root is a directory "
            "holding manifest.json and pos_<p>.dat files"
        )
    manifest_path = root / files.MANIFEST
    if not manifest_path.is_file():
        raise NotADatasetError(
            f"{str(root)!r} has no {files.MANIFEST}; it is not a scratch root "
            "(or its writer was killed before creating it)"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotADatasetError(
            f"{str(manifest_path)!r} is not valid JSON ({exc}); the manifest is corrupt"
        ) from None
    if files.read_manifest_or_none(root) is None:
        raise NotADatasetError(
            f"{str(manifest_path)!r} was not written by ome_writers' scratch "
            f"format (no {files.MARKER_KEY!r} marker of kind 'scratch')"
        )
    try:
        settings = AcquisitionSettings.model_validate(
            {k: manifest[k] for k in AcquisitionSettings.model_fields if k in manifest}
        )
        shapes = [tuple(int(n) for n in s) for s in manifest["position_shapes"]]
        manifest_frames = int(manifest.get("frames_written", 0))
        complete = bool(manifest.get("complete", False))
    except (KeyError, TypeError, ValueError) as exc:
        raise NotADatasetError(
            f"{str(manifest_path)!r} is not a valid scratch manifest: {exc}"
        ) from None
    dtype = np.dtype(settings.dtype)
    frames_written = manifest_frames
    if not complete:
        frames_written = max(frames_written, _read_progress(root))
        router = build_router(settings)
        if router.is_unbounded:
            steps = router.storage_shape(frames_written)[0]
            held = _steps_held(root, shapes, np.dtype(settings.dtype))
            if held < steps:  # counter on disk before the files grew (power loss)
                warnings.warn(
                    f"{str(root)!r} counts {frames_written} frames but its data "
                    f"files hold only {held} steps of {shapes[0][1:]!r}; reading "
                    "those (the writer lost power or its disk filled up)",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
                steps = held
                frames_written = min(frames_written, held * router.frames_per_step)
            # the data's steps: a live manifest describes the files, kept ahead
            shapes = [(steps, *s[1:]) for s in shapes]
    arrays = [_map(root, p, shape, dtype) for p, shape in enumerate(shapes)]
    return ScratchDataset(
        path=root,
        arrays=arrays,
        settings=settings,
        frame_metadata=[
            record
            for record in _read_metadata(root / files.FRAME_METADATA)
            # a writer killed between a frame's metadata line and its count
            # leaves a record for a frame that does not count as written
            if record.get("frame_number", 0) < frames_written
        ],
        global_metadata=dict(manifest.get("global_metadata") or {}),
        frames_written=frames_written,
        complete=complete,
        storage_dimension_names=list(manifest.get("storage_dimension_names", [])),
    )


def _map(
    root: Path, position: int, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    path = root / files.data_file_name(position)
    needed = math.prod(shape) * dtype.itemsize
    try:
        size = path.stat().st_size
    except OSError:
        raise NotADatasetError(
            f"{str(path)!r} is missing; the scratch root is incomplete"
        ) from None
    if size < needed:
        raise NotADatasetError(
            f"{str(path)!r} is truncated: it holds {size:,} bytes but the manifest "
            f"describes {shape!r} {dtype.name} ({needed:,} bytes)"
        )
    if needed == 0:
        return np.zeros(shape, dtype)
    array = np.memmap(path, dtype=dtype, mode="r", shape=shape)
    return array


def _steps_held(root: Path, shapes: list[tuple[int, ...]], dtype: np.dtype) -> int:
    """Whole steps of the first axis that every position's data file holds."""
    held = []
    for position, shape in enumerate(shapes):
        step_bytes = math.prod(shape[1:]) * dtype.itemsize
        try:
            size = (root / files.data_file_name(position)).stat().st_size
        except OSError:
            return 0
        held.append(size // step_bytes if step_bytes else 0)
    return min(held, default=0)


def _read_progress(root: Path) -> int:
    try:
        data = (root / files.PROGRESS).read_bytes()
    except OSError:
        return 0
    if len(data) < 8:
        return 0
    (count,) = struct.unpack("<Q", data[:8])
    return int(count)


def _read_metadata(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):
                warnings.warn(
                    f"ignoring a truncated last line ({number}) of {str(path)!r}; "
                    "the writer was interrupted while writing it",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
                continue
            raise NotADatasetError(
                f"line {number} of {str(path)!r} is not valid JSON; the metadata "
                "file is corrupt"
            ) from None
        records.append(record)
    return records
