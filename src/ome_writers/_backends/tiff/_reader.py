"""Reading an OME-TIFF this package wrote back as an acquisition (for ``convert``).

Read-only: files are opened with ``O_RDONLY`` and nothing is ever written,
so a dataset whose writer was killed stays as it was (``recover`` is what
finishes one).

Where things are:

- **Settings**: the writer's ``MapAnnotation`` (namespace ``ome_writers``)
  holds ``settings``, ``AcquisitionSettings.model_dump(mode="json")``, from
  the first page on. Files without that entry (older ome-writers, other
  writers such as tifffile) get settings rebuilt from the OME-XML, and their
  pages found through its ``TiffData`` (``_rebuild``): the same pixels,
  dimensions, dtype, scales, channels and positions, but not what only the
  settings record (chunking hints, the format's options, an unbounded first
  dimension, which becomes its final extent).
- **The document**: a single file's own OME-XML; for a folder of one file
  per position, the companion file, else the first file's (a ``BinaryOnly``
  document names the file that holds it). Each Image's ``TiffData`` names
  its file by ``UUID FileName``.
- **Pages**: one per frame, in acquisition order: in a single file frame
  ``n`` is page ``n``; in a file per position it is the frame's number among
  the frames of its position (the position's digit left out). Zero pages
  (skipped frames) read as zeros. Pages are found by walking the IFD chain
  (``_page_reader``), which the writer keeps valid after every page, so an
  interrupted file reads up to its last complete page.
- **Per-frame metadata**: ``Plane`` attributes (``DeltaT``, ``ExposureTime``,
  ``PositionX/Y/Z``, seconds and micrometers) and the plane's
  ``ome_writers/frame_metadata`` annotation, written at close. OME-XML keeps
  those values as text: a string that is not JSON text as it is, everything
  else JSON-encoded (a string such as ``"1"`` as ``"\\"1\\""``), so every value
  reads back with its type (``_ome_xml.frame_value_text``); the writer
  annotation's ``frame_metadata_encoding`` entry says so. Files written
  before that entry stored every string as it is: there a string that reads
  as JSON (``"1"``, ``"true"``) comes back as the value it spells. Plane
  attributes are floats in OME: an int ``delta_t`` comes back as a float.
- **Global metadata**: the other ``MapAnnotation``s the first Image refers
  to, each value JSON-decoded (not those of ``ATTRIBUTES_NAMESPACE``: OME-Zarr
  group attributes that ``convert`` carried, see ``_format_metadata``).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ome_writers._backends._ome_xml import (
    ATTRIBUTES_NAMESPACE,
    FRAME_ENCODING,
    FRAME_ENCODING_KEY,
    FRAME_NAMESPACE,
    PLANE_KEYS,
    WRITER_NAMESPACE,
    decode_frame_value,
)
from ome_writers._backends.tiff._io import (
    first_ifd_offset,
    read_entries,
    read_layout,
)
from ome_writers._backends.tiff._page_reader import PageReader
from ome_writers._backends.tiff._planes import OmeAxes
from ome_writers._backends.tiff._rebuild import (
    LENGTH_UNITS,
    TIME_UNITS,
    rebuild_acquisition,
)
from ome_writers._errors import NotADatasetError
from ome_writers._formats import OmeTiffFormat
from ome_writers._router import FrameRouter, build_router
from ome_writers._settings import AcquisitionSettings

if TYPE_CHECKING:
    import numpy as np

_TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class TiffDataset:
    """An OME-TIFF output of this package, opened for reading.

    Attributes
    ----------
    path
        The file or folder holding the dataset's document.
    settings
        The acquisition's settings, as the writer recorded them.
    files
        One TIFF file per position (a folder of files), or the single file.
    compression
        The compression the writer used (None: uncompressed).
    complete
        True when the writer closed it (``complete=true``).
    frames_written
        Frames the writer counted at close; for an interrupted dataset, the
        frames whose pages are all in the files.
    global_metadata
        The ``set_global_metadata`` namespaces the document holds.
    plane_metadata
        ``(position index, storage index)`` -> that frame's metadata.
    document, document_xml
        The dataset's OME-XML document (``ome_types.OME``), as it stands
        (``update_metadata`` edits included), and its text.
    writer_entries
        The writer annotation's entries; None for another writer's file.
    """

    path: Path
    settings: AcquisitionSettings
    files: list[Path]
    compression: str | None
    complete: bool
    frames_written: int
    global_metadata: dict[str, Any]
    plane_metadata: dict[tuple[int, tuple[int, ...]], dict[str, Any]]
    router: FrameRouter = field(repr=False)
    document: Any = field(default=None, repr=False)
    document_xml: str = field(default="", repr=False)
    writer_entries: dict[str, str] | None = field(default=None, repr=False)
    _pages: list[PageReader] = field(default_factory=list, repr=False)
    _strides: list[int] = field(default_factory=list, repr=False)
    #: settings rebuilt from the OME-XML: ``(position, T, C, Z)`` -> page
    _plane_pages: dict[tuple[int, int, int, int], tuple[int, int]] | None = None
    #: ... and the OME axis of each storage axis
    _storage_axes: tuple[str, ...] = ()

    def page_of(self, frame_number: int) -> tuple[int, int]:
        """(file index, page) of a frame; (-1, -1) for a plane without a page."""
        if self._plane_pages is not None:
            position, storage_index = self.router.locate(frame_number)
            coords = dict(zip(self._storage_axes, storage_index))
            key = (position, coords.get("T", 0), coords.get("C", 0), coords.get("Z", 0))
            return self._plane_pages.get(key, (-1, -1))
        index = self.router.acq_index(frame_number)
        axis = self.router.position_axis
        page = sum(i * s for i, s in zip(index, self._strides))
        if len(self.files) == 1 or axis is None:
            return 0, page
        return index[axis], page

    def read_frame(self, frame_number: int) -> np.ndarray | None:
        """The frame's pixels (a buffer reused by the next call), or None.

        None: its page is not in the file (the writer was killed first).
        """
        file_index, page = self.page_of(frame_number)
        if file_index < 0:
            return None
        return self._pages[file_index].read(page)

    def close(self) -> None:
        """Close the files."""
        for pages in self._pages:
            pages.close()
        self._pages = []


# ------------------------------------------------------------------ opening


def _read_document(path: Path) -> tuple[Any, Path, str] | None:
    """(OME model, the path that holds it, its text) of a TIFF or companion file."""
    from ome_types import from_xml

    xml = _document_text(path)
    if xml is None:
        return None
    try:
        ome = from_xml(xml, validate=False)
    except Exception:  # not OME-XML: not ours to read
        return None
    if ome.binary_only is not None:  # the document lives in another file
        target = path.parent / ome.binary_only.metadata_file
        return None if target == path else _read_document(target)
    return ome, path, xml


def _document_text(path: Path) -> str | None:
    if path.name.lower().endswith(".ome"):
        try:
            return path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
    return _description(path)


def dataset_document_text(path: Path) -> str | None:
    """The text of the document that describes the OME-TIFF output at ``path``.

    As ``open_tiff_dataset`` finds it (a companion file first), but not
    parsed: a ``BinaryOnly`` document is recognised by its element.
    """
    for candidate in _candidates(path):
        xml = _document_text(candidate)
        if xml is not None and "<OME" in xml and "<BinaryOnly" not in xml:
            return xml
    return None


def _description(path: Path) -> str | None:
    """The first page's ImageDescription of a TIFF file, or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        layout = read_layout(fd)
        if layout is None:
            return None
        ifd = first_ifd_offset(fd, layout)
        if not 0 < ifd < os.fstat(fd).st_size:
            return None
        entry = read_entries(fd, layout, ifd).get(270)
        if entry is None:
            return None
        _dtype, count, value_field = entry
        if count <= layout.offset_size:
            raw = os.pread(fd, count, value_field)
        else:
            (offset,) = struct.unpack(
                layout.offset_format, os.pread(fd, layout.offset_size, value_field)
            )
            raw = os.pread(fd, count, offset)
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)
    return raw.rstrip(b"\x00").decode("utf-8", "replace")


