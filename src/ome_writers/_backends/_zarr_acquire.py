"""OME-Zarr through acquire-zarr.

acquire-zarr appends frames to each array in its storage order and buffers,
compresses (in its own thread pool) and writes whole chunks itself, so the
shared block buffer is not used. Frames arrive in acquisition order: when the
storage order differs, a frame that comes early waits in a reorder buffer
until every frame before it in storage order has been appended. acquire-zarr
copies each frame on ``append``, so the caller's buffer is never kept.

Its arrays are created as plain arrays (``is_ngff=False``) at the paths the
shared layer chose; the shared layer writes every group, again after
``close()``, because acquire-zarr resets parent group attributes when it
closes. acquire-zarr writes an array's ``zarr.json`` only at close when its
first dimension is unbounded.

Live reads: acquire-zarr cannot be read back while it streams (chunks are
written when complete, and an unbounded array has no ``zarr.json`` yet), so
while the stream is open, reads come from an in-memory copy of the frames in
storage order, kept up to ``MAX_MIRROR_BYTES`` in all. Past that, reading
during acquisition raises ``RuntimeError``; after ``close()`` reads come from
disk (through zarr-python or tensorstore, whichever is installed).
"""

from __future__ import annotations

import importlib.util
import math
from typing import TYPE_CHECKING, Any

import acquire_zarr as aqz
import numpy as np

from ome_writers._backends._zarr_common import ZarrBackendBase, write_error

if TYPE_CHECKING:
    from ome_writers._backends._base import FrameMetadata
    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

MAX_MIRROR_BYTES = 1024**3

_KINDS = {
    "time": aqz.DimensionType.TIME,
    "channel": aqz.DimensionType.CHANNEL,
    "space": aqz.DimensionType.SPACE,
}


