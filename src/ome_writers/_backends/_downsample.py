"""Pyramid levels as frames arrive: the kernel, the builder, the level views.

What each level holds is defined in ``_pyramid`` (``reduce_blocks``); this
module computes the same values fast enough to keep up with a camera:

- ``reduce_plane`` halves one plane (or a pair of z planes) with the
  compiled kernel (``_pyramid_kernel.c``, ~0.8 ms for a 2048 x 2048 uint16
  frame against ~17 ms for numpy), or with numpy where the extension is not
  built or the data is not in native byte order.
- ``PyramidBuilder`` turns the planes of one level into those of every level
  below it, on a thread of its own (``append`` does not wait for it), and
  hands each plane to ``emit``. With ``downsample_z`` it pairs z planes as
  they arrive (in any order: tensorstore's writer threads hand them over as
  their files are written): planes ``2j`` and ``2j + 1`` make level plane
  ``j``; a plane whose partner never comes (skipped, or the acquisition
  ended) is paired with zeros at ``close()``, which is what its partner then
  reads as, and an odd last plane with itself. Planes of other (t, c, ...) indices wait
  independently. Memory: one waiting plane per index and level, plus a
  queue of at most ``MAX_QUEUE_BYTES``; a submitter waits when it is full.
- ``reduce_array`` halves any array (frame axes last) plane by plane: what
  the live level views (``_level_view``) compute on each read.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._pyramid import PyramidMethod, reduce_blocks
from ome_writers._util import write_all

_reduce_kernel: Callable[[Any, Any, Any, str, int], None] | None
_write_halving_kernel: Callable[[int, Any, Any, int, str, int], None] | None
try:
    from ome_writers._pyramid_kernel import reduce as _reduce_kernel
    from ome_writers._pyramid_kernel import write_halving as _write_halving_kernel
except ImportError:  # installed without a C compiler: numpy (about 20x slower)
    _reduce_kernel = _write_halving_kernel = None

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

Index = tuple[int, ...]
#: planes waiting for the builder's thread; a submitter waits past this
MAX_QUEUE_BYTES = 64 * 1024**2

_METHOD_CODES = {"mean": 0, "decimate": 1, "min": 2, "max": 3}
_logger = logging.getLogger(__name__)


def halved(shape: Sequence[int]) -> tuple[int, ...]:
    """Each size halved, rounded up."""
    return tuple(-(-n // 2) for n in shape)


def reduce_plane(
    plane: np.ndarray,
    method: PyramidMethod,
    partner: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``plane`` (Y, X) halved; with ``partner``, the next z plane, 2 x 2 x 2.

    ``out``: where to write (``halved(plane.shape)``, rows may be strided).
    """
    dtype = plane.dtype
    if out is None:
        out = np.empty(halved(plane.shape), dtype)
    if (
        _reduce_kernel is not None
        and dtype.isnative
        and plane.ndim == 2
        and plane.strides[1] == dtype.itemsize
        and (partner is None or partner.strides[1] == dtype.itemsize)
        and out.strides[1] == dtype.itemsize
    ):
        _reduce_kernel(plane, partner, out, dtype.char, _METHOD_CODES[method])
        return out
    if partner is None:
        out[...] = reduce_blocks(plane, (0, 1), method)
    else:
        out[...] = reduce_blocks(np.stack([plane, partner]), (0, 1, 2), method)[0]
    return out