def tiff_folder(path: Path) -> Path | None:
    """The folder of one file per position written for ``root_path`` ``path``.

    (``run.ome.tiff`` -> ``run``), if ``path`` does not exist and it does.
    """
    if os.path.lexists(path) or not path.name.lower().endswith(_TIFF_SUFFIXES):
        return None
    folder = Path(OmeTiffFormat().split_tiff_path(str(path))[0])
    return folder if folder.is_dir() else None


def _candidates(path: Path) -> list[Path]:
    """Where the dataset's document may be, best first."""
    if path.is_file():
        return [path]
    folder = path if path.is_dir() else tiff_folder(path)
    if folder is None:
        return []
    companions = sorted(folder.glob("*.ome"))
    tiffs = sorted(
        p for p in folder.iterdir() if p.name.lower().endswith(_TIFF_SUFFIXES)
    )
    return [*companions, *tiffs]


def writer_entries(ome: Any) -> dict[str, str] | None:
    """The writer's MapAnnotation entries, or None if there is none."""
    sa = ome.structured_annotations
    for ann in [] if sa is None else sa.map_annotations:
        if ann.namespace == WRITER_NAMESPACE:
            return {m.k: m.value for m in ann.value.ms if m.k is not None}
    return None


def is_tiff_dataset(path: Path) -> bool:
    """True when ``path`` looks like an OME-TIFF output (no file is parsed)."""
    name = path.name.lower()
    if name.endswith((*_TIFF_SUFFIXES, ".ome")):
        return True
    return path.is_dir() and any(
        p.name.lower().endswith((*_TIFF_SUFFIXES, ".ome")) for p in path.iterdir()
    )


