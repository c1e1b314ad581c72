"""Any output of this package opened for reading as an acquisition.

``convert`` needs the same from every format: the settings the writer
recorded, the global metadata, and per frame number (acquisition order) its
pixels and its metadata, or "never written". ``open_dataset`` gives that for
a scratch root, an OME-Zarr and an OME-TIFF, through each format's own
read-only reader (``scratch/_reader``, ``zarr/_reader``, ``tiff/_reader``).

An interrupted output is read as it is, never finished in place: a scratch
root through its progress counter (``open_scratch``); an OME-Zarr or
OME-TIFF through its journal (``_backends/_journal``: the frame count, every
frame's metadata, the global metadata, and the frames the engine had not yet
written), or, without a journal, the frames on disk (an unbounded OME-Zarr:
the steps its arrays hold; a bounded one: every frame, those never written
reading as zeros).

An OME-Zarr on S3 (``s3://``) is read through the store abstraction
(``zarr/_reader``); an interrupted one's journal is looked for where its
writer keeps it on this machine (``_store.remote_journal_output``).

Scratch frames are read with ``pread`` into one reused buffer, not through
the memory map: pages mapped into this process would count as its memory,
up to the whole dataset.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._journal import (
    JOURNAL_JSON,
    JOURNAL_SUFFIX,
    is_journal,
    journal_path,
    read_journal,
)
from ome_writers._backends._registry import is_backend_available
from ome_writers._backends.scratch import _files as scratch_files
from ome_writers._backends.scratch._reader import open_scratch
from ome_writers._errors import BackendUnavailableError, NotADatasetError
from ome_writers._router import build_router
from ome_writers._stream import RESERVED_FRAME_KEYS
from ome_writers._urls import is_s3_url

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings


@dataclass
class Dataset:
    """An output opened for reading as an acquisition, whatever its format.

    Attributes
    ----------
    kind
        ``"scratch"``, ``"ome-zarr"`` or ``"ome-tiff"``.
    paths
        Every file or folder the output is made of (none for an ``s3://``
        output: ``url``).
    settings
        The settings the writer recorded (compression aside: ``compression``).
    complete
        False when the writer was interrupted.
    frames_written
        Frames appended or skipped (those that exist, when interrupted).
    read
        Frame number -> its pixels (None: never written), valid until the
        next call.
    metadata
        Frame number -> its metadata (None: none).
    group_attributes
        OME-Zarr: per position, its image group's attributes but the
        writer's own key (``"ome"`` and what ``update_metadata`` added).
    ome_document, ome_document_xml
        A complete OME-TIFF of this package: its OME-XML document
        (``ome_types.OME``) as it stands, ``update_metadata`` edits included,
        and its text.
    """

    kind: str
    paths: list[Path]
    settings: AcquisitionSettings
    compression: str | None
    complete: bool
    frames_written: int
    global_metadata: dict[str, Any]
    router: FrameRouter
    read: Callable[[int], np.ndarray | None]
    metadata: Callable[[int], dict[str, Any] | None]
    close: Callable[[], None]
    url: str | None = None
    group_attributes: list[dict[str, Any]] = field(default_factory=list)
    ome_document: Any = None
    ome_document_xml: str = ""


def open_dataset(
    path: Path | str, storage_options: dict[str, Any] | None = None
) -> Dataset:
    """Open a scratch root, an OME-Zarr or an OME-TIFF of this package.

    Parameters
    ----------
    path
        The output; an ``s3://`` URL for an OME-Zarr on S3.
    storage_options
        For an ``s3://`` URL: ``OmeZarrFormat.storage_options`` (the rest
        comes from the AWS environment).

    Raises
    ------
    NotADatasetError
        ``path`` does not exist, or is not an output of this package.
    BackendUnavailableError
        The reader the format needs is not installed.
    """
    from ome_writers._backends.tiff._reader import is_tiff_dataset, tiff_folder
    from ome_writers._backends.zarr._reader import is_zarr_dataset

    if isinstance(path, str) and is_s3_url(path):
        return _zarr_source(path, storage_options)
    path = Path(path)
    if not os.path.lexists(path) and tiff_folder(path) is None:
        raise NotADatasetError(
            f"source {str(path)!r} does not exist; give a scratch root, an "
            "OME-Zarr or an OME-TIFF written by ome_writers"
        )
    if path.is_dir() and scratch_files.read_manifest_or_none(path) is not None:
        return _scratch_source(path)
    if path.is_dir() and is_zarr_dataset(path):
        return _zarr_source(path)
    if is_tiff_dataset(path):
        return _tiff_source(path)
    raise NotADatasetError(
        f"source {str(path)!r} is not an output of ome_writers (no scratch "
        "manifest.json, no OME-Zarr zarr.json with ome_writers attributes, not "
        "an OME-TIFF); only this package's outputs can be read as an acquisition"
    )


def _clean_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored metadata record without the keys the stream adds itself."""
    return {k: v for k, v in record.items() if k not in RESERVED_FRAME_KEYS}


