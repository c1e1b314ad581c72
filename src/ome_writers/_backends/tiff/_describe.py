"""``ome-writers info`` for OME-TIFF: a ``DatasetInfo`` from the OME-XML.

Kept apart from the writer because it never touches a stream: it reads only
what the output says about itself (the OME-XML and the writer's
MapAnnotation; of the pixels, only the first page's compression and
sub-resolutions), so it describes files left by an interrupted run, and files
from other writers, the same way. Anything that is not OME-TIFF gives None,
so the CLI can try the next format.

A file, a companion (``.ome``) file, a ``BinaryOnly`` file, or the folder of
a one-file-per-position dataset all describe the whole dataset: the OME-XML
of any of them lists every position and the file that holds it. Where this
package wrote the files, its MapAnnotation says what OME-XML cannot: the
dimension names, their acquisition and storage order, which is unbounded,
how many frames were written, whether the stream was closed (and, in
recent versions, the settings with scales and units exactly as declared).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import tifffile

from ome_writers._backends._info import (
    OUR_WRITER,
    DatasetInfo,
    DimensionInfo,
    PlateInfo,
    PositionInfo,
    declared_frames,
    disk_bytes,
    to_micrometers,
    unit_name,
)
from ome_writers._backends._ome_xml import WRITER_NAMESPACE
from ome_writers._models import plate_row_name


def describe(path: Path) -> DatasetInfo | None:
    """Describe an OME-TIFF output, or None if ``path`` is not one.

    ``path`` is an OME-TIFF file, a companion (``.ome``) file, or the folder
    of a dataset written as one file per position. A file whose OME-XML is a
    ``BinaryOnly`` reference is described through the file it names.
    """
    path = Path(path)
    if path.is_dir():
        for candidate in _folder_documents(path):
            info = _describe_document(candidate, path)
            if info is not None:
                return info
        return None
    if not path.is_file():
        return None
    return _describe_document(path, None)


def _folder_documents(path: Path) -> list[Path]:
    """Where a folder of one file per position keeps its metadata, best first."""
    companions = sorted(path.glob("*.ome"))
    tiffs = sorted(p for p in path.iterdir() if p.name.lower().endswith(_TIFF))
    return [*companions, *tiffs[:1]]


_TIFF = (".tif", ".tiff")
_COMPRESSION_NAMES = {1: "none", 5: "lzw", 8: "zlib", 50000: "zstd"}
#: OME pixel types whose numpy name differs
_DTYPES = {"float": "float32", "double": "float64", "bit": "bool"}
_LETTER_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


def _read_ome(path: Path) -> tuple[Any, Path] | None:
    """(OME model, the document it came from) of ``path``, else None."""
    from ome_types import from_xml

    try:
        if path.name.lower().endswith(".ome"):
            xml = path.read_text("utf-8")
        else:
            with tifffile.TiffFile(path) as tf:
                if not tf.is_ome or tf.ome_metadata is None:
                    return None
                xml = tf.ome_metadata
        ome = from_xml(xml, validate=False)
    except Exception:  # not OME-TIFF at all: not ours to describe
        return None
    if ome.binary_only is not None:  # the metadata lives in another file
        target = path.parent / ome.binary_only.metadata_file
        return None if target == path else _read_ome(target)
    return ome, path


def _first_page(path: Path) -> tuple[str, int] | None:
    """(compression name, resolution levels) of the first page of ``path``."""
    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages.first
            code = tifffile.COMPRESSION(page.compression)
            levels = 1 + len(page.subifds or ())
    except (tifffile.TiffFileError, OSError, ValueError):
        return None
    return _COMPRESSION_NAMES.get(code.value, code.name.lower()), levels


def _data_file(image: Any) -> str | None:
    for block in image.pixels.tiff_data_blocks:
        if block.uuid is not None and block.uuid.file_name:
            return str(block.uuid.file_name)
    return None


def _letter_sizes(pixels: Any) -> dict[str, int]:
    return {
        "T": int(pixels.size_t),
        "C": int(pixels.size_c),
        "Z": int(pixels.size_z),
        "Y": int(pixels.size_y),
        "X": int(pixels.size_x),
    }


def _letter_scales(pixels: Any) -> dict[str, tuple[float | None, str | None]]:
    """OME letter -> (scale, UDUNITS-2 unit) from the Pixels' physical sizes."""
    out: dict[str, tuple[float | None, str | None]] = {}
    for letter, value, unit in (
        ("X", pixels.physical_size_x, pixels.physical_size_x_unit),
        ("Y", pixels.physical_size_y, pixels.physical_size_y_unit),
        ("Z", pixels.physical_size_z, pixels.physical_size_z_unit),
        ("T", pixels.time_increment, pixels.time_increment_unit),
    ):
        if value is not None:
            out[letter] = (float(value), unit_name(getattr(unit, "value", unit)))
    return out


