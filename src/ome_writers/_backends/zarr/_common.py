"""What every OME-Zarr backend shares: the output directory, groups and metadata.

An engine (tensorstore, acquire-zarr, zarr-python) only creates and fills the
arrays. This layer decides everything else, so the outputs of all engines have
the same hierarchy and attributes:

- ``open()`` refuses unsafe names and existing output *before* touching the
  disk (``overwrite=True`` replaces only a directory holding ``zarr.json``),
  then creates the arrays through the engine and writes every group.
- Group ``zarr.json`` files are written by this layer, atomically (temporary
  file and rename), at open, on ``set_global_metadata`` and at close. The close
  write comes *after* the engine has closed, because acquire-zarr resets
  parent group attributes when it closes. ``OME/METADATA.ome.xml`` of the
  bioformats2raw layout is written at the same times (see ``_zarr_ome_xml``).
- Per-frame metadata is kept in memory and written at close, to the image
  group of the frame's position under ``attributes["ome_writers"]
  ["frame_metadata"]``: one record per frame with ``frame_number``,
  ``storage_index`` and the keys given to ``append``. Global metadata goes to
  the root group, each namespace a top-level attribute (as ome-writers 0.3
  puts it), listed in ``attributes["ome_writers"]["global_namespaces"]``
  beside the settings (``"settings"``), ``"frames_written"`` and
  ``"complete"``.
- ``update_metadata`` replaces an image group's attributes but for the
  writer's own key; what it was given is kept and written by every later
  rewrite, so an update made before ``close()`` survives it.
- ``describe(path)`` summarises any OME-Zarr 0.5 output from its JSON alone.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._base import Backend, FrameMetadata
from ome_writers._backends.zarr._metadata import (
    NAMESPACE,
    ZarrLayout,
    build_layout,
    group_document,
    image_metadata,
    storage_dimensions,
)
from ome_writers._backends.zarr._ome_xml import MetadataXml, write_bytes_atomic
from ome_writers._backends.zarr._store import zarr_root
from ome_writers._errors import NotADatasetError, WriteError
from ome_writers._version import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from ome_writers._backends._journal import SlotFile
    from ome_writers._backends.zarr._levels import ZarrLevels
    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

#: compression name -> Zarr v3 codec (the JSON form tensorstore and zarr use)
_BLOSC_LEVEL = {"blosc-zstd": 1, "blosc-lz4": 5}
_ZSTD_LEVEL = 1
#: planes per channel read back at close to set a float image's display window
_WINDOW_PLANES = 8

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkGeometry:
    """Array shape, inner chunk shape and shard shape, in storage order.

    ``shape[0]`` is 0 for an unbounded first axis. ``shards`` is None when the
    array is not sharded. ``block`` is the region written at once: a shard, or
    a chunk without sharding.
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None

    @property
    def block(self) -> tuple[int, ...]:
        """The unit of writing: the shard shape, else the chunk shape."""
        return self.shards if self.shards is not None else self.chunks