def open_tiff_dataset(path: str | os.PathLike[str]) -> TiffDataset:
    """Open an OME-TIFF for reading as an acquisition.

    ``path``: the file, the folder of one file per position, any file in it,
    its companion file, or the ``root_path`` the folder was written for. An
    OME-TIFF that does not record this package's settings (older
    ome-writers, other writers) is read through its OME-XML (``_rebuild``).

    Raises
    ------
    NotADatasetError
        Not an OME-TIFF, recorded settings that are not valid, or an OME-XML
        that lacks what an acquisition needs (the message names the file and
        what is missing).
    """
    given = Path(path)
    found = None
    for candidate in _candidates(given):
        found = _read_document(candidate)
        if found is not None:
            break
    if found is None:
        raise NotADatasetError(
            f"{str(path)!r} is not an OME-TIFF (a .ome.tiff file, a folder of "
            "them, or a companion .ome file) with an OME-XML document"
        )
    ome, document, xml = found
    entries = writer_entries(ome)
    if entries is None or "settings" not in entries:
        dataset = _rebuilt_dataset(ome, document, entries)
        dataset.document_xml = xml
        return dataset
    try:
        data = json.loads(entries["settings"])
        settings = AcquisitionSettings.model_validate(
            {**data, "compression": None, "overwrite": False}
        )
        settings.validate_stream_ready()
    except (ValueError, TypeError) as exc:
        raise NotADatasetError(
            f"the settings recorded in {str(document)!r} are not valid ({exc})"
        ) from None
    router = build_router(settings)
    files = _files(ome, document, settings)
    axes = OmeAxes.from_settings(settings)
    dataset = TiffDataset(
        path=document,
        settings=settings,
        files=files,
        compression=data.get("compression"),
        complete=entries.get("complete") == "true",
        frames_written=int(entries.get("frames_written", "0") or 0),
        global_metadata=_global_metadata(ome),
        plane_metadata=_plane_metadata(
            ome,
            len(settings.positions),
            tuple(axes.axis_of[n] for n in axes.storage_names),
            exact=entries.get(FRAME_ENCODING_KEY) == FRAME_ENCODING,
        ),
        router=router,
        document=ome,
        document_xml=xml,
        writer_entries=entries,
    )
    counts = [int(c or 1) for c in router.counts]
    strides = [0] * len(counts)
    stride = 1
    per_position = len(files) > 1
    for axis in reversed(range(len(counts))):
        if per_position and axis == router.position_axis:
            continue
        strides[axis] = stride
        stride *= counts[axis]
    dataset._strides = strides
    _open_pages(dataset, check=False)
    if not dataset.complete:
        dataset.frames_written = _frames_on_disk(dataset)
    return dataset


def _rebuilt_dataset(
    ome: Any, document: Path, entries: dict[str, str] | None
) -> TiffDataset:
    """A dataset whose settings and pages come from its OME-XML (``_rebuild``)."""
    rebuilt = rebuild_acquisition(ome, document, entries)
    settings = rebuilt.settings
    router = build_router(settings)
    complete = entries is None or entries.get("complete") == "true"
    num_frames = settings.num_frames or 0
    frames_written = num_frames
    if entries is not None and entries.get("frames_written", "").isdigit():
        frames_written = min(int(entries["frames_written"]), num_frames)
    dataset = TiffDataset(
        path=document,
        settings=settings,
        files=rebuilt.files,
        compression=None,
        complete=complete,
        frames_written=frames_written,
        global_metadata=_global_metadata(ome),
        plane_metadata=_plane_metadata(
            ome,
            len(settings.positions),
            rebuilt.storage_axes,
            exact=entries is not None
            and entries.get(FRAME_ENCODING_KEY) == FRAME_ENCODING,
        ),
        router=router,
        document=ome,
        writer_entries=entries,
        _plane_pages=rebuilt.plane_pages,
        _storage_axes=rebuilt.storage_axes,
    )
    _open_pages(dataset, check=True)
    if rebuilt.plane_pages:
        file_index, page = min(rebuilt.plane_pages.values())
        dataset.compression = dataset._pages[file_index].compression(page)
    if not complete:
        dataset.frames_written = _frames_on_disk(dataset)
    return dataset


