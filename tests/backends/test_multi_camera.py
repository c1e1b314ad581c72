"""The camera axis (``cam``) of multi-camera acquisitions, in every format.

OME-Zarr and OME-TIFF fold it into the channel axis (channel-major:
``<channel>_cam<k>``); scratch keeps it as an axis. Each case writes frames
that identify themselves and reads the files back with zarr-python or
tifffile/ome-types, comparing against an independent enumeration of the
acquisition order; the live view must give acquisition order in every format.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
import zarr
from ome_types import from_xml

from ome_writers import (
    AcquisitionSettings,
    Channel,
    Dimension,
    OmeTiffFormat,
    create_stream,
)

if TYPE_CHECKING:
    from pathlib import Path

Y, X = 4, 5

CASES = [
    pytest.param(
        [("t", 2), ("c", 2), ("z", 3), ("cam", 2)], ["DAPI", "FITC"], id="tczcam"
    ),
    pytest.param([("c", 3), ("cam", 2)], ["A", "B", "C"], id="c-cam"),
    pytest.param([("cam", 2), ("z", 2), ("c", 2)], ["A", "B"], id="cam-outer"),
    pytest.param([("z", 3), ("cam", 3)], None, id="cam-without-channels"),
    pytest.param([("t", None), ("c", 2), ("cam", 2)], ["A", "B"], id="unbounded"),
    pytest.param(
        [("p", 2), ("c", 2), ("z", 2), ("cam", 2)], ["A", "B"], id="positions"
    ),
]
FORMATS = ["tensorstore", "zarr-python", "acquire-zarr", "ome-tiff", "tiff-files"]
UNBOUNDED_FRAMES = 3 * 4  # three time points of the unbounded case


def _dimensions(spec: list[tuple[str, int | None]], channels: list[str] | None):
    dims = []
    for name, count in spec:
        if name == "c":
            dims.append(Dimension("c", coords=[Channel(n) for n in channels or []]))
        elif name == "cam":
            dims.append(Dimension("cam", count, type="other"))
        elif name == "p":
            dims.append(Dimension("p", coords=[f"s{i}" for i in range(count or 0)]))
        else:
            dims.append(Dimension(name, count))
    return [*dims, Dimension("y", Y), Dimension("x", X)]


def _frame(n: int) -> np.ndarray:
    return np.full((Y, X), n + 1, "uint16")


def _acquisition(spec, num_frames: int) -> list[dict[str, int]]:
    """Each frame's index per dimension name, enumerated independently."""
    counts = [c if c is not None else 10**6 for _, c in spec]
    names = [n for n, _ in spec]
    product = itertools.product(*(range(c) for c in counts))
    return [dict(zip(names, i)) for i in itertools.islice(product, num_frames)]


def _settings(tmp_path: Path, fmt: str, spec, channels) -> AcquisitionSettings:
    if fmt == "tiff-files":
        return AcquisitionSettings(
            root_path=str(tmp_path / "out.ome.tiff"),
            dimensions=_dimensions(spec, channels),
            dtype="uint16",
            format=OmeTiffFormat(prefer_single_file="never"),
        )
    suffix = ".ome.tiff" if fmt == "ome-tiff" else ".ome.zarr"
    return AcquisitionSettings(
        root_path=str(tmp_path / f"out{suffix}"),
        dimensions=_dimensions(spec, channels),
        dtype="uint16",
        format=fmt,
    )


def _stored_channel(index: dict[str, int], spec) -> int:
    """The folded channel index: channel-major, camera fastest."""
    n_cam = dict(spec)["cam"]
    return index.get("c", 0) * n_cam + index["cam"]


