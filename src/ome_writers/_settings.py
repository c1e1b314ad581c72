"""Declarative acquisition settings.

Everything a stream needs to know before the first frame arrives lives here, as
validated pydantic models, so that a settings object can be written to JSON (the
scratch manifest, the OME-Zarr attributes) and rebuilt from it unchanged:
``AcquisitionSettings.model_validate(settings.model_dump(mode="json"))`` gives
equal settings.

Dimensions are listed in *acquisition order*: the order in which a camera loop
nests them, slowest first. The last two are the frame (Y, X). Only the first
may be unbounded (``count=None``), which is how time-lapses of unknown length
are declared.

Dimension types are inferred where that is unambiguous: from ``Channel`` or
``Position`` objects in ``coords``, from the name of a standard axis
(``x y z c t p``), or from a unit (a time unit gives ``"time"``, a length unit
``"space"``). Anything else is ``"other"``.
"""

from __future__ import annotations

import enum
import math
import re
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_extra_types.color import COLORS_BY_NAME

from ome_writers._formats import (
    FormatModel,
    ScratchFormat,
    format_from_path,
    resolve_format_name,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DimensionType = Literal["space", "time", "channel", "position", "other"]

#: dtypes every format can store, by canonical numpy name.
SUPPORTED_DTYPES = (
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float32",
    "float64",
)

_TIME_UNITS = frozenset(
    {"s", "sec", "second", "ms", "millisecond", "us", "microsecond", "ns"}
    | {"nanosecond", "min", "minute", "h", "hour", "day"}
)
_SPACE_UNITS = frozenset(
    {"m", "meter", "mm", "millimeter", "um", "µm", "micrometer", "micron", "nm"}
    | {"nanometer", "pm", "picometer", "angstrom", "cm", "centimeter"}
)


_UNSET = object()


class _Model(BaseModel):
    # NaN/inf would be written as non-standard JSON and NaN never compares equal
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, allow_inf_nan=False
    )

    def __setattr__(self, name: str, value: Any) -> None:
        # pydantic stores an assigned value before the model's own checks run:
        # a refused value must not stay behind
        before = self.__dict__.get(name, _UNSET)
        try:
            super().__setattr__(name, value)
        except Exception:
            if before is not _UNSET:
                self.__dict__[name] = before
            raise

    #: fields that may also be given positionally, in this order
    _positional: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **data: Any) -> None:
        names = self._positional
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(names)} positional "
                f"argument(s) ({', '.join(names) or 'none'}); got {len(args)}"
            )
        for field_name, value in zip(names, args):
            if field_name in data:
                raise TypeError(
                    f"{type(self).__name__} got {field_name!r} both positionally "
                    "and as a keyword"
                )
            data[field_name] = value
        super().__init__(**data)


class StandardAxis(str, enum.Enum):
    """The conventional microscopy axes, each with its dimension type and unit.

    ``CHANNEL``, ``TIME`` and ``POSITION`` are the same members as ``C``,
    ``T`` and ``P``.

    >>> StandardAxis.Z.dimension_type(), StandardAxis.Z.unit()
    ('space', 'micrometer')
    >>> StandardAxis.CHANNEL is StandardAxis.C
    True
    """

    X = "x"
    Y = "y"
    Z = "z"
    C = "c"
    T = "t"
    P = "p"
    CHANNEL = "c"
    TIME = "t"
    POSITION = "p"

    def dimension_type(self) -> DimensionType:
        """The dimension type of this axis."""
        types: dict[str, DimensionType] = {
            "x": "space",
            "y": "space",
            "z": "space",
            "c": "channel",
            "t": "time",
            "p": "position",
        }
        return types[self.value]

    def unit(self) -> str | None:
        """The default physical unit (UDUNITS-2 name), or None for c and p."""
        units = {"x": "micrometer", "y": "micrometer", "z": "micrometer", "t": "second"}
        return units.get(self.value)

    def to_dimension(
        self,
        *,
        count: int | None = None,
        coords: list[str | Position] | None = None,
        chunk_size: int | None = None,
        shard_size_chunks: int | None = None,
        scale: float | None = None,
    ) -> Dimension:
        """A ``Dimension`` named after this axis, with its type and unit."""
        return Dimension(
            name=self.value,
            count=count,
            coords=coords,
            type=self.dimension_type(),
            unit=self.unit(),
            chunk_size=chunk_size,
            shard_size_chunks=shard_size_chunks,
            scale=scale,
        )


