"""Pure index math: frame number -> (position index, storage index).

A frame number counts frames in acquisition order from 0. Its *acquisition
index* is the mixed-radix expansion of that number over the non-frame
dimensions in acquisition order (the first may be unbounded). The position
dimension, if any, selects which position array the frame goes to; the other
digits, permuted into storage order, are the frame's *storage index* inside
that array. Position arrays are C-ordered, so the storage index also has a
*flat offset*: the frame's row in the array viewed as ``(frames, Y, X)``.

A stored axis may also hold several acquisition dimensions at once (a
*merged* axis, e.g. channels x cameras folded into one OME channel axis): its
index is their mixed-radix combination, slowest first, so frames still go to
one C-ordered array in acquisition order.

No I/O and no pydantic here: the router is built from plain names and counts,
and everything it returns is plain ints and tuples (``frame_numbers``, the
inverse over a box of storage indices, a numpy array), so backends can call it
on the hot path and the property tests can check it exhaustively.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ome_writers._settings import AcquisitionSettings


class FrameRouter:
    """Map frame numbers to positions and storage indices.

    Parameters
    ----------
    names
        Non-frame dimension names in acquisition order.
    counts
        Their counts; only the first may be None (unbounded).
    position_name
        Name of the position dimension among ``names``, or None.
    storage_names
        The non-position names in storage order; defaults to acquisition order.
        An unbounded dimension must be first.
    storage_groups
        Instead of ``storage_names``: the names each stored axis holds, in
        storage order; a group of several names is one merged axis (slowest
        first). Every non-position name appears once; an unbounded dimension
        must be alone in the first group.

    Examples
    --------
    >>> r = FrameRouter(["t", "p", "c"], [2, 3, 2], position_name="p")
    >>> r.locate(0), r.locate(1), r.locate(2), r.locate(7)
    ((0, (0, 0)), (0, (0, 1)), (1, (0, 0)), (0, (1, 1)))
    >>> groups = [["c", "cam"], ["z"]]
    >>> m = FrameRouter(["c", "z", "cam"], [2, 3, 2], storage_groups=groups)
    >>> m.storage_counts, m.locate(1), m.locate(6)
    ((4, 3), (0, (1, 0)), (0, (2, 0)))
    """

    def __init__(
        self,
        names: Sequence[str],
        counts: Sequence[int | None],
        *,
        position_name: str | None = None,
        storage_names: Sequence[str] | None = None,
        storage_groups: Sequence[Sequence[str]] | None = None,
    ) -> None:
        if len(names) != len(counts):
            raise ValueError(f"{len(names)} names but {len(counts)} counts")
        if any(c is None for c in counts[1:]):
            raise ValueError("only the first dimension may be unbounded")
        self.names: tuple[str, ...] = tuple(names)
        self.counts: tuple[int | None, ...] = tuple(counts)
        self.position_axis: int | None = (
            None if position_name is None else self.names.index(position_name)
        )
        acq_storage = [n for i, n in enumerate(names) if i != self.position_axis]
        if storage_groups is None:
            order = acq_storage if storage_names is None else storage_names
            storage_groups = [[n] for n in order]
        groups = [list(g) for g in storage_groups]
        flat = [n for g in groups for n in g]
        if sorted(flat) != sorted(acq_storage) or not all(groups):
            raise ValueError(
                f"storage groups {groups!r} must hold each of {acq_storage!r} once"
            )
        if counts and counts[0] is None and groups and groups[0] != [names[0]]:
            raise ValueError(
                "the unbounded dimension must be first and alone in storage"
            )
        self.storage_names: tuple[str, ...] = tuple(g[0] for g in groups)
        #: for each storage axis, the acquisition axes it holds (slowest first)
        self.storage_groups: tuple[tuple[int, ...], ...] = tuple(
            tuple(self.names.index(n) for n in g) for g in groups
        )
        self.has_merged_axes = any(len(g) > 1 for g in groups)
        #: count of each storage axis (None: unbounded)
        self.storage_counts: tuple[int | None, ...] = tuple(
            counts[g[0]] if len(g) == 1 else math.prod(int(counts[a] or 0) for a in g)
            for g in self.storage_groups
        )
        self.is_unbounded = bool(counts) and counts[0] is None
        self.num_positions = (
            1 if self.position_axis is None else int(counts[self.position_axis] or 1)
        )
        #: frames in one step of the first dimension (all positions together)
        self.frames_per_step = math.prod(c for c in counts[1:] if c is not None)
        self.num_frames: int | None = (
            None if self.is_unbounded else math.prod(c or 0 for c in counts)
        )
        # acquisition strides: frame number = sum(index[i] * acq_strides[i])
        strides = []
        stride = 1
        for c in reversed(counts):
            strides.append(stride)
            stride *= c if c is not None else 1
        self._acq_strides = tuple(reversed(strides))
        # storage strides, in frames, inside one position array, per acq axis
        flat_strides = [0] * len(names)
        stride = 1
        for group in reversed(self.storage_groups):
            for axis in reversed(group):
                flat_strides[axis] = stride
                stride *= counts[axis] or 1
        self._flat_strides = tuple(flat_strides)
        #: frames in one step of the first storage axis, per position
        self.frames_per_position_step = math.prod(
            c for c in self.storage_counts[1:] if c is not None
        )
        self.is_identity = self.position_axis is None and self.storage_groups == tuple(
            (i,) for i in range(len(names))
        )

    # ------------------------------------------------------------------ maps

    def acq_index(self, frame_number: int) -> tuple[int, ...]:
        """Index of a frame over the non-frame dimensions, in acquisition order."""
        if frame_number < 0 or (
            self.num_frames is not None and frame_number >= self.num_frames
        ):
            raise IndexError(
                f"frame number {frame_number} is outside 0..{self.num_frames}"
            )
        out = []
        rest = frame_number
        for stride in self._acq_strides:
            digit, rest = divmod(rest, stride)
            out.append(digit)
        return tuple(out)

    def locate(self, frame_number: int) -> tuple[int, tuple[int, ...]]:
        """(position index, storage index) of a frame."""
        index = self.acq_index(frame_number)
        position = 0 if self.position_axis is None else index[self.position_axis]
        if not self.has_merged_axes:
            return position, tuple(index[g[0]] for g in self.storage_groups)
        storage = []
        for group in self.storage_groups:
            digit = 0
            for axis in group:
                digit = digit * int(self.counts[axis] or 1) + index[axis]
            storage.append(digit)
        return position, tuple(storage)

    def flat_offset(self, frame_number: int) -> tuple[int, int]:
        """(position index, frame row in the position array viewed as (N, Y, X))."""
        if self.is_identity:
            return 0, frame_number
        index = self.acq_index(frame_number)
        position = 0 if self.position_axis is None else index[self.position_axis]
        return position, sum(i * s for i, s in zip(index, self._flat_strides))

    def frame_numbers(
        self, position: int, origin: Sequence[int], extent: Sequence[int]
    ) -> np.ndarray:
        """Frame numbers of a box of storage indices of one position.

        The inverse of ``locate`` over ``origin`` to ``origin + extent`` (one
        entry per storage axis): an int64 array of shape ``extent``.

        >>> r = FrameRouter(["t", "p", "c"], [2, 3, 2], position_name="p")
        >>> r.frame_numbers(1, (0, 0), (2, 2)).tolist()
        [[2, 3], [8, 9]]
        """
        ndim = len(self.storage_groups)
        total = np.zeros((1,) * ndim, np.int64)
        if self.position_axis is not None:
            total += position * self._acq_strides[self.position_axis]
        for axis, group in enumerate(self.storage_groups):
            rest = np.arange(origin[axis], origin[axis] + extent[axis], dtype=np.int64)
            numbers = np.zeros_like(rest)
            for acq_axis in reversed(group):
                if len(group) > 1:
                    rest, digit = np.divmod(rest, int(self.counts[acq_axis] or 1))
                else:
                    digit = rest
                numbers += digit * self._acq_strides[acq_axis]
            shape = [1] * ndim
            shape[axis] = len(numbers)
            total = total + numbers.reshape(shape)
        return np.broadcast_to(total, tuple(extent))

    def __iter__(self) -> Iterator[tuple[int, tuple[int, ...]]]:
        """Every (position, storage index) of a bounded acquisition, in order."""
        if self.num_frames is None:
            raise TypeError("cannot iterate over an unbounded router")
        for n in range(self.num_frames):
            yield self.locate(n)

    # ---------------------------------------------------------------- extents

    def steps_started(self, frames_written: int) -> int:
        """How many steps of the first dimension hold at least one frame."""
        return -(-frames_written // self.frames_per_step) if frames_written else 0

    def storage_shape(self, frames_written: int | None = None) -> tuple[int, ...]:
        """Shape of each position array over the storage axes (frame dims excluded).

        For an unbounded router the first axis covers the steps started after
        ``frames_written`` frames.
        """
        shape = list(self.storage_counts)
        if self.is_unbounded:
            shape[0] = self.steps_started(frames_written or 0)
        return tuple(int(c or 0) for c in shape)

    def acq_extent(self, frames_written: int) -> tuple[int, ...]:
        """High-water extent of each acquisition axis after ``frames_written`` frames.

        An axis's extent is one past the largest index reached on it; once a
        slower axis has advanced, every faster axis has been covered in full.
        """
        if frames_written <= 0:
            return tuple(0 for _ in self.names)
        last = self.acq_index(frames_written - 1)
        out = []
        advanced = False
        for digit, count in zip(last, self.counts):
            out.append(int(count) if advanced and count is not None else digit + 1)
            advanced = advanced or digit > 0
        return tuple(out)


def build_router(settings: AcquisitionSettings) -> FrameRouter:
    """The frame router for ``settings`` (plain names and counts taken from it)."""
    index_dims = settings.dimensions[:-2]
    positional = settings.position_dimension_names
    return FrameRouter(
        [d.name for d in index_dims],
        [d.count for d in index_dims],
        position_name=positional[0] if positional else None,
        storage_groups=settings.storage_groups,
    )
