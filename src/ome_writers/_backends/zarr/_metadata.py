"""OME-Zarr 0.5 metadata and group layout, as plain dicts.

Pure functions of the settings: no I/O and no engine, so every Zarr backend
gets the same hierarchy and the tests can check it without writing pixels.

Layouts, chosen from the settings:

- ``image``: no position dimension. ``output_path`` is the multiscales image
  group; its array is ``0``.
- ``bioformats2raw``: a position dimension without a plate. The root carries
  ``bioformats2raw.layout``; position ``p`` is the image group ``<p>/`` (array
  ``<p>/0``); ``OME/`` lists the series and holds ``METADATA.ome.xml``
  (written by ``_zarr_ome_xml``; the only layout that has it).
- ``plate``: ``AcquisitionSettings.plate`` is set. The root is the plate group;
  each position is a field ``<row>/<column>/<field>/`` of its well, fields
  numbered from 0 in position order. Only rows and wells that hold a position
  get a group.

Position names are never used as paths (they go into the multiscales
``name``), so a name such as ``"../x"`` cannot escape ``output_path``. Plate
row and column names are path components: they must be alphanumeric, as the
HCS specification requires, or the stream is refused.

The project's own attributes live under the key ``"ome_writers"`` (see
``NAMESPACE``): on the root group the settings, global metadata and frame
count; on each image group its ``Position`` and the per-frame metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ome_writers._models import Channel, Position
from ome_writers._pyramid import frame_tile, z_axis
from ome_writers._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ome_writers._models import Dimension
    from ome_writers._pyramid import Pyramid
    from ome_writers._settings import AcquisitionSettings

NGFF_VERSION = "0.5"
NAMESPACE = "ome_writers"
ARRAY_NAME = "0"

_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9]+")
_DEFAULT_COLORS = ("00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")

#: common spellings -> UDUNITS-2 names allowed by OME-Zarr
_UNIT_ALIASES = {
    "um": "micrometer",
    "µm": "micrometer",
    "micron": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "pm": "picometer",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "us": "microsecond",
    "µs": "microsecond",
    "ns": "nanosecond",
    "min": "minute",
    "h": "hour",
}
_SPACE_UNITS = frozenset(
    {"angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer"}
    | {"foot", "gigameter", "hectometer", "inch", "kilometer", "megameter", "meter"}
    | {"micrometer", "mile", "millimeter", "nanometer", "parsec", "petameter"}
    | {"picometer", "terameter", "yard", "yoctometer", "yottameter", "zeptometer"}
    | {"zettameter"}
)
_TIME_UNITS = frozenset(
    {"attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond"}
    | {"gigasecond", "hectosecond", "hour", "kilosecond", "megasecond", "microsecond"}
    | {"millisecond", "minute", "nanosecond", "petasecond", "picosecond", "second"}
    | {"terasecond", "yoctosecond", "yottasecond", "zeptosecond", "zettasecond"}
)


@dataclass(frozen=True)
class ImageNode:
    """One position's multiscales image group."""

    path: str
    name: str
    position: Position

    @property
    def array_path(self) -> str:
        """Path of the full-resolution array, relative to the root."""
        return f"{self.path}/{ARRAY_NAME}" if self.path else ARRAY_NAME


@dataclass(frozen=True)
class ZarrLayout:
    """The group hierarchy of one output.

    ``groups`` maps every non-image group (relative path, ``""`` for the root)
    to its ``ome`` attributes, or to None for a plain group.
    """

    kind: Literal["image", "bioformats2raw", "plate"]
    images: tuple[ImageNode, ...]
    groups: dict[str, dict[str, Any] | None] = field(default_factory=dict)


def check_path_component(value: str, what: str) -> str:
    """``value`` if it is a safe path component, else ``ValueError``."""
    if not _SAFE_COMPONENT.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} cannot be used as a Zarr group name: it must be "
            "non-empty and alphanumeric (no '/', '..', spaces or dots); rename it"
        )
    return value


