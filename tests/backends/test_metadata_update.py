"""``get_metadata`` / ``update_metadata`` in every format, read back independently.

OME-Zarr attributes are read with zarr-python's own group reader; OME-TIFF
documents with tifffile (the file's description) and ome-types (the
companion file); pixels are checked to be untouched by an update.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
import zarr
from ome_types import from_xml
from ome_types.model import OME, MapAnnotation, StructuredAnnotations

from ome_writers import (
    AcquisitionSettings,
    OmeTiffFormat,
    OmeZarrFormat,
    Plate,
    Position,
    create_stream,
    dims_from_standard_axes,
)

if TYPE_CHECKING:
    from pathlib import Path

ZARR_ENGINES = ["tensorstore", "acquire-zarr", "zarr-python"]


def _settings(root: Path, fmt: Any, layout: str) -> AcquisitionSettings:
    sizes: dict[str, Any] = {"t": 2, "y": 8, "x": 8}
    plate = None
    if layout == "positions":
        sizes = {"p": ["a", "b"], **sizes}
    elif layout == "plate":
        sizes = {
            "p": [
                Position(name="fov0", plate_row="A", plate_column="1"),
                Position(name="fov0", plate_row="B", plate_column="2"),
            ],
            **sizes,
        }
        plate = Plate(["A", "B"], ["1", "2"])
    return AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes(sizes),
        dtype="uint16",
        format=fmt,
        plate=plate,
    )


def _fill(stream: Any) -> np.ndarray:
    frames = np.arange(stream.settings.num_frames * 64, dtype="uint16").reshape(
        -1, 8, 8
    )
    for frame in frames:
        stream.append(frame)
    return frames


ZARR_KEYS = {
    "image": ["."],
    "positions": ["a", "b"],
    "plate": ["A/1/fov0", "B/2/fov0"],
}


@pytest.mark.parametrize("layout", list(ZARR_KEYS))
@pytest.mark.parametrize("engine", ZARR_ENGINES)
def test_zarr_update_survives_close(tmp_path: Path, engine: str, layout: str) -> None:
    root = tmp_path / "out.ome.zarr"
    settings = _settings(root, OmeZarrFormat(backend=engine), layout)
    stream = create_stream(settings)
    metadata = stream.get_metadata()
    assert sorted(metadata) == ZARR_KEYS[layout]
    for attributes in metadata.values():
        assert "multiscales" in attributes["ome"]
        assert "ome_writers" not in attributes
        attributes.setdefault("acme", {})["summary"] = {"objective": "60x"}
    stream.update_metadata(metadata)
    # visible at once, before any frame
    for key in metadata:
        group = zarr.open_group(root / key, mode="r")
        assert group.attrs["acme"] == {"summary": {"objective": "60x"}}
    frames = _fill(stream)
    stream.close()
    for key, attributes in metadata.items():
        group = zarr.open_group(root / key, mode="r")
        assert group.attrs["acme"] == {"summary": {"objective": "60x"}}
        assert group.attrs["ome"] == attributes["ome"]
        assert "ome_writers" in group.attrs  # the writer's own key is kept
        array = zarr.open_array(root / key / "0", mode="r")
        assert array.shape == (2, 8, 8)
    first = zarr.open_array(root / ZARR_KEYS[layout][0] / "0", mode="r")
    np.testing.assert_array_equal(first[...], frames[:2])


def test_zarr_update_after_close_and_ome_override(tmp_path: Path) -> None:
    root = tmp_path / "out.ome.zarr"
    stream = create_stream(_settings(root, "zarr-python", "image"))
    _fill(stream)
    stream.close()
    metadata = stream.get_metadata()
    metadata["."]["ome"]["multiscales"][0]["name"] = "renamed"
    metadata["."]["note"] = "after close"
    stream.update_metadata(metadata)
    attrs = json.loads((root / "zarr.json").read_text())["attributes"]
    assert attrs["note"] == "after close"
    assert attrs["ome"]["multiscales"][0]["name"] == "renamed"
    assert attrs["ome_writers"]["complete"] is True
    assert stream.get_metadata()["."]["note"] == "after close"


@pytest.mark.parametrize(
    ("update", "error", "message"),
    [
        pytest.param({"9": {}}, KeyError, r"'9' is not an image group", id="unknown"),
        pytest.param(
            {"a": {"ome_writers": {}}},
            ValueError,
            r"'ome_writers' is the writer's own",
            id="reserved",
        ),
        pytest.param(
            {"a": {"x": object()}}, TypeError, "not JSON-serializable", id="json"
        ),
        pytest.param({"a": ["x"]}, TypeError, "must be a dict", id="not-a-dict"),
    ],
)
def test_zarr_bad_update_changes_nothing(
    tmp_path: Path, update: dict[str, Any], error: type, message: str
) -> None:
    root = tmp_path / "out.ome.zarr"
    stream = create_stream(_settings(root, "tensorstore", "positions"))
    before = {p: (root / p / "zarr.json").read_bytes() for p in ("a", "b")}
    # a good group beside a bad one: neither is written
    with pytest.raises(error, match=message):
        stream.update_metadata({"b": {"ok": 1}, **update})
    assert {p: (root / p / "zarr.json").read_bytes() for p in ("a", "b")} == before
    frames = _fill(stream)  # the stream goes on
    stream.close()
    np.testing.assert_array_equal(stream.view()[1], frames[2:])


def _annotate(ome: OME, text: str) -> None:
    if ome.structured_annotations is None:
        ome.structured_annotations = StructuredAnnotations()
    ome.structured_annotations.map_annotations.append(
        MapAnnotation(namespace="acme", value={"note": text})
    )


def _notes(xml: str) -> list[str]:
    ome = from_xml(xml)
    annotations = ome.structured_annotations
    maps = [] if annotations is None else annotations.map_annotations
    return [a.value.ms[0].value for a in maps if a.namespace == "acme"]


TIFF_LAYOUTS = {
    # layout -> (format, files relative to the root's folder, keys)
    "single": (OmeTiffFormat(prefer_single_file="always"), ["out.ome.tiff"], [0]),
    "redundant": (
        OmeTiffFormat(),
        ["out/out_p000.ome.tiff", "out/out_p001.ome.tiff"],
        [0, 1],
    ),
    "companion-file": (
        OmeTiffFormat(multi_file_metadata="companion-file"),
        ["out/out_p000.ome.tiff", "out/out_p001.ome.tiff"],
        [-1, 0, 1],
    ),
}


@pytest.mark.parametrize("layout", list(TIFF_LAYOUTS))
def test_tiff_update_after_close(tmp_path: Path, layout: str) -> None:
    fmt, names, keys = TIFF_LAYOUTS[layout]
    stream = create_stream(_settings(tmp_path / "out.ome.tiff", fmt, "positions"))
    frames = _fill(stream)
    with pytest.raises(RuntimeError, match=r"after stream\.close"):
        stream.update_metadata(stream.get_metadata())
    stream.close()
    metadata = stream.get_metadata()
    assert sorted(metadata) == keys
    annotated = []
    for key, ome in metadata.items():
        assert isinstance(ome, OME)
        if ome.images:  # BinaryOnly documents only point at the metadata
            _annotate(ome, f"key {key}")
            annotated.append(key)
    stream.update_metadata(metadata)
    files = [tmp_path / name for name in names]
    for i, path in enumerate(files):
        with tifffile.TiffFile(path) as tif:
            notes = _notes(tif.ome_metadata)
            data = [series.asarray() for series in tif.series]
        assert notes == ([f"key {i}"] if i in annotated else [])
        # the pixels are untouched: position i holds frames 2i, 2i+1
        np.testing.assert_array_equal(
            data[i if len(data) > 1 else 0], frames[2 * i : 2 * i + 2]
        )
    if -1 in keys:
        companion = (tmp_path / "out" / "companion.ome").read_text()
        assert _notes(companion) == ["key -1"]
    # a second update replaces the first; get_metadata returns what was written
    key = annotated[-1]
    again = stream.get_metadata()
    _annotate(again[key], "second")
    stream.update_metadata({key: again[key]})
    assert _notes(
        (tmp_path / "out" / "companion.ome").read_text()
        if key == -1
        else _description(files[key])
    ) == [f"key {key}", "second"]


def _description(path: Path) -> str:
    with tifffile.TiffFile(path) as tif:
        return str(tif.ome_metadata)


@pytest.mark.parametrize(
    ("update", "error", "message"),
    [
        pytest.param({5: "x"}, KeyError, r"5 is not a file", id="unknown"),
        pytest.param({0: "<OME/>"}, TypeError, r"ome_types.OME, got str", id="type"),
    ],
)
def test_tiff_bad_update(
    tmp_path: Path, update: dict[Any, Any], error: type, message: str
) -> None:
    root = tmp_path / "out.ome.tiff"
    with create_stream(_settings(root, "ome-tiff", "image")) as stream:
        _fill(stream)
    before = root.read_bytes()
    with pytest.raises(error, match=message):
        stream.update_metadata(update)
    assert root.read_bytes() == before


def test_scratch_has_no_per_image_metadata() -> None:
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes({"t": 2, "y": 8, "x": 8}), dtype="uint16"
    )
    with create_stream(settings) as stream:
        assert stream.get_metadata() == {}
        stream.update_metadata({})
        with pytest.raises(ValueError, match="set_global_metadata"):
            stream.update_metadata({".": {"a": 1}})
