"""``ome-writers info`` for OME-TIFF: a summary of a file or companion file.

Kept apart from the writer because it never touches a stream: it reads only
what the output says about itself (the OME-XML and the writer's
MapAnnotation, page counts from tifffile), so it describes files left by an
interrupted run, and files from other writers, the same way. Anything that is
not OME-TIFF gives None, so the CLI can try the next format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tifffile

from ome_writers._backends._ome_xml import WRITER_NAMESPACE


def describe(path: Path) -> list[str] | None:
    """Human-readable lines describing an OME-TIFF output, or None if it is not one.

    ``path`` is an OME-TIFF file, a companion (``.ome``) file, or the folder
    of a dataset written as one file per position. A file whose OME-XML is a
    ``BinaryOnly`` reference is described through the file it names.
    """
    path = Path(path)
    if path.is_dir():
        return _describe_folder(path)
    if not path.is_file():
        return None
    if path.name.lower().endswith(".ome"):
        return _describe_companion(path)
    try:
        with tifffile.TiffFile(path) as tf:
            if not tf.is_ome or tf.ome_metadata is None:
                return None
            xml = tf.ome_metadata
            kind = "BigTIFF" if tf.is_bigtiff else "classic TIFF"
            pages = len(tf.pages)
            code = tifffile.COMPRESSION(tf.pages.first.compression)
            series = [(s.name, tuple(s.shape), s.axes, str(s.dtype)) for s in tf.series]
    except (tifffile.TiffFileError, OSError, ValueError):
        return None
    from ome_types import from_xml

    ome = from_xml(xml, validate=False)
    if ome.binary_only is not None:  # the metadata lives in another file
        return describe(path.parent / ome.binary_only.metadata_file)
    writer = _writer_entries(ome)
    lines = [f"{path}: OME-TIFF ({kind}), {_state_text(writer, pages)}"]
    lines += _image_lines(ome)
    lines.append(f"  series (as tifffile reads them): {len(series)}")
    for name, shape, axes, dtype in series:
        lines.append(f"    {name}: shape {shape} axes {axes} dtype {dtype}")
    lines.append(f"  pages (planes written): {pages}")
    lines.append(
        f"  compression: {_COMPRESSION_NAMES.get(code.value, code.name.lower())}"
    )
    lines.append(f"  size on disk: {_size_text(path.stat().st_size)}")
    return lines


def _folder_documents(path: Path) -> list[Path]:
    """Where a folder of one file per position keeps its metadata, best first."""
    companions = sorted(path.glob("*.ome"))
    tiffs = sorted(p for p in path.iterdir() if p.name.lower().endswith(_TIFF))
    return [*companions, *tiffs[:1]]


def _describe_folder(path: Path) -> list[str] | None:
    """A folder of one file per position: its companion, else its first file."""
    for candidate in _folder_documents(path):
        lines = describe(candidate)
        if lines is not None:
            return lines
    return None


_TIFF = (".tif", ".tiff")


def _describe_companion(path: Path) -> list[str] | None:
    from ome_types import from_xml

    try:
        ome = from_xml(path.read_text("utf-8"), validate=False)
    except Exception:  # not OME-XML at all: not ours to describe
        return None
    files = sorted(
        {
            td.uuid.file_name
            for image in ome.images
            for td in image.pixels.tiff_data_blocks
            if td.uuid is not None and td.uuid.file_name
        }
    )
    pages = 0
    size = path.stat().st_size
    for name in files:
        tiff = path.parent / name
        if tiff.is_file():
            size += tiff.stat().st_size
            try:
                with tifffile.TiffFile(tiff) as tf:
                    pages += len(tf.pages)
            except (tifffile.TiffFileError, OSError, ValueError):
                pass
    writer = _writer_entries(ome)
    lines = [f"{path}: OME-TIFF companion, {_state_text(writer, pages)}"]
    lines += _image_lines(ome)
    lines.append(f"  files: {len(files)}")
    lines += [f"    {name}" for name in files]
    lines.append(f"  pages (planes written): {pages}")
    lines.append(f"  compression: {writer.get('compression', 'unknown')}")
    if ome.plates:
        plate = ome.plates[0]
        lines.append(
            f"  plate: {plate.name or plate.id}, {len(plate.wells)} well(s) with images"
        )
    lines.append(f"  size on disk: {_size_text(size)}")
    return lines


_COMPRESSION_NAMES = {1: "none", 5: "lzw", 8: "zlib", 50000: "zstd"}


def _size_text(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes} B"


def _writer_entries(ome: Any) -> dict[str, str]:
    sa = ome.structured_annotations
    for ann in [] if sa is None else sa.map_annotations:
        if ann.namespace == WRITER_NAMESPACE:
            return {m.k: m.value for m in ann.value.ms if m.k is not None}
    return {}


def _state_text(writer: dict[str, str], pages: int) -> str:
    if not writer:
        return "not written by ome_writers"
    if writer.get("complete") == "true":
        return f"complete ({writer.get('frames_written', '?')} frames)"
    return (
        f"interrupted: {pages} page(s) on disk, per-plane metadata and the final "
        "extent were not written"
    )


def _image_lines(ome: Any) -> list[str]:
    lines = []
    if ome.images:
        px = ome.images[0].pixels
        lines.append(f"  dtype: {px.type.value}")
        lines.append(f"  dimension order: {px.dimension_order.value}")
    lines.append(f"  positions (images): {len(ome.images)}")
    for image in ome.images:
        px = image.pixels
        sizes = f"T={px.size_t} C={px.size_c} Z={px.size_z} Y={px.size_y} X={px.size_x}"
        lines.append(f"    {image.name or image.id}: {sizes}")
    return lines


def writer_state(path: Path) -> dict[str, str] | None:
    """The writer's MapAnnotation entries of an OME-TIFF output, else None.

    ``path`` as for ``describe``; ``{"complete": "true", ...}`` once closed.
    """
    from ome_types import from_xml

    path = Path(path)
    if path.is_dir():
        for candidate in _folder_documents(path):
            state = writer_state(candidate)
            if state is not None:
                return state
        return None
    try:
        if path.name.lower().endswith(".ome"):
            xml = path.read_text("utf-8")
        else:
            with tifffile.TiffFile(path) as tf:
                if not tf.is_ome or tf.ome_metadata is None:
                    return None
                xml = tf.ome_metadata
        ome = from_xml(xml, validate=False)
    except Exception:  # not OME-TIFF at all
        return None
    if ome.binary_only is not None:
        return writer_state(path.parent / ome.binary_only.metadata_file)
    return _writer_entries(ome) or None
