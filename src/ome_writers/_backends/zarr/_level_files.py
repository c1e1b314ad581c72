"""Lower pyramid levels written as whole files by level 0's writer threads.

Why: with the default geometry each level-0 frame is one file, written by
``DirectFrameWriter`` from a chunk-order buffer. Handing its levels to a
builder thread and to one tensorstore engine per level (``_levels``) cost,
per frame, a fresh level plane, a copy into a block buffer (fresh memory
too), tensorstore's copy into its chunk buffers and its shard encoding: four
passes over new pages for a quarter of the bytes, and threads waiting for
each other. The stream ran at 0.38-0.61 of the same stream without levels,
where writing the third more bytes alone allows about 0.76-0.84.

Here the writer thread that writes a frame's file halves the frame straight
into the chunk-order slot of the level-1 shard it belongs to, a few rows at
a time as they are written (``rows_tap``; one compiled call without the
interpreter lock, ``write_halving``): the rows are still in the CPU's cache
(halving the whole frame after its write read it from memory again, about
1.9 ms of CPU per 8 MiB frame against 0.7 ms). It then halves that slot
into level 2's, and so on: the kernel's output is the file's bytes, in
reused buffers. The thread that fills a shard's last slot writes the shard
file (under a temporary name, renamed, as level 0), once.

What must hold (else ``_levels`` keeps its builder path): level 0 written by
``DirectFrameWriter``; no ``downsample_z``; every level chunked one plane
deep, sharded along the innermost stored axis only, its frame a whole number
of chunks, and each halved level-above chunk inside one chunk of the level.
The shard index is the engine's, taken from a probe shard the engine encodes
(the same trust as level 0's, see ``_direct``).

Shards that do not fill (skipped frames, the last shard of a bounded axis
that the shard overhangs, the acquisition's end) go to the level's engine
at ``flush``, which writes the missing planes as zeros (what a skipped
frame reads as). Memory: shard buffers up to ``MAX_SHARD_BUFFER_BYTES``;
a shard beyond that (many positions open at once) is routed to the builder
path, which handles it plane by plane. Such a shard is remembered (so that
all its planes go the same way) until the builder path has taken each of
them: what is kept is what is in flight, however long the acquisition.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._downsample import reduce_plane, write_halving
from ome_writers._util import replace_file

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ome_writers._backends.zarr._chunked import ChunkedZarrBackend
    from ome_writers._pyramid import PyramidMethod

Index = tuple[int, ...]
#: shard buffers of all levels of one stream; past this, shards take the slow path
MAX_SHARD_BUFFER_BYTES = 256 * 1024**2
#: suffix of a shard file being written (as level 0's ``TEMP_SUFFIX``)
_TEMP_SUFFIX = ".ome-writers-partial"

_probed: dict[str, bytes | None] = {}
_probed_lock = threading.Lock()


@dataclass(frozen=True)
class ShardFileLayout:
    """One level's file: ``planes`` planes of ``grid`` chunks of ``chunk`` pixels.

    ``count`` is the size of the sharded (innermost stored) axis, None when
    it is unbounded; ``index`` is the bytes after the chunks (empty for an
    unsharded chunk file).
    """

    planes: int
    grid: tuple[int, int]
    chunk: tuple[int, int]
    dtype: np.dtype
    count: int | None
    index: bytes

    @property
    def plane_shape(self) -> tuple[int, int, int, int]:
        """One plane in chunk order: (grid Y, grid X, chunk Y, chunk X)."""
        return (*self.grid, *self.chunk)

    @property
    def nbytes(self) -> int:
        """Bytes of a shard's chunks."""
        return self.planes * math.prod(self.plane_shape) * self.dtype.itemsize

    def planes_in(self, shard: int) -> int:
        """Planes the array holds in shard ``shard`` of the sharded axis."""
        if self.count is None:
            return self.planes
        return max(0, min(self.planes, self.count - shard * self.planes))