_UNSAFE_GROUP_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


def group_names(
    names: Sequence[str], *, taken: Sequence[str] = (), alphanumeric: bool = False
) -> list[str]:
    """Safe, unique group names for ``names`` (see the module notes).

    ``alphanumeric``: drop every other character, as HCS field paths require.

    >>> group_names(["a", "a", "../x", "", "OME", "A 1"], taken=["OME"])
    ['a', 'a_1', 'p2', 'p3', 'OME_1', 'A_1']
    >>> group_names(["fov-0", "fov0", "?"], alphanumeric=True)
    ['fov0', 'fov01', 'p2']
    >>> group_names([" ", "_", "_"])
    ['_', 'p1', 'p2']
    """
    used = set(taken)
    out = []
    separator = "" if alphanumeric else "_"
    for index, name in enumerate(names):
        if alphanumeric:
            safe = _NOT_ALPHANUMERIC.sub("", name)
        else:
            safe = _UNSAFE_GROUP_CHARS.sub("_", name)
        if not safe or safe.startswith((".", "__")):
            safe = f"p{index}"
        candidate, k = safe, 0
        while candidate in used:
            k += 1
            candidate = f"{safe}{separator}{k}"
            if candidate.startswith("__"):  # Zarr v3 reserves the prefix
                safe, candidate, k = f"p{index}", f"p{index}", 0
        used.add(candidate)
        out.append(candidate)
    return out


def _series_name(position: Position) -> str:
    if position.grid_row is not None and position.grid_column is not None:
        return f"{position.name}_{position.grid_row}_{position.grid_column}"
    return position.name


def build_layout(settings: AcquisitionSettings) -> ZarrLayout:
    """The hierarchy for ``settings``; raises ``ValueError`` for unsafe names."""
    positions = settings.positions
    if settings.plate is not None:
        return _plate_layout(settings)
    if len(positions) == 1:
        return ZarrLayout("image", (ImageNode("", positions[0].name, positions[0]),))
    paths = group_names([_series_name(p) for p in positions], taken=["OME"])
    images = tuple(
        ImageNode(path, pos.name, pos) for path, pos in zip(paths, positions)
    )
    series = [node.path for node in images]
    groups: dict[str, dict[str, Any] | None] = {
        "": {"version": NGFF_VERSION, "bioformats2raw.layout": 3},
        "OME": {"version": NGFF_VERSION, "series": series},
    }
    return ZarrLayout("bioformats2raw", images, groups)


def _plate_layout(settings: AcquisitionSettings) -> ZarrLayout:
    plate = settings.plate
    assert plate is not None
    rows = [check_path_component(r, "plate row name") for r in plate.row_names]
    columns = [check_path_component(c, "plate column name") for c in plate.column_names]
    fields: dict[tuple[str, str], list[str]] = {}
    images: list[ImageNode] = []
    for pos in settings.positions:
        if pos.plate_row is None or pos.plate_column is None:
            raise ValueError(
                f"position {pos.name!r} has no plate_row/plate_column, but the "
                "acquisition has a plate: give every position its well, or drop "
                "AcquisitionSettings.plate"
            )
        well = fields.setdefault((pos.plate_row, pos.plate_column), [])
        # fields are named after their position, unique within the well
        (field_name,) = group_names([pos.name], taken=well, alphanumeric=True)
        images.append(
            ImageNode(f"{pos.plate_row}/{pos.plate_column}/{field_name}", pos.name, pos)
        )
        well.append(field_name)
    wells = sorted(fields, key=lambda rc: (rows.index(rc[0]), columns.index(rc[1])))
    max_fields = max(len(v) for v in fields.values())
    plate_meta: dict[str, Any] = {
        "version": NGFF_VERSION,
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": [
            {
                "path": f"{r}/{c}",
                "rowIndex": rows.index(r),
                "columnIndex": columns.index(c),
            }
            for r, c in wells
        ],
        "acquisitions": [
            {"id": 0, "name": plate.name or "0", "maximumfieldcount": max_fields}
        ],
        "field_count": max_fields,
    }
    if plate.name:
        plate_meta["name"] = plate.name
    groups: dict[str, dict[str, Any] | None] = {
        "": {"version": NGFF_VERSION, "plate": plate_meta}
    }
    for r, c in wells:
        groups.setdefault(r, None)
        groups[f"{r}/{c}"] = {
            "version": NGFF_VERSION,
            "well": {
                "images": [{"path": name, "acquisition": 0} for name in fields[(r, c)]]
            },
        }
    return ZarrLayout("plate", tuple(images), groups)