class AcquireZarrBackend(ZarrBackendBase):
    """OME-Zarr v0.5 written with acquire-zarr."""

    def __init__(self, settings: AcquisitionSettings, router: FrameRouter) -> None:
        super().__init__(settings, router)
        npos = router.num_positions
        self._stream: Any = None
        self._keys: list[str] = []
        self._next = [0] * npos
        self._pending: list[dict[int, np.ndarray]] = [{} for _ in range(npos)]
        self._zeros = np.zeros(self.frame_shape, self.dtype)
        self._zeros.flags.writeable = False
        self._frame_bytes = self._zeros.nbytes
        self._mirror: list[np.ndarray] | None = None
        self._mirror_rows = 0
        self._closed = False
        self._readers: list[Any] | None = None

    # --------------------------------------------------------------- opening

    def _open_engine(self) -> None:
        assert self.layout is not None
        dims = self._dimensions()
        compression = self._compression()
        self._keys = [node.array_path for node in self.layout.images]
        arrays = [
            aqz.ArraySettings(
                output_key=key,
                dimensions=dims,
                data_type=self.dtype,
                compression=compression,
            )
            for key in self._keys
        ]
        try:
            self._stream = aqz.ZarrStream(
                aqz.StreamSettings(store_path=str(self.root), arrays=arrays)
            )
        except Exception as exc:
            raise write_error(self.root, "create acquire-zarr arrays in", exc) from exc
        self._init_mirror()

    def _dimensions(self) -> list[Any]:
        geometry = self.geometry
        block = geometry.block
        out = []
        for name, dim_type, size, chunk, shard in zip(
            self.dimension_names,
            [d.type for d in self._storage_dims()],
            geometry.shape,
            geometry.chunks,
            block,
        ):
            out.append(
                aqz.Dimension(
                    name=name,
                    kind=_KINDS.get(dim_type or "other", aqz.DimensionType.OTHER),
                    array_size_px=size,
                    chunk_size_px=chunk,
                    shard_size_chunks=max(shard // chunk, 1),
                )
            )
        return out

    def _storage_dims(self) -> list[Any]:
        by_name = {d.name: d for d in self.settings.dimensions}
        return [by_name[n] for n in self.dimension_names]

    def _compression(self) -> Any:
        name = self.settings.compression
        if name is None:
            return None
        if name == "zstd":
            return aqz.CompressionSettings(
                # present in acquire-zarr 0.10, missing from its type stubs
                compressor=aqz.Compressor.ZSTD,  # type: ignore[attr-defined]
                codec=aqz.CompressionCodec.ZSTD,  # type: ignore[attr-defined]
                level=1,
                shuffle=0,
            )
        codec = {"blosc-zstd": aqz.CompressionCodec.BLOSC_ZSTD}.get(
            name, aqz.CompressionCodec.BLOSC_LZ4
        )
        return aqz.CompressionSettings(
            compressor=aqz.Compressor.BLOSC1,
            codec=codec,
            level=1 if name == "blosc-zstd" else 5,
            shuffle=1,
        )

    def _init_mirror(self) -> None:
        npos = self.router.num_positions
        if self.router.is_unbounded:
            rows = self.router.frames_per_position_step
        else:
            rows = math.prod(self.router.storage_shape())
        if npos * rows * self._frame_bytes <= MAX_MIRROR_BYTES:
            self._mirror_rows = rows
            self._mirror = [
                np.zeros((rows, *self.frame_shape), self.dtype) for _ in range(npos)
            ]

    def _abort_engine(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    # --------------------------------------------------------------- writing

    def write(
        self, frame_number: int, frame: np.ndarray, metadata: FrameMetadata | None
    ) -> None:
        """Append the frame, or keep it until it is next in storage order."""
        position, offset = self.router.flat_offset(frame_number)
        kept = self._keep(position, offset, frame)
        if offset == self._next[position]:
            self._append(position, frame)
            self._drain(position)
        else:
            self._pending[position][offset] = (
                kept if kept is not None else np.array(frame, copy=True)
            )
        self.record_frame(frame_number, metadata)

    def skip(self, first_frame: int, count: int) -> None:
        """Skipped frames are appended (or kept) as zeros."""
        for n in range(first_frame, first_frame + count):
            position, offset = self.router.flat_offset(n)
            if offset == self._next[position]:
                self._append(position, self._zeros)
                self._drain(position)
            else:
                self._pending[position][offset] = self._zeros

    def _keep(self, position: int, offset: int, frame: np.ndarray) -> np.ndarray | None:
        """Copy the frame into the live-read mirror; the kept row, or None."""
        mirror = self._mirror
        if mirror is None:
            return None
        if offset >= self._mirror_rows:
            rows = max(offset + 1, 2 * self._mirror_rows)
            if len(mirror) * rows * self._frame_bytes > MAX_MIRROR_BYTES:
                self._mirror = None
                return None
            grown = []
            for old in mirror:
                new = np.zeros((rows, *self.frame_shape), self.dtype)
                new[: len(old)] = old
                grown.append(new)
            self._mirror, self._mirror_rows = grown, rows
            mirror = grown
        row: np.ndarray = mirror[position][offset]
        row[...] = frame
        return row

    def _append(self, position: int, frame: np.ndarray) -> None:
        try:
            self._stream.append(np.ascontiguousarray(frame), key=self._keys[position])
        except Exception as exc:
            raise write_error(
                self.array_paths[position], "append a frame to", exc
            ) from exc
        self._next[position] += 1

    def _drain(self, position: int) -> None:
        pending = self._pending[position]
        while pending and self._next[position] in pending:
            self._append(position, pending[self._next[position]])
            del pending[self._next[position] - 1]

    # --------------------------------------------------------------- reading

    def position_data(self, position_index: int, frames_written: int) -> Any:
        """The mirror while streaming; the arrays on disk after close."""
        shape = self.logical_shape(frames_written)
        if self._closed:
            return self._reader(position_index)
        mirror = self._mirror
        if mirror is None:
            raise RuntimeError(
                "acquire-zarr output cannot be read back during acquisition past "
                f"{MAX_MIRROR_BYTES:,} bytes (acquire-zarr writes whole chunks "
                "itself); read it after close(), or use the tensorstore or "
                "zarr-python backend for live access"
            )
        rows = math.prod(shape[:-2])
        view = mirror[position_index][:rows].reshape(shape)
        view.flags.writeable = False
        return view

    def _reader(self, position: int) -> Any:
        if self._readers is None:
            self._readers = [open_array(path) for path in self.array_paths]
        return self._readers[position]

    # --------------------------------------------------------------- closing

    def _close_engine(self, frames_written: int) -> None:
        stream = self._stream
        if stream is None:
            return
        try:
            for position, pending in enumerate(self._pending):
                if pending:
                    last = max(pending)
                    while self._next[position] <= last:
                        frame = pending.pop(self._next[position], self._zeros)
                        self._append(position, frame)
        finally:
            self._stream = None
            self._closed = True
            self._mirror = None
            try:
                stream.close()
            except Exception as exc:
                raise write_error(
                    self.root, "finish acquire-zarr output in", exc
                ) from exc


def open_array(path: Any) -> Any:
    """A read-only array for a finished Zarr v3 array, via zarr or tensorstore."""
    if importlib.util.find_spec("zarr") is not None:
        import zarr

        return zarr.open_array(str(path), mode="r")
    if importlib.util.find_spec("tensorstore") is not None:
        import tensorstore as ts

        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
        return ts.open(spec, open=True, read=True).result()
    raise RuntimeError(
        f"cannot read {str(path)!r} back: acquire-zarr writes only; install "
        "'ome-writers[zarr]' or 'ome-writers[tensorstore]' to read it"
    )
