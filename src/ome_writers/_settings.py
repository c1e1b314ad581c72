"""``AcquisitionSettings``: everything a stream needs before its first frame.

Built from the models of ``_models`` and a format model of ``_formats``.
``AcquisitionSettings.model_validate(settings.model_dump(mode="json"))``
gives equal settings. Settings may be incomplete (no dimensions or dtype)
until ``create_stream``; the storage layout they imply (storage order,
stored axes, a folded camera axis) is derived here, for the router and the
backends.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ome_writers._formats import (
    MAX_OME_CHANNELS,
    FormatModel,
    ScratchFormat,
    format_from_path,
    resolve_format_name,
)
from ome_writers._models import (
    SUPPORTED_DTYPES,
    Channel,
    Dimension,
    Plate,
    Position,
    _Model,
)
from ome_writers._pyramid import frame_tile

#: the largest declared size: what a signed 64-bit offset addresses
_MAX_BYTES = 2**63 - 1

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
        if self.root_path:
            self.format.check_root_path(self.root_path)
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
        self._check_size()
        self._check_folded_camera()
        self._check_storage_order()
        self.format.check_storage_order([*self.stored_dimensions, *dims[-2:]])
        self.format.check_counts(self.stored_dimensions, self.root_path)
        pyramid = getattr(self.format, "pyramid", None)
        if pyramid is not None:  # refuses more levels than the frame halves into
            pyramid.level_count(self.frame_shape, frame_tile(dims[-2:]))
        if self.dtype:
            stored = [*self.stored_dimensions, *dims[-2:]]
            self.format.check_target(stored, self.itemsize, self.root_path)
        self._check_plate()

    def _check_folded_camera(self) -> None:
        """A camera axis folded into the channels cannot be the unbounded one."""
        camera = self._folded_camera()
        if camera is None:
            return
        channel = next(
            (d.name for d in self.index_dimensions if d.type == "channel"), None
        )
        cameras = next(d.count or 1 for d in self.dimensions if d.name == camera)
        channels = next((d.count or 1 for d in self.dimensions if d.name == channel), 1)
        if channels * cameras > MAX_OME_CHANNELS:
            # refused before any Channel is made: 2**33 would not fit in memory
            raise ValueError(
                f"dimensions: the camera axis {camera!r} ({cameras:,} cameras) is "
                f"stored inside the channel axis, giving {channels * cameras:,} "
                f"channels; format {self.format.name!r} lists every channel, so "
                f"at most {MAX_OME_CHANNELS:,} are written: use fewer cameras, "
                "another name than 'cam' for this axis, or format='scratch'"
            )
        first = self.dimensions[0]
        if first.count is None and first.name in (camera, channel):
            raise ValueError(
                f"dimensions: {first.name!r} is unbounded, but format "
                f"{self.format.name!r} stores the camera axis {camera!r} inside the "
                "channel axis, which must then be bounded; give it a count, or "
                "make another dimension (e.g. time) the unbounded one"
            )

    def _check_size(self) -> None:
        """Refuse a declared size no file or array can address (2**63 bytes)."""
        itemsize = np.dtype(self.dtype).itemsize if self.dtype else 1
        nbytes = math.prod(d.count or 1 for d in self.dimensions) * itemsize
        if nbytes > _MAX_BYTES:
            shape = [d.count for d in self.dimensions]
            raise ValueError(
                f"dimensions: the declared shape {shape!r} is {nbytes:.3g} bytes, "
                f"more than any file or array can address ({_MAX_BYTES:.3g}); "
                "declare smaller counts, or count=None on the first dimension for "
                "an acquisition of unknown length"
            )

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
