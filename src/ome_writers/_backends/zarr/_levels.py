"""The lower levels of an OME-Zarr pyramid: arrays ``1``, ``2``, ... of each image.

Each level is written by an engine of its own kind, a ``ChunkedZarrBackend``
(tensorstore, or zarr-python) made for settings whose frame (and, with
``downsample_z``, z) is that level's size: so a level gets what level 0 gets
from the same code: chunks clipped to the level (``chunk_geometry``), blocks
buffered when a chunk spans several planes, growth of an unbounded first
axis, the whole-file fast path of tensorstore, errors raised from ``close``.
Only the group metadata (``multiscales``, in ``_metadata``) and the journal
are level 0's alone.

Where the planes come from (never the appending thread's time, see
``_backends/_downsample``):

- tensorstore's fast path: the file writer thread halves the frame's
  chunk-order buffer into the shard buffers of every level and writes the
  shard files it fills (``_level_files``: no builder thread, no engine);
  where that does not apply (``downsample_z``, odd or unaligned chunks), it
  halves the buffer into level 1 for the builder (``on_written``);
- blocks (chunks spanning several planes), and frames written through the
  engine: the block, or a copy of the frame, goes to the builder's thread;
- acquire-zarr: its live-read copy of each frame (acquire-zarr writes level
  0; tensorstore or zarr-python, whichever is installed, the levels, from the
  same math as every other engine, so every engine writes the same levels).

Crash safety: levels are not journaled. ``recover`` finishes level 0, then
deletes the levels and builds them again from level 0, frame by frame, for
the frames written: every level is then what level 0 says.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._downsample import (
    PyramidBuilder,
    halved,
    reduce_chunk_order,
)
from ome_writers._backends.zarr._chunked import ChunkedZarrBackend, LiveArray
from ome_writers._backends.zarr._level_files import (
    LevelFiles,
    ShardFileLayout,
    layout_of,
    probe_index,
    tiles_fit,
)
from ome_writers._errors import BackendUnavailableError
from ome_writers._pyramid import Pyramid, levels_of, z_axis
from ome_writers._router import build_router

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ome_writers._backends.zarr._common import ZarrBackendBase
    from ome_writers._settings import AcquisitionSettings

Index = tuple[int, ...]


def pyramid_of(settings: AcquisitionSettings) -> Pyramid | None:
    """The format's pyramid, or None (none, or a single level)."""
    pyramid = getattr(settings.format, "pyramid", None)
    if pyramid is None:
        return None
    return pyramid if level_count(settings) > 1 else None


def level_count(settings: AcquisitionSettings) -> int:
    """Levels of ``settings``, the full resolution included (1 without a pyramid)."""
    return levels_of(settings)