# ---------------------------------------------------------------- image groups


def storage_dimensions(settings: AcquisitionSettings) -> list[Dimension]:
    """The array's dimensions in storage order, frame dimensions last."""
    return [*settings.stored_dimensions, *settings.frame_dimensions]


def ome_unit(dim: Dimension) -> str | None:
    """The UDUNITS-2 unit for ``dim``, or None when it has none OME-Zarr allows."""
    if dim.unit is None:
        return None
    unit = _UNIT_ALIASES.get(dim.unit, dim.unit.lower())
    if dim.type == "space" and unit in _SPACE_UNITS:
        return unit
    if dim.type == "time" and unit in _TIME_UNITS:
        return unit
    return None


def axes_metadata(dims: list[Dimension]) -> list[dict[str, Any]]:
    """OME ``axes`` for the storage dimensions."""
    out = []
    for d in dims:
        axis: dict[str, Any] = {"name": d.name}
        if d.type in ("space", "time", "channel"):
            axis["type"] = d.type
        unit = ome_unit(d)
        if unit is not None:
            axis["unit"] = unit
        out.append(axis)
    return out


#: micrometers in one unit of each length unit a stage coordinate may meet
_UM_PER_UNIT = {
    "micrometer": 1.0,
    "nanometer": 1e-3,
    "picometer": 1e-6,
    "angstrom": 1e-4,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
}


def _stage_offsets(dims: list[Dimension], position: Position) -> list[float]:
    """The position's stage coordinates along x, y (the frame) and z, in axis units.

    Stage coordinates are micrometers; an axis in another length unit gets
    them converted, and an axis without a length unit gets none.
    """
    offsets = [0.0] * len(dims)
    index_space = [i for i, d in enumerate(dims[:-2]) if d.type == "space"]
    targets = [
        (len(dims) - 1, position.x_coord),
        (len(dims) - 2, position.y_coord),
        (index_space[0] if len(index_space) == 1 else None, position.z_coord),
    ]
    for axis, value in targets:
        if axis is None or value is None:
            continue
        # no unit declared: micrometers, like the stage
        unit = "micrometer" if dims[axis].unit is None else ome_unit(dims[axis])
        um_per_unit = _UM_PER_UNIT.get(unit) if unit else None
        if um_per_unit is not None:
            offsets[axis] = value / um_per_unit
    return offsets


_PYRAMID_DESCRIPTIONS = {
    "mean": "each level halves Y and X: the mean of 2x2 pixels, integers "
    "rounded half up; an odd last row or column is paired with itself",
    "decimate": "each level halves Y and X: the top-left pixel of 2x2",
    "min": "each level halves Y and X: the minimum of 2x2 pixels",
    "max": "each level halves Y and X: the maximum of 2x2 pixels",
}


