"""What ``update_metadata`` set in a source, carried into ``convert``'s destination.

``update_metadata`` edits a format's own metadata: OME-Zarr image groups'
attributes (``"ome"`` and keys of the user's), OME-TIFF OME-XML documents.
``convert`` reads them from the source (``_dataset``: ``group_attributes``,
``ome_document``) and, once the destination's stream is closed, gives the
destination's stream what maps, through its own ``update_metadata``:

- **OME-Zarr -> OME-Zarr**: each image group's keys but ``"ome"``, as they
  are; and the edits made to ``"ome"``, found by comparing it with what the
  source's writer writes for the source's settings, applied to the
  destination's ``"ome"`` (so ``multiscales`` ``datasets`` stay those of the
  arrays the destination holds, e.g. with another pyramid).
- **OME-TIFF -> OME-TIFF**: the source's document, with what says where the
  destination's pixels are (file UUIDs, ``BinaryOnly``, every ``Pixels``'s
  type, sizes, dimension order and ``TiffData``) and the writer's own
  annotation taken from the destination's document, into every document of
  the destination that describes the dataset. Only a complete source of this
  package has one (``update_metadata`` runs after ``close``).
- **OME-Zarr -> OME-TIFF**: each image group's keys but ``"ome"`` become a
  ``MapAnnotation`` (namespace ``ome_writers/zarr_attributes``, values
  JSON-encoded) that the position's Image refers to; **OME-TIFF ->
  OME-Zarr** turns those back into the group's attributes, so a round trip
  keeps them.
- **Not carried**, because nothing in the other format means the same:
  ``"ome"`` edits into OME-TIFF (NGFF multiscales/omero describe the Zarr
  arrays; the OME-XML is built from the settings), OME-XML edits into
  OME-Zarr other than the above (NGFF has no place for Instruments, ROIs or
  descriptions; a ``MapAnnotation`` with a namespace that the first Image
  refers to is read as global metadata and so does travel), and anything into
  or out of scratch, which has no format metadata (``set_global_metadata``
  is what every format keeps).

A destination whose metadata the source did not edit is not rewritten, and
for OME-TIFF not even parsed: the two documents' texts are compared without
what differs in any conversion (``bare_document``); parsing and merging cost
about a millisecond per plane.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ome_writers._dataset import Dataset
    from ome_writers._stream import OMEStream

#: ``Pixels`` fields that say how and where the destination stores the pixels
_PIXELS_STORAGE = (
    "dimension_order",
    "type",
    "significant_bits",
    "interleaved",
    "big_endian",
    "size_x",
    "size_y",
    "size_z",
    "size_c",
    "size_t",
    "tiff_data_blocks",
    "bin_data_blocks",
    "metadata_only",
)
_MISSING = object()
#: what differs between two documents of the same acquisition in any
#: conversion: file UUIDs, where the planes are, the writer's own annotation
_CONVERSION_PARTS = re.compile(
    r"<TiffData\b[^>]*?(?:/>|>.*?</TiffData>)"
    r"|<MetadataOnly\s*/>"
    r'|<MapAnnotation\b[^>]*\bNamespace="ome_writers"[^>]*>.*?</MapAnnotation>'
    r'|\sUUID="[^"]*"',
    re.DOTALL,
)
_BETWEEN_TAGS = re.compile(r">\s+<")


def carry_format_metadata(src: Dataset, stream: OMEStream) -> None:
    """Give the closed ``stream`` what of the source's format metadata maps."""
    kind = stream.settings.format.name
    if kind == "ome-zarr":
        _into_zarr(src, stream)
    elif kind == "ome-tiff":
        _into_tiff(src, stream)


# ------------------------------------------------------------------ OME-Zarr


