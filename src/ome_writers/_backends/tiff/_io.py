"""Low-level TIFF file handling for the OME-TIFF backend.

``OrderedFile`` is the binary file object tifffile writes through. tifffile
appends a page by first pointing the previous IFD's "next IFD" offset at the
new page, then writing the pixel data, and the new IFD last. A process killed
in between (the data write is the long part) leaves a chain that points at
zeros, and readers then reject the whole OME series. ``OrderedFile`` keeps the
chain valid after every page: writes past the committed end of the file go to
the OS immediately (nothing points at them yet), while writes over committed
bytes (the pointer, a tag patch) are held back and applied, each as one
``pwrite``, once the new bytes they point at are written. A SIGKILL at any
moment thus leaves a file whose IFD chain ends at the last complete page.

Reading back (``PageIndex``) parses the IFDs written so far with plain
``pread`` calls, so that live reads never go through the writer's state.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._util import pwrite_all

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import ReadableBuffer, WriteableBuffer

#: TIFF tag codes read back from the IFDs
_IMAGE_DESCRIPTION = 270
_STRIP_OFFSETS = 273
_STRIP_BYTE_COUNTS = 279
_COMPRESSION = 259
_PREDICTOR = 317
_SUB_IFDS = 330


class OrderedFile(io.RawIOBase):
    """A writable binary file that keeps a TIFF's IFD chain valid at all times.

    Parameters
    ----------
    path
        The file to create (truncated if it exists).
    existing
        Open an existing, complete file instead (to replace its description).
    """

    def __init__(self, path: str, *, existing: bool = False) -> None:
        super().__init__()
        self.name = path
        self.mode = "wb"
        flags = os.O_RDWR if existing else os.O_RDWR | os.O_CREAT | os.O_TRUNC
        self._fd = os.open(path, flags, 0o644)
        size = os.fstat(self._fd).st_size
        self._pos = 0
        self._end = size  # bytes known to be in the file
        self._committed_end = size  # bytes that committed pointers may reference
        self._held: list[tuple[int, bytes]] = []
        self._wrote_after_hold = False
        #: hold every patch until ``commit()``, also across tifffile's flushes
        #: (a page and its SubIFDs are linked into the chain together)
        self.deferred = False

    # -------------------------------------------------------------- io API

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._end = max(self._end, os.fstat(self._fd).st_size)
            self._pos = self._end + offset
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = os.pread(self._fd, len(view), self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def write(self, buffer: ReadableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        size = len(view)
        if self._pos < self._committed_end:
            self._held.append((self._pos, bytes(view)))
        else:
            pwrite_all(self._fd, view, self._pos)
            if self._held:
                self._wrote_after_hold = True
        self._pos += size
        self._end = max(self._end, self._pos)
        return size

    def flush(self) -> None:
        """Apply held patches once new bytes were written after them.

        numpy calls ``flush`` before it writes pixel data through ``fileno``;
        at that point nothing new follows the held pointer, so it stays held.
        tifffile calls it again after writing the IFD, which releases it.
        While ``deferred``, nothing is released (``commit`` does it).
        """
        if self.deferred:
            return
        if self._held and self._wrote_after_hold:
            self.commit()
        elif not self._held:
            self._committed_end = self._physical_end()

    def commit(self) -> None:
        """Apply every held patch now and mark the whole file as committed."""
        for offset, data in _merge(self._held):
            pwrite_all(self._fd, memoryview(data), offset)
        self._held = []
        self._wrote_after_hold = False
        self._committed_end = self._physical_end()

    def rollback(self) -> None:
        """Drop held patches and anything written after the committed end."""
        self._held = []
        self._wrote_after_hold = False
        os.ftruncate(self._fd, self._committed_end)
        self._end = self._committed_end
        self._pos = self._committed_end

    def append_bytes(self, data: bytes) -> int:
        """Write ``data`` at the (word-aligned) end of the file; return its offset."""
        end = self._physical_end()
        offset = end + (end % 2)
        pwrite_all(self._fd, memoryview(b"\x00" * (offset - end) + data), end)
        self._end = offset + len(data)
        self._pos = self._end
        return offset

    def patch(self, offset: int, data: bytes) -> None:
        """Overwrite committed bytes in one ``pwrite``."""
        pwrite_all(self._fd, memoryview(data), offset)

    def _physical_end(self) -> int:
        self._end = max(self._end, os.fstat(self._fd).st_size)
        return self._end

    @property
    def size(self) -> int:
        """Current size of the file in bytes."""
        return self._physical_end()

    def sync(self) -> None:
        """Hand everything to the OS (it already is) and flush it to the device."""
        os.fsync(self._fd)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._held:
                self.commit()
            super().close()
        finally:
            os.close(self._fd)


def _merge(held: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Coalesce adjacent patches so that a tag's count and offset land together."""
    out: list[tuple[int, bytes]] = []
    for offset, data in held:
        if out and out[-1][0] + len(out[-1][1]) == offset:
            out[-1] = (out[-1][0], out[-1][1] + data)
        else:
            out.append((offset, data))
    return out