def chunk_geometry(settings: AcquisitionSettings) -> ChunkGeometry:
    """Chunks from ``Dimension.chunk_size`` (default 1, full frame for Y/X).

    Shards from ``Dimension.shard_size_chunks``. When no dimension gives one
    and a frame spans several chunks, each shard holds one frame plane (one
    chunk deep along the other axes): one file per frame rather than one per
    chunk, which is what costs most when writing small chunks (a file creation
    each, ~0.1-1 ms), while readers still fetch single chunks. A shard equal
    to a chunk means no sharding, so ``shard_size_chunks=1`` turns this off.
    """
    dims = storage_dimensions(settings)
    shape, chunks, shards = [], [], []
    for i, d in enumerate(dims):
        count = d.count or 0
        default = count if i >= len(dims) - 2 else 1
        chunk = d.chunk_size or default
        if count:
            chunk = min(chunk, count)
        shape.append(count)
        chunks.append(max(chunk, 1))
        shards.append(chunks[-1] * (d.shard_size_chunks or 1))
    if not any(d.shard_size_chunks for d in dims):
        for axis in (-2, -1):  # the frame plane, rounded up to whole chunks
            shards[axis] = -(-shape[axis] // chunks[axis]) * chunks[axis]
    return ChunkGeometry(
        tuple(shape), tuple(chunks), tuple(shards) if shards != chunks else None
    )


def compression_codec(name: str | None, itemsize: int) -> dict[str, Any] | None:
    """The Zarr v3 codec for a compression name, or None for uncompressed."""
    if name is None:
        return None
    if name in _BLOSC_LEVEL:
        return {
            "name": "blosc",
            "configuration": {
                "cname": name.removeprefix("blosc-"),
                "clevel": _BLOSC_LEVEL[name],
                "shuffle": "shuffle",
                "typesize": itemsize,
                "blocksize": 0,
            },
        }
    if name == "zstd":
        return {
            "name": "zstd",
            "configuration": {"level": _ZSTD_LEVEL, "checksum": False},
        }
    raise ValueError(
        f"compression {name!r} is not an OME-Zarr codec; use one of "
        f"{[None, *_BLOSC_LEVEL, 'zstd']!r}"
    )


# ------------------------------------------------------------------- files


def prepare_output(root: Path, *, overwrite: bool) -> None:
    """Refuse or clear an existing ``root``; changes the disk only when allowed."""
    if not (root.exists() or root.is_symlink()):
        return
    if not overwrite:
        raise FileExistsError(
            f"output {str(root)!r} already exists; choose a new root_path or pass "
            "overwrite=True to replace an earlier Zarr output"
        )
    if root.is_symlink() or not root.is_dir() or not (root / "zarr.json").is_file():
        raise FileExistsError(
            f"output {str(root)!r} exists but is not a Zarr hierarchy (a directory "
            "holding zarr.json); refusing to delete it even with overwrite=True: "
            "choose another root_path"
        )
    shutil.rmtree(root)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically; ``WriteError`` on failure."""
    write_bytes_atomic(path, json.dumps(document, indent=2, allow_nan=False).encode())


#: how tensorstore reports the operating system's error in its messages
_TS_ERRNO = re.compile(r"os_error_code='?(\d+)")


def write_error(path: Path | str, action: str, exc: BaseException) -> WriteError:
    """A ``WriteError`` naming the path (or URL) and the engine's error.

    Its ``errno`` is the operating system's (e.g. ENOSPC), also when the
    engine reports it only in its message (tensorstore's ``ValueError``).
    """
    message = f"cannot {action} {str(path)!r}: {type(exc).__name__}: {exc}"
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None and (match := _TS_ERRNO.search(str(exc))):
        code = int(match[1])
    if code is not None:
        return WriteError(code, message, str(path))
    error = WriteError(message)
    error.filename = str(path)
    return error


# ------------------------------------------------------------------ backend


_ZARR_PYTHON_PARTIAL = re.compile(r".+\.[0-9a-f]{32}\.partial")


def _remove_partial_files(root: Path) -> None:
    """Delete the temporary files a killed writer of ours left in ``root``.

    Chunk files of the fast path (``*.ome-writers-partial``), zarr-python's
    (``<key>.<uuid>.partial``) and metadata files
    (``.zarr.json.<pid>.<id>.tmp``), each written under that name and then
    renamed: what is left under it was never part of the output.
    """
    from ome_writers._backends.zarr._direct import TEMP_SUFFIX

    for pattern in (f"*{TEMP_SUFFIX}", ".zarr.json.*.tmp"):
        for path in root.rglob(pattern):
            path.unlink(missing_ok=True)
    # zarr-python's own, "<key>.<uuid4 hex>.partial", renamed once complete
    for path in root.rglob("*.partial"):
        if _ZARR_PYTHON_PARTIAL.fullmatch(path.name):
            path.unlink(missing_ok=True)


class ZarrBackendBase(Backend):
    """The engine-independent part of every OME-Zarr backend.

    Subclasses implement ``_open_engine`` (create one array per position at
    ``array_paths``), ``_close_engine`` and ``_abort_engine``, plus the
    frame-level methods of ``Backend``.
    """

    def __init__(self, settings: AcquisitionSettings, router: FrameRouter) -> None:
        super().__init__(settings, router)
        # one path rule for every engine: ".." resolved here (tensorstore's
        # file driver refuses it, the others accept it)
        self.store = zarr_root(
            settings.output_path, getattr(settings.format, "storage_options", None)
        )
        #: the local directory; for a remote root, the local path named after
        #: it that its journal is kept beside (``_store.remote_journal_output``)
        self.root = self.store.journal_output
        self.dtype = np.dtype(settings.dtype)
        self.frame_shape = settings.frame_shape
        #: the journal's copies of frames not yet in the output (``copy_to_journal``)
        self.journal_frames: SlotFile | None = None
        self.geometry = chunk_geometry(settings)
        self.dimension_names = [d.name for d in storage_dimensions(settings)]
        self.layout: ZarrLayout | None = None
        self.array_paths: list[Path] = []
        self._frame_records: list[list[dict[str, Any]]] = [
            [] for _ in range(router.num_positions)
        ]
        self._global_metadata: dict[str, Any] = {}
        self._metadata_lock = threading.Lock()
        self._created_root = False
        self._frames_written = 0
        self._complete = False
        self._metadata_xml: MetadataXml | None = None
        #: attributes given to update_metadata, per position (image group)
        self._user_attributes: dict[int, dict[str, Any]] = {}
        #: float data: each position's channel (min, max), measured at close
        self._windows: dict[int, list[tuple[float, float]]] = {}
        #: levels 1, 2, ... of a pyramid (``_levels``); None without one
        self.levels: ZarrLevels | None = None

    @property
    def journal_output(self) -> Path:
        """The root: a journal beside it keeps what a killed writer had not done."""
        return self.root

    def key_of(self, path: Path) -> str:
        """The key of ``path`` (under ``root``) relative to the Zarr root."""
        return path.relative_to(self.root).as_posix()

    def where(self, path: Path) -> str:
        """``path`` (under ``root``) as messages name it: a path or a URL."""
        return self.store.describe(self.key_of(path))

    # ------------------------------------------------------------- engine hooks

    def _open_engine(self) -> None:
        raise NotImplementedError

    def _close_engine(self, frames_written: int) -> None:
        raise NotImplementedError

    def _abort_engine(self) -> None:
        """Release engine resources after a failed open; default nothing."""

    # ------------------------------------------------------------------ opening

    def open(self) -> None:
        """Check names and the output path, then create arrays and groups."""
        layout = build_layout(self.settings)
        self.store.prepare(overwrite=self.settings.overwrite)
        if not self.store.is_remote:
            try:
                self.root.mkdir(parents=True)
            except OSError as exc:
                raise write_error(self.root, "create", exc) from exc
        self._created_root = True
        self.layout = layout
        self.array_paths = [self.root / node.array_path for node in layout.images]
        self._metadata_xml = MetadataXml.for_layout(
            self.settings, self.router, self.root, layout, store=self.store
        )
        self._open_engine()
        self._open_levels(existing=False)
        self.write_groups()

    def reopen(self) -> None:
        """Open the output of an interrupted acquisition, to finish it."""
        if not self.store.exists("zarr.json"):
            raise NotADatasetError(
                f"{self.store.describe()!r} has no zarr.json: the interrupted "
                "acquisition's "
                "output is missing, so there is nothing to recover"
            )
        layout = build_layout(self.settings)
        self.layout = layout
        self.array_paths = [self.root / node.array_path for node in layout.images]
        missing = [
            node.array_path
            for node in layout.images
            if not self.store.exists(f"{node.array_path}/zarr.json")
        ]
        if missing:
            raise NotADatasetError(
                f"{self.store.describe(missing[0])!r} has no zarr.json: this is not "
                "the output the interrupted acquisition began"
            )
        self._metadata_xml = MetadataXml.for_layout(
            self.settings, self.router, self.root, layout, store=self.store
        )
        if not self.store.is_remote:  # objects are never partial
            _remove_partial_files(self.root)
        self._reopen_engine()
        self._open_levels(existing=True)
        if self.levels is not None:
            self.levels.recovering = True  # rebuilt from level 0 at close

    def _reopen_engine(self) -> None:
        """Open the engine on the existing arrays."""
        raise NotImplementedError(f"{type(self).__name__} cannot reopen arrays")

    def restore_frame_metadata(
        self, frame_number: int, metadata: FrameMetadata
    ) -> None:
        """Keep the metadata of a frame already in the output."""
        self.record_frame(frame_number, metadata)

    def abort(self) -> None:
        """Release the engine and remove what ``open`` created."""
        try:
            try:
                if self.levels is not None:
                    self.levels.abort()
            finally:
                self._abort_engine()
        finally:
            if self._created_root:
                self.store.remove_written()

    # ----------------------------------------------------------------- metadata

    def copy_to_journal(self, frame_number: int, frame: np.ndarray) -> int:
        """Copy a frame into a slot of the journal's ``frames`` file; the slot.

        The file is made on first use. The caller frees the slot once the
        frame is in the output (``SlotFile.release``).
        """
        assert self.journal is not None
        slots = self.journal_frames
        if slots is None:
            nbytes = math.prod(self.frame_shape) * self.dtype.itemsize
            slots = self.journal.slot_file("frames", nbytes, {"order": "frames"})
            self.journal_frames = slots
        data = np.ascontiguousarray(frame, dtype=self.dtype.newbyteorder("<"))
        slot: int = slots.take()
        try:
            slots.put(slot, frame_number, data)
        except OSError as exc:
            slots.forget(slot)
            raise write_error(self.journal.path, "journal a frame in", exc) from exc
        return slot

    def record_frame(self, frame_number: int, metadata: FrameMetadata | None) -> None:
        """Keep a frame's metadata for its image group (written at close)."""
        if metadata is None:
            return
        position, storage_index = self.router.locate(frame_number)
        record = {"frame_number": frame_number, "storage_index": list(storage_index)}
        record.update(metadata.values)
        with self._metadata_lock:
            self._frame_records[position].append(record)

    def set_global_metadata(self, metadata: dict[str, Any], *, closed: bool) -> None:
        """Keep the namespaces and rewrite the root group now (also after close).

        If that fails, the earlier namespaces stay, as in the stream.
        """
        previous, self._global_metadata = self._global_metadata, metadata
        try:
            self.write_root_group()
        except OSError:
            self._global_metadata = previous
            raise
        # after close the final XML has every plane; keep them
        self.write_metadata_xml(with_planes=closed)

    def array_metadata(self, shards: tuple[int, ...] | None) -> dict[str, Any]:
        """The Zarr v3 fields of an array's ``zarr.json`` for this acquisition.

        Chunks and codecs from the settings, sharded with ``shards`` as the
        chunk grid when given (an engine may shard when the geometry does not).
        """
        geometry = self.geometry
        little = {"name": "bytes", "configuration": {"endian": "little"}}
        codecs: list[dict[str, Any]] = [little]
        codec = compression_codec(self.settings.compression, self.dtype.itemsize)
        if codec is not None:
            codecs.append(codec)
        if shards is not None:
            sharding = {
                "chunk_shape": list(geometry.chunks),
                "codecs": codecs,
                "index_codecs": [little, {"name": "crc32c"}],
                "index_location": "end",
            }
            codecs = [{"name": "sharding_indexed", "configuration": sharding}]
        return {
            "shape": list(geometry.shape),
            "data_type": self.dtype.name,
            "dimension_names": list(self.dimension_names),
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": list(shards or geometry.chunks)},
            },
            "chunk_key_encoding": {
                "name": "default",
                "configuration": {"separator": "/"},
            },
            "codecs": codecs,
            "fill_value": 0,
        }

    def _root_namespace(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "settings": self.settings.model_dump(mode="json"),
            # which dimensions each stored axis holds (a folded camera axis)
            "storage_groups": self.settings.storage_groups,
            # set_global_metadata's namespaces, each a top-level key too
            "global_namespaces": sorted(self._global_metadata),
            "frames_written": self._frames_written,
            "complete": self._complete,
        }

    def _image_attributes(self, position: int) -> dict[str, Any]:
        assert self.layout is not None
        node = self.layout.images[position]
        own: dict[str, Any] = {"position": node.position.model_dump(mode="json")}
        with self._metadata_lock:
            records = list(self._frame_records[position])
        if records:
            own["frame_metadata"] = records
        if node.path == "":
            own.update(self._root_namespace())
            # the namespaces of set_global_metadata, as top-level keys
            return {
                **self._public_attributes(position),
                **self._global_metadata,
                NAMESPACE: own,
            }
        return {**self._public_attributes(position), NAMESPACE: own}

    def _public_attributes(self, position: int) -> dict[str, Any]:
        """An image group's attributes but the writer's own key (user's included)."""
        assert self.layout is not None
        user = self._user_attributes.get(position, {})
        if "ome" in user:
            ome = user["ome"]
        else:
            node = self.layout.images[position]
            ome = image_metadata(self.settings, node, self._windows.get(position))
        return {"ome": ome, **{k: v for k, v in user.items() if k != "ome"}}

    def _group_keys(self) -> dict[str, int]:
        assert self.layout is not None
        return {node.path or ".": p for p, node in enumerate(self.layout.images)}

    def get_metadata(self) -> dict[str, dict[str, Any]]:
        """Image group path -> a copy of its attributes (not ``ome_writers``)."""
        return {
            key: json.loads(json.dumps(self._public_attributes(p)))
            for key, p in self._group_keys().items()
        }

    def update_metadata(self, metadata: Mapping[Any, Any], *, closed: bool) -> None:
        """Check every group's attributes first, then rewrite those groups."""
        keys = self._group_keys()
        checked: dict[int, dict[str, Any]] = {}
        for key, attributes in dict(metadata).items():
            if key not in keys:
                raise KeyError(
                    f"{key!r} is not an image group of this output; its groups "
                    f"are {sorted(keys)!r} (the keys of get_metadata())"
                )
            if not isinstance(attributes, dict) or not isinstance(
                attributes.get("ome", {}), dict
            ):
                raise TypeError(
                    f"group {key!r}: attributes must be a dict (and its 'ome' a "
                    f"dict), got {attributes!r}"
                )
            if NAMESPACE in attributes:
                raise ValueError(
                    f"group {key!r}: the attribute {NAMESPACE!r} is the writer's own "
                    "(settings, per-frame metadata) and cannot be set; put your "
                    "metadata under another key, e.g. your software's name"
                )
            try:
                checked[keys[key]] = json.loads(json.dumps(attributes, allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"group {key!r}: attributes are not JSON-serializable ({exc}); "
                    "use str, int, float, bool, None, lists and dicts"
                ) from None
        assert self.layout is not None
        previous = dict(self._user_attributes)
        self._user_attributes.update(checked)
        try:
            for position in checked:
                self._write_image_group(position)
        except BaseException:
            self._user_attributes = previous
            raise

    def write_root_group(self) -> None:
        """Rewrite only the root ``zarr.json``."""
        assert self.layout is not None
        if self.layout.kind == "image":
            attributes = self._image_attributes(0)
        else:
            attributes = {
                "ome": self.layout.groups[""],
                **self._global_metadata,
                NAMESPACE: self._root_namespace(),
            }
        self.store.write_json("zarr.json", group_document(attributes))

    def _write_image_group(self, position: int) -> None:
        """Rewrite one image group's ``zarr.json`` (the root's, for an image)."""
        assert self.layout is not None
        path = self.layout.images[position].path
        if not path:
            self.write_root_group()
            return
        self.store.write_json(
            f"{path}/zarr.json",
            group_document(self._image_attributes(position)),
        )

    def write_groups(self) -> None:
        """Write every group ``zarr.json`` (images, root, rows, wells, ``OME``)."""
        assert self.layout is not None
        for path, ome in self.layout.groups.items():
            if path:
                attributes = {} if ome is None else {"ome": ome}
                self.store.write_json(f"{path}/zarr.json", group_document(attributes))
        for position, node in enumerate(self.layout.images):
            if node.path:
                self._write_image_group(position)
        self.write_root_group()
        self.write_metadata_xml(with_planes=True)

    def write_metadata_xml(self, *, with_planes: bool) -> None:
        """Rewrite ``OME/METADATA.ome.xml`` (bioformats2raw layout only)."""
        if self._metadata_xml is None:
            return
        records = None
        if with_planes:
            with self._metadata_lock:
                records = [list(r) for r in self._frame_records]
        self._metadata_xml.write(
            frames_written=self._frames_written,
            complete=self._complete,
            global_metadata=self._global_metadata,
            frame_records=records,
        )

    # ------------------------------------------------------------------ closing

    def close(self, frames_written: int) -> None:
        """Finish the engine, then write the final metadata of every group."""
        self._frames_written = frames_written
        try:
            try:
                self._close_engine(frames_written)
            finally:
                if self.levels is not None:
                    self.levels.close(frames_written)
        except BaseException:
            try:
                self.write_groups()  # keep what was written describable
            except Exception:
                _logger.exception("while writing metadata after a failed close")
            raise
        self._complete = True
        if self.dtype.kind == "f":
            self._windows = self._measure_windows(frames_written)
        self.write_groups()
        if getattr(self.settings.format, "fsync", "never") != "never":
            try:
                self.store.sync()
            except OSError as exc:
                raise write_error(self.root, "flush to the device", exc) from exc

    def _open_levels(self, *, existing: bool) -> None:
        """Create (or open) the lower pyramid levels, if the format asks for any."""
        from ome_writers._backends.zarr._levels import ZarrLevels, pyramid_of

        pyramid = pyramid_of(self.settings)
        if pyramid is not None:
            self.levels = ZarrLevels(self, pyramid)
            self.levels.open(existing=existing)

    def level_data(self, level: int, position_index: int, frames_written: int) -> Any:
        """Level ``level`` of one position as stored (level 0: ``position_data``)."""
        if level == 0:
            return self.position_data(position_index, frames_written)
        assert self.levels is not None
        return self.levels.position_data(level, position_index, frames_written)

    def _measure_windows(
        self, frames_written: int
    ) -> dict[int, list[tuple[float, float]]]:
        """Each position's channel (min, max) of finite values, from a sample.

        Up to ``_WINDOW_PLANES`` planes per channel, evenly spread over the
        other axes, are read back: enough for a display window, and bounded
        whatever the size of the acquisition.
        """
        dims = storage_dimensions(self.settings)[:-2]
        channel_axis = next(
            (i for i, d in enumerate(dims) if d.type == "channel"), None
        )
        if channel_axis is None:
            return {}
        out: dict[int, list[tuple[float, float]]] = {}
        for position in range(self.router.num_positions):
            data = self.position_data(position, frames_written)
            shape = tuple(data.shape[:-2])
            others = [n for i, n in enumerate(shape) if i != channel_axis]
            total = math.prod(others)
            picks = sorted(
                {int(k) for k in np.linspace(0, max(total - 1, 0), _WINDOW_PLANES)}
            )
            ranges = []
            for channel in range(shape[channel_axis]):
                low, high = math.inf, -math.inf
                for flat in picks if total else []:
                    index = [int(i) for i in np.unravel_index(flat, others)]
                    index.insert(channel_axis, channel)
                    plane = np.asarray(data[tuple(index)])
                    finite = plane[np.isfinite(plane)]
                    if finite.size:
                        low = min(low, float(finite.min()))
                        high = max(high, float(finite.max()))
                ranges.append((low, high) if low <= high else (0.0, 1.0))
            out[position] = ranges
        return out

    def logical_shape(self, frames_written: int) -> tuple[int, ...]:
        """Storage-order shape of each position after ``frames_written`` frames."""
        return self.router.storage_shape(frames_written) + self.frame_shape
