"""Reading an OME-Zarr this package wrote back as an acquisition (for ``convert``).

Read-only: arrays are opened for reading (tensorstore when installed, else
zarr-python) and no file is ever written, so an output whose writer was
killed stays as it was (``recover`` is what finishes one).

Where things are (see ``_common``): the root group's
``attributes["ome_writers"]`` holds the ``settings``
(``AcquisitionSettings.model_dump(mode="json")``), ``frames_written``,
``complete`` and the ``global_namespaces``, each of them a top-level
attribute of the root; each image group's ``attributes["ome_writers"]
["frame_metadata"]`` holds its frames' records (written at close). The image
groups and arrays follow from the settings (``build_layout``).

Reading in blocks: a frame is read as part of the block of frames that share
its chunks along the non-frame axes (the whole frame along Y and X), and the
last few blocks are kept, so a chunk that spans several frames is read and
decoded once, not once per frame, while memory stays a few blocks whatever
the size of the array. Frames outside the array's current extent (an
interrupted unbounded array) read as zeros.

An ``s3://`` root is read through the store abstraction (``_store.S3Root``):
its JSON documents by key, its arrays by zarr-python over the same store
(``S3Root.zarr_store``), so endpoint, region and credentials come from
``storage_options`` and the AWS environment exactly as for the writer.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ome_writers._backends._registry import is_backend_available
from ome_writers._backends.zarr._describe import read_document
from ome_writers._backends.zarr._metadata import NAMESPACE, build_layout
from ome_writers._backends.zarr._store import LocalRoot, ZarrRoot, zarr_root
from ome_writers._errors import BackendUnavailableError, NotADatasetError
from ome_writers._router import FrameRouter, build_router
from ome_writers._settings import AcquisitionSettings
from ome_writers._urls import is_s3_url
from ome_writers._util import read_json_object

#: blocks kept per dataset (a block: one chunk deep along the non-frame axes)
CACHED_BLOCKS = 4
_RESERVED_RECORD_KEYS = ("frame_number", "storage_index")


@dataclass
class ZarrDataset:
    """An OME-Zarr output of this package, opened for reading.

    Attributes
    ----------
    root
        The root directory, or the ``s3://`` URL of the root.
    settings
        The acquisition's settings, as the writer recorded them.
    compression
        The compression the writer used (None: uncompressed).
    complete
        True once the writer closed it.
    frames_written
        The frame count the root group records (updated at close).
    global_metadata
        The ``set_global_metadata`` namespaces.
    frame_metadata
        Frame number -> the keys given to ``append`` (written at close).
    group_attributes
        Per position, its image group's attributes but the writer's own key
        (and, for the root, the ``set_global_metadata`` namespaces): ``"ome"``
        and whatever ``update_metadata`` added.
    """

    root: Path | str
    settings: AcquisitionSettings
    compression: str | None
    complete: bool
    frames_written: int
    global_metadata: dict[str, Any]
    frame_metadata: dict[int, dict[str, Any]]
    router: FrameRouter = field(repr=False)
    group_attributes: list[dict[str, Any]] = field(default_factory=list)
    _arrays: list[Any] = field(default_factory=list, repr=False)
    _chunks: tuple[int, ...] = ()
    _cache: OrderedDict[tuple[int, tuple[int, ...]], np.ndarray] = field(
        default_factory=OrderedDict, repr=False
    )

    @property
    def extents(self) -> list[tuple[int, ...]]:
        """Each position array's current shape (storage order, frame last)."""
        return [tuple(int(n) for n in a.shape) for a in self._arrays]

    def read_frame(self, frame_number: int) -> np.ndarray:
        """The frame's pixels (a view into a cached block: do not keep it)."""
        position, index = self.router.locate(frame_number)
        chunks = self._chunks
        origin = tuple(i - i % c for i, c in zip(index, chunks))
        key = (position, origin)
        block = self._cache.get(key)
        if block is None:
            block = self._read_block(position, origin)
            self._cache[key] = block
            while len(self._cache) > CACHED_BLOCKS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return block[tuple(i - o for i, o in zip(index, origin))]  # type: ignore[no-any-return]

    def _read_block(self, position: int, origin: tuple[int, ...]) -> np.ndarray:
        array = self._arrays[position]
        shape = [int(n) for n in array.shape]
        frame = self.settings.frame_shape
        stops = [min(o + c, n) for o, c, n in zip(origin, self._chunks, shape)]
        wanted = [o + c for o, c in zip(origin, self._chunks)]
        region = tuple(slice(o, s) for o, s in zip(origin, stops))
        if stops == wanted:
            return np.ascontiguousarray(_read(array, region))
        # past the array's extent (a partial chunk, an interrupted array): zeros
        block = np.zeros(
            (*(w - o for w, o in zip(wanted, origin)), *frame), self.settings.dtype
        )
        if all(o < s for o, s in zip(origin, stops)):
            block[tuple(slice(0, s - o) for o, s in zip(origin, stops))] = _read(
                array, region
            )
        return block

    def close(self) -> None:
        """Drop the arrays and the cached blocks."""
        self._arrays = []
        self._cache.clear()