def layout_of(child: ChunkedZarrBackend, dtype: np.dtype) -> ShardFileLayout | None:
    """The file layout of a level engine's arrays, if this module can write it."""
    geometry = child.geometry
    shape, chunks = geometry.shape, geometry.chunks
    shards = geometry.shards or chunks
    if len(shape) < 3 or child.settings.compression is not None:
        return None
    if any(c != 1 for c in chunks[:-2]) or any(s != 1 for s in shards[:-3]):
        return None
    frame = shape[-2:]
    if shards[-2:] != frame or any(f % c for f, c in zip(frame, chunks[-2:])):
        return None
    count = shape[-3] or None  # 0: an unbounded first axis
    return ShardFileLayout(
        planes=shards[-3],
        grid=(frame[0] // chunks[-2], frame[1] // chunks[-1]),
        chunk=(chunks[-2], chunks[-1]),
        dtype=dtype,
        count=count,
        index=b"",
    )


def tiles_fit(
    src_grid: tuple[int, int], src_chunk: tuple[int, int], dst: ShardFileLayout
) -> bool:
    """True when ``dst`` is exactly half a plane of ``src_grid`` x ``src_chunk``
    chunks and each halved source chunk lies inside one ``dst`` chunk."""
    return all(
        s % 2 == 0 and c % (s // 2) == 0 and g * c == sg * s // 2
        for s, c, g, sg in zip(src_chunk, dst.chunk, dst.grid, src_grid)
    )


def reduce_into(src: np.ndarray, dst: np.ndarray, method: PyramidMethod) -> None:
    """Halve a chunk-order plane ``src`` into the chunk-order plane ``dst``.

    Both are (grid Y, grid X, chunk Y, chunk X); ``tiles_fit`` must hold, and
    ``dst`` must be exactly half of ``src`` (even frame sizes).
    """
    grid_y, grid_x, chunk_y, chunk_x = src.shape
    half_y, half_x = chunk_y // 2, chunk_x // 2
    dst_y, dst_x = dst.shape[2], dst.shape[3]
    for i in range(grid_y):
        gi, oy = divmod(i * half_y, dst_y)
        for j in range(grid_x):
            gj, ox = divmod(j * half_x, dst_x)
            tile = dst[gi, gj, oy : oy + half_y, ox : ox + half_x]
            reduce_plane(src[i, j], method, out=tile)


def probe_index(
    layout: ShardFileLayout,
    metadata: dict[str, Any],
    engine_bytes: Callable[[np.ndarray], bytes],
) -> bytes | None:
    """The engine's index bytes of a full shard, if it encodes one as we do.

    ``engine_bytes(block)`` returns the file the engine writes for a shard
    ``block`` (planes, Y, X). The verdict is kept for the process, per
    metadata (shape aside).
    """
    key = json.dumps({**metadata, "shape": None}, sort_keys=True)
    with _probed_lock:
        if key in _probed:
            return _probed[key]
    (gy, gx), (cy, cx) = layout.grid, layout.chunk
    count = layout.planes * gy * cy * gx * cx
    probe = (np.arange(count, dtype=np.uint32) % 251 + 1).astype(layout.dtype)
    block = probe.reshape(layout.planes, gy * cy, gx * cx)
    ours = np.ascontiguousarray(
        block.reshape(layout.planes, gy, cy, gx, cx).transpose(0, 1, 3, 2, 4)
    ).tobytes()
    theirs = engine_bytes(block)
    index: bytes | None = None
    if theirs[: len(ours)] == ours:
        index = theirs[len(ours) :]
        if not index and layout.planes * gy * gx != 1:
            index = None  # several chunks must come with an index
    with _probed_lock:
        _probed[key] = index
    return index


class _Shard:
    __slots__ = ("data", "filled")

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        #: planes written, by slot
        self.filled = np.zeros(data.shape[0], bool)


class LevelFiles:
    """Shard buffers of levels 1, 2, ... and the files they become.

    Parameters
    ----------
    layouts
        Each level's file layout, level 1 first (indices verified).
    level_paths
        ``level_paths[k - 1][position]``: the array directory of level ``k``.
    method
        ``Pyramid.method``.
    """

    def __init__(
        self,
        layouts: list[ShardFileLayout],
        level_paths: list[list[Path]],
        method: PyramidMethod,
    ) -> None:
        self.layouts = layouts
        self._paths = level_paths
        self.method: PyramidMethod = method
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int, Index], _Shard] = {}
        #: shards the builder path writes (no buffer was left for them), and
        #: which of their planes it has taken, by slot; forgotten once it has
        #: them all (``_taken_by_builder``)
        self._routed_away: dict[tuple[int, int, Index], np.ndarray] = {}
        self._spare: list[list[np.ndarray]] = [[] for _ in layouts]
        #: frames whose level-1 slot was filled as their file was written
        self._tapped: dict[tuple[int, Index], tuple[Any, _Shard, int]] = {}
        self._allocated_bytes = 0

    @property
    def levels(self) -> int:
        """Levels below level 0 written here."""
        return len(self.layouts)

    # ------------------------------------------------------------- routing

    def _shard_of(self, level: int, position: int, index: Index) -> tuple[Any, int]:
        layout = self.layouts[level - 1]
        shard, slot = divmod(index[-1], layout.planes)
        return (level, position, (*index[:-1], shard)), slot

    def _slot(
        self, level: int, position: int, index: Index
    ) -> tuple[tuple[int, int, Index], _Shard, int] | None:
        """The open shard (opened now if need be) and slot of a plane, or None.

        None: the shard is the builder path's (no buffer was left for it).
        """
        key, slot = self._shard_of(level, position, index)
        with self._lock:
            shard = self._open.get(key)
            if shard is not None:
                return key, shard, slot
            if key in self._routed_away:
                return None
            layout = self.layouts[level - 1]
            spare = self._spare[level - 1]
            if spare:
                data = spare.pop()
            elif self._allocated_bytes + layout.nbytes <= MAX_SHARD_BUFFER_BYTES:
                self._allocated_bytes += layout.nbytes
                data = np.empty((layout.planes, *layout.plane_shape), layout.dtype)
            else:
                self._routed_away[key] = np.zeros(layout.planes, bool)
                return None
            shard = self._open[key] = _Shard(data)
            return key, shard, slot

    def _mark(
        self, key: tuple[int, int, Index], shard: _Shard, slot: int
    ) -> tuple[tuple[int, int, Index], _Shard] | None:
        """Count ``slot`` as written; the shard if it is now full."""
        layout = self.layouts[key[0] - 1]
        with self._lock:
            shard.filled[slot] = True
            expected = layout.planes_in(key[2][-1])
            if expected == layout.planes and shard.filled.all():
                del self._open[key]
                return key, shard
        return None

    # --------------------------------------------------------------- planes

    def rows_tap(
        self, position: int, index: Index, buffer: np.ndarray
    ) -> Callable[[int, int], None] | None:
        """What writes a level-0 frame's file and halves it into its level-1 slot.

        Returns ``write(fd, piece_rows)`` for ``DirectFrameWriter``: the
        chunk-order ``buffer`` written piece by piece, each piece halved into
        the slot right after its write (``write_halving``), or None when the
        level-1 shard is the builder path's. ``put_frame`` then goes on from
        the filled slot.
        """
        found = self._slot(1, position, index)
        if found is None:
            return None
        key, shard, slot = found
        dst = shard.data[slot]
        method = self.method

        def write(fd: int, piece_rows: int) -> None:
            write_halving(fd, buffer, dst, method, piece_rows)

        with self._lock:
            self._tapped[(position, index)] = (key, shard, slot)
        return write

    def put_frame(
        self, position: int, index: Index, buffer: np.ndarray
    ) -> tuple[list[tuple[tuple[int, int, Index], _Shard]], np.ndarray | None, int]:
        """Halve a level-0 chunk-order frame into every level's shard slot.

        Returns the shards this filled (for ``write_full``), and where the
        chain stopped: the last plane made and its level when the next level's
        shard is the builder path's (else None, 0).
        """
        full: list[tuple[tuple[int, int, Index], _Shard]] = []
        source = buffer
        with self._lock:
            tapped = self._tapped.pop((position, index), None)
        for level in range(1, self.levels + 1):
            if level == 1 and tapped is not None:
                key, shard, slot = tapped  # halved while its file was written
            else:
                found = self._slot(level, position, index)
                if found is None:
                    return full, source, level - 1
                key, shard, slot = found
                reduce_into(source, shard.data[slot], self.method)
            done = self._mark(key, shard, slot)
            if done is not None:
                full.append(done)
            source = shard.data[slot]
        return full, None, 0

    def put_plane(
        self, level: int, position: int, index: Index, plane: np.ndarray
    ) -> list[tuple[tuple[int, int, Index], _Shard]] | None:
        """A row-order plane of ``level`` from the builder path, if its shard is here.

        None: its shard is the builder path's too. Otherwise the plane is
        copied into its slot and the shards it filled are returned.
        """
        found = self._slot(level, position, index)
        if found is None:
            self._taken_by_builder(level, position, index)
            return None
        key, shard, slot = found
        layout = self.layouts[level - 1]
        (gy, gx), (cy, cx) = layout.grid, layout.chunk
        np.copyto(shard.data[slot].transpose(0, 2, 1, 3), plane.reshape(gy, cy, gx, cx))
        done = self._mark(key, shard, slot)
        return [] if done is None else [done]

    def _taken_by_builder(self, level: int, position: int, index: Index) -> None:
        """A plane of a builder-path shard goes to the engine: the last one
        (in ``put_plane``, each plane's final turn) ends the shard's entry."""
        key, slot = self._shard_of(level, position, index)
        layout = self.layouts[level - 1]
        with self._lock:
            taken = self._routed_away.get(key)
            if taken is None:
                return
            taken[slot] = True
            if np.count_nonzero(taken) == layout.planes_in(key[2][-1]):
                del self._routed_away[key]

    def write_full(self, full: list[tuple[tuple[int, int, Index], _Shard]]) -> None:
        """Write each filled shard's file, then reuse its buffer."""
        for (level, position, shard_index), shard in full:
            try:
                self._write(level, position, shard_index, shard.data)
            finally:
                with self._lock:
                    self._spare[level - 1].append(shard.data)

    def _write(
        self, level: int, position: int, shard_index: Index, data: np.ndarray
    ) -> None:
        layout = self.layouts[level - 1]
        key = "/".join(str(i) for i in (*shard_index, 0, 0))
        path = self._paths[level - 1][position] / "c" / key
        # no set of the directories made: each shard has one of its own (its
        # index is in the path), so such a set would only grow
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + _TEMP_SUFFIX)
        replace_file(path, data.data, layout.index, temporary=partial)

    # -------------------------------------------------------------- closing

    def flush(self, write_at: Callable[[int, int, Index, np.ndarray], None]) -> None:
        """Hand every shard that did not fill to ``write_at(level, position, index,
        plane)`` (the level's engine), plane by plane, in row order."""
        with self._lock:
            remaining = sorted(self._open.items(), key=lambda item: item[0])
            self._open.clear()
            self._routed_away.clear()
        for (level, position, shard_index), shard in remaining:
            layout = self.layouts[level - 1]
            first = shard_index[-1] * layout.planes
            for slot in np.flatnonzero(shard.filled):
                chunked = shard.data[slot]
                plane = chunked.transpose(0, 2, 1, 3).reshape(
                    chunked.shape[0] * chunked.shape[2], -1
                )
                index = (*shard_index[:-1], first + int(slot))
                write_at(level, position, index, np.ascontiguousarray(plane))
        with self._lock:
            self._spare = [[] for _ in self.layouts]
            self._allocated_bytes = 0
