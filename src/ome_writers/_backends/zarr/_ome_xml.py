"""``OME/METADATA.ome.xml`` of the OME-Zarr bioformats2raw layout.

Bio-Formats-based readers (Fiji, QuPath, OMERO) take physical sizes, channel
names, stage positions and acquisition metadata of a bioformats2raw collection
from this file. The OME-Zarr 0.5 specification says a
``bioformats2raw.layout`` group SHOULD have it, that it MUST be valid OME-XML
using ``<MetadataOnly/>`` instead of ``BinData``/``TiffData``, and that the
order of its ``Image`` elements MUST match ``OME/zarr.json``'s ``series``.

Content: the same ome-types models as the OME-TIFF backend's XML (built by
``_ome_xml.OmeXmlBuilder``), minus ``TiffData`` and the plate: one ``Image``
(``Image:<p>``, named after the position) per series, in series order, with
``Pixels`` sizes, type, dimension order (that of the Zarr arrays), physical
sizes and time increment, ``Channel``s, a ``StageLabel`` from the
``Position``, the writer's ``MapAnnotation`` (``complete``, ``frames_written``)
and one ``MapAnnotation`` per global-metadata namespace. At close it also
gets ``Plane`` elements (``DeltaT``, ``ExposureTime``, ``PositionX/Y/Z``) from
the per-frame metadata; other per-frame keys stay only in the image groups'
``zarr.json``, so the XML does not grow by an annotation per frame.

When it is written: with the groups at open, again on ``set_global_metadata``
(without planes, which are kept for close as for ``zarr.json``), and at close.
The extent of an unbounded first dimension is read from each array's
``zarr.json`` at every write (the router's extent where that file does not
exist yet), so the final XML declares exactly what the arrays hold, per
position; before close it declares the extent at the last write (at least 1).
Always atomically: a temporary file in ``OME/`` renamed over the old one.
Costs, all outside ``append``: importing ome-types at the first such stream
(about 0.5 s), and at close about 0.1 ms per frame that carries plane
metadata.

Which layouts get it:

- ``bioformats2raw`` (positions without a plate): yes.
- ``plate``: no. The plate root is a plain HCS plate (no
  ``bioformats2raw.layout`` and no ``OME/`` group), and the specification
  defines the file only inside the bioformats2raw layout; the HCS metadata
  already names every field's well and row, and each field's ``Position`` is
  in its image group's ``zarr.json``.
- ``image`` (no position dimension): no; the root is the image itself and has
  no ``OME/`` group.

When it is skipped (the Zarr output is complete and valid without it):

- ome-types is not installed (it comes with every OME-Zarr extra, but the
  core does not need it): logged once per process at INFO on the
  ``ome_writers`` logger.
- The acquisition does not fit the OME-XML model: a 64-bit integer dtype, or
  non-frame dimensions that OME's single T, C and Z axes cannot hold (which
  OME-Zarr 0.5's limit of five axes rules out anyway). Logged once per stream
  at INFO on the ``ome_writers`` logger.
"""

from __future__ import annotations

import importlib
import json
import logging
from typing import TYPE_CHECKING, Any

from ome_writers._errors import WriteError
from ome_writers._util import replace_file

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from ome_writers._backends._ome_xml import OmeXmlBuilder
    from ome_writers._backends.zarr._metadata import ZarrLayout
    from ome_writers._backends.zarr._store import ZarrRoot
    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

#: where the file goes, relative to the root of the bioformats2raw layout
METADATA_XML_PATH = "OME/METADATA.ome.xml"

_logger = logging.getLogger("ome_writers")
_missing_ome_types_logged = False