def write_halving(
    fd: int,
    chunks: np.ndarray,
    out: np.ndarray,
    method: PyramidMethod,
    piece_rows: int,
) -> None:
    """Write ``chunks`` to ``fd``, halving each piece into ``out`` while in cache.

    ``chunks`` is a frame in chunk order (chunk Y, chunk X, rows, columns; C
    contiguous, even sides), written ``piece_rows`` (even) rows of one chunk
    at a time from the descriptor's position; each piece is halved right
    after its write, into ``out``: the next level's chunk grid (4D, rows may
    be strided), where chunk ``(i, j)`` lands at row ``i * rows / 2`` and
    column ``j * columns / 2`` of the whole level. Reading the frame again
    after its write (from memory, not the cache) cost as much as the
    halving itself. The compiled kernel does the whole loop without the
    interpreter lock: calling ``reduce_plane`` per piece from Python held it
    for about a millisecond per 2048 x 2048 frame, which the camera loop and
    the other writers waited for. Raises ``OSError`` from the write.
    """
    dtype = chunks.dtype
    if (
        _write_halving_kernel is not None
        and dtype.isnative
        and chunks.flags.c_contiguous
        and out.strides[3] == dtype.itemsize
    ):
        code = _METHOD_CODES[method]
        _write_halving_kernel(fd, chunks, out, piece_rows, dtype.char, code)
        return
    cy, cx = chunks.shape[2:]
    half_y, half_x = cy // 2, cx // 2
    dst_y, dst_x = out.shape[2:]
    for i in range(chunks.shape[0]):
        gi, oy = divmod(i * half_y, dst_y)
        for j in range(chunks.shape[1]):
            gj, ox = divmod(j * half_x, dst_x)
            for r0 in range(0, cy, piece_rows):
                piece = chunks[i, j, r0 : r0 + piece_rows]
                write_all(fd, piece.data)
                rows = slice(oy + r0 // 2, oy + (r0 + piece.shape[0]) // 2)
                reduce_plane(piece, method, out=out[gi, gj, rows, ox : ox + half_x])


def reduce_chunk_order(
    buffer: np.ndarray, frame_shape: tuple[int, int], method: PyramidMethod
) -> np.ndarray:
    """Halve a frame held in chunk order, (grid Y, grid X, chunk Y, chunk X).

    Chunks of even size halve into their own tile of the output; otherwise
    the frame is put back in row order first (a copy).
    """
    grid_y, grid_x, chunk_y, chunk_x = buffer.shape
    if grid_y == grid_x == 1:
        return reduce_plane(buffer[0, 0], method)
    out = np.empty(halved(frame_shape), buffer.dtype)
    if chunk_y % 2 or chunk_x % 2:
        frame = buffer.transpose(0, 2, 1, 3).reshape(frame_shape)
        return reduce_plane(np.ascontiguousarray(frame), method, out=out)
    half_y, half_x = chunk_y // 2, chunk_x // 2
    for i in range(grid_y):
        for j in range(grid_x):
            tile = out[i * half_y : (i + 1) * half_y, j * half_x : (j + 1) * half_x]
            reduce_plane(buffer[i, j], method, out=tile)
    return out


def reduce_array(
    array: np.ndarray, method: PyramidMethod, z_axis: int | None = None
) -> np.ndarray:
    """Any array (frame axes last) halved along Y, X (and ``z_axis``)."""
    array = np.asarray(array)
    if not array.dtype.isnative or _reduce_kernel is None:
        axes = [array.ndim - 2, array.ndim - 1]
        return reduce_blocks(array, axes if z_axis is None else [z_axis, *axes], method)
    if z_axis is None:
        shape = array.shape[:-2]
        out = np.empty((*shape, *halved(array.shape[-2:])), array.dtype)
        for index in np.ndindex(*shape):
            reduce_plane(np.ascontiguousarray(array[index]), method, out=out[index])
        return out
    moved = np.moveaxis(array, z_axis, 0)
    nz = moved.shape[0]
    result = np.empty(
        ((nz + 1) // 2, *moved.shape[1:-2], *halved(moved.shape[-2:])), array.dtype
    )
    for j in range(result.shape[0]):
        first = moved[2 * j]
        second = moved[2 * j + 1] if 2 * j + 1 < nz else first
        for index in np.ndindex(*first.shape[:-2]):
            reduce_plane(
                np.ascontiguousarray(first[index]),
                method,
                np.ascontiguousarray(second[index]),
                out=result[(j, *index)],
            )
    return np.moveaxis(result, 0, z_axis)


class PyramidBuilder:
    """Planes of one level in, planes of every level below out (see notes).

    Parameters
    ----------
    levels
        Levels in all, the full resolution included.
    method
        ``Pyramid.method``.
    z_axis
        The storage axis halved with ``downsample_z`` (None: Y/X only).
    z_counts
        The size of that axis at each level (unused without ``z_axis``).
    emit
        ``emit(level, position, index, plane)`` for every plane of level >= 1;
        called on the builder's thread (or the caller's, for ``process``).
    """

    def __init__(
        self,
        *,
        levels: int,
        method: PyramidMethod,
        z_axis: int | None,
        z_counts: Sequence[int],
        emit: Callable[[int, int, Index, np.ndarray], None],
        name: str = "ome-writers-pyramid",
    ) -> None:
        self.levels = levels
        self.method: PyramidMethod = method
        self._z_axis = z_axis
        self._z_counts = list(z_counts)
        self._emit = emit
        self._pending: dict[tuple[int, int, Index], np.ndarray] = {}
        #: whether a waiting plane is the second (odd) of its pair
        self._pending_odd: dict[tuple[int, int, Index], bool] = {}
        self._queue: collections.deque[tuple[int, int, Index, np.ndarray]] = (
            collections.deque()
        )
        self._queued_bytes = 0
        self._busy = False
        self._closed = False
        self._failure: BaseException | None = None
        self._cond = threading.Condition()
        self._name = name
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- submitting

    def submit(
        self, level: int, position: int, index: Index, plane: np.ndarray
    ) -> None:
        """Queue a plane of ``level`` (not to be changed afterwards)."""
        with self._cond:
            self._raise_failure()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=self._name, daemon=True
                )
                self._thread.start()
            while self._queued_bytes > MAX_QUEUE_BYTES and self._failure is None:
                self._cond.wait()
            self._raise_failure()
            self._queue.append((level, position, index, plane))
            self._queued_bytes += plane.nbytes
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every submitted plane is processed; raise its error."""
        with self._cond:
            while (self._queue or self._busy) and self._failure is None:
                self._cond.wait()
            self._raise_failure()

    def close(self) -> None:
        """Drain, pair what still waits for a z partner, stop the thread."""
        try:
            self.drain()
            self.flush_pending()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._thread is not None:
                self._thread.join()
                self._thread = None
        with self._cond:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                item = self._queue.popleft()
                self._busy = True
            try:
                if self._failure is None:
                    self.process(*item)
            except BaseException as exc:  # raised by the next submit/drain/close
                with self._cond:
                    if self._failure is None:
                        self._failure = exc
            finally:
                with self._cond:
                    self._queued_bytes -= item[3].nbytes
                    self._busy = False
                    self._cond.notify_all()

    # ----------------------------------------------------------- processing

    def process(
        self, level: int, position: int, index: Index, plane: np.ndarray
    ) -> None:
        """Emit ``plane`` (level >= 1) and every plane it completes below."""
        while True:
            if level >= 1:
                self._emit(level, position, index, plane)
            if level + 1 >= self.levels:
                return
            z = self._z_axis
            if z is None:
                plane = reduce_plane(plane, self.method)
                level += 1
                continue
            zi = index[z]
            parent = (*index[:z], zi // 2, *index[z + 1 :])
            key = (level, position, parent)
            if zi % 2 == 0 and zi + 1 >= self._z_counts[level]:
                first, second = plane, plane  # an odd last plane: with itself
            else:
                # writer threads may hand planes over out of order: whichever
                # of the pair comes first waits for the other
                other = self._pending.pop(key, None)
                if other is None:
                    self._pending[key] = plane
                    self._pending_odd[key] = zi % 2 == 1
                    return
                del self._pending_odd[key]
                first, second = (plane, other) if zi % 2 == 0 else (other, plane)
            plane = reduce_plane(first, self.method, second)
            index = parent
            level += 1

    def flush_pending(self) -> None:
        """Pair every plane still waiting for its partner with zeros."""
        for level in range(self.levels):
            waiting = sorted(k for k in self._pending if k[0] == level)
            for key in waiting:
                plane = self._pending.pop(key)
                zeros = np.zeros_like(plane)
                if self._pending_odd.pop(key):
                    reduced = reduce_plane(zeros, self.method, plane)
                else:
                    reduced = reduce_plane(plane, self.method, zeros)
                _, position, parent = key
                self.process(level + 1, position, parent, reduced)
