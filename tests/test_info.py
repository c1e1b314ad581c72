"""``ome-writers info``: one layout and one JSON model for every format.

Datasets are written through the public API (small frames), then described
by the real entry point in a subprocess (``python -m ome_writers info``), as
text and as ``--json``. The text must have the same labels in the same order
whatever the format, the same acquisition written in different formats must
read the same, and the JSON must match the settings the data were written
with. Interrupted outputs come from a child process that dies before
``close()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ome_writers import (
    AcquisitionSettings,
    Channel,
    Dimension,
    OmeTiffFormat,
    Plate,
    Position,
    create_stream,
)

if TYPE_CHECKING:
    from pathlib import Path

#: the labels every description has, in this order, whatever the format
LABELS = [
    "written by",
    "state",
    "frames",
    "dtype",
    "dimensions",
    "scale",
    "chunks",
    "shards",
    "compression",
    "levels",
    "channels",
    "positions",
    "plate",
    "size on disk",
]
#: labels whose value depends only on the acquisition, not on the format
SHARED = [
    "state",
    "frames",
    "dtype",
    "dimensions",
    "scale",
    "compression",
    "levels",
    "channels",
    "positions",
    "plate",
]

FRAME = [
    Dimension("y", 6, unit="um", scale=0.5),
    Dimension("x", 8, unit="um", scale=0.5),
]
POSITIONS = [
    Position("A1-0", plate_row="A", plate_column="1", x_coord=1.5, y_coord=-2.0),
    Position("B2-0", plate_row="B", plate_column="2", x_coord=10.0, z_coord=3.25),
]
ACQUISITIONS: dict[str, dict[str, Any]] = {
    "image": {
        "dimensions": [
            Dimension("t", 3, unit="s", scale=2.0),
            Dimension("c", coords=[Channel("DAPI"), Channel("GFP")]),
            *FRAME,
        ]
    },
    "positions": {
        "dimensions": [Dimension("t", 2), Dimension("p", coords=POSITIONS), *FRAME]
    },
    "plate": {
        "dimensions": [Dimension("t", 2), Dimension("p", coords=POSITIONS), *FRAME],
        "plate": Plate(["A", "B"], ["1", "2"], name="screen"),
    },
}
SINGLE_FILE = OmeTiffFormat(prefer_single_file="always")
PER_POSITION = OmeTiffFormat(prefer_single_file="never")


@dataclass(frozen=True)
class Case:
    """One dataset: an acquisition written in one format and layout."""

    acquisition: str
    format: Any
    name: str
    layout: str


CASES = {
    "scratch-image": Case("image", "scratch", "scratch-image", "root"),
    "scratch-plate": Case("plate", "scratch", "scratch-plate", "root"),
    "zarr-image": Case("image", "ome-zarr", "image.ome.zarr", "image"),
    "zarr-positions": Case(
        "positions", "ome-zarr", "positions.ome.zarr", "bioformats2raw"
    ),
    "zarr-plate": Case("plate", "ome-zarr", "plate.ome.zarr", "plate"),
    "tiff-image": Case("image", "ome-tiff", "image.ome.tiff", "single-file"),
    "tiff-positions": Case(
        "positions", PER_POSITION, "positions.ome.tiff", "file-per-position"
    ),
    "tiff-plate": Case("plate", SINGLE_FILE, "plate.ome.tiff", "single-file"),
}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ome_writers", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def write(root: Path, case: Case) -> AcquisitionSettings:
    settings = AcquisitionSettings(
        root_path=str(root / case.name),
        dtype="uint16",
        format=case.format,
        **ACQUISITIONS[case.acquisition],
    )
    with create_stream(settings) as stream:
        for n in range(settings.num_frames or 0):
            stream.append(np.full(settings.frame_shape, n, "uint16"))
    return settings


@dataclass(frozen=True)
class Described:
    settings: AcquisitionSettings
    text: list[str]
    data: dict[str, Any]


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Described]:
    """Every case written once, and described as text and as JSON."""
    root = tmp_path_factory.mktemp("info")
    out = {}
    for case_id, case in CASES.items():
        settings = write(root, case)
        path = settings.output_path
        text = run("info", path)
        assert text.returncode == 0, text.stderr
        as_json = run("info", path, "--json")
        assert as_json.returncode == 0, as_json.stderr
        out[case_id] = Described(
            settings, text.stdout.splitlines(), json.loads(as_json.stdout)
        )
    return out


def labelled(lines: list[str]) -> dict[str, str]:
    """``label -> value`` of the labelled lines (indented by two spaces)."""
    out = {}
    for line in lines[1:]:
        if line.startswith("  ") and not line.startswith("   "):
            label, _, value = line.strip().partition(":")
            out[label] = value.strip()
    return out


def position_lines(lines: list[str]) -> list[str]:
    """The position lines without their path (where the pixels are differs)."""
    out = []
    for line in lines:
        if line.startswith("    ") and not line.strip().startswith("..."):
            name, _, rest = line.strip().partition(": ")
            out.append(" · ".join([name, *rest.split(" · ")[1:]]))
    return out


@pytest.mark.parametrize("case_id", list(CASES))
def test_every_format_has_the_same_labels(
    described: dict[str, Described], case_id: str
) -> None:
    got = described[case_id]
    case = CASES[case_id]
    labels = [
        line.strip().partition(":")[0]
        for line in got.text[1:]
        if line.startswith("  ") and not line.startswith("   ")
    ]
    assert labels == LABELS
    first = got.text[0]
    assert first.startswith(f"{got.settings.output_path}: ")
    assert first.endswith(f" {case.layout.replace('-', ' ')}, complete")
    values = labelled(got.text)
    assert values["state"] == "complete"
    frames = got.settings.num_frames
    assert values["frames"] == f"{frames} of {frames} written"
    assert values["written by"].startswith("ome_writers ")
    assert values["size on disk"].endswith(")")


@pytest.mark.parametrize(
    "group",
    [
        pytest.param(["scratch-image", "zarr-image", "tiff-image"], id="image"),
        pytest.param(["zarr-positions", "tiff-positions"], id="positions"),
        pytest.param(["scratch-plate", "zarr-plate", "tiff-plate"], id="plate"),
    ],
)
def test_one_acquisition_reads_the_same_in_every_format(
    described: dict[str, Described], group: list[str]
) -> None:
    first, *others = (described[case_id] for case_id in group)
    shared = {k: labelled(first.text)[k] for k in SHARED}
    for other in others:
        assert {k: labelled(other.text)[k] for k in SHARED} == shared
        assert position_lines(other.text) == position_lines(first.text)
        same_keys = ("shape", "dimensions", "channels", "acquisition_order", "plate")
        for key in same_keys:
            if key == "dimensions":  # chunks are the format's own business
                strip = [{**d, "chunk": None, "shard": None} for d in other.data[key]]
                assert strip == [
                    {**d, "chunk": None, "shard": None} for d in first.data[key]
                ]
            else:
                assert other.data[key] == first.data[key], key


def test_the_text_says_what_was_written(described: dict[str, Described]) -> None:
    values = labelled(described["zarr-image"].text)
    assert values["dimensions"] == "t 3 · c 2 · y 6 · x 8"
    assert values["scale"] == "t 2 s · y 0.5 µm · x 0.5 µm"
    assert values["chunks"] == "t 1 · c 1 · y 6 · x 8"
    assert values["channels"] == "DAPI, GFP"
    assert values["positions"] == "1"
    plate = described["zarr-plate"].text
    assert (
        labelled(plate)["plate"] == "screen, 2 rows, 2 columns, 2 wells with positions"
    )
    assert position_lines(plate) == [
        "A1-0 · well A1 · stage x 1.5 y -2 µm",
        "B2-0 · well B2 · stage x 10 z 3.25 µm",
    ]


@pytest.mark.parametrize("case_id", list(CASES))
def test_json_matches_the_settings(
    described: dict[str, Described], case_id: str
) -> None:
    got = described[case_id]
    settings, data = got.settings, got.data
    case = CASES[case_id]
    by_name = {d.name: d for d in settings.dimensions}
    stored = [*settings.storage_dimension_names, "y", "x"]
    assert [(d["name"], d["size"]) for d in data["dimensions"]] == [
        (name, by_name[name].count) for name in stored
    ]
    assert [d["type"] for d in data["dimensions"]] == [by_name[n].type for n in stored]
    assert not any(d["unbounded"] for d in data["dimensions"])
    for d in data["dimensions"][-2:]:
        assert (d["unit"], d["scale"]) == ("micrometer", 0.5)
    assert data["shape"] == [by_name[name].count for name in stored]
    assert data["frame_shape"] == list(settings.frame_shape)
    assert data["dtype"] == settings.dtype == "uint16"
    assert data["format"] == settings.format.name
    assert data["layout"] == case.layout
    assert data["writer"] == "ome_writers"
    assert data["acquisition_order"] == [d.name for d in settings.dimensions]
    assert data["frames_written"] == data["frames_total"] == settings.num_frames
    assert data["complete"] is True
    assert data["interrupted"] is False
    assert data["state"] == "complete"
    assert data["journal"] is None
    assert data["compression"] == "none"
    assert data["levels"] == 1
    assert data["bytes_on_disk"] > 0
    assert data["path"] == settings.output_path
    assert [p["name"] for p in data["positions"]] == [
        p.name for p in settings.positions
    ]
    for position, declared in zip(data["positions"], settings.positions):
        assert position["shape"] == data["shape"]
        expected = (declared.x_coord, declared.y_coord, declared.z_coord)
        assert (position["x_um"], position["y_um"], position["z_um"]) == expected
        well = (declared.plate_row, declared.plate_column)
        in_plate = settings.plate is not None
        assert (position["plate_row"], position["plate_column"]) == (
            well if in_plate else (None, None)
        )
    if settings.plate is None:
        assert data["plate"] is None
    else:
        assert data["plate"] == {
            "name": settings.plate.name,
            "rows": settings.plate.row_names,
            "columns": settings.plate.column_names,
            "wells": 2,
        }
    if case.acquisition == "image":
        assert data["channels"] == ["DAPI", "GFP"]
    else:
        assert data["channels"] == []


def test_json_keys_are_stable(described: dict[str, Described]) -> None:
    """The keys the README documents, for every format."""
    keys = {
        "path",
        "format",
        "format_version",
        "layout",
        "writer",
        "writer_version",
        "engine",
        "state",
        "complete",
        "interrupted",
        "journal",
        "dtype",
        "shape",
        "frame_shape",
        "dimensions",
        "acquisition_order",
        "channels",
        "positions",
        "plate",
        "compression",
        "frames_written",
        "frames_total",
        "levels",
        "bytes_on_disk",
    }
    dim_keys = {"name", "type", "size", "unbounded", "unit", "scale", "chunk", "shard"}
    position_keys = {"name", "path", "shape", "x_um", "y_um", "z_um"}
    position_keys |= {"plate_row", "plate_column"}
    for got in described.values():
        assert set(got.data) == keys
        assert all(set(d) == dim_keys for d in got.data["dimensions"])
        assert all(set(p) == position_keys for p in got.data["positions"])
    assert described["zarr-image"].data["engine"] in (
        "tensorstore",
        "zarr-python",
        "acquire-zarr",
    )
    assert described["tiff-image"].data["engine"] == "tifffile"
    assert described["zarr-image"].data["format_version"] == "0.5"


_DIE_BEFORE_CLOSE = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from ome_writers import AcquisitionSettings, Dimension, create_stream

    settings = AcquisitionSettings(
        root_path=sys.argv[1],
        format=sys.argv[2],
        dtype="uint8",
        dimensions=[
            Dimension("t", None),
            Dimension("p", coords=["a", "b"]),
            Dimension("y", 4),
            Dimension("x", 4),
        ],
    )
    stream = create_stream(settings)
    for n in range(5):
        stream.append(np.full((4, 4), n, "uint8"))
    os._exit(0)  # no close(): as a killed writer
    """
)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        pytest.param("run", "scratch", id="scratch"),
        pytest.param("run.ome.zarr", "ome-zarr", id="ome-zarr"),
        pytest.param("run.ome.tiff", "ome-tiff", id="ome-tiff"),
    ],
)
def test_an_interrupted_output_reads_as_interrupted(
    tmp_path: Path, name: str, fmt: str
) -> None:
    root = tmp_path / name
    child = subprocess.run(
        [sys.executable, "-c", _DIE_BEFORE_CLOSE, str(root), fmt],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    # an OME-TIFF of two positions is a folder; info takes the root_path given
    text = run("info", root)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].endswith(", interrupted")
    values = labelled(lines)
    assert values["state"].startswith("interrupted: the writer died before close()")
    assert "'ome-writers recover " in values["state"]
    assert values["frames"] == "5 written (unbounded)"
    # 5 frames of 2 positions fill 3 steps, whatever each format declared ahead
    assert values["dimensions"] == "t 3 (unbounded) · y 4 · x 4"
    as_json = run("info", root, "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["state"] == "interrupted"
    assert data["interrupted"] is True
    assert data["complete"] is False
    assert data["frames_written"] == 5
    assert data["frames_total"] is None
    assert data["dimensions"][0] == {**data["dimensions"][0], "size": 3}
    assert data["dimensions"][0]["unbounded"] is True
    assert [p["shape"] for p in data["positions"]] == [[3, 4, 4]] * 2
    assert (data["journal"] is None) == (fmt == "scratch")
    recovered = run("recover", data["path"])
    assert recovered.returncode == 0, recovered.stderr
    after = json.loads(run("info", data["path"], "--json").stdout)
    assert (after["state"], after["frames_written"]) == ("complete", 5)
    assert after["dimensions"] == data["dimensions"]


def test_thousands_of_positions_are_capped(tmp_path: Path) -> None:
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "many"),
        format="scratch",
        dtype="uint8",
        dimensions=[Dimension("p", 25), Dimension("y", 2), Dimension("x", 2)],
    )
    with create_stream(settings) as stream:
        for _ in range(25):
            stream.append(np.zeros((2, 2), "uint8"))
    text = run("info", settings.output_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert labelled(lines)["positions"] == "25"
    assert len(position_lines(lines)) == 20
    assert "    ... and 5 more" in lines
    assert labelled(lines)["plate"] == "none"  # the labels go on after the list
    data = json.loads(run("info", settings.output_path, "--json").stdout)
    assert [p["name"] for p in data["positions"]] == [str(i) for i in range(25)]


def test_json_of_a_non_dataset_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run("info", tmp_path, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