class MetadataXml:
    """Writes ``OME/METADATA.ome.xml`` for one bioformats2raw output.

    Made with ``for_layout``, which returns None when the layout does not get
    the file or it cannot be written.
    """

    def __init__(
        self,
        path: Path,
        builder: OmeXmlBuilder,
        array_documents: Sequence[Path],
        store: ZarrRoot | None = None,
        array_keys: Sequence[str] = (),
    ) -> None:
        self.path = path
        self._builder = builder
        #: each position's array ``zarr.json``, in series order
        self._array_documents = list(array_documents)
        #: a remote root: the file and the array documents are its keys
        self._store = store if store is not None and store.is_remote else None
        self._array_keys = list(array_keys)

    @classmethod
    def for_layout(
        cls,
        settings: AcquisitionSettings,
        router: FrameRouter,
        root: Path,
        layout: ZarrLayout,
        store: ZarrRoot | None = None,
    ) -> MetadataXml | None:
        """The writer for ``layout``, or None (logged when it is a skip)."""
        if layout.kind != "bioformats2raw":
            return None
        path = root / METADATA_XML_PATH
        try:
            importlib.import_module("ome_types")
        except ImportError as exc:
            _log_missing_ome_types(path, exc)
            return None
        from ome_writers._backends._ome_xml import OmeXmlBuilder, pixel_type

        try:
            pixel_type(settings.dtype)
            builder = OmeXmlBuilder(settings, router)
        except ValueError:
            names = [d.name for d in settings.dimensions[:-2]]
            _logger.info(
                "%s not written: OME-XML cannot describe dtype %r with dimensions "
                "%r (OME has no 64-bit integer pixels, and one T, C and Z axis "
                "each); the OME-Zarr output is complete without it",
                path,
                settings.dtype,
                names,
            )
            return None
        documents = [root / node.array_path / "zarr.json" for node in layout.images]
        keys = [f"{node.array_path}/zarr.json" for node in layout.images]
        return cls(path, builder, documents, store, keys)

    def write(
        self,
        *,
        frames_written: int,
        complete: bool,
        global_metadata: Mapping[str, Any],
        frame_records: Sequence[Sequence[Mapping[str, Any]]] | None,
    ) -> None:
        """Build the document and replace the file; ``WriteError`` on failure.

        ``frame_records[p]`` are position ``p``'s per-frame records (each with
        ``storage_index``); None leaves the planes out.
        """
        from ome_types import to_xml

        from ome_writers._backends._ome_xml import (
            PLANE_KEYS,
            DocumentState,
            PlaneRecord,
        )

        router = self._builder.router
        steps = router.storage_shape(frames_written)[0] if router.is_unbounded else 0
        state = DocumentState(
            declared_steps=steps,
            position_steps=self._array_steps() if router.is_unbounded else {},
            global_metadata=dict(global_metadata),
            frames_written=frames_written,
            complete=complete,
        )
        for position, records in enumerate(frame_records or ()):
            for record in records:
                values = {k: record[k] for k in PLANE_KEYS if k in record}
                if values:
                    index = tuple(int(i) for i in record["storage_index"])
                    state.planes.append(PlaneRecord(position, index, values))
        ome = self._builder.build(
            state, range(router.num_positions), root_uuid=None, with_plate=False
        )
        if self._store is not None:
            self._store.write_bytes(METADATA_XML_PATH, to_xml(ome).encode("utf-8"))
            return
        write_bytes_atomic(self.path, to_xml(ome).encode("utf-8"))

    def _array_steps(self) -> dict[int, int]:
        """Extent of the first axis of every array whose ``zarr.json`` exists."""
        steps = {}
        for position, document in enumerate(self._array_documents):
            try:
                if self._store is not None:
                    text = self._store.read_bytes(self._array_keys[position])
                else:
                    text = document.read_bytes()
                shape = json.loads(text)["shape"]
                steps[position] = int(shape[0])
            except (OSError, ValueError, LookupError, TypeError):
                continue  # not written yet (acquire-zarr: until close)
        return steps


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; ``WriteError`` on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, data)
    except OSError as exc:
        raise WriteError(
            exc.errno, f"cannot write {str(path)!r}: {exc.strerror or exc}", str(path)
        ) from exc


def _log_missing_ome_types(path: Path, exc: ImportError) -> None:
    global _missing_ome_types_logged
    if _missing_ome_types_logged:
        return
    _missing_ome_types_logged = True
    _logger.info(
        "%s not written: ome-types is not installed (%s); the OME-Zarr output is "
        "complete without it. Install it with: pip install 'ome-types[lxml]' "
        "(this message is shown once)",
        path,
        exc,
    )
