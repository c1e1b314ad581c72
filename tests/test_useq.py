"""useq-schema MDASequence -> settings: shapes, metadata, refusals.

Every bounded case is also checked against useq's own event order: event
``n`` of the sequence must be frame ``n`` of the settings, at the position
whose stage coordinates the event visits.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import useq

from ome_writers import (
    AcquisitionSettings,
    Plate,
    dims_from_useq,
    useq_to_acquisition_settings,
)

W, H = 32, 24


def _grid(rows: int, columns: int) -> dict[str, Any]:
    return {"rows": rows, "columns": columns, "fov_width": 10, "fov_height": 10}


def _plate_plan(**kwargs: Any) -> useq.WellPlatePlan:
    return useq.WellPlatePlan(
        plate=24, a1_center_xy=(0, 0), selected_wells=([0, 1], [0, 2]), **kwargs
    )


CASES = [
    pytest.param(
        useq.MDASequence(time_plan={"interval": 2, "loops": 3}),
        [("t", 3, "time", 2.0, "second")],
        None,
        id="time",
    ),
    pytest.param(
        useq.MDASequence(channels=["DAPI", "FITC"], z_plan={"range": 4, "step": 2}),
        [("c", 2, "channel", None, None), ("z", 3, "space", 2.0, "micrometer")],
        None,
        id="channels-z",
    ),
    pytest.param(
        useq.MDASequence(
            axis_order="tpzc",
            channels=["DAPI", "FITC"],
            z_plan={"top": 3, "bottom": 0, "step": 1},
            time_plan={"interval": 0.5, "loops": 2},
        ),
        [
            ("t", 2, "time", 0.5, "second"),
            ("z", 4, "space", 1.0, "micrometer"),
            ("c", 2, "channel", None, None),
        ],
        None,
        id="axis-order-tzc",
    ),
    pytest.param(
        useq.MDASequence(z_plan={"absolute": [0, 1, 5]}),
        [("z", 3, "space", None, "micrometer")],
        None,
        id="z-absolute-no-step",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[(1, 2, 3), useq.Position(x=5, y=6, z=7, name="B")],
            channels=["DAPI"],
        ),
        [("p", 2, "position", None, None), ("c", 1, "channel", None, None)],
        ["0", "B"],
        id="positions",
    ),
    pytest.param(
        useq.MDASequence(grid_plan=_grid(2, 2), channels=["DAPI"]),
        [("p", 4, "position", None, None), ("c", 1, "channel", None, None)],
        ["0000", "0001", "0002", "0003"],
        id="relative-grid-alone",
    ),
    pytest.param(
        useq.MDASequence(
            grid_plan={
                "top": 20,
                "left": 0,
                "bottom": 0,
                "right": 30,
                "fov_width": 10,
                "fov_height": 10,
            },
        ),
        [("p", 6, "position", None, None)],
        [f"{i:04d}" for i in range(6)],
        id="absolute-grid",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[(0, 0, 0), (100, 100, 1)],
            grid_plan=_grid(1, 2),
            channels=["DAPI", "FITC"],
        ),
        [("p", 4, "position", None, None), ("c", 2, "channel", None, None)],
        ["0", "0", "1", "1"],
        id="positions-then-grid",
    ),
    pytest.param(
        useq.MDASequence(
            axis_order="tgpc",
            stage_positions=[(0, 0, 0), (100, 100, 1)],
            grid_plan=_grid(1, 2),
            channels=["DAPI"],
        ),
        [("p", 4, "position", None, None), ("c", 1, "channel", None, None)],
        ["0", "1", "0", "1"],
        id="grid-then-positions",
    ),
    pytest.param(
        useq.MDASequence(
            axis_order="tcpg",
            stage_positions=[
                (0, 0, 0),
                useq.Position(
                    x=50, y=50, name="tiled", sequence={"grid_plan": _grid(1, 3)}
                ),
            ],
            channels=["DAPI", "FITC"],
        ),
        [("c", 2, "channel", None, None), ("p", 4, "position", None, None)],
        ["0", "tiled", "tiled", "tiled"],
        id="per-position-grid",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[(0, 0, 0), (10, 10, 0)],
            grid_plan={
                "num_points": 2,
                "max_width": 5,
                "max_height": 5,
                "random_seed": 1,
                "fov_width": 1,
                "fov_height": 1,
            },
        ),
        [("p", 4, "position", None, None)],
        ["0_p0000_g0000", "0_p0000_g0001", "1_p0001_g0000", "1_p0001_g0001"],
        id="random-points",
    ),
    pytest.param(
        useq.MDASequence(stage_positions=_plate_plan(), channels=["DAPI"]),
        [("p", 2, "position", None, None), ("c", 1, "channel", None, None)],
        ["fov0", "fov0"],
        id="plate",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=_plate_plan(well_points_plan=_grid(1, 2)),
            time_plan={"interval": 1, "loops": 2},
        ),
        [("t", 2, "time", 1.0, "second"), ("p", 4, "position", None, None)],
        ["fov0", "fov1", "fov0", "fov1"],
        id="plate-fields",
    ),
]


@pytest.mark.parametrize(("seq", "expected_dims", "position_names"), CASES)
def test_sequence_to_settings(
    seq: useq.MDASequence,
    expected_dims: list[tuple[Any, ...]],
    position_names: list[str] | None,
) -> None:
    result = useq_to_acquisition_settings(seq, W, H, pixel_size_um=0.25)
    dims = result["dimensions"]
    got = [(d.name, d.count, d.type, d.scale, d.unit) for d in dims[:-2]]
    assert got == expected_dims
    assert [(d.name, d.count, d.scale, d.unit) for d in dims[-2:]] == [
        ("y", H, 0.25, "micrometer"),
        ("x", W, 0.25, "micrometer"),
    ]
    channels = next((d for d in dims if d.name == "c"), None)
    if channels is not None:
        assert [c.name for c in channels.coords or []] == [
            ch.config for ch in seq.channels
        ]
    settings = AcquisitionSettings(dtype="uint16", **result)
    assert [p.name for p in settings.positions] == (position_names or ["0"])
    _check_event_order(seq, settings)


def _check_event_order(seq: useq.MDASequence, settings: AcquisitionSettings) -> None:
    """Event n of useq is frame n: same t/c/z index, same stage position."""
    events = list(seq)
    counts = [d.count or 0 for d in settings.dimensions[:-2]]
    assert len(events) == math.prod(counts)
    names = [d.name for d in settings.dimensions[:-2]]
    positions = settings.positions
    for n, event in enumerate(events):
        digits = []
        rest = n
        for count in reversed(counts):
            rest, digit = divmod(rest, count)
            digits.append(digit)
        index = dict(zip(names, reversed(digits)))
        for axis in "tcz":
            assert index.get(axis, 0) == event.index.get(axis, 0), (n, event)
        pos = positions[index.get("p", 0)]
        if pos.x_coord is not None:
            assert (pos.x_coord, pos.y_coord) == pytest.approx(
                (event.x_pos, event.y_pos)
            ), (n, event, pos)
        if "p" in index and (event.pos_name or "").startswith(("A1", "B3")):
            assert event.pos_name[:2] == f"{pos.plate_row}{pos.plate_column}"


def test_plate_from_well_plate_plan() -> None:
    result = useq_to_acquisition_settings(
        useq.MDASequence(stage_positions=_plate_plan(well_points_plan=_grid(1, 2))),
        W,
        H,
    )
    assert result["plate"] == Plate(
        row_names=["A", "B", "C", "D"],
        column_names=["1", "2", "3", "4", "5", "6"],
        name="24-well",
    )
    wells = [(p.plate_row, p.plate_column) for p in result["dimensions"][0].coords]
    assert wells == [("A", "1"), ("A", "1"), ("B", "3"), ("B", "3")]
    grid_cells = [(p.grid_row, p.grid_column) for p in result["dimensions"][0].coords]
    assert grid_cells == [(0, 0), (0, 1), (0, 0), (0, 1)]


def test_plate_from_position_wells() -> None:
    seq = useq.MDASequence(
        stage_positions=[
            useq.Position(x=0, y=0, name="a", plate_row=0, plate_col=1),
            useq.Position(x=9, y=0, name="b", plate_row=2, plate_col=0),
        ]
    )
    result = useq_to_acquisition_settings(seq, W, H)
    assert result["plate"] == Plate(row_names=["A", "B", "C"], column_names=["1", "2"])
    coords = result["dimensions"][0].coords
    assert [(p.plate_row, p.plate_column) for p in coords] == [("A", "2"), ("C", "1")]


def test_unbounded_time() -> None:
    seq = useq.MDASequence(time_plan={"interval": 0, "duration": 10}, channels=["DAPI"])
    dims = useq_to_acquisition_settings(seq, W, H)["dimensions"]
    assert [(d.name, d.count) for d in dims] == [
        ("t", None),
        ("c", 1),
        ("y", H),
        ("x", W),
    ]
    assert dims[0].scale is None
    assert AcquisitionSettings(dimensions=dims, dtype="uint8").is_unbounded


def test_units_chunks_and_shards() -> None:
    seq = useq.MDASequence(
        time_plan={"interval": 1, "loops": 4}, z_plan={"range": 2, "step": 1}
    )
    dims = useq_to_acquisition_settings(
        seq,
        W,
        H,
        units={"t": (100.0, "millisecond"), "z": None},
        chunk_shapes={"t": 2, "y": 12, "x": 16},
        shard_shapes={"y": 2},
    )["dimensions"]
    by_name = {d.name: d for d in dims}
    assert (by_name["t"].scale, by_name["t"].unit) == (100.0, "millisecond")
    assert (by_name["z"].scale, by_name["z"].unit) == (1.0, "micrometer")
    assert [d.chunk_size for d in dims] == [2, None, 12, 16]
    assert [d.shard_size_chunks for d in dims] == [None, None, 2, None]


@pytest.mark.parametrize("pixel_size_um", [0.0, -1.0])
def test_bad_pixel_size_warns_and_is_ignored(pixel_size_um: float) -> None:
    seq = useq.MDASequence(channels=["DAPI"])
    with pytest.warns(UserWarning, match=r"pixel_size_um=.* is not > 0"):
        dims = useq_to_acquisition_settings(seq, W, H, pixel_size_um=pixel_size_um)[
            "dimensions"
        ]
    assert [d.scale for d in dims[-2:]] == [None, None]


def test_dims_from_useq_is_deprecated() -> None:
    seq = useq.MDASequence(channels=["DAPI"])
    with pytest.warns(DeprecationWarning, match="useq_to_acquisition_settings"):
        dims = dims_from_useq(seq, W, H)
    assert dims == useq_to_acquisition_settings(seq, W, H)["dimensions"]


UNSUPPORTED = [
    pytest.param(
        useq.MDASequence(
            axis_order="tpcgz",
            stage_positions=[(0, 0, 0)],
            grid_plan=_grid(1, 2),
            channels=["DAPI"],
        ),
        r"\['c'\] between the position \(p\) and grid \(g\) axes",
        id="p-g-not-adjacent",
    ),
    pytest.param(
        useq.MDASequence(
            channels=[{"config": "DAPI"}, {"config": "FITC", "do_stack": False}],
            z_plan={"range": 2, "step": 1},
        ),
        r"\['FITC'\] have do_stack=False",
        id="do-stack-false",
    ),
    pytest.param(
        useq.MDASequence(
            channels=[{"config": "DAPI", "acquire_every": 2}],
            time_plan={"interval": 1, "loops": 4},
        ),
        r"\['DAPI'\] have acquire_every != 1",
        id="acquire-every",
    ),
    pytest.param(
        useq.MDASequence(stage_positions=_plate_plan(), grid_plan=_grid(1, 2)),
        "WellPlatePlan with a grid_plan",
        id="plate-and-grid",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[
                useq.Position(x=0, y=0, name="a", sequence={"channels": ["DAPI"]})
            ],
        ),
        r"'a' has its own \['channels'\]",
        id="sub-sequence-channels",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[
                useq.Position(
                    x=0, y=0, sequence={"time_plan": {"interval": 1, "loops": 2}}
                )
            ],
        ),
        r"0 has its own \['time_plan'\]",
        id="sub-sequence-time",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[
                useq.Position(x=0, y=0, sequence={"z_plan": {"range": 2, "step": 1}})
            ],
        ),
        r"own \['z_plan'\]",
        id="sub-sequence-z",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[
                useq.Position(x=0, y=0, sequence={"grid_plan": _grid(1, 2)})
            ],
            channels=["DAPI", "FITC"],
        ),
        r"own grid_plan, and axes \['c'\] inside the position axis",
        id="per-position-grid-inside-channels",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[
                useq.Position(x=0, y=0, sequence={"grid_plan": _grid(1, 2)})
            ],
            grid_plan=_grid(2, 1),
        ),
        "beside the sequence's grid_plan",
        id="per-position-and-global-grid",
    ),
]


@pytest.mark.parametrize(("seq", "message"), UNSUPPORTED)
def test_ragged_sequences_are_refused(seq: useq.MDASequence, message: str) -> None:
    with pytest.raises(NotImplementedError, match=message):
        useq_to_acquisition_settings(seq, W, H)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param(
            {"chunk_shapes": {"p": 2}},
            ValueError,
            r"unknown axis name\(s\) \['p'\]",
            id="chunk-position",
        ),
        pytest.param(
            {"shard_shapes": {"q": 2}},
            ValueError,
            r"shard_shapes .* \['q'\]",
            id="shard-unknown",
        ),
        pytest.param(
            {"units": {"t": "second"}},
            ValueError,
            r"units\['t'\] = 'second' is not",
            id="units-not-pair",
        ),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type, message: str) -> None:
    seq = useq.MDASequence(time_plan={"interval": 1, "loops": 2})
    with pytest.raises(error, match=message):
        useq_to_acquisition_settings(seq, W, H, **kwargs)


def test_not_a_sequence() -> None:
    with pytest.raises(TypeError, match=r"useq.MDASequence, got dict"):
        useq_to_acquisition_settings({"channels": ["DAPI"]}, W, H)  # type: ignore[arg-type]


def test_half_a_plate_well_warns() -> None:
    seq = useq.MDASequence(
        stage_positions=[useq.Position(x=0, y=0, name="a", plate_row=1)]
    )
    with pytest.warns(UserWarning, match="plate_row=1 but plate_col=None"):
        result = useq_to_acquisition_settings(seq, W, H)
    assert result["plate"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert result["dimensions"][0].coords[0].plate_row is None