class TiffLayout:
    """Byte layout of a little-endian classic TIFF or BigTIFF."""

    def __init__(self, bigtiff: bool) -> None:
        self.bigtiff = bigtiff
        self.offset_format = "<Q" if bigtiff else "<I"
        self.offset_size = 8 if bigtiff else 4
        self.count_format = "<Q" if bigtiff else "<H"
        self.count_size = 8 if bigtiff else 2
        self.entry_size = 20 if bigtiff else 12
        self.first_ifd_pointer = 8 if bigtiff else 4


def read_entries(
    fd: int, layout: TiffLayout, ifd: int
) -> dict[int, tuple[int, int, int]]:
    """Tag code -> (type, count, offset of the value field) of one IFD."""
    (count,) = struct.unpack(layout.count_format, os.pread(fd, layout.count_size, ifd))
    raw = os.pread(fd, count * layout.entry_size, ifd + layout.count_size)
    entries = {}
    for i in range(count):
        start = i * layout.entry_size
        code, dtype = struct.unpack_from("<HH", raw, start)
        (n,) = struct.unpack_from(layout.offset_format, raw, start + 4)
        value_field = ifd + layout.count_size + start + 4 + layout.offset_size
        entries[code] = (dtype, n, value_field)
    return entries


_TYPE_FORMATS = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}


def read_values(
    fd: int, layout: TiffLayout, entry: tuple[int, int, int]
) -> tuple[int, ...]:
    """The integer values of one tag entry (inline or out of line)."""
    dtype, count, value_field = entry
    fmt = _TYPE_FORMATS[dtype]
    nbytes = count * struct.calcsize(fmt)
    if nbytes <= layout.offset_size:
        raw = os.pread(fd, nbytes, value_field)
    else:
        (offset,) = struct.unpack(
            layout.offset_format, os.pread(fd, layout.offset_size, value_field)
        )
        raw = os.pread(fd, nbytes, offset)
    return struct.unpack(f"<{count}{fmt}", raw)


class PageIndex:
    """Where each page's strips are, recorded as pages are written.

    ``record(ifd_offset)`` parses the IFD just written; ``read(path, page)``
    returns its pixels. Appends happen on the writer's thread and reads on any
    thread: a page is readable once it is in ``len(self)``.
    """

    def __init__(
        self, frame_shape: tuple[int, int], dtype: np.dtype, layout: TiffLayout
    ) -> None:
        self._frame_shape = frame_shape
        self._dtype = dtype
        self._layout = layout
        self._strips: list[tuple[tuple[int, ...], tuple[int, ...]] | None] = []
        self._decode: Callable[[bytes], bytes] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._strips)

    def record(self, fd: int, ifd_offset: int, *, is_zero: bool = False) -> None:
        """Record the page whose IFD starts at ``ifd_offset`` (zeros: no read)."""
        if is_zero:
            self._strips.append(None)
            return
        entries = read_entries(fd, self._layout, ifd_offset)
        offsets = read_values(fd, self._layout, entries[_STRIP_OFFSETS])
        counts = read_values(fd, self._layout, entries[_STRIP_BYTE_COUNTS])
        if self._decode is None and _COMPRESSION in entries:
            (code,) = read_values(fd, self._layout, entries[_COMPRESSION])
            self._decode = decoder(code)
        self._strips.append((offsets, counts))

    def read(self, fd: int, page: int) -> np.ndarray:
        """The pixels of ``page`` (zeros for a page recorded as zero)."""
        strips = self._strips[page]
        if strips is None:
            return np.zeros(self._frame_shape, self._dtype)
        offsets, counts = strips
        parts = [os.pread(fd, n, off) for off, n in zip(offsets, counts)]
        decode = self._decode
        if decode is not None:
            parts = [decode(p) for p in parts]
        data = b"".join(parts)
        return np.frombuffer(data, self._dtype).reshape(self._frame_shape)