def _json_entry(writer: dict[str, str], key: str) -> Any:
    try:
        return json.loads(writer[key])
    except (KeyError, ValueError):
        return None


def _axes(ome: Any, writer: dict[str, str]) -> list[tuple[str, str]]:
    """(name, OME letter) of every stored axis, slowest first, frame last."""
    pixels = ome.images[0].pixels
    entries = _json_entry(writer, "dimensions")
    storage = _json_entry(writer, "storage_order")
    if isinstance(entries, list) and isinstance(storage, list) and len(entries) >= 2:
        letters = {str(e.get("name")): str(e.get("ome_axis") or "") for e in entries}
        y, x = (str(e.get("name")) for e in entries[-2:])
        stored = [(str(n), letters.get(str(n), "")) for n in storage]
        if all(letter in "TCZ" and letter for _, letter in stored):
            return [*stored, (y, "Y"), (x, "X")]
    # another writer's file: OME's order, slowest first, axes of size 1 left out
    sizes = _letter_sizes(pixels)
    order = str(pixels.dimension_order.value)[2:][::-1]
    return [(a.lower(), a) for a in order if sizes[a] > 1] + [("y", "Y"), ("x", "X")]


def _dimensions(
    ome: Any, writer: dict[str, str], settings: dict[str, Any]
) -> list[DimensionInfo]:
    pixels = ome.images[0].pixels
    sizes = _letter_sizes(pixels)
    scales = _letter_scales(pixels)
    entries = _json_entry(writer, "dimensions")
    by_name = {
        str(e.get("name")): e
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict)
    }
    declared = {
        str(d.get("name")): d
        for d in settings.get("dimensions") or []
        if isinstance(d, dict)
    }
    dims = []
    for i, (name, letter) in enumerate(_axes(ome, writer)):
        entry = by_name.get(name)
        scale, unit = scales.get(letter, (None, None))
        kind = _LETTER_TYPES[letter]
        unbounded = False
        if entry is not None:  # ours
            kind = entry.get("type") or kind
            unit = unit_name(entry.get("unit"))
            unbounded = i == 0 and entry.get("count") is None
            spec = declared.get(name)
            if spec is not None:  # the settings: scales as declared
                unit = unit_name(spec.get("unit"))
                value = spec.get("scale")
                scale = float(value) if isinstance(value, (int, float)) else None
        dims.append(
            DimensionInfo(
                name=name,
                type=kind,
                size=sizes[letter],
                unbounded=unbounded,
                unit=unit,
                scale=scale,
            )
        )
    return dims


def _names(count: int, convention: Any) -> list[str]:
    kind = getattr(convention, "value", convention)
    if kind == "letter":
        return [plate_row_name(i) for i in range(count)]
    if kind == "number":
        return [str(i + 1) for i in range(count)]
    return [str(i) for i in range(count)]


def _plate(ome: Any) -> tuple[PlateInfo | None, dict[str, tuple[str, str]]]:
    """The first plate, and image id -> (row name, column name) of its wells."""
    if not ome.plates:
        return None, {}
    plate = ome.plates[0]
    wells = [w for w in plate.wells if w.well_samples]
    rows = plate.rows or max((w.row + 1 for w in wells), default=0)
    columns = plate.columns or max((w.column + 1 for w in wells), default=0)
    row_names = _names(rows, plate.row_naming_convention)
    column_names = _names(columns, plate.column_naming_convention)
    where = {}
    for well in wells:
        if well.row < len(row_names) and well.column < len(column_names):
            for sample in well.well_samples:
                if sample.image_ref is not None:
                    cell = (row_names[well.row], column_names[well.column])
                    where[sample.image_ref.id] = cell
    info = PlateInfo(
        name=plate.name,
        rows=row_names,
        columns=column_names,
        wells=len(wells),
    )
    return info, where


def _stage(image: Any) -> tuple[float | None, float | None, float | None]:
    label = image.stage_label
    if label is None:
        return None, None, None
    return (
        to_micrometers(label.x, getattr(label.x_unit, "value", label.x_unit)),
        to_micrometers(label.y, getattr(label.y_unit, "value", label.y_unit)),
        to_micrometers(label.z, getattr(label.z_unit, "value", label.z_unit)),
    )


