"""The OME-TIFF backend: tifffile pages, OME-XML from ome-types.

Writing. Every frame (or skipped frame, as zeros) is one page, written
synchronously by tifffile through an ``OrderedFile`` (see ``_tiff_io``), so
when ``write`` returns the pixels are in the OS and tifffile holds no
reference to the caller's buffer. Pages land in each file in acquisition
order; ``TiffData`` elements map them to planes (see ``_tiff_planes``), so
any storage order and interleaved positions need no buffering or seeking.

Crash safety. The first page of a file carries an OME-XML that already declares
every plane of the acquisition (for an unbounded stream: a capacity that
doubles as the stream grows, the XML being replaced each time, without the
per-plane metadata so far, which would make each replacement cost more than the
last), and the IFD chain is valid after every page. A killed process thus
leaves files that tifffile opens with every page written before the kill in its
OME series; planes never written read as zeros. What only the final XML has:
per-plane metadata (``DeltaT``, ``ExposureTime``, ``PositionX/Y/Z``, per-frame
MapAnnotations), global metadata set after a file's first page, the exact
extent of an unbounded dimension, and ``complete=true`` in the writer's
MapAnnotation.

Replacing the description appends the new XML and then switches the tag to
it in one ``pwrite``; the previous XML stays behind as dead bytes (a few KB
per replacement, about log2(steps) replacements for an unbounded stream).
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np
import tifffile

from ome_writers._backends._base import Backend, FrameMetadata, check_zero_fill
from ome_writers._backends._downsample import reduce_plane
from ome_writers._backends._ome_xml import PlaneRecord, global_annotation
from ome_writers._backends._plane_reader import PlaneReader
from ome_writers._backends.tiff._io import (
    DescriptionSlot,
    OrderedFile,
    PageIndex,
    TiffLayout,
    count_pages,
    read_layout,
    sub_ifd_offsets,
)
from ome_writers._backends.tiff._metadata import (
    NO_PAGE_LIMIT,
    OmeDocument,
    TiffDocumentState,
)
from ome_writers._errors import NotADatasetError, WriteError
from ome_writers._formats import OmeTiffFormat
from ome_writers._pyramid import frame_tile
from ome_writers._util import fsync_directory, replace_file
from ome_writers._version import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

_CLASSIC_LIMIT_BYTES = 2**32 - 2**26  # keep a 64 MB margin below 4 GB
_PAGE_OVERHEAD_BYTES = 4096
_COMPRESSION_ARGS: dict[str | None, Any] = {
    None: None,
    "zlib": "zlib",
    "lzw": "lzw",
    "zstd": "zstd",
}


class _TiffFile:
    """One TIFF file being written: handle, tifffile writer, page index."""

    def __init__(self, path: Path, layout: TiffLayout, index: PageIndex) -> None:
        self.path = path
        self.layout = layout
        self.index = index
        #: where each page's lower resolutions are (its SubIFDs), per level
        self.level_indexes: list[PageIndex] = []
        self.handle: OrderedFile | None = None
        self.writer: tifffile.TiffWriter | None = None
        self.description: DescriptionSlot | None = None
        self.pages = 0

    def create(self) -> None:
        self.handle = OrderedFile(str(self.path))
        self.writer = tifffile.TiffWriter(
            cast("IO[bytes]", self.handle),
            bigtiff=self.layout.bigtiff,
            byteorder="<",
            ome=False,
        )
        self.handle.commit()  # the header: from now on the chain only grows

    def close(self) -> None:
        handle, self.handle, self.writer = self.handle, None, None
        if handle is not None:
            handle.close()


class TiffBackend(Backend):
    """Writer of OME-TIFF files; see the module notes."""

    def __init__(self, settings: AcquisitionSettings, router: FrameRouter) -> None:
        super().__init__(settings, router)
        fmt = settings.format
        assert isinstance(fmt, OmeTiffFormat)
        self._format = fmt
        self._dtype = np.dtype(settings.dtype)
        self._frame_shape = settings.frame_shape
        self._frame_bytes = math.prod(self._frame_shape) * self._dtype.itemsize
        self._compression = _COMPRESSION_ARGS[settings.compression]
        # tifffile compresses a page's strips on half the cores by default:
        # one on a 2-core machine, where two are ~1.8x faster
        self._maxworkers = (
            max(2, tifffile.TIFF.MAXWORKERS) if self._compression else None
        )
        npos = router.num_positions
        self._per_position_file = not fmt.single_file(npos)
        self._paths = [Path(p) for p in fmt.file_paths(settings.root_path, npos)]
        directory = self._paths[0].parent
        metadata_mode = fmt.multi_file_metadata if self._per_position_file else None
        self._companion: Path | None = None
        if metadata_mode == "companion-file":
            self._companion = directory / fmt.companion_file
        self._directory = directory
        self._document = OmeDocument(
            settings,
            router,
            [p.name for p in self._paths],
            per_position_file=self._per_position_file,
            metadata_mode=metadata_mode,
            companion_name=fmt.companion_file,
        )
        self._layout = TiffLayout(self._use_bigtiff())
        self._files = [
            _TiffFile(
                path,
                self._layout,
                PageIndex(self._frame_shape, self._dtype, self._layout),
            )
            for path in self._paths
        ]
        self._num_files = len(self._files)
        self._npos = npos
        # pyramid: each page's lower resolutions, as its SubIFDs
        self._pyramid = fmt.pyramid
        self._level_shapes: list[tuple[int, int]] = []
        if self._pyramid is not None:
            tile = frame_tile(settings.frame_dimensions)
            shapes = self._pyramid.level_frame_shapes(self._frame_shape, tile)
            self._level_shapes = shapes[1:]
        for f in self._files:
            f.level_indexes = [
                PageIndex(shape, self._dtype, self._layout)
                for shape in self._level_shapes
            ]
        # frame number -> (file, IFD): acquisition strides with and without
        # the position axis
        counts = [int(c or 1) for c in router.counts]
        pax = router.position_axis
        self._local_strides = [0] * len(counts)
        stride = 1
        for axis in reversed(range(len(counts))):
            if self._per_position_file and axis == pax:
                continue
            self._local_strides[axis] = stride
            stride *= counts[axis]
        # the extent of an unbounded first axis declared in the OME-XML
        self._state = TiffDocumentState(
            declared_steps=1, ifd_limits=[NO_PAGE_LIMIT] * self._num_files
        )
        self._last_xml = b""
        self._closed = False
        #: documents given to update_metadata (file key -> OME-XML)
        self._custom_xml: dict[int, bytes] = {}

    @property
    def journal_output(self) -> Path:
        """``root_path``: a journal beside it keeps the metadata only close writes.

        For a folder of one file per position too, the name given as
        ``root_path`` (which ``recover`` is given), not the folder's.
        """
        return Path(os.path.abspath(self.settings.root_path))

    # ---------------------------------------------------------------- opening

    def _use_bigtiff(self) -> bool:
        if self._format.bigtiff is not None:
            return self._format.bigtiff
        if self.router.num_frames is None:
            return True
        planes = self.router.num_frames
        if self._per_position_file:
            planes //= self.router.num_positions
        estimate = planes * (self._frame_bytes * 1.01 + _PAGE_OVERHEAD_BYTES)
        estimate += planes * 512 + 2**20  # OME-XML
        return estimate >= _CLASSIC_LIMIT_BYTES

    def open(self) -> None:
        """Refuse existing output unless ``overwrite``; then create the files."""
        targets = [*self._paths]
        if self._companion is not None:
            targets.append(self._companion)
        folder = self._directory
        if self._per_position_file and (folder.exists() or folder.is_symlink()):
            if not folder.is_dir():
                raise FileExistsError(
                    f"the output folder {str(folder)!r} for one file per position "
                    "exists and is not a folder; choose another root_path"
                )
        for path in targets:
            if path.resolve().parent != self._directory.resolve():
                raise ValueError(
                    f"file {str(path)!r} would be written outside the output "
                    f"directory {str(self._directory)!r}; rename the position"
                )
            self._check_target(path)
        self._directory.mkdir(parents=True, exist_ok=True)
        for f in self._files:
            try:
                f.create()
            except OSError as exc:
                raise WriteError(
                    exc.errno, f"cannot create {str(f.path)!r}: {exc}", str(f.path)
                ) from exc
        if self._companion is not None:
            self._write_companion()

    def _check_target(self, path: Path) -> None:
        if not (path.exists() or path.is_symlink()):
            return
        if not self.settings.overwrite:
            raise FileExistsError(
                f"{str(path)!r} already exists; choose a new root_path or pass "
                "overwrite=True to replace the files this format writes"
            )
        if path.is_dir() or not _looks_like_ours(path):
            raise FileExistsError(
                f"{str(path)!r} exists and is not an OME-TIFF file or companion "
                "(not a TIFF/XML file); refusing to replace it even with "
                "overwrite=True: choose another root_path"
            )

    def reopen(self) -> None:
        """Open the files of an interrupted acquisition to write its final XML.

        A file holding only its header (killed before its first page) is
        made again; the others keep their pages, which the IFD chain lists.
        """
        for f in self._files:
            try:
                fd = os.open(f.path, os.O_RDONLY)
            except OSError as exc:
                raise NotADatasetError(
                    f"{str(f.path)!r} of the interrupted acquisition cannot be "
                    f"opened ({exc}); nothing can be recovered without it"
                ) from exc
            try:
                layout = read_layout(fd)
                pages = 0 if layout is None else count_pages(fd, layout)
            finally:
                os.close(fd)
            if layout is None or layout.bigtiff != self._layout.bigtiff:
                raise NotADatasetError(
                    f"{str(f.path)!r} is not the TIFF file this acquisition began"
                )
            try:
                if pages == 0:
                    f.create()
                    continue
                f.handle = OrderedFile(str(f.path), existing=True)
                f.pages = pages
                f.description = DescriptionSlot(f.handle, self._layout)
            except OSError as exc:
                raise WriteError(
                    exc.errno, f"cannot reopen {str(f.path)!r}: {exc}", str(f.path)
                ) from exc

    def restore_frame_metadata(
        self, frame_number: int, metadata: FrameMetadata
    ) -> None:
        """Keep the metadata of a frame whose page is in its file."""
        if metadata.values:
            position, storage_index = self.router.locate(frame_number)
            self._state.planes.append(
                PlaneRecord(position, storage_index, dict(metadata.values))
            )

    def abort(self) -> None:
        """Close whatever was opened before ``open()`` failed."""
        for f in self._files:
            f.close()

    # ---------------------------------------------------------------- writing

    def locate_page(self, frame_number: int) -> tuple[int, int, int]:
        """(position, file index, IFD in that file) of a frame."""
        index = self.router.acq_index(frame_number)
        pax = self.router.position_axis
        position = 0 if pax is None else index[pax]
        ifd = sum(i * s for i, s in zip(index, self._local_strides))
        return position, (position if self._per_position_file else 0), ifd

    def write(
        self, frame_number: int, frame: np.ndarray, metadata: FrameMetadata | None
    ) -> None:
        """Write one page; keep its metadata for the final OME-XML."""
        position, file_index, ifd = self.locate_page(frame_number)
        self._grow(frame_number)
        f = self._files[file_index]
        if f.pages != ifd:
            raise WriteError(
                f"frame {frame_number} belongs at page {ifd} of {str(f.path)!r}, "
                f"which has {f.pages} pages after an earlier failed write; "
                "the file cannot take more frames"
            )
        self._write_page(f, frame, is_zero=False)
        if metadata is not None and metadata.values:
            _, storage_index = self.router.locate(frame_number)
            self._state.planes.append(
                PlaneRecord(position, storage_index, dict(metadata.values))
            )

    def skip(self, first_frame: int, count: int) -> None:
        """Write zero pages, so that page numbers stay those of the frames.

        Uncompressed, a zero page is a hole in the file (its IFD is written,
        its pixels are not); compressed, it is a compressed plane of zeros.
        """
        written = 0 if self._compression is None else self._frame_bytes
        check_zero_fill(count, written, "OME-TIFF")
        zeros = self._zero_frame()
        for n in range(first_frame, first_frame + count):
            _position, file_index, ifd = self.locate_page(n)
            self._grow(n)
            f = self._files[file_index]
            if f.pages > ifd:
                continue  # written by an earlier attempt of this skip
            self._write_page(f, zeros, is_zero=True)

    def _zero_frame(self) -> np.ndarray:
        """Zeros to compress; uncompressed, a zero page is a hole (no array)."""
        if self._compression is None:
            return np.broadcast_to(np.zeros((), self._dtype), self._frame_shape)
        return np.zeros(self._frame_shape, self._dtype)

    def _write_page(self, f: _TiffFile, frame: np.ndarray, *, is_zero: bool) -> None:
        handle, writer = f.handle, f.writer
        if handle is None or writer is None:
            raise WriteError(f"{str(f.path)!r} is closed")
        first = f.pages == 0
        start = handle.size
        # an uncompressed zero page is a hole in the file: no bytes written
        sparse = is_zero and self._compression is None
        levels = self._level_shapes
        try:
            # a page and its SubIFDs join the chain together, at the commit
            handle.deferred = bool(levels)
            writer.write(
                None if sparse else frame,
                shape=self._frame_shape if sparse else None,
                dtype=self._dtype if sparse else None,
                photometric="minisblack",
                compression=self._compression,
                maxworkers=self._maxworkers,
                description=self._file_xml(f) if first else None,
                metadata=None,
                software=f"ome_writers {__version__}",
                subifds=len(levels) or None,
            )
            plane = frame
            for shape in levels:
                if not is_zero:
                    assert self._pyramid is not None
                    plane = reduce_plane(
                        np.ascontiguousarray(plane), self._pyramid.method
                    )
                if is_zero:
                    plane = np.zeros(shape, self._dtype)
                writer.write(
                    None if sparse else plane,
                    shape=shape if sparse else None,
                    dtype=self._dtype if sparse else None,
                    photometric="minisblack",
                    compression=self._compression,
                    maxworkers=self._maxworkers,
                    metadata=None,
                    subfiletype=1,  # a reduced-resolution image of the page
                )
            handle.deferred = False
            handle.commit()
            if self._format.fsync == "every_frame" and not is_zero:
                handle.sync()  # the page, before append returns
        except OSError as exc:
            code = exc.errno
            # before the rollback, which may give back the space the page took
            if code is None and _disk_is_full(handle.fileno()):
                code = errno.ENOSPC  # numpy's short write says only how short
            handle.deferred = False
            handle.rollback()
            raise WriteError(
                code,
                f"cannot write page {f.pages} to {str(f.path)!r}: "
                f"{exc.strerror or exc}; pages before it are kept",
                str(f.path),
            ) from exc
        except BaseException:
            handle.deferred = False
            handle.rollback()
            raise
        ifd = start + start % 2
        f.index.record(handle.fileno(), ifd, is_zero=is_zero)
        if levels:
            offsets = sub_ifd_offsets(handle.fileno(), self._layout, ifd)
            for index, offset in zip(f.level_indexes, offsets):
                index.record(handle.fileno(), offset, is_zero=is_zero)
        f.pages += 1
        if first:
            f.description = DescriptionSlot(handle, self._layout)
            f.description.current = self._last_xml

    def _file_xml(self, f: _TiffFile) -> bytes:
        file_index = self._files.index(f)
        xml = self._document.file_xml(file_index, self._state)
        self._last_xml = xml
        return xml

    def _grow(self, frame_number: int) -> None:
        """Double the declared extent of an unbounded stream when it is reached."""
        if not self.router.is_unbounded:
            return
        step = frame_number // self.router.frames_per_step
        if step < self._state.declared_steps:
            return
        self._state.declared_steps = max(2 * self._state.declared_steps, step + 1)
        # without the planes so far: building them grew with the stream (94 ms
        # on the append that crossed 256 frames, and doubling with each
        # replacement), and only the final XML promises them
        self._rewrite_descriptions(dataclasses.replace(self._state, planes=[]))

    def _rewrite_descriptions(self, state: TiffDocumentState | None = None) -> None:
        state = self._state if state is None else state
        for i, f in enumerate(self._files):
            if f.description is not None:
                xml = self._document.file_xml(i, state)
                try:
                    f.description.replace(xml)
                except OSError as exc:
                    raise WriteError(
                        exc.errno,
                        f"cannot write the OME-XML of {str(f.path)!r}: "
                        f"{exc.strerror or exc}; its pages are kept",
                        str(f.path),
                    ) from exc
        if self._companion is not None:
            self._write_companion(state)

    def _write_companion(self, state: TiffDocumentState | None = None) -> None:
        assert self._companion is not None
        data = self._document.companion_xml(self._state if state is None else state)
        try:
            replace_file(self._companion, data)
        except OSError as exc:
            raise WriteError(
                exc.errno,
                f"cannot write {str(self._companion)!r}: {exc}",
                str(self._companion),
            ) from exc

    # ---------------------------------------------------------------- metadata

    def set_global_metadata(self, metadata: dict[str, Any], *, closed: bool) -> None:
        """Keep the namespaces; files whose first page is not written yet get them.

        Files already started get them in the final OME-XML (and at the next
        growth of an unbounded stream). After close, every document that
        describes the dataset is rewritten now, its global annotations
        replaced (documents given to ``update_metadata`` included).
        """
        previous = self._state.global_metadata
        self._state.global_metadata = dict(metadata)
        if not closed:
            return
        from ome_types import from_xml, to_xml

        replaced = set(previous) | set(metadata)
        for key in self._document_keys():
            ome = from_xml(self._current_xml(key))
            if ome.binary_only is not None:
                continue
            _replace_global_annotations(ome, replaced, metadata)
            self._write_document(key, to_xml(ome).encode("utf-8"))

    def _document_keys(self) -> list[int]:
        """0..files-1, and -1 for the companion file."""
        return [*range(self._num_files), *([-1] if self._companion else [])]

    def _current_xml(self, key: int) -> bytes:
        if key in self._custom_xml:
            return self._custom_xml[key]
        if key == -1:
            return self._document.companion_xml(self._state)
        return self._document.file_xml(key, self._state)

    def get_metadata(self) -> dict[int, Any]:
        """File key -> ``ome_types.OME`` (see ``OMEStream.get_metadata``)."""
        from ome_types import from_xml

        return {key: from_xml(self._current_xml(key)) for key in self._document_keys()}

    def update_metadata(self, metadata: Mapping[Any, Any], *, closed: bool) -> None:
        """Replace files' OME-XML after close; every document is checked first."""
        from ome_types import OME, to_xml

        if not closed:
            raise RuntimeError(
                "OME-TIFF metadata can only be updated after stream.close(): the "
                "final OME-XML (planes, extents) is written at close; call "
                "update_metadata(...) once the stream is closed"
            )
        keys = self._document_keys()
        encoded: dict[int, bytes] = {}
        for key, ome in dict(metadata).items():
            if key not in keys:
                raise KeyError(
                    f"{key!r} is not a file of this output; its keys are {keys!r} "
                    "(the keys of get_metadata())"
                )
            if not isinstance(ome, OME):
                raise TypeError(
                    f"metadata[{key!r}] must be an ome_types.OME, got "
                    f"{type(ome).__name__}; edit the objects get_metadata() returns"
                )
            try:
                encoded[key] = to_xml(ome, validate=True).encode("utf-8")
            except Exception as exc:
                raise ValueError(
                    f"metadata[{key!r}] is not valid OME-XML ({exc}); nothing was "
                    "written"
                ) from exc
        for key, xml in encoded.items():
            self._write_document(key, xml)

    def _write_document(self, key: int, xml: bytes) -> None:
        """Replace the OME-XML of closed file ``key`` (-1: the companion)."""
        path = self._companion if key == -1 else self._paths[key]
        assert path is not None
        try:
            if key == -1:
                replace_file(path, xml)
            else:
                handle = OrderedFile(str(path), existing=True)
                try:
                    DescriptionSlot(handle, self._layout).replace(xml)
                finally:
                    handle.close()
        except OSError as exc:
            raise WriteError(
                exc.errno,
                f"cannot update the OME-XML of {str(path)!r}: {exc}",
                str(path),
            ) from exc
        self._custom_xml[key] = xml

    # ---------------------------------------------------------------- reading

    def position_data(self, position_index: int, frames_written: int) -> Any:
        """A lazy, read-only array of one position in storage order."""
        index_shape = self.router.storage_shape(frames_written)
        return PlaneReader(
            index_shape,
            self._frame_shape,
            self._dtype,
            lambda flat: self.read_planes(position_index, index_shape, flat),
        )

    def level_data(self, level: int, position_index: int, frames_written: int) -> Any:
        """Pyramid level ``level`` of one position: its pages' SubIFDs."""
        if level == 0:
            return self.position_data(position_index, frames_written)
        index_shape = self.router.storage_shape(frames_written)
        return PlaneReader(
            index_shape,
            self._level_shapes[level - 1],
            self._dtype,
            lambda flat: self.read_planes(position_index, index_shape, flat, level),
        )

    def read_planes(
        self,
        position_index: int,
        index_shape: tuple[int, ...],
        flat: np.ndarray,
        level: int = 0,
    ) -> list[np.ndarray]:
        """Pixels of planes ``flat`` (storage C order) of one position."""
        file_index = position_index if self._per_position_file else 0
        f = self._files[file_index]
        pages = f.index if level == 0 else f.level_indexes[level - 1]
        shape = self._frame_shape if level == 0 else self._level_shapes[level - 1]
        extent = index_shape[0] if index_shape else 1
        available = len(pages)
        wanted = self._document.ifds(position_index, extent, flat).tolist()
        out: list[np.ndarray] = []
        if not any(ifd < available for ifd in wanted):
            return [np.zeros(shape, self._dtype) for _ in wanted]
        fd = os.open(f.path, os.O_RDONLY)
        try:
            for ifd in wanted:
                if ifd < available:
                    out.append(pages.read(fd, ifd))
                else:
                    out.append(np.zeros(shape, self._dtype))
        finally:
            os.close(fd)
        return out

    # ---------------------------------------------------------------- closing

    def close(self, frames_written: int) -> None:
        """Write the final OME-XML into every file, then close them."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        try:
            for f in self._files:
                if f.pages == 0:  # no frame reached this file: one zero plane
                    self._write_page(f, self._zero_frame(), is_zero=True)
            if self.router.is_unbounded:
                state.declared_steps = max(self.router.steps_started(frames_written), 1)
            state.ifd_limits = [f.pages for f in self._files]
            state.frames_written = frames_written
            state.complete = True
            self._rewrite_descriptions()
            if self._format.fsync != "never":
                self._sync_files()
        finally:
            for f in self._files:
                f.close()

    def _sync_files(self) -> None:
        """Every file (and the folder's entries) on the device."""
        try:
            for f in self._files:
                if f.handle is not None:
                    f.handle.sync()
            if self._companion is not None and self._companion.exists():
                fd = os.open(self._companion, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            fsync_directory(self._directory)
        except OSError as exc:
            raise WriteError(
                exc.errno,
                f"cannot flush {str(self._directory)!r} to the device: {exc}",
                str(self._directory),
            ) from exc

    @property
    def paths(self) -> list[Path]:
        """The TIFF files, then the companion file if any."""
        return [*self._paths, *([self._companion] if self._companion else [])]


def _disk_is_full(fd: int) -> bool:
    try:
        return os.fstatvfs(fd).f_bavail == 0
    except OSError:
        return False


def _replace_global_annotations(
    ome: Any, namespaces: set[str], metadata: dict[str, Any]
) -> None:
    """Swap the MapAnnotations of ``namespaces`` for those of ``metadata``."""
    from ome_types.model import AnnotationRef, StructuredAnnotations

    annotations = ome.structured_annotations or StructuredAnnotations()
    dropped = {a.id for a in annotations.map_annotations if a.namespace in namespaces}
    taken = {a.id for a in annotations.map_annotations} - dropped
    kept = [a for a in annotations.map_annotations if a.id not in dropped]
    added = []
    for namespace, mapping in metadata.items():
        k = 0
        while f"Annotation:global:{k}" in taken:
            k += 1
        taken.add(f"Annotation:global:{k}")
        added.append(global_annotation(f"Annotation:global:{k}", namespace, mapping))
    annotations.map_annotations = kept + added
    ome.structured_annotations = annotations
    for image in ome.images:
        refs = [r for r in image.annotation_refs if r.id not in dropped]
        image.annotation_refs = refs + [AnnotationRef(id=a.id) for a in added]


def _looks_like_ours(path: Path) -> bool:
    """A TIFF, an XML file, or an empty file (a run killed before its header)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return (
        head == b""
        or head[:4]
        in (
            b"II*\x00",
            b"MM\x00*",
            b"II+\x00",
            b"MM\x00+",
        )
        or head.lstrip().startswith(b"<")
    )
