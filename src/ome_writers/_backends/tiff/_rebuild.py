"""Settings of an OME-TIFF rebuilt from its OME-XML (for ``convert``).

Files written by ome-writers record their settings in the writer's
``MapAnnotation`` (``_reader``). Older ones (before the ``settings`` entry)
and OME-TIFFs of other writers (tifffile's ``ome=True``) do not; what their
OME-XML says is enough for an acquisition of the same pixels:

- **Dimensions**: one per OME axis of ``DimensionOrder`` (slowest first:
  ``XYZCT`` gives ``t, c, z``) whose size is above 1 (the channel axis also
  when its one channel has a name), then ``y`` and ``x``. Where the writer
  annotation of an older ome-writers lists its ``dimensions`` (names, order,
  position dimension), those names and that order are used instead.
- **Positions**: one per ``Image`` (series), named after it, with the
  ``StageLabel``'s coordinates (micrometers); a ``p`` dimension, outermost,
  when there is more than one (or one with stage coordinates). A ``Plate``
  whose wells hold every Image once gives the plate and each position's well.
- **Scales and units**: ``PhysicalSizeX/Y/Z`` and ``TimeIncrement``, with
  their units; **dtype** from ``Type``; **channels** from the ``Channel``
  elements (name, wavelengths in nm, fluorophore, color).
- **Pages**: from each Image's ``TiffData`` (``IFD``, ``FirstT/C/Z``,
  ``PlaneCount``, the ``UUID FileName`` of another file), planes counted in
  ``DimensionOrder``; a plane without one was never written (zeros).

Every Image must have the same pixel type, sizes and dimension order (the
positions of one acquisition); anything the XML lacks for that is an error
that names the file and what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ome_writers._errors import NotADatasetError
from ome_writers._formats import OmeTiffFormat
from ome_writers._models import Channel, Dimension, Plate, Position, plate_row_name
from ome_writers._settings import AcquisitionSettings

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

#: OME pixel type -> numpy dtype name
_DTYPES = {
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "float": "float32",
    "double": "float64",
}
#: OME length unit -> (UDUNITS name, micrometers per unit)
LENGTH_UNITS: dict[str, tuple[str, float]] = {
    "m": ("m", 1e6),
    "cm": ("cm", 1e4),
    "mm": ("mm", 1e3),
    "µm": ("um", 1.0),
    "nm": ("nm", 1e-3),
    "pm": ("pm", 1e-6),
    "Å": ("angstrom", 1e-4),
}
#: OME time unit -> (UDUNITS name, seconds per unit)
TIME_UNITS: dict[str, tuple[str, float]] = {
    "s": ("s", 1.0),
    "ms": ("ms", 1e-3),
    "µs": ("us", 1e-6),
    "ns": ("ns", 1e-9),
    "min": ("min", 60.0),
    "h": ("h", 3600.0),
    "d": ("day", 86400.0),
}
_AXIS_NAMES = {"T": "t", "C": "c", "Z": "z", "P": "p"}


@dataclass
class RebuiltAcquisition:
    """What the OME-XML of an OME-TIFF says of its acquisition.

    Attributes
    ----------
    settings
        Settings for the same pixels (``format`` OME-TIFF, no compression).
    files
        The TIFF files the ``TiffData`` name, the document's own first.
    storage_axes
        The OME axis (``"T"``, ``"C"``, ``"Z"``) of each storage axis.
    plane_pages
        ``(position, T, C, Z)`` -> ``(file index, IFD)`` of every plane.
    """

    settings: AcquisitionSettings
    files: list[Path]
    storage_axes: tuple[str, ...]
    plane_pages: dict[tuple[int, int, int, int], tuple[int, int]]


def rebuild_acquisition(
    ome: Any, document: Path, entries: Mapping[str, str] | None
) -> RebuiltAcquisition:
    """The acquisition an OME-XML document describes (see the module notes).

    Parameters
    ----------
    ome
        The document (``ome_types.OME``).
    document
        The file that holds it (a TIFF file or a companion ``.ome`` file).
    entries
        The writer annotation of an older ome-writers, if there is one.

    Raises
    ------
    NotADatasetError
        The document lacks what an acquisition needs (an Image, its
        ``TiffData``, a pixel type this package stores), or its Images
        differ in pixel type, sizes or dimension order.
    """
    where = f"cannot rebuild the acquisition of {str(document)!r} from its OME-XML"
    images = list(ome.images)
    if not images:
        raise NotADatasetError(f"{where}: it describes no Image")
    pixels = images[0].pixels
    shape = _pixels_shape(pixels)
    for i, image in enumerate(images[1:], 1):
        if _pixels_shape(image.pixels) != shape:
            raise NotADatasetError(
                f"{where}: Image {i} ({image.id!r}) has pixel type, sizes or "
                f"dimension order {_pixels_shape(image.pixels)!r}, Image 0 "
                f"{shape!r}; the series are not the positions of one acquisition"
            )
    type_name = pixels.type.value
    if type_name not in _DTYPES:
        raise NotADatasetError(
            f"{where}: pixel type {type_name!r} is not one this package stores "
            f"(those are {sorted(_DTYPES)!r})"
        )
    for channel in pixels.channels:
        if (channel.samples_per_pixel or 1) > 1:
            raise NotADatasetError(
                f"{where}: channel {channel.id!r} has {channel.samples_per_pixel} "
                "samples per pixel (RGB); only one sample per pixel is supported"
            )
    sizes = {"T": pixels.size_t, "C": pixels.size_c, "Z": pixels.size_z}
    positions, plate = _positions(ome, images)
    order = _axis_order(pixels, sizes, positions, entries)
    frame_names = _frame_names(entries)
    dims: list[Dimension] = []
    for axis, name in order:
        if axis == "P":
            dims.append(Dimension(name=name, type="position", coords=list(positions)))
        elif axis == "T":
            dims.append(_time_dimension(name, pixels, sizes["T"]))
        elif axis == "C":
            dims.append(_channel_dimension(name, pixels, sizes["C"]))
        else:
            dims.append(_space_dimension(name, sizes["Z"], pixels, "z"))
    dims.append(_space_dimension(frame_names[0], pixels.size_y, pixels, "y"))
    dims.append(_space_dimension(frame_names[1], pixels.size_x, pixels, "x"))
    try:
        settings = AcquisitionSettings(
            root_path=str(document),
            dimensions=dims,
            dtype=_DTYPES[type_name],
            format=OmeTiffFormat(),
            plate=plate,
        )
        settings.validate_stream_ready()
    except (ValueError, TypeError) as exc:
        raise NotADatasetError(f"{where}: {exc}") from None
    axis_of = {name: axis for axis, name in order if axis != "P"}
    storage_axes = tuple(axis_of[n] for n in settings.storage_dimension_names)
    files, plane_pages = _plane_pages(images, document, where)
    return RebuiltAcquisition(settings, files, storage_axes, plane_pages)


def _pixels_shape(pixels: Any) -> tuple[Any, ...]:
    return (
        pixels.type.value,
        pixels.dimension_order.value,
        pixels.size_x,
        pixels.size_y,
        pixels.size_z,
        pixels.size_c,
        pixels.size_t,
    )


def _old_dimensions(entries: Mapping[str, str] | None) -> list[dict[str, Any]] | None:
    """The ``dimensions`` entry of an older ome-writers' annotation, if usable."""
    if not entries or "dimensions" not in entries:
        return None
    try:
        dims = json.loads(entries["dimensions"])
    except ValueError:
        return None
    if not isinstance(dims, list) or len(dims) < 2:
        return None
    if not all(isinstance(d, dict) and isinstance(d.get("name"), str) for d in dims):
        return None
    return dims


