"""What readers of OME-Zarr see: strict schema validity, stage placement, windows.

ngff-zarr's strict OME-Zarr 0.5 schemas (the SHOULDs as well as the MUSTs)
check every group of every layout; translations and rendering windows are
read back from the written attributes with zarr-python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ngff_zarr
import numpy as np
import pytest
import zarr

from ome_writers import (
    AcquisitionSettings,
    Channel,
    Dimension,
    Plate,
    Position,
    create_stream,
    dims_from_standard_axes,
)

if TYPE_CHECKING:
    from pathlib import Path

YX = dims_from_standard_axes({"y": 6, "x": 5})
WELL_POSITIONS = [
    Position(name="fov0", plate_row="A", plate_column="1", x_coord=1.0, y_coord=2.0),
    Position(name="fov1", plate_row="A", plate_column="1", x_coord=3.0, y_coord=2.0),
    Position(name="fov0", plate_row="B", plate_column="2", x_coord=9.0, y_coord=9.0),
]
LAYOUTS = [
    pytest.param(dims_from_standard_axes({"t": 2, "c": 2, "z": 2}), None, id="image"),
    pytest.param(
        dims_from_standard_axes({"p": ["a", "b"], "c": 2}), None, id="bioformats2raw"
    ),
    pytest.param(
        [Dimension("p", coords=WELL_POSITIONS), Dimension("c", coords=["DAPI"])],
        Plate.from_standard_wells(96, name="screen"),
        id="plate",
    ),
]


def _write(root: Path, dims: list, plate: Plate | None, dtype: str = "uint16") -> Any:
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=[*dims, *YX],
        dtype=dtype,
        plate=plate,
        format="zarr-python",
    )
    with create_stream(settings) as stream:
        for n in range(settings.num_frames or 0):
            stream.append(np.full((6, 5), n + 0.5, dtype))
    return stream


def _groups(root: Path) -> list[tuple[str, str]]:
    """(path, NGFF model) of every OME group, found from the metadata."""
    ome = zarr.open_group(root, mode="r").attrs["ome"]
    if "multiscales" in ome:
        return [("", "image")]
    if "plate" in ome:
        out = [("", "plate")]
        for well in ome["plate"]["wells"]:
            out.append((well["path"], "well"))
            images = zarr.open_group(root / well["path"], mode="r").attrs["ome"]
            out += [
                (f"{well['path']}/{i['path']}", "image")
                for i in images["well"]["images"]
            ]
        return out
    series = zarr.open_group(root / "OME", mode="r").attrs["ome"]["series"]
    return [(s, "image") for s in series]


@pytest.mark.parametrize(("dims", "plate"), LAYOUTS)
def test_every_group_passes_strict_validation(
    tmp_path: Path, dims: list, plate: Plate | None
) -> None:
    root = tmp_path / "out.ome.zarr"
    _write(root, dims, plate)
    groups = _groups(root)
    assert len(groups) >= 1
    for path, model in groups:
        attributes = dict(zarr.open_group(root / path, mode="r").attrs)
        ngff_zarr.validate(attributes, version="0.5", model=model, strict=True)


def _transforms(root: Path, path: str) -> dict[str, list[float]]:
    (multiscale,) = zarr.open_group(root / path, mode="r").attrs["ome"]["multiscales"]
    return {
        t["type"]: t[t["type"]]
        for t in multiscale["datasets"][0]["coordinateTransformations"]
    }


def test_plate_fields_are_placed_at_their_stage_positions(tmp_path: Path) -> None:
    root = tmp_path / "out.ome.zarr"
    dims, plate = LAYOUTS[2].values
    _write(root, dims, plate)
    # axes c, y, x: translation = stage y on y, stage x on x
    for path, pos in zip(["A/1/fov0", "A/1/fov1", "B/2/fov0"], WELL_POSITIONS):
        assert _transforms(root, path)["translation"] == [0.0, pos.y_coord, pos.x_coord]
    acquisition = zarr.open_group(root, mode="r").attrs["ome"]["plate"]["acquisitions"]
    assert acquisition == [{"id": 0, "name": "screen", "maximumfieldcount": 2}]


@pytest.mark.parametrize(
    ("unit", "expected_x"),
    [
        pytest.param(None, 150.0, id="micrometer-default"),
        pytest.param("nm", 150_000.0, id="nanometer"),
        pytest.param("mm", 0.15, id="millimeter"),
    ],
)
def test_stage_translation_in_the_axis_unit(
    tmp_path: Path, unit: str | None, expected_x: float
) -> None:
    root = tmp_path / "out.ome.zarr"
    position = Position(name="s", x_coord=150.0, y_coord=-20.0, z_coord=3.0)
    dims = [
        Dimension("p", coords=[position, Position(name="u")]),
        Dimension("z", 2, unit="um", scale=0.5, translation=1.0),
        Dimension("y", 6, unit=unit or "um"),
        Dimension("x", 5, unit=unit or "um"),
    ]
    settings = AcquisitionSettings(root_path=str(root), dimensions=dims, dtype="uint8")
    with create_stream(settings) as stream:
        for _ in range(4):
            stream.append(np.zeros((6, 5), "uint8"))
    translation = _transforms(root, "s")["translation"]
    assert translation == pytest.approx(
        [1.0 + 3.0, -20.0 * expected_x / 150.0, expected_x]
    )
    assert "translation" not in _transforms(root, "u") or _transforms(root, "u")[
        "translation"
    ] == [1.0, 0.0, 0.0]


def test_float_images_get_a_window_from_their_data(tmp_path: Path) -> None:
    root = tmp_path / "out.ome.zarr"
    dims = [Dimension("t", 3), Dimension("c", coords=[Channel("a"), Channel("b")])]
    settings = AcquisitionSettings(
        root_path=str(root), dimensions=[*dims, *YX], dtype="float32"
    )
    with create_stream(settings) as stream:
        for n in range(6):
            frame = np.linspace(-1.0, 1.0, 30, dtype="float32").reshape(6, 5) * (n + 1)
            frame[0, 0] = np.nan  # not part of the range
            stream.append(frame)
    channels = zarr.open_group(root, mode="r").attrs["ome"]["omero"]["channels"]
    # channel a has frames 0, 2, 4 (scales 1, 3, 5); b has 2, 4, 6
    windows = [(c["window"]["min"], c["window"]["max"]) for c in channels]
    assert windows == [
        pytest.approx((-5.0 * 27 / 29, 5.0)),
        pytest.approx((-6.0 * 27 / 29, 6.0)),
    ]
    assert all(c["window"]["start"] == c["window"]["min"] for c in channels)