def image_metadata(
    settings: AcquisitionSettings,
    node: ImageNode,
    windows: Sequence[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """The ``ome`` attributes of one image group.

    ``translation`` is each axis's ``Dimension.translation`` plus the
    position's stage coordinates (``x_coord``/``y_coord`` on the frame axes,
    ``z_coord`` on a lone non-frame space axis), so viewers place positions
    and plate fields where they were imaged. ``windows``: each channel's
    (min, max) of the data, for the float rendering window. With a pyramid,
    ``datasets`` lists ``"0"``, ``"1"``, ... largest first, each level's
    ``scale`` doubled along the halved axes and its ``translation`` moved to
    the center of the block a pixel stands for (not for ``decimate``).
    """
    dims = storage_dimensions(settings)
    scale = [float(d.scale or 1.0) for d in dims]
    stage = _stage_offsets(dims, node.position)
    translation = [float(d.translation or 0.0) + o for d, o in zip(dims, stage)]
    pyramid: Pyramid | None = getattr(settings.format, "pyramid", None)
    levels = 1
    reduced = [len(dims) - 2, len(dims) - 1]
    if pyramid is not None:
        levels = pyramid.level_count(
            settings.frame_shape, frame_tile(settings.frame_dimensions)
        )
        zi = z_axis(settings.stored_dimensions) if pyramid.downsample_z else None
        if zi is not None:
            reduced.insert(0, zi)
    datasets = []
    for level in range(levels):
        factor = 2**level
        # a level pixel stands for a block of 2**level pixels along each halved
        # axis: its center is (2**level - 1) / 2 pixels in from the block's
        # first one (decimate keeps that first pixel: no shift)
        shift = (factor - 1) / 2 if pyramid is not None and pyramid.shifts_center else 0
        level_scale = [
            s * factor if axis in reduced else s for axis, s in enumerate(scale)
        ]
        level_translation = [
            t + s * shift if axis in reduced else t
            for axis, (t, s) in enumerate(zip(translation, scale))
        ]
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": level_scale}]
        if any(level_translation):
            transforms.append({"type": "translation", "translation": level_translation})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    if levels > 1:
        assert pyramid is not None
        # OME-Zarr 0.5 SHOULD: the downscaling method and its parameters
        kind: str = pyramid.method
        about: dict[str, Any] = {
            "description": _PYRAMID_DESCRIPTIONS[pyramid.method]
            + (", z halved too" if pyramid.downsample_z else ""),
            "method": "ome_writers.Pyramid",
            "version": __version__,
            "kwargs": pyramid.model_dump(mode="json"),
        }
    else:
        kind = "none"
        about = {"description": "full resolution only, no lower levels"}
    meta: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": node.name,
                "axes": axes_metadata(dims),
                "datasets": datasets,
                "type": kind,
                "metadata": about,
            }
        ],
    }
    channels = [d for d in dims if d.type == "channel"]
    if channels:
        meta["omero"] = omero_metadata(channels[0], settings.dtype, windows)
    return meta


def omero_metadata(
    dim: Dimension,
    dtype: str,
    windows: Sequence[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """``omero`` rendering settings from a channel dimension's coords.

    Integer data: the dtype's range. Float data: each channel's measured
    (min, max) from ``windows``, else 0-1.
    """
    np_dtype = np.dtype(dtype)
    if np_dtype.kind in "iu":
        info = np.iinfo(np_dtype)
        ranges = [(float(info.min), float(info.max))] * int(dim.count or 0)
    else:
        ranges = list(windows or []) or [(0.0, 1.0)] * int(dim.count or 0)
    coords = dim.coords or [Channel(name=str(i)) for i in range(dim.count or 0)]
    channels = []
    for i, coord in enumerate(coords):
        channel = coord if isinstance(coord, Channel) else Channel(name=str(coord))
        low, high = ranges[i] if i < len(ranges) else (0.0, 1.0)
        channels.append(
            {
                "label": channel.name,
                "color": (channel.color or _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)])[
                    :6
                ],
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
                "window": {"start": low, "end": high, "min": low, "max": high},
            }
        )
    return {
        "channels": channels,
        "rdefs": {"defaultT": 0, "defaultZ": 0, "model": "color"},
    }


def group_document(attributes: dict[str, Any]) -> dict[str, Any]:
    """A Zarr v3 group ``zarr.json`` with ``attributes``."""
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}