def _into_zarr(src: Dataset, stream: OMEStream) -> None:
    current = stream.get_metadata()
    update: dict[str, dict[str, Any]] = {}
    for p, key in enumerate(current):
        attributes = _group_keys(src, p)
        ome = _edited_ome(src, p, current[key].get("ome"))
        if ome is not None:
            attributes["ome"] = ome
        if attributes:
            update[key] = attributes
    if update:
        stream.update_metadata(update)


def _group_keys(src: Dataset, position: int) -> dict[str, Any]:
    """The position's own attributes (not ``"ome"``) in the source, if any."""
    if src.kind == "ome-zarr" and position < len(src.group_attributes):
        attributes = src.group_attributes[position]
        return {k: v for k, v in attributes.items() if k != "ome"}
    if src.kind == "ome-tiff" and src.ome_document is not None:
        return _annotation_attributes(src.ome_document, position)
    return {}


def _annotation_attributes(ome: Any, position: int) -> dict[str, Any]:
    """The ``ATTRIBUTES_NAMESPACE`` annotation of Image ``position``, decoded."""
    from ome_writers._backends._ome_xml import ATTRIBUTES_NAMESPACE

    if position >= len(ome.images) or ome.structured_annotations is None:
        return {}
    refs = {ref.id for ref in ome.images[position].annotation_refs}
    out: dict[str, Any] = {}
    for ann in ome.structured_annotations.map_annotations:
        if ann.namespace == ATTRIBUTES_NAMESPACE and ann.id in refs:
            for m in ann.value.ms:
                if m.k is not None:
                    out[m.k] = json.loads(m.value)
    return out


def _edited_ome(src: Dataset, position: int, destination: Any) -> Any:
    """The destination's ``"ome"`` with the source's edits applied, or None."""
    if src.kind != "ome-zarr" or position >= len(src.group_attributes):
        return None
    edited = src.group_attributes[position].get("ome")
    if not isinstance(edited, dict) or not isinstance(destination, dict):
        return None
    from ome_writers._backends.zarr._metadata import build_layout, image_metadata

    node = build_layout(src.settings).images[position]
    written = json.loads(json.dumps(image_metadata(src.settings, node)))
    merged = apply_edits(destination, written, edited)
    return None if merged == destination else merged


def apply_edits(target: Any, base: Any, edited: Any) -> Any:
    """``target`` changed as ``base`` was changed into ``edited`` (JSON values).

    Mappings are compared key by key (keys added, removed or changed), lists
    of the same length item by item; anything else that differs is replaced.

    >>> base = {"name": "a", "datasets": [{"path": "0"}], "n": 1}
    >>> edited = {"name": "b", "datasets": [{"path": "0"}], "note": "x"}
    >>> apply_edits({"name": "a", "datasets": [{"path": "0"}, {"path": "1"}],
    ...              "n": 1}, base, edited)
    {'name': 'b', 'datasets': [{'path': '0'}, {'path': '1'}], 'note': 'x'}
    """
    if edited == base:
        return target
    if isinstance(edited, dict) and isinstance(base, dict) and isinstance(target, dict):
        out = {k: v for k, v in target.items() if k in edited or k not in base}
        for key, value in edited.items():
            before = base.get(key, _MISSING)
            if key in target and before is not _MISSING:
                out[key] = apply_edits(target[key], before, value)
            elif key in target or value != before:  # added, or edited here
                out[key] = value
        return out
    if (
        isinstance(edited, list)
        and isinstance(base, list)
        and isinstance(target, list)
        and len(edited) == len(base) == len(target)
    ):
        return [apply_edits(t, b, e) for t, b, e in zip(target, base, edited)]
    return edited


# ------------------------------------------------------------------ OME-TIFF


