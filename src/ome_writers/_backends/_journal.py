"""The journal beside an OME output: what a killed writer had not finished.

OME-Zarr and OME-TIFF write their final metadata (per-frame metadata, the
extent of an unbounded axis, ``complete``) only at ``close()``, and OME-Zarr
engines write frames from their own threads some time after ``append``
returns. The journal keeps what a killed process would otherwise lose, in a
directory beside the output (``<output>.ome-writers-journal``) that a clean
``close()`` removes and ``ome_writers.recover`` replays:

- ``journal.json``: the settings and a marker (``{"kind": "journal", ...}``),
  written once at create, atomically;
- ``progress.bin``: 8 bytes, little-endian uint64, the frames appended or
  skipped, updated (through a memory map) before ``append`` returns;
- ``frame_metadata.jsonl``: one line per frame appended with metadata
  (``{"n": frame_number, "m": {...}}``), one ``write`` each;
- ``global_metadata.json``: the namespaces given to ``set_global_metadata``,
  replaced atomically; ``format_metadata.json`` likewise, what was given to
  ``update_metadata`` (OME-Zarr group attributes, merged by key);
- ``<name>.idx`` / ``<name>.dat``: slots of frames that an engine has not yet
  handed to the operating system. ``.idx`` holds one little-endian uint64 per
  slot (frame number + 1 while the slot holds that frame, 0 when free),
  ``.dat`` the slots' pixels. A slot is marked only once its pixels are in,
  and freed once the frame's own file is written, so every marked slot is a
  whole frame that the output may lack. ``journal.json`` lists each slot
  file's layout (``"frames"``: C-order frames; ``"chunks"``: the chunk order
  of the tensorstore fast path).

Why a directory of plain files: the page cache outlives the process, so
everything written here (memory-mapped or not) survives a SIGKILL without a
single ``fsync``; the ``fsync`` policy adds durability against power loss.
The fast path's slots are memory-mapped and *are* the buffers the frames are
encoded into, so they cost no extra copy; other engines copy each frame into
a slot (``pwrite``), which costs one copy into the page cache.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ome_writers._util import pwrite_all, replace_file, write_all

JOURNAL_SUFFIX = ".ome-writers-journal"
JOURNAL_JSON = "journal.json"
PROGRESS = "progress.bin"
FRAME_METADATA = "frame_metadata.jsonl"
GLOBAL_METADATA = "global_metadata.json"
FORMAT_METADATA = "format_metadata.json"
MARKER_KEY = "ome_writers"
KIND = "journal"
VERSION = 1
_SLOT_ENTRY = 8  # bytes per slot in a .idx file


def journal_path(output: str | os.PathLike[str]) -> Path:
    """Where the journal of ``output`` lives."""
    path = Path(os.path.abspath(output))
    return path.with_name(path.name + JOURNAL_SUFFIX)


def check_no_journal(output: str | os.PathLike[str], *, overwrite: bool) -> None:
    """Refuse to write over an interrupted output; with ``overwrite``, drop it.

    Raises
    ------
    FileExistsError
        ``output`` has a journal: an earlier acquisition there was interrupted.
    """
    path = journal_path(output)
    if not (path.exists() or path.is_symlink()):
        return
    if not is_journal(path):
        raise FileExistsError(
            f"{str(path)!r} exists and is not an ome_writers journal; move it, "
            "or choose another root_path"
        )
    if not overwrite:
        raise FileExistsError(
            f"{str(output)!r} is an interrupted acquisition (its journal "
            f"{str(path)!r} exists): finish it with ome_writers.recover(...) or "
            "'ome-writers recover', or pass overwrite=True to replace it"
        )
    shutil.rmtree(path)


def is_journal(path: Path) -> bool:
    """True when ``path`` is a journal directory this package wrote."""
    try:
        document = json.loads((path / JOURNAL_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    marker = document.get(MARKER_KEY) if isinstance(document, dict) else None
    return isinstance(marker, dict) and marker.get("kind") == KIND


class SlotFile:
    """Frame slots in a file pair (``.idx`` marks, ``.dat`` pixels).

    ``mapped`` slots are memory-mapped, fixed in number, and handed out as
    writable arrays (the caller encodes into them); otherwise slots are
    written with ``pwrite`` and the files grow as more are needed at once.
    """

    def __init__(
        self, directory: Path, name: str, slot_bytes: int, *, mapped: int = 0
    ) -> None:
        self.name = name
        self.slot_bytes = slot_bytes
        #: every mark reaches the device before it returns (``"every_frame"``)
        self.durable = False
        self._lock = threading.Lock()
        self._free: list[int] = []
        self._count = 0
        self._idx_fd = os.open(directory / f"{name}.idx", _CREATE, 0o644)
        self._dat_fd = os.open(directory / f"{name}.dat", _CREATE, 0o644)
        self._data: mmap.mmap | None = None
        self._mapped = bool(mapped)
        if mapped:
            self._grow(mapped)
            self._data = mmap.mmap(self._dat_fd, mapped * slot_bytes)

    def _grow(self, count: int) -> None:
        os.ftruncate(self._idx_fd, count * _SLOT_ENTRY)
        os.ftruncate(self._dat_fd, count * self.slot_bytes)
        if self._data is None and not self._mapped:  # mapped: the caller's pool
            self._free.extend(range(count - 1, self._count - 1, -1))
        self._count = count

    def array(self, slot: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A mapped slot as a writable array (mapped slot files only).

        Its disk blocks are allocated first: a store into a mapped page that
        the file system cannot back (a full disk) kills the process with
        SIGBUS, where an allocation fails with ``OSError`` (ENOSPC).
        """
        assert self._data is not None
        os.posix_fallocate(self._dat_fd, slot * self.slot_bytes, self.slot_bytes)
        return np.frombuffer(
            self._data,
            dtype=dtype,
            count=self.slot_bytes // dtype.itemsize,
            offset=slot * self.slot_bytes,
        ).reshape(shape)

    def take(self) -> int:
        """A free slot (a growing file makes room; a mapped one must have it)."""
        with self._lock:
            if not self._free:
                if self._data is not None:
                    raise RuntimeError("no free journal slot")
                self._grow(max(4, 2 * self._count))
            return self._free.pop()

    def put(self, slot: int, frame_number: int, data: np.ndarray) -> None:
        """Copy ``data`` (C-contiguous bytes of one slot) in, then mark it."""
        pwrite_all(self._dat_fd, data.data.cast("B"), slot * self.slot_bytes)
        self.mark(slot, frame_number)

    def mark(self, slot: int, frame_number: int) -> None:
        """The slot now holds frame ``frame_number`` whole.

        With ``durable`` (the ``"every_frame"`` policy) the pixels reach the
        device first, then the mark.
        """
        if self.durable:
            os.fsync(self._dat_fd)
        entry = struct.pack("<Q", frame_number + 1)
        pwrite_all(self._idx_fd, entry, slot * _SLOT_ENTRY)
        if self.durable:
            os.fsync(self._idx_fd)

    def unmark(self, slot: int) -> None:
        """The slot's frame is in the output (a mapped slot stays the caller's)."""
        pwrite_all(self._idx_fd, b"\0" * _SLOT_ENTRY, slot * _SLOT_ENTRY)

    def release(self, slot: int) -> None:
        """The slot's frame is in the output: free it."""
        self.unmark(slot)
        with self._lock:
            self._free.append(slot)

    def forget(self, slot: int) -> None:
        """Free a slot that was taken but never marked."""
        with self._lock:
            self._free.append(slot)

    def sync(self) -> None:
        os.fsync(self._dat_fd)
        os.fsync(self._idx_fd)

    def close(self) -> None:
        if self._data is not None:
            try:
                self._data.close()
            except BufferError:  # an array over it is still alive: the GC frees it
                pass
            self._data = None
        for fd in (self._idx_fd, self._dat_fd):
            os.close(fd)


