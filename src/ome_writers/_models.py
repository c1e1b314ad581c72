"""The parts of acquisition settings: dimensions, channels, positions, plates.

Validated pydantic models, serialized with the settings (the scratch manifest,
the OME-Zarr attributes) and rebuilt from them unchanged. Models may be
assigned to after construction; each assignment is validated, and a refused
value is rolled back.

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
import re
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_extra_types.color import COLORS_BY_NAME

from ome_writers._util import xml_unsafe_text

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

    @model_validator(mode="after")
    def _xml_safe(self) -> Any:
        # every text ends up in OME-XML (OME-TIFF, OME-Zarr's METADATA.ome.xml):
        # refuse what XML cannot hold now, not at close
        for field, value in self:
            if isinstance(value, (str, list)) and (bad := xml_unsafe_text(value)):
                raise ValueError(
                    f"{type(self).__name__}.{field}: {bad!r} holds a character XML "
                    "cannot store (a control character other than tab or newline, "
                    "or a lone surrogate); remove it"
                )
        return self

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
    #: OME stores physical sizes as 32-bit floats: positive normal values only
    scale: float | None = Field(default=None, ge=1.1754944e-38, le=3.4028235e38)
    translation: float | None = None

    _positional = ("name", "count")
    #: the ``coords`` list made from a count (see ``_default_positions``)
    _generated_coords: list[CoordValue] | None = PrivateAttr(default=None)

    @field_serializer("coords")
    def _dump_coords(self, coords: list[CoordValue] | None) -> Any:
        # positions made from a count, still as made, are stored as the count
        if coords is None or coords is not self._generated_coords:
            return coords
        return None if _are_default_positions(coords) else coords

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
            if not coords:
                raise ValueError(
                    f"dimension {data.get('name')!r}: coords is empty; give at "
                    "least one coordinate, or a count"
                )
            data["coords"] = coords
            if data.get("count") is None:
                data["count"] = len(coords)
        elif dim_type == "position" and isinstance(data.get("count"), int):
            count = data["count"]
            if count > MAX_POSITIONS:
                raise ValueError(
                    f"position dimension {data.get('name')!r}: count={count:,} "
                    f"positions, more than {MAX_POSITIONS:,}; each position is an "
                    "image of its own (its own arrays or file, and a Position "
                    "object in memory): give a realistic count, or make this "
                    "axis type='other' to store it inside one image"
                )
            # filled in after validation (_check): 10**5 default positions
            # would take a second to validate one by one
            data.pop("coords", None)
        return data

    @model_validator(mode="after")
    def _check(self) -> Dimension:
        if self.type == "position" and self.coords is None and self.count is not None:
            self.__dict__["coords"] = _default_positions(self.count)
            self._generated_coords = self.__dict__["coords"]
            return self
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


#: positions one acquisition may have (each is an image: an array or a file,
#: and a ``Position`` of ~2.5 KB in memory). 100,000 is past a 1536-well plate
#: with 64 fields per well; a million took 2.5 GB and seconds to validate.
MAX_POSITIONS = 100_000


def _default_positions(count: int) -> list[CoordValue]:
    """Positions ``"0"``, ``"1"``, ... for a position dimension given a count.

    Copies of one validated ``Position``: its names are valid and unique, so
    the per-position checks are skipped (2 µs a position instead of 15).
    """
    template = Position(name="0")
    return [template.model_copy(update={"name": str(i)}) for i in range(count)]


def _are_default_positions(coords: Sequence[CoordValue]) -> bool:
    """True when ``coords`` are still what ``_default_positions`` made."""
    default = Position(name="0").__dict__
    return all(
        isinstance(c, Position) and c.__dict__ == {**default, "name": str(i)}
        for i, c in enumerate(coords)
    )


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
