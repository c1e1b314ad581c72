"""OME-XML models of an acquisition, shared by the OME-TIFF and OME-Zarr backends.

The format-neutral part of the OME-XML: one ``Image`` per position with its
``Pixels`` (sizes, type, dimension order, physical sizes, time increment),
``Channel``s from ``Channel`` coords, a ``StageLabel`` from the ``Position``,
``Plane``s from the per-frame records, the plate as ``Plate``/``Well``/
``WellSample``, and ``MapAnnotation``s for the writer's own state and the
global metadata. Where the pixels live is the one thing that differs by
format, so ``OmeXmlBuilder.build`` takes it as a callback: OME-TIFF gives
``TiffData`` blocks (``_tiff_metadata``), OME-Zarr gives nothing and gets
``<MetadataOnly/>``, as the bioformats2raw layout requires.

Which OME axis (T, C, Z) each dimension becomes comes from ``OmeAxes``
(``_tiff_planes``); acquisitions that do not fit OME's five dimensions raise
``ValueError`` when the builder is made, as do 64-bit integer pixel types.

This module imports ome-types at import time; a backend for which it is
optional imports this module lazily. Everything here is pure: no file I/O.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ome_types import OME
from ome_types.model import (
    AnnotationRef,
    Channel,
    Color,
    Image,
    ImageRef,
    Map,
    MapAnnotation,
    MetadataOnly,
    NamingConvention,
    Pixels,
    PixelType,
    Plane,
    Plate,
    StageLabel,
    StructuredAnnotations,
    UnitsLength,
    UnitsTime,
    Well,
    WellSample,
)

from ome_writers._backends.tiff._planes import OmeAxes
from ome_writers._models import Channel as ChannelSpec
from ome_writers._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

#: namespace of the writer's own MapAnnotation (dimension names, completeness)
WRITER_NAMESPACE = "ome_writers"
#: namespace of the per-frame MapAnnotations (frame_metadata keys OME has no field for)
FRAME_NAMESPACE = "ome_writers/frame_metadata"
#: namespace of the MapAnnotation holding an OME-Zarr image group's own
#: attributes (``update_metadata``), one per Image, as ``convert`` carries them
ATTRIBUTES_NAMESPACE = "ome_writers/zarr_attributes"
#: the writer annotation's entry saying how per-frame values are stored as text
FRAME_ENCODING_KEY = "frame_metadata_encoding"
#: every value JSON, but a string that is not JSON text stored as it is
#: (``frame_value_text``); files without the entry stored every string as it is
FRAME_ENCODING = "json-or-plain-string"
#: frame_metadata keys that become Plane attributes, and their units
PLANE_KEYS: dict[str, tuple[str, Any]] = {
    "delta_t": ("delta_t", UnitsTime.SECOND),
    "exposure_time": ("exposure_time", UnitsTime.SECOND),
    "position_x": ("position_x", UnitsLength.MICROMETER),
    "position_y": ("position_y", UnitsLength.MICROMETER),
    "position_z": ("position_z", UnitsLength.MICROMETER),
}

_PIXEL_TYPES = {
    "uint8": PixelType.UINT8,
    "uint16": PixelType.UINT16,
    "uint32": PixelType.UINT32,
    "int8": PixelType.INT8,
    "int16": PixelType.INT16,
    "int32": PixelType.INT32,
    "float32": PixelType.FLOAT,
    "float64": PixelType.DOUBLE,
}

_LENGTH_UNITS = {
    **dict.fromkeys(("m", "meter", "metre"), UnitsLength.METER),
    **dict.fromkeys(("cm", "centimeter"), UnitsLength.CENTIMETER),
    **dict.fromkeys(("mm", "millimeter"), UnitsLength.MILLIMETER),
    **dict.fromkeys(("um", "µm", "μm", "micrometer", "micron"), UnitsLength.MICROMETER),
    **dict.fromkeys(("nm", "nanometer"), UnitsLength.NANOMETER),
    **dict.fromkeys(("pm", "picometer"), UnitsLength.PICOMETER),
    **dict.fromkeys(("angstrom", "å"), UnitsLength.ANGSTROM),
}
_TIME_UNITS = {
    **dict.fromkeys(("s", "sec", "second"), UnitsTime.SECOND),
    **dict.fromkeys(("ms", "millisecond"), UnitsTime.MILLISECOND),
    **dict.fromkeys(("us", "µs", "μs", "microsecond"), UnitsTime.MICROSECOND),
    **dict.fromkeys(("ns", "nanosecond"), UnitsTime.NANOSECOND),
    **dict.fromkeys(("min", "minute"), UnitsTime.MINUTE),
    **dict.fromkeys(("h", "hour"), UnitsTime.HOUR),
    **dict.fromkeys(("d", "day"), UnitsTime.DAY),
}


def pixel_type(dtype: str) -> PixelType:
    """The OME PixelType of a dtype; OME has no 64-bit integers."""
    try:
        return _PIXEL_TYPES[dtype]
    except KeyError:
        raise ValueError(
            f"dtype {dtype!r} cannot be stored in OME-TIFF (OME pixel types are "
            f"{sorted(_PIXEL_TYPES)!r}); use one of those, or format='ome-zarr'"
        ) from None


def length_unit(unit: str | None) -> UnitsLength | None:
    """OME length unit of a UDUNITS-2 name (None: unknown or not given)."""
    return None if unit is None else _LENGTH_UNITS.get(unit.lower())


def time_unit(unit: str | None) -> UnitsTime | None:
    """OME time unit of a UDUNITS-2 name (None: unknown or not given)."""
    return None if unit is None else _TIME_UNITS.get(unit.lower())


def new_uuid() -> str:
    """A fresh ``urn:uuid:`` identifier."""
    return f"urn:uuid:{uuid.uuid4()}"


# ---------------------------------------------------------------- state


@dataclass
class PlaneRecord:
    """Per-frame metadata kept for the final OME-XML."""

    position_index: int
    storage_index: tuple[int, ...]
    values: dict[str, Any]


@dataclass
class DocumentState:
    """What changes while a stream runs; the rest comes from the settings."""

    #: extent of the first storage axis declared in the XML
    declared_steps: int
    #: position index -> its own extent of that axis, where it differs
    position_steps: dict[int, int] = field(default_factory=dict)
    planes: list[PlaneRecord] = field(default_factory=list)
    global_metadata: dict[str, Any] = field(default_factory=dict)
    frames_written: int = 0
    complete: bool = False


def _set_with_unit(kwargs: dict[str, Any], unit: Any, **values: Any) -> None:
    """Set each value that is not None in ``kwargs``, with ``<name>_unit``."""
    for name, value in values.items():
        if value is not None:
            kwargs[name] = value
            kwargs[f"{name}_unit"] = unit


# ---------------------------------------------------------------- builder


class OmeXmlBuilder:
    """Builds the OME model of one acquisition, whatever the file format.

    Parameters
    ----------
    settings, router
        The acquisition.

    Raises
    ------
    ValueError
        When the dimensions do not map onto OME's T, C and Z, or the dtype
        is not an OME pixel type.
    """

    #: the OME ``Creator`` of every document
    creator = f"ome_writers {__version__}"

    def __init__(self, settings: AcquisitionSettings, router: FrameRouter) -> None:
        self.settings = settings
        self.router = router
        self.axes = OmeAxes.from_settings(settings)
        self.pixel_type = pixel_type(settings.dtype)
        self._dims = {d.name: d for d in settings.stored_dimensions}
        # once: each rewrite of an unbounded stream's XML would dump them again
        self._settings_json = json.dumps(settings.model_dump(mode="json"))

    # ------------------------------------------------------------ pieces

    def storage_shape(self, steps: int) -> tuple[int, ...]:
        """Storage shape (frame dims excluded) with ``steps`` on an unbounded axis."""
        shape = [int(c or 0) for c in self.router.storage_counts]
        if self.router.is_unbounded:
            shape[0] = steps
        return tuple(shape)

    def sizes(self, steps: int) -> dict[str, int]:
        """OME ``SizeT``/``SizeC``/``SizeZ`` with ``steps`` on an unbounded axis."""
        sizes = {"T": 1, "C": 1, "Z": 1}
        for name, extent in zip(self.axes.storage_names, self.storage_shape(steps)):
            sizes[self.axes.axis_of[name]] = max(int(extent), 1)
        return sizes

    def plane_coords(self, storage_index: Sequence[int]) -> dict[str, int]:
        """OME (T, C, Z) of a storage index."""
        coords = {"T": 0, "C": 0, "Z": 0}
        for name, i in zip(self.axes.storage_names, storage_index):
            coords[self.axes.axis_of[name]] = int(i)
        return coords

    def _channels(self, position_index: int, size_c: int) -> list[Channel]:
        name = self.axes.name_of("C")
        dim = self._dims.get(name) if name else None
        coords = list(dim.coords) if dim is not None and dim.coords else []
        channels = []
        for c in range(size_c):
            spec = coords[c] if c < len(coords) else None
            kwargs: dict[str, Any] = {
                "id": f"Channel:{position_index}:{c}",
                "samples_per_pixel": 1,
            }
            if isinstance(spec, ChannelSpec):
                kwargs["name"] = spec.name
                _set_with_unit(
                    kwargs,
                    UnitsLength.NANOMETER,
                    excitation_wavelength=spec.excitation_wavelength_nm,
                    emission_wavelength=spec.emission_wavelength_nm,
                )
                if spec.fluorophore is not None:
                    kwargs["fluor"] = spec.fluorophore
                if spec.color is not None:
                    rgba = spec.color if len(spec.color) == 8 else spec.color + "FF"
                    kwargs["color"] = Color("#" + rgba)
            elif spec is not None:
                kwargs["name"] = str(spec)
            channels.append(Channel(**kwargs))
        return channels

    def _physical_sizes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        y, x = self.settings.frame_dimensions
        z_name = self.axes.name_of("Z")
        t_name = self.axes.name_of("T")
        for key, dim in (("x", x), ("y", y), ("z", self._dims.get(z_name or ""))):
            if dim is None or dim.scale is None or dim.type != "space":
                continue
            unit = length_unit(dim.unit)
            if dim.unit is not None and unit is None:
                continue  # a unit OME does not know: leave the size out
            out[f"physical_size_{key}"] = dim.scale
            if unit is not None:
                out[f"physical_size_{key}_unit"] = unit
        t_dim = self._dims.get(t_name or "")
        if t_dim is not None and t_dim.scale is not None and t_dim.type == "time":
            unit_t = time_unit(t_dim.unit)
            if t_dim.unit is None or unit_t is not None:
                out["time_increment"] = t_dim.scale
                if unit_t is not None:
                    out["time_increment_unit"] = unit_t
        return out

    def _stage_label(self, position_index: int) -> StageLabel | None:
        if not self.settings.position_dimension_names:
            return None
        pos = self.settings.positions[position_index]
        kwargs: dict[str, Any] = {"name": pos.name}
        _set_with_unit(
            kwargs, UnitsLength.MICROMETER, x=pos.x_coord, y=pos.y_coord, z=pos.z_coord
        )
        return StageLabel(**kwargs)

    def image(
        self,
        position_index: int,
        state: DocumentState,
        annotation_refs: list[AnnotationRef],
        plane_annotations: Mapping[int, str],
        pixels_data: Mapping[str, Any],
    ) -> Image:
        """The OME Image of one position.

        ``pixels_data`` are the ``Pixels`` fields saying where the pixels are
        (``tiff_data_blocks`` or ``metadata_only``).
        """
        steps = state.position_steps.get(position_index, state.declared_steps)
        sizes = self.sizes(steps)
        planes = []
        for i, record in enumerate(state.planes):
            if record.position_index != position_index:
                continue
            coords = self.plane_coords(record.storage_index)
            kwargs: dict[str, Any] = {
                "the_t": coords["T"],
                "the_c": coords["C"],
                "the_z": coords["Z"],
            }
            for key, (attr, unit) in PLANE_KEYS.items():
                value = record.values.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    kwargs[attr] = float(value)
                    kwargs[f"{attr}_unit"] = unit
            if i in plane_annotations:
                kwargs["annotation_refs"] = [AnnotationRef(id=plane_annotations[i])]
            planes.append(Plane(**kwargs))
        pixels = Pixels(
            id=f"Pixels:{position_index}",
            dimension_order=self.axes.dimension_order,
            type=self.pixel_type,
            size_x=self.settings.frame_shape[1],
            size_y=self.settings.frame_shape[0],
            size_t=sizes["T"],
            size_c=sizes["C"],
            size_z=sizes["Z"],
            big_endian=False,
            channels=self._channels(position_index, sizes["C"]),
            planes=planes,
            **pixels_data,
            **self._physical_sizes(),
        )
        name = self.settings.positions[position_index].name
        return Image(
            id=f"Image:{position_index}",
            name=name,
            pixels=pixels,
            stage_label=self._stage_label(position_index),
            annotation_refs=list(annotation_refs),
        )

    def _writer_annotation(self, state: DocumentState) -> MapAnnotation:
        dims = [
            {
                "name": d.name,
                "type": d.type,
                "count": d.count,
                "ome_axis": self.axes.axis_of.get(d.name, ""),
                "unit": d.unit,
            }
            for d in self.settings.dimensions
        ]
        entries = {
            "version": __version__,
            "dimensions": json.dumps(dims),
            "storage_order": json.dumps(list(self.axes.storage_names)),
            # which dimensions each stored axis holds (a folded camera axis)
            "storage_groups": json.dumps(self.settings.storage_groups),
            "frames_written": str(state.frames_written),
            "complete": "true" if state.complete else "false",
            "compression": str(self.settings.compression),
            # everything to rebuild the settings exactly (ome_writers.convert)
            "settings": self._settings_json,
            FRAME_ENCODING_KEY: FRAME_ENCODING,
        }
        return map_annotation("Annotation:0", WRITER_NAMESPACE, entries)

    def _plate(self, position_indices: Sequence[int]) -> Plate | None:
        plate = self.settings.plate
        if plate is None:
            return None
        positions = self.settings.positions
        wells: dict[tuple[str, str], list[int]] = {}
        for p in position_indices:
            pos = positions[p]
            if pos.plate_row is not None and pos.plate_column is not None:
                wells.setdefault((pos.plate_row, pos.plate_column), []).append(p)
        well_models = []
        for w, ((row, column), members) in enumerate(sorted(wells.items())):
            samples = []
            for p in members:
                pos = positions[p]
                kwargs: dict[str, Any] = {
                    "id": f"WellSample:{p}",
                    "index": p,
                    "image_ref": ImageRef(id=f"Image:{p}"),
                }
                _set_with_unit(
                    kwargs,
                    UnitsLength.MICROMETER,
                    position_x=pos.x_coord,
                    position_y=pos.y_coord,
                )
                samples.append(WellSample(**kwargs))
            well_models.append(
                Well(
                    id=f"Well:{w}",
                    row=plate.row_names.index(row),
                    column=plate.column_names.index(column),
                    well_samples=samples,
                )
            )
        return Plate(
            id="Plate:0",
            name=plate.name,
            rows=len(plate.row_names),
            columns=len(plate.column_names),
            row_naming_convention=_naming(plate.row_names),
            column_naming_convention=_naming(plate.column_names),
            wells=well_models,
        )

    def build(
        self,
        state: DocumentState,
        position_indices: Sequence[int],
        *,
        root_uuid: str | None,
        with_plate: bool,
        pixels_data: Callable[[int], Mapping[str, Any]] | None = None,
    ) -> OME:
        """An OME document over the Images of ``position_indices``.

        ``pixels_data(position_index)`` gives the ``Pixels`` fields that say
        where the pixels are; without it every ``Pixels`` is
        ``<MetadataOnly/>``.
        """
        annotations = [self._writer_annotation(state)]
        for namespace, mapping in state.global_metadata.items():
            annotations.append(
                global_annotation(f"Annotation:{len(annotations)}", namespace, mapping)
            )
        refs = [AnnotationRef(id=a.id) for a in annotations]
        plane_annotations: dict[int, str] = {}
        wanted = set(position_indices)
        for i, record in enumerate(state.planes):
            extra = {k: v for k, v in record.values.items() if k not in PLANE_KEYS}
            if not extra or record.position_index not in wanted:
                continue
            ann_id = f"Annotation:{len(annotations)}"
            annotations.append(
                map_annotation(
                    ann_id,
                    FRAME_NAMESPACE,
                    {k: frame_value_text(v) for k, v in extra.items()},
                )
            )
            plane_annotations[i] = ann_id
        images = []
        for p in position_indices:
            data = (
                pixels_data(p)
                if pixels_data is not None
                else {"metadata_only": MetadataOnly()}
            )
            images.append(self.image(p, state, refs, plane_annotations, data))
        plate = self._plate(position_indices) if with_plate else None
        kwargs: dict[str, Any] = {}
        if root_uuid is not None:
            kwargs["uuid"] = root_uuid
        return OME(
            images=images,
            plates=[plate] if plate is not None else [],
            structured_annotations=StructuredAnnotations(map_annotations=annotations),
            creator=self.creator,
            **kwargs,
        )


def map_annotation(
    ann_id: str, namespace: str, entries: Mapping[str, str]
) -> MapAnnotation:
    """A ``MapAnnotation`` with one entry per item of ``entries``."""
    return MapAnnotation(
        id=ann_id,
        namespace=namespace,
        value=Map(ms=[Map.M(k=k, value=v) for k, v in entries.items()]),
    )


def global_annotation(
    ann_id: str, namespace: str, mapping: Mapping[str, Any]
) -> MapAnnotation:
    """A ``set_global_metadata`` namespace: every value JSON-encoded (as 0.3)."""
    return map_annotation(
        ann_id, namespace, {k: json.dumps(v) for k, v in dict(mapping).items()}
    )


def frame_value_text(value: Any) -> str:
    """A per-frame value as map text that reads back as exactly that value.

    A string that is not JSON text is stored as it is (readable in any OME
    tool); any other value, and a string that is JSON text (``"1"``,
    ``"true"``, ``"[1]"``), is JSON-encoded, so ``"1"`` is stored as ``"\"1\""``
    and reads back as the string. ``decode_frame_value`` reverses it.

    >>> [frame_value_text(v) for v in ("GFP", "1", 1, None, ["a"])]
    ['GFP', '"1"', '1', 'null', '["a"]']
    """
    if isinstance(value, str) and not _is_json_text(value):
        return value
    return json.dumps(value)


def decode_frame_value(text: str, *, exact: bool = True) -> Any:
    """A per-frame map value as the writer was given it.

    ``exact``: the document's writer annotation records ``FRAME_ENCODING``
    (every value JSON but plain strings). Without it (files of ome-writers
    before that entry), strings were stored as they are and everything else
    as JSON: text that decodes to a string, NaN or infinity (never written
    as numbers) was a string; other JSON text is taken for the value it
    spells, so a string such as ``"1"`` in such a file reads as ``1``.

    >>> decode_frame_value('"1"'), decode_frame_value("1"), decode_frame_value("GFP")
    ('1', 1, 'GFP')
    >>> decode_frame_value('"a"', exact=False), decode_frame_value("NaN", exact=False)
    ('"a"', 'NaN')
    """
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    if exact:
        return decoded
    if isinstance(decoded, str) or (
        isinstance(decoded, float) and not math.isfinite(decoded)
    ):
        return text
    return decoded


def _is_json_text(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _naming(names: Sequence[str]) -> NamingConvention | None:
    if all(re.fullmatch(r"[A-Za-z]+", n) for n in names):
        return NamingConvention.LETTER
    if all(n.isdigit() for n in names):
        return NamingConvention.NUMBER
    return None