def _frame_names(entries: Mapping[str, str] | None) -> tuple[str, str]:
    dims = _old_dimensions(entries)
    if dims is None:
        return ("y", "x")
    return (dims[-2]["name"], dims[-1]["name"])


def _axis_order(
    pixels: Any,
    sizes: Mapping[str, int],
    positions: list[Position],
    entries: Mapping[str, str] | None,
) -> list[tuple[str, str]]:
    """(OME axis or ``"P"``, dimension name) of the non-frame dimensions."""
    named_channel = sizes["C"] == 1 and any(c.name for c in pixels.channels)
    wanted = {
        axis for axis in "TCZ" if sizes[axis] > 1 or (axis == "C" and named_channel)
    }
    with_positions = len(positions) > 1 or any(
        p.x_coord is not None
        or p.y_coord is not None
        or p.z_coord is not None
        or p.plate_row is not None
        for p in positions
    )
    dims = _old_dimensions(entries)
    if dims is not None:
        order: list[tuple[str, str]] = []
        for d in dims[:-2]:
            axis = "P" if d.get("type") == "position" else d.get("ome_axis")
            if axis not in ("T", "C", "Z", "P") or axis in (a for a, _ in order):
                order = []  # an axis OME does not hold (a folded camera axis)
                break
            order.append((axis, d["name"]))
        covered = {a for a, _ in order}
        if order and wanted <= covered and (("P" in covered) == with_positions):
            return order
    # the slowest axis is DimensionOrder's last letter
    axes = [a for a in reversed(pixels.dimension_order.value[2:]) if a in wanted]
    order = [(a, _AXIS_NAMES[a]) for a in axes]
    if with_positions:
        order.insert(0, ("P", "p"))
    return order