def _scratch_source(root: Path) -> Dataset:
    dataset = open_scratch(root)
    settings = dataset.settings
    router = build_router(settings)
    metadata = {
        int(r["frame_number"]): _clean_record(r)
        for r in dataset.frame_metadata
        if "frame_number" in r
    }
    try:
        frames = _MappedFrames(root, len(dataset.arrays), settings, router)
    except OSError as exc:
        raise NotADatasetError(
            f"a data file of the scratch root {str(root)!r} cannot be read: {exc}"
        ) from None
    return Dataset(
        kind="scratch",
        paths=[root],
        settings=settings,
        compression=None,
        complete=dataset.complete,
        frames_written=dataset.frames_written,
        global_metadata=dataset.global_metadata,
        router=router,
        read=frames.read,
        metadata=metadata.get,
        close=frames.close,
    )


class _MappedFrames:
    """The frames of a scratch root, read through read-only memory maps.

    A frame is a view of the page cache, not a copy (a copy per frame cost a
    fifth of a conversion's time). When the next frame is read, the previous
    one's pages are unmapped again (``MADV_DONTNEED``; they stay in the page
    cache), so that at most a frame or two of the files count as this
    process's memory, whatever the size of the dataset.
    """

    def __init__(
        self,
        root: Path,
        positions: int,
        settings: AcquisitionSettings,
        router: FrameRouter,
    ) -> None:
        self._router = router
        self._shape = settings.frame_shape
        self._dtype = np.dtype(settings.dtype)
        self._count = self._shape[0] * self._shape[1]
        self._bytes = self._count * self._dtype.itemsize
        self._zeros = np.zeros(self._shape, self._dtype)
        self._maps: list[mmap.mmap | None] = []
        self._last: tuple[mmap.mmap, int] | None = None
        try:
            for p in range(positions):
                fd = os.open(root / scratch_files.data_file_name(p), os.O_RDONLY)
                try:
                    size = os.fstat(fd).st_size
                    mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else None
                finally:
                    os.close(fd)  # the map keeps the file open
                self._maps.append(mapped)
        except OSError:
            self.close()
            raise

    def read(self, frame_number: int) -> np.ndarray:
        """Frame ``frame_number`` (zeros past the end of its file)."""
        self._release()
        position, row = self._router.flat_offset(frame_number)
        start = row * self._bytes
        mapped = self._maps[position]
        if mapped is None or start + self._bytes > len(mapped):
            return self._zeros
        self._last = (mapped, start)
        frame = np.frombuffer(mapped, self._dtype, self._count, start)
        return frame.reshape(self._shape)

    def _release(self) -> None:
        if self._last is None:
            return
        mapped, start = self._last
        self._last = None
        if hasattr(mapped, "madvise"):  # not on Windows
            begin = start - start % mmap.PAGESIZE
            mapped.madvise(mmap.MADV_DONTNEED, begin, start + self._bytes - begin)

    def close(self) -> None:
        """Unmap the files (a map a frame still points into goes with it)."""
        self._last = None
        for mapped in self._maps:
            if mapped is None:
                continue
            try:
                mapped.close()
            except BufferError:  # a frame returned is still alive: the GC unmaps
                pass
        self._maps = []


