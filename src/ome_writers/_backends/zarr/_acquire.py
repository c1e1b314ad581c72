"""OME-Zarr through acquire-zarr.

acquire-zarr appends frames to each array in its storage order and buffers,
compresses (in its own thread pool) and writes whole chunks itself, so the
shared block buffer is not used. Frames arrive in acquisition order: when the
storage order differs, a frame that comes early waits in a reorder buffer
until every frame before it in storage order has been appended. acquire-zarr
copies each frame on ``append``, so the caller's buffer is never kept.
Skipped frames, and at close the gaps before frames still kept, are
appended as zeros, many frames per call (acquire-zarr's cost is per call and
per chunk). A frame kept past a gap of more than ``MAX_CLOSE_GAP`` frames is
not: it is written after acquire-zarr has closed, by zarr-python or
tensorstore, which write only its chunk (acquire-zarr would write every chunk
of the gap).

Its arrays are created as plain arrays (``is_ngff=False``) at the paths the
shared layer chose; the shared layer writes every group, again after
``close()``, because acquire-zarr resets parent group attributes when it
closes.

Array metadata of an unbounded first axis. acquire-zarr (0.10) writes an
array's ``zarr.json`` itself, from its own threads and in place (no rename):
after each whole shard row along the first axis has been appended, with the
shape of the whole shard rows so far, and at close, with the final shape (a
partly filled last step rounded up). It has no call to write it at other
times. So this engine writes it too, as acquire-zarr does (same codecs, chunk
grid, dimension names, fill value and empty attributes; each file replaced
atomically, ``ShapeKeeper``):

- at open, with a first axis of 0, so the array exists from the start;
- when a frame starts a new step, for every array (the rule of the other
  engines): the shape covers every frame written, and frames acquire-zarr has
  not written yet read as the fill value. Only the frames that start a step
  pay for it (one file replacement per array);
- again whenever one of acquire-zarr's own rewrites, which can land after a
  newer step has begun, shows a smaller shape. The keeper knows which
  rewrites are due and looks for them from a thread, off the frame path.

One exception: when a shard spans several chunks along an axis other than Y
and X (``shard_size_chunks`` > 1 on t, c, z, ...), acquire-zarr writes each
chunk into the shard file as it completes and the shard index only once the
shard is full, and until then the file cannot be read (a checksum mismatch),
so such arrays keep acquire-zarr's own shape, whole shard rows, after the one
written at open. Either way a reader may fail on a shard at the instant
acquire-zarr writes it (its chunk files are not written atomically); reading
again succeeds. At close the keeper stops before acquire-zarr's final write,
which rewrites the file in place: the final ``zarr.json`` is acquire-zarr's,
except that a bounded array closed early gets its declared first axis back
(acquire-zarr sizes it by the steps it was given; the frames never written
read as the fill value, as with the other engines).

Live reads: acquire-zarr cannot be read back while it streams (chunks are
written when complete, in its own threads, some time after ``append``), so
while the stream is open, reads come from an in-memory copy of the frames in
storage order, kept up to ``MAX_MIRROR_BYTES`` in all. Past that, reading
during acquisition raises ``RuntimeError``; after ``close()`` reads come from
disk (through zarr-python or tensorstore, whichever is installed).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import sys
import threading
from typing import TYPE_CHECKING, Any

import acquire_zarr as aqz
import numpy as np

from ome_writers._backends._base import check_zero_fill
from ome_writers._backends._plane_reader import PlaneReader
from ome_writers._backends.zarr._common import (
    ZarrBackendBase,
    write_error,
)
from ome_writers._backends.zarr._shard_rows import (
    CHECK_INTERVAL_S,
    REMOTE_CHECK_INTERVAL_S,
    ShardRows,
    ShardWatcher,
)
from ome_writers._util import replace_file

if TYPE_CHECKING:
    from pathlib import Path

    from ome_writers._backends._base import FrameMetadata
    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

MAX_MIRROR_BYTES = 1024**3
#: zeros appended per acquire-zarr call when filling a gap
ZERO_BATCH_BYTES = 16 * 1024**2
#: a longer gap before a kept frame at close is not filled with zeros: the
#: frame is written after close by zarr-python or tensorstore (see
#: ``_append_remaining``)
MAX_CLOSE_GAP = 256
#: seconds between two looks at an array whose zarr.json acquire-zarr has yet to rewrite
SHAPE_CHECK_S = 0.05

_logger = logging.getLogger(__name__)

_KINDS = {
    "time": aqz.DimensionType.TIME,
    "channel": aqz.DimensionType.CHANNEL,
    "space": aqz.DimensionType.SPACE,
}


class ShapeKeeper:
    """Keeps the first axis in each array's ``zarr.json`` at a given extent.

    ``grow`` writes every array's file. acquire-zarr rewrites a file itself
    once it has a whole shard row (``rolled_over`` says a rewrite is due); one
    that lands after ``grow`` would shrink the shape, so a thread reads each
    file with a rewrite due every ``SHAPE_CHECK_S`` and writes it again when
    it shows less. acquire-zarr writes in order, so once its latest due
    rewrite has been read, no older one can follow. The files written here
    end with a newline and acquire-zarr's do not: every rewrite shows in the
    bytes, even one that says the same.
    """

    def __init__(self, array_paths: list[Path], document: dict[str, Any]) -> None:
        self._paths = [path / "zarr.json" for path in array_paths]
        self._document = document
        count = len(array_paths)
        self._extents = [0] * count
        self._written = [b""] * count
        self._due = [0] * count  # extent of acquire-zarr's latest rewrite to come
        self._seen = [0] * count  # largest extent read back from acquire-zarr
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failure: tuple[Path, Exception] | None = None
        self._thread = threading.Thread(
            target=self._run, name="ome-writers-zarr-shapes", daemon=True
        )

    def start(self) -> None:
        """Write every file with an empty first axis and start watching."""
        self.grow(0)
        self._thread.start()

    def grow(self, extent0: int) -> None:
        """Write every array's ``zarr.json`` with ``extent0`` along the first axis."""
        if self._failure is not None:  # raised once; the thread goes on
            (path, exc), self._failure = self._failure, None
            raise write_error(path, "keep the shape of", exc) from exc
        with self._lock:
            for position, path in enumerate(self._paths):
                self._extents[position] = extent0
                try:
                    self._write(position)
                except OSError as exc:
                    raise write_error(path, "write", exc) from exc

    def rolled_over(self, position: int, extent0: int) -> None:
        """acquire-zarr will rewrite this array's file, with ``extent0``."""
        self._due[position] = extent0
        self._wake.set()

    def stop(self) -> None:
        """Stop writing (before acquire-zarr's final write, at close)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _write(self, position: int) -> None:
        self._written[position] = write_array_json(
            self._paths[position], self._document, self._extents[position]
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            due = [p for p, (d, s) in enumerate(zip(self._due, self._seen)) if d > s]
            if not due:
                self._wake.wait()
                self._wake.clear()
                continue
            if self._stop.wait(SHAPE_CHECK_S):
                return
            for position in due:
                try:
                    with self._lock:
                        self._check(position)
                except Exception as exc:  # raised once by the next grow(); retried
                    if self._failure is None:
                        _logger.warning(
                            "cannot keep %r at its shape: %r (will retry)",
                            str(self._paths[position]),
                            exc,
                        )
                    self._failure = (self._paths[position], exc)

    def _check(self, position: int) -> None:
        """Read the file; write it again if acquire-zarr's shape is smaller."""
        try:
            data = self._paths[position].read_bytes()
        except FileNotFoundError:
            return
        if data == self._written[position]:
            return
        try:
            extent0 = int(json.loads(data)["shape"][0])
        except (ValueError, LookupError, TypeError):
            return  # read while acquire-zarr rewrote it in place: look again
        self._seen[position] = max(self._seen[position], extent0)
        if extent0 < self._extents[position]:
            self._write(position)
        else:
            self._written[position] = data


