"""Which frames acquire-zarr has written: shard files checked by their index.

acquire-zarr says nothing when a frame reaches its file. A frame goes to its
queue, then to its chunk buffers, then its thread pool compresses and writes
the chunks; even its own ``zarr.json`` rewrite at a new shard row is issued
before those writes finish. What does show it is the file: acquire-zarr
writes every array as shards (``sharding_indexed``, index at the end with a
CRC32C), and writes a shard's index last, once every chunk of the shard has
been written. A shard file whose index is whole (its checksum matches, every
entry points inside the file) therefore holds all of its chunks.

acquire-zarr appends in storage order, so shards complete one *shard row*
(one shard deep along the first storage axis, every shard across the other
axes) at a time. The journal keeps each frame until every shard file of its
row is whole (``ShardWatcher``); ``recover`` removes the shard files that are
not (``torn_shards``) and writes their frames again from the journal.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import struct
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

_logger = logging.getLogger(__name__)

#: seconds between two looks at a shard row acquire-zarr has been given
CHECK_INTERVAL_S = 0.05
#: a missing chunk in a shard index (offset and size both 2**64 - 1)
_EMPTY = 2**64 - 1


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as the ``crc32c`` Zarr codec stores it.

    A table per byte: a shard index is small (16 bytes a chunk).

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def shard_is_whole(path: Path, chunks_per_shard: int) -> bool:
    """True when the shard file at ``path`` has a whole index (see the notes)."""
    index_bytes = 16 * chunks_per_shard
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < index_bytes + 4:
                return False
            f.seek(size - index_bytes - 4)
            tail = f.read(index_bytes + 4)
    except FileNotFoundError:
        return False
    index, stored = tail[:index_bytes], struct.unpack("<I", tail[index_bytes:])[0]
    if len(index) != index_bytes or crc32c(index) != stored:
        return False
    data_end = size - index_bytes - 4
    entries = struct.unpack(f"<{2 * chunks_per_shard}Q", index)
    for offset, nbytes in zip(entries[::2], entries[1::2]):
        if offset == _EMPTY and nbytes == _EMPTY:
            continue
        if offset + nbytes > data_end:
            return False
    return True


class ShardRows:
    """The shard files of one acquire-zarr array, by row along the first axis.

    Parameters
    ----------
    array_path
        The array's folder (its ``zarr.json`` and ``c/``).
    shape, shards, chunks
        Array, shard and inner chunk shapes in storage order (frame axes
        included); ``shape[0]`` is ignored (rows are counted, not bounded).
    """

    def __init__(
        self,
        array_path: Path,
        shape: tuple[int, ...],
        shards: tuple[int, ...],
        chunks: tuple[int, ...],
    ) -> None:
        self.array_path = array_path
        self.chunks_per_shard = math.prod(s // c for s, c in zip(shards, chunks))
        self._grid = [-(-n // s) for n, s in zip(shape[1:], shards[1:])]

    def files(self, row: int) -> Iterator[Path]:
        """The shard files of shard row ``row``."""
        for rest in itertools.product(*(range(n) for n in self._grid)):
            yield self.array_path.joinpath("c", str(row), *map(str, rest))

    def is_whole(self, row: int) -> bool:
        """True when every shard file of ``row`` has a whole index."""
        return all(shard_is_whole(p, self.chunks_per_shard) for p in self.files(row))

    def torn_shards(self) -> list[Path]:
        """Shard files on disk whose index is not whole (a killed writer's)."""
        root = self.array_path / "c"
        if not root.is_dir():
            return []
        torn = []
        for folder, _, names in os.walk(root):
            for name in names:
                path = root.joinpath(folder, name)
                if not shard_is_whole(path, self.chunks_per_shard):
                    torn.append(path)
        return torn


class ShardWatcher:
    """Tells when the shard rows given to acquire-zarr are whole on disk.

    ``given(position, rows)`` says acquire-zarr has every frame of the first
    ``rows`` shard rows of that position; a thread checks their files in
    order and calls ``on_whole(position, row)`` for each row found whole.
    """

    def __init__(
        self, arrays: list[ShardRows], on_whole: Callable[[int, int], None]
    ) -> None:
        self._arrays = arrays
        self._on_whole = on_whole
        self._given = [0] * len(arrays)
        self._whole = [0] * len(arrays)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="ome-writers-shard-watcher", daemon=True
        )
        self._thread.start()

    def given(self, position: int, rows: int) -> None:
        """acquire-zarr holds every frame of the first ``rows`` rows."""
        if rows > self._given[position]:
            self._given[position] = rows
            self._wake.set()

    def stop(self) -> None:
        """Stop checking (at close, or when the stream fails)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            due = [p for p, (g, w) in enumerate(zip(self._given, self._whole)) if g > w]
            if not due:
                self._wake.wait()
                self._wake.clear()
                continue
            if self._stop.wait(CHECK_INTERVAL_S):
                return
            for position in due:
                try:
                    self._check(position)
                except Exception:  # the journal keeps the frames: retried
                    _logger.exception("while checking acquire-zarr shard files")

    def _check(self, position: int) -> None:
        array = self._arrays[position]
        while self._whole[position] < self._given[position]:
            row = self._whole[position]
            if not array.is_whole(row):
                return
            self._on_whole(position, row)
            self._whole[position] = row + 1
