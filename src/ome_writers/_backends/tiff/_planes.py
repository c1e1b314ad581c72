"""Where every plane of an OME-TIFF lives: its OME axis and its IFD.

OME's Pixels have exactly three non-frame axes, T, C and Z, stored in any
order (``DimensionOrder``). ``OmeAxes`` maps the acquisition's dimensions onto
them by type (time -> T, channel -> C, space -> Z; an ``"other"`` dimension
takes a free axis, T first) and derives ``DimensionOrder`` from the storage
order, so every permutation the settings allow is written as is.

Pages are written in acquisition order, which need not be the storage order
(a storage order other than acquisition order, or positions interleaved in
one file). ``TiffData`` elements therefore map planes to IFDs explicitly:
``PlaneMap`` maps planes to IFDs and back, and
``tiff_data_runs`` compresses consecutive planes in consecutive IFDs into one
element each, so the common case (acquisition order, one position per file)
needs a single ``TiffData`` however many planes there are.

Pure index math over the settings and the router: no ome-types, no file I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings


# ---------------------------------------------------------------- axes


@dataclass(frozen=True)
class OmeAxes:
    """The acquisition's non-frame dimensions as OME's T, C and Z."""

    #: dimension name -> "T" | "C" | "Z" (position dimension excluded)
    axis_of: dict[str, str]
    #: storage names, slowest first
    storage_names: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: AcquisitionSettings) -> OmeAxes:
        """Map dimensions by type; raise ``ValueError`` when they do not fit."""
        dims = settings.stored_dimensions
        wanted = {"time": "T", "channel": "C", "space": "Z"}
        axis_of: dict[str, str] = {}
        for d in dims:
            axis = wanted.get(d.type or "other")
            if axis is None:
                continue
            if axis in axis_of.values():
                holder = next(n for n, a in axis_of.items() if a == axis)
                raise ValueError(
                    f"OME-TIFF has one {d.type} axis ({axis}) but dimensions "
                    f"{holder!r} and {d.name!r} are both of type {d.type!r}; set "
                    "one's type to 'other' (it then takes a free OME axis) or use "
                    "format='ome-zarr', which stores any number of dimensions"
                )
            axis_of[d.name] = axis
        for d in dims:
            if d.name in axis_of:
                continue
            free = [a for a in "TZC" if a not in axis_of.values()]
            if not free:
                names = [x.name for x in dims]
                raise ValueError(
                    f"OME-TIFF stores at most 3 dimensions besides positions and "
                    f"the frame (as T, C, Z); got {names!r}. Merge dimensions or "
                    "use format='ome-zarr'"
                )
            axis_of[d.name] = free[0]
        return cls(axis_of, tuple(settings.storage_dimension_names))

    @property
    def storage_axes(self) -> str:
        """OME axes of the storage order, slowest first, missing ones in front."""
        present = [self.axis_of[n] for n in self.storage_names]
        missing = [a for a in "TCZ" if a not in present]
        return "".join(missing + present)

    @property
    def dimension_order(self) -> str:
        """OME ``DimensionOrder``: X, Y, then the storage axes fastest first."""
        return "XY" + self.storage_axes[::-1]

    def name_of(self, axis: str) -> str | None:
        """The dimension stored as OME ``axis``, if any."""
        return next((n for n, a in self.axis_of.items() if a == axis), None)


# ---------------------------------------------------------------- planes


class PlaneMap:
    """IFD <-> plane arithmetic of one file layout, in O(planes asked for).

    Pages go to a file in acquisition order: the IFD of a frame is its frame
    number (one file for all positions) or its number among the frames of its
    position (one file per position). Planes are counted in storage (C) order
    of one position. Both maps are a sum of digits times strides, so nothing
    is tabulated over the declared size (a bounded axis may be declared with
    10**9 entries while a handful of frames are written).
    """

    def __init__(self, router: FrameRouter, *, per_position_file: bool) -> None:
        self._router = router
        self._per_position_file = per_position_file
        counts = list(router.counts)
        self._counts = counts
        strides = [0] * len(counts)
        stride = 1
        for axis in reversed(range(len(counts))):
            if per_position_file and axis == router.position_axis:
                continue
            strides[axis] = stride
            stride *= int(counts[axis] or 1)
        self._strides = strides

    def _member_counts(self, group: Sequence[int], extent: int) -> list[int]:
        if len(group) == 1:
            return [extent]
        return [int(self._counts[a] or 1) for a in group]

    def ifds(
        self, position_index: int, storage_shape: Sequence[int], planes: np.ndarray
    ) -> np.ndarray:
        """IFD of each plane (flat storage-order indices) of one position."""
        planes = np.asarray(planes, dtype=np.int64)
        ifd = np.zeros(planes.shape, dtype=np.int64)
        if storage_shape:
            index = np.unravel_index(planes, tuple(storage_shape))
            for k, group in enumerate(self._router.storage_groups):
                # a merged axis: split each index into its members' digits
                members = self._member_counts(group, storage_shape[k])
                digits = np.unravel_index(index[k], members)
                for digit, axis in zip(digits, group):
                    ifd += digit.astype(np.int64) * self._strides[axis]
        pax = self._router.position_axis
        if pax is not None and not self._per_position_file:
            ifd += position_index * self._strides[pax]
        return ifd

    def written_planes(
        self, position_index: int, storage_shape: Sequence[int], limit: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(planes, IFDs) of one position among IFDs below ``limit``, by plane."""
        ifd = np.arange(limit, dtype=np.int64)
        pax = self._router.position_axis
        # the slowest axis of the file takes what the others leave (no modulo)
        slowest = next((a for a, stride in enumerate(self._strides) if stride), None)

        def digit(axis: int) -> np.ndarray:
            count = self._counts[axis]
            value = ifd // self._strides[axis]
            return value if count is None or axis == slowest else value % count

        if pax is not None and not self._per_position_file:
            ifd = ifd[digit(pax) == position_index]

        plane = np.zeros(ifd.shape, dtype=np.int64)
        for k, group in enumerate(self._router.storage_groups):
            members = self._member_counts(group, int(storage_shape[k]))
            index = np.zeros(ifd.shape, dtype=np.int64)
            inside = np.ones(ifd.shape, dtype=bool)
            for axis, count in zip(group, members):
                value = digit(axis)
                inside &= value < count
                index = index * count + value
            plane, ifd, index = plane[inside], ifd[inside], index[inside]
            plane = plane * int(storage_shape[k]) + index
        order = np.argsort(plane, kind="stable")
        return plane[order], ifd[order]

    def declared_runs(
        self, position_index: int, storage_shape: Sequence[int]
    ) -> list[tuple[int, int, int]]:
        """``tiff_data_runs`` of every plane of ``storage_shape``, in O(runs).

        Planes and IFDs are both mixed-radix numbers over the same digits (the
        position's digit only in the IFD of a file shared by positions): in
        storage order and in acquisition order. Consecutive planes have
        consecutive IFDs exactly over the digits that both orders end with, so
        every run spans those digits (axes of one entry aside) and starts at
        each combination of the others, unless it meets the next one.
        """
        router = self._router
        plane_digits: list[tuple[int, int]] = []
        for k, group in enumerate(router.storage_groups):
            members = self._member_counts(group, int(storage_shape[k]))
            plane_digits += list(zip(group, members))
        extent = dict(plane_digits)
        pax = router.position_axis
        ifd_digits = [
            (axis, int(self._counts[axis] or 1) if axis == pax else extent[axis])
            for axis in range(len(self._counts))
            if not (self._per_position_file and axis == pax)
        ]
        plane_order = [a for a, n in plane_digits if n != 1]
        ifd_order = [a for a, n in ifd_digits if n != 1]
        common = 0
        while (
            common < min(len(plane_order), len(ifd_order))
            and plane_order[-1 - common] == ifd_order[-1 - common]
        ):
            common += 1
        run = math.prod(extent[a] for a in plane_order[len(plane_order) - common :])
        total = math.prod(n for _, n in plane_digits)
        if total == 0:
            return []
        starts = np.arange(0, total, run, dtype=np.int64)
        ifds = self.ifds(position_index, storage_shape, starts)
        # neighbours can still meet where a digit wraps (IFD 5, then 6)
        joined = np.ones(starts.size, dtype=bool)
        joined[1:] = ifds[1:] != ifds[:-1] + run
        first = np.flatnonzero(joined)
        counts = np.diff(np.append(first, starts.size)) * run
        return [
            (int(starts[i]), int(ifds[i]), int(n))
            for i, n in zip(first.tolist(), counts.tolist())
        ]


def tiff_data_runs(planes: np.ndarray, ifds: np.ndarray) -> list[tuple[int, int, int]]:
    """(first plane, first IFD, plane count) runs of consecutive planes and IFDs.

    ``planes`` ascending, ``ifds`` the IFD of each.
    """
    if planes.size == 0:
        return []
    starts = np.ones(planes.size, dtype=bool)
    starts[1:] = (planes[1:] != planes[:-1] + 1) | (ifds[1:] != ifds[:-1] + 1)
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, planes.size))
    return [
        (int(planes[i]), int(ifds[i]), int(n))
        for i, n in zip(first.tolist(), counts.tolist())
    ]