def sub_ifd_offsets(fd: int, layout: TiffLayout, ifd: int) -> tuple[int, ...]:
    """Offsets of the SubIFDs (lower resolutions) of the IFD at ``ifd``."""
    entries = read_entries(fd, layout, ifd)
    if _SUB_IFDS not in entries:
        return ()
    return read_values(fd, layout, entries[_SUB_IFDS])


def decoder(code: int) -> Callable[[bytes], bytes] | None:
    """Decoder of a TIFF Compression code (None: uncompressed)."""
    if code == 1:
        return None
    if code in (8, 32946):
        return zlib.decompress
    codecs: Any = __import__("imagecodecs")
    if code == 5:
        return codecs.lzw_decode  # type: ignore[no-any-return]
    if code in (50000, 34926):
        return codecs.zstd_decode  # type: ignore[no-any-return]
    raise ValueError(f"cannot decode TIFF compression {code!r}")


def first_ifd_offset(fd: int, layout: TiffLayout) -> int:
    """Offset of the first IFD (0 when no page is written yet)."""
    raw = os.pread(fd, layout.offset_size, layout.first_ifd_pointer)
    if len(raw) < layout.offset_size:
        return 0
    (offset,) = struct.unpack(layout.offset_format, raw)
    return int(offset)


def read_layout(fd: int) -> TiffLayout | None:
    """The layout a little-endian TIFF's header declares (None: not one)."""
    header = os.pread(fd, 4, 0)
    if header == b"II*\x00":
        return TiffLayout(bigtiff=False)
    if header == b"II+\x00":
        return TiffLayout(bigtiff=True)
    return None


def count_pages(fd: int, layout: TiffLayout) -> int:
    """Pages in the IFD chain (which ``OrderedFile`` keeps valid at all times)."""
    size = os.fstat(fd).st_size
    pages, ifd, seen = 0, first_ifd_offset(fd, layout), set()
    while 0 < ifd < size and ifd not in seen:
        seen.add(ifd)
        raw = os.pread(fd, layout.count_size, ifd)
        if len(raw) < layout.count_size:
            break
        (count,) = struct.unpack(layout.count_format, raw)
        pointer = ifd + layout.count_size + count * layout.entry_size
        raw = os.pread(fd, layout.offset_size, pointer)
        if len(raw) < layout.offset_size:
            break
        pages += 1
        (ifd,) = struct.unpack(layout.offset_format, raw)
    return pages


class DescriptionSlot:
    """The ImageDescription tag of the first page, replaced crash-safely.

    A new description is appended to the end of the file first; only then is
    the tag's (count, offset) pair switched to it, in one ``pwrite``. The old
    value stays in the file as dead bytes, so a reader sees either the old or
    the new description, never a mix.
    """

    def __init__(self, file: OrderedFile, layout: TiffLayout) -> None:
        self._file = file
        self._layout = layout
        ifd = first_ifd_offset(file.fileno(), layout)
        entries = read_entries(file.fileno(), layout, ifd)
        _dtype, _count, value_field = entries[_IMAGE_DESCRIPTION]
        # the count field sits just before the value field
        self._count_field = value_field - layout.offset_size
        self.current: bytes = b""

    def replace(self, description: bytes) -> None:
        """Point the tag at ``description`` (NUL-terminated on disk)."""
        if description == self.current:
            return
        value = description + b"\x00"
        offset = self._file.append_bytes(value)
        fmt = self._layout.offset_format
        pair = struct.pack(fmt, len(value)) + struct.pack(fmt, offset)
        self._file.patch(self._count_field, pair)
        self._file.commit()
        self.current = description