def _time_dimension(name: str, pixels: Any, count: int) -> Dimension:
    scale, unit = None, None
    if pixels.time_increment is not None and pixels.time_increment > 0:
        known = TIME_UNITS.get(_unit_value(pixels.time_increment_unit))
        scale = float(pixels.time_increment)
        unit = known[0] if known else _unit_value(pixels.time_increment_unit)
    return Dimension(name=name, count=count, type="time", scale=scale, unit=unit)


def _space_dimension(name: str, count: int, pixels: Any, key: str) -> Dimension:
    size = getattr(pixels, f"physical_size_{key}")
    scale, unit = None, None
    if size is not None and size > 0:
        value = _unit_value(getattr(pixels, f"physical_size_{key}_unit"))
        known = LENGTH_UNITS.get(value)
        scale = float(size)
        unit = known[0] if known else value
    return Dimension(name=name, count=count, type="space", scale=scale, unit=unit)


def _channel_dimension(name: str, pixels: Any, count: int) -> Dimension:
    channels = list(pixels.channels)[:count]
    if len(channels) < count or not any(c.name for c in channels):
        return Dimension(name=name, count=count, type="channel")
    coords: list[Channel] = []
    used: set[str] = set()
    for i, channel in enumerate(channels):
        label = channel.name or f"C{i}"
        while label in used:
            label += "_2"
        used.add(label)
        kwargs: dict[str, Any] = {"name": label}
        for attr, field in (
            ("excitation_wavelength", "excitation_wavelength_nm"),
            ("emission_wavelength", "emission_wavelength_nm"),
        ):
            value = getattr(channel, attr)
            known = LENGTH_UNITS.get(_unit_value(getattr(channel, f"{attr}_unit")))
            if value is not None and value > 0 and known is not None:
                kwargs[field] = float(value) * known[1] * 1000.0
        if channel.fluor:
            kwargs["fluorophore"] = channel.fluor
        if "color" in channel.model_fields_set and channel.color is not None:
            r, g, b, *alpha = channel.color.as_rgb_tuple(alpha=True)
            a = round(float(alpha[0]) * 255) if alpha else 255
            rgb = f"{r:02X}{g:02X}{b:02X}"
            kwargs["color"] = rgb if a == 255 else f"{rgb}{a:02X}"
        coords.append(Channel(**kwargs))
    return Dimension(name=name, type="channel", coords=list(coords))


def _unit_value(unit: Any) -> str:
    return str(getattr(unit, "value", unit))


def _stage_um(label: Any, axis: str) -> float | None:
    value = getattr(label, axis, None)
    if value is None:
        return None
    known = LENGTH_UNITS.get(_unit_value(getattr(label, f"{axis}_unit", "µm")))
    return float(value) * (known[1] if known else 1.0)


def _positions(ome: Any, images: list[Any]) -> tuple[list[Position], Plate | None]:
    """One Position per Image, in a plate's wells when the plate holds them all."""
    wells = _wells(ome, images)
    plate = None
    if wells is not None:
        plate_model, rows, columns = wells[0]
        plate = Plate(
            row_names=rows, column_names=columns, name=plate_model.name or None
        )
    positions: list[Position] = []
    seen: set[tuple[Any, ...]] = set()
    for i, image in enumerate(images):
        label = image.stage_label
        kwargs: dict[str, Any] = {}
        if label is not None:
            for axis in ("x", "y", "z"):
                kwargs[f"{axis}_coord"] = _stage_um(label, axis)
        if wells is not None:
            kwargs["plate_row"], kwargs["plate_column"] = wells[1][i]
        name = image.name or f"Image{i}"
        key = (kwargs.get("plate_row"), kwargs.get("plate_column"))
        while (name, *key) in seen:
            name += "_2"
        seen.add((name, *key))
        positions.append(Position(name=name, **kwargs))
    return positions, plate


