"""Read-only, live array views over what a stream has written.

``PositionArray`` is one position in storage order; ``StreamView`` stitches all
positions together in acquisition order, the position axis where it was
declared. Both ask the backend for a fresh view on every access, so they follow
the stream as it grows (and across a move from memory to disk) and stay valid
after ``close()``. Indexing takes ints, slices and ``...``; results are numpy
arrays that must not be written to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ome_writers._events import coords_for_extent

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ome_writers._router import FrameRouter

Key = Any


class _Source(Protocol):
    def __call__(self, position_index: int) -> np.ndarray: ...


class PositionArray:
    """One position's data in storage order, shaped as written so far.

    For an unbounded stream the first axis grows as frames arrive; indexing
    past the written extent raises ``IndexError``.
    """

    def __init__(
        self,
        source: Callable[[int], np.ndarray],
        position_index: int,
        dims: tuple[str, ...],
        dtype: np.dtype,
    ) -> None:
        self._source = source
        self._position_index = position_index
        self.dims = dims
        self._dtype = dtype

    def _data(self) -> np.ndarray:
        return self._source(self._position_index)

    @property
    def shape(self) -> tuple[int, ...]:
        """Current logical shape (storage order, frame dims last)."""
        return tuple(self._data().shape)

    @property
    def dtype(self) -> np.dtype:
        """Pixel type."""
        return self._dtype

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.dims)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Key) -> np.ndarray:
        result = self._data()[key]
        return np.asarray(result)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        data = np.array(self._data()[...], dtype=dtype or self._dtype, copy=True)
        return data

    def __repr__(self) -> str:
        return (
            f"<PositionArray position={self._position_index} dims={self.dims} "
            f"shape={self.shape} dtype={self.dtype}>"
        )


class StreamView:
    """All positions in acquisition order, as one read-only array-like.

    Parameters
    ----------
    dynamic_shape
        True: the shape covers what has been acquired so far (the high-water
        extent of each axis); frames inside it not yet written read as zeros.
        False: the declared shape (for an unbounded first axis, the extent so
        far), with unwritten frames reading as zeros.
    strict
        True: reading a frame that has not been written yet raises
        ``IndexError`` instead of returning zeros.
    shrink
        Pyramid levels: acquisition axis -> factor its extent is divided by
        (rounded up), for an axis the level halves (z, with
        ``downsample_z``); ``frame_shape`` is then the level's.
    """

    def __init__(
        self,
        source: _Source,
        router: FrameRouter,
        frames_written: Callable[[], int],
        dims: tuple[str, ...],
        labels: Mapping[str, Sequence[Any] | None],
        frame_shape: tuple[int, int],
        dtype: np.dtype,
        *,
        dynamic_shape: bool = True,
        strict: bool = False,
        shrink: Mapping[int, int] | None = None,
    ) -> None:
        self._source = source
        self._shrink = dict(shrink or {})
        self._router = router
        self._frames_written = frames_written
        self.dims = dims
        self._labels = labels
        self._frame_shape = frame_shape
        self.dtype = dtype
        self._dynamic = dynamic_shape
        self._strict = strict
        # storage axes, merged ones split into their members -> acquisition
        # order (position axis excluded), frame dims last
        acq_axes = [a for a in range(len(router.names)) if a != router.position_axis]
        expanded = [a for group in router.storage_groups for a in group]
        self._to_acq_order = [expanded.index(a) for a in acq_axes] + [
            len(acq_axes),
            len(acq_axes) + 1,
        ]

    @property
    def coords(self) -> dict[str, Sequence[Any]]:
        """Each dimension's coordinates over the current ``shape``.

        Channel and position names (or the values given as ``coords``) for the
        indices the shape covers, ``range(n)`` for dimensions without coords
        (the unbounded one included): with ``dynamic_shape`` they cover what
        has been acquired so far.
        """
        return coords_for_extent(self._labels, dict(zip(self.dims, self.shape)))

    @property
    def shape(self) -> tuple[int, ...]:
        """Current shape, acquisition order, frame dims last."""
        return self._index_shape(self._frames_written()) + self._frame_shape

    def _index_shape(self, frames_written: int) -> tuple[int, ...]:
        router = self._router
        if self._dynamic:
            shape = router.acq_extent(frames_written)
        else:
            steps = router.steps_started(frames_written)
            shape = tuple(int(steps if c is None else c) for c in router.counts)
        if self._shrink:
            shape = tuple(
                -(-n // self._shrink.get(axis, 1)) for axis, n in enumerate(shape)
            )
        return shape

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.dims)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[...], dtype=dtype)

    def __repr__(self) -> str:
        return f"<StreamView dims={self.dims} shape={self.shape} dtype={self.dtype}>"

    def __getitem__(self, key: Key) -> np.ndarray:
        frames_written = self._frames_written()
        index_shape = self._index_shape(frames_written)
        selections = _normalize_key(key, index_shape + self._frame_shape)
        nidx = len(index_shape)
        if self._strict:
            self._check_written(selections[:nidx], frames_written)
        router = self._router
        pax = router.position_axis
        # a merged axis is read whole, split into its members, then selected
        storage_key = tuple(
            _as_slice(selections[g[0]]) if len(g) == 1 else slice(None)
            for g in router.storage_groups
        ) + tuple(_as_slice(s) for s in selections[nidx:])
        positions = [0] if pax is None else _as_range(selections[pax])
        parts = [
            np.transpose(
                self._split_merged(self._source(p)[storage_key], selections),
                self._to_acq_order,
            )
            for p in positions
        ]
        if pax is None:
            out = parts[0]
        elif parts:
            out = np.moveaxis(np.stack(parts, axis=0), 0, pax)
        else:
            shape = [len(_as_range(s)) for s in selections]
            out = np.zeros(shape, self.dtype)
        squeeze = tuple(i for i, s in enumerate(selections) if isinstance(s, int))
        return np.squeeze(out, axis=squeeze) if squeeze else np.ascontiguousarray(out)

    def _split_merged(self, data: Any, selections: list[int | slice]) -> np.ndarray:
        """Storage-order data with each merged axis as its member axes, selected."""
        array = np.asarray(data)
        router = self._router
        if not router.has_merged_axes:
            return array
        shape: list[int] = []
        member_key: list[slice] = []
        for k, group in enumerate(router.storage_groups):
            if len(group) == 1:
                shape.append(array.shape[k])
                member_key.append(slice(None))
            else:
                shape += [int(router.counts[a] or 0) for a in group]
                member_key += [_as_slice(selections[a]) for a in group]
        array = array.reshape(*shape, *array.shape[len(router.storage_groups) :])
        return array[tuple(member_key)]

    def _check_written(
        self, selections: list[int | slice], frames_written: int
    ) -> None:
        ranges = [_as_range(s) for s in selections]
        if not all(ranges):  # an empty selection reads nothing
            return
        # a level's index: its first full-resolution frame
        last = [max(r) * self._shrink.get(axis, 1) for axis, r in enumerate(ranges)]
        frame_number = 0
        for index, count in zip(last, self._router.counts):
            frame_number = frame_number * (count or 1) + index
        if frame_number >= frames_written:
            raise IndexError(
                f"frame {frame_number} has not been written yet ({frames_written} "
                "written); use strict=False to read unwritten frames as zeros"
            )


def _as_range(sel: int | slice) -> range:
    if isinstance(sel, int):
        return range(sel, sel + 1)
    return range(sel.start, sel.stop, sel.step)


def _as_slice(sel: int | slice) -> slice:
    """An int as a length-1 slice (keeps the axis); a normalized slice as-is."""
    if isinstance(sel, int):
        return slice(sel, sel + 1)
    if sel.start < 0:  # slice.indices gives start -1 only for an empty, reversed one
        return slice(0, 0, sel.step)
    return slice(sel.start, None if sel.stop < 0 else sel.stop, sel.step)


def _normalize_key(key: Key, shape: tuple[int, ...]) -> list[int | slice]:
    """Expand ``key`` to one int or normalized slice per axis, bounds-checked."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = len(shape) - (len(key) - 1)
        key = key[:i] + (slice(None),) * fill + key[i + 1 :]
    if len(key) > len(shape):
        raise IndexError(
            f"too many indices: {len(key)} for a view with {len(shape)} axes"
        )
    key = key + (slice(None),) * (len(shape) - len(key))
    out: list[int | slice] = []
    for axis, (k, n) in enumerate(zip(key, shape)):
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            i = int(k)
            if not -n <= i < n:
                raise IndexError(
                    f"index {i} is out of bounds for axis {axis} with size {n}"
                )
            out.append(i % n)
        elif isinstance(k, slice):
            start, stop, step = k.indices(n)
            out.append(slice(start, stop, step))
        else:
            raise TypeError(f"view indices must be ints, slices or '...', not {k!r}")
    return out