def level_settings(settings: AcquisitionSettings, level: int) -> AcquisitionSettings:
    """``settings`` with the frame (and z, with ``downsample_z``) of ``level``."""
    pyramid = getattr(settings.format, "pyramid", None)
    assert isinstance(pyramid, Pyramid)
    factor = 2**level
    stored = settings.stored_dimensions
    zi = z_axis(stored) if pyramid.downsample_z else None
    z_name = None if zi is None else stored[zi].name
    frame_names = {d.name for d in settings.frame_dimensions}
    # A level's files hold as many bytes as level 0's: a level-k shard spans
    # 4**k planes along the innermost stored axis (one file per frame per
    # level would multiply the files, which cost more than their bytes here).
    # Only where level 0 is sharded by default (one shard per frame plane).
    innermost = None
    if stored and not any(d.shard_size_chunks for d in settings.dimensions):
        innermost = stored[-1].name
    dims = []
    for d in settings.dimensions:
        update: dict[str, Any] = {}
        if d.name in frame_names or d.name == z_name:
            count = -(-int(d.count or 0) // factor)
            chunk = None if d.chunk_size is None else min(d.chunk_size, count)
            update = {"count": count, "chunk_size": chunk}
        if innermost is not None and d.name in (*frame_names, innermost):
            count = int(update.get("count", d.count) or 0)
            chunk = int(update.get("chunk_size", d.chunk_size) or 0) or (
                count if d.name in frame_names else 1
            )
            whole = -(-count // chunk) if count else 4**level
            planes = 1 if d.name in frame_names else 4**level
            update["shard_size_chunks"] = max(
                1, whole if d.name in frame_names else min(planes, whole)
            )
        if update:
            d = d.model_copy(update=update)
        dims.append(d)
    return settings.model_copy(update={"dimensions": dims})


def level_path(array_path: Path, level: int) -> Path:
    """The array of ``level`` beside level 0's (``.../0`` -> ``.../<level>``)."""
    return array_path.with_name(str(level))


def _engine_class(parent: ZarrBackendBase) -> type[ChunkedZarrBackend]:
    if isinstance(parent, ChunkedZarrBackend):
        return type(parent)
    from ome_writers._backends._base import get_backend_class

    for name, module in (("tensorstore", "tensorstore"), ("zarr-python", "zarr")):
        if importlib.util.find_spec(module) is not None:
            cls = get_backend_class(name)
            assert issubclass(cls, ChunkedZarrBackend)
            return cls
    raise BackendUnavailableError(
        f"a pyramid with backend {parent.settings.format.backend!r} writes its "
        "lower levels through tensorstore or zarr-python, and neither is "
        "installed: pip install 'ome-writers[tensorstore]', or give no pyramid"
    )


class ZarrLevels:
    """Levels 1, 2, ... of every image of one output (see the module notes)."""

    def __init__(self, parent: ZarrBackendBase, pyramid: Pyramid) -> None:
        self.parent = parent
        self.pyramid = pyramid
        settings = parent.settings
        self.count = level_count(settings)
        stored = settings.stored_dimensions
        self.z_axis = z_axis(stored) if pyramid.downsample_z else None
        z_counts = []
        if self.z_axis is not None:
            nz = int(stored[self.z_axis].count or 0)
            z_counts = [-(-nz // 2**k) for k in range(self.count)]
        engine = _engine_class(parent)
        self.children: list[ChunkedZarrBackend] = []
        for level in range(1, self.count):
            child_settings = level_settings(settings, level)
            child = engine(child_settings, build_router(child_settings))
            self.children.append(child)
        #: planes of level-0 frames are ignored (recovery rebuilds the levels)
        self.recovering = False
        #: the writer threads' level files (``_level_files``), where they apply
        self.files: LevelFiles | None = None
        self.builder = PyramidBuilder(
            levels=self.count,
            method=pyramid.method,
            z_axis=self.z_axis,
            z_counts=z_counts,
            emit=self._emit,
        )

    # ------------------------------------------------------------ lifecycle

    def open(self, *, existing: bool = False) -> None:
        """Create (or, ``existing``, open) every level's arrays."""
        for level, child in enumerate(self.children, start=1):
            child.layout = self.parent.layout
            child.array_paths = [
                level_path(path, level) for path in self.parent.array_paths
            ]
            # planes of a level arrive in order, but a z plane waiting for its
            # partner can complete after later ones: no entry counts as passed
            child.buffer.mark_passed = False
            child._create_arrays(existing=existing)
        if not existing:
            self.files = self._level_files()

    def _level_files(self) -> LevelFiles | None:
        """Shard files written by level 0's writer threads, if they can be."""
        parent = self.parent
        if self.z_axis is not None or not isinstance(parent, ChunkedZarrBackend):
            return None
        source = parent.direct_frame_layout()
        if source is None:
            return None
        grid, chunk = source.grid, source.chunk
        layouts: list[ShardFileLayout] = []
        for child in self.children:
            layout = layout_of(child, source.dtype)
            if layout is None or not tiles_fit(grid, chunk, layout):
                return None
            metadata = child.array_metadata(child.geometry.shards)
            index = probe_index(layout, metadata, child.encode_file)
            if index is None:
                return None
            layout = replace(layout, index=index)
            layouts.append(layout)
            grid, chunk = layout.grid, layout.chunk
        return LevelFiles(
            layouts,
            [child.array_paths for child in self.children],
            self.pyramid.method,
        )

    def close(self, frames_written: int) -> None:
        """Finish every plane, give every level the final extent, close them."""
        if self.recovering:
            self.rebuild(frames_written)
            return
        try:
            self.builder.close()
            if self.files is not None:  # the shards that did not fill
                self.files.flush(self._write_to_engine)
        finally:
            self._close_children(frames_written)

    def abort(self) -> None:
        """Stop the builder and the level engines after a failed open."""
        try:
            self.builder.close()
        finally:
            for child in self.children:
                child._abort_engine()

    def _close_children(self, frames_written: int) -> None:
        router = self.parent.router
        errors: list[BaseException] = []
        for child in self.children:
            try:
                if router.is_unbounded:
                    steps = router.steps_started(frames_written)
                    if steps > child._extent0:
                        child._grow(steps)
                child._close_engine(frames_written)
            except BaseException as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    # -------------------------------------------------------------- planes

    def _emit(self, level: int, position: int, index: Index, plane: np.ndarray) -> None:
        if self.files is not None:
            full = self.files.put_plane(level, position, index, plane)
            if full is not None:
                self.files.write_full(full)
                return
        self._write_to_engine(level, position, index, plane)

    def _write_to_engine(
        self, level: int, position: int, index: Index, plane: np.ndarray
    ) -> None:
        self.children[level - 1].write_at(position, index, plane)

    def submit_frame(self, position: int, index: Index, frame: np.ndarray) -> None:
        """A level-0 frame (the builder's from now on: not to be changed)."""
        if not self.recovering:
            self.builder.submit(0, position, index, frame)

    def submit_block(self, position: int, origin: Index, data: np.ndarray) -> None:
        """Every plane of a written level-0 block (non-frame axes, then Y, X)."""
        if self.recovering:
            return
        for local in np.ndindex(*data.shape[:-2]):
            index = tuple(o + i for o, i in zip(origin, local))
            self.builder.submit(0, position, index, data[local])

    def rows_tap(
        self, position: int, index: Index, buffer: np.ndarray
    ) -> Callable[[int, int], None] | None:
        """What halves a frame's rows as its file is written (``_level_files``)."""
        if self.recovering or self.files is None:
            return None
        return self.files.rows_tap(position, index, buffer)

    def submit_chunk_order(
        self, position: int, index: Index, buffer: np.ndarray
    ) -> Callable[[], None] | None:
        """A frame in chunk order, still in use by its writer thread.

        With level files (``_level_files``), every level is made here, into
        its shard buffer; what is returned writes the shards that filled
        (called once the buffer is free). Otherwise, without
        ``downsample_z``, level 1 is made here and the builder makes the
        rest; with it, a copy of the frame goes on.
        """
        if self.recovering:
            return None
        files = self.files
        if files is not None:
            full, stopped, level = files.put_frame(position, index, buffer)
            if stopped is not None:  # the next level's shard is the builder's
                shape = self.level_frame_shape(level)
                plane = reduce_chunk_order(stopped, shape, self.pyramid.method)
                self.builder.submit(level + 1, position, index, plane)
            if not full:
                return None
            return lambda: files.write_full(full)
        frame_shape = self.parent.frame_shape
        if self.z_axis is None:
            plane = reduce_chunk_order(buffer, frame_shape, self.pyramid.method)
            self.builder.submit(1, position, index, plane)
            return None
        # a copy: the buffer goes back to its writer once this returns
        frame = np.array(buffer.transpose(0, 2, 1, 3), order="C", copy=True)
        frame = frame.reshape(frame_shape)
        self.builder.submit(0, position, index, frame)
        return None

    # ------------------------------------------------------------- recovery

    def rebuild(self, frames_written: int) -> None:
        """Every level again, from level 0 (closed) for the frames written."""
        for child in self.children:
            child._abort_engine()
            for path in child.array_paths:  # a directory, or keys in a bucket
                self.parent.store.remove_array(self.parent.key_of(path))
            child._create_arrays()
        parent = self.parent
        for frame_number in range(frames_written):
            position, index = parent.router.locate(frame_number)
            data = parent.position_data(position, frames_written)
            plane = np.ascontiguousarray(np.asarray(data[index]))
            self.builder.process(0, position, index, plane)
        self.builder.flush_pending()
        self._close_children(frames_written)

    # -------------------------------------------------------------- reading

    def shape(self, level: int, frames_written: int) -> tuple[int, ...]:
        """Storage shape of level ``level`` of each position."""
        shape = list(self.parent.logical_shape(frames_written))
        factor = 2**level
        axes = [len(shape) - 2, len(shape) - 1]
        if self.z_axis is not None:
            axes.append(self.z_axis)
        for axis in axes:
            shape[axis] = -(-shape[axis] // factor)
        return tuple(shape)

    def position_data(self, level: int, position: int, frames_written: int) -> Any:
        """The stored level (after close): a read-only array-like."""
        child = self.children[level - 1]
        return LiveArray(child, position, self.shape(level, frames_written))

    def level_frame_shape(self, level: int) -> tuple[int, int]:
        """(Y, X) of ``level``."""
        shape = self.parent.frame_shape
        for _ in range(level):
            shape = halved(shape)  # type: ignore[assignment]
        return shape
