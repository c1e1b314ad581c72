"""``ome-writers info`` for OME-Zarr: a ``DatasetInfo`` from the JSON alone.

Kept apart from the writer: it reads only what an output says about itself
(group and array ``zarr.json``), so it describes interrupted runs and files of
other writers the same way, and never opens an engine.

Where this package wrote the output, the settings it keeps in the root's
``ome_writers`` attribute say what the OME-Zarr metadata cannot: which axis
is unbounded, the acquisition order, scales and units exactly as declared
(OME-Zarr writes a scale of 1 where none was given) and the positions' stage
coordinates. Another writer's output is described from the NGFF metadata.

A root on S3 is described the same way: the documents are read by key
through the store abstraction (``_store.ZarrRoot``), so the same code serves
a directory and a prefix; its size is the sum of the object sizes the
listing gives (objects have no allocated blocks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ome_writers._backends._info import (
    OUR_WRITER,
    DatasetInfo,
    DimensionInfo,
    PlateInfo,
    PositionInfo,
    declared_frames,
    disk_bytes,
    unit_name,
)
from ome_writers._backends.zarr._metadata import NAMESPACE
from ome_writers._backends.zarr._store import LocalRoot, S3Root

if TYPE_CHECKING:
    from ome_writers._backends.zarr._store import ZarrRoot


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read_document(store: ZarrRoot, key: str) -> dict[str, Any] | None:
    """The JSON object at ``key`` of ``store``; None if absent or not an object."""
    try:
        data = json.loads(store.read_bytes(key))
    except (FileNotFoundError, ValueError):
        return None
    except OSError:
        if store.is_remote:  # refused, unreachable: not "no such dataset"
            raise
        return None
    return data if isinstance(data, dict) else None


def _top_names(store: ZarrRoot) -> list[str]:
    """The names directly under the root (folders or key prefixes)."""
    if isinstance(store, S3Root):
        return sorted({key.split("/", 1)[0] for key in store.list_keys()})
    if isinstance(store, LocalRoot):
        return [p.name for p in store.path.iterdir()]
    return []


def _image_paths(store: ZarrRoot, ome: dict[str, Any]) -> list[str] | None:
    if "multiscales" in ome:
        return [""]
    if "bioformats2raw.layout" in ome:
        series = (read_document(store, "OME/zarr.json") or {}).get("attributes", {})
        names = series.get("ome", {}).get("series")
        if isinstance(names, list):
            return [str(n) for n in names]
        return sorted((n for n in _top_names(store) if n.isdigit()), key=int)
    if "plate" in ome:
        out = []
        for well in ome["plate"].get("wells", []):
            doc = read_document(store, f"{well['path']}/zarr.json") or {}
            images = doc.get("attributes", {}).get("ome", {}).get("well", {})
            out += [f"{well['path']}/{i['path']}" for i in images.get("images", [])]
        return out
    return None


def _codec_names(codecs: list[dict[str, Any]]) -> tuple[str, tuple[int, ...] | None]:
    """(compression name, inner chunk shape if sharded)."""
    inner: tuple[int, ...] | None = None
    names = []
    for codec in codecs:
        config = codec.get("configuration", {})
        if codec.get("name") == "sharding_indexed":
            inner = tuple(config.get("chunk_shape", ()))
            sub, _ = _codec_names(config.get("codecs", []))
            names.append(sub)
        elif codec.get("name") == "blosc":
            names.append(f"blosc-{config.get('cname')}")
        elif codec.get("name") not in ("bytes", "crc32c", "transpose"):
            names.append(str(codec.get("name")))
    named = [n for n in names if n != "none"]
    return (", ".join(named) if named else "none"), inner


def _scales(dataset: dict[str, Any]) -> list[Any]:
    for transform in dataset.get("coordinateTransformations") or []:
        if isinstance(transform, dict) and transform.get("type") == "scale":
            return list(transform.get("scale") or [])
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _dimensions(
    multiscale: dict[str, Any],
    array_doc: dict[str, Any],
    declared: dict[str, dict[str, Any]],
) -> tuple[list[DimensionInfo], str]:
    """The stored axes of the first array, and its compression."""
    shape = [int(n) for n in array_doc.get("shape", ())]
    axes = [_dict(a) for a in multiscale.get("axes") or []]
    names = array_doc.get("dimension_names") or [a.get("name") for a in axes]
    datasets = multiscale.get("datasets") or [{}]
    scales = _scales(_dict(datasets[0]))
    grid = _dict(_dict(array_doc.get("chunk_grid")).get("configuration"))
    outer = list(grid.get("chunk_shape") or ())
    compression, inner = _codec_names(array_doc.get("codecs", []))
    dims = []
    for i, size in enumerate(shape):
        name = str(names[i]) if i < len(names) and names[i] else f"dim_{i}"
        axis = axes[i] if i < len(axes) else {}
        chunk = int(outer[i]) if i < len(outer) else None
        shard = None
        if inner is not None and i < len(inner):
            chunk, shard = int(inner[i]), chunk
        if name in declared:  # ours: as declared
            spec = declared[name]
            unit, scale = unit_name(spec.get("unit")), _number(spec.get("scale"))
            kind = spec.get("type")
            unbounded = i == 0 and spec.get("count") is None
        else:
            unit, kind, unbounded = unit_name(axis.get("unit")), axis.get("type"), False
            scale = _number(scales[i]) if i < len(scales) else None
        dims.append(
            DimensionInfo(
                name=name,
                type=None if kind is None else str(kind),
                size=size,
                unbounded=unbounded,
                unit=unit,
                scale=scale,
                chunk=chunk,
                shard=shard,
            )
        )
    return dims, compression


def _position(
    image_path: str,
    image_attrs: dict[str, Any],
    multiscale: dict[str, Any],
    array_doc: dict[str, Any] | None,
    array_path: str,
    default: dict[str, Any],
) -> PositionInfo:
    own = _dict(_dict(image_attrs.get(NAMESPACE)).get("position")) or default
    name = own.get("name") or multiscale.get("name") or image_path or "0"
    row = column = None
    parts = image_path.split("/")
    if len(parts) == 3:  # a plate's field: <row>/<column>/<field>
        row = own.get("plate_row", parts[0])
        column = own.get("plate_column", parts[1])
    return PositionInfo(
        name=str(name),
        path=array_path,
        shape=None
        if array_doc is None
        else tuple(int(n) for n in array_doc.get("shape", ())),
        x_um=_number(own.get("x_coord")),
        y_um=_number(own.get("y_coord")),
        z_um=_number(own.get("z_coord")),
        plate_row=None if row is None else str(row),
        plate_column=None if column is None else str(column),
    )


def _plate(ome: dict[str, Any]) -> PlateInfo | None:
    plate = ome.get("plate")
    if not isinstance(plate, dict):
        return None
    return PlateInfo(
        name=None if plate.get("name") is None else str(plate["name"]),
        rows=[str(_dict(r).get("name")) for r in plate.get("rows") or []],
        columns=[str(_dict(c).get("name")) for c in plate.get("columns") or []],
        wells=len(plate.get("wells") or []),
    )


def _key(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def describe(path: Path) -> DatasetInfo | None:
    """Describe an OME-Zarr output, or None if ``path`` is not one.

    Only the JSON documents are read, so no Zarr engine is needed.
    """
    root = Path(path)
    return describe_store(LocalRoot(root), str(path))


def describe_store(store: ZarrRoot, path_text: str) -> DatasetInfo | None:
    """Describe the OME-Zarr at ``store`` (a directory or an S3 prefix).

    Parameters
    ----------
    store
        The root to read the JSON documents from, by key.
    path_text
        The dataset's path or URL, as the description names it.

    Returns
    -------
    DatasetInfo or None
        None when the root is not an OME-Zarr.
    """
    root_doc = read_document(store, "zarr.json")
    if root_doc is None or root_doc.get("node_type") != "group":
        return None
    attributes = _dict(root_doc.get("attributes"))
    ome = attributes.get("ome")
    if not isinstance(ome, dict):
        return None
    image_paths = _image_paths(store, ome)
    if image_paths is None:
        return None
    layout = (
        "plate"
        if "plate" in ome
        else "bioformats2raw"
        if "bioformats2raw.layout" in ome
        else "image"
    )
    own = _dict(attributes.get(NAMESPACE))
    settings = _dict(own.get("settings"))
    declared_dims = [_dict(d) for d in settings.get("dimensions") or []]
    declared = {str(d.get("name")): d for d in declared_dims}
    declared_positions = [
        _dict(c)
        for d in declared_dims
        if d.get("type") == "position"
        for c in d.get("coords") or []
    ]
    dims: list[DimensionInfo] = []
    dtype = ""
    compression = "none"
    levels = 1
    channels: list[str] = []
    positions = []
    for index, image_path in enumerate(image_paths):
        image_doc = read_document(store, _key(image_path, "zarr.json")) or {}
        image_attrs = _dict(image_doc.get("attributes"))
        image_ome = _dict(image_attrs.get("ome"))
        multiscale = _dict((image_ome.get("multiscales") or [{}])[0])
        datasets = multiscale.get("datasets") or [{"path": "0"}]
        level_path = str(_dict(datasets[0]).get("path", "0"))
        array_path = f"{image_path}/{level_path}" if image_path else level_path
        array_doc = read_document(store, _key(array_path, "zarr.json"))
        default = (
            declared_positions[index]
            if len(declared_positions) == len(image_paths)
            else {}
        )
        positions.append(
            _position(
                image_path, image_attrs, multiscale, array_doc, array_path, default
            )
        )
        if array_doc is not None and not dims:
            dims, compression = _dimensions(multiscale, array_doc, declared)
            dtype = str(array_doc.get("data_type", ""))
            levels = len(datasets)
            omero = _dict(image_ome.get("omero"))
            channels = [
                str(_dict(c).get("label", i))
                for i, c in enumerate(omero.get("channels") or [])
            ]
    if declared_positions:  # ours: in position order, as the other formats
        order = {str(p.get("name")): i for i, p in enumerate(declared_positions)}
        positions.sort(key=lambda p: order.get(p.name, len(order)))
    creator = _dict(attributes.get("_creator"))
    if own:
        writer: str | None = OUR_WRITER
        version = own.get("version")
        engine = _dict(settings.get("format")).get("backend")
        counts = [d.get("count") for d in declared_dims[:-2]]
        total = declared_frames(counts) if declared_dims else None
        written = own.get("frames_written")
        acquisition = [str(d.get("name")) for d in declared_dims] or None
    else:
        writer = None if not creator.get("name") else str(creator["name"])
        version, engine, written, acquisition = creator.get("version"), None, None, None
        per_position = declared_frames(d.size for d in dims[:-2]) if dims else None
        total = None if per_position is None else per_position * len(positions)
    return DatasetInfo(
        path=path_text,
        format="ome-zarr",
        format_version=None if ome.get("version") is None else str(ome["version"]),
        layout=layout,
        writer=writer,
        writer_version=None if version is None else str(version),
        engine=None if engine is None else str(engine),
        dtype=dtype,
        dimensions=dims,
        acquisition_order=acquisition,
        channels=channels,
        positions=positions,
        plate=_plate(ome),
        compression=compression,
        frames_written=written if isinstance(written, int) else None,
        frames_total=total,
        complete=bool(own.get("complete")) if own else None,
        levels=levels,
        bytes_on_disk=_stored_bytes(store),
    )


def _stored_bytes(store: ZarrRoot) -> int:
    """Allocated bytes of a directory; the objects' sizes under an S3 prefix."""
    if isinstance(store, S3Root):
        return store.total_bytes()
    if isinstance(store, LocalRoot):
        return disk_bytes([store.path])
    return 0
