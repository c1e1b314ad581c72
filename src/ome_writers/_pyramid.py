"""Multiscale pyramids: the settings, the level shapes and the reference math.

``Pyramid`` is part of the format models (``OmeZarrFormat(pyramid=...)``,
``OmeTiffFormat(pyramid=...)``). Everything here is a pure function of the
settings and of numpy arrays, so the writers (``_backends/_downsample``, which
has the compiled kernel), the live views and the tests share one definition
of what each level holds.

The rules, as a microscopist would expect them:

- Each level halves Y and X of the one before (``downsample_z`` also halves
  a ``space`` z axis). An odd size rounds up: the last row (column, plane) is
  paired with itself, as if the edge were repeated. A level's size is thus
  ``ceil(size / 2**k)``.
- ``"mean"``: the average of the 2 x 2 (2 x 2 x 2) block. Integer data is
  rounded half up (towards +infinity), exactly, with no intermediate type
  that could overflow: ``floor((sum + n / 2) / n)``. Floating-point data sums
  in float64, in row-major order of the block, then scales and casts back.
- ``"decimate"``: the block's first sample (top-left, lowest z): no new
  values, no shift.
- ``"min"`` / ``"max"``: the block's minimum / maximum (masks, labels,
  detections that must not vanish).
- ``levels=None``: halve until the smallest level fits one Y/X chunk (the
  ``chunk_size`` of the frame dimensions, for OME-TIFF too), or, where the
  frame is one chunk (the default), a 512 x 512 tile, which is what viewers
  fetch.
- Every level is computed from the full-resolution data (level ``k`` is
  level ``k - 1`` reduced once more: for ``"mean"`` of integers the rounding
  applies at each level).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ome_writers._models import Dimension
    from ome_writers._settings import AcquisitionSettings

PyramidMethod = Literal["mean", "decimate", "min", "max"]

#: the Y/X tile a level must fit when ``levels=None`` and the frame is one chunk
DEFAULT_TILE_PX = 512
#: the most levels ``Pyramid.levels`` may ask for
MAX_LEVELS = 32


class Pyramid(BaseModel):
    """Lower resolutions written beside the full-resolution data, as it streams.

    Parameters
    ----------
    levels
        Resolution levels, the full resolution included (1: none below it).
        None (default): halve until the smallest level fits one Y/X chunk
        (the frame dimensions' ``chunk_size``), or a 512 x 512 tile where the
        frame is a single chunk (the default).
    method
        How 2 x 2 (with ``downsample_z``, 2 x 2 x 2) pixels become one:
        ``"mean"`` (integers rounded half up), ``"decimate"`` (the top-left
        sample), ``"min"`` or ``"max"`` (for masks and label-like data).
    downsample_z
        Also halve a ``space`` dimension that is not the frame (z), pairing
        planes 0-1, 2-3, ... as they arrive; an odd last plane is paired with
        itself. OME-Zarr only: OME-TIFF sub-resolutions are 2D.

    Examples
    --------
    >>> Pyramid(levels=3).level_frame_shapes((100, 37))
    [(100, 37), (50, 19), (25, 10)]
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    levels: int | None = Field(default=None, ge=1, le=MAX_LEVELS)
    method: PyramidMethod = "mean"
    downsample_z: bool = False

    def level_count(
        self, frame_shape: tuple[int, int], tile: tuple[int, int] | None = None
    ) -> int:
        """Levels for a frame of ``frame_shape``, the full resolution included.

        ``tile``: the Y/X size the smallest level must fit when ``levels`` is
        None (default ``DEFAULT_TILE_PX`` square).

        Raises
        ------
        ValueError
            ``levels`` asks for more levels than halving the frame gives (a
            level would be 1 x 1 before the last one).
        """
        limit = max(1 + math.ceil(math.log2(n)) if n > 1 else 1 for n in frame_shape)
        if self.levels is not None:
            if self.levels > limit:
                raise ValueError(
                    f"pyramid levels={self.levels!r}: a {frame_shape[0]} x "
                    f"{frame_shape[1]} frame halves into at most {limit} levels "
                    f"before it is 1 x 1; ask for at most {limit}, or levels=None"
                )
            return self.levels
        tile_y, tile_x = tile or (DEFAULT_TILE_PX, DEFAULT_TILE_PX)
        count = 1
        ny, nx = frame_shape
        while ny > tile_y or nx > tile_x:
            ny, nx = -(-ny // 2), -(-nx // 2)
            count += 1
        return count

    def level_frame_shapes(
        self, frame_shape: tuple[int, int], tile: tuple[int, int] | None = None
    ) -> list[tuple[int, int]]:
        """Each level's (Y, X), largest first."""
        ny, nx = frame_shape
        return [
            (-(-ny // 2**k), -(-nx // 2**k))
            for k in range(self.level_count(frame_shape, tile))
        ]

    @property
    def shifts_center(self) -> bool:
        """True when a level's pixel stands for its whole block (not decimate).

        Its center then lies half a block in from the block's first pixel,
        which the multiscales ``translation`` says.
        """
        return self.method != "decimate"


def frame_tile(dimensions: Sequence[Dimension]) -> tuple[int, int]:
    """The Y/X size ``levels=None`` fits: the frame's chunks, else 512 x 512.

    ``dimensions``: the frame dimensions (Y, X).
    """
    y, x = dimensions[-2], dimensions[-1]
    chunked = [
        d.chunk_size
        for d in (y, x)
        if d.chunk_size is not None and d.chunk_size < (d.count or 0)
    ]
    if not chunked:
        return (DEFAULT_TILE_PX, DEFAULT_TILE_PX)
    return (
        min(y.chunk_size or y.count or 1, y.count or 1),
        min(x.chunk_size or x.count or 1, x.count or 1),
    )


def z_axis(stored: Sequence[Dimension]) -> int | None:
    """Index among the stored non-frame axes of the one ``space`` axis, if any."""
    found = [i for i, d in enumerate(stored) if d.type == "space"]
    return found[0] if len(found) == 1 else None


def check_pyramid(
    pyramid: Pyramid, stored: Sequence[Dimension], format_name: str
) -> None:
    """Refuse a pyramid the stored axes cannot have (called by the formats).

    ``stored``: the stored non-frame axes, storage order.
    """
    if not pyramid.downsample_z:
        return
    if format_name == "ome-tiff":
        raise ValueError(
            "pyramid downsample_z=True: OME-TIFF sub-resolutions are 2D (one per "
            "plane, as SubIFDs); use downsample_z=False, or format='ome-zarr'"
        )
    spaces = [d for d in stored if d.type == "space"]
    if len(spaces) != 1:
        names = [d.name for d in spaces]
        raise ValueError(
            f"pyramid downsample_z=True needs exactly one 'space' dimension besides "
            f"the frame (z); the settings have {names!r}: give one z dimension, "
            "or use downsample_z=False"
        )
    if spaces[0].count is None:
        raise ValueError(
            f"pyramid downsample_z=True: {spaces[0].name!r} is unbounded; its "
            "levels cannot be paired as they grow: bound it, or use "
            "downsample_z=False"
        )


# --------------------------------------------------------------- reference


def _pad_even(array: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """``array`` with the last entry repeated along each odd-sized axis."""
    pad = [(0, 0)] * array.ndim
    for axis in axes:
        pad[axis] = (0, array.shape[axis] % 2)
    return np.pad(array, pad, mode="edge") if any(p[1] for p in pad) else array


def reduce_blocks(
    array: np.ndarray, axes: Sequence[int], method: PyramidMethod
) -> np.ndarray:
    """Halve ``array`` along ``axes`` with ``method`` (see the module notes).

    The reference definition of one level below another: plain numpy, any
    number of other axes, exact for every dtype.

    >>> reduce_blocks(np.array([[1, 2, 4], [4, 6, 9]], "uint8"), (0, 1), "mean")
    array([[3, 7]], dtype=uint8)
    """
    padded = _pad_even(np.asarray(array), axes)
    # every member of each block, in row-major order of the block
    members = [padded]
    for axis in axes:
        members = [
            m[(slice(None),) * axis + (slice(start, None, 2),)]
            for m in members
            for start in (0, 1)
        ]
    n = len(members)
    if method == "decimate":
        return np.ascontiguousarray(members[0])
    if method == "min":
        return np.asarray(np.minimum.reduce(members))
    if method == "max":
        return np.asarray(np.maximum.reduce(members))
    dtype = padded.dtype
    if dtype.kind == "f":
        total = members[0].astype(np.float64)
        for m in members[1:]:
            total = total + m
        return (total * (1.0 / n)).astype(dtype)
    # floor((sum + n/2) / n) without overflow: each x is n * (x >> s) + (x & (n-1))
    shift = n.bit_length() - 1
    high = members[0] >> shift
    low = members[0] & (n - 1)
    for m in members[1:]:
        high = high + (m >> shift)
        low = low + (m & (n - 1))
    return (high + ((low + n // 2) >> shift)).astype(dtype)


def reference_level(
    array: np.ndarray,
    level: int,
    method: PyramidMethod,
    *,
    z_axis: int | None = None,
) -> np.ndarray:
    """Level ``level`` of ``array`` (frame axes last): ``level`` halvings.

    ``z_axis``: an axis also halved (``downsample_z``), else None.
    """
    axes = [array.ndim - 2, array.ndim - 1]
    if z_axis is not None:
        axes.insert(0, z_axis)
    out = np.asarray(array)
    for _ in range(level):
        out = reduce_blocks(out, axes, method)
    return out


def levels_of(settings: AcquisitionSettings) -> int:
    """Levels ``settings`` write, the full resolution included (1 without a pyramid)."""
    pyramid: Pyramid | None = getattr(settings.format, "pyramid", None)
    if pyramid is None:
        return 1
    return pyramid.level_count(
        settings.frame_shape, frame_tile(settings.frame_dimensions)
    )


def pyramid_z_dimension(settings: AcquisitionSettings) -> str | None:
    """The name of the dimension ``downsample_z`` halves, or None."""
    pyramid: Pyramid | None = getattr(settings.format, "pyramid", None)
    if pyramid is None or not pyramid.downsample_z:
        return None
    stored = settings.stored_dimensions
    zi = z_axis(stored)
    return None if zi is None else stored[zi].name
