"""Frames that are one whole file each, written straight to disk.

Why: with the default geometry, a frame is exactly one file of the array (one
chunk, or one shard of whole chunks when Y/X are chunked, as with the
benchmark's (1, 512, 512)). Written by tensorstore, such a frame is copied
into the engine's chunk buffers and then into the page cache, and on a
2-core machine that reaches only 0.5-0.6 of a plain sequential write of the
same bytes (benchmarks/RESULTS.md). Uncompressed, the file's bytes are just the
frame's pixels in chunk order (little-endian), followed for a shard by its
index, which is the same for every full shard. So ``append`` copies the frame
once into chunk order (the copy that lets the caller reuse its buffer at once)
and writer threads write the files while the next frames are copied.

That copy decides the speed on two cores: the kernel's copy into the page
cache already takes one core's worth, so the chunk-order copy must be cheap.
numpy's copy (1 KiB rows through cached stores) takes 1.3 ms per 8 MiB
frame, the compiled one (``_chunk_order.c``, streamed stores) 0.36 ms. In one
sitting, ``append`` went from 1.25 ms to 0.6 ms and the stream from 0.90-0.93
of the plain write to 1.02-1.14; over 12 benchmark runs it wrote at 0.94-1.31
of it, against 0.47-0.56 for tensorstore's own writes (benchmarks/RESULTS.md).
numpy remains the copy for frames that need converting and for installs
without a C compiler.

Trust: the layout is not assumed. Before the first frame, the engine itself
encodes a probe frame with the array's metadata into an in-memory store, and
this path is used only if our encoding of that probe is byte-identical to the
engine's; the shard index (with its checksum) is taken from the engine's
bytes, so this module computes no checksum. Otherwise, and for compressed or
partial-chunk layouts, the engine writes every frame. Every chunk of a frame
is written, also one equal to the fill value (which the engine would leave
out); readers see the same pixels either way.

Files are written under a temporary name in their directory and renamed, so a
reader of the live output, or a killed process, never sees part of a file: a
frame's file is either absent (read as the fill value) or complete (there is
no fsync: a power cut is another matter).
"""

from __future__ import annotations

import errno
import json
import math
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._workers import WorkerThreads
from ome_writers._util import replace_file

copy_to_chunk_order: Callable[[memoryview, memoryview, int, int, int], bool] | None
try:
    from ome_writers._chunk_order import copy_to_chunk_order
except ImportError:  # installed without a C compiler: numpy copies (append ~2x slower)
    copy_to_chunk_order = None

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable
    from pathlib import Path

    from ome_writers._backends._journal import Journal, SlotFile
    from ome_writers._backends.zarr._common import ChunkGeometry

#: suffix of a file being written (renamed to its key once complete)
TEMP_SUFFIX = ".ome-writers-partial"
#: chunk-order buffers of one stream: as many frames as fit here, but at least 4
_BUFFER_BUDGET_BYTES = 64 * 1024**2
#: larger frames go through the engine: the probe and the buffers cost several
#: frames of memory, which a 100000 x 100000 frame (20 GB) does not have to spare
MAX_DIRECT_FRAME_BYTES = 256 * 1024**2
_MIN_BUFFERS = 4
#: a frame file written in pieces (``on_rows``) is written this much at a time
ROWS_PIECE_BYTES = 128 * 1024
_SHARD_INDEX_ENTRY_BYTES = 16  # offset and size, two uint64 per chunk
_CRC32C_BYTES = 4

_verified: dict[str, bytes | None] = {}
_verified_lock = threading.Lock()


