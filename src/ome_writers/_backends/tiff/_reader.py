"""Reading an OME-TIFF this package wrote back as an acquisition (for ``convert``).

Read-only: files are opened with ``O_RDONLY`` and nothing is ever written,
so a dataset whose writer was killed stays as it was (``recover`` is what
finishes one).

Where things are:

- **Settings**: the writer's ``MapAnnotation`` (namespace ``ome_writers``)
  holds ``settings``, ``AcquisitionSettings.model_dump(mode="json")``, from
  the first page on. Files written before that entry existed are refused:
  their settings cannot be rebuilt exactly.
- **The document**: a single file's own OME-XML; for a folder of one file
  per position, the companion file, else the first file's (a ``BinaryOnly``
  document names the file that holds it). Each Image's ``TiffData`` names
  its file by ``UUID FileName``.
- **Pages**: one per frame, in acquisition order: in a single file frame
  ``n`` is page ``n``; in a file per position it is the frame's number among
  the frames of its position (the position's digit left out). Zero pages
  (skipped frames) read as zeros. Pages are found by walking the IFD chain,
  which the writer keeps valid after every page, so an interrupted file
  reads up to its last complete page.
- **Per-frame metadata**: ``Plane`` attributes (``DeltaT``, ``ExposureTime``,
  ``PositionX/Y/Z``, seconds and micrometers) and the plane's
  ``ome_writers/frame_metadata`` annotation, written at close. OME-XML keeps
  those values as text: strings stay strings unless they read as a JSON
  number, boolean, null, list or object (the writer JSON-encodes every value
  that is not a string), so a string such as ``"1"`` comes back as ``1``.
- **Global metadata**: the other ``MapAnnotation``s the Images refer to,
  each value JSON-decoded.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ome_writers._backends._ome_xml import FRAME_NAMESPACE, PLANE_KEYS, WRITER_NAMESPACE
from ome_writers._backends.tiff._io import (
    TiffLayout,
    decoder,
    first_ifd_offset,
    read_entries,
    read_layout,
    read_values,
)
from ome_writers._backends.tiff._planes import OmeAxes
from ome_writers._errors import NotADatasetError
from ome_writers._formats import OmeTiffFormat
from ome_writers._router import FrameRouter, build_router
from ome_writers._settings import AcquisitionSettings

_TIFF_SUFFIXES = (".tif", ".tiff")
_STRIP_OFFSETS = 273
_STRIP_BYTE_COUNTS = 279
_COMPRESSION = 259


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
    _pages: list[PageReader] = field(default_factory=list, repr=False)
    _strides: list[int] = field(default_factory=list, repr=False)

    def page_of(self, frame_number: int) -> tuple[int, int]:
        """(file index, page) of a frame."""
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
        return self._pages[file_index].read(page)

    def close(self) -> None:
        """Close the files."""
        for pages in self._pages:
            pages.close()
        self._pages = []


class PageReader:
    """The pages of one TIFF file, read with ``pread`` (never written).

    The IFD chain is walked as far as needed; a page past its end is None.
    Pixels go into one buffer reused by every read.
    """

    def __init__(self, path: Path, frame_shape: tuple[int, int], dtype: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        layout = read_layout(self._fd)
        if layout is None:
            os.close(self._fd)
            raise NotADatasetError(
                f"{str(path)!r} is not a little-endian TIFF file as ome_writers "
                "writes them; it cannot be read as part of this dataset"
            )
        self._layout: TiffLayout = layout
        self._size = os.fstat(self._fd).st_size
        self._ifds: list[int] = []
        self._next = first_ifd_offset(self._fd, layout)
        self._buffer = np.empty(frame_shape, np.dtype(dtype))
        self._frame_bytes = self._buffer.nbytes

    def count(self) -> int:
        """Pages in the chain (walks it to its end)."""
        while self._walk():
            pass
        return len(self._ifds)

    def _walk(self) -> bool:
        """Find the next IFD; False at the end of the chain."""
        ifd = self._next
        layout = self._layout
        if not 0 < ifd < self._size or ifd in self._ifds[-1:]:
            return False
        raw = os.pread(self._fd, layout.count_size, ifd)
        if len(raw) < layout.count_size:
            return False
        (entries,) = struct.unpack(layout.count_format, raw)
        pointer = ifd + layout.count_size + entries * layout.entry_size
        raw = os.pread(self._fd, layout.offset_size, pointer)
        if len(raw) < layout.offset_size:
            return False
        self._ifds.append(ifd)
        (self._next,) = struct.unpack(layout.offset_format, raw)
        return True

    def read(self, page: int) -> np.ndarray | None:
        """Pixels of ``page`` in the reused buffer; None past the chain's end."""
        while len(self._ifds) <= page:
            if not self._walk():
                return None
        fd, layout = self._fd, self._layout
        entries = read_entries(fd, layout, self._ifds[page])
        offsets = read_values(fd, layout, entries[_STRIP_OFFSETS])
        counts = read_values(fd, layout, entries[_STRIP_BYTE_COUNTS])
        code = 1
        if _COMPRESSION in entries:
            (code,) = read_values(fd, layout, entries[_COMPRESSION])
        out = self._buffer.reshape(-1).view(np.uint8)
        decode = decoder(code)
        position = 0
        for offset, nbytes in zip(offsets, counts):
            if decode is None:
                part = out[position : position + nbytes]
                got = os.preadv(fd, [part.data], offset)
                if got < nbytes:  # a short file reads as zeros past its end
                    part[got:] = 0
                position += nbytes
            else:
                data = decode(os.pread(fd, nbytes, offset))
                out[position : position + len(data)] = np.frombuffer(data, np.uint8)
                position += len(data)
        if position != self._frame_bytes:
            raise NotADatasetError(
                f"page {page} of {str(self.path)!r} holds {position:,} bytes, not "
                f"the {self._frame_bytes:,} of one frame; the file is damaged"
            )
        return self._buffer

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# ------------------------------------------------------------------ opening