def _read(array: Any, region: tuple[slice, ...]) -> np.ndarray:
    if hasattr(array, "read"):  # tensorstore
        return np.asarray(array[region].read().result())
    return np.asarray(array[region])


def is_zarr_dataset(path: Path) -> bool:
    """True when ``path`` is a Zarr group whose root carries our attributes."""
    document = read_json_object(path / "zarr.json")
    attributes = (document or {}).get("attributes")
    return isinstance(attributes, dict) and isinstance(attributes.get(NAMESPACE), dict)


def open_zarr_dataset(
    path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> ZarrDataset:
    """Open an OME-Zarr output of this package for reading.

    Parameters
    ----------
    path
        The root directory, or an ``s3://`` URL.
    storage_options
        For an ``s3://`` URL: ``OmeZarrFormat.storage_options`` (what is not
        given comes from the AWS environment).

    Raises
    ------
    NotADatasetError
        ``path`` is not an OME-Zarr root written by this package.
    BackendUnavailableError
        Neither tensorstore nor zarr-python is installed (on a disk), or
        zarr-python or s3fs is not (on S3).
    """
    text = str(path) if is_s3_url(str(path)) else os.fspath(path)
    store = zarr_root(text, storage_options if is_s3_url(text) else None)
    root: Path | str = store.describe() if store.is_remote else Path(path)
    document = read_document(store, "zarr.json")
    attributes = (document or {}).get("attributes")
    own = attributes.get(NAMESPACE) if isinstance(attributes, dict) else None
    if not isinstance(attributes, dict) or not isinstance(own, dict):
        raise NotADatasetError(
            f"{str(path)!r} is not an OME-Zarr written by ome_writers (its root "
            f"zarr.json has no {NAMESPACE!r} attributes)"
        )
    try:
        settings = AcquisitionSettings.model_validate(
            {**own["settings"], "compression": None, "overwrite": False}
        )
        settings.validate_stream_ready()
    except (KeyError, ValueError, TypeError) as exc:
        raise NotADatasetError(
            f"the settings recorded in {store.describe('zarr.json')!r} are not valid "
            f"({exc})"
        ) from None
    layout = build_layout(settings)
    frame_metadata: dict[int, dict[str, Any]] = {}
    namespaces = own.get("global_namespaces") or []
    group_attributes: list[dict[str, Any]] = []
    for node in layout.images:
        group = (
            read_document(store, f"{node.path}/zarr.json") if node.path else document
        )
        group_attrs = (group or {}).get("attributes") or {}
        own_group = group_attrs.get(NAMESPACE) or {}
        skipped = {NAMESPACE, *([] if node.path else namespaces)}
        group_attributes.append(
            {k: v for k, v in group_attrs.items() if k not in skipped}
        )
        for record in own_group.get("frame_metadata") or []:
            values = {k: v for k, v in record.items() if k not in _RESERVED_RECORD_KEYS}
            frame_metadata[int(record["frame_number"])] = values
    dataset = ZarrDataset(
        root=root,
        settings=settings,
        compression=own["settings"].get("compression"),
        complete=bool(own.get("complete")),
        frames_written=int(own.get("frames_written") or 0),
        global_metadata={n: attributes[n] for n in namespaces if n in attributes},
        frame_metadata=frame_metadata,
        router=build_router(settings),
        group_attributes=group_attributes,
    )
    keys = [node.array_path for node in layout.images]
    documents = [read_document(store, f"{key}/zarr.json") for key in keys]
    missing = [key for key, doc in zip(keys, documents) if doc is None]
    if missing:
        raise NotADatasetError(
            f"{store.describe(missing[0])!r} has no zarr.json: the array of a "
            "position is missing, so the dataset cannot be read"
        )
    if isinstance(store, LocalRoot):
        dataset._arrays = [_open_array(store.path / key) for key in keys]
    else:
        dataset._arrays = [_open_remote_array(store, key) for key in keys]
    dataset._chunks = _block_shape(documents[0], len(settings.storage_dimension_names))
    return dataset


def _block_shape(metadata: dict[str, Any] | None, index_axes: int) -> tuple[int, ...]:
    """The inner chunk shape along the non-frame axes (1 where unknown)."""
    metadata = metadata or {}
    grid = metadata.get("chunk_grid", {}).get("configuration", {})
    chunks = list(grid.get("chunk_shape") or [])
    for codec in metadata.get("codecs") or []:
        if codec.get("name") == "sharding_indexed":
            chunks = list(codec.get("configuration", {}).get("chunk_shape") or chunks)
    chunks = chunks[:index_axes]
    chunks += [1] * (index_axes - len(chunks))
    return tuple(max(int(c), 1) for c in chunks)


def _open_array(path: Path) -> Any:
    """The array at ``path``, read-only, through the first engine installed."""
    if is_backend_available("tensorstore"):
        import tensorstore as ts

        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
        try:
            return ts.open(spec, open=True, read=True, write=False).result()
        except ValueError as exc:
            raise NotADatasetError(f"cannot open {str(path)!r}: {exc}") from None
    if is_backend_available("zarr-python"):
        import zarr
        from zarr.storage import LocalStore

        try:
            return zarr.open_array(LocalStore(path, read_only=True), mode="r")
        except (ValueError, KeyError, FileNotFoundError) as exc:
            raise NotADatasetError(f"cannot open {str(path)!r}: {exc}") from None
    raise BackendUnavailableError(
        f"reading the OME-Zarr {str(path)!r} needs tensorstore or zarr-python, "
        "neither is installed; install one with: pip install "
        "'ome-writers[tensorstore]'"
    )


def _open_remote_array(store: ZarrRoot, key: str) -> Any:
    """The array at ``key`` of a remote root, read-only, by zarr-python."""
    if not is_backend_available("zarr-python"):
        raise BackendUnavailableError(
            f"reading the OME-Zarr {store.describe()!r} needs zarr-python, which "
            "is not installed; install it with: pip install 'ome-writers[s3]'"
        )
    import zarr

    try:
        return zarr.open_array(store.zarr_store(key, read_only=True), mode="r")
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise NotADatasetError(f"cannot open {store.describe(key)!r}: {exc}") from None


def block_bytes(dataset: ZarrDataset) -> int:
    """Bytes of one cached block."""
    frame = math.prod(dataset.settings.frame_shape)
    itemsize = np.dtype(dataset.settings.dtype).itemsize
    return math.prod(dataset._chunks) * frame * itemsize