@dataclass(frozen=True)
class FrameFileLayout:
    """How one frame becomes one chunk or shard file.

    ``grid`` is the number of chunks along Y and X (1, 1 for an unsharded
    chunk), ``chunk`` the chunk's Y/X shape, ``index`` the bytes that follow
    the chunks in a shard (empty until ``verified``, and for a chunk).
    """

    grid: tuple[int, int]
    chunk: tuple[int, int]
    dtype: np.dtype
    is_shard: bool
    index: bytes = b""

    @classmethod
    def for_geometry(
        cls, geometry: ChunkGeometry, dtype: np.dtype, compression: str | None
    ) -> FrameFileLayout | None:
        """The layout when each frame is exactly one uncompressed file, else None."""
        if compression is not None or any(b != 1 for b in geometry.block[:-2]):
            return None
        frame = geometry.shape[-2:]
        if geometry.block[-2:] != frame:
            return None
        chunk = geometry.chunks[-2:]
        if any(f % c for f, c in zip(frame, chunk)):
            return None
        if math.prod(frame) * dtype.itemsize > MAX_DIRECT_FRAME_BYTES:
            return None
        grid = (frame[0] // chunk[0], frame[1] // chunk[1])
        little = dtype.newbyteorder("<")
        return cls(grid, (chunk[0], chunk[1]), little, geometry.shards is not None)

    @property
    def data_bytes(self) -> int:
        """Bytes of the chunks, without the index."""
        return (
            self.grid[0] * self.grid[1] * self.chunk[0] * self.chunk[1]
        ) * self.dtype.itemsize

    def new_buffer(self) -> np.ndarray:
        """An empty buffer in chunk order: (grid Y, grid X, chunk Y, chunk X)."""
        return np.empty((*self.grid, *self.chunk), self.dtype)

    def encode_into(self, buffer: np.ndarray, frame: np.ndarray) -> None:
        """Copy ``frame`` into ``buffer`` in chunk order (and little-endian).

        A C-contiguous frame of the file's dtype (the usual camera frame) goes
        through the compiled copy; any other frame (another dtype or byte
        order, a strided view) through numpy, which converts as it copies.
        """
        (gy, gx), (cy, cx) = self.grid, self.chunk
        if (
            copy_to_chunk_order is not None
            and frame.dtype == self.dtype
            and frame.flags.c_contiguous
        ):
            row_bytes = cx * self.dtype.itemsize
            copy_to_chunk_order(frame.data, buffer.data, gy * cy, cy, row_bytes)
            return
        np.copyto(
            buffer.transpose(0, 2, 1, 3),
            frame.reshape(gy, cy, gx, cx),
            casting="unsafe",
        )

    def verified(
        self, metadata: dict[str, Any], engine_bytes: Callable[[np.ndarray], bytes]
    ) -> FrameFileLayout | None:
        """This layout with the engine's shard index, if the engine agrees.

        ``engine_bytes(probe)`` returns the file the engine writes for a frame
        ``probe`` of an array with ``metadata``. The verdict is kept for the
        process, per metadata (shape aside).
        """
        key = json.dumps({**metadata, "shape": None}, sort_keys=True)
        with _verified_lock:
            if key in _verified:
                index = _verified[key]
                return None if index is None else replace(self, index=index)
        index = self._probe(engine_bytes)
        with _verified_lock:
            _verified[key] = index
        return None if index is None else replace(self, index=index)

    def _probe(self, engine_bytes: Callable[[np.ndarray], bytes]) -> bytes | None:
        """The engine's index bytes if it encodes a probe frame as we do."""
        shape = (self.grid[0] * self.chunk[0], self.grid[1] * self.chunk[1])
        count = int(np.prod(shape))
        # nonzero everywhere, so the engine writes every chunk
        probe = (np.arange(count, dtype=np.uint32) % 251 + 1).astype(self.dtype)
        probe = probe.reshape(shape)
        buffer = self.new_buffer()
        self.encode_into(buffer, probe)
        ours = buffer.tobytes()
        theirs = engine_bytes(probe)
        if theirs[: len(ours)] != ours:
            return None
        index = theirs[len(ours) :]
        chunks = self.grid[0] * self.grid[1]
        if not self.is_shard:
            return None if index else index
        if len(index) != chunks * _SHARD_INDEX_ENTRY_BYTES + _CRC32C_BYTES:
            return None
        size = self.data_bytes // chunks
        entries = np.frombuffer(index[:-_CRC32C_BYTES], "<u8").reshape(chunks, 2)
        expected = np.stack([np.arange(chunks) * size, np.full(chunks, size)], 1)
        return index if np.array_equal(entries, expected) else None


class DirectFrameWriter:
    """Copies each frame into chunk order and writes its file on a thread.

    The chunk-order buffers are a fixed set, reused: when all of them wait to
    be written, ``start`` waits for one (the writer's speed is the stream's).
    Fresh buffers for every frame would cost page faults on each.

    Parameters
    ----------
    layout
        A verified layout (see ``FrameFileLayout.verified``).
    array_paths
        Each position's array directory.
    workers
        Writer threads: a writer blocked in the file system (creating a file,
        allocating pages) leaves the others writing.
    on_written
        ``on_written(position, index, buffer)``, called on the writer thread
        once a frame's file is written, before its chunk-order buffer is
        reused (the pyramid's levels are made from it there); what it
        returns, if not None, is called on the same thread once the buffer
        is free again (the pyramid's level files are written then).
    on_rows
        ``on_rows(position, index, buffer)``, called on the writer thread
        before a frame's file is written; if it returns a callable, that
        writes the frame's chunks itself: ``write(fd, piece_rows)`` writes
        them in pieces of ``piece_rows`` rows of one chunk (about
        ``ROWS_PIECE_BYTES``), so that it can use each piece while it is
        still in the CPU's cache (the pyramid halves them there: reading the
        frame again from memory cost as much as the halving); the file's
        index follows.
    """

    def __init__(
        self,
        layout: FrameFileLayout,
        array_paths: list[Path],
        workers: int = 1,
        *,
        journal: Callable[[], Journal | None] | None = None,
        frame_number: Callable[[], int] | None = None,
        on_written: Callable[
            [int, tuple[int, ...], np.ndarray], Callable[[], None] | None
        ]
        | None = None,
        on_rows: Callable[
            [int, tuple[int, ...], np.ndarray], Callable[[int, int], None] | None
        ]
        | None = None,
    ) -> None:
        self._layout = layout
        self._on_written = on_written
        self._on_rows = on_rows
        cy, cx = layout.chunk
        step = ROWS_PIECE_BYTES // (cx * layout.dtype.itemsize)
        #: rows of one chunk per piece of a file written by ``on_rows``
        self._piece_rows = min(cy + cy % 2, max(2, step - step % 2))
        self._array_paths = array_paths
        self._workers = WorkerThreads(workers, "ome-writers-zarr-files")
        self._journal = journal
        self._frame_number = frame_number
        self._slots: SlotFile | None = None
        self._spare: list[tuple[np.ndarray, int | None]] = []
        self._next_slot = 0  # journal slot of the next new buffer
        self._allocated = 0
        self._max_buffers = max(_MIN_BUFFERS, _BUFFER_BUDGET_BYTES // layout.data_bytes)
        self._spare_ready = threading.Condition()

    @property
    def layout(self) -> FrameFileLayout:
        """The layout of every frame's file."""
        return self._layout

    def start(
        self, position: int, index: tuple[int, ...], frame: np.ndarray
    ) -> concurrent.futures.Future[None]:
        """Copy ``frame`` now; write its file in the background.

        ``index`` is the frame's storage index over the non-frame axes, which
        is also its file's chunk index there (the file spans Y/X: 0, 0).
        """
        buffer, slot = self._take_buffer()
        try:
            self._layout.encode_into(buffer, frame)
            if slot is not None:
                assert self._slots is not None
                assert self._frame_number is not None
                self._slots.mark(slot, self._frame_number())
        except BaseException:
            self._release(buffer, slot)
            raise
        key = "/".join(str(i) for i in (*index, 0, 0))
        path = self._array_paths[position] / "c" / key
        try:
            future: concurrent.futures.Future[None] = self._workers.submit(
                self._write_file, path, buffer, slot, position, index
            )
        except BaseException:
            self._release(buffer, slot)
            raise
        return future

    def close(self) -> None:
        """Wait for every file, stop the writer threads and free the buffers."""
        self._workers.shutdown()
        with self._spare_ready:
            self._spare.clear()
        self._slots = None  # the journal closes its files

    def _take_buffer(self) -> tuple[np.ndarray, int | None]:
        """A free buffer, and its journal slot when there is a journal.

        With a journal every buffer takes disk space; when the disk has none
        left for another one, the pool stops growing and waits for a buffer
        in use (the first one must fit).
        """
        while True:
            with self._spare_ready:
                while not self._spare and self._allocated >= self._max_buffers:
                    self._spare_ready.wait()
                if self._spare:
                    return self._spare.pop()
                slot = self._next_slot
                self._next_slot += 1
                self._allocated += 1
            try:
                slots = self._journal_slots()
                if slots is None:
                    return self._layout.new_buffer(), None
                layout = self._layout
                shape = (*layout.grid, *layout.chunk)
                return slots.array(slot, shape, layout.dtype), slot
            except BaseException as exc:
                with self._spare_ready:
                    self._allocated -= 1
                    self._next_slot -= 1  # nothing was written to it
                    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
                    if not (full and self._allocated):
                        self._spare_ready.notify()
                        raise
                    self._max_buffers = self._allocated

    def _journal_slots(self) -> SlotFile | None:
        """The journal's slots (made on first use): the buffers are its pages."""
        if self._slots is None and self._journal is not None:
            journal = self._journal()
            if journal is not None:
                layout = self._layout
                self._slots = journal.slot_file(
                    "direct",
                    layout.data_bytes,
                    {"order": "chunks", "grid": layout.grid, "chunk": layout.chunk},
                    mapped=self._max_buffers,
                )
        return self._slots

    def _release(self, buffer: np.ndarray, slot: int | None) -> None:
        with self._spare_ready:
            self._spare.append((buffer, slot))
            self._spare_ready.notify()

    def _write_file(
        self,
        path: Path,
        buffer: np.ndarray,
        slot: int | None,
        position: int = 0,
        index: tuple[int, ...] = (),
    ) -> None:
        try:
            # every frame's file has a directory of its own (its index but
            # Y/X): a set of the ones made would never be hit, only grow
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + TEMP_SUFFIX)
            tap = None
            if self._on_rows is not None:
                tap = self._on_rows(position, index, buffer)
            if tap is None:
                replace_file(path, buffer.data, self._layout.index, temporary=partial)
            else:
                piece_rows = self._piece_rows
                replace_file(
                    path,
                    self._layout.index,
                    temporary=partial,
                    write_head=lambda fd: tap(fd, piece_rows),
                )
        except BaseException:
            if slot is None:
                self._release(buffer, slot)
            else:  # the journal keeps the frame: its slot is never reused
                with self._spare_ready:
                    self._allocated -= 1
                    self._spare_ready.notify()
            raise
        if slot is not None:  # the frame is in its file: the journal lets go
            assert self._slots is not None
            self._slots.unmark(slot)
        follow_up = None
        try:
            if self._on_written is not None:
                follow_up = self._on_written(position, index, buffer)
        finally:
            self._release(buffer, slot)
        if follow_up is not None:
            follow_up()
