"""useq-schema ``MDASequence`` -> acquisition settings.

A sequence describes its events; a stream needs one rectangular array whose
acquisition order is the order in which those events arrive. Most sequences
are such an array: one dimension per used axis, in ``seq.axis_order``. Three
things need care:

- **positions and tiles**: stage positions (``p``) and grid tiles (``g``)
  become one position dimension, at the place of whichever of the two comes
  first in the axis order, listing every (position, tile) in the order they
  are visited. This only matches the event order when ``p`` and ``g`` are
  adjacent. A position's own grid (``Position(sequence=MDASequence(
  grid_plan=...))``) is visited by useq innermost, after every axis of the
  main sequence, so it flattens correctly only when ``p`` is the innermost
  axis used.
- **unbounded time**: a duration plan with interval 0 runs until stopped;
  it becomes ``t`` with ``count=None``.
- **ragged sequences**: whatever cannot be one array (channels skipping time
  points or z-stacks, positions with their own t/c/z, the cases above) is
  refused with ``NotImplementedError`` naming the cause, before any frame.
  pymmcore-plus catches that and falls back to a generic ``(t, y, x)`` stream.

Position names follow the conventions acquisition software and ome-writers
0.3 files use: a stage position's own name or its index; the same name for
each tile of a position (the grid cell tells them apart), with a
``_g<tile>``-style suffix where tiles have no grid cell; ``"0000"``,
``"0001"``, ... for a grid without stage positions; ``"fov<k>"`` for the
``k``-th field of every well of a plate. Stage coordinates are given only
where they are absolute: a relative grid with no stage position around it
leaves them unset (its offsets are not stage coordinates).

useq-schema is optional: it is imported when these functions are called.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, TypedDict

from ome_writers._models import (
    Channel,
    Dimension,
    Plate,
    Position,
    StandardAxis,
    plate_row_name,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import useq

#: (scale, unit), e.g. ``(0.5, "second")``
UnitTuple = tuple[float, str]

_CHUNKABLE_AXES = ("t", "c", "z", "y", "x")


class AcquisitionSettingsDict(TypedDict):
    """What ``useq_to_acquisition_settings`` returns."""

    dimensions: list[Dimension]
    plate: Plate | None


def useq_to_acquisition_settings(
    seq: useq.MDASequence,
    image_width: int,
    image_height: int,
    *,
    units: Mapping[str, UnitTuple | None] | None = None,
    pixel_size_um: float | None = None,
    chunk_shapes: Mapping[str, int] | None = None,
    shard_shapes: Mapping[str, int] | None = None,
) -> AcquisitionSettingsDict:
    """The dimensions and plate of a useq-schema ``MDASequence``.

    The result merges into ``AcquisitionSettings``:
    ``AcquisitionSettings(root_path=..., dtype="uint16",
    **useq_to_acquisition_settings(seq, 512, 512))``.

    Parameters
    ----------
    seq
        The sequence. Requires ``pip install 'ome-writers[useq]'``.
    image_width, image_height
        Frame size in pixels (the ``x`` and ``y`` dimensions).
    units
        Axis name (``t c z y x``) to ``(scale, unit)``, replacing what the
        sequence implies (time plan interval in seconds, z step in
        micrometers, ``pixel_size_um``); None keeps that default.
    pixel_size_um
        Pixel size, the scale of ``y`` and ``x``; a value <= 0 is ignored with
        a warning.
    chunk_shapes
        Axis name (``t c z y x``) to chunk size in elements (pixels for y/x).
    shard_shapes
        Axis name (``t c z y x``) to shard size in chunks.

    Returns
    -------
    AcquisitionSettingsDict
        ``{"dimensions": [...], "plate": Plate | None}``.

    Raises
    ------
    NotImplementedError
        The sequence is not one rectangular array (see the module notes).
    BackendUnavailableError
        useq-schema is not installed (an ``ImportError``).
    """
    return {
        "dimensions": _dimensions(
            seq,
            image_width,
            image_height,
            units=units,
            pixel_size_um=pixel_size_um,
            chunk_shapes=chunk_shapes,
            shard_shapes=shard_shapes,
        ),
        "plate": _plate(seq),
    }


def dims_from_useq(
    seq: useq.MDASequence,
    image_width: int,
    image_height: int,
    *,
    units: Mapping[str, UnitTuple | None] | None = None,
    pixel_size_um: float | None = None,
    chunk_shapes: Mapping[str, int] | None = None,
    shard_shapes: Mapping[str, int] | None = None,
) -> list[Dimension]:
    """Deprecated: the ``"dimensions"`` of ``useq_to_acquisition_settings``.

    Same arguments; it drops the plate, so prefer the newer function.
    """
    warnings.warn(
        "dims_from_useq is deprecated; use useq_to_acquisition_settings(...) "
        "and take its 'dimensions' (it also returns the plate)",
        DeprecationWarning,
        stacklevel=2,
    )
    return useq_to_acquisition_settings(
        seq,
        image_width,
        image_height,
        units=units,
        pixel_size_um=pixel_size_um,
        chunk_shapes=chunk_shapes,
        shard_shapes=shard_shapes,
    )["dimensions"]


# ----------------------------------------------------------------- internals


def _import_useq() -> Any:
    try:
        import useq
    except ImportError as exc:
        from ome_writers._errors import BackendUnavailableError

        raise BackendUnavailableError(
            "converting a useq MDASequence needs useq-schema; install it with "
            "pip install 'ome-writers[useq]'"
        ) from exc
    return useq


def _dimensions(
    seq: useq.MDASequence,
    image_width: int,
    image_height: int,
    *,
    units: Mapping[str, UnitTuple | None] | None,
    pixel_size_um: float | None,
    chunk_shapes: Mapping[str, int] | None,
    shard_shapes: Mapping[str, int] | None,
) -> list[Dimension]:
    useq = _import_useq()
    if not isinstance(seq, useq.MDASequence):
        raise TypeError(
            f"seq must be a useq.MDASequence, got {type(seq).__name__}; "
            "build one with useq.MDASequence(...)"
        )
    units = dict(units or {})
    chunks = _axis_mapping(chunk_shapes, "chunk_shapes")
    shards = _axis_mapping(shard_shapes, "shard_shapes")
    _check_rectangular(seq, useq)
    if pixel_size_um is not None and pixel_size_um <= 0:
        warnings.warn(
            f"pixel_size_um={pixel_size_um!r} is not > 0 and is ignored; the "
            "y/x dimensions get no scale",
            UserWarning,
            stacklevel=3,
        )
        pixel_size_um = None

    time_count = _time_count(seq)
    sizes = _untimed_sizes(seq)
    positions = _positions(seq, useq)

    dims: list[Dimension] = []
    for axis in map(str, seq.axis_order):
        if axis in ("p", "g"):
            if positions and not any(d.type == "position" for d in dims):
                dims.append(
                    Dimension(name="p", type="position", coords=list(positions))
                )
            continue
        if axis != "t" and not sizes.get(axis):
            continue
        if axis == "t" and time_count == 0:
            continue
        std = StandardAxis(axis)
        kwargs: dict[str, Any] = {
            "type": std.dimension_type(),
            "count": time_count if axis == "t" else sizes[axis],
        }
        if axis == "t":
            kwargs.update(unit="second", scale=_time_interval_s(seq))
        elif axis == "z":
            kwargs.update(unit="micrometer", scale=_z_step_um(seq))
        elif axis == "c":
            kwargs["coords"] = [Channel(name=ch.config) for ch in seq.channels]
        dims.append(_dimension(axis, kwargs, units, chunks, shards))
    for axis, count in (("y", image_height), ("x", image_width)):
        kwargs = {"type": "space", "count": count, "unit": "micrometer"}
        kwargs["scale"] = pixel_size_um
        dims.append(_dimension(axis, kwargs, units, chunks, shards))
    return dims


def _dimension(
    axis: str,
    kwargs: dict[str, Any],
    units: Mapping[str, UnitTuple | None],
    chunks: Mapping[str, int],
    shards: Mapping[str, int],
) -> Dimension:
    override = units.get(axis)
    if override is not None:
        try:
            scale, unit = override
        except (TypeError, ValueError):
            raise ValueError(
                f"units[{axis!r}] = {override!r} is not a (scale, unit) pair; "
                "give e.g. (0.5, 'second'), or None for the default"
            ) from None
        kwargs.update(scale=scale, unit=unit)
    return Dimension(
        name=axis,
        chunk_size=chunks.get(axis),
        shard_size_chunks=shards.get(axis),
        **kwargs,
    )


def _axis_mapping(mapping: Mapping[str, int] | None, label: str) -> dict[str, int]:
    out = {str(k): v for k, v in (mapping or {}).items()}
    unknown = sorted(k for k in out if k not in _CHUNKABLE_AXES)
    if unknown:
        raise ValueError(
            f"{label} has unknown axis name(s) {unknown!r}; use the axes "
            f"{list(_CHUNKABLE_AXES)!r} (positions are never chunked together)"
        )
    return out


def _time_count(seq: useq.MDASequence) -> int | None:
    """Number of time points; None when the plan runs until stopped."""
    if seq.time_plan is None:
        return 0
    try:
        return len(list(seq.time_plan))
    except ZeroDivisionError:  # a duration plan with interval 0
        return None


def _time_interval_s(seq: useq.MDASequence) -> float | None:
    interval = getattr(seq.time_plan, "interval", None)  # multi-phase: none
    seconds = None if interval is None else interval.total_seconds()
    return seconds if seconds else None


def _z_step_um(seq: useq.MDASequence) -> float | None:
    step = getattr(seq.z_plan, "step", None)  # absolute/relative lists: none
    return abs(float(step)) if step else None


def _check_rectangular(seq: useq.MDASequence, useq: Any) -> None:
    """Raise NotImplementedError for what cannot be one rectangular array."""
    channels = list(seq.channels)
    if seq.z_plan is not None and any(not ch.do_stack for ch in channels):
        names = [ch.config for ch in channels if not ch.do_stack]
        raise NotImplementedError(
            f"channels {names!r} have do_stack=False beside a z plan: they take "
            "one plane while the others take a stack, which is not one "
            "rectangular array; acquire them in a separate sequence"
        )
    skipping = [ch.config for ch in channels if ch.acquire_every != 1]
    if skipping:
        raise NotImplementedError(
            f"channels {skipping!r} have acquire_every != 1: they skip time "
            "points the others take, which is not one rectangular array; acquire "
            "them in a separate sequence"
        )
    is_plate = isinstance(seq.stage_positions, useq.WellPlatePlan)
    if is_plate and seq.grid_plan is not None:
        raise NotImplementedError(
            "a WellPlatePlan with a grid_plan is not supported: tile each well "
            "with the plan's well_points_plan instead"
        )
    has_own_grid = False
    if not is_plate:
        for index, pos in enumerate(seq.stage_positions):
            sub = pos.sequence
            if sub is None:
                continue
            own = [
                name
                for name, value in (
                    ("time_plan", sub.time_plan),
                    ("channels", sub.channels),
                    ("z_plan", sub.z_plan),
                    ("stage_positions", sub.stage_positions),
                )
                if value
            ]
            if own:
                raise NotImplementedError(
                    f"stage position {pos.name or index!r} has its own {own!r}: "
                    "positions with their own time, channel, z or position plans "
                    "have different shapes, which is not one rectangular array; "
                    "a position's sub-sequence may only hold a grid_plan"
                )
            has_own_grid = has_own_grid or sub.grid_plan is not None
    order = [str(a) for a in seq.axis_order]
    used = _used_axes(seq)
    if "p" in used and "g" in used:
        p, g = order.index("p"), order.index("g")
        between = [a for a in order[min(p, g) + 1 : max(p, g)] if a in used]
        if between:
            raise NotImplementedError(
                f"axis_order {''.join(order)!r} puts {between!r} between the "
                "position (p) and grid (g) axes: they are flattened into one "
                "position dimension, which needs them adjacent; reorder the axes "
                "(e.g. 'tpgcz')"
            )
    if has_own_grid:
        if seq.grid_plan is not None:
            raise NotImplementedError(
                "stage positions with their own grid_plan beside the sequence's "
                "grid_plan: useq tiles each tile again, which is not one position "
                "list; use one of the two"
            )
        inner = [a for a in order[order.index("p") + 1 :] if a in used]
        if inner:
            raise NotImplementedError(
                f"stage positions with their own grid_plan, and axes {inner!r} "
                "inside the position axis: useq visits a position's own tiles "
                "after those axes, so the tiles interleave with them and are not "
                "one rectangular array; use the sequence's grid_plan instead, or "
                "make p the innermost axis"
            )


def _untimed_sizes(seq: useq.MDASequence) -> dict[str, int]:
    """Size of every axis but time (which useq cannot size when unbounded)."""
    stripped = seq.model_copy(update={"time_plan": None})
    return {str(axis): n for axis, n in stripped.sizes.items()}


def _used_axes(seq: useq.MDASequence) -> set[str]:
    used = {axis for axis, n in _untimed_sizes(seq).items() if n}
    if _time_count(seq) != 0:
        used.add("t")
    return used


# ----------------------------------------------------------------- positions


def _positions(seq: useq.MDASequence, useq: Any) -> list[Position]:
    """Every (stage position, tile) in the order the sequence visits them."""
    stage = seq.stage_positions
    if isinstance(stage, useq.WellPlatePlan):
        return _well_plate_positions(stage, useq)
    grid = list(seq.grid_plan) if seq.grid_plan is not None else None
    if not stage:
        return [
            _tile(f"{i:04d}", None, tile, i, None) for i, tile in enumerate(grid or [])
        ]
    order = [str(a) for a in seq.axis_order]
    if grid and order.index("g") < order.index("p"):
        return [
            _tile(_name(pos, p), pos, tile, g, p)
            for g, tile in enumerate(grid)
            for p, pos in enumerate(stage)
        ]
    out: list[Position] = []
    several = len(stage) > 1
    for p, pos in enumerate(stage):
        own = pos.sequence.grid_plan if pos.sequence is not None else None
        tiles = list(own) if own is not None else grid
        if not tiles:
            out.append(_stage_position(pos, p))
            continue
        for g, tile in enumerate(tiles):
            out.append(_tile(_name(pos, p), pos, tile, g, p if several else None))
    return out


def _name(pos: Any, index: int) -> str:
    return str(pos.name) if pos.name else str(index)


def _stage_position(pos: Any, index: int) -> Position:
    row, column = _plate_well(pos)
    return Position(
        name=_name(pos, index),
        plate_row=row,
        plate_column=column,
        grid_row=pos.grid_row,
        grid_column=pos.grid_col,
        x_coord=pos.x,
        y_coord=pos.y,
        z_coord=pos.z,
    )


def _tile(
    name: str, pos: Any | None, tile: Any, tile_index: int, pos_index: int | None
) -> Position:
    """One tile of a grid, around stage position ``pos`` (None: no position)."""
    if pos is not None and tile.grid_row is None and tile.grid_col is None:
        # no grid cell tells this position's tiles apart (random points)
        suffix = f"g{tile_index:04d}"
        if pos_index is not None:
            suffix = f"p{pos_index:04d}_{suffix}"
        name = f"{name}_{suffix}"
    x = y = None
    if not tile.is_relative:
        x, y = tile.x, tile.y
    elif pos is not None and pos.x is not None and pos.y is not None:
        x, y = pos.x + (tile.x or 0.0), pos.y + (tile.y or 0.0)
    row, column = _plate_well(pos) if pos is not None else (None, None)
    return Position(
        name=name,
        plate_row=row,
        plate_column=column,
        grid_row=tile.grid_row,
        grid_column=tile.grid_col,
        x_coord=x,
        y_coord=y,
        z_coord=None if pos is None else pos.z,
    )


def _well_plate_positions(plan: Any, useq: Any) -> list[Position]:
    """One position per (well, field), fields named ``fov<k>`` in every well."""
    points = plan.well_points_plan
    fields = [points] if isinstance(points, useq.RelativePosition) else list(points)
    out = []
    for i, pos in enumerate(plan):
        field = fields[i % len(fields)]
        out.append(
            Position(
                name=f"fov{i % len(fields)}",
                plate_row=plate_row_name(pos.plate_row),
                plate_column=str(pos.plate_col + 1),
                grid_row=field.grid_row,
                grid_column=field.grid_col,
                x_coord=pos.x,
                y_coord=pos.y,
                z_coord=pos.z,
            )
        )
    return out


def _plate_well(pos: Any) -> tuple[str | None, str | None]:
    """useq's 0-based plate row/column as names ("A", "1"), or (None, None)."""
    row, col = pos.plate_row, pos.plate_col
    if row is not None and col is not None:
        return plate_row_name(row), str(col + 1)
    if row is not None or col is not None:
        warnings.warn(
            f"stage position {pos.name!r} has plate_row={row!r} but "
            f"plate_col={col!r}: a well needs both; its plate well is ignored",
            UserWarning,
            stacklevel=5,
        )
    return None, None


def _plate(seq: useq.MDASequence) -> Plate | None:
    """The plate of a WellPlatePlan, or spanned by positions' plate wells."""
    useq = _import_useq()
    stage = seq.stage_positions
    if isinstance(stage, useq.WellPlatePlan):
        plate = stage.plate
        return _plate_of(plate.rows, plate.columns, plate.name or None)
    wells = [
        (p.plate_row, p.plate_col)
        for p in stage
        if p.plate_row is not None and p.plate_col is not None
    ]
    if not wells:
        return None
    rows = max(r for r, _ in wells) + 1
    return _plate_of(rows, max(c for _, c in wells) + 1, None)


def _plate_of(rows: int, columns: int, name: str | None) -> Plate:
    """A plate whose rows are named as useq-schema names them (``AA``, ``AB``)."""
    return Plate(
        row_names=[plate_row_name(i) for i in range(rows)],
        column_names=[str(i + 1) for i in range(columns)],
        name=name,
    )
