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

On S3 the same check reads the shard objects through the store abstraction
(``ZarrRoot.read_tail``: a HEAD, then a range GET of the index). acquire-zarr
uploads a shard once it is complete, in one PUT (or one multipart upload),
and an object appears only when its upload completes: an object that exists
holds its final bytes, and the index check confirms that they are a whole
shard. There are no torn objects for ``recover`` to remove. The checks run
in the watcher's thread, less often than on a disk (each is a request or
two), never on the append path.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import struct
import threading
from typing import TYPE_CHECKING

from ome_writers._backends.zarr._store import LocalRoot

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from ome_writers._backends.zarr._store import ZarrRoot

_logger = logging.getLogger(__name__)

#: seconds between two looks at a shard row acquire-zarr has been given
CHECK_INTERVAL_S = 0.05
#: the same for shard objects on S3 (each look is a request or two per shard)
REMOTE_CHECK_INTERVAL_S = 0.2
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


def index_bytes(chunks_per_shard: int) -> int:
    """Bytes of a shard's index with its checksum (16 a chunk, then 4)."""
    return 16 * chunks_per_shard + 4


def shard_is_whole(path: Path, chunks_per_shard: int) -> bool:
    """True when the shard file at ``path`` has a whole index (see the notes)."""
    nbytes = index_bytes(chunks_per_shard)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < nbytes:
                return False
            f.seek(size - nbytes)
            tail = f.read(nbytes)
    except FileNotFoundError:
        return False
    return tail_is_whole(size, tail, chunks_per_shard)


def tail_is_whole(size: int, tail: bytes, chunks_per_shard: int) -> bool:
    """True when ``tail``, the end of a shard of ``size`` bytes, is a whole index.

    The index's checksum matches and every entry points inside the shard.
    """
    index_size = 16 * chunks_per_shard
    if size < index_size + 4 or len(tail) != index_size + 4:
        return False
    index, stored = tail[:index_size], struct.unpack("<I", tail[index_size:])[0]
    if crc32c(index) != stored:
        return False
    data_end = size - index_size - 4
    entries = struct.unpack(f"<{2 * chunks_per_shard}Q", index)
    for offset, nbytes in zip(entries[::2], entries[1::2]):
        if offset == _EMPTY and nbytes == _EMPTY:
            continue
        if offset + nbytes > data_end:
            return False
    return True


class ShardRows:
    """The shards of one acquire-zarr array, by row along the first axis.

    Parameters
    ----------
    root
        The Zarr root (a directory or an S3 prefix).
    array_key
        The array's key under the root (its ``zarr.json`` and ``c/``).
    shape, shards, chunks
        Array, shard and inner chunk shapes in storage order (frame axes
        included); ``shape[0]`` is ignored (rows are counted, not bounded).
    """

    def __init__(
        self,
        root: ZarrRoot,
        array_key: str,
        shape: tuple[int, ...],
        shards: tuple[int, ...],
        chunks: tuple[int, ...],
    ) -> None:
        self.root = root
        self.array_key = array_key
        self.chunks_per_shard = math.prod(s // c for s, c in zip(shards, chunks))
        self._grid = [-(-n // s) for n, s in zip(shape[1:], shards[1:])]

    def keys(self, row: int) -> Iterator[str]:
        """The keys of the shards of shard row ``row``."""
        for rest in itertools.product(*(range(n) for n in self._grid)):
            yield "/".join([self.array_key, "c", str(row), *map(str, rest)])

    def is_whole(self, row: int) -> bool:
        """True when every shard of ``row`` exists with a whole index."""
        return all(self._shard_is_whole(key) for key in self.keys(row))

    def _shard_is_whole(self, key: str) -> bool:
        nbytes = index_bytes(self.chunks_per_shard)
        try:
            size, tail = self.root.read_tail(key, nbytes)
        except FileNotFoundError:
            return False
        return tail_is_whole(size, tail, self.chunks_per_shard)

    def torn_shards(self) -> list[Path]:
        """Shard files on disk whose index is not whole (a killed writer's).

        None on S3: an object appears only once its upload is complete.
        """
        if not isinstance(self.root, LocalRoot):
            return []
        root = self.root.path / self.array_key / "c"
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
        self,
        arrays: list[ShardRows],
        on_whole: Callable[[int, int], None],
        *,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._arrays = arrays
        self._on_whole = on_whole
        self._interval_s = interval_s
        self._failing = False
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
            if self._stop.wait(self._interval_s):
                return
            for position in due:
                try:
                    self._check(position)
                except Exception:  # the journal keeps the frames: retried
                    if not self._failing:  # once, not at every look
                        _logger.exception("while checking acquire-zarr shards")
                    self._failing = True
                else:
                    self._failing = False

    def _check(self, position: int) -> None:
        array = self._arrays[position]
        while self._whole[position] < self._given[position]:
            row = self._whole[position]
            if not array.is_whole(row):
                return
            self._on_whole(position, row)
            self._whole[position] = row + 1
