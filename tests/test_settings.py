"""Settings models: construction, inference, properties, round trips, refusals."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ome_writers import (
    AcquisitionSettings,
    Channel,
    Dimension,
    Plate,
    Position,
    ScratchFormat,
    StandardAxis,
    create_stream,
    dims_from_standard_axes,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

YX = [{"name": "y", "count": 3}, {"name": "x", "count": 4}]

# ------------------------------------------------------------------ StandardAxis


@pytest.mark.parametrize(
    ("axis", "dimension_type", "unit"),
    [
        pytest.param(StandardAxis.X, "space", "micrometer", id="x"),
        pytest.param(StandardAxis.Y, "space", "micrometer", id="y"),
        pytest.param(StandardAxis.Z, "space", "micrometer", id="z"),
        pytest.param(StandardAxis.C, "channel", None, id="c"),
        pytest.param(StandardAxis.T, "time", "second", id="t"),
        pytest.param(StandardAxis.P, "position", None, id="p"),
    ],
)
def test_standard_axis(axis: StandardAxis, dimension_type: str, unit: str) -> None:
    assert axis.dimension_type() == dimension_type
    assert axis.unit() == unit
    assert StandardAxis(axis.value) is axis
    if axis is StandardAxis.P:
        dim = axis.to_dimension(coords=["a", "b"])
    else:
        dim = axis.to_dimension(count=3)
    assert (dim.name, dim.type, dim.unit) == (axis.value, dimension_type, unit)


def test_standard_axes_are_xyzctp() -> None:
    assert sorted(a.value for a in StandardAxis) == sorted("xyzctp")


# ------------------------------------------------------------------ Dimension


@pytest.mark.parametrize(
    ("kwargs", "expected_type"),
    [
        pytest.param(
            {"name": "c", "coords": [Channel(name="DAPI")]},
            "channel",
            id="channel-coords",
        ),
        pytest.param(
            {"name": "w", "coords": [Position(name="a")]},
            "position",
            id="position-coords",
        ),
        pytest.param({"name": "q", "count": 2, "unit": "ms"}, "time", id="unit-ms"),
        pytest.param(
            {"name": "q", "count": 2, "unit": "second"}, "time", id="unit-second"
        ),
        pytest.param({"name": "q", "count": 2, "unit": "um"}, "space", id="unit-um"),
        pytest.param(
            {"name": "q", "count": 2, "unit": "micrometer"},
            "space",
            id="unit-micrometer",
        ),
        pytest.param({"name": "t", "count": 2}, "time", id="name-t"),
        pytest.param({"name": "z", "count": 2}, "space", id="name-z"),
        pytest.param({"name": "angle", "count": 2}, "other", id="other"),
        pytest.param(
            {"name": "t", "count": 2, "type": "other"}, "other", id="explicit-wins"
        ),
    ],
)
def test_dimension_type_inference(kwargs: dict[str, Any], expected_type: str) -> None:
    assert Dimension(**kwargs).type == expected_type


def test_dimension_positional_name_and_count() -> None:
    dim = Dimension("z", 5)
    assert (dim.name, dim.count, dim.is_unbounded) == ("z", 5, False)
    assert Dimension("t").is_unbounded


def test_dimension_count_defaults_to_len_coords() -> None:
    assert Dimension("c", coords=[Channel(name="a"), Channel(name="b")]).count == 2


def test_position_dimension_strings_become_positions() -> None:
    dim = Dimension("p", coords=["A1", Position(name="B2", x_coord=1.5)])
    assert dim.type == "position"
    assert dim.count == 2
    assert dim.coords == [Position(name="A1"), Position(name="B2", x_coord=1.5)]


def test_channel_dimension_strings_become_channels() -> None:
    dim = Dimension("c", type="channel", coords=["DAPI", "GFP"])
    assert dim.coords == [Channel(name="DAPI"), Channel(name="GFP")]


def test_dimension_keeps_physical_fields() -> None:
    dim = Dimension(
        "z", 4, chunk_size=2, shard_size_chunks=2, unit="um", scale=0.5, translation=3
    )
    assert (dim.chunk_size, dim.shard_size_chunks) == (2, 2)
    assert (dim.unit, dim.scale, dim.translation) == ("um", 0.5, 3)


# ------------------------------------------------------------ dims_from_standard_axes


def test_dims_from_standard_axes_keeps_order_and_defaults() -> None:
    dims = dims_from_standard_axes({"t": None, "z": 5, "c": 2, "y": 64, "x": 32})
    assert [d.name for d in dims] == ["t", "z", "c", "y", "x"]
    assert [d.count for d in dims] == [None, 5, 2, 64, 32]
    assert [d.type for d in dims] == ["time", "space", "channel", "space", "space"]
    assert [d.unit for d in dims] == [
        "second",
        "micrometer",
        None,
        "micrometer",
        "micrometer",
    ]
    assert [d.chunk_size for d in dims] == [1, 1, 1, 64, 32]
    assert [d.shard_size_chunks for d in dims] == [None] * 5


def test_dims_from_standard_axes_chunk_and_shard_shapes() -> None:
    dims = dims_from_standard_axes(
        {"t": 8, "y": 64, "x": 64},
        chunk_shapes={"t": 4, "y": 32},
        shard_shapes={"t": 2},
    )
    assert [d.chunk_size for d in dims] == [4, 32, 64]
    assert [d.shard_size_chunks for d in dims] == [2, None, None]


@pytest.mark.parametrize(
    ("p", "names"),
    [
        pytest.param(3, ["0", "1", "2"], id="int"),
        pytest.param(["A1", "B2"], ["A1", "B2"], id="names"),
        pytest.param([Position(name="s", x_coord=1.0)], ["s"], id="positions"),
        pytest.param(["a", Position(name="b")], ["a", "b"], id="mixed"),
    ],
)
def test_dims_from_standard_axes_positions(p: Any, names: list[str]) -> None:
    dims = dims_from_standard_axes({"t": 2, "p": p, "y": 4, "x": 4})
    (pdim,) = [d for d in dims if d.name == "p"]
    assert pdim.type == "position"
    assert pdim.count == len(names)
    assert [c.name for c in pdim.coords] == names
    settings = AcquisitionSettings(dimensions=dims, dtype="uint8")
    assert [pos.name for pos in settings.positions] == names


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        pytest.param({"sizes": {"q": 2, "y": 4, "x": 4}}, "sizes", id="sizes"),
        pytest.param({"sizes": {"T": 2, "y": 4, "x": 4}}, "sizes", id="uppercase"),
        pytest.param(
            {"sizes": {"y": 4, "x": 4}, "chunk_shapes": {"w": 2}},
            "chunk_shapes",
            id="chunk_shapes",
        ),
        pytest.param(
            {"sizes": {"y": 4, "x": 4}, "shard_shapes": {"w": 2}},
            "shard_shapes",
            id="shard_shapes",
        ),
    ],
)
def test_dims_from_standard_axes_unknown_axis(kwargs: dict, where: str) -> None:
    with pytest.raises(ValueError, match=where) as info:
        dims_from_standard_axes(**kwargs)
    for allowed in "xyzctp":
        assert repr(allowed) in str(info.value)


def test_dims_from_standard_axes_list_only_for_p() -> None:
    with pytest.raises(ValueError, match="'c'"):
        dims_from_standard_axes({"c": ["DAPI"], "y": 4, "x": 4})


# ------------------------------------------------------------ Channel, Position, Plate


def test_channel_fields() -> None:
    ch = Channel(
        name="GFP",
        excitation_wavelength_nm=488,
        emission_wavelength_nm=510.5,
        fluorophore="EGFP",
        color="#00ff00",
    )
    assert ch.excitation_wavelength_nm == 488
    assert ch.emission_wavelength_nm == 510.5
    assert ch.fluorophore == "EGFP"
    assert ch.color == "00FF00"


@pytest.mark.parametrize(
    ("color", "stored"),
    [
        pytest.param("green", "008000", id="css-green"),
        pytest.param("lime", "00FF00", id="css-lime"),
        pytest.param("Magenta", "FF00FF", id="css-magenta-case"),
        pytest.param("#ff00ff80", "FF00FF80", id="hex-rgba"),
    ],
)
def test_channel_color_names(color: str, stored: str) -> None:
    assert Channel("a", color=color).color == stored


def test_position_fields() -> None:
    pos = Position(
        name="A1-0",
        plate_row="A",
        plate_column="1",
        grid_row=0,
        grid_column=2,
        x_coord=10.0,
        y_coord=-5.5,
        z_coord=1.0,
    )
    assert (pos.plate_row, pos.plate_column) == ("A", "1")
    assert (pos.grid_row, pos.grid_column) == (0, 2)
    assert (pos.x_coord, pos.y_coord, pos.z_coord) == (10.0, -5.5, 1.0)


def test_plate_fields() -> None:
    plate = Plate(row_names=["A", "B"], column_names=["1", "2", "3"], name="96")
    assert plate.row_names == ["A", "B"]
    assert plate.column_names == ["1", "2", "3"]
    assert plate.name == "96"
    assert Plate(row_names=["A"], column_names=["1"]).name is None


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        pytest.param(Channel, {"name": "a", "color": "greenish"}, "color", id="color"),
        pytest.param(
            Channel,
            {"name": "a", "excitation_wavelength_nm": 0},
            "excitation_wavelength_nm",
            id="excitation",
        ),
        pytest.param(
            Channel,
            {"name": "a", "emission_wavelength_nm": -1},
            "emission_wavelength_nm",
            id="emission",
        ),
        pytest.param(Channel, {}, "name", id="channel-name"),
        pytest.param(
            Position, {"name": "a", "grid_row": "top"}, "grid_row", id="grid_row"
        ),
        pytest.param(
            Position, {"name": "a", "x_coord": "left"}, "x_coord", id="x_coord"
        ),
        pytest.param(
            Plate, {"row_names": [], "column_names": ["1"]}, "row_names", id="rows"
        ),
        pytest.param(
            Plate,
            {"row_names": ["A"], "column_names": []},
            "column_names",
            id="columns",
        ),
        pytest.param(Dimension, {"name": "z", "count": 0}, "count", id="count-0"),
        pytest.param(Dimension, {"name": "z", "count": -2}, "count", id="count-neg"),
        pytest.param(Dimension, {"name": "", "count": 2}, "name", id="empty-name"),
        pytest.param(
            Dimension,
            {"name": "z", "count": 2, "chunk_size": 0},
            "chunk_size",
            id="chunk_size",
        ),
        pytest.param(
            Dimension, {"name": "z", "count": 2, "scale": 0}, "scale", id="scale"
        ),
        pytest.param(
            Dimension, {"name": "z", "count": 2, "type": "colour"}, "type", id="type"
        ),
        pytest.param(
            Dimension,
            {"name": "c", "count": 3, "coords": ["a", "b"]},
            "count",
            id="coords-mismatch",
        ),
        pytest.param(
            Dimension,
            {"name": "p", "type": "position"},
            "position",
            id="unbounded-position",
        ),
        pytest.param(
            Dimension, {"name": "z", "count": 2, "bogus": 1}, "bogus", id="extra-field"
        ),
        pytest.param(
            ScratchFormat, {"max_memory_bytes": -1}, "max_memory_bytes", id="budget"
        ),
        pytest.param(ScratchFormat, {"fsync": "sometimes"}, "fsync", id="fsync"),
    ],
)
def test_invalid_model(cls: type, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        cls.model_validate(kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: Dimension("p", coords=["a", "a"]),
            r"duplicate position name 'a'; .*unique name",
            id="duplicate-names",
        ),
        pytest.param(
            lambda: Dimension(
                "p", coords=[Position(name="s"), Position(name="s", x_coord=1.0)]
            ),
            r"duplicate position name 's'; .*unique name",
            id="duplicate-positions",
        ),
        pytest.param(
            lambda: Dimension("p", coords=["b", Position(name="a"), "b", "a"]),
            r"duplicate position name 'b'; .*unique name",
            id="duplicate-mixed",
        ),
        pytest.param(
            lambda: dims_from_standard_axes({"p": ["w", "w"], "y": 4, "x": 4}),
            r"duplicate position name 'w'; .*unique name",
            id="duplicate-standard-axes",
        ),
        pytest.param(
            lambda: Dimension(
                "p",
                coords=[
                    Position(name="fov0", plate_row="A", plate_column="1"),
                    Position(name="fov0", plate_row="A", plate_column="1"),
                ],
            ),
            r"duplicate position name 'fov0' in well \('A', '1'\); .*unique name",
            id="duplicate-in-well",
        ),
        pytest.param(
            lambda: Dimension(
                "p",
                coords=[
                    Position(name="s", grid_row=0, grid_column=1),
                    Position(name="s", grid_row=0, grid_column=1),
                ],
            ),
            r"duplicate position name 's' at grid cell \(0, 1\); .*unique name",
            id="duplicate-in-grid-cell",
        ),
        pytest.param(
            lambda: Dimension("t", count=True),
            r"count=True is a bool, not a number.*whole number.*unbounded",
            id="count-true",
        ),
        pytest.param(
            lambda: Dimension("t", count=False),
            r"count=False is a bool, not a number.*whole number",
            id="count-false",
        ),
        pytest.param(
            lambda: Dimension("y", 8, chunk_size=True),
            r"chunk_size=True is a bool, not a number.*whole number > 0, or None \[",
            id="chunk-size-true",
        ),
        pytest.param(
            lambda: Dimension("y", 8, shard_size_chunks=True),
            r"shard_size_chunks=True is a bool",
            id="shard-size-true",
        ),
        pytest.param(
            lambda: Dimension.model_validate({"name": "p", "count": True}),
            r"count=True is a bool",
            id="count-true-validated",
        ),
    ],
)
def test_invalid_dimension_message(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_distinct_position_names_are_accepted() -> None:
    dim = Dimension("p", coords=["a", Position(name="b"), "c"])
    assert [c.name for c in dim.coords or []] == ["a", "b", "c"]


# ------------------------------------------------------------------ ScratchFormat


def test_scratch_format() -> None:
    fmt = ScratchFormat()
    assert fmt.name == "scratch"
    assert fmt.backend == "scratch"
    assert fmt.max_memory_bytes == 4 * 1024**3
    assert fmt.spill_to_disk is True
    assert fmt.get_output_path("some/root") == "some/root"
    assert fmt.get_output_path("") == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("scratch", ScratchFormat(), id="name"),
        pytest.param("memory", ScratchFormat(), id="alias"),
        pytest.param(
            ScratchFormat(spill_to_disk=False),
            ScratchFormat(spill_to_disk=False),
            id="model",
        ),
        pytest.param(
            {"name": "scratch", "max_memory_bytes": 1024},
            ScratchFormat(max_memory_bytes=1024),
            id="dict",
        ),
        pytest.param(
            {"name": "memory", "spill_to_disk": False},
            ScratchFormat(spill_to_disk=False),
            id="dict-alias",
        ),
    ],
)
def test_format_accepts(value: Any, expected: ScratchFormat) -> None:
    settings = AcquisitionSettings(dimensions=YX, dtype="uint8", format=value)
    assert settings.format == expected
    assert settings.format.name == "scratch"


def test_format_defaults_to_scratch() -> None:
    assert AcquisitionSettings(dimensions=YX, dtype="uint8").format == ScratchFormat()


# ------------------------------------------------------------------ AcquisitionSettings


@pytest.mark.parametrize(
    ("sizes", "shape", "num_frames", "is_unbounded"),
    [
        pytest.param({"y": 3, "x": 4}, (3, 4), 1, False, id="yx"),
        pytest.param(
            {"t": 10, "c": 2, "y": 3, "x": 4}, (10, 2, 3, 4), 20, False, id="tcyx"
        ),
        pytest.param(
            {"t": None, "c": 2, "y": 3, "x": 4},
            (None, 2, 3, 4),
            None,
            True,
            id="unbounded",
        ),
        pytest.param(
            {"t": 2, "p": 3, "z": 4, "y": 3, "x": 4},
            (2, 3, 4, 3, 4),
            24,
            False,
            id="tpzyx",
        ),
    ],
)
def test_settings_properties(
    sizes: dict, shape: tuple, num_frames: int | None, is_unbounded: bool
) -> None:
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes(sizes), dtype="uint16"
    )
    assert settings.shape == shape
    assert settings.num_frames == num_frames
    assert settings.is_unbounded is is_unbounded


def test_positions_without_position_dimension() -> None:
    settings = AcquisitionSettings(dimensions=YX, dtype="uint8")
    assert settings.positions == (Position(name="0"),)


def test_positions_from_coords() -> None:
    stage = [Position(name="a", x_coord=1.0), Position(name="b", x_coord=2.0)]
    settings = AcquisitionSettings(
        dimensions=[Dimension("p", coords=stage), *YX], dtype="uint8"
    )
    assert settings.positions == tuple(stage)


@pytest.mark.parametrize(
    ("root_path", "expected"),
    [
        pytest.param("", "", id="memory"),
        pytest.param("data/run1", "data/run1", id="relative"),
        pytest.param("/abs/run", "/abs/run", id="absolute"),
    ],
)
def test_output_path(root_path: str, expected: str) -> None:
    settings = AcquisitionSettings(
        root_path=root_path, dimensions=YX, dtype="uint8", format="scratch"
    )
    assert settings.output_path == expected


def test_root_path_accepts_pathlike(tmp_path: Any) -> None:
    settings = AcquisitionSettings(
        root_path=tmp_path, dimensions=YX, dtype="uint8", format="scratch"
    )
    assert settings.root_path == str(tmp_path)


@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param("uint16", id="name"),
        pytest.param("u2", id="code"),
        pytest.param(np.uint16, id="type"),
        pytest.param(np.dtype("uint16"), id="dtype"),
    ],
)
def test_dtype_spellings(dtype: Any) -> None:
    assert AcquisitionSettings(dimensions=YX, dtype=dtype).dtype == "uint16"


def test_settings_defaults() -> None:
    settings = AcquisitionSettings(dimensions=YX, dtype="uint8")
    assert settings.root_path == ""
    assert settings.compression is None
    assert settings.storage_order == "ome"
    assert settings.plate is None
    assert settings.overwrite is False


PLATE = Plate(row_names=["A", "B"], column_names=["1", "2"], name="4-well")
ROUND_TRIPS = [
    pytest.param(
        {
            "dimensions": dims_from_standard_axes({"t": 10, "c": 2, "y": 8, "x": 8}),
            "dtype": "uint16",
        },
        id="tcyx",
    ),
    pytest.param(
        {
            "dimensions": dims_from_standard_axes({"t": None, "z": 3, "y": 8, "x": 8}),
            "dtype": "float32",
        },
        id="unbounded",
    ),
    pytest.param(
        {
            "dimensions": [
                Dimension(
                    "c",
                    coords=[
                        Channel(
                            name="DAPI",
                            excitation_wavelength_nm=405,
                            emission_wavelength_nm=450,
                            fluorophore="DAPI",
                            color="0000FF",
                        ),
                        Channel(name="GFP", color="#00ff00"),
                    ],
                ),
                *YX,
            ],
            "dtype": "uint8",
        },
        id="channels",
    ),
    pytest.param(
        {
            "dimensions": [
                Dimension(
                    "p",
                    coords=[
                        Position(
                            name="A1",
                            plate_row="A",
                            plate_column="1",
                            grid_row=0,
                            grid_column=1,
                            x_coord=1.5,
                            y_coord=-2.0,
                            z_coord=0.25,
                        ),
                        Position(name="B2", plate_row="B", plate_column="2"),
                    ],
                ),
                *YX,
            ],
            "dtype": "uint16",
            "plate": PLATE,
        },
        id="plate",
    ),
    pytest.param(
        {
            "dimensions": dims_from_standard_axes(
                {"t": 2, "p": ["a", "b"], "c": 2, "z": 3, "y": 4, "x": 4}
            ),
            "dtype": "uint16",
            "storage_order": ["z", "c", "t"],
        },
        id="storage-order-list",
    ),
    pytest.param(
        {
            "dimensions": dims_from_standard_axes(
                {"t": 2, "p": 2, "c": 2, "y": 4, "x": 4}
            ),
            "dtype": "int16",
            "storage_order": ["c", "p", "t"],
        },
        id="storage-order-with-p",
    ),
    pytest.param(
        {
            "dimensions": dims_from_standard_axes({"t": 2, "c": 2, "y": 4, "x": 4}),
            "dtype": "uint16",
            "storage_order": "acquisition",
        },
        id="storage-order-acquisition",
    ),
    pytest.param(
        {
            "dimensions": [
                Dimension(
                    "z",
                    3,
                    unit="um",
                    scale=0.5,
                    translation=-1.0,
                    chunk_size=2,
                    shard_size_chunks=2,
                ),
                Dimension("angle", coords=[0, 45.5, "ninety"]),
                *YX,
            ],
            "dtype": "float64",
        },
        id="physical-and-other-coords",
    ),
    pytest.param(
        {
            "dimensions": YX,
            "dtype": "uint16",
            "root_path": "/data/run",
            "overwrite": True,
            "format": {
                "name": "memory",
                "max_memory_bytes": 1024,
                "spill_to_disk": False,
                "fsync": "never",
            },
        },
        id="format-and-root",
    ),
]


@pytest.mark.parametrize("kwargs", ROUND_TRIPS)
def test_model_dump_round_trip(kwargs: dict[str, Any]) -> None:
    settings = AcquisitionSettings(**kwargs)
    dump = settings.model_dump(mode="json")
    assert AcquisitionSettings.model_validate(dump) == settings
    through_text = json.loads(json.dumps(dump))
    assert AcquisitionSettings.model_validate(through_text) == settings
    assert (
        AcquisitionSettings.model_validate(through_text).model_dump(mode="json") == dump
    )


def _dims(*specs: tuple[str, int | None]) -> list[dict[str, Any]]:
    return [{"name": n, "count": c} for n, c in specs]


INVALID_SETTINGS = [
    pytest.param({"dimensions": _dims(("x", 4))}, "dimensions", id="one-dimension"),
    pytest.param(
        {"dimensions": _dims(("t", 2), ("t", 3), ("y", 3), ("x", 4))},
        "duplicate",
        id="duplicate-names",
    ),
    pytest.param(
        {"dimensions": _dims(("t", 2), ("z", None), ("y", 3), ("x", 4))},
        "dimensions.*'z'",
        id="unbounded-not-first",
    ),
    pytest.param(
        {"dimensions": _dims(("y", None), ("x", 4))}, "dimensions", id="unbounded-frame"
    ),
    pytest.param(
        {"dimensions": _dims(("t", 0), ("y", 3), ("x", 4))}, "count", id="count-zero"
    ),
    pytest.param(
        {"dimensions": _dims(("t", -1), ("y", 3), ("x", 4))},
        "count",
        id="count-negative",
    ),
    pytest.param(
        {"dimensions": _dims(("y", 3), ("c", 2))}, "dimensions", id="channel-as-frame"
    ),
    pytest.param(
        {
            "dimensions": [
                {"name": "p", "coords": ["a"]},
                {"name": "q", "type": "position", "coords": ["b"]},
                *YX,
            ]
        },
        "position",
        id="two-position-dims",
    ),
    pytest.param({"dtype": "complex64"}, "dtype", id="dtype-complex"),
    pytest.param({"dtype": "float16"}, "dtype", id="dtype-float16"),
    pytest.param({"dtype": "not-a-dtype"}, "dtype", id="dtype-unknown"),
    pytest.param({"dtype": None}, "dtype", id="dtype-none"),
    pytest.param({"dtype": "bool"}, "dtype", id="dtype-bool"),
    pytest.param({"dtype": object}, "dtype", id="dtype-object"),
    pytest.param(
        {"storage_order": "fastest"}, "storage_order", id="storage-order-name"
    ),
    pytest.param(
        {"storage_order": ["t", "q"]}, "storage_order", id="storage-order-unknown-dim"
    ),
    pytest.param(
        {"storage_order": ["t"]}, "storage_order", id="storage-order-missing-dim"
    ),
    pytest.param(
        {"storage_order": ["t", "t", "c"]},
        "storage_order",
        id="storage-order-duplicate",
    ),
    pytest.param(
        {"storage_order": ["t", "c", "y"]},
        "storage_order",
        id="storage-order-frame-dim",
    ),
    pytest.param(
        {
            "dimensions": _dims(("t", None), ("c", 2), ("y", 3), ("x", 4)),
            "storage_order": ["c", "t"],
        },
        "storage_order",
        id="storage-order-unbounded-not-first",
    ),
    pytest.param({"compression": "zstd"}, "compression", id="compression"),
    pytest.param({"format": "zarr-v9"}, "format", id="format-unknown"),
    pytest.param({"format": {"name": "tiff9"}}, "format", id="format-dict-unknown"),
    pytest.param(
        {"format": {"name": "scratch", "max_memory_bytes": -5}},
        "max_memory_bytes",
        id="format-budget",
    ),
    pytest.param({"format": 42}, "format", id="format-type"),
    pytest.param(
        {"format": {"max_memory_bytes": 7}}, "format", id="format-dict-no-name"
    ),
    pytest.param(
        {
            "dimensions": [
                {
                    "name": "p",
                    "coords": [{"name": "w", "plate_row": "Z", "plate_column": "1"}],
                    "type": "position",
                },
                *YX,
            ],
            "plate": PLATE,
        },
        "plate_row",
        id="plate-row",
    ),
    pytest.param(
        {
            "dimensions": [
                {
                    "name": "p",
                    "coords": [{"name": "w", "plate_row": "A", "plate_column": "9"}],
                    "type": "position",
                },
                *YX,
            ],
            "plate": PLATE,
        },
        "plate_column",
        id="plate-column",
    ),
    pytest.param({"overwrite": "maybe"}, "overwrite", id="overwrite"),
    pytest.param({"exposure_ms": 10}, "exposure_ms", id="extra-field"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_SETTINGS)
def test_invalid_settings(overrides: dict[str, Any], field: str) -> None:
    kwargs: dict[str, Any] = {
        "dimensions": _dims(("t", 2), ("c", 2), ("y", 3), ("x", 4)),
        "dtype": "uint16",
        **overrides,
    }
    with pytest.raises(ValueError, match=field):
        AcquisitionSettings(**kwargs)


def test_settings_are_validated_on_assignment() -> None:
    settings = AcquisitionSettings(dimensions=YX, dtype="uint8")
    settings.dtype = "uint16"
    assert settings.dtype == "uint16"
    settings.dimensions = [{"name": "t", "count": 2}, *YX]  # type: ignore[list-item]
    assert settings.shape == (2, 3, 4)
    with pytest.raises(ValueError, match="dtype 'complex64' is not supported"):
        settings.dtype = "complex64"
    with pytest.raises(ValueError, match="duplicate names"):
        settings.dimensions = [*YX, *YX]  # type: ignore[list-item]
    # a refused value leaves the settings as they were
    assert settings.dtype == "uint16"
    assert settings.shape == (2, 3, 4)
    channel = Channel("DAPI")
    channel.color = "lime"
    assert channel.color == "00FF00"


def test_stream_keeps_its_own_settings() -> None:
    settings = AcquisitionSettings(
        dimensions=[{"name": "t", "count": 2}, *YX], dtype="uint8"
    )
    with create_stream(settings) as stream:
        settings.dtype = "uint16"
        settings.dimensions[0].name = "z"
        assert stream.settings.dtype == "uint8"
        assert stream.settings.dimensions[0].name == "t"
        stream.append(np.ones((3, 4), "uint8"))
        assert stream.view().dims == ("t", "y", "x")


@pytest.mark.parametrize(
    ("storage_order", "stored"),
    [
        pytest.param(["c", "t", "y", "x"], ["c", "t"], id="frame-dims-last"),
        pytest.param(["c", "t"], ["c", "t"], id="without-frame-dims"),
    ],
)
def test_storage_order_may_name_frame_dims(
    storage_order: list[str], stored: list[str]
) -> None:
    settings = AcquisitionSettings(
        dimensions=_dims(("t", 2), ("c", 2), ("y", 3), ("x", 4)),
        dtype="uint8",
        storage_order=storage_order,
    )
    assert settings.storage_dimension_names == stored


@pytest.mark.parametrize("order", [["y", "x", "t", "c"], ["t", "c", "x", "y"]])
def test_frame_dims_cannot_move(order: list[str]) -> None:
    with pytest.raises(ValueError, match=r"frame dimensions .* cannot be reordered"):
        AcquisitionSettings(
            dimensions=_dims(("t", 2), ("c", 2), ("y", 3), ("x", 4)),
            dtype="uint8",
            storage_order=order,
        )


@pytest.mark.parametrize("spelling", ["none", "None", "NONE", None])
def test_compression_none_spellings(spelling: str | None) -> None:
    settings = AcquisitionSettings(
        root_path="a.ome.zarr", dimensions=YX, dtype="uint8", compression=spelling
    )
    assert settings.compression is None


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        pytest.param(
            lambda: Channel("DAPI", emission_wavelength_nm=461),
            Channel(name="DAPI", emission_wavelength_nm=461),
            id="channel",
        ),
        pytest.param(
            lambda: Position("A1", x_coord=1.5),
            Position(name="A1", x_coord=1.5),
            id="position",
        ),
        pytest.param(
            lambda: Plate(["A", "B"], ["1"], "p96"),
            Plate(row_names=["A", "B"], column_names=["1"], name="p96"),
            id="plate",
        ),
        pytest.param(
            lambda: Dimension("t", 3, unit="second"),
            Dimension(name="t", count=3, unit="second"),
            id="dimension",
        ),
    ],
)
def test_models_take_their_leading_fields_positionally(made, expected):
    assert made() == expected


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Channel("a", "b"), id="too-many"),
        pytest.param(lambda: Position("a", name="b"), id="twice"),
    ],
)
def test_bad_positional_arguments_are_type_errors(make):
    with pytest.raises(TypeError, match=r"positional|both"):
        make()


@pytest.mark.parametrize(
    ("fmt", "order", "refused"),
    [
        pytest.param("ome-zarr", "acquisition", True, id="zarr-acquisition-zc"),
        pytest.param("ome-zarr", ["z", "c"], True, id="zarr-list-zc"),
        pytest.param("ome-zarr", ["c", "z"], False, id="zarr-list-cz"),
        pytest.param("ome-zarr", "ome", False, id="zarr-ome"),
        pytest.param("scratch", "acquisition", False, id="scratch-acquisition"),
        pytest.param("ome-tiff", "acquisition", False, id="tiff-acquisition"),
    ],
)
def test_storage_order_must_be_writable_by_the_format(fmt, order, refused):
    def make():
        return AcquisitionSettings(
            root_path="out",
            dimensions=dims_from_standard_axes({"z": 3, "c": 2, "y": 4, "x": 4}),
            dtype="uint16",
            format=fmt,
            storage_order=order,
        )

    if refused:
        with pytest.raises(ValueError, match="OME-Zarr"):
            make()
    else:
        assert make().storage_dimension_names in (["z", "c"], ["c", "z"])


@pytest.mark.parametrize(
    ("dims", "frame_type", "refused"),
    [
        pytest.param(
            [("t", 2, None), ("c", 2, None), ("z", 3, None)], None, None,
            id="tczyx-five",
        ),
        pytest.param(
            [("t", 2, None), ("c", 2, None), ("a", 2, "other"), ("z", 3, None)],
            None, r"6 axes \(at most 5\)", id="six-axes",
        ),
        pytest.param(
            [("t", 2, None), ("u", 2, "time")], None,
            r"2 time axes \(at most 1\)", id="two-time-axes",
        ),
        pytest.param(
            [("c", 2, None), ("d", 2, "channel")], None,
            r"2 channel axes \(at most 1\)", id="two-channel-axes",
        ),
        pytest.param(
            [("w", 2, "space"), ("z", 3, None)], None,
            r"4 space axes \(at most 3\)", id="four-space-axes",
        ),
        pytest.param(
            [("t", 2, None)], "other",
            r"frame axes \['y', 'x'\] not of type 'space'", id="frame-axes-not-space",
        ),
    ],
)  # fmt: skip
def test_ome_zarr_refuses_axes_the_spec_forbids(dims, frame_type, refused):
    def make(fmt):
        dimensions = [Dimension(n, c, type=t) for n, c, t in dims]
        frame = [Dimension(n, 4, type=frame_type) for n in ("y", "x")]
        return AcquisitionSettings(
            root_path="out",
            dimensions=[*dimensions, *frame],
            dtype="uint16",
            format=fmt,
        )

    make("scratch")  # any number of axes
    if refused is None:
        make("ome-zarr")
    else:
        with pytest.raises(ValueError, match=r"OME-Zarr 0.5 cannot store") as info:
            make("ome-zarr")
        assert info.match(refused)
        assert "format='scratch'" in str(info.value)


# ------------------------------------------------------- incomplete settings


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [
        pytest.param({"format": "scratch"}, "dimensions and dtype", id="scratch"),
        pytest.param({"root_path": "a.ome.zarr"}, "dimensions and dtype", id="zarr"),
        pytest.param(
            {"root_path": "a.ome.tiff", "dimensions": _dims(("y", 3), ("x", 4))},
            "dtype",
            id="no-dtype",
        ),
        pytest.param({"dtype": "uint8"}, "dimensions", id="no-dimensions"),
    ],
)
def test_incomplete_settings_wait_for_create_stream(
    tmp_path: Path, kwargs: dict[str, Any], missing: str
) -> None:
    if "root_path" in kwargs:
        kwargs = {**kwargs, "root_path": str(tmp_path / kwargs["root_path"])}
    settings = AcquisitionSettings(**kwargs)
    with pytest.raises(ValueError, match=f"incomplete: {missing} not set"):
        settings.validate_stream_ready()
    with pytest.raises(ValueError, match=f"incomplete: {missing} not set"):
        create_stream(settings)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="not known"):
        _ = settings.frame_shape if "dimensions" in missing else settings.itemsize


def test_incomplete_settings_completed_from_model_dump(tmp_path: Path) -> None:
    """What pymmcore-plus does: dump, merge dimensions and dtype, validate."""
    partial = AcquisitionSettings(root_path=str(tmp_path / "run.ome.zarr"))
    assert partial.format.name == "ome-zarr"
    dims = [Dimension(name="t", count=2).model_copy(update={"chunk_size": 2})]
    full = AcquisitionSettings.model_validate(
        {
            **partial.model_dump(),
            "dimensions": [*dims, *_dims(("y", 3), ("x", 4))],
            "dtype": "uint8",
        }
    )
    assert full.validate_stream_ready() is True
    assert full.dimensions[0].chunk_size == 2
    assert full.output_path == str(tmp_path / "run.ome.zarr")


def test_unknown_suffix_writes_ome_zarr_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"cannot be told from root_path 'run'"):
        settings = AcquisitionSettings(root_path="run")
    assert settings.format.name == "ome-zarr"


@pytest.mark.parametrize(
    ("root_path", "name", "output_name"),
    [
        pytest.param("", "scratch", "", id="empty"),
        pytest.param("run.zarr", "ome-zarr", "run.zarr", id="zarr"),
        pytest.param("run.ome.zarr", "ome-zarr", "run.ome.zarr", id="ome-zarr"),
        pytest.param("run.ome.tiff", "ome-tiff", "run.ome.tiff", id="ome-tiff"),
        pytest.param("run.ome.tif", "ome-tiff", "run.ome.tif", id="ome-tif"),
        pytest.param("run.tif", "ome-tiff", "run.tif", id="tif"),
        pytest.param("run.TIFF", "ome-tiff", "run.TIFF", id="tiff-upper"),
    ],
)
def test_auto_format_follows_root_path(
    root_path: str, name: str, output_name: str
) -> None:
    for fmt in ({}, {"format": "auto"}, {"format": None}):
        settings = AcquisitionSettings(root_path=root_path, **fmt)
        assert settings.format.name == name
        full = AcquisitionSettings.model_validate(
            {
                **settings.model_dump(),
                "dimensions": _dims(("y", 3), ("x", 4)),
                "dtype": "uint8",
            }
        )
        assert (full.format.name, full.output_path) == (name, output_name)


@pytest.mark.parametrize(
    "positions",
    [
        pytest.param(
            [
                Position(name="fov0", plate_row="A", plate_column="1"),
                Position(name="fov0", plate_row="A", plate_column="2"),
            ],
            id="same-name-other-well",
        ),
        pytest.param(
            [
                Position(name="s", grid_row=0, grid_column=0),
                Position(name="s", grid_row=0, grid_column=1),
            ],
            id="tiles-of-one-position",
        ),
    ],
)
def test_position_names_repeat_across_wells_and_tiles(
    positions: list[Position],
) -> None:
    dim = Dimension("p", coords=positions)
    assert [c.name for c in dim.coords or []] == [p.name for p in positions]
