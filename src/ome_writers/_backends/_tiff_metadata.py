"""OME-XML for the OME-TIFF backend, built from ome-types models.

Which OME axis each dimension becomes, and which IFD holds each plane, is
decided in ``_tiff_planes``; this module turns those answers, the settings and
the per-frame records into ``OME`` documents: one per file, and a companion
document when positions go to separate files.

Everything here is pure: no file I/O. The backend decides what to write when.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ome_types import OME, to_xml
from ome_types.model import (
    AnnotationRef,
    Channel,
    Color,
    Image,
    ImageRef,
    Map,
    MapAnnotation,
    NamingConvention,
    Pixels,
    PixelType,
    Plane,
    Plate,
    StageLabel,
    StructuredAnnotations,
    TiffData,
    UnitsLength,
    UnitsTime,
    Well,
    WellSample,
)

from ome_writers._backends._tiff_planes import OmeAxes, plane_ifds, tiff_data_runs
from ome_writers._settings import Channel as ChannelSpec
from ome_writers._version import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

#: namespace of the writer's own MapAnnotation (dimension names, completeness)
WRITER_NAMESPACE = "ome_writers"
#: namespace of the per-frame MapAnnotations (frame_metadata keys OME has no field for)
FRAME_NAMESPACE = "ome_writers/frame_metadata"
#: frame_metadata keys that become Plane attributes, and their units
PLANE_KEYS: dict[str, tuple[str, Any]] = {
    "delta_t": ("delta_t", UnitsTime.SECOND),
    "exposure_time": ("exposure_time", UnitsTime.MILLISECOND),
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


# ---------------------------------------------------------------- document


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
    #: IFD limit per file: planes with an IFD at or above it get no TiffData
    ifd_limits: list[int]
    planes: list[PlaneRecord] = field(default_factory=list)
    global_metadata: dict[str, Any] = field(default_factory=dict)
    frames_written: int = 0
    complete: bool = False


class OmeDocument:
    """Builds the OME-XML of every file of one acquisition.

    Parameters
    ----------
    settings, router
        The acquisition.
    file_names
        One file name per position (``per_position_file``), or a single name
        (all positions as series of that file).
    """

    def __init__(
        self,
        settings: AcquisitionSettings,
        router: FrameRouter,
        file_names: Sequence[str],
        *,
        per_position_file: bool,
    ) -> None:
        self.settings = settings
        self.router = router
        self.axes = OmeAxes.from_settings(settings)
        self.pixel_type = pixel_type(settings.dtype)
        self.file_names = list(file_names)
        self.per_position_file = per_position_file
        self.file_uuids = [new_uuid() for _ in self.file_names]
        self.companion_uuid = new_uuid()
        self._dims = {d.name: d for d in settings.dimensions}
        self._ifd_cache: dict[tuple[int, int], np.ndarray] = {}

    # ------------------------------------------------------------ pieces

    def storage_shape(self, steps: int) -> tuple[int, ...]:
        """Storage shape (frame dims excluded) with ``steps`` on an unbounded axis."""
        shape = [int(self.router.counts[a] or 0) for a in self.router.storage_axes]
        if self.router.is_unbounded:
            shape[0] = steps
        return tuple(shape)

    def ifds(self, position_index: int, steps: int) -> np.ndarray:
        """IFD of every plane of a position (cached per extent)."""
        key = (position_index, steps)
        cached = self._ifd_cache.get(key)
        if cached is None:
            if len(self._ifd_cache) > 64:
                self._ifd_cache.clear()
            cached = plane_ifds(
                self.router,
                self.storage_shape(steps),
                position_index,
                per_position_file=self.per_position_file,
            )
            self._ifd_cache[key] = cached
        return cached

    def _sizes(self, steps: int) -> dict[str, int]:
        sizes = {"T": 1, "C": 1, "Z": 1}
        for name, extent in zip(self.axes.storage_names, self.storage_shape(steps)):
            sizes[self.axes.axis_of[name]] = max(int(extent), 1)
        return sizes

    def _plane_coords(self, storage_index: Sequence[int]) -> dict[str, int]:
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
                if spec.excitation_wavelength_nm is not None:
                    kwargs["excitation_wavelength"] = spec.excitation_wavelength_nm
                    kwargs["excitation_wavelength_unit"] = UnitsLength.NANOMETER
                if spec.emission_wavelength_nm is not None:
                    kwargs["emission_wavelength"] = spec.emission_wavelength_nm
                    kwargs["emission_wavelength_unit"] = UnitsLength.NANOMETER
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
        for key, value in (
            ("x", pos.x_coord),
            ("y", pos.y_coord),
            ("z", pos.z_coord),
        ):
            if value is not None:
                kwargs[key] = value
                kwargs[f"{key}_unit"] = UnitsLength.MICROMETER
        return StageLabel(**kwargs)

    def image(
        self,
        position_index: int,
        state: DocumentState,
        annotation_refs: list[AnnotationRef],
        plane_annotations: Mapping[int, str],
        *,
        uuid_ref: tuple[str, str] | None,
    ) -> Image:
        """The OME Image of one position."""
        sizes = self._sizes(state.declared_steps)
        file_index = position_index if self.per_position_file else 0
        limit = state.ifd_limits[file_index]
        shape = self.storage_shape(state.declared_steps)
        tiff_data = []
        for start, ifd, count in tiff_data_runs(
            self.ifds(position_index, state.declared_steps), limit
        ):
            coords = self._plane_coords(
                [int(i) for i in np.unravel_index(start, shape)]
            )
            kwargs: dict[str, Any] = {
                "ifd": ifd,
                "first_t": coords["T"],
                "first_c": coords["C"],
                "first_z": coords["Z"],
                "plane_count": count,
            }
            if uuid_ref is not None:
                kwargs["uuid"] = TiffData.UUID(value=uuid_ref[0], file_name=uuid_ref[1])
            tiff_data.append(TiffData(**kwargs))
        planes = []
        for i, record in enumerate(state.planes):
            if record.position_index != position_index:
                continue
            coords = self._plane_coords(record.storage_index)
            kwargs = {"the_t": coords["T"], "the_c": coords["C"], "the_z": coords["Z"]}
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
            tiff_data_blocks=tiff_data,
            planes=planes,
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
            "frames_written": str(state.frames_written),
            "complete": "true" if state.complete else "false",
            "compression": str(self.settings.compression),
        }
        return _map_annotation("Annotation:0", WRITER_NAMESPACE, entries)

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
                if pos.x_coord is not None:
                    kwargs["position_x"] = pos.x_coord
                    kwargs["position_x_unit"] = UnitsLength.MICROMETER
                if pos.y_coord is not None:
                    kwargs["position_y"] = pos.y_coord
                    kwargs["position_y_unit"] = UnitsLength.MICROMETER
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
        with_file_refs: bool,
        with_plate: bool,
    ) -> OME:
        """An OME document over the Images of ``position_indices``."""
        annotations = [self._writer_annotation(state)]
        for namespace, mapping in state.global_metadata.items():
            annotations.append(
                _map_annotation(
                    f"Annotation:{len(annotations)}",
                    namespace,
                    {k: _text(v) for k, v in dict(mapping).items()},
                )
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
                _map_annotation(
                    ann_id, FRAME_NAMESPACE, {k: _text(v) for k, v in extra.items()}
                )
            )
            plane_annotations[i] = ann_id
        images = []
        for p in position_indices:
            uuid_ref = None
            if with_file_refs:
                f = p if self.per_position_file else 0
                uuid_ref = (self.file_uuids[f], self.file_names[f])
            images.append(
                self.image(p, state, refs, plane_annotations, uuid_ref=uuid_ref)
            )
        plate = self._plate(position_indices) if with_plate else None
        kwargs: dict[str, Any] = {}
        if root_uuid is not None:
            kwargs["uuid"] = root_uuid
        return OME(
            images=images,
            plates=[plate] if plate is not None else [],
            structured_annotations=StructuredAnnotations(map_annotations=annotations),
            creator=f"ome_writers {__version__}",
            **kwargs,
        )

    def file_xml(self, file_index: int, state: DocumentState) -> bytes:
        """OME-XML embedded in TIFF file ``file_index``.

        One file for all positions: the whole acquisition, plate included.
        One file per position: a complete, standalone document of that
        position's Image; the companion file ties them together.
        """
        if self.per_position_file:
            ome = self.build(
                state,
                [file_index],
                root_uuid=self.file_uuids[file_index],
                with_file_refs=False,
                with_plate=False,
            )
        else:
            ome = self.build(
                state,
                range(self.router.num_positions),
                root_uuid=self.file_uuids[0],
                with_file_refs=False,
                with_plate=True,
            )
        return to_xml(ome).encode("utf-8")

    def companion_xml(self, state: DocumentState) -> bytes:
        """The companion ``.companion.ome``: every Image, pointing at its file."""
        ome = self.build(
            state,
            range(self.router.num_positions),
            root_uuid=self.companion_uuid,
            with_file_refs=True,
            with_plate=True,
        )
        return to_xml(ome).encode("utf-8")


def _map_annotation(
    ann_id: str, namespace: str, entries: Mapping[str, str]
) -> MapAnnotation:
    return MapAnnotation(
        id=ann_id,
        namespace=namespace,
        value=Map(ms=[Map.M(k=k, value=v) for k, v in entries.items()]),
    )


def _text(value: Any) -> str:
    """A map value: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _naming(names: Sequence[str]) -> NamingConvention | None:
    if all(re.fullmatch(r"[A-Za-z]+", n) for n in names):
        return NamingConvention.LETTER
    if all(n.isdigit() for n in names):
        return NamingConvention.NUMBER
    return None