class AcquireZarrBackend(ZarrBackendBase):
    """OME-Zarr v0.5 written with acquire-zarr."""

    def __init__(self, settings: AcquisitionSettings, router: FrameRouter) -> None:
        super().__init__(settings, router)
        npos = router.num_positions
        self._stream: Any = None
        self._keys: list[str] = []
        self._next = [0] * npos
        self._pending: list[dict[int, np.ndarray]] = [{} for _ in range(npos)]
        self._zeros_frame: np.ndarray | None = None
        self._frame_bytes = math.prod(self.frame_shape) * self.dtype.itemsize
        self._mirror: list[np.ndarray] | None = None
        self._mirror_rows = 0
        self._closed = False
        self._readers: list[Any] | None = None
        self._per_step = router.frames_per_position_step
        self._shapes: ShapeKeeper | None = None
        self._grow_offset = sys.maxsize  # a frame from here on starts a step
        self._rollover_frames = 0  # acquire-zarr rewrites zarr.json every so many
        self._recovering = False
        #: frames given back by ``recover``, written after close (position,
        #: storage offset, frame)
        self._recovered: list[tuple[int, int, np.ndarray]] = []
        # the journal: frames keep a slot until their shard row is whole
        self._watcher: ShardWatcher | None = None
        self._row_frames = self._shard_shape()[0] * self._per_step
        self._row_slots: list[dict[int, list[int]]] = [{} for _ in range(npos)]
        self._slots_lock = threading.Lock()

    @property
    def _zeros(self) -> np.ndarray:
        """A frame of zeros, made on first use (a frame may be gigabytes)."""
        if self._zeros_frame is None:
            zeros = np.zeros(self.frame_shape, self.dtype)
            zeros.flags.writeable = False
            self._zeros_frame = zeros
        return self._zeros_frame

    # --------------------------------------------------------------- opening

    def _open_engine(self) -> None:
        assert self.layout is not None
        dims = self._dimensions()
        compression = self._compression()
        self._keys = [node.array_path for node in self.layout.images]
        arrays = [
            aqz.ArraySettings(
                output_key=key,
                dimensions=dims,
                data_type=self.dtype,
                compression=compression,
            )
            for key in self._keys
        ]
        store_path, s3 = self.store.acquire_target()
        target = (
            {"store_path": store_path}
            if s3 is None
            else {"store_path": store_path, "s3": s3}
        )
        try:
            self._stream = aqz.ZarrStream(aqz.StreamSettings(arrays=arrays, **target))
        except Exception as exc:
            raise write_error(
                self.store.describe(), "create acquire-zarr arrays in", exc
            ) from exc
        self._init_mirror()
        if self.router.is_unbounded:
            self._start_shapes()
        else:
            # acquire-zarr writes a bounded array's zarr.json only once a shard
            # row is done: the array exists from the start, as in other engines
            for path in self.array_paths:
                meta = path / "zarr.json"
                try:
                    self._put_array_json(
                        meta, self._array_document(), self.geometry.shape[0]
                    )
                except OSError as exc:
                    raise write_error(meta, "write", exc) from exc

    def _shard_shape(self) -> tuple[int, ...]:
        """The shard shape acquire-zarr writes: a whole number of chunks."""
        geometry = self.geometry
        return tuple(
            chunk * max(block // chunk, 1)
            for chunk, block in zip(geometry.chunks, geometry.block)
        )

    def _dimensions(self) -> list[Any]:
        geometry = self.geometry
        out = []
        for name, dim_type, size, chunk, shard in zip(
            self.dimension_names,
            [d.type for d in self._storage_dims()],
            geometry.shape,
            geometry.chunks,
            self._shard_shape(),
        ):
            out.append(
                aqz.Dimension(
                    name=name,
                    kind=_KINDS.get(dim_type or "other", aqz.DimensionType.OTHER),
                    array_size_px=size,
                    chunk_size_px=chunk,
                    shard_size_chunks=shard // chunk,
                )
            )
        return out

    def _storage_dims(self) -> list[Any]:
        by_name = {d.name: d for d in self.settings.dimensions}
        return [by_name[n] for n in self.dimension_names]

    def _compression(self) -> Any:
        name = self.settings.compression
        if name is None:
            return None
        if name == "zstd":
            return aqz.CompressionSettings(
                # present in acquire-zarr 0.10, missing from its type stubs
                compressor=aqz.Compressor.ZSTD,  # type: ignore[attr-defined]
                codec=aqz.CompressionCodec.ZSTD,  # type: ignore[attr-defined]
                level=1,
                shuffle=0,
            )
        codec = {"blosc-zstd": aqz.CompressionCodec.BLOSC_ZSTD}.get(
            name, aqz.CompressionCodec.BLOSC_LZ4
        )
        return aqz.CompressionSettings(
            compressor=aqz.Compressor.BLOSC1,
            codec=codec,
            level=1 if name == "blosc-zstd" else 5,
            shuffle=1,
        )

    def _array_document(self) -> dict[str, Any]:
        """An array's ``zarr.json`` as acquire-zarr writes it (always sharded)."""
        return {
            **self.array_metadata(self._shard_shape()),
            "attributes": {},
            "node_type": "array",
            "storage_transformers": [],
            "zarr_format": 3,
        }

    def _start_shapes(self) -> None:
        """Write each array's ``zarr.json`` now, and on every step if readable."""
        shards = self._shard_shape()
        nidx = len(shards) - 2
        keeper = ShapeKeeper(self.array_paths, self._array_document())
        if shards[:nidx] != self.geometry.chunks[:nidx]:
            keeper.grow(0)  # acquire-zarr's own shape from its first shard row on
            return
        self._shapes = keeper
        self._grow_offset = 0
        self._rollover_frames = self._per_step * shards[0]
        keeper.start()

    def _init_mirror(self) -> None:
        """One step of every position now; ``_keep`` grows it as frames come."""
        npos = self.router.num_positions
        rows = self.router.frames_per_position_step
        if not self.router.is_unbounded:
            rows = min(rows, math.prod(self.router.storage_shape()))
        if npos * rows * self._frame_bytes <= MAX_MIRROR_BYTES:
            self._mirror_rows = rows
            self._mirror = [
                np.zeros((rows, *self.frame_shape), self.dtype) for _ in range(npos)
            ]

    def _abort_engine(self) -> None:
        if self._shapes is not None:
            self._shapes.stop()
        if self._watcher is not None:
            self._watcher.stop()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    # --------------------------------------------------------------- writing

    def write(
        self, frame_number: int, frame: np.ndarray, metadata: FrameMetadata | None
    ) -> None:
        """Append the frame, or keep it until it is next in storage order."""
        position, offset = self.router.flat_offset(frame_number)
        if self._recovering:
            self._recovered.append((position, offset, np.array(frame, copy=True)))
            self.record_frame(frame_number, metadata)
            return
        if self.frame_journal is not None:
            self._journal_frame(position, offset, frame_number, frame)
        if offset >= self._grow_offset:
            self._grow(offset // self._per_step + 1)
        kept = self._keep(position, offset, frame)
        if self.levels is not None:  # levels: written by another engine
            level0 = kept if kept is not None else np.array(frame, copy=True)
            index = self.router.locate(frame_number)[1]
            self.levels.submit_frame(position, index, level0)
        if offset == self._next[position]:
            self._append(position, frame)
            self._drain(position)
        else:
            self._pending[position][offset] = (
                kept if kept is not None else np.array(frame, copy=True)
            )
        self.record_frame(frame_number, metadata)

    def skip(self, first_frame: int, count: int) -> None:
        """Skipped frames are appended (or kept) as zeros, in batches."""
        check_zero_fill(count, self._frame_bytes, "acquire-zarr")
        zeros = self._zeros
        touched = set()
        for n in range(first_frame, first_frame + count):
            position, offset = self.router.flat_offset(n)
            if offset >= self._grow_offset:
                self._grow(offset // self._per_step + 1)
            self._pending[position][offset] = zeros
            touched.add(position)
        for position in sorted(touched):
            self._drain(position)

    def _grow(self, extent0: int) -> None:
        """Write every array's ``zarr.json`` with ``extent0`` steps."""
        assert self._shapes is not None
        self._shapes.grow(extent0)
        self._grow_offset = extent0 * self._per_step

    def _keep(self, position: int, offset: int, frame: np.ndarray) -> np.ndarray | None:
        """Copy the frame into the live-read mirror; the kept row, or None."""
        mirror = self._mirror
        if mirror is None:
            return None
        if offset >= self._mirror_rows:
            rows = max(offset + 1, 2 * self._mirror_rows)
            if len(mirror) * rows * self._frame_bytes > MAX_MIRROR_BYTES:
                self._mirror = None
                return None
            grown = []
            for old in mirror:
                new = np.zeros((rows, *self.frame_shape), self.dtype)
                new[: len(old)] = old
                grown.append(new)
            self._mirror, self._mirror_rows = grown, rows
            mirror = grown
        row: np.ndarray = mirror[position][offset]
        row[...] = frame
        return row

    def _journal_frame(
        self, position: int, offset: int, frame_number: int, frame: np.ndarray
    ) -> None:
        """Copy the frame into a journal slot until its shard row is whole."""
        if self._watcher is None:
            rows = [self._shard_rows(path) for path in self.array_paths]
            interval = (
                REMOTE_CHECK_INTERVAL_S if self.store.is_remote else CHECK_INTERVAL_S
            )
            self._watcher = ShardWatcher(rows, self._release_row, interval_s=interval)
        slot = self.copy_to_journal(frame_number, frame)
        with self._slots_lock:
            row = offset // self._row_frames
            self._row_slots[position].setdefault(row, []).append(slot)

    def _shard_rows(self, array_path: Path) -> ShardRows:
        """The shards of the array at ``array_path``, by row (files or objects)."""
        return ShardRows(
            self.store,
            self.key_of(array_path),
            self.geometry.shape,
            self._shard_shape(),
            self.geometry.chunks,
        )

    def _release_row(self, position: int, row: int) -> None:
        """Every shard file of ``row`` is whole: its frames leave the journal."""
        with self._slots_lock:
            slots = self._row_slots[position].pop(row, [])
        if self.journal_frames is not None:
            for slot in slots:
                self.journal_frames.release(slot)

    def _append(self, position: int, data: np.ndarray, frames: int = 1) -> None:
        """Append ``frames`` frames (``data`` holds them back to back)."""
        try:
            self._stream.append(np.ascontiguousarray(data), key=self._keys[position])
        except Exception as exc:
            raise write_error(
                self.where(self.array_paths[position]), "append a frame to", exc
            ) from exc
        before = self._next[position]
        self._next[position] += frames
        if self._watcher is not None:
            self._watcher.given(position, self._next[position] // self._row_frames)
        shapes, every = self._shapes, self._rollover_frames
        if shapes is not None and self._next[position] // every > before // every:
            boundary = self._next[position] // every * every
            shapes.rolled_over(position, boundary // self._per_step)

    def _append_zeros(self, position: int, frames: int) -> None:
        """Append ``frames`` frames of zeros, many per call (the per-call cost
        of acquire-zarr dominates for small frames)."""
        per_call = max(1, min(frames, ZERO_BATCH_BYTES // max(self._frame_bytes, 1)))
        block = np.zeros((per_call, *self.frame_shape), self.dtype)
        while frames > 0:
            n = min(frames, per_call)
            self._append(position, block[:n], n)
            frames -= n

    def _drain(self, position: int) -> None:
        """Append the kept frames that are next in storage order."""
        pending = self._pending[position]
        zeros = self._zeros_frame
        while pending and self._next[position] in pending:
            first = self._next[position]
            frame = pending[first]
            if frame is zeros:
                run = 1
                while pending.get(first + run) is zeros:
                    run += 1
                self._append_zeros(position, run)
                for offset in range(first, first + run):
                    del pending[offset]
            else:
                self._append(position, frame)
                del pending[first]

    # --------------------------------------------------------------- reading

    def position_data(self, position_index: int, frames_written: int) -> Any:
        """The mirror while streaming; the arrays on disk after close."""
        shape = self.logical_shape(frames_written)
        if self._closed:
            return self._reader(position_index)
        mirror = self._mirror
        if mirror is None:
            raise RuntimeError(
                "acquire-zarr output cannot be read back during acquisition past "
                f"{MAX_MIRROR_BYTES:,} bytes (acquire-zarr writes whole chunks "
                "itself); read it after close(), or use the tensorstore or "
                "zarr-python backend for live access"
            )
        rows = mirror[position_index]  # this reader keeps it across growth and close

        def read(flat: np.ndarray) -> list[np.ndarray]:
            return [rows[r] if r < len(rows) else self._zeros for r in flat.tolist()]

        return PlaneReader(shape[:-2], self.frame_shape, self.dtype, read)

    def _reader(self, position: int) -> Any:
        if self._readers is None:
            self._readers = [self._open_array(path) for path in self.array_paths]
        return self._readers[position]

    # --------------------------------------------------------------- closing

    def _reopen_engine(self) -> None:
        """Remove the shard files a killed acquire-zarr left torn.

        acquire-zarr cannot append to arrays on disk, so the journaled frames
        are written after the arrays get their final extent, by zarr-python
        or tensorstore (``_close_engine``). A shard file whose index is not
        whole belongs to a shard row the journal still holds every frame of
        (``_shard_rows``), so it is removed and written again from there.
        """
        self._recovering = True
        for path in self.array_paths:  # none on S3: objects are never partial
            for torn in self._shard_rows(path).torn_shards():
                torn.unlink()

    def _close_engine(self, frames_written: int) -> None:
        """Append what is pending, let acquire-zarr finish, then read from disk.

        Live reads keep coming from the mirror until the arrays on disk are
        final (acquire-zarr's last ``zarr.json`` and the declared extent
        restored): a reader opened earlier would keep an interim shape.
        """
        stream = self._stream
        if self._watcher is not None:
            self._watcher.stop()  # the journal goes once close succeeds
        if stream is None:
            if self._recovering:
                self._set_final_extent(frames_written)
                self._write_after_close(self._recovered, frames_written)
                self._recovered = []
            return
        try:
            try:
                after_close = self._append_remaining()
            finally:
                self._stream = None
                if self._shapes is not None:
                    self._shapes.stop()  # acquire-zarr's final zarr.json comes last
                try:
                    stream.close()
                except Exception as exc:
                    raise write_error(
                        self.store.describe(), "finish acquire-zarr output in", exc
                    ) from exc
            # every array ends with the declared extent or the steps started,
            # as with the other engines (acquire-zarr sizes each array by its
            # own frames)
            self._set_final_extent(frames_written)
            self._write_after_close(after_close, frames_written)
        finally:
            self._closed = True
            self._mirror = None

    def _append_remaining(self) -> list[tuple[int, int, np.ndarray]]:
        """Append the kept frames, zeros between them; what waits for close.

        A frame kept past a gap of more than ``MAX_CLOSE_GAP`` frames (an
        acquisition stopped early, storage order not acquisition order) is
        not appended after that many zeros (acquire-zarr would write every
        chunk of them): it is returned, to be written into the closed array
        by another engine, which writes only its chunk.
        """
        after_close: list[tuple[int, int, np.ndarray]] = []
        can_write_later = _writer_available()
        for position, pending in enumerate(self._pending):
            self._drain(position)
            for offset in sorted(pending):
                gap = offset - self._next[position]
                if gap > MAX_CLOSE_GAP and can_write_later:
                    after_close += [(position, o, pending[o]) for o in sorted(pending)]
                    pending.clear()
                    break
                self._append_zeros(position, gap)
                self._drain(position)
        return after_close

    def _write_after_close(
        self, frames: list[tuple[int, int, np.ndarray]], frames_written: int
    ) -> None:
        """Write frames kept past a long gap into the closed arrays."""
        if not frames:
            return
        counts = list(self.geometry.shape[: len(self.geometry.shape) - 2])
        if self.router.is_unbounded:
            counts[0] = self.router.steps_started(frames_written)
        arrays: dict[int, Any] = {}
        for position, offset, frame in frames:
            path = self.array_paths[position]
            try:
                if position not in arrays:
                    arrays[position] = self._open_array(path, writable=True)
                index = tuple(int(i) for i in np.unravel_index(offset, counts))
                write_region(arrays[position], index, frame)
            except Exception as exc:
                raise write_error(
                    self.where(path), "write a frame after close to", exc
                ) from exc

    def _set_final_extent(self, frames_written: int) -> None:
        """The first axis of a closed array: declared, or the steps begun."""
        try:
            if not self.router.is_unbounded:
                self._restore_declared_extent()
                return
            steps = self.router.steps_started(frames_written)
            for path in self.array_paths:
                meta = path / "zarr.json"
                try:
                    document = self._read_array_json(meta)
                except FileNotFoundError:
                    document = self._array_document()
                self._put_array_json(meta, document, steps)
        finally:
            self._closed = True

    def _read_array_json(self, meta: Path) -> Any:
        """An array's ``zarr.json`` (file or object); ``FileNotFoundError``."""
        if self.store.is_remote:
            return json.loads(self.store.read_bytes(self.key_of(meta)))
        return json.loads(meta.read_bytes())

    def _put_array_json(
        self, meta: Path, document: dict[str, Any], extent0: int
    ) -> None:
        """``write_array_json``, or one PUT of the same bytes on S3."""
        if not self.store.is_remote:
            write_array_json(meta, document, extent0)
            return
        document = {**document, "shape": [extent0, *document["shape"][1:]]}
        data = (json.dumps(document, sort_keys=True) + "\n").encode()
        self.store.write_bytes(self.key_of(meta), data)

    def _open_array(self, path: Path, *, writable: bool = False) -> Any:
        """``open_array`` of a closed array, through zarr-python on S3."""
        if not self.store.is_remote:
            return open_array(path, writable=writable)
        import zarr

        store = self.store.zarr_store(self.key_of(path), read_only=not writable)
        return zarr.open_array(store, mode="r+" if writable else "r")

    def _restore_declared_extent(self) -> None:
        """Give a bounded array closed early its declared first axis again.

        acquire-zarr sizes each array by the steps it was given, and writes no
        ``zarr.json`` at all for an array that was given none (no frame, or a
        position never reached); the other engines keep the declared shape,
        whose unwritten frames read as the fill value (their chunks are simply
        absent), and so does this one.
        """
        declared = self.geometry.shape[0]
        for path in self.array_paths:
            meta = path / "zarr.json"
            try:
                try:
                    document = self._read_array_json(meta)
                    written = int(document["shape"][0])
                except FileNotFoundError:  # no frame reached this array
                    document, written = self._array_document(), -1
                if written < declared:
                    self._put_array_json(meta, document, declared)
            except (OSError, ValueError, LookupError, TypeError) as exc:
                raise write_error(meta, "restore the declared shape in", exc) from exc


def write_region(array: Any, index: tuple[int, ...], frame: np.ndarray) -> None:
    """Write one frame at ``index`` of an array from ``open_array``."""
    if hasattr(array, "write"):  # tensorstore
        array[index].write(frame).result()
    else:
        array[index] = frame


def write_array_json(path: Path, document: dict[str, Any], extent0: int) -> bytes:
    """Replace an array's ``zarr.json`` with ``document`` at ``extent0``; its bytes.

    Compact: json's C serializer leaves no reference cycles for the garbage
    collector, whose passes stop every thread (this runs once per step). The
    trailing newline tells these files from acquire-zarr's own.
    """
    document = {**document, "shape": [extent0, *document["shape"][1:]]}
    data = (json.dumps(document, sort_keys=True) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, data)
    return data


def _writer_available() -> bool:
    """True when zarr-python or tensorstore can write into a closed array."""
    return any(importlib.util.find_spec(m) is not None for m in ("zarr", "tensorstore"))


def open_array(path: Any, *, writable: bool = False) -> Any:
    """An array for a finished Zarr v3 array, via zarr or tensorstore."""
    if importlib.util.find_spec("zarr") is not None:
        import zarr
        from zarr.storage import LocalStore

        store = LocalStore(path, read_only=not writable)
        return zarr.open_array(store, mode="r+" if writable else "r")
    if importlib.util.find_spec("tensorstore") is not None:
        import tensorstore as ts

        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
        return ts.open(spec, open=True, read=True, write=writable).result()
    raise RuntimeError(
        f"cannot read {str(path)!r} back: acquire-zarr writes only; install "
        "'ome-writers[zarr]' or 'ome-writers[tensorstore]' to read it"
    )