def _wells(
    ome: Any, images: list[Any]
) -> tuple[tuple[Any, list[str], list[str]], list[tuple[str, str]]] | None:
    """(plate, row names, column names) and each Image's (row, column), or None."""
    if len(ome.plates) != 1:
        return None
    plate = ome.plates[0]
    rows = plate.rows or 1 + max((w.row for w in plate.wells), default=0)
    columns = plate.columns or 1 + max((w.column for w in plate.wells), default=0)
    numbers = "number"
    row_names = [
        str(i + 1)
        if _naming(plate.row_naming_convention) == numbers
        else plate_row_name(i)
        for i in range(rows)
    ]
    column_names = [
        plate_row_name(i)
        if _naming(plate.column_naming_convention) == "letter"
        else str(i + 1)
        for i in range(columns)
    ]
    index = {image.id: i for i, image in enumerate(images)}
    where: dict[int, tuple[str, str]] = {}
    for well in plate.wells:
        if not (0 <= well.row < rows and 0 <= well.column < columns):
            return None
        for sample in well.well_samples:
            ref = sample.image_ref
            i = index.get(ref.id) if ref is not None else None
            if i is None or i in where:
                return None
            where[i] = (row_names[well.row], column_names[well.column])
    if len(where) != len(images):
        return None
    return (plate, row_names, column_names), [where[i] for i in range(len(images))]


def _naming(convention: Any) -> str | None:
    return None if convention is None else _unit_value(convention).lower()


def _plane_pages(
    images: list[Any], document: Path, where: str
) -> tuple[list[Path], dict[tuple[int, int, int, int], tuple[int, int]]]:
    """The files, and ``(position, T, C, Z)`` -> ``(file, IFD)``, from TiffData."""
    files: list[Path] = []
    is_tiff = not document.name.lower().endswith(".ome")
    if is_tiff:
        files.append(document)
    pages: dict[tuple[int, int, int, int], tuple[int, int]] = {}
    for p, image in enumerate(images):
        pixels = image.pixels
        blocks = list(pixels.tiff_data_blocks)
        if not blocks:
            raise NotADatasetError(
                f"{where}: Image {p} ({image.id!r}) has no TiffData, so which "
                "pages hold its planes is not said (MetadataOnly or BinData "
                "pixels are not read)"
            )
        order = pixels.dimension_order.value[2:]  # fastest first
        size = {"Z": pixels.size_z, "C": pixels.size_c, "T": pixels.size_t}
        total = size["Z"] * size["C"] * size["T"]
        for block in blocks:
            name = block.uuid.file_name if block.uuid is not None else None
            if name:
                path = document.parent / name
                if not path.is_file():
                    raise NotADatasetError(
                        f"{where}: Image {p}'s TiffData names the file {name!r}, "
                        f"which is not in {str(document.parent)!r}"
                    )
                if path not in files:
                    files.append(path)
                file_index = files.index(path)
            elif is_tiff:
                file_index = 0
            else:
                raise NotADatasetError(
                    f"{where}: Image {p}'s TiffData names no file (UUID FileName), "
                    "and a companion file holds no pages"
                )
            first = {"Z": block.first_z, "C": block.first_c, "T": block.first_t}
            start = 0
            for axis in reversed(order):  # slowest first
                start = start * size[axis] + first[axis]
            count = block.plane_count
            if count is None:
                count = total - start if len(blocks) == 1 else 1
            if start + count > total:
                raise NotADatasetError(
                    f"{where}: Image {p}'s TiffData (IFD {block.ifd}, "
                    f"PlaneCount {count}) goes past its {total} planes"
                )
            for k in range(count):
                rest = start + k
                coords = {}
                for axis in order:
                    rest, coords[axis] = divmod(rest, size[axis])
                key = (p, coords["T"], coords["C"], coords["Z"])
                pages[key] = (file_index, block.ifd + k)
    return files, pages
