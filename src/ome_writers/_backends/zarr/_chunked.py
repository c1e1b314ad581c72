"""Engines that write regions (tensorstore, zarr-python): buffering and reading.

Frames arrive one at a time, but a chunk or shard may span several frames
(e.g. a z chunk of 16). Writing each frame into it would rewrite the whole
chunk (or shard) once per frame, so frames are copied into a per-block buffer
(a block being one shard, or one chunk without sharding, over the non-frame
axes, and the full frame over Y/X) and the block is handed to the engine once
it is complete. The copy is also what lets the caller reuse its frame buffer
at once, so no other copy is made. When a block is one frame, the frame goes
to ``write_frame``: by default a copy handed over like a block, but an engine
that can read the caller's buffer itself and say when it is done with it
(tensorstore's copy future) writes from it directly and ``write`` waits for
that, which saves a copy of every frame into freshly allocated memory.

Memory is bounded: past ``MAX_BUFFER_BYTES`` of open blocks, the oldest block
is written frame by frame (correct, just slower: the engine reads and rewrites
its chunk), and its later frames are written one by one. Handed-over writes
run in the engine's own threads; past ``MAX_INFLIGHT_BYTES`` in flight,
``write`` waits for the oldest.

Errors of background writes are kept and raised (as ``WriteError`` naming the
array and the cause) from the next ``write``, ``skip`` or ``close``; after one,
every later write fails the same way.

Live reads (``position_data``) wait for writes in flight, read the engine's
array, and overlay the blocks still buffered.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ome_writers._backends.zarr._common import ZarrBackendBase, write_error
from ome_writers._errors import WriteError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ome_writers._backends._base import FrameMetadata
    from ome_writers._backends.zarr._direct import FrameFileLayout
    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

MAX_BUFFER_BYTES = 512 * 1024**2
MAX_INFLIGHT_BYTES = 256 * 1024**2

_logger = logging.getLogger(__name__)

Index = tuple[int, ...]


class WriteHandle(Protocol):
    """What an engine returns for a started write."""

    def done(self) -> bool:
        """True once the write has finished (or failed)."""
        ...

    def result(self) -> Any:
        """Wait for the write; raise its error."""
        ...


class _Block:
    __slots__ = ("data", "expected", "filled", "frames", "mask", "origin")

    def __init__(self, origin: Index, data: np.ndarray, frames: np.ndarray) -> None:
        self.origin = origin
        self.data = data
        #: frame number of each entry (acquisition order)
        self.frames = frames
        #: entries written or skipped
        self.mask = np.zeros(data.shape[:-2], bool)
        self.filled = 0
        self.expected = frames.size

    def mark(self, hit: np.ndarray) -> None:
        """Count the entries ``hit`` (a boolean array) as done (zeros)."""
        hit &= ~self.mask
        self.mask |= hit
        self.filled += int(np.count_nonzero(hit))


class BlockBuffer:
    """Collects frames into blocks and hands each complete block to ``flush``.

    Parameters
    ----------
    block
        Block shape over the non-frame storage axes.
    counts
        Storage shape over the same axes; the first may be None (unbounded).
    flush
        ``flush(position, origin, data)``: write ``data`` (non-frame axes then
        the frame) at ``origin``; the buffer gives up ``data``.
    write_frame
        ``write_frame(position, index, frame)``: write one frame that is not
        buffered; ``frame`` is the caller's, not to be kept after returning.
    frame_numbers
        ``frame_numbers(position, origin, extent)``: the frame numbers of a
        block's entries (``FrameRouter.frame_numbers``).

    Notes
    -----
    Frames arrive in acquisition order, so when a block opens, its entries
    with a lower frame number than the frame that opened it were skipped
    (had one been written, the block would be open already). Those count as
    done at once, and a skip only visits the blocks open at the time: a skip
    of 10**9 frames costs what a short one does.
    ``mark_passed = False`` (recovery, where frames arrive out of order
    from the journal) turns that off.
    """

    def __init__(
        self,
        block: Index,
        counts: tuple[int | None, ...],
        frame_shape: tuple[int, int],
        dtype: np.dtype,
        flush: Callable[[int, Index, np.ndarray], None],
        write_frame: Callable[[int, Index, np.ndarray], None],
        frame_numbers: Callable[[int, Index, Index], np.ndarray],
        max_bytes: int = MAX_BUFFER_BYTES,
    ) -> None:
        self._block = block
        self._counts = counts
        self._frame_shape = frame_shape
        self._dtype = dtype
        self._flush = flush
        self._write_frame = write_frame
        self._frame_numbers = frame_numbers
        self._max_bytes = max_bytes
        self.mark_passed = True
        self._single = all(b == 1 for b in block)
        self._blocks: dict[tuple[int, Index], _Block] = {}
        self._spilled: set[tuple[int, Index]] = set()
        self._bytes = 0
        self.lock = threading.Lock()

    @property
    def is_single_frame(self) -> bool:
        """Every block is one frame: nothing is ever buffered."""
        return self._single

    def put(
        self, position: int, index: Index, frame: np.ndarray, frame_number: int
    ) -> None:
        """Add frame ``frame_number``, at ``index`` of ``position``."""
        if self._single:
            self._write_frame(position, index, frame)
            return
        key = (position, tuple(i // b for i, b in zip(index, self._block)))
        if key in self._spilled:
            self._write_frame(position, index, frame)
            return
        block = self._blocks.get(key)
        if block is None:
            block = self._new_block(key)
            if self.mark_passed:
                block.mark(block.frames < frame_number)
        local = tuple(i - o for i, o in zip(index, block.origin))
        with self.lock:
            block.data[local] = frame
        if not block.mask[local]:
            block.mask[local] = True
            block.filled += 1
        self._flush_if_complete(key, block)

    def skip(self, first_frame: int, count: int) -> None:
        """Count frames ``first_frame`` to ``first_frame + count`` as zeros.

        Only open blocks are visited; blocks opened later count their skipped
        frames when they open (see the notes).
        """
        if self._single:
            return
        stop = first_frame + count
        for key, block in list(self._blocks.items()):
            block.mark((block.frames >= first_frame) & (block.frames < stop))
            self._flush_if_complete(key, block)

    def _flush_if_complete(self, key: tuple[int, Index], block: _Block) -> None:
        if block.filled < block.expected:
            return
        with self.lock:
            del self._blocks[key]
            self._bytes -= block.data.nbytes
        self._flush(key[0], block.origin, block.data)

    def _new_block(self, key: tuple[int, Index]) -> _Block:
        origin = tuple(k * b for k, b in zip(key[1], self._block))
        extent = tuple(
            b if c is None else min(b, c - o)
            for b, c, o in zip(self._block, self._counts, origin)
        )
        nbytes = math.prod(extent + self._frame_shape) * self._dtype.itemsize
        while self._blocks and self._bytes + nbytes > self._max_bytes:
            self._spill_oldest()
        frames = self._frame_numbers(key[0], origin, extent)
        block = _Block(
            origin, np.zeros(extent + self._frame_shape, self._dtype), frames
        )
        with self.lock:
            self._blocks[key] = block
            self._bytes += nbytes
        return block

    def _spill_oldest(self) -> None:
        key = next(iter(self._blocks))
        with self.lock:
            block = self._blocks.pop(key)
            self._bytes -= block.data.nbytes
        self._spilled.add(key)
        ones = (1,) * len(block.origin)
        for local in zip(*np.nonzero(block.mask)):
            index = tuple(int(o + i) for o, i in zip(block.origin, local))
            self._flush(
                key[0], index, block.data[local].reshape(ones + self._frame_shape)
            )

    def flush_all(self, extent0: int | None) -> None:
        """Write every open block, cut to ``extent0`` along the first axis."""
        while self._blocks:
            key = next(iter(self._blocks))
            with self.lock:
                block = self._blocks.pop(key)
                self._bytes -= block.data.nbytes
            data = block.data
            if extent0 is not None:
                data = data[: max(extent0 - block.origin[0], 0)]
            if data.size:
                self._flush(key[0], block.origin, data)

    def fill_unfilled(
        self,
        read: Callable[[int, tuple[slice, ...]], np.ndarray],
        extent0: int | None,
    ) -> None:
        """Copy into every open block the entries no frame or skip filled,
        from ``read(position, region)`` (what the output holds there).

        For recovery: a block the journal gave back only some frames of was
        written whole by the killed writer, which was then killed while it
        freed the block's journal slots, so the frames no longer in the
        journal are in the output; writing the block with zeros for them
        would erase them. Entries past ``extent0`` along the first axis (the
        array's current extent, None if bounded) stay zeros.
        """
        for (position, _), block in list(self._blocks.items()):
            if block.filled >= block.expected:
                continue
            shape = list(block.data.shape[: len(block.origin)])
            if extent0 is not None:
                shape[0] = min(shape[0], max(extent0 - block.origin[0], 0))
            if not all(shape):
                continue
            region = tuple(slice(o, o + n) for o, n in zip(block.origin, shape))
            local = tuple(slice(0, n) for n in shape)
            missing = ~block.mask[local]
            existing = read(position, region)
            with self.lock:
                block.data[local][missing] = existing[missing]

    def snapshot(
        self, position: int, selections: list[np.ndarray]
    ) -> list[tuple[tuple[np.ndarray, ...], np.ndarray]]:
        """Buffered pixels inside ``selections``: (output indices, values) pairs."""
        out = []
        nidx = len(selections) - 2
        with self.lock:
            for (p, _), block in self._blocks.items():
                if p != position:
                    continue
                dst, src = [], []
                for axis, sel in enumerate(selections):
                    if axis < nidx:
                        low = block.origin[axis]
                        high = low + block.data.shape[axis]
                        hit = np.nonzero((sel >= low) & (sel < high))[0]
                        dst.append(hit)
                        src.append(sel[hit] - low)
                    else:
                        dst.append(np.arange(len(sel)))
                        src.append(sel)
                if all(len(d) for d in dst):
                    out.append((np.ix_(*dst), block.data[np.ix_(*src)]))
        return out


class LiveArray:
    """Read-only array-like over one position: the engine's array plus buffers."""

    def __init__(
        self, backend: ChunkedZarrBackend, position: int, shape: tuple[int, ...]
    ) -> None:
        self._backend = backend
        self._position = position
        self.shape = shape
        self.dtype = backend.dtype
        self.ndim = len(shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices: {len(key)} for {self.ndim} axes")
        key = key + (slice(None),) * (self.ndim - len(key))
        selections = []
        squeeze = []
        for axis, (k, n) in enumerate(zip(key, self.shape)):
            if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
                if not -n <= int(k) < n:
                    raise IndexError(
                        f"index {k} is out of bounds for axis {axis} with size {n}"
                    )
                selections.append(np.array([int(k) % n]))
                squeeze.append(axis)
            elif isinstance(k, slice):
                # from the slice's own bounds: the declared axis may be huge
                selections.append(np.arange(*k.indices(n), dtype=np.int64))
            else:
                raise TypeError(f"indices must be ints, slices or '...', not {k!r}")
        out = self._backend.read_selection(self._position, selections)
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[...], dtype=dtype)


class ChunkedZarrBackend(ZarrBackendBase):
    """Block buffering, growth and live reads for region-writing engines.

    Engines implement ``_create_arrays``, ``_start_write`` (returns a
    ``WriteHandle``; the data is the engine's from then on), optionally
    ``_start_write_frame`` (writes from the caller's frame and waits until the
    engine no longer reads it), ``_resize``
    (synchronous; updates the array's ``zarr.json``), ``_read`` (sees every
    finished write) and ``_finish`` (called once all writes have finished).
    """

    def __init__(self, settings: AcquisitionSettings, router: FrameRouter) -> None:
        super().__init__(settings, router)
        nidx = len(self.geometry.shape) - 2
        counts = tuple(
            None if router.is_unbounded and axis == 0 else c
            for axis, c in enumerate(self.geometry.shape[:nidx])
        )
        self.buffer = BlockBuffer(
            self.geometry.block[:nidx],
            counts,
            self.frame_shape,
            self.dtype,
            self._submit,
            self._submit_frame,
            router.frame_numbers,
        )
        self._extent0 = 0
        self._inflight: collections.deque[tuple[WriteHandle, int, int, list[int]]] = (
            collections.deque()
        )
        #: journal slots of frames not yet written, by (position, storage index)
        self._frame_slots: dict[tuple[int, Index], int] = {}
        #: opened by ``recover``: blocks are completed from the output at
        #: close, and an unbounded extent set from the frame count
        self._reopened = False
        #: the frame being written (``write`` runs one frame at a time)
        self.frame_number = 0
        self._inflight_bytes = 0
        self._inflight_lock = threading.Lock()
        self._failure: WriteError | None = None

    # ---------------------------------------------------------- engine hooks

    def _create_arrays(self, *, existing: bool = False) -> None:
        """Create the arrays (``existing``: open the ones there)."""
        raise NotImplementedError

    def _start_write(
        self, position: int, origin: Index, data: np.ndarray
    ) -> WriteHandle:
        raise NotImplementedError

    def _start_write_frame(
        self, position: int, origin: Index, frame: np.ndarray
    ) -> WriteHandle:
        """Write one frame from the caller's buffer; return once it is released.

        The default copies it (the copy is what the engine keeps).
        """
        data = np.array(frame, dtype=self.dtype, order="C", copy=True)
        return self._start_write(
            position, origin, data.reshape((1,) * len(origin) + data.shape)
        )

    def _resize(self, extent0: int, *, shrink: bool = False) -> None:
        """Set the first axis to ``extent0`` (``shrink``: it may get smaller)."""
        raise NotImplementedError

    def _read(self, position: int, region: tuple[slice, ...]) -> np.ndarray:
        raise NotImplementedError

    def _finish(self) -> None:
        """Release the engine once every write has finished; default nothing."""

    # --------------------------------------------------------------- writing

    def _open_engine(self) -> None:
        self._create_arrays()

    def _reopen_engine(self) -> None:
        self._create_arrays(existing=True)
        if self.router.is_unbounded:
            key = f"{self.key_of(self.array_paths[0])}/zarr.json"
            document = json.loads(self.store.read_bytes(key))
            self._extent0 = int(document["shape"][0])
        # journaled frames come back in order, but blocks the killed writer
        # spilled frame by frame may hold frames that are not journaled
        self.buffer.mark_passed = False
        self._reopened = True

    def write(
        self, frame_number: int, frame: np.ndarray, metadata: FrameMetadata | None
    ) -> None:
        """Buffer or hand over one frame (see the module notes)."""
        self._raise_failure()
        self._reap(wait=False)
        position, index = self.router.locate(frame_number)
        if index and index[0] >= self._extent0 and self.router.is_unbounded:
            self._grow(index[0] + 1)
        self.frame_number = frame_number
        if self.frame_journal is not None and not self._journals_itself():
            self._journal_frame(position, index, frame_number, frame)
        self.buffer.put(position, index, frame, frame_number)
        self.record_frame(frame_number, metadata)

    def _journals_itself(self) -> bool:
        """True when the engine's own buffers are journal slots (fast path)."""
        return False

    def _journal_frame(
        self, position: int, index: Index, frame_number: int, frame: np.ndarray
    ) -> None:
        """Copy the frame into a journal slot until its block is written."""
        slot = self.copy_to_journal(frame_number, frame)
        old = self._frame_slots.pop((position, index), None)
        if old is not None:  # an earlier attempt at this frame
            assert self.journal_frames is not None
            self.journal_frames.release(old)
        self._frame_slots[(position, index)] = slot

    def skip(self, first_frame: int, count: int) -> None:
        """Skipped frames are zeros in their block (or never written).

        The arrays grow once, to the last skipped frame. A block no frame was
        written to is never written (it reads as the fill value); skipped
        frames of open blocks are counted into them, and a block opened later
        counts its skipped frames when it opens (``BlockBuffer``), so a long
        skip costs what a short one does.
        """
        self._raise_failure()
        if count <= 0:
            return
        if self.router.is_unbounded:
            _, last = self.router.locate(first_frame + count - 1)
            if last and last[0] >= self._extent0:
                self._grow(last[0] + 1)
        self.buffer.skip(first_frame, count)

    def _grow(self, extent0: int) -> None:
        try:
            self._resize(extent0)
        except WriteError:
            raise
        except Exception as exc:
            raise write_error(
                self.where(self.array_paths[0].parent), "resize arrays in", exc
            ) from exc
        self._extent0 = extent0

    def _submit(self, position: int, origin: Index, data: np.ndarray) -> None:
        slots = self._slots_within(position, origin, data.shape[: len(origin)])
        self._track(position, data.nbytes, self._start_write, origin, data, slots)
        if self.levels is not None:  # the block is given up: read-only from now
            self.levels.submit_block(position, origin, data)

    def _levels_from_writer(self) -> bool:
        """True when the engine's writer threads feed the pyramid themselves."""
        return False

    def direct_frame_layout(self) -> FrameFileLayout | None:
        """Level 0's frame file layout when writer threads of ours write whole
        frame files (``_direct``), else None (the engine writes them)."""
        return None

    def encode_file(self, block: np.ndarray) -> bytes:
        """The file the engine writes for ``block`` (non-frame axes, then Y, X)
        at the origin of an array of this one's metadata, given that shape."""
        raise NotImplementedError(f"{type(self).__name__} cannot encode a probe")

    def write_at(self, position: int, index: Index, frame: np.ndarray) -> None:
        """Store one frame at a storage index: a pyramid level's planes.

        No journal and no metadata; planes may come out of acquisition order
        (``BlockBuffer.mark_passed`` must be False).
        """
        self._raise_failure()
        self._reap(wait=False)
        if index and index[0] >= self._extent0 and self.router.is_unbounded:
            self._grow(index[0] + 1)
        ones = (1,) * len(index)
        number = int(self.router.frame_numbers(position, index, ones).flat[0])
        self.frame_number = number
        self.buffer.put(position, index, frame, number)

    def _submit_frame(self, position: int, index: Index, frame: np.ndarray) -> None:
        if self.levels is not None and not self._levels_from_writer():
            # one copy, which the engine writes and the pyramid reads
            frame = np.array(frame, dtype=self.dtype, order="C", copy=True)
            self.levels.submit_frame(position, index, frame)
        nbytes = math.prod(self.frame_shape) * self.dtype.itemsize
        slot = self._frame_slots.pop((position, index), None)
        slots = [] if slot is None else [slot]
        self._track(position, nbytes, self._start_write_frame, index, frame, slots)

    def _slots_within(
        self, position: int, origin: Index, extent: tuple[int, ...]
    ) -> list[int]:
        """Take the journal slots of the frames of a block being written."""
        if not self._frame_slots:
            return []
        out = []
        for local in np.ndindex(*extent):
            index = tuple(o + i for o, i in zip(origin, local))
            slot = self._frame_slots.pop((position, index), None)
            if slot is not None:
                out.append(slot)
        return out

    def _track(
        self,
        position: int,
        nbytes: int,
        start: Callable[[int, Index, np.ndarray], WriteHandle],
        origin: Index,
        data: np.ndarray,
        slots: list[int],
    ) -> None:
        try:
            handle = start(position, origin, data)
        except Exception as exc:
            self._fail(position, exc)
            self._raise_failure()
            return
        with self._inflight_lock:
            self._inflight.append((handle, nbytes, position, slots))
            self._inflight_bytes += nbytes
        if self._inflight_bytes > MAX_INFLIGHT_BYTES:
            self._reap(wait=True)

    def _reap(self, *, wait: bool, until_empty: bool = False) -> None:
        """Collect finished writes; with ``wait``, block until under the limit."""
        while True:
            with self._inflight_lock:
                if not self._inflight:
                    return
                handle, nbytes, position, slots = self._inflight[0]
            if not handle.done() and not wait:
                return
            try:
                handle.result()
            except Exception as exc:
                self._fail(position, exc)  # the journal keeps the frames
            else:
                for slot in slots:  # written: the journal can let them go
                    assert self.journal_frames is not None
                    self.journal_frames.release(slot)
            with self._inflight_lock:
                self._inflight.popleft()
                self._inflight_bytes -= nbytes
                if not until_empty and self._inflight_bytes <= MAX_INFLIGHT_BYTES:
                    wait = False

    def _fail(self, position: int, exc: BaseException) -> None:
        if self._failure is None:
            failure = write_error(
                self.where(self.array_paths[position]), "write to", exc
            )
            failure.__cause__ = exc
            self._failure = failure

    def _raise_failure(self) -> None:
        failure = self._failure
        if failure is not None:
            error = WriteError(*failure.args)
            error.filename = failure.filename
            raise error from failure.__cause__

    # --------------------------------------------------------------- reading

    def position_data(self, position_index: int, frames_written: int) -> LiveArray:
        """Live array-like of one position (buffered frames included)."""
        return LiveArray(self, position_index, self.logical_shape(frames_written))

    def read_selection(self, position: int, selections: list[np.ndarray]) -> np.ndarray:
        """Pixels at the outer product of ``selections`` (one index array per axis)."""
        out_shape = tuple(len(s) for s in selections)
        pending = self.buffer.snapshot(position, selections)
        if not all(out_shape):
            return np.zeros(out_shape, self.dtype)
        with self._inflight_lock:
            handles = [(h, p) for h, _, p, _ in self._inflight]
        for handle, written_position in handles:
            try:
                handle.result()
            except Exception as exc:  # raised to the writer by its next call
                self._fail(written_position, exc)
        lows = [int(s.min()) for s in selections]
        region = tuple(slice(low, int(s.max()) + 1) for low, s in zip(lows, selections))
        data = np.asarray(self._read(position, region))
        out = np.array(data[np.ix_(*(s - low for s, low in zip(selections, lows)))])
        for where, values in pending:
            out[where] = values
        return out

    # --------------------------------------------------------------- closing

    def _close_engine(self, frames_written: int) -> None:
        if self._reopened and self.router.is_unbounded:
            # the killed writer may have grown the arrays for a frame whose
            # append never returned: the extent is what the count says
            steps = self.router.steps_started(frames_written)
            if steps != self._extent0:
                self._reap(wait=True, until_empty=True)
                self._resize(steps, shrink=True)
                self._extent0 = steps
        extent0 = self._extent0 if self.router.is_unbounded else None
        if self._reopened:
            self._reap(wait=True, until_empty=True)
            self.buffer.fill_unfilled(self._read_for_recovery, extent0)
        try:
            self.buffer.flush_all(extent0)
        finally:
            self._reap(wait=True, until_empty=True)
            try:
                self._finish()
            except Exception as exc:
                self._fail(0, exc)
        self._raise_failure()

    def _read_for_recovery(
        self, position: int, region: tuple[slice, ...]
    ) -> np.ndarray:
        """What the output holds in ``region``; zeros if it cannot be read.

        A chunk the killed writer left unreadable held only frames that are
        in the journal, or ones lost with it: recovery goes on (and says so).
        """
        try:
            return np.asarray(self._read(position, region))
        except Exception:
            _logger.exception(
                "recover: %s cannot be read at %s; the frames there that the "
                "journal does not hold are zeros",
                self.where(self.array_paths[position]),
                region,
            )
            shape = tuple(s.stop - s.start for s in region) + self.frame_shape
            return np.zeros(shape, self.dtype)

    def _abort_engine(self) -> None:
        try:
            self._reap(wait=True, until_empty=True)
        except Exception:  # pragma: no cover - nothing was written yet
            _logger.exception("while aborting an OME-Zarr backend")
