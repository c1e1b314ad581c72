"""OME-Zarr through zarr-python (v3).

zarr-python writes synchronously, so blocks are written by a thread pool (one
worker per core) to use more than one core for compression; on S3, at least
``_REMOTE_WORKERS``, as many uploads in flight (with one per core, uploads
waited for each other's round trips: 0.50 of parallel PUTs on two
cores, 0.58 with eight, ``bench s3-zarr-python``, 2026-12-06). Two writes into
the same chunk or shard would race (each reads, changes and rewrites it), so a
write waits for an earlier one still in flight to the same shard. Resizing
waits for every write in flight, because zarr-python rewrites ``zarr.json``
and the array object's shape. Up to Python 3.12 that rewrite is made compact
(zarr's process-wide ``json_indent`` set to None for its duration, under a
lock): there, indented JSON is serialized in pure Python, which leaves
reference cycles for the garbage collector, whose passes stop every thread,
at every step of an unbounded stream. Zarr code of the application running
at that instant in another thread also writes compact JSON, and a
``zarr.config.set`` it makes then is undone when the resize ends.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from ome_writers._backends._workers import WorkerThreads
from ome_writers._backends.zarr._chunked import ChunkedZarrBackend
from ome_writers._backends.zarr._common import compression_codec

if TYPE_CHECKING:
    from collections.abc import Iterator

    from zarr.core.array_spec import ArrayConfigParams

    from ome_writers._backends.zarr._chunked import Index, WriteHandle


_COMPACT_JSON_LOCK = threading.Lock()
#: writer threads for an S3 root: concurrent uploads (one core each locally)
_REMOTE_WORKERS = 8


@contextlib.contextmanager
def _compact_json() -> Iterator[None]:
    """zarr writes compact JSON meanwhile (Python <= 3.12; see the notes)."""
    if sys.version_info >= (3, 13):  # json's C encoder indents too
        yield
        return
    # zarr's config is process-wide: one compact rewrite at a time
    with _COMPACT_JSON_LOCK, zarr.config.set({"json_indent": None}):
        yield


class ZarrPythonBackend(ChunkedZarrBackend):
    """OME-Zarr v0.5 written with zarr-python."""

    _arrays: list[Any]
    _pool: WorkerThreads | None = None
    #: a write failed: later ones are not tried (each would retry a dead
    #: server for seconds; ``ChunkedZarrBackend`` raises the first error)
    _write_failed = False

    def _create_arrays(self, *, existing: bool = False) -> None:
        workers = os.cpu_count() or 1
        if self.store.is_remote:  # uploads wait on the network, not a core
            workers = max(workers, _REMOTE_WORKERS)
        self._pool = WorkerThreads(workers, "ome-writers-zarr-python")
        self._last_write: dict[tuple[int, Index], concurrent.futures.Future[Any]] = {}
        if existing:
            self._arrays = [
                zarr.open_array(
                    self.store.zarr_store(self.key_of(path)), mode="r+", zarr_format=3
                )
                for path in self.array_paths
            ]
            return
        geometry = self.geometry
        compressors: list[Any] = []
        codec = compression_codec(self.settings.compression, self.dtype.itemsize)
        if codec is not None:
            config = dict(codec["configuration"])
            if codec["name"] == "blosc":
                compressors.append(
                    BloscCodec(
                        cname=config["cname"],
                        clevel=config["clevel"],
                        shuffle=config["shuffle"],
                        typesize=config["typesize"],
                    )
                )
            else:
                compressors.append(ZstdCodec(level=config["level"]))
        # On S3 every chunk is uploaded, also one equal to the fill value:
        # comparing each chunk with it first (zarr's default) is a pass over the
        # chunk on zarr's one event-loop thread, which also signs and sends
        # every upload; camera frames are almost never empty (readers see the
        # same pixels either way, as with tensorstore's direct files)
        array_config: ArrayConfigParams | None = (
            {"write_empty_chunks": True} if self.store.is_remote else None
        )
        self._arrays = [
            zarr.create_array(
                # a store, not a string: "::" or "s3://" in a local name must
                # not be read as an fsspec URL
                store=self.store.zarr_store(self.key_of(path)),
                shape=geometry.shape,
                dtype=self.dtype,
                chunks=geometry.chunks,
                shards=geometry.shards,
                compressors=compressors or None,
                dimension_names=self.dimension_names,
                fill_value=0,
                zarr_format=3,
                chunk_key_encoding={"name": "default", "separator": "/"},
                config=array_config,
            )
            for path in self.array_paths
        ]

    def _start_write(
        self, position: int, origin: Index, data: np.ndarray
    ) -> WriteHandle:
        assert self._pool is not None
        block = self.geometry.block
        key = (position, tuple(o // b for o, b in zip(origin, block)))
        before = self._last_write.get(key)
        region = tuple(slice(o, o + n) for o, n in zip(origin, data.shape))
        array = self._arrays[position]

        def run() -> None:
            if before is not None:
                concurrent.futures.wait([before])
            if self._write_failed:  # the first error is the one raised
                raise RuntimeError("not written: an earlier write failed")
            try:
                array[region] = data
            except BaseException:
                self._write_failed = True
                raise

        future = self._pool.submit(run)
        self._last_write[key] = future
        if len(self._last_write) > 4096:
            self._last_write = {
                k: f for k, f in self._last_write.items() if not f.done()
            }
        return future

    def _resize(self, extent0: int, *, shrink: bool = False) -> None:
        self._reap(wait=True, until_empty=True)
        self._raise_failure()
        with _compact_json():
            for array in self._arrays:
                array.resize((extent0, *array.shape[1:]))

    def _read(self, position: int, region: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self._arrays[position][region])

    def _finish(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _abort_engine(self) -> None:
        super()._abort_engine()
        self._finish()
