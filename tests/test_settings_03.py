"""Settings as code written for ome-writers 0.3 uses them (issue #15, item 1).

Names, derived properties and construction-time refusals that 0.3's public
API has, checked from its documented behaviour.
"""

from __future__ import annotations

from typing import Any

import pytest

from ome_writers import (
    AcquisitionSettings,
    Channel,
    Dimension,
    Plate,
    Position,
    PositionDimension,
    StandardAxis,
    dims_from_standard_axes,
)


def test_position_dimension_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="PositionDimension is deprecated"):
        dim = PositionDimension(positions=["a", Position(name="b", x_coord=1.0)])
    assert (dim.name, dim.type, dim.count) == ("p", "position", 2)
    assert [p.name for p in dim.coords or []] == ["a", "b"]
    assert isinstance(dim, Dimension)
    with (
        pytest.warns(DeprecationWarning, match="PositionDimension"),
        pytest.raises(ValueError, match="type 'position', not 'channel'"),
    ):
        PositionDimension(coords=["a"], type="channel")


@pytest.mark.parametrize(
    ("wells", "rows", "columns"),
    [
        pytest.param(6, ["A", "B"], 3, id="6"),
        pytest.param(24, ["A", "B", "C", "D"], 6, id="24"),
        pytest.param(96, [*"ABCDEFGH"], 12, id="96"),
        pytest.param(384, [chr(65 + i) for i in range(16)], 24, id="384"),
        pytest.param((2, 5), ["A", "B"], 5, id="shape"),
    ],
)
def test_plate_from_standard_wells(
    wells: int | tuple[int, int], rows: list[str], columns: int
) -> None:
    plate = Plate.from_standard_wells(wells)
    assert plate.row_names == rows
    assert plate.column_names == [str(i) for i in range(1, columns + 1)]


def test_1536_well_rows_continue_as_03_names_them() -> None:
    rows = Plate.from_standard_wells(1536).row_names
    assert len(rows) == 32
    assert rows[25:] == ["Z", "AA", "BB", "CC", "DD", "EE", "FF"]


@pytest.mark.parametrize(
    "bad", [pytest.param(95, id="not-standard"), pytest.param((0, 3), id="zero")]
)
def test_plate_from_standard_wells_refuses(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"standard well count|\(rows, columns\)"):
        Plate.from_standard_wells(bad)


def test_standard_axis_03_names() -> None:
    assert StandardAxis.CHANNEL is StandardAxis.C
    assert StandardAxis.TIME.dimension_type() == "time"
    assert StandardAxis.POSITION.unit() is None
    dim = StandardAxis.TIME.to_dimension(count=None, scale=2.0)
    assert (dim.name, dim.count, dim.unit, dim.scale) == ("t", None, "second", 2.0)


def _settings(fmt: str, **kwargs: Any) -> AcquisitionSettings:
    dims = dims_from_standard_axes(
        {"z": 3, "p": ["a", "b"], "t": 2, "c": 4, "y": 8, "x": 6}
    )
    root = {"ome-zarr": "x.ome.zarr", "ome-tiff": "x.ome.tiff", "scratch": ""}[fmt]
    return AcquisitionSettings(root_path=root, dimensions=dims, dtype="uint8", **kwargs)


@pytest.mark.parametrize(
    ("fmt", "storage", "permutation"),
    [
        pytest.param("ome-zarr", ["t", "c", "z"], (1, 2, 0), id="zarr-ome"),
        pytest.param("ome-tiff", ["z", "t", "c"], None, id="tiff-acquisition"),
        pytest.param("scratch", ["z", "t", "c"], None, id="scratch"),
    ],
)
def test_derived_properties(
    fmt: str, storage: list[str], permutation: tuple[int, ...] | None
) -> None:
    settings = _settings(fmt)
    assert [d.name for d in settings.index_dimensions] == ["z", "t", "c"]
    assert [d.name for d in settings.array_dimensions] == ["z", "t", "c", "y", "x"]
    assert settings.position_dimension_index == 1
    assert [d.name for d in settings.storage_index_dimensions] == storage
    assert [d.name for d in settings.array_storage_dimensions] == [*storage, "y", "x"]
    assert settings.storage_index_permutation == permutation
    assert settings.num_frames == 3 * 2 * 2 * 4


def test_no_position_dimension_index() -> None:
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes({"t": 2, "y": 4, "x": 4}), dtype="uint8"
    )
    assert settings.position_dimension_index is None


REFUSED = [
    pytest.param(
        lambda: Position(name="a", plate_row="A"),
        r"plate_row='A' but plate_column=None; give both or neither",
        id="plate-row-only",
    ),
    pytest.param(
        lambda: Position(name="a", grid_column=2),
        r"grid_row=None but grid_column=2",
        id="grid-column-only",
    ),
    pytest.param(
        lambda: Dimension("c", coords=[Channel("DAPI"), Channel("DAPI")]),
        r"channel names \['DAPI'\] repeat",
        id="duplicate-channels",
    ),
    pytest.param(
        lambda: Dimension("c", coords=["GFP", "GFP"], type="channel"),
        r"channel names \['GFP'\] repeat",
        id="duplicate-channel-strings",
    ),
    pytest.param(
        lambda: Dimension("q", coords=[Channel("DAPI")], type="other"),
        r"has Channel coords but type 'other'",
        id="channel-coords-other-type",
    ),
    pytest.param(
        lambda: Dimension("q", coords=[Position(name="s")], type="space"),
        r"has Position coords but type 'space'",
        id="position-coords-space-type",
    ),
    pytest.param(
        lambda: AcquisitionSettings(
            dimensions=dims_from_standard_axes({"t": 2, "y": 4, "x": 4}),
            dtype="uint8",
            plate=Plate(["A"], ["1"]),
        ),
        "plate is set but no dimension is of type 'position'",
        id="plate-without-positions",
    ),
    pytest.param(
        lambda: AcquisitionSettings(
            dimensions=dims_from_standard_axes({"p": ["s"], "y": 4, "x": 4}),
            dtype="uint8",
            plate=Plate(["A"], ["1"]),
        ),
        "position 's' has no plate_row/plate_column",
        id="plate-position-without-well",
    ),
]


@pytest.mark.parametrize(("make", "message"), REFUSED)
def test_refused_at_construction(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