def _read_document(path: Path) -> tuple[Any, Path] | None:
    """(OME model, the path that holds it) of a TIFF or companion file."""
    from ome_types import from_xml

    xml: str | None
    if path.name.lower().endswith(".ome"):
        try:
            xml = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
    else:
        xml = _description(path)
    if xml is None:
        return None
    try:
        ome = from_xml(xml, validate=False)
    except Exception:  # not OME-XML: not ours to read
        return None
    if ome.binary_only is not None:  # the document lives in another file
        target = path.parent / ome.binary_only.metadata_file
        return None if target == path else _read_document(target)
    return ome, path


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
    """Open an OME-TIFF output of this package for reading.

    ``path``: the file, the folder of one file per position, any file in it,
    its companion file, or the ``root_path`` the folder was written for.

    Raises
    ------
    NotADatasetError
        Not an OME-TIFF of this package, or one that does not record its
        settings (written by ome-writers 0.4.0 or older).
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
    ome, document = found
    entries = writer_entries(ome)
    if entries is None:
        raise NotADatasetError(
            f"{str(document)!r} was not written by ome_writers (its OME-XML has no "
            f"{WRITER_NAMESPACE!r} MapAnnotation); only this package's outputs "
            "can be read back as an acquisition"
        )
    if "settings" not in entries:
        raise NotADatasetError(
            f"{str(document)!r} was written by an ome_writers version that did not "
            "record its settings in the OME-XML; its acquisition cannot be rebuilt "
            "exactly. Read it with tifffile instead"
        )
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
    dataset = TiffDataset(
        path=document,
        settings=settings,
        files=files,
        compression=data.get("compression"),
        complete=entries.get("complete") == "true",
        frames_written=int(entries.get("frames_written", "0") or 0),
        global_metadata=_global_metadata(ome),
        plane_metadata=_plane_metadata(ome, settings),
        router=router,
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
    try:
        for f in files:
            dataset._pages.append(PageReader(f, settings.frame_shape, settings.dtype))
    except (OSError, NotADatasetError) as exc:
        dataset.close()
        raise NotADatasetError(
            f"a file of the OME-TIFF dataset {str(document)!r} cannot be read: {exc}"
        ) from None
    if not dataset.complete:
        dataset.frames_written = _frames_on_disk(dataset)
    return dataset


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
        if page >= pages[file_index]:
            break
        n += 1
    return n


def decode_text(value: str) -> Any:
    """A map value as the writer meant it: JSON unless it is a plain string."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(decoded, str) else decoded


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
    ome: Any, settings: AcquisitionSettings
) -> dict[tuple[int, tuple[int, ...]], dict[str, Any]]:
    axes = OmeAxes.from_settings(settings)
    sa = ome.structured_annotations
    frame_maps = {
        ann.id: ann
        for ann in ([] if sa is None else sa.map_annotations)
        if ann.namespace == FRAME_NAMESPACE
    }
    out: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
    for p, image in enumerate(ome.images[: len(settings.positions)]):
        for plane in image.pixels.planes:
            coords = {"T": plane.the_t, "C": plane.the_c, "Z": plane.the_z}
            index = tuple(int(coords[axes.axis_of[n]]) for n in axes.storage_names)
            values: dict[str, Any] = {}
            for key, (attr, _unit) in PLANE_KEYS.items():
                value = getattr(plane, attr, None)
                if value is not None:
                    values[key] = float(value)
            for ref in plane.annotation_refs:
                ann = frame_maps.get(ref.id)
                if ann is not None:
                    values.update(
                        {m.k: decode_text(m.value) for m in ann.value.ms if m.k}
                    )
            if values:
                out[(p, index)] = values
    return out