@pytest.mark.parametrize(("spec", "channels"), CASES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_camera_axis_folds_into_channels(
    tmp_path: Path, fmt: str, spec: list, channels: list[str] | None
) -> None:
    settings = _settings(tmp_path, fmt, spec, channels)
    num_frames = settings.num_frames or UNBOUNDED_FRAMES
    with create_stream(settings) as stream:
        for n in range(num_frames):
            stream.append(_frame(n), frame_metadata={"exposure_time": 0.001 * n})
    frames = _acquisition(spec, num_frames)
    n_cam = dict(spec)["cam"]
    n_chan = len(channels) if channels else 1
    expected_names = (
        [f"{c}_cam{k}" for c in channels for k in range(n_cam)]
        if channels
        else [f"cam{k}" for k in range(n_cam)]
    )
    positions = dict(spec).get("p") or 1
    read = _read_zarr if settings.format.name == "ome-zarr" else _read_tiff
    images = read(tmp_path, settings, positions)
    for p, (data, axes, names) in enumerate(images):
        assert names == expected_names
        assert data.shape[axes.index("c")] == n_chan * n_cam
        for n, index in enumerate(frames):
            if index.get("p", 0) != p:
                continue
            where = {"c": _stored_channel(index, spec)}
            where.update({a: index[a] for a in ("t", "z") if a in index})
            key = tuple(where.get(a, 0) for a in axes[:-2])
            np.testing.assert_array_equal(data[key], _frame(n), err_msg=str(index))
    # the live view keeps acquisition order, camera axis included
    view = stream.view()
    assert view.dims == (*(n for n, _ in spec), "y", "x")
    for n, index in enumerate(frames):
        key = tuple(index[name] for name, _ in spec)
        np.testing.assert_array_equal(view[key], _frame(n))


def _read_zarr(tmp_path: Path, settings: AcquisitionSettings, positions: int):
    root = tmp_path / "out.ome.zarr"
    paths = [""] if positions == 1 else [f"s{p}" for p in range(positions)]
    out = []
    for path in paths:
        group = zarr.open_group(root / path, mode="r")
        (multiscale,) = group.attrs["ome"]["multiscales"]
        axes = [a["name"] for a in multiscale["axes"]]
        types = [a["type"] for a in multiscale["axes"]]
        assert types.count("channel") == 1
        channel_axis = axes[types.index("channel")]
        array = zarr.open_array(root / path / "0", mode="r")
        root_attrs = zarr.open_group(root, mode="r").attrs["ome_writers"]
        (cam_group,) = [g for g in root_attrs["storage_groups"] if "cam" in g]
        assert cam_group == (["c", "cam"] if "c" in axes else ["cam"])
        names = [c["label"] for c in group.attrs["ome"]["omero"]["channels"]]
        axes = ["c" if a == channel_axis else a for a in axes]
        out.append((np.asarray(array[...]), axes, names))
    return out


def _read_tiff(tmp_path: Path, settings: AcquisitionSettings, positions: int):
    fmt = settings.format
    assert isinstance(fmt, OmeTiffFormat)
    if fmt.single_file(positions):
        series = [(tmp_path / "out.ome.tiff", p) for p in range(positions)]
    else:  # each file of the folder describes every position: read each from its own
        files = [tmp_path / "out" / f"out_p{p:03d}.ome.tiff" for p in range(positions)]
        series = [(f, p) for p, f in enumerate(files)]
    out = []
    for path, index in series:
        with tifffile.TiffFile(path) as tif:
            s = tif.series[index]
            data = s.asarray().reshape(s.get_shape(False)[: len(s.get_axes(False))])
            axes = [a.lower() for a in s.get_axes(False)]
            ome = from_xml(tif.ome_metadata, validate=True)
        if "s" in axes:
            data, axes = data[..., 0], axes[:-1]
        image = ome.images[index if len(ome.images) > 1 else 0]
        names = [c.name for c in image.pixels.channels]
        out.append((data, axes, names))
    return out


def test_scratch_keeps_the_camera_axis() -> None:
    spec: list[Any] = [("t", 2), ("c", 2), ("z", 3), ("cam", 2)]
    settings = AcquisitionSettings(
        dimensions=_dimensions(spec, ["DAPI", "FITC"]), dtype="uint16"
    )
    assert settings.storage_groups == [["t"], ["c"], ["z"], ["cam"]]
    with create_stream(settings) as stream:
        for n in range(24):
            stream.append(_frame(n))
    assert stream.arrays[0].dims == ("t", "c", "z", "cam", "y", "x")
    expected = np.stack([_frame(n) for n in range(24)]).reshape(2, 2, 3, 2, Y, X)
    np.testing.assert_array_equal(np.asarray(stream.arrays[0]), expected)


@pytest.mark.parametrize(
    ("fmt", "groups"),
    [
        pytest.param("ome-zarr", [["t"], ["c", "cam"], ["z"]], id="zarr"),
        pytest.param("ome-tiff", [["t"], ["c", "cam"], ["z"]], id="tiff"),
        pytest.param("scratch", [["t"], ["c"], ["z"], ["cam"]], id="scratch"),
    ],
)
def test_storage_groups(fmt: str, groups: list[list[str]]) -> None:
    spec: list[Any] = [("t", 2), ("c", 2), ("z", 3), ("cam", 2)]
    settings = AcquisitionSettings(
        dimensions=_dimensions(spec, ["DAPI", "FITC"]), dtype="uint16", format=fmt
    )
    assert settings.storage_groups == groups
    stored = {d.name: d for d in settings.stored_dimensions}
    if fmt != "scratch":
        assert stored["c"].count == 4
        assert [c.name for c in stored["c"].coords] == [
            "DAPI_cam0",
            "DAPI_cam1",
            "FITC_cam0",
            "FITC_cam1",
        ]