_CREATE = os.O_RDWR | os.O_CREAT | os.O_TRUNC


class Journal:
    """The journal of one stream (see the module notes).

    Parameters
    ----------
    output
        The output path (an OME-Zarr directory or an OME-TIFF file).
    settings
        ``AcquisitionSettings.model_dump(mode="json")`` of the stream.
    fsync
        ``"every_frame"``: every record reaches the device before ``append``
        returns; otherwise the page cache keeps it (enough for a killed
        process).
    """

    def __init__(
        self, output: Path, settings: dict[str, Any], *, fsync: str = "on_close"
    ) -> None:
        self.path = journal_path(output)
        self._every_frame = fsync == "every_frame"
        self._document: dict[str, Any] = {
            MARKER_KEY: {"kind": KIND, "version": VERSION},
            "output": Path(os.path.abspath(output)).name,
            "settings": settings,
            "slots": {},
        }
        self._slots: dict[str, SlotFile] = {}
        self._format_metadata: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: engines keep frames in flight in slots (False: see ``for_conversion_of``)
        self.keeps_frames = True
        self.path.mkdir()
        try:
            replace_file(self.path / JOURNAL_JSON, self._document_bytes())
            self._meta_fd = os.open(
                self.path / FRAME_METADATA,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                0o644,
            )
            self._progress_fd = os.open(self.path / PROGRESS, _CREATE, 0o644)
            os.ftruncate(self._progress_fd, 8)
            self._progress = mmap.mmap(self._progress_fd, 8)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def _document_bytes(self) -> bytes:
        return json.dumps(self._document, indent=1).encode("utf-8")

    # ------------------------------------------------------------ recording

    def record(
        self, frames_written: int, frame_number: int, metadata_json: str | None
    ) -> None:
        """After a frame is stored: its metadata line, then the count."""
        if metadata_json is not None:
            line = f'{{"n":{frame_number},"m":{metadata_json}}}\n'.encode()
            write_all(self._meta_fd, line)
            if self._every_frame:
                os.fsync(self._meta_fd)
        self.count(frames_written)

    def count(self, frames_written: int) -> None:
        """Frames appended or skipped so far."""
        struct.pack_into("<Q", self._progress, 0, frames_written)
        if self._every_frame:
            self._progress.flush()

    def set_global_metadata(self, metadata: dict[str, Any]) -> None:
        replace_file(
            self.path / GLOBAL_METADATA,
            json.dumps(metadata).encode("utf-8"),
            durable=self._every_frame,
        )

    def update_format_metadata(self, metadata: Any) -> None:
        """Merge an ``update_metadata`` call (JSON mappings only) into the record."""
        try:
            merged = {
                **self._format_metadata,
                **{str(k): v for k, v in metadata.items()},
            }
            data = json.dumps(merged).encode("utf-8")
        except (TypeError, ValueError, AttributeError):
            return  # not JSON (ome_types documents): applied after close only
        replace_file(self.path / FORMAT_METADATA, data, durable=self._every_frame)
        self._format_metadata = merged

    def for_conversion_of(self, source: str) -> None:
        """Keep no frames: this stream converts ``source``, which holds them.

        Called before the first frame. Every frame a conversion appends is in
        its source, and an interrupted conversion is not finished but done
        again (``recover`` refuses it, naming the source), so copying frames
        into slots would only cost time: a conversion into OME-Zarr ran ~20%
        faster without it.
        """
        with self._lock:
            if self._slots:
                raise RuntimeError("for_conversion_of() after frames were journaled")
            self.keeps_frames = False
            self._document["conversion_of"] = source
            replace_file(self.path / JOURNAL_JSON, self._document_bytes())

    def slot_file(
        self, name: str, slot_bytes: int, layout: dict[str, Any], *, mapped: int = 0
    ) -> SlotFile:
        """A new slot file, its layout recorded in ``journal.json``."""
        with self._lock:
            slots = SlotFile(self.path, name, slot_bytes, mapped=mapped)
            slots.durable = self._every_frame
            self._slots[name] = slots
            self._document["slots"][name] = {**layout, "slot_bytes": slot_bytes}
            replace_file(self.path / JOURNAL_JSON, self._document_bytes())
        return slots

    @property
    def syncs_every_frame(self) -> bool:
        return self._every_frame

    # ------------------------------------------------------------ finishing

    def close(self) -> None:
        """Release the files (the journal stays: the output is not finished)."""
        for slots in self._slots.values():
            slots.close()
        self._slots = {}
        if self._progress is not None:
            self._progress.close()
            os.close(self._progress_fd)
            os.close(self._meta_fd)
            self._progress = None  # type: ignore[assignment]

    def remove(self) -> None:
        """The output is finished: close and delete the journal."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------- reading


@dataclass
class JournalContents:
    """What a journal holds (see ``read_journal``)."""

    path: Path
    output: Path
    settings: dict[str, Any]
    frames_written: int
    #: frame number -> metadata (frames appended with metadata)
    frame_metadata: dict[int, dict[str, Any]]
    global_metadata: dict[str, Any]
    #: what was given to ``update_metadata`` while the stream was open
    format_metadata: dict[str, Any]
    #: frame number -> pixels, for frames the output may lack
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    #: the source of an interrupted ``convert`` (whose frames were not kept)
    conversion_of: str | None = None


def read_journal_settings(path: Path) -> dict[str, Any]:
    """The settings a journal was made with."""
    document = json.loads((path / JOURNAL_JSON).read_text(encoding="utf-8"))
    settings: dict[str, Any] = document["settings"]
    return settings


def read_journal(path: Path) -> JournalContents:
    """Read a journal; ``ValueError`` if it is not one of ours."""
    document = json.loads((path / JOURNAL_JSON).read_text(encoding="utf-8"))
    marker = document.get(MARKER_KEY) if isinstance(document, dict) else None
    if not isinstance(marker, dict) or marker.get("kind") != KIND:
        raise ValueError(f"{str(path)!r} is not an ome_writers journal")
    settings = document["settings"]
    try:
        data = (path / PROGRESS).read_bytes()
        (frames_written,) = struct.unpack("<Q", data[:8])
    except (OSError, struct.error):
        frames_written = 0
    frame_metadata: dict[int, dict[str, Any]] = {}
    try:
        text = (path / FRAME_METADATA).read_text(encoding="utf-8")
    except OSError:
        text = ""
    for line in text.splitlines():
        try:
            record = json.loads(line)
            frame_metadata[int(record["n"])] = record["m"]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the kill: its append had not returned
    global_metadata = _read_json(path / GLOBAL_METADATA)
    format_metadata = _read_json(path / FORMAT_METADATA)
    contents = JournalContents(
        path=path,
        output=path.with_name(document["output"]),
        settings=settings,
        frames_written=int(frames_written),
        frame_metadata={n: m for n, m in frame_metadata.items() if n < frames_written},
        global_metadata=global_metadata,
        format_metadata=format_metadata,
        conversion_of=document.get("conversion_of"),
    )
    dtype = np.dtype(settings["dtype"]).newbyteorder("<")
    frame_shape = tuple(int(d["count"]) for d in settings["dimensions"][-2:])
    for name, layout in document.get("slots", {}).items():
        contents.frames.update(
            _read_slots(path, name, layout, dtype, frame_shape, frames_written)
        )
    return contents


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_slots(
    path: Path,
    name: str,
    layout: dict[str, Any],
    dtype: np.dtype,
    frame_shape: tuple[int, ...],
    frames_written: int,
) -> dict[int, np.ndarray]:
    try:
        marks = np.frombuffer((path / f"{name}.idx").read_bytes(), "<u8")
    except OSError:
        return {}
    slot_bytes = int(layout["slot_bytes"])
    out: dict[int, np.ndarray] = {}
    with open(path / f"{name}.dat", "rb") as fh:
        for slot in np.flatnonzero(marks).tolist():
            frame_number = int(marks[slot]) - 1
            if frame_number >= frames_written:
                continue  # marked, but its append had not returned
            fh.seek(slot * slot_bytes)
            raw = np.frombuffer(fh.read(slot_bytes), dtype)
            if raw.size * dtype.itemsize != slot_bytes:
                continue
            if layout.get("order") == "chunks":
                gy, gx = layout["grid"]
                cy, cx = layout["chunk"]
                frame = raw.reshape(gy, gx, cy, cx).transpose(0, 2, 1, 3)
                frame = frame.reshape(frame_shape)
            else:
                frame = raw.reshape(frame_shape)
            out[frame_number] = np.ascontiguousarray(frame)
    return out