class Channel(_Model):
    """One channel of an acquisition, used as a ``coords`` entry.

    ``color`` is a hex RGB(A) string such as ``"00FF00"`` (a leading ``#``
    is accepted and dropped) or a CSS color name (``"lime"``, ``"magenta"``),
    kept as upper-case hex.
    """

    _positional = ("name",)

    name: str
    excitation_wavelength_nm: float | None = Field(default=None, gt=0)
    emission_wavelength_nm: float | None = Field(default=None, gt=0)
    fluorophore: str | None = None
    color: str | None = None

    @field_validator("color")
    @classmethod
    def _check_color(cls, value: str | None) -> str | None:
        if value is None:
            return None
        hex_part = value.removeprefix("#").upper()
        if re.fullmatch(r"[0-9A-F]{6}([0-9A-F]{2})?", hex_part):
            return hex_part
        rgb = COLORS_BY_NAME.get(value.strip().lower())
        if rgb is None:
            raise ValueError(
                f"color {value!r} is neither a hex RGB(A) string nor a CSS color "
                "name; use e.g. '00FF00' or 'lime'"
            )
        return "".join(f"{c:02X}" for c in rgb[:3])


class Position(_Model):
    """One stage position (field of view), used as a ``coords`` entry.

    ``plate_row``/``plate_column`` place it in a well of
    ``AcquisitionSettings.plate``; ``grid_row``/``grid_column`` place it in a
    tiled grid; ``x_coord``/``y_coord``/``z_coord`` are stage coordinates (µm).
    """

    _positional = ("name",)

    name: str
    plate_row: str | None = None
    plate_column: str | None = None
    grid_row: int | None = None
    grid_column: int | None = None
    x_coord: float | None = None
    y_coord: float | None = None
    z_coord: float | None = None

    @model_validator(mode="after")
    def _check_pairs(self) -> Position:
        for row, column in (("plate_row", "plate_column"), ("grid_row", "grid_column")):
            values = (getattr(self, row), getattr(self, column))
            if (values[0] is None) != (values[1] is None):
                raise ValueError(
                    f"position {self.name!r}: {row}={values[0]!r} but "
                    f"{column}={values[1]!r}; give both or neither"
                )
        return self


