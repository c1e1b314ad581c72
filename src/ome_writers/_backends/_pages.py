"""Reserved memory, pre-faulting and pre-allocated disk blocks.

Growing must never copy, and the writer should not stall.

An in-memory position array is a private anonymous mapping reserved for its
whole capacity up front. Untouched pages cost neither memory nor commit charge
(``MAP_NORESERVE``), so reserving the memory budget is free, and growing the
logical array is only a change of the view's length: no frame is ever copied.

The first write to each 4 KiB page costs a page fault (zeroing the page plus a
trap), which is about 40% of the cost of copying a frame into fresh memory. A
``Prefaulter`` thread pays that cost on the other core, a few frames ahead of
the write position, with ``madvise(MADV_POPULATE_WRITE)`` (Linux >= 5.14).
That call populates pages *without writing to them*, so it can never clobber a
frame that a writer got to first. Where it is not supported the prefaulter
switches itself off and writes simply fault as usual. Transparent huge pages
are requested for the mapping where the kernel offers them.

On disk, ``allocate_blocks`` reserves a data file's blocks before frames are
written into it (``fallocate``). A write into allocated blocks skips the file
system's per-page delayed-allocation bookkeeping (about a third faster here),
and the kernel's writeback then has no blocks to allocate, which otherwise
holds up the writer for tens of milliseconds when writeback starts. It is the
raw system call, never glibc's ``posix_fallocate``, which falls back to
writing zeros where a file system cannot allocate.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import mmap
import sys
import threading
from typing import Any

import numpy as np

logger = logging.getLogger("ome_writers")

_MADV_POPULATE_WRITE = 23  # linux/mman.h
_FALLOC_FL_KEEP_SIZE = 0x01  # linux/falloc.h
_FALLOC_FL_PUNCH_HOLE = 0x02
_MAP_NORESERVE = 0x4000  # linux/mman.h (x86, arm)

_libc: ctypes.CDLL | None = None
_fallocate: Any = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(
            ctypes.util.find_library("c") or "libc.so.6", use_errno=True
        )
        _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc.madvise.restype = ctypes.c_int
        # the 64-bit-offset entry point, also on 32-bit systems
        _fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate
        _fallocate.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int64,
            ctypes.c_int64,
        ]
        _fallocate.restype = ctypes.c_int
    except OSError:  # pragma: no cover - no libc to talk to
        _libc = None


def reserve_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A zero-filled, writable array over a fresh anonymous mapping.

    Memory is committed only as pages are first written.
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype)
    flags = mmap.MAP_PRIVATE
    if sys.platform.startswith("linux"):
        flags |= _MAP_NORESERVE
    buf = mmap.mmap(-1, nbytes, flags=flags)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buf.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # pragma: no cover - THP disabled
            pass
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def populate(array: np.ndarray, first_row: int, stop_row: int) -> bool:
    """Pre-fault rows ``[first_row, stop_row)`` of ``array`` for writing.

    Returns False when the kernel cannot do it without touching the data.
    The call releases the GIL (ctypes), so it runs beside the writer.
    """
    if _libc is None or stop_row <= first_row:
        return _libc is not None
    row_bytes = array.strides[0]
    base = array.ctypes.data
    start = base + first_row * row_bytes
    stop = base + stop_row * row_bytes
    start -= start % mmap.PAGESIZE
    if _libc.madvise(start, stop - start, _MADV_POPULATE_WRITE) != 0:
        logger.debug("MADV_POPULATE_WRITE unavailable (errno %d)", ctypes.get_errno())
        return False
    return True


def allocate_blocks(fd: int, offset: int, length: int) -> int:
    """Allocate the blocks of ``[offset, offset + length)``; 0 or an errno.

    The range must lie within the file, whose contents there read as zeros.
    ``EOPNOTSUPP`` means the file system cannot (or this is not Linux),
    ``ENOSPC`` that the disk has no room for the range. A failed call gives
    back whatever blocks it took (ext4 keeps a partial allocation), so the
    range must hold no data yet.
    """
    if _fallocate is None:
        return errno.EOPNOTSUPP
    if length <= 0 or _fallocate(fd, 0, offset, length) == 0:
        return 0
    error = int(ctypes.get_errno())
    if error != errno.EOPNOTSUPP:
        punch_hole(fd, offset, length)
    return error


def punch_hole(fd: int, offset: int, length: int) -> int:
    """Make ``[offset, offset + length)`` read as zeros, freeing its blocks.

    Needs no free space (unlike writing zeros), so it works on a full disk.
    Returns 0 or an errno (``EOPNOTSUPP`` where the file system cannot).
    """
    if _fallocate is None:
        return errno.EOPNOTSUPP
    flags = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    if length <= 0 or _fallocate(fd, flags, offset, length) == 0:
        return 0
    return int(ctypes.get_errno())


class Prefaulter:
    """Keep the pages of a few rows ahead of each position's writer populated.

    ``triggers[p]`` is the row of position ``p`` at which the writer should
    call ``advance(p, row)``; below it the call is skipped, so the writer pays
    one comparison per frame. Rows are never populated beyond the array, whose
    length is what the acquisition declared or what its budget allows, and at
    most ``2 * lookahead_rows`` ahead of the writer.
    """

    def __init__(
        self, arrays: list[np.ndarray], lookahead_rows: int, first_row: int = 0
    ) -> None:
        self._arrays = arrays
        self._lookahead = max(1, lookahead_rows)
        self._done = [first_row] * len(arrays)
        self._targets = [0] * len(arrays)
        self.triggers = [0] * len(arrays)
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(
            target=self._run, name="ome-writers-prefault", daemon=True
        )
        for p in range(len(arrays)):
            self.advance(p, first_row)
        self._thread.start()

    def advance(self, position: int, row: int) -> None:
        """The writer of ``position`` is at ``row``: top up its window."""
        self._targets[position] = row + 2 * self._lookahead
        self.triggers[position] = row + self._lookahead
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread; rows not yet populated fault on write as usual."""
        self._stop = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        step = max(1, self._lookahead // 2)
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            progressed = True
            while progressed and not self._stop:
                progressed = False
                for i, array in enumerate(self._arrays):
                    stop = min(self._targets[i], len(array), self._done[i] + step)
                    if stop > self._done[i]:
                        if not populate(array, self._done[i], stop):
                            return
                        self._done[i] = stop
                        progressed = True