def _zarr_source(
    root: Path | str, storage_options: dict[str, Any] | None = None
) -> Dataset:
    from ome_writers._backends.zarr._reader import open_zarr_dataset
    from ome_writers._backends.zarr._store import remote_journal_output

    dataset = open_zarr_dataset(root, storage_options)
    url = dataset.root if isinstance(dataset.root, str) else None
    router = dataset.router
    frames_written = dataset.frames_written
    metadata = dataset.frame_metadata
    global_metadata = dataset.global_metadata
    journal_frames: dict[int, np.ndarray] = {}
    if not dataset.complete:
        output = root if url is None else remote_journal_output(url)
        journal = _journal_of(journal_path(output))
        if journal is not None:
            contents = read_journal(journal)
            frames_written = contents.frames_written
            metadata = contents.frame_metadata
            global_metadata = contents.global_metadata or global_metadata
            journal_frames = contents.frames
        elif router.is_unbounded:  # no journal: the steps the arrays hold
            steps = max((shape[0] for shape in dataset.extents), default=0)
            frames_written = steps * router.frames_per_step
        else:
            frames_written = router.num_frames or 0

    def read(frame_number: int) -> np.ndarray:
        kept = journal_frames.get(frame_number)
        return kept if kept is not None else dataset.read_frame(frame_number)

    return Dataset(
        kind="ome-zarr",
        paths=[] if url is not None else [Path(root)],
        settings=dataset.settings,
        compression=dataset.compression,
        complete=dataset.complete,
        frames_written=frames_written,
        global_metadata=global_metadata,
        router=router,
        read=read,
        metadata=metadata.get,
        close=dataset.close,
        url=url,
        group_attributes=dataset.group_attributes,
    )


def _tiff_source(path: Path) -> Dataset:
    if not is_backend_available("tifffile"):
        raise BackendUnavailableError(
            f"reading the OME-TIFF {str(path)!r} needs ome-types, which is not "
            "installed; install it with: pip install 'ome-writers[tifffile]'"
        )
    from ome_writers._backends.tiff._reader import open_tiff_dataset

    dataset = open_tiff_dataset(path)
    router = dataset.router
    frames_written = dataset.frames_written
    global_metadata = dataset.global_metadata
    planes = dataset.plane_metadata

    def plane_metadata(frame_number: int) -> dict[str, Any] | None:
        return planes.get(router.locate(frame_number)) if planes else None

    metadata: Callable[[int], dict[str, Any] | None] = plane_metadata
    per_position = len(dataset.files) > 1
    folder = dataset.files[0].parent
    if not dataset.complete:
        journal = _tiff_journal(dataset.files[0], folder if per_position else None)
        if journal is not None:
            contents = read_journal(journal)
            frames_written = contents.frames_written
            metadata = contents.frame_metadata.get
            global_metadata = contents.global_metadata or global_metadata
    paths = [*dataset.files, dataset.path]
    if per_position:
        paths.append(folder)
    return Dataset(
        kind="ome-tiff",
        paths=paths,
        settings=dataset.settings,
        compression=dataset.compression,
        complete=dataset.complete,
        frames_written=frames_written,
        global_metadata=global_metadata,
        router=router,
        read=dataset.read_frame,
        metadata=metadata,
        close=dataset.close,
        ome_document=(
            dataset.document
            if dataset.complete and dataset.writer_entries is not None
            else None
        ),
        ome_document_xml=dataset.document_xml,
    )


def _journal_of(path: Path) -> Path | None:
    return path if is_journal(path) else None


def _tiff_journal(first_file: Path, folder: Path | None) -> Path | None:
    """The journal of an interrupted OME-TIFF: beside its file or its folder.

    A folder of one file per position was written for a ``root_path`` such
    as ``run.ome.tiff`` beside the folder ``run``; its journal is named after
    that path.
    """
    if folder is None:
        return _journal_of(journal_path(first_file))
    for candidate in sorted(folder.parent.glob(f"*{JOURNAL_SUFFIX}")):
        if not is_journal(candidate):
            continue
        try:
            document = json.loads((candidate / JOURNAL_JSON).read_text("utf-8"))
            output = str(document["output"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        lowered = output.lower()
        stem = next(
            (output[: -len(s)] for s in _TIFF_SUFFIXES if lowered.endswith(s)), output
        )
        if stem == folder.name:
            return candidate
    return None


_TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
