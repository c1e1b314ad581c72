"""OME-XML for the OME-TIFF backend, built from ome-types models.

Which OME axis each dimension becomes, and which IFD holds each plane, is
decided in ``_tiff_planes``; the Images, Channels, Planes, plate and
annotations are built by the format-neutral ``_ome_xml.OmeXmlBuilder``
(shared with OME-Zarr's ``OME/METADATA.ome.xml``). This module adds what only
TIFF has: ``TiffData`` elements mapping planes to IFDs (written as text into
the document ome-types serializes, because positions interleaved in one file
need one per plane), file UUIDs, and the split into one document per file
plus a companion document when positions go to separate files.

Everything here is pure: no file I/O. The backend decides what to write when.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from ome_types import to_xml
from ome_types.model import OME, TiffData

from ome_writers._backends._ome_xml import DocumentState, OmeXmlBuilder, new_uuid
from ome_writers._backends.tiff._planes import PlaneMap, tiff_data_runs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

#: IFD of the placeholder TiffData of position p is _PLACEHOLDER_IFD + p
_PLACEHOLDER_IFD = 4_000_000_000
_PLACEHOLDER_RE = re.compile(
    r'^(?P<indent>[ \t]*)<TiffData IFD="(?P<ifd>4\d{9})"[^>]*/>\n?', re.MULTILINE
)


#: ``ifd_limits`` entry of a file whose XML declares every plane
NO_PAGE_LIMIT = 1 << 62


@dataclass
class TiffDocumentState(DocumentState):
    """``DocumentState`` plus the IFDs each file holds so far."""

    #: IFD limit per file: planes with an IFD at or above it get no TiffData
    #: pages of each file that the XML refers to (``NO_PAGE_LIMIT``: every plane)
    ifd_limits: list[int] = field(default_factory=list)


class OmeDocument(OmeXmlBuilder):
    """Builds the OME-XML of every file of one acquisition.

    Parameters
    ----------
    settings, router
        The acquisition.
    file_names
        One file name per position (``per_position_file``), or a single name
        (all positions as series of that file).
    metadata_mode
        ``OmeTiffFormat.multi_file_metadata`` for a folder of files.
    companion_name
        File name of the companion file (``"companion-file"``).
    """

    def __init__(
        self,
        settings: AcquisitionSettings,
        router: FrameRouter,
        file_names: Sequence[str],
        *,
        per_position_file: bool,
        metadata_mode: str | None = None,
        companion_name: str = "companion.ome",
    ) -> None:
        super().__init__(settings, router)
        self.file_names = list(file_names)
        self.per_position_file = per_position_file
        self.metadata_mode = metadata_mode
        self.companion_name = companion_name
        self.file_uuids = [new_uuid() for _ in self.file_names]
        self.companion_uuid = new_uuid()
        self.planes = PlaneMap(router, per_position_file=per_position_file)

    def ifds(self, position_index: int, steps: int, planes: np.ndarray) -> np.ndarray:
        """IFD of each plane (flat storage-order indices) of one position."""
        return self.planes.ifds(position_index, self.storage_shape(steps), planes)

    def tiff_data_xml(
        self,
        position_index: int,
        state: TiffDocumentState,
        *,
        uuid_ref: tuple[str, str] | None,
        indent: str,
    ) -> str:
        """``TiffData`` runs of one position's planes already in its file, as XML.

        Written as text rather than as ome-types models: a file holding several
        interleaved positions needs one element per plane of each position, and
        serializing thousands of models took half a second at 4,096 frames (on
        the append that grew an unbounded stream). Lines start with ``indent``.
        """
        file_index = position_index if self.per_position_file else 0
        limit = state.ifd_limits[file_index]
        shape = self.storage_shape(state.declared_steps)
        if limit >= NO_PAGE_LIMIT:  # the live XML declares every plane
            runs = self.planes.declared_runs(position_index, shape)
        else:
            runs = tiff_data_runs(
                *self.planes.written_planes(position_index, shape, limit)
            )
        if not runs:
            return ""
        # no T, C or Z axis (one plane per position): every plane is at 0
        starts = np.unravel_index([r[0] for r in runs], shape) if shape else ()
        uuid = ""
        if uuid_ref is not None:
            uuid = (
                f"\n{indent}  <UUID FileName={quoteattr(uuid_ref[1])}>"
                f"{escape(uuid_ref[0])}</UUID>\n{indent}"
            )
        lines = []
        for k, (_, ifd, count) in enumerate(runs):
            coords = self.plane_coords([int(axis[k]) for axis in starts])
            head = (
                f'{indent}<TiffData IFD="{ifd}" FirstZ="{coords["Z"]}" '
                f'FirstT="{coords["T"]}" FirstC="{coords["C"]}" PlaneCount="{count}"'
            )
            lines.append(f"{head}>{uuid}</TiffData>" if uuid else f"{head}/>")
        return "\n".join(lines)

    def tiff_xml(
        self,
        state: TiffDocumentState,
        position_indices: Sequence[int],
        *,
        root_uuid: str | None,
        with_file_refs: bool,
        with_plate: bool,
    ) -> bytes:
        """An OME-XML document over ``position_indices`` with their ``TiffData``.

        The document is built by ome-types with one placeholder ``TiffData``
        per position, which is then replaced by ``tiff_data_xml``.
        """
        ome = self.build(
            state,
            position_indices,
            root_uuid=root_uuid,
            with_plate=with_plate,
            pixels_data=lambda p: {
                "tiff_data_blocks": [TiffData(ifd=_PLACEHOLDER_IFD + p)]
            },
        )
        xml = to_xml(ome)

        def fill(match: re.Match[str]) -> str:
            p = int(match["ifd"]) - _PLACEHOLDER_IFD
            uuid_ref = None
            if with_file_refs:
                f = p if self.per_position_file else 0
                uuid_ref = (self.file_uuids[f], self.file_names[f])
            text = self.tiff_data_xml(
                p, state, uuid_ref=uuid_ref, indent=match["indent"]
            )
            if not text:
                # none of its planes is in a file (closed before its first
                # frame): say so, as the schema wants one of TiffData,
                # BinData or MetadataOnly
                return f"{match['indent']}<MetadataOnly/>\n"
            return text + "\n"

        xml, filled = _PLACEHOLDER_RE.subn(fill, xml)
        if filled != len(position_indices):
            raise RuntimeError(
                f"ome-types wrote {filled} of {len(position_indices)} TiffData "
                "placeholders in a form this version of ome-writers does not "
                "recognise (it was tested with ome-types 0.6 and 0.7); install "
                "ome-types 0.7, or report your ome-types version"
            )
        return xml.encode("utf-8")

    def file_xml(self, file_index: int, state: TiffDocumentState) -> bytes:
        """OME-XML embedded in TIFF file ``file_index``.

        One file: the whole acquisition, plate included. A folder of files,
        by ``metadata_mode``: ``"redundant"``, every file the whole
        acquisition (its own root UUID, ``TiffData`` naming each Image's file
        by UUID); ``"master-tiff"``, the first file so and the others a
        ``BinaryOnly`` reference to it; ``"companion-file"``, every file a
        ``BinaryOnly`` reference to the companion.
        """
        mode = self.metadata_mode
        if not self.per_position_file:
            return self.tiff_xml(
                state,
                range(self.router.num_positions),
                root_uuid=self.file_uuids[0],
                with_file_refs=False,
                with_plate=True,
            )
        if mode == "redundant" or (mode == "master-tiff" and file_index == 0):
            return self.tiff_xml(
                state,
                range(self.router.num_positions),
                root_uuid=self.file_uuids[file_index],
                with_file_refs=True,
                with_plate=True,
            )
        if mode == "master-tiff":
            target = (self.file_names[0], self.file_uuids[0])
        else:
            target = (self.companion_name, self.companion_uuid)
        return self._binary_only(self.file_uuids[file_index], *target)

    def _binary_only(self, own_uuid: str, metadata_file: str, uuid: str) -> bytes:
        ome = OME(
            uuid=own_uuid,
            creator=self.creator,
            binary_only=OME.BinaryOnly(metadata_file=metadata_file, uuid=uuid),
        )
        return to_xml(ome).encode("utf-8")

    def companion_xml(self, state: TiffDocumentState) -> bytes:
        """The companion file: every Image, pointing at its file by UUID."""
        return self.tiff_xml(
            state,
            range(self.router.num_positions),
            root_uuid=self.companion_uuid,
            with_file_refs=True,
            with_plate=True,
        )