class Plate(_Model):
    """A multi-well plate: its row and column names (e.g. ``["A", "B"]``, ``["1"]``)."""

    _positional = ("row_names", "column_names", "name")

    row_names: list[str] = Field(min_length=1)
    column_names: list[str] = Field(min_length=1)
    name: str | None = None

    #: rows x columns of the standard plate formats (ANSI/SLAS 4-2004)
    STANDARD_SHAPES: ClassVar[dict[int, tuple[int, int]]] = {
        6: (2, 3),
        12: (3, 4),
        24: (4, 6),
        48: (6, 8),
        96: (8, 12),
        384: (16, 24),
        1536: (32, 48),
    }

    @classmethod
    def from_standard_wells(
        cls, num_wells_or_shape: int | tuple[int, int], name: str | None = None
    ) -> Plate:
        """A plate of a standard well count (``96``) or ``(rows, columns)``.

        Rows are named ``A``... ``Z``, then ``AA``, ``BB``, ``CC``... and
        columns ``1``, ``2``..., as ome-writers 0.3 names them. (useq-schema
        names rows past ``Z`` ``AA``, ``AB``...: ``useq_to_acquisition_settings``
        builds its plate with those names, see ``plate_row_name``.)

        >>> plate = Plate.from_standard_wells(96)
        >>> plate.row_names[-1], plate.column_names[-1]
        ('H', '12')
        >>> Plate.from_standard_wells(1536).row_names[25:28]
        ['Z', 'AA', 'BB']
        """
        if isinstance(num_wells_or_shape, tuple):
            shape = num_wells_or_shape
            if len(shape) != 2 or not all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape
            ):
                raise ValueError(
                    f"plate shape {shape!r} must be (rows, columns), two whole "
                    "numbers > 0"
                )
            rows, columns = shape
        else:
            if num_wells_or_shape not in cls.STANDARD_SHAPES:
                raise ValueError(
                    f"{num_wells_or_shape!r} is not a standard well count; use one "
                    f"of {sorted(cls.STANDARD_SHAPES)!r} or give (rows, columns)"
                )
            rows, columns = cls.STANDARD_SHAPES[num_wells_or_shape]
        return cls(
            row_names=[chr(ord("A") + i % 26) * (i // 26 + 1) for i in range(rows)],
            column_names=[str(i + 1) for i in range(columns)],
            name=name,
        )


def plate_row_name(index: int) -> str:
    """Plate row ``index`` (from 0) as a name: A... Z, AA, AB... ZZ, AAA.

    >>> [plate_row_name(i) for i in (0, 1, 25, 26, 27, 701, 702)]
    ['A', 'B', 'Z', 'AA', 'AB', 'ZZ', 'AAA']
    """
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


_CHANNEL_ONLY_KEYS = frozenset(Channel.model_fields) - {"name"}
_POSITION_ONLY_KEYS = frozenset(Position.model_fields) - {"name"}

CoordValue = Channel | Position | str | int | float


class Dimension(_Model):
    """One axis of the acquisition.

    Parameters
    ----------
    name
        Unique name of the dimension (``"t"``, ``"c"``, ``"z"``, ``"y"``, ...).
    count
        Number of indices; ``None`` (unbounded) is allowed only for the first
        dimension. For a position or channel dimension it defaults to
        ``len(coords)``.
    type
        ``"space" | "time" | "channel" | "position" | "other"``; inferred when
        omitted (see the module notes).
    coords
        One label per index: ``Channel`` objects, ``Position`` objects or plain
        values. Strings in a position (channel) dimension become ``Position``
        (``Channel``) objects of that name.
    chunk_size, shard_size_chunks
        Chunking hints for chunked formats (OME-Zarr): elements per chunk, and
        chunks per shard.
    unit, scale, translation
        Physical unit (UDUNITS-2 name), pixel/step size and origin.
    """

    name: str = Field(min_length=1)
    count: int | None = Field(default=None, gt=0)
    type: DimensionType | None = None
    coords: list[CoordValue] | None = None
    chunk_size: int | None = Field(default=None, gt=0)
    shard_size_chunks: int | None = Field(default=None, gt=0)
    unit: str | None = None
    scale: float | None = Field(default=None, gt=0)
    translation: float | None = None

    _positional = ("name", "count")

    @model_validator(mode="before")
    @classmethod
    def _infer(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for field in ("count", "chunk_size", "shard_size_chunks"):
            if isinstance(data.get(field), bool):
                raise ValueError(
                    f"dimension {data.get('name')!r}: {field}={data[field]!r} is a "
                    "bool, not a number; give a whole number > 0, or None"
                    + (" for unbounded" if field == "count" else "")
                )
        coords = data.get("coords")
        dim_type = data.get("type") or _infer_type(
            data.get("name"), coords, data.get("unit")
        )
        data["type"] = dim_type
        if coords is not None:
            coords = [_coerce_coord(c, dim_type) for c in coords]
            data["coords"] = coords
            if data.get("count") is None:
                data["count"] = len(coords)
        elif dim_type == "position" and isinstance(data.get("count"), int):
            data["coords"] = [Position(name=str(i)) for i in range(data["count"])]
        return data

    @model_validator(mode="after")
    def _check(self) -> Dimension:
        if self.coords is not None and self.count != len(self.coords):
            raise ValueError(
                f"dimension {self.name!r}: count={self.count} does not match "
                f"len(coords)={len(self.coords)}; give one coord per index"
            )
        if self.type == "position" and self.count is None:
            raise ValueError(
                f"position dimension {self.name!r} must be bounded: give its "
                "positions as coords (names or Position objects) or a count"
            )
        if self.type == "position" and self.coords is not None:
            _check_position_names(self.name, self.coords)
        for kind, cls in (("channel", Channel), ("position", Position)):
            if self.type != kind and any(isinstance(c, cls) for c in self.coords or []):
                raise ValueError(
                    f"dimension {self.name!r} has {cls.__name__} coords but type "
                    f"{self.type!r}; set type={kind!r} or give plain values"
                )
        if self.type == "channel" and self.coords is not None:
            names = [c.name if isinstance(c, Channel) else str(c) for c in self.coords]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(
                    f"channel dimension {self.name!r}: channel names {repeated!r} "
                    "repeat; give every channel a unique name (e.g. "
                    f"{repeated[0] + '_2'!r})"
                )
        return self

    @property
    def is_unbounded(self) -> bool:
        """True when the dimension has no fixed count."""
        return self.count is None


class PositionDimension(Dimension):
    """Deprecated (as in ome-writers 0.3): a ``Dimension`` of type ``"position"``.

    ``PositionDimension(positions=[...])`` is
    ``Dimension(name="p", type="position", coords=[...])``; use that.
    """

    def __init__(self, *args: Any, **data: Any) -> None:
        warnings.warn(
            "PositionDimension is deprecated; use Dimension(name='p', "
            "type='position', coords=[...]) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        if "positions" in data:
            if "coords" in data:
                raise TypeError(
                    "PositionDimension got both 'positions' and 'coords'; give one"
                )
            data["coords"] = data.pop("positions")
        if not args:
            data.setdefault("name", "p")
        if data.setdefault("type", "position") != "position":
            raise ValueError(
                f"PositionDimension has type 'position', not {data['type']!r}; use "
                "Dimension for other types"
            )
        super().__init__(*args, **data)


def _check_position_names(dimension: str, coords: Sequence[CoordValue]) -> None:
    """Refuse a position name used twice in the same well and grid cell.

    A name may repeat where the well or the grid cell differs (``"fov0"`` in
    every well, the tiles of one position): what identifies a position is
    its name together with ``plate_row``, ``plate_column``, ``grid_row`` and
    ``grid_column``. Output paths never come from the name alone.
    """
    seen: set[tuple[Any, ...]] = set()
    for coord in coords:
        pos = coord if isinstance(coord, Position) else Position(name=str(coord))
        key = (pos.name, pos.plate_row, pos.plate_column, pos.grid_row, pos.grid_column)
        if key in seen:
            where = ""
            if pos.plate_row is not None or pos.plate_column is not None:
                where += f" in well ({pos.plate_row!r}, {pos.plate_column!r})"
            if pos.grid_row is not None or pos.grid_column is not None:
                where += f" at grid cell ({pos.grid_row!r}, {pos.grid_column!r})"
            raise ValueError(
                f"position dimension {dimension!r}: duplicate position name "
                f"{pos.name!r}{where}; give every position a unique name (e.g. "
                f"{pos.name + '_1'!r} for the second {pos.name!r}), or a different "
                "well or grid cell"
            )
        seen.add(key)


def _infer_type(name: Any, coords: Any, unit: Any) -> DimensionType:
    if coords:
        if all(isinstance(c, Channel) for c in coords):
            return "channel"
        if all(isinstance(c, Position) for c in coords):
            return "position"
    if isinstance(unit, str):
        if unit.lower() in _TIME_UNITS:
            return "time"
        if unit.lower() in _SPACE_UNITS:
            return "space"
    if isinstance(name, str):
        try:
            return StandardAxis(name.lower()).dimension_type()
        except ValueError:
            pass
    return "other"


def _coerce_coord(value: Any, dim_type: DimensionType) -> Any:
    if dim_type == "position":
        if isinstance(value, str):
            return Position(name=value)
        if isinstance(value, dict):
            return Position.model_validate(value)
    if dim_type == "channel":
        if isinstance(value, str):
            return Channel(name=value)
        if isinstance(value, dict):
            return Channel.model_validate(value)
    if isinstance(value, dict):
        keys = set(value)
        if keys & _CHANNEL_ONLY_KEYS and not keys & _POSITION_ONLY_KEYS:
            return Channel.model_validate(value)
        if keys & _POSITION_ONLY_KEYS and not keys & _CHANNEL_ONLY_KEYS:
            return Position.model_validate(value)
        raise ValueError(
            f"coord {value!r} could be a Channel or a Position; "
            "set the dimension's type to 'channel' or 'position'"
        )
    return value


def dims_from_standard_axes(
    sizes: Mapping[str, int | Sequence[str | Position] | None],
    chunk_shapes: Mapping[str, int] | None = None,
    shard_shapes: Mapping[str, int] | None = None,
) -> list[Dimension]:
    """Build dimensions from standard axis names, in the order given.

    Parameters
    ----------
    sizes
        Axis name (``x y z c t p``) to count, in acquisition order. ``None``
        declares an unbounded axis; ``"p"`` also takes a list of position names
        or ``Position`` objects.
    chunk_shapes
        Axis name to chunk size. Defaults: the full size for ``y`` and ``x``,
        1 for every other axis.
    shard_shapes
        Axis name to shard size, in chunks.

    Examples
    --------
    >>> dims = dims_from_standard_axes({"t": None, "c": 2, "y": 64, "x": 64})
    >>> [(d.name, d.count, d.type) for d in dims]
    [('t', None, 'time'), ('c', 2, 'channel'), ('y', 64, 'space'), ('x', 64, 'space')]
    """
    chunk_shapes = dict(chunk_shapes or {})
    shard_shapes = dict(shard_shapes or {})
    allowed = [a.value for a in StandardAxis]
    for label, mapping in (
        ("sizes", sizes),
        ("chunk_shapes", chunk_shapes),
        ("shard_shapes", shard_shapes),
    ):
        unknown = [k for k in mapping if k not in allowed]
        if unknown:
            raise ValueError(
                f"unknown axis name(s) {unknown!r} in {label}; "
                f"standard axes are {allowed!r}"
            )
    dims = []
    for name, size in sizes.items():
        axis = StandardAxis(name)
        kwargs: dict[str, Any] = {"type": axis.dimension_type(), "unit": axis.unit()}
        if axis is StandardAxis.P and not isinstance(size, int) and size is not None:
            kwargs["coords"] = list(size)
        elif isinstance(size, (list, tuple)):
            raise ValueError(
                f"axis {name!r} takes a count or None, not {size!r}; "
                "only 'p' takes a list of positions"
            )
        else:
            kwargs["count"] = size
        default_chunk = size if axis in (StandardAxis.X, StandardAxis.Y) else 1
        kwargs["chunk_size"] = chunk_shapes.get(name, default_chunk)
        kwargs["shard_size_chunks"] = shard_shapes.get(name)
        dims.append(Dimension(name=name, **kwargs))
    return dims


#: the camera axis pymmcore-plus inserts before (Y, X) in multi-camera runs
CAMERA_DIMENSION = "cam"


def _channel_specs(dim: Dimension) -> list[Channel]:
    coords = dim.coords or [str(i) for i in range(dim.count or 0)]
    return [c if isinstance(c, Channel) else Channel(name=str(c)) for c in coords]


def _camera_names(dim: Dimension) -> list[str]:
    if dim.coords:
        return [
            str(c.name if isinstance(c, (Channel, Position)) else c) for c in dim.coords
        ]
    return [f"cam{k}" for k in range(dim.count or 0)]


class AcquisitionSettings(_Model):
    """Everything known about an acquisition before its first frame.

    Parameters
    ----------
    root_path
        Where the data goes. Optional for scratch (in memory when empty);
        required for on-disk formats.
    dimensions
        The dimensions in acquisition order; the last two are the frame (Y, X).
        May be left empty until the stream is created (acquisition software
        fills them in from its sequence); ``create_stream`` refuses settings
        without them, see ``validate_stream_ready``.
    dtype
        Pixel type, one of ``SUPPORTED_DTYPES`` (numpy spellings accepted).
        May be left empty (``""``) until the stream is created, as
        ``dimensions``.
    format
        ``"auto"`` (default), a format name (``"scratch"``/``"memory"``,
        ``"ome-zarr"``/``"zarr"``, ``"ome-tiff"``/``"tiff"``), a backend name
        used as a format (``"tensorstore"``, ``"acquire-zarr"``,
        ``"zarr-python"``, ``"tifffile"``), a format model such as
        ``ScratchFormat(...)``, or a dict with a ``"name"`` key. ``"auto"``
        (or None) follows the suffix of ``root_path``: ``.zarr`` (e.g.
        ``.ome.zarr``) -> OME-Zarr with the default engine, ``.tif``/``.tiff``
        (e.g. ``.ome.tiff``) -> OME-TIFF, keeping the name as given; no
        ``root_path`` -> scratch (in memory); any other path -> OME-Zarr with
        a ``UserWarning``, as ome-writers 0.3 does. ``settings.format.name``
        is then ``"ome-zarr"``, ``"ome-tiff"`` or ``"scratch"``.
    compression
        Codec name for formats that compress, checked against what the format's
        backend can write; None (or ``"none"``) for none. Scratch stores raw
        bytes and accepts only None.
    storage_order
        Order of the non-frame dimensions in storage: ``"acquisition"``,
        ``"ome"`` (the format's canonical order; for scratch the acquisition
        order) or a list of dimension names (which may end with the frame
        dimensions, unchanged: ``["t", "c", "z", "y", "x"]``). The position
        dimension is never
        stored as an axis: each position gets its own array. An unbounded
        dimension must stay first.
    plate
        The plate that positions' ``plate_row``/``plate_column`` refer to.
    overwrite
        Replace existing output that this package wrote; anything else is
        refused.
    """

    root_path: str = ""
    dimensions: list[Dimension] = Field(default_factory=list)
    dtype: str = ""
    format: FormatModel = Field(default_factory=ScratchFormat)
    compression: str | None = None
    storage_order: Literal["acquisition", "ome"] | list[str] = "ome"
    plate: Plate | None = None
    overwrite: bool = False

    @model_validator(mode="before")
    @classmethod
    def _infer_format(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("format") in (None, "auto"):
            root = data.get("root_path") or ""
            data = {**data, "format": format_from_path(str(root))}
        return data

    @field_validator("format", mode="before")
    @classmethod
    def _coerce_format(cls, value: Any) -> Any:
        if isinstance(value, str):
            return resolve_format_name(value)
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            implied = resolve_format_name(value["name"])
            return {**implied, **value, "name": implied["name"]}
        return value

    @field_validator("compression", mode="before")
    @classmethod
    def _none_means_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.lower() == "none" else value

    @field_validator("root_path", mode="before")
    @classmethod
    def _coerce_path(cls, value: Any) -> Any:
        if value is None:
            return ""
        return str(value) if hasattr(value, "__fspath__") else value

    @field_validator("dtype", mode="before")
    @classmethod
    def _check_dtype(cls, value: Any) -> str:
        if value == "":
            return ""  # not known yet: validate_stream_ready refuses it
        try:
            # np.dtype(None) is float64; a missing dtype must not pass as that
            name: str | None = None if value is None else str(np.dtype(value).name)
        except TypeError:
            name = None
        if name is None or name not in SUPPORTED_DTYPES:
            raise ValueError(
                f"dtype {value!r} is not supported; "
                f"use one of {list(SUPPORTED_DTYPES)!r}"
            )
        return name

    @model_validator(mode="after")
    def _check(self) -> AcquisitionSettings:
        supported = self.format.supported_compressions()
        if self.compression not in supported:
            raise ValueError(
                f"compression {self.compression!r} is not supported by format "
                f"{self.format.name!r} (backend {self.format.backend!r}); "
                f"use one of {list(supported)!r}"
            )
        if self.dimensions:
            self._check_dimensions()
        return self

    def validate_stream_ready(self) -> bool:
        """Check that nothing a stream needs is missing; True if so.

        Settings may be made without ``dimensions`` or ``dtype`` (to be filled
        in later, e.g. from an acquisition sequence); ``create_stream`` calls
        this first.

        Raises
        ------
        ValueError
            ``dimensions`` or ``dtype`` is not set.
        """
        missing = [
            name
            for name, value in (("dimensions", self.dimensions), ("dtype", self.dtype))
            if not value
        ]
        if missing:
            raise ValueError(
                f"the settings are incomplete: {' and '.join(missing)} not set; "
                "give them before creating a stream, e.g. "
                "AcquisitionSettings.model_validate({**settings.model_dump(), "
                "'dimensions': [...], 'dtype': 'uint16'})"
            )
        return True

    def _check_dimensions(self) -> None:
        dims = self.dimensions
        names = [d.name for d in dims]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"dimensions: duplicate names {duplicates!r}")
        if len(dims) < 2:
            raise ValueError(
                f"dimensions: got {len(dims)} dimension(s) {names!r}; at least 2 "
                "are needed, the last two being the frame (Y, X)"
            )
        for d in dims[1:]:
            if d.count is None:
                raise ValueError(
                    f"dimensions: {d.name!r} is unbounded (count=None) but only "
                    "the first dimension may be; give it a count"
                )
        for d in dims[-2:]:
            if d.type in ("position", "channel") or d.count is None:
                raise ValueError(
                    f"dimensions: the last two dimensions are the frame (Y, X); "
                    f"{d.name!r} ({d.type}, count={d.count}) cannot be one"
                )
        positional = [d.name for d in dims if d.type == "position"]
        if len(positional) > 1:
            raise ValueError(
                f"dimensions: more than one position dimension {positional!r}"
            )
        self._check_storage_order()
        self.format.check_storage_order([*self.stored_dimensions, *dims[-2:]])
        self._check_plate()

    def _check_storage_order(self) -> None:
        order = self.storage_order
        if isinstance(order, str):
            return
        expected = [d.name for d in self.index_dimensions]
        frame = [d.name for d in self.frame_dimensions]
        listed_frame = [n for n in order if n in frame]
        if listed_frame and list(order[-2:]) != frame:
            raise ValueError(
                f"storage_order {order!r}: the frame dimensions {frame!r} cannot "
                "be reordered; list them last, in that order, or leave them out"
            )
        skipped = {*self.position_dimension_names, *frame}
        given = [n for n in order if n not in skipped]
        if sorted(given) != sorted(expected) or len(order) != len(set(order)):
            raise ValueError(
                f"storage_order {order!r} must list each non-frame dimension "
                f"exactly once: {expected!r} (the position dimension may be "
                "omitted; the frame dimensions may follow last)"
            )
        unbounded = self.dimensions[0]
        if unbounded.count is None and given[0] != unbounded.name:
            raise ValueError(
                f"storage_order {order!r}: the unbounded dimension "
                f"{unbounded.name!r} must be stored first"
            )

    def _check_plate(self) -> None:
        if self.plate is None:
            return
        if not self.position_dimension_names:
            raise ValueError(
                "plate is set but no dimension is of type 'position': a plate needs "
                "positions with plate_row/plate_column; add a position dimension "
                "or drop the plate"
            )
        for pos in self.positions:
            if pos.plate_row is None and pos.plate_column is None:
                raise ValueError(
                    f"position {pos.name!r} has no plate_row/plate_column, but the "
                    "acquisition has a plate: give every position its well, or drop "
                    "AcquisitionSettings.plate"
                )
            if pos.plate_row not in self.plate.row_names:
                raise ValueError(
                    f"position {pos.name!r}: plate_row {pos.plate_row!r} is not "
                    f"one of the plate's row_names {self.plate.row_names!r}"
                )
            if pos.plate_column not in self.plate.column_names:
                raise ValueError(
                    f"position {pos.name!r}: plate_column {pos.plate_column!r} is "
                    f"not one of the plate's column_names {self.plate.column_names!r}"
                )

    # ------------------------------------------------------------------ views

    @property
    def frame_dimensions(self) -> tuple[Dimension, Dimension]:
        """The two frame dimensions (Y, X)."""
        dims = self._require_dimensions("frame_dimensions")
        return (dims[-2], dims[-1])

    @property
    def frame_shape(self) -> tuple[int, int]:
        """Shape of one frame, (Y, X)."""
        y, x = self.frame_dimensions
        return (int(y.count or 0), int(x.count or 0))

    @property
    def index_dimensions(self) -> tuple[Dimension, ...]:
        """The non-frame dimensions but the position one, in acquisition order."""
        dims = self._require_dimensions("index_dimensions")[:-2]
        return tuple(d for d in dims if d.type != "position")

    @property
    def array_dimensions(self) -> tuple[Dimension, ...]:
        """Every dimension but the position one (what one position array spans)."""
        dims = self._require_dimensions("array_dimensions")
        return tuple(d for d in dims if d.type != "position")

    @property
    def position_dimension_index(self) -> int | None:
        """Where the position dimension is in ``dimensions``, or None."""
        dims = self._require_dimensions("position_dimension_index")
        return next((i for i, d in enumerate(dims) if d.type == "position"), None)

    @property
    def storage_index_dimensions(self) -> tuple[Dimension, ...]:
        """The stored non-frame axes in storage order (see ``stored_dimensions``)."""
        return tuple(self.stored_dimensions)

    @property
    def array_storage_dimensions(self) -> tuple[Dimension, ...]:
        """``storage_index_dimensions`` followed by the frame dimensions."""
        return (*self.storage_index_dimensions, *self.frame_dimensions)

    @property
    def storage_index_permutation(self) -> tuple[int, ...] | None:
        """Acquisition -> storage order of the index axes; None when the same.

        Entry ``k`` is the position in ``index_dimensions`` of the ``k``-th
        stored axis (of its first dimension, for a folded camera axis).
        """
        names = [d.name for d in self.index_dimensions]
        permutation = tuple(names.index(group[0]) for group in self.storage_groups)
        return None if permutation == tuple(range(len(names))) else permutation

    @property
    def position_dimension_names(self) -> list[str]:
        """Name of the position dimension, as a list of zero or one."""
        return [d.name for d in self.dimensions if d.type == "position"]

    @property
    def shape(self) -> tuple[int | None, ...]:
        """Declared shape in acquisition order; None for an unbounded dimension."""
        return tuple(d.count for d in self.dimensions)

    @property
    def is_unbounded(self) -> bool:
        """True when the first dimension has no fixed count."""
        return self._require_dimensions("is_unbounded")[0].count is None

    @property
    def num_frames(self) -> int | None:
        """Total number of frames, or None when unbounded."""
        if self.is_unbounded:
            return None
        return math.prod(d.count or 0 for d in self.dimensions[:-2])

    @property
    def positions(self) -> tuple[Position, ...]:
        """One ``Position`` per position array (a single ``Position("0")`` if none)."""
        for d in self.dimensions:
            if d.type == "position" and d.coords is not None:
                return tuple(
                    c if isinstance(c, Position) else Position(name=str(c))
                    for c in d.coords
                )
        return (Position(name="0"),)

    @property
    def storage_dimension_names(self) -> list[str]:
        """Names of the stored axes (non-frame, non-position), in storage order.

        A merged axis (see ``storage_groups``) is named after its first member.
        """
        return [group[0] for group in self.storage_groups]

    @property
    def storage_groups(self) -> list[list[str]]:
        """The dimensions each stored axis holds, in storage order.

        One name per axis, except where a format folds the camera axis (a
        dimension named ``"cam"`` of type ``"other"``, as pymmcore-plus adds
        for multi-camera acquisitions) into the channel axis: that axis holds
        ``[<channel>, "cam"]``, channel-major (channel 0 of every camera,
        then channel 1, ...). OME-Zarr and OME-TIFF fold it, since they allow
        one channel axis and at most five (three) axes; scratch stores it as
        an axis of its own.
        """
        order = self.storage_order
        dims = self._stored_index_dimensions()
        acquisition = [d.name for d in dims]
        if order == "ome":
            names = self.format.ome_storage_order(dims)
        elif isinstance(order, str):
            names = acquisition
        else:
            names = [n for n in order if n in acquisition]
        camera = self._folded_camera()
        channel = next(
            (d.name for d in self.index_dimensions if d.type == "channel"), None
        )
        if camera is None or channel is None:
            return [[n] for n in names]
        return [[n, camera] if n == channel else [n] for n in names if n != camera]

    @property
    def stored_dimensions(self) -> list[Dimension]:
        """One ``Dimension`` per stored axis (frame dims excluded), storage order.

        A folded camera axis gives the channel axis ``channels x cameras``
        entries named ``"<channel>_cam<k>"`` (``"cam<k>"`` when there is no
        channel dimension, the camera axis then being the channel axis).
        """
        by_name = {d.name: d for d in self._stored_index_dimensions()}
        out = []
        for group in self.storage_groups:
            if len(group) == 1:
                out.append(by_name[group[0]])
                continue
            channel, camera = (by_name[n] for n in group)
            coords = [
                Channel(**{**spec.model_dump(), "name": f"{spec.name}_{cam}"})
                for spec in _channel_specs(channel)
                for cam in _camera_names(camera)
            ]
            out.append(
                channel.model_copy(update={"count": len(coords), "coords": coords})
            )
        return out

    def _folded_camera(self) -> str | None:
        if not self.format.folds_camera_axis:
            return None
        for d in self.index_dimensions:
            if d.name == CAMERA_DIMENSION and d.type == "other":
                return d.name
        return None

    def _stored_index_dimensions(self) -> list[Dimension]:
        """Non-position index dimensions, a lone folded camera axis as channels."""
        dims = list(self.index_dimensions)
        camera = self._folded_camera()
        if camera is None or any(d.type == "channel" for d in dims):
            return dims
        return [
            d.model_copy(
                update={
                    "type": "channel",
                    "coords": [Channel(name=n) for n in _camera_names(d)],
                }
            )
            if d.name == camera
            else d
            for d in dims
        ]

    @property
    def output_path(self) -> str:
        """Where the data goes, as decided by the format."""
        positions = len(self.positions) if self.dimensions else 1
        return self.format.get_output_path(self.root_path, num_positions=positions)

    @property
    def itemsize(self) -> int:
        """Bytes per pixel."""
        if not self.dtype:
            raise ValueError(
                "itemsize is not known: the settings have no dtype yet; set one"
            )
        return np.dtype(self.dtype).itemsize

    def _require_dimensions(self, what: str) -> list[Dimension]:
        if not self.dimensions:
            raise ValueError(
                f"{what} is not known: the settings have no dimensions yet; "
                "set them (e.g. from useq_to_acquisition_settings) first"
            )
        return self.dimensions
