"""``convert`` and the metadata issue #17 left over.

- What ``update_metadata`` set (OME-Zarr group attributes, edited OME-TIFF
  documents) is carried where it maps, read back with zarr-python, tifffile
  and ome-types.
- Per-frame values keep their type through OME-TIFF (a string ``"1"`` stays a
  string), read back from the TIFF document itself and from what ``convert``
  writes; files of older versions read as they always did.
- OME-TIFFs without the writer's ``settings`` entry (older ome-writers, or
  tifffile's ``ome=True``) are rebuilt from their OME-XML: every pixel and
  the metadata that maps, or an error naming the file and what is missing.
"""

from __future__ import annotations

import json
import re
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
import zarr
from ome_types import from_xml, to_xml
from ome_types.model import (
    AnnotationRef,
    CommentAnnotation,
    Instrument,
    Map,
    MapAnnotation,
    Microscope,
)

from ome_writers import (
    AcquisitionSettings,
    Channel,
    Dimension,
    NotADatasetError,
    OmeTiffFormat,
    Plate,
    Position,
    Pyramid,
    convert,
    create_stream,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

FRAME = (4, 6)
WRITER = "ome_writers"
FRAME_NAMESPACE = "ome_writers/frame_metadata"


def frame(n: int, dtype: str = "uint16") -> np.ndarray:
    """Frame ``n``: its number in every pixel, plus where the pixel sits."""
    return (np.arange(24).reshape(FRAME) + 100 * (n + 1)).astype(dtype)


def typed(value: Any) -> str:
    """JSON text that tells ``1``, ``1.0``, ``True`` and ``"1"`` apart."""
    return json.dumps(value, sort_keys=True)


def descriptions(path: Path) -> list[Path]:
    """Every file of an OME-TIFF output whose document describes the dataset."""
    files = [path] if path.is_file() else sorted(path.iterdir())
    out = []
    for f in files:
        ome = from_xml(
            f.read_text("utf-8") if f.suffix == ".ome" else tifffile.tiffcomment(f)
        )
        if ome.binary_only is None:
            out.append(f)
    return out


def read_ome(path: Path) -> Any:
    """The OME-XML of a TIFF file (its first page) or of a companion file."""
    if path.suffix == ".ome":
        return from_xml(path.read_text("utf-8"))
    return from_xml(tifffile.tiffcomment(path))


def rewrite_ome(path: Path, edit: Callable[[Any], None]) -> None:
    """Edit the document of ``path`` in place (tifffile rewrites the tag)."""
    ome = read_ome(path)
    edit(ome)
    xml = to_xml(ome)
    if path.suffix == ".ome":
        path.write_text(xml, "utf-8")
    else:
        tifffile.tiffcomment(path, comment=xml.encode("utf-8"))


def tiff_planes(document: Path, ome: Any) -> dict[tuple[int, ...], np.ndarray]:
    """``(image, T, C, Z)`` -> the plane's pixels, read by tifffile page by page.

    Each ``TiffData`` names a file (or the document's), its first IFD and
    plane, and how many planes follow in ``DimensionOrder``.
    """
    out = {}
    for p, image in enumerate(ome.images):
        px = image.pixels
        order = px.dimension_order.value[2:]  # fastest first
        size = {"Z": px.size_z, "C": px.size_c, "T": px.size_t}
        for block in px.tiff_data_blocks:
            name = block.uuid.file_name if block.uuid is not None else document.name
            first = {"Z": block.first_z, "C": block.first_c, "T": block.first_t}
            start = 0
            for axis in reversed(order):
                start = start * size[axis] + first[axis]
            with tifffile.TiffFile(document.parent / name, is_ome=False) as tif:
                for k in range(block.plane_count):
                    rest, at = start + k, {}
                    for axis in order:
                        rest, at[axis] = divmod(rest, size[axis])
                    page = tif.pages[block.ifd + k]
                    out[(p, at["T"], at["C"], at["Z"])] = page.asarray()
    return out


def writer_entries(ome: Any) -> dict[str, str]:
    ann = next(
        a for a in ome.structured_annotations.map_annotations if a.namespace == WRITER
    )
    return {m.k: m.value for m in ann.value.ms}


def scratch_metadata(root: Path) -> dict[int, dict[str, Any]]:
    """Frame number -> metadata of a scratch root, from its JSON lines file."""
    out = {}
    for line in (root / "frame_metadata.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        out[record["frame_number"]] = record
    return out


# ============================================================ per-frame values

VALUES = [
    pytest.param("1", id="str-int"),
    pytest.param("1.5", id="str-float"),
    pytest.param("true", id="str-true"),
    pytest.param("null", id="str-null"),
    pytest.param("[1]", id="str-list"),
    pytest.param('{"note": "1"}', id="str-object"),
    pytest.param('"quoted"', id="str-json-string"),
    pytest.param("NaN", id="str-nan"),
    pytest.param(" 2 ", id="str-padded-number"),
    pytest.param("", id="str-empty"),
    pytest.param("GFP 488", id="str-plain"),
    pytest.param("é\ttab", id="str-unicode-tab"),
    pytest.param(1, id="int"),
    pytest.param(10**20, id="int-big"),
    pytest.param(-0.5, id="float"),
    pytest.param(2.0, id="float-integral"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(None, id="none"),
    pytest.param([1, "1", None, [True]], id="list"),
    pytest.param({"a": {"b": ["1", 2.0]}, "c": "null"}, id="nested-dict"),
]
INDEXED = [pytest.param(i, p.values[0], id=p.id) for i, p in enumerate(VALUES)]


def _values_settings(root: Path, count: int) -> AcquisitionSettings:
    return AcquisitionSettings(
        root_path=str(root),
        dimensions=[
            Dimension("t", count),
            Dimension("y", FRAME[0]),
            Dimension("x", FRAME[1]),
        ],
        dtype="uint16",
        format=OmeTiffFormat(fsync="never"),
    )


@pytest.fixture(scope="module")
def values_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OME-TIFF whose frame ``n`` carries ``{"v": VALUES[n]}``."""
    path = tmp_path_factory.mktemp("values") / "values.ome.tiff"
    with create_stream(_values_settings(path, len(VALUES))) as stream:
        for n, param in enumerate(VALUES):
            stream.append(frame(n), frame_metadata={"v": param.values[0]})
    return path


def _read_scratch_values(root: Path) -> list[Any]:
    records = scratch_metadata(root)
    return [records[n]["v"] for n in range(len(records))]


def _read_zarr_values(root: Path) -> list[Any]:
    records = zarr.open_group(root, mode="r").attrs[WRITER]["frame_metadata"]
    by_frame = {r["frame_number"]: r["v"] for r in records}
    return [by_frame[n] for n in range(len(by_frame))]


@pytest.fixture(scope="module", params=["scratch", "ome-zarr", "ome-tiff-then-scratch"])
def converted_values(
    request: pytest.FixtureRequest,
    values_tiff: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Any]:
    """Each frame's ``"v"`` after ``convert`` from ``values_tiff``."""
    out = tmp_path_factory.mktemp(request.param)
    if request.param == "scratch":
        convert(values_tiff, out / "s", format="scratch")
        return _read_scratch_values(out / "s")
    if request.param == "ome-zarr":
        convert(values_tiff, out / "v.ome.zarr")
        return _read_zarr_values(out / "v.ome.zarr")
    convert(values_tiff, out / "again.ome.tiff")
    convert(out / "again.ome.tiff", out / "s", format="scratch")
    return _read_scratch_values(out / "s")


@pytest.mark.parametrize(("index", "value"), INDEXED)
def test_frame_values_keep_their_type_through_ome_tiff(
    converted_values: list[Any], index: int, value: Any
) -> None:
    assert typed(converted_values[index]) == typed(value)


def _is_json_text(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("index", "value"), INDEXED)
def test_ome_tiff_stores_frame_values_as_documented(
    values_tiff: Path, index: int, value: Any
) -> None:
    """A string that is not JSON text as it is; anything else as JSON."""
    ome = read_ome(values_tiff)
    assert writer_entries(ome)["frame_metadata_encoding"] == "json-or-plain-string"
    plane = next(p for p in ome.images[0].pixels.planes if p.the_t == index)
    (ref,) = plane.annotation_refs
    ann = next(a for a in ome.structured_annotations.map_annotations if a.id == ref.id)
    assert ann.namespace == FRAME_NAMESPACE
    (entry,) = ann.value.ms
    assert entry.k == "v"
    if isinstance(value, str) and not _is_json_text(value):
        assert entry.value == value
    else:
        assert typed(json.loads(entry.value)) == typed(value)


OLD_VALUES = [
    # written by ome-writers before frame_metadata_encoding: strings as they
    # are, everything else as JSON; a string that reads as JSON is that value
    pytest.param("1", 1, id="str-int"),
    pytest.param("true", True, id="str-true"),
    pytest.param("null", None, id="str-null"),
    pytest.param("[1]", [1], id="str-list"),
    pytest.param('"quoted"', '"quoted"', id="str-json-string"),
    pytest.param("NaN", "NaN", id="str-nan"),
    pytest.param("GFP", "GFP", id="str-plain"),
    pytest.param(7, 7, id="int"),
    pytest.param([1, "a"], [1, "a"], id="list"),
]


@pytest.fixture(scope="module")
def old_values_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``values_tiff``'s older form: no encoding entry, strings stored bare."""
    path = tmp_path_factory.mktemp("old") / "old.ome.tiff"
    written = [p.values[0] for p in OLD_VALUES]
    with create_stream(_values_settings(path, len(written))) as stream:
        for n, value in enumerate(written):
            stream.append(frame(n), frame_metadata={"v": value})

    def make_old(ome: Any) -> None:
        by_ref = {}
        for plane in ome.images[0].pixels.planes:
            by_ref[plane.annotation_refs[0].id] = written[plane.the_t]
        for ann in ome.structured_annotations.map_annotations:
            if ann.namespace == WRITER:
                ann.value.ms = [
                    m for m in ann.value.ms if m.k != "frame_metadata_encoding"
                ]
            elif ann.namespace == FRAME_NAMESPACE:
                value = by_ref[ann.id]
                text = value if isinstance(value, str) else json.dumps(value)
                ann.value.ms[0].value = text

    rewrite_ome(path, make_old)
    return path


@pytest.mark.parametrize("hops", ["scratch", "ome-tiff-then-scratch"])
def test_older_files_read_as_before(
    old_values_tiff: Path, tmp_path: Path, hops: str
) -> None:
    source = old_values_tiff
    if hops == "ome-tiff-then-scratch":
        convert(source, tmp_path / "new.ome.tiff")
        entries = writer_entries(read_ome(tmp_path / "new.ome.tiff"))
        assert entries["frame_metadata_encoding"] == "json-or-plain-string"
        source = tmp_path / "new.ome.tiff"
    convert(source, tmp_path / "s", format="scratch")
    got = _read_scratch_values(tmp_path / "s")
    assert [typed(v) for v in got] == [typed(p.values[1]) for p in OLD_VALUES]


# ============================================================ update_metadata

POSITIONS = [
    Position(name="a", x_coord=1.0, y_coord=2.0),
    Position(name="b", x_coord=3.0, y_coord=4.0),
]


def _dims(with_positions: bool) -> list[Dimension]:
    dims = [
        Dimension("t", 2, unit="s", scale=0.5),
        Dimension("c", coords=[Channel(name="DAPI"), Channel(name="GFP")]),
        Dimension("y", FRAME[0], unit="um", scale=0.25),
        Dimension("x", FRAME[1], unit="um", scale=0.25),
    ]
    if with_positions:
        dims.insert(1, Dimension("p", coords=POSITIONS))
    return dims


def _write(root: Path, fmt: Any, dims: list[Dimension]) -> Any:
    """A complete output; returns its stream (closed) for get/update_metadata."""
    settings = AcquisitionSettings(
        root_path=str(root), dimensions=dims, dtype="uint16", format=fmt
    )
    stream = create_stream(settings)
    stream.set_global_metadata("acme", {"operator": "ada"})
    for n in range(settings.num_frames or 0):
        stream.append(frame(n), frame_metadata={"note": f"frame {n}"})
    stream.close()
    return stream


ZARR_LAYOUTS = [
    pytest.param(False, ".", id="image"),
    pytest.param(True, "b", id="positions"),
]


@pytest.mark.parametrize(("with_positions", "key"), ZARR_LAYOUTS)
def test_zarr_attributes_carried_into_zarr(
    tmp_path: Path, with_positions: bool, key: str
) -> None:
    source = tmp_path / "src.ome.zarr"
    stream = _write(
        source, {"name": "ome-zarr", "backend": "zarr-python"}, _dims(with_positions)
    )
    metadata = stream.get_metadata()
    metadata[key]["lab"] = {"objective": "60x", "na": 1.4}
    metadata[key]["ome"]["multiscales"][0]["name"] = "renamed"
    metadata[key]["ome"]["multiscales"][0]["metadata"]["note"] = "by hand"
    stream.update_metadata({key: metadata[key]})

    out = tmp_path / "out.ome.zarr"
    convert(source, out, format="tensorstore", pyramid=Pyramid(levels=2))
    group = zarr.open_group(out / key if key != "." else out, mode="r")
    assert group.attrs["lab"] == {"objective": "60x", "na": 1.4}
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert multiscale["name"] == "renamed"
    assert multiscale["metadata"]["note"] == "by hand"
    # what describes the arrays is the destination's (two levels)
    assert [d["path"] for d in multiscale["datasets"]] == ["0", "1"]
    assert multiscale["type"] == "mean"
    root = zarr.open_group(out, mode="r")
    # global metadata stays global, the group's own key stays the group's
    assert root.attrs["acme"] == {"operator": "ada"}
    assert root.attrs[WRITER]["global_namespaces"] == ["acme"]
    if with_positions:
        assert "lab" not in zarr.open_group(out / "a", mode="r").attrs
        other = zarr.open_group(out / "a", mode="r").attrs["ome"]["multiscales"][0]
        assert other["name"] == "a"
    np.testing.assert_array_equal(
        zarr.open_array(out / (key if key != "." else "") / "0", mode="r")[1, 0],
        frame(6 if with_positions else 2),  # t=1, c=0 (of position b)
    )


TIFF_DESTINATIONS = [
    pytest.param(OmeTiffFormat(prefer_single_file="always"), id="one-file"),
    pytest.param(OmeTiffFormat(), id="folder-redundant"),
    pytest.param(OmeTiffFormat(multi_file_metadata="companion-file"), id="companion"),
    pytest.param(OmeTiffFormat(multi_file_metadata="master-tiff"), id="master-tiff"),
]


def _edit_document(ome: Any) -> None:
    ome.instruments.append(
        Instrument(id="Instrument:0", microscope=Microscope(model="Ti2-E"))
    )
    ome.images[0].description = "edited after close"
    ome.images[1].name = "renamed b"
    ome.structured_annotations.comment_annotations.append(
        CommentAnnotation(id="Annotation:comment", value="checked by hand")
    )
    ome.images[1].annotation_refs.append(AnnotationRef(id="Annotation:comment"))


@pytest.mark.parametrize("destination", TIFF_DESTINATIONS)
def test_edited_ome_xml_carried_into_ome_tiff(
    tmp_path: Path, destination: OmeTiffFormat
) -> None:
    source = tmp_path / "src.ome.tiff"
    stream = _write(
        source, OmeTiffFormat(prefer_single_file="always"), _dims(with_positions=True)
    )
    documents = stream.get_metadata()
    _edit_document(documents[0])
    stream.update_metadata({0: documents[0]})

    out = tmp_path / "out.ome.tiff"
    convert(source, out, format=destination)
    where = out if out.exists() else tmp_path / "out"
    files = [out] if out.is_file() else sorted(where.glob("*.ome.tiff"))
    full = descriptions(where)
    assert full  # at least one document describes the dataset
    for path in full:
        ome = read_ome(path)
        assert [i.microscope.model for i in ome.instruments] == ["Ti2-E"]
        assert ome.images[0].description == "edited after close"
        assert [i.name for i in ome.images] == ["a", "renamed b"]
        comments = ome.structured_annotations.comment_annotations
        assert [c.value for c in comments] == ["checked by hand"]
        assert "Annotation:comment" in [r.id for r in ome.images[1].annotation_refs]
        # the pixels are where the destination's document says they are
        uuids = {}
        for f in files:
            uuids[f.name] = read_ome(f).uuid
        for image in ome.images:
            for block in image.pixels.tiff_data_blocks:
                if block.uuid is not None:
                    assert uuids[block.uuid.file_name] == block.uuid.value
        assert writer_entries(ome)["complete"] == "true"
    # every pixel, with tifffile, where the TiffData say the planes are
    planes = tiff_planes(full[0], read_ome(full[0]))
    for t in range(2):
        for p in range(2):
            for c in range(2):
                want = frame(t * 4 + p * 2 + c)
                np.testing.assert_array_equal(planes[(p, t, c, 0)], want)


def test_zarr_attributes_round_trip_through_ome_tiff(tmp_path: Path) -> None:
    """A group's own keys become an Image's MapAnnotation, and come back."""
    source = tmp_path / "src.ome.zarr"
    stream = _write(source, "zarr-python", _dims(with_positions=True))
    metadata = stream.get_metadata()
    metadata["a"]["lab"] = {"objective": "60x"}
    metadata["b"]["flags"] = [1, "two", None]
    metadata["b"]["ome"]["multiscales"][0]["name"] = "NGFF only"
    stream.update_metadata(metadata)

    tiff = tmp_path / "mid.ome.tiff"
    convert(source, tiff, format=OmeTiffFormat(prefer_single_file="always"))
    ome = read_ome(tiff)
    annotations = {a.id: a for a in ome.structured_annotations.map_annotations}
    for p, want in enumerate(
        [{"lab": {"objective": "60x"}}, {"flags": [1, "two", None]}]
    ):
        refs = [annotations[r.id] for r in ome.images[p].annotation_refs]
        (ann,) = [a for a in refs if a.namespace == "ome_writers/zarr_attributes"]
        assert {m.k: json.loads(m.value) for m in ann.value.ms} == want
    assert [i.name for i in ome.images] == ["a", "b"]  # "ome" edits do not map

    back = tmp_path / "back.ome.zarr"
    convert(tiff, back)
    assert zarr.open_group(back / "a", mode="r").attrs["lab"] == {"objective": "60x"}
    b = zarr.open_group(back / "b", mode="r").attrs
    assert b["flags"] == [1, "two", None]
    assert b["ome"]["multiscales"][0]["name"] == "b"
    root = zarr.open_group(back, mode="r").attrs
    assert root["acme"] == {"operator": "ada"}  # global metadata, unchanged
    assert root[WRITER]["global_namespaces"] == ["acme"]


def test_edited_ome_xml_into_zarr_keeps_what_maps(tmp_path: Path) -> None:
    """A namespaced MapAnnotation of the Images travels (as global metadata)."""
    source = tmp_path / "src.ome.tiff"
    stream = _write(
        source, OmeTiffFormat(prefer_single_file="always"), _dims(with_positions=True)
    )
    ome = stream.get_metadata()[0]
    _edit_document(ome)
    ome.structured_annotations.map_annotations.append(
        MapAnnotation(
            id="Annotation:stage",
            namespace="vendor/stage",
            value=Map(
                ms=[Map.M(k="model", value='"XY-1"'), Map.M(k="axes", value="2")]
            ),
        )
    )
    for image in ome.images:
        image.annotation_refs.append(AnnotationRef(id="Annotation:stage"))
    stream.update_metadata({0: ome})

    out = tmp_path / "out.ome.zarr"
    convert(source, out)
    root = zarr.open_group(out, mode="r").attrs
    assert root["vendor/stage"] == {"model": "XY-1", "axes": 2}
    assert sorted(root[WRITER]["global_namespaces"]) == ["acme", "vendor/stage"]
    text = json.dumps(
        [dict(zarr.open_group(out / g, mode="r").attrs) for g in ("", "a", "b")]
    )
    assert "Ti2-E" not in text  # an Instrument has no place in OME-Zarr
    assert "checked by hand" not in text


# ============================================================ rebuilt settings

CUBE = np.arange(2 * 3 * 2 * 4 * 6, dtype="uint16").reshape(2, 3, 2, *FRAME)
TIFFFILE_METADATA = {
    "axes": "TCZYX",
    "Name": "cells",
    "PhysicalSizeX": 0.5,
    "PhysicalSizeY": 0.5,
    "PhysicalSizeZ": 200.0,
    "PhysicalSizeZUnit": "nm",
    "TimeIncrement": 1.5,
    "TimeIncrementUnit": "ms",
    "Channel": {"Name": ["DAPI", "GFP", "RFP"], "Color": [-16776961, 16711935, -1]},
    "Plane": {"ExposureTime": [10.0] * 12, "ExposureTimeUnit": ["ms"] * 12},
}


def _check_tifffile_cube(kind: str, out: Path) -> None:
    if kind == "ome-zarr":
        group = zarr.open_group(out, mode="r")
        np.testing.assert_array_equal(zarr.open_array(out / "0", mode="r")[...], CUBE)
        multiscale = group.attrs["ome"]["multiscales"][0]
        assert [a["name"] for a in multiscale["axes"]] == ["t", "c", "z", "y", "x"]
        units = [a.get("unit") for a in multiscale["axes"]]
        assert units == ["millisecond", None, "nanometer", "micrometer", "micrometer"]
        scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
        assert scale == [1.5, 1.0, 200.0, 0.5, 0.5]
        channels = group.attrs["ome"]["omero"]["channels"]
        assert [c["label"] for c in channels] == ["DAPI", "GFP", "RFP"]
        assert [c["color"] for c in channels] == ["FF0000", "00FF00", "FFFFFF"]
        records = group.attrs[WRITER]["frame_metadata"]
        assert {r["exposure_time"] for r in records} == {0.01}  # ms -> s
        assert len(records) == 12
    elif kind == "ome-tiff":
        with tifffile.TiffFile(out) as tif:
            assert tif.series[0].axes == "TCZYX"
            np.testing.assert_array_equal(tif.series[0].asarray(), CUBE)
        pixels = read_ome(out).images[0].pixels
        assert (pixels.physical_size_x, pixels.physical_size_z) == (0.5, 200.0)
        assert pixels.physical_size_z_unit.value == "nm"
        assert (pixels.time_increment, pixels.time_increment_unit.value) == (1.5, "ms")
        assert [c.name for c in pixels.channels] == ["DAPI", "GFP", "RFP"]
    else:
        manifest = json.loads((out / "manifest.json").read_text())
        dims = manifest["dimensions"]
        assert [(d["name"], d["count"]) for d in dims] == [
            ("t", 2),
            ("c", 3),
            ("z", 2),
            ("y", 4),
            ("x", 6),
        ]
        assert [(d["unit"], d["scale"]) for d in dims if d["name"] != "c"] == [
            ("ms", 1.5),
            ("nm", 200.0),
            ("um", 0.5),
            ("um", 0.5),
        ]
        stored = np.fromfile(out / "pos_0.dat", "uint16").reshape(CUBE.shape)
        np.testing.assert_array_equal(stored, CUBE)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        pytest.param("ome-zarr", "out.ome.zarr", id="to-zarr"),
        pytest.param("ome-tiff", "out.ome.tiff", id="to-tiff"),
        pytest.param("scratch", "out", id="to-scratch"),
    ],
)
def test_tifffile_ome_tiff_converts(tmp_path: Path, kind: str, name: str) -> None:
    source = tmp_path / "cube.ome.tif"
    tifffile.imwrite(source, CUBE, ome=True, metadata=TIFFFILE_METADATA)
    report = convert(source, tmp_path / name, format=kind)
    assert (report.frames_written, report.frames_skipped) == (12, 0)
    _check_tifffile_cube(kind, tmp_path / name)


def test_tifffile_series_become_positions(tmp_path: Path) -> None:
    source = tmp_path / "two.ome.tif"
    data = [CUBE[:, :, 0], CUBE[:, :, 1] + 7]
    with tifffile.TiffWriter(source, ome=True) as tif:
        for name, block, codec in zip(("left", "right"), data, (None, "zlib")):
            tif.write(
                block,
                compression=codec,
                metadata={
                    "axes": "TCYX",
                    "Name": name,
                    "Channel": {"Name": ["A", "B", "C"]},
                },
            )
    out = tmp_path / "two.ome.zarr"
    convert(source, out)
    for name, block in zip(("left", "right"), data):
        np.testing.assert_array_equal(
            zarr.open_array(out / name / "0", mode="r")[...], block
        )
    settings = zarr.open_group(out, mode="r").attrs[WRITER]["settings"]
    assert [d["name"] for d in settings["dimensions"]] == ["p", "t", "c", "y", "x"]


def _stage_dims() -> list[Dimension]:
    return [
        Dimension("t", 2, unit="s", scale=0.5),
        Dimension(
            "p",
            coords=[
                Position(name="A1 site", x_coord=100.0, y_coord=200.0),
                Position(name="B2-site", x_coord=300.0, y_coord=400.0, z_coord=5.0),
            ],
        ),
        Dimension(
            "c",
            coords=[
                Channel(name="DAPI", emission_wavelength_nm=461.0, color="0000FF"),
                Channel(name="GFP", excitation_wavelength_nm=488.0),
            ],
        ),
        Dimension("z", 2, unit="um", scale=1.5),
        Dimension("y", FRAME[0], unit="um", scale=0.25),
        Dimension("x", FRAME[1], unit="um", scale=0.25),
    ]


def _plate_dims() -> list[Dimension]:
    wells = [
        Position(name="fov0", plate_row="A", plate_column="1", x_coord=1.0),
        Position(name="fov1", plate_row="A", plate_column="1", x_coord=2.0),
        Position(name="fov0", plate_row="B", plate_column="2", x_coord=3.0),
    ]
    return [Dimension("t", 2), Dimension("p", coords=wells), *_dims(False)[2:]]


LEGACY = [
    pytest.param(
        OmeTiffFormat(prefer_single_file="always"), _stage_dims, id="one-file"
    ),
    pytest.param(OmeTiffFormat(), _stage_dims, id="folder"),
    pytest.param(
        OmeTiffFormat(multi_file_metadata="companion-file"), _stage_dims, id="companion"
    ),
    pytest.param(
        OmeTiffFormat(multi_file_metadata="master-tiff"), _plate_dims, id="plate-master"
    ),
]


def _strip_settings(ome: Any) -> None:
    """As ome-writers wrote it before the writer annotation held the settings."""
    if ome.binary_only is not None:
        return
    for ann in ome.structured_annotations.map_annotations:
        if ann.namespace == WRITER:
            dropped = ("settings", "frame_metadata_encoding")
            ann.value.ms = [m for m in ann.value.ms if m.k not in dropped]


@pytest.mark.parametrize(("fmt", "make_dims"), LEGACY)
def test_ome_tiff_without_recorded_settings_converts(
    tmp_path: Path, fmt: OmeTiffFormat, make_dims: Callable[[], list[Dimension]]
) -> None:
    """Rebuilt from the OME-XML, it converts as the original does."""
    dims = make_dims()
    plate = (
        Plate(["A", "B"], ["1", "2"], name="P1") if make_dims is _plate_dims else None
    )
    original = tmp_path / "orig" / "run.ome.tiff"
    original.parent.mkdir()
    settings = AcquisitionSettings(
        root_path=str(original),
        dimensions=dims,
        dtype="uint16",
        format=fmt,
        plate=plate,
    )
    with create_stream(settings) as stream:
        stream.set_global_metadata("acme", {"operator": "ada"})
        for n in range(settings.num_frames or 0):
            stream.append(frame(n), frame_metadata={"note": f"frame {n}", "n": n})
    legacy = tmp_path / "legacy"
    shutil.copytree(original.parent, legacy)
    given = legacy / "run.ome.tiff"
    for path in descriptions(given if given.exists() else legacy / "run"):
        rewrite_ome(path, _strip_settings)
        assert "settings" not in writer_entries(read_ome(path))

    a, b = tmp_path / "a.ome.zarr", tmp_path / "b.ome.zarr"
    convert(original, a)
    convert(given, b)
    keys = sorted(str(p.parent.relative_to(a)) for p in a.rglob("zarr.json"))
    assert sorted(str(p.parent.relative_to(b)) for p in b.rglob("zarr.json")) == keys
    for key in keys:
        want, got = zarr.open(a / key, mode="r"), zarr.open(b / key, mode="r")
        if isinstance(want, zarr.Array):
            np.testing.assert_array_equal(got[...], want[...])
            continue
        want_attrs, got_attrs = dict(want.attrs), dict(got.attrs)
        if key == ".":  # the settings, positions, channels, plate: all the same
            for attrs in (want_attrs, got_attrs):
                attrs[WRITER] = {**attrs[WRITER]}
                attrs[WRITER]["settings"] = {**attrs[WRITER]["settings"]}
                attrs[WRITER]["settings"].pop("root_path")
        assert got_attrs == want_attrs


# ------------------------------------------------------------ not enough XML


def _tifffile_pair(path: Path) -> None:
    tifffile.imwrite(path, CUBE[:, 0, 0], ome=True, metadata={"axes": "TYX"})


def _metadata_only(path: Path) -> None:
    _tifffile_pair(path)
    xml = re.sub(r"<TiffData[^>]*/>", "<MetadataOnly/>", tifffile.tiffcomment(path))
    tifffile.tiffcomment(path, comment=xml.encode("utf-8"))


def _missing_file(path: Path) -> None:
    _tifffile_pair(path)
    xml = re.sub(
        r"<TiffData([^>]*)/>",
        r'<TiffData\1><UUID FileName="gone.ome.tif">urn:uuid:00000000-0000-0000'
        r"-0000-000000000000</UUID></TiffData>",
        tifffile.tiffcomment(path),
    )
    tifffile.tiffcomment(path, comment=xml.encode("utf-8"))


def _mixed_series(path: Path) -> None:
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(CUBE[:, 0, 0], metadata={"axes": "TYX"})
        tif.write(CUBE[0, :, 0], metadata={"axes": "CYX"})


INSUFFICIENT = [
    pytest.param(_metadata_only, "has no TiffData", id="metadata-only"),
    pytest.param(_missing_file, "names the file 'gone.ome.tif'", id="missing-file"),
    pytest.param(_mixed_series, "not the positions of one acquisition", id="mixed"),
    pytest.param(
        lambda p: tifffile.imwrite(
            p, np.zeros((*FRAME, 3), "uint8"), ome=True, photometric="rgb"
        ),
        "samples per pixel",
        id="rgb",
    ),
    pytest.param(
        lambda p: tifffile.imwrite(
            p, np.zeros((2, 32, 32), "uint16"), ome=True, tile=(16, 16)
        ),
        "is tiled",
        id="tiled",
    ),
    pytest.param(
        lambda p: tifffile.imwrite(
            p, CUBE[:, 0, 0], ome=True, compression="zlib", predictor=True
        ),
        "uses a predictor",
        id="predictor",
    ),
]


@pytest.mark.parametrize(("make", "missing"), INSUFFICIENT)
def test_insufficient_ome_xml_is_named(
    tmp_path: Path, make: Callable[[Path], None], missing: str
) -> None:
    source = tmp_path / "odd.ome.tif"
    make(source)
    out = tmp_path / "out.ome.zarr"
    with pytest.raises(NotADatasetError) as info:
        convert(source, out)
    assert str(source) in str(info.value)
    assert missing in str(info.value)
    assert not out.exists()