def _describe_document(path: Path, folder: Path | None) -> DatasetInfo | None:
    """Describe the dataset whose OME-XML ``path`` holds (or refers to).

    ``folder``: the dataset folder the user named, if any.
    """
    loaded = _read_ome(path)
    if loaded is None or not loaded[0].images:
        return None
    ome, document = loaded
    directory = document.parent
    is_companion = document.name.lower().endswith(".ome")
    files = sorted({f for f in (_data_file(i) for i in ome.images) if f is not None})
    if not files and not is_companion:
        files = [document.name]
    per_position = is_companion or len(files) > 1
    if folder is not None:
        dataset = str(folder)
    elif per_position:
        dataset = str(directory)
    else:
        dataset = str(path)
    writer = _writer_entries(ome)
    settings = _json_entry(writer, "settings")
    settings = settings if isinstance(settings, dict) else {}
    dims = _dimensions(ome, writer, settings)
    letters = [letter for _, letter in _axes(ome, writer)]
    plate, wells = _plate(ome)
    positions = []
    for image in ome.images:
        sizes = _letter_sizes(image.pixels)
        x, y, z = _stage(image)
        row, column = wells.get(image.id, (None, None))
        positions.append(
            PositionInfo(
                name=image.name or image.id,
                path=_data_file(image) or document.name,
                shape=tuple(sizes[letter] for letter in letters),
                x_um=x,
                y_um=y,
                z_um=z,
                plate_row=row,
                plate_column=column,
            )
        )
    pixels = ome.images[0].pixels
    channels = (
        [c.name or str(i) for i, c in enumerate(pixels.channels)]
        if any(d.type == "channel" for d in dims)
        else []
    )
    first = next((directory / f for f in files if (directory / f).is_file()), None)
    page = None if first is None else _first_page(first)
    compression, levels = page if page is not None else ("unknown", 1)
    kept = [directory / f for f in files]
    if document not in kept:
        kept.append(document)
    common: dict[str, Any] = {
        "path": dataset,
        "format": "ome-tiff",
        "layout": "file-per-position" if per_position else "single-file",
        "dtype": _DTYPES.get(pixels.type.value, pixels.type.value),
        "dimensions": dims,
        "channels": channels,
        "positions": positions,
        "plate": plate,
        "compression": compression,
        "levels": levels,
        "bytes_on_disk": disk_bytes(kept),
    }
    if not writer:  # another writer's file
        return DatasetInfo(
            **common,
            writer=ome.creator or None,
            frames_total=sum(
                math.prod(_letter_sizes(i.pixels)[a] for a in "TCZ") for i in ome.images
            ),
        )
    entries = _json_entry(writer, "dimensions")
    counts = [e.get("count") for e in entries[:-2]] if isinstance(entries, list) else []
    written = writer.get("frames_written", "")
    if writer.get("compression") is not None:
        common["compression"] = str(writer["compression"]).lower()
    return DatasetInfo(
        **common,
        writer=OUR_WRITER,
        writer_version=writer.get("version"),
        engine=str(_format_backend(settings) or "tifffile"),
        acquisition_order=[str(e.get("name")) for e in entries]
        if isinstance(entries, list)
        else None,
        frames_written=int(written) if written.isdigit() else None,
        frames_total=declared_frames(counts) if counts else None,
        complete=writer.get("complete") == "true",
    )


def _format_backend(settings: dict[str, Any]) -> Any:
    fmt = settings.get("format")
    return fmt.get("backend") if isinstance(fmt, dict) else None


def _writer_entries(ome: Any) -> dict[str, str]:
    sa = ome.structured_annotations
    for ann in [] if sa is None else sa.map_annotations:
        if ann.namespace == WRITER_NAMESPACE:
            return {m.k: m.value for m in ann.value.ms if m.k is not None}
    return {}


def writer_state(path: Path) -> dict[str, str] | None:
    """The writer's MapAnnotation entries of an OME-TIFF output, else None.

    ``path`` as for ``describe``; ``{"complete": "true", ...}`` once closed.
    """
    path = Path(path)
    if path.is_dir():
        for candidate in _folder_documents(path):
            state = writer_state(candidate)
            if state is not None:
                return state
        return None
    loaded = _read_ome(path)
    return None if loaded is None else (_writer_entries(loaded[0]) or None)
