"""Where every plane of an OME-TIFF lives: its OME axis and its IFD.

OME's Pixels have exactly three non-frame axes, T, C and Z, stored in any
order (``DimensionOrder``). ``OmeAxes`` maps the acquisition's dimensions onto
them by type (time -> T, channel -> C, space -> Z; an ``"other"`` dimension
takes a free axis, T first) and derives ``DimensionOrder`` from the storage
order, so every permutation the settings allow is written as is.

Pages are written in acquisition order, which need not be the storage order
(a storage order other than acquisition order, or positions interleaved in
one file). ``TiffData`` elements therefore map planes to IFDs explicitly:
``plane_ifds`` computes the IFD of every plane in storage order, and
``tiff_data_runs`` compresses consecutive planes in consecutive IFDs into one
element each, so the common case (acquisition order, one position per file)
needs a single ``TiffData`` however many planes there are.

Pure index math over the settings and the router: no ome-types, no file I/O.
"""

from __future__ import annotations

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


def plane_ifds(
    router: FrameRouter,
    storage_shape: Sequence[int],
    position_index: int,
    *,
    per_position_file: bool,
) -> np.ndarray:
    """IFD of every plane of one position, planes in storage (C) order.

    Pages go to a file in acquisition order: the IFD of a frame is its frame
    number (one file for all positions) or its number among the frames of its
    position (one file per position).
    """
    counts = list(router.counts)
    steps = storage_shape[0] if storage_shape else 1
    if router.is_unbounded:
        counts[0] = steps
    pax = router.position_axis
    strides = [0] * len(counts)
    stride = 1
    for axis in reversed(range(len(counts))):
        if per_position_file and axis == pax:
            continue
        strides[axis] = stride
        stride *= int(counts[axis] or 1)
    ifd = np.zeros(tuple(storage_shape), dtype=np.int64)
    ndim = len(storage_shape)
    for k, group in enumerate(router.storage_groups):
        shape = [1] * ndim
        shape[k] = storage_shape[k]
        # a merged axis: split each index into its members' digits
        digits = np.unravel_index(
            np.arange(storage_shape[k], dtype=np.int64),
            [storage_shape[k]]
            if len(group) == 1
            else [int(counts[a] or 1) for a in group],
        )
        offset = sum(d * strides[a] for d, a in zip(digits, group))
        ifd = ifd + np.asarray(offset, dtype=np.int64).reshape(shape)
    if pax is not None and not per_position_file:
        ifd = ifd + position_index * strides[pax]
    return ifd.reshape(-1)


def tiff_data_runs(ifds: np.ndarray, limit: int) -> list[tuple[int, int, int]]:
    """(first plane, first IFD, plane count) runs of planes with IFD < ``limit``."""
    if ifds.size == 0:
        return []
    valid = ifds < limit
    starts = np.ones(ifds.size, dtype=bool)
    starts[1:] = ~((ifds[1:] == ifds[:-1] + 1) & valid[:-1])
    index = np.flatnonzero(starts & valid)
    runs = []
    bounds = np.flatnonzero(starts)
    next_start = dict(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
    for start in index.tolist():
        stop = next_start.get(start, ifds.size)
        count = int(np.count_nonzero(valid[start:stop]))
        runs.append((start, int(ifds[start]), count))
    return runs
