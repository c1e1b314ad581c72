"""``ome-writers info`` for OME-Zarr: a summary from the JSON alone.

Kept apart from the writer: it reads only what an output says about itself
(group and array ``zarr.json``), so it describes interrupted runs and files of
other writers the same way, and never opens an engine.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ome_writers._backends.zarr._metadata import NAMESPACE


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _image_paths(root: Path, ome: dict[str, Any]) -> list[str] | None:
    if "multiscales" in ome:
        return [""]
    if "bioformats2raw.layout" in ome:
        series = (_read_json(root / "OME" / "zarr.json") or {}).get("attributes", {})
        names = series.get("ome", {}).get("series")
        if isinstance(names, list):
            return [str(n) for n in names]
        return sorted((p.name for p in root.iterdir() if p.name.isdigit()), key=int)
    if "plate" in ome:
        out = []
        for well in ome["plate"].get("wells", []):
            doc = _read_json(root / well["path"] / "zarr.json") or {}
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


def _disk_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue
    return total


def describe(path: Path) -> list[str] | None:
    """Human-readable lines about an OME-Zarr output, or None if it is not one.

    Only the JSON documents are read, so no Zarr engine is needed.
    """
    root_doc = _read_json(Path(path) / "zarr.json")
    if root_doc is None or root_doc.get("node_type") != "group":
        return None
    attributes = root_doc.get("attributes") or {}
    ome = attributes.get("ome")
    if not isinstance(ome, dict):
        return None
    root = Path(path)
    image_paths = _image_paths(root, ome)
    if image_paths is None:
        return None
    kind = (
        "HCS plate"
        if "plate" in ome
        else "bioformats2raw collection"
        if "bioformats2raw.layout" in ome
        else "image"
    )
    own = attributes.get(NAMESPACE, {})
    state = ""
    if own:
        state = ", complete" if own.get("complete") else ", incomplete (not closed)"
    lines = [f"{root}: OME-Zarr {ome.get('version', '?')} {kind}{state}"]
    first = True
    positions = []
    for image_path in image_paths:
        image_doc = _read_json(root / image_path / "zarr.json") or {}
        image_ome = image_doc.get("attributes", {}).get("ome", {})
        multiscale = (image_ome.get("multiscales") or [{}])[0]
        datasets = multiscale.get("datasets") or [{"path": "0"}]
        array_doc = _read_json(root / image_path / datasets[0]["path"] / "zarr.json")
        if array_doc is None:
            positions.append(f"    {image_path or '.'}: no array written yet")
            continue
        shape = tuple(array_doc.get("shape", ()))
        name = multiscale.get("name", "")
        positions.append(f"    {image_path or '.'} ({name}): shape {shape}")
        if first:
            first = False
            axes = [
                f"{a['name']}" + (f" ({a['unit']})" if a.get("unit") else "")
                for a in multiscale.get("axes", [])
            ]
            grid = array_doc.get("chunk_grid", {}).get("configuration", {})
            outer = tuple(grid.get("chunk_shape", ()))
            compression, inner = _codec_names(array_doc.get("codecs", []))
            lines.append(f"  dimensions: {', '.join(axes)}")
            lines.append(f"  dtype: {array_doc.get('data_type')}")
            if inner is None:
                lines.append(f"  chunks: {outer}")
            else:
                lines.append(f"  chunks: {inner}, shards: {outer}")
            lines.append(f"  compression: {compression}")
    lines.append(f"  positions: {len(image_paths)}")
    lines += positions
    if own:
        settings = own.get("settings", {})
        expected = None
        counts = [d.get("count") for d in settings.get("dimensions", [])[:-2]]
        if counts and all(isinstance(c, int) for c in counts):
            expected = math.prod(counts)
        total = f" of {expected}" if expected is not None else ""
        lines.append(f"  frames written: {own.get('frames_written')}{total}")
        namespaces = own.get("global_namespaces") or []
        if namespaces:
            lines.append(f"  global metadata namespaces: {', '.join(namespaces)}")
    size = _disk_bytes(root)
    lines.append(f"  size on disk: {size:,} bytes ({size / 1e6:,.1f} MB)")
    return lines
