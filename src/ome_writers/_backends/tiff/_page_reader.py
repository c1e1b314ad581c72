"""Pages of a TIFF file read back with ``pread``, for ``_reader`` (never written).

The IFD chain is walked as far as a read needs, so a file whose writer was
killed reads up to its last complete page. Files this package wrote are laid
out as it writes them; files of other writers (read through their OME-XML,
``_rebuild``) are checked page by page: strips, one sample of the pixel
type's size, no predictor, a codec this package decodes.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

import numpy as np

from ome_writers._backends.tiff._io import (
    TiffLayout,
    decoder,
    first_ifd_offset,
    read_entries,
    read_layout,
    read_values,
)
from ome_writers._errors import NotADatasetError

if TYPE_CHECKING:
    from pathlib import Path

_STRIP_OFFSETS = 273
_STRIP_BYTE_COUNTS = 279
_COMPRESSION = 259
_BITS_PER_SAMPLE = 258
_SAMPLES_PER_PIXEL = 277
_PREDICTOR = 317
_TILE_OFFSETS = 324
#: TIFF Compression code -> the codec's name in this package
_COMPRESSION_NAMES = {1: None, 8: "zlib", 32946: "zlib", 5: "lzw", 50000: "zstd"}


class PageReader:
    """The pages of one TIFF file, read with ``pread`` (never written).

    The IFD chain is walked as far as needed; a page past its end is None.
    Pixels go into one buffer reused by every read. ``check``: make sure
    each page is laid out as this reader reads it (strips, one sample of the
    dtype's size, no predictor), for files another writer made.
    """

    def __init__(
        self,
        path: Path,
        frame_shape: tuple[int, int],
        dtype: str,
        *,
        check: bool = False,
    ) -> None:
        self.path = path
        self._check = check
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
        if self._check:
            self._check_page(page, entries)
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

    def _check_page(self, page: int, entries: dict[int, tuple[int, int, int]]) -> None:
        fd, layout = self._fd, self._layout
        bits = 8 * self._buffer.dtype.itemsize
        problem = None
        if _TILE_OFFSETS in entries or _STRIP_OFFSETS not in entries:
            problem = "is tiled (only pages in strips are read)"
        elif _SAMPLES_PER_PIXEL in entries and read_values(
            fd, layout, entries[_SAMPLES_PER_PIXEL]
        ) != (1,):
            problem = "has more than one sample per pixel"
        elif _BITS_PER_SAMPLE in entries and read_values(
            fd, layout, entries[_BITS_PER_SAMPLE]
        ) != (bits,):
            problem = f"does not have {bits} bits per sample, as its pixel type"
        elif _PREDICTOR in entries and read_values(fd, layout, entries[_PREDICTOR]) != (
            1,
        ):
            problem = "uses a predictor (only unpredicted pages are read)"
        elif _COMPRESSION in entries and (
            read_values(fd, layout, entries[_COMPRESSION])[0] not in _COMPRESSION_NAMES
        ):
            problem = "uses a compression other than zlib, LZW or Zstandard"
        if problem is not None:
            raise NotADatasetError(
                f"page {page} of {str(self.path)!r} {problem}; write it again "
                "with tifffile without tiles, predictor or RGB samples"
            )

    def compression(self, page: int) -> str | None:
        """The codec name of ``page``'s Compression tag (None: uncompressed)."""
        if not self.read_ifd(page):
            return None
        entries = read_entries(self._fd, self._layout, self._ifds[page])
        code = 1
        if _COMPRESSION in entries:
            (code,) = read_values(self._fd, self._layout, entries[_COMPRESSION])
        return _COMPRESSION_NAMES.get(code)

    def read_ifd(self, page: int) -> bool:
        """Walk the chain to ``page``; False when it ends before."""
        while len(self._ifds) <= page:
            if not self._walk():
                return False
        return True

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