def _into_tiff(src: Dataset, stream: OMEStream) -> None:
    source = src.ome_document if src.kind == "ome-tiff" else None
    attributes = {}
    if src.kind == "ome-zarr":
        for p in range(len(src.group_attributes)):
            keys = _group_keys(src, p)
            if keys:
                attributes[p] = keys
    if source is None and not attributes:
        return
    if source is not None and not attributes:
        from ome_writers._backends.tiff._reader import dataset_document_text

        written = dataset_document_text(Path(stream.settings.output_path))
        if written is not None and bare_document(written) == bare_document(
            src.ome_document_xml
        ):
            return  # the source's document is what its writer wrote
    update: dict[int, Any] = {}
    for key, document in stream.get_metadata().items():
        if document.binary_only is not None:
            continue
        if source is not None:
            merged = merge_document(source, document)
        else:
            merged = document.model_copy(deep=True)
        _annotate_attributes(merged, attributes)
        # not ==: references hold weak references to what they refer to
        if merged.model_dump() != document.model_dump():
            update[key] = merged
    if update:
        stream.update_metadata(update)


def bare_document(xml: str) -> str:
    """OME-XML text without what any conversion changes (see ``_CONVERSION_PARTS``).

    >>> bare_document('<OME UUID="urn:uuid:1"> <Image><TiffData IFD="0"/></Image>')
    '<OME><Image></Image>'
    """
    return _BETWEEN_TAGS.sub("><", _CONVERSION_PARTS.sub("", xml)).strip()


def merge_document(source: Any, destination: Any) -> Any:
    """``source`` with what says where ``destination``'s pixels are, and its writer.

    Images are matched by ID; one the destination does not have is left out.
    """
    from ome_writers._backends._ome_xml import (
        FRAME_ENCODING,
        FRAME_ENCODING_KEY,
        FRAME_NAMESPACE,
        WRITER_NAMESPACE,
        decode_frame_value,
        frame_value_text,
    )

    out = source.model_copy(deep=True)
    out.uuid = destination.uuid
    out.creator = destination.creator
    out.binary_only = None
    theirs = {image.id: image for image in destination.images}
    images = []
    for image in out.images:
        match = theirs.get(image.id)
        if match is None:
            continue
        for name in _PIXELS_STORAGE:
            setattr(image.pixels, name, copy.deepcopy(getattr(match.pixels, name)))
        images.append(image)
    out.images = images
    writer = next(
        a
        for a in destination.structured_annotations.map_annotations
        if a.namespace == WRITER_NAMESPACE
    )
    annotations = out.structured_annotations.map_annotations
    for i, ann in enumerate(annotations):
        if ann.namespace != WRITER_NAMESPACE:
            continue
        old = {m.k: m.value for m in ann.value.ms}
        annotations[i] = writer.model_copy(deep=True, update={"id": ann.id})
        if old.get(FRAME_ENCODING_KEY) != FRAME_ENCODING:
            # values stored as an older writer did: store them as this one does
            for frame_ann in annotations:
                if frame_ann.namespace == FRAME_NAMESPACE:
                    for m in frame_ann.value.ms:
                        value = decode_frame_value(m.value, exact=False)
                        m.value = frame_value_text(value)
    return out


def _annotate_attributes(ome: Any, attributes: dict[int, dict[str, Any]]) -> None:
    """Give Image ``p`` a MapAnnotation of ``attributes[p]`` (JSON values)."""
    if not attributes:
        return
    from ome_types.model import AnnotationRef, StructuredAnnotations

    from ome_writers._backends._ome_xml import ATTRIBUTES_NAMESPACE, map_annotation

    if ome.structured_annotations is None:
        ome.structured_annotations = StructuredAnnotations()
    annotations = ome.structured_annotations.map_annotations
    for p, keys in sorted(attributes.items()):
        if p >= len(ome.images):
            continue
        ann_id = f"Annotation:zarr_attributes:{p}"
        entries = {k: json.dumps(v) for k, v in keys.items()}
        annotations[:] = [a for a in annotations if a.id != ann_id]
        annotations.append(map_annotation(ann_id, ATTRIBUTES_NAMESPACE, entries))
        image = ome.images[p]
        if all(ref.id != ann_id for ref in image.annotation_refs):
            image.annotation_refs.append(AnnotationRef(id=ann_id))