def _open_pages(dataset: TiffDataset, *, check: bool) -> None:
    settings = dataset.settings
    try:
        for f in dataset.files:
            dataset._pages.append(
                PageReader(f, settings.frame_shape, settings.dtype, check=check)
            )
    except (OSError, NotADatasetError) as exc:
        dataset.close()
        raise NotADatasetError(
            f"a file of the OME-TIFF dataset {str(dataset.path)!r} cannot be "
            f"read: {exc}"
        ) from None


def _files(ome: Any, document: Path, settings: AcquisitionSettings) -> list[Path]:
    fmt = settings.format
    assert isinstance(fmt, OmeTiffFormat)
    npos = len(settings.positions)
    if fmt.single_file(npos):
        return [document]
    names: list[Path] = []
    for p, image in enumerate(ome.images[:npos]):
        blocks = image.pixels.tiff_data_blocks
        name = next(
            (
                b.uuid.file_name
                for b in blocks
                if b.uuid is not None and b.uuid.file_name
            ),
            None,
        )
        if name is None:  # no plane of it written: its file by the layout's rule
            name = Path(fmt.file_paths(document.parent.name + ".tif", npos)[p]).name
            name = name[: -len(".tif")] + _suffix_of(document, names)
        names.append(document.parent / name)
    if len(names) != npos:
        raise NotADatasetError(
            f"{str(document)!r} describes {len(ome.images)} images, but the "
            f"settings declare {npos} positions; the dataset is damaged"
        )
    return names


def _suffix_of(document: Path, others: list[Path]) -> str:
    """The TIFF suffix the dataset's files use (``.ome.tiff`` by default)."""
    for path in [*others, document]:
        lowered = path.name.lower()
        for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
            if lowered.endswith(suffix):
                return path.name[len(path.name) - len(suffix) :]
    return ".ome.tiff"


def _frames_on_disk(dataset: TiffDataset) -> int:
    """Frames of an interrupted dataset whose pages are all in the files.

    Frames were appended in order, so they are a prefix: the first frame
    whose page is missing ends it.
    """
    pages = [reader.count() for reader in dataset._pages]
    limit = dataset.router.num_frames
    n = 0
    while limit is None or n < limit:
        file_index, page = dataset.page_of(n)
        if file_index < 0 or page >= pages[file_index]:
            break
        n += 1
    return n


def _global_metadata(ome: Any) -> dict[str, Any]:
    sa = ome.structured_annotations
    if sa is None or not ome.images:
        return {}
    referenced = {ref.id for ref in ome.images[0].annotation_refs}
    out: dict[str, Any] = {}
    for ann in sa.map_annotations:
        if ann.id not in referenced or ann.namespace in (
            None,
            WRITER_NAMESPACE,
            FRAME_NAMESPACE,
            ATTRIBUTES_NAMESPACE,
        ):
            continue
        values: dict[str, Any] = {}
        for m in ann.value.ms:
            if m.k is None:
                continue
            try:
                values[m.k] = json.loads(m.value)
            except ValueError:
                values[m.k] = m.value
        out[ann.namespace] = values
    return out


def _plane_metadata(
    ome: Any, positions: int, storage_axes: tuple[str, ...], *, exact: bool
) -> dict[tuple[int, tuple[int, ...]], dict[str, Any]]:
    """``(position, storage index)`` -> a frame's metadata (see the module notes).

    ``storage_axes``: the OME axis of each storage axis. ``exact``: the writer
    recorded ``FRAME_ENCODING`` (``decode_frame_value``). Plane attributes are
    converted to seconds and micrometers from the units they are given in.
    """
    sa = ome.structured_annotations
    frame_maps = {
        ann.id: ann
        for ann in ([] if sa is None else sa.map_annotations)
        if ann.namespace == FRAME_NAMESPACE
    }
    out: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
    for p, image in enumerate(ome.images[:positions]):
        for plane in image.pixels.planes:
            coords = {"T": plane.the_t, "C": plane.the_c, "Z": plane.the_z}
            index = tuple(int(coords[axis]) for axis in storage_axes)
            values: dict[str, Any] = {}
            for key, (attr, _unit) in PLANE_KEYS.items():
                value = getattr(plane, attr, None)
                if value is not None:
                    values[key] = float(value) * _unit_factor(
                        getattr(plane, f"{attr}_unit", None)
                    )
            for ref in plane.annotation_refs:
                ann = frame_maps.get(ref.id)
                if ann is not None:
                    values.update(
                        {
                            m.k: decode_frame_value(m.value, exact=exact)
                            for m in ann.value.ms
                            if m.k
                        }
                    )
            if values:
                out[(p, index)] = values
    return out


def _unit_factor(unit: Any) -> float:
    """Seconds or micrometers per ``unit`` (1 for those, and for unknown ones)."""
    name = str(getattr(unit, "value", unit))
    known = TIME_UNITS.get(name) or LENGTH_UNITS.get(name)
    return 1.0 if known is None else known[1]
