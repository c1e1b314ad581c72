"""Regression tests for the hardening issue's defect classes (one test each).

Each was found by fuzzing the public API: a value accepted early that failed
late (at close, in a dependency), state that changed after ``append``, or a
check whose cost grew with the square of the input.
"""

from __future__ import annotations

import functools
import json
import threading
import tracemalloc
import warnings
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
    OmeZarrFormat,
    Position,
    WriteError,
    create_stream,
    dims_from_standard_axes,
)

if TYPE_CHECKING:
    from pathlib import Path

FRAME = np.zeros((4, 4), "uint16")


def _settings(root: Path | str, fmt: Any, **kwargs: Any) -> AcquisitionSettings:
    return AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 3, "y": 4, "x": 4}),
        dtype="uint16",
        format=fmt,
        **kwargs,
    )


@pytest.mark.parametrize("fmt", ["zarr-python", "tifffile", "scratch"])
def test_frame_metadata_is_copied_at_append(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / {"zarr-python": "a.ome.zarr", "tifffile": "a.ome.tiff"}.get(
        fmt, "a"
    )
    metadata = {"camera": {"gain": 1, "modes": ["fast"]}}
    with create_stream(_settings(root, fmt)) as stream:
        stream.append(FRAME, frame_metadata=metadata)
        metadata["camera"]["gain"] = 99  # the caller reuses its dict
        metadata["camera"]["modes"].append("late")
    if fmt == "zarr-python":
        records = zarr.open_group(root, mode="r").attrs["ome_writers"]["frame_metadata"]
        written = records[0]["camera"]
    elif fmt == "tifffile":
        with tifffile.TiffFile(root) as tif:
            ome = from_xml(tif.ome_metadata)
        (frame_map,) = [
            a
            for a in ome.structured_annotations.map_annotations
            if a.namespace == "ome_writers/frame_metadata"
        ]
        written = json.loads(frame_map.value.ms[0].value)
    else:
        line = (root / "frame_metadata.jsonl").read_text().splitlines()[0]
        written = json.loads(line)["camera"]
    assert written == {"gain": 1, "modes": ["fast"]}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: Position(name="fov\x07"), "Position.name", id="name"),
        pytest.param(
            lambda: Channel(name="DAPI", fluorophore="x\x00"),
            "Channel.fluorophore",
            id="fluorophore",
        ),
        pytest.param(
            lambda: Dimension("c", coords=["ok", "lone \ud800"]),
            "Channel.name",
            id="lone-surrogate",
        ),
    ],
)
def test_names_xml_cannot_hold_are_refused_at_construction(
    make: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=f"{message}: .* XML cannot store"):
        make()


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        pytest.param({"note": "bell \x07"}, "XML cannot store", id="control-value"),
        pytest.param({"key\x0b": 1}, "XML cannot store", id="control-key"),
        pytest.param({"a": [{"b": "\udfff"}]}, "XML cannot store", id="nested"),
        pytest.param({"delta_t": 10**400}, "not a finite number", id="huge"),
        pytest.param({"exposure_time": "10ms"}, "not a finite number", id="text"),
        pytest.param({"position_x": True}, "not a finite number", id="bool"),
    ],
)
@pytest.mark.parametrize("fmt", ["tifffile", "zarr-python"])
def test_frame_metadata_xml_cannot_hold_is_refused_at_append(
    tmp_path: Path, fmt: str, metadata: dict, message: str
) -> None:
    root = tmp_path / ("a.ome.tiff" if fmt == "tifffile" else "a.ome.zarr")
    with create_stream(_settings(root, fmt)) as stream:
        with pytest.raises(ValueError, match=message):
            stream.append(FRAME, frame_metadata=metadata)
        # the refused frame took no slot; the stream goes on and closes cleanly
        stream.append(FRAME + 1, frame_metadata={"note": "tab\tand emoji \U0001f52c"})
        assert stream.frames_written == 1
    if fmt == "tifffile":
        with tifffile.TiffFile(root) as tif:
            from_xml(tif.ome_metadata, validate=True)


def test_global_metadata_xml_cannot_hold_is_refused(tmp_path: Path) -> None:
    with create_stream(_settings(tmp_path / "a.ome.tiff", "tifffile")) as stream:
        with pytest.raises(ValueError, match="XML cannot store"):
            stream.set_global_metadata("lab", {"note": "\x1b[31mred"})
        stream.set_global_metadata("lab", {"note": "plain"})
        stream.append(FRAME)
    assert stream.global_metadata == {"lab": {"note": "plain"}}


@pytest.mark.parametrize("scale", [1e-300, 1e39])
def test_scales_ome_cannot_store_are_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        Dimension("z", 3, scale=scale)


def test_small_scale_ome_can_store_writes_valid_xml(tmp_path: Path) -> None:
    dims = [
        Dimension("z", 2, scale=1e-30, unit="um"),
        *dims_from_standard_axes({"y": 4, "x": 4}),
    ]
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "a.ome.tiff"),
        dimensions=dims,
        dtype="uint16",
        format=OmeTiffFormat(),
    )
    with create_stream(settings) as stream:
        stream.append(FRAME)
        stream.append(FRAME)
    with tifffile.TiffFile(tmp_path / "a.ome.tiff") as tif:
        ome = from_xml(tif.ome_metadata, validate=True)
    assert ome.images[0].pixels.physical_size_z == pytest.approx(1e-30)


def test_many_positions_validate_in_linear_time() -> None:
    """20,000 positions: the duplicate check was quadratic (minutes), now linear."""
    positions = [
        Position(name=f"p{i}", plate_row="A", plate_column="1") for i in range(20_000)
    ]
    dim = Dimension("p", coords=positions)
    assert dim.count == 20_000


@pytest.mark.parametrize("engine", ["tensorstore", "zarr-python"])
def test_a_long_skip_grows_the_array_once(tmp_path: Path, engine: str) -> None:
    """skip(10**6) on unbounded OME-Zarr: it stepped frame by frame, resizing."""
    root = tmp_path / "a.ome.zarr"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "c": 2, "y": 4, "x": 4}),
        dtype="uint16",
        format=engine,
    )
    with create_stream(settings) as stream:
        stream.append(FRAME + 1)
        stream.skip(frames=10**6)
        stream.append(FRAME + 2)
        assert stream.frames_written == 10**6 + 2
    array = zarr.open_array(root / "0", mode="r")
    steps = (10**6 + 2 + 1) // 2
    assert array.shape == (steps, 2, 4, 4)
    np.testing.assert_array_equal(array[0, 0], FRAME + 1)
    assert not np.asarray(array[1:3]).any()
    last = 10**6 + 1
    np.testing.assert_array_equal(array[last // 2, last % 2], FRAME + 2)


@pytest.mark.parametrize("engine", ["tensorstore", "zarr-python"])
@pytest.mark.parametrize(
    ("sizes", "chunks", "ops"),
    [
        pytest.param(
            {"t": None, "c": 2, "y": 4, "x": 4},
            {"t": 4},
            [1, -(10**9), 1],
            id="unbounded-t-chunk4-skip1e9",
        ),
        pytest.param(
            {"t": 10**6, "z": 4, "y": 4, "x": 4},
            {"z": 4},
            [2, -(4 * 10**6 - 5), 3],
            id="bounded-z-chunk4-skip-most",
        ),
        pytest.param(
            {"t": 6, "p": 2, "c": 3, "y": 4, "x": 4},
            {"t": 4, "c": 2},
            [1, -5, 3, -2, 1, -7, 4, -3, 5, -2, 1, -1],
            id="positions-blocks-open-across-skips",
        ),
    ],
)
def test_a_skip_over_multi_frame_chunks_costs_what_a_short_one_does(
    tmp_path: Path, engine: str, sizes: dict[str, int | None], chunks: dict, ops: list
) -> None:
    """With chunks spanning several frames, skip(10**6) counted every frame
    into its block one by one (20-60 s in tensorstore, minutes in zarr-python);
    now only blocks open at the time are visited."""
    root = tmp_path / "a.ome.zarr"
    dims = dims_from_standard_axes(sizes)
    dims = [d.model_copy(update={"chunk_size": chunks.get(d.name)}) for d in dims]
    settings = AcquisitionSettings(
        root_path=str(root), dimensions=dims, dtype="uint16", format=engine
    )
    written: dict[int, np.ndarray] = {}
    with create_stream(settings) as stream:
        for op in ops:
            if op < 0:
                stream.skip(frames=-op)
                continue
            for _ in range(op):
                frame = np.full((4, 4), len(written) + 1, "uint16")
                written[stream.frames_written] = frame
                stream.append(frame)
        total = stream.frames_written
    router_dims = list(dims[:-2])
    positions = next((d.count for d in router_dims if d.type == "position"), None)
    stored = [d for d in router_dims if d.type != "position"]
    counts = [d.count for d in router_dims]
    if counts[0] is None:
        per_step = int(np.prod(counts[1:]))
        counts[0] = -(-total // per_step)
    arrays = [
        zarr.open_array(root / (f"{p}/0" if positions else "0"), mode="r")
        for p in range(positions or 1)
    ]
    stored_counts = [counts[router_dims.index(d)] for d in stored]
    for array in arrays:
        assert array.shape == (*stored_counts, 4, 4)
    # every written frame in place; a sample of skipped frames around them reads 0
    for number in sorted(set(written) | {n + 1 for n in written if n + 1 < total}):
        index = np.unravel_index(number, counts)
        position = (
            index[[d.type for d in router_dims].index("position")] if positions else 0
        )
        storage = tuple(
            int(i) for i, d in zip(index, router_dims) if d.type != "position"
        )
        expected = written.get(number, np.zeros((4, 4), "uint16"))
        np.testing.assert_array_equal(arrays[position][storage], expected)


@pytest.mark.parametrize(
    ("sizes", "storage_order", "frames"),
    [
        # channels slowest in acquisition, time first in storage: every
        # time point of channel 0 is a storage row of its own, 300 frames
        # past the last one
        pytest.param({"c": 2, "t": 6, "z": 300}, "ome", 1501, id="gap-of-rows"),
        pytest.param({"t": 4, "z": 2, "c": 3}, "ome", 5, id="gap-in-a-step"),
        pytest.param({"t": None, "z": 500, "c": 2}, "ome", 3, id="unbounded"),
    ],
)
def test_acquire_zarr_stopped_early_out_of_storage_order(
    tmp_path: Path, sizes: dict[str, int | None], storage_order: Any, frames: int
) -> None:
    """acquire-zarr takes frames in storage order only; close appended a zero
    frame per slot before the last frame kept (~1 ms each, 2**16 took 50 s).
    Gaps are now appended many zero frames per call, and a frame kept past a
    long gap is written after close by another engine."""
    root = tmp_path / "a.ome.zarr"
    dims = dims_from_standard_axes({**sizes, "y": 4, "x": 4})
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims,
        dtype="uint16",
        format="acquire-zarr",
        storage_order=storage_order,
    )
    names = [d.name for d in dims[:-2]]
    stored = [group[0] for group in settings.storage_groups]
    per_step = int(np.prod([d.count for d in dims[1:-2]]))
    steps = -(-frames // per_step)
    acq_counts = [d.count or steps for d in dims[:-2]]
    with create_stream(settings) as stream:
        for n in range(frames):
            stream.append(np.full((4, 4), n + 1, "uint16"))
    array = zarr.open_array(root / "0", mode="r")
    assert array.shape == (*[acq_counts[names.index(n)] for n in stored], 4, 4)
    data = np.asarray(array[...])
    expected = np.zeros_like(data)
    for n in range(frames):
        index = dict(zip(names, np.unravel_index(n, acq_counts)))
        expected[tuple(int(index[name]) for name in stored)] = n + 1
    np.testing.assert_array_equal(data, expected)


def test_tiff_closed_before_a_position_got_a_frame_is_schema_valid(
    tmp_path: Path,
) -> None:
    """A Pixels without TiffData failed the OME schema (one series invisible)."""
    root = tmp_path / "early.ome.tiff"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"p": ["a", "b"], "t": 2, "y": 4, "x": 4}),
        dtype="uint16",
        format=OmeTiffFormat(prefer_single_file="always"),
    )
    with create_stream(settings) as stream:
        stream.append(FRAME + 7)  # position "a", t=0 only
    with tifffile.TiffFile(root) as tif:
        ome = from_xml(tif.ome_metadata, validate=True)
        first = tif.series[0].asarray()
    assert [image.name for image in ome.images] == ["a", "b"]
    assert ome.images[0].pixels.tiff_data_blocks
    assert ome.images[1].pixels.metadata_only is not None  # no pixels stored
    np.testing.assert_array_equal(first[0], FRAME + 7)
    assert not stream.view(dynamic_shape=False)[1].any()


@pytest.mark.parametrize("engine", ["tensorstore", "zarr-python", "acquire-zarr"])
def test_one_path_rule_for_every_zarr_engine(tmp_path: Path, engine: str) -> None:
    """tensorstore refused a root containing '..' that the others accepted."""
    (tmp_path / "sub").mkdir()
    root = tmp_path / "sub" / ".." / "run.ome.zarr"
    with create_stream(_settings(root, engine)) as stream:
        stream.append(FRAME + 3)
    array = zarr.open_array(tmp_path / "run.ome.zarr" / "0", mode="r")
    np.testing.assert_array_equal(array[0], FRAME + 3)


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [
        pytest.param("OmeZarrFormat", "/../../x.zarr", id="zarr-escape"),
        pytest.param("OmeZarrFormat", ".ome.tiff", id="zarr-wrong-ending"),
        pytest.param("OmeTiffFormat", "/x.ome.tiff", id="tiff-separator"),
        pytest.param("OmeTiffFormat", "ome.tiff", id="tiff-no-dot"),
    ],
)
def test_a_suffix_cannot_leave_the_root(fmt: str, suffix: str) -> None:
    import ome_writers

    with pytest.raises(ValueError, match=f"suffix {suffix!r} must"):
        getattr(ome_writers, fmt)(suffix=suffix)


@pytest.mark.parametrize("fmt", ["scratch", "zarr-python", "tifffile"])
def test_a_size_nothing_can_address_is_refused_before_the_disk(
    tmp_path: Path, fmt: str
) -> None:
    """Huge counts: files were left behind and a raw OverflowError raised."""
    root = tmp_path / {"zarr-python": "a.ome.zarr", "tifffile": "a.ome.tiff"}.get(
        fmt, "a"
    )
    with pytest.raises(ValueError, match="more than any file or array can address"):
        AcquisitionSettings(
            root_path=str(root),
            dimensions=dims_from_standard_axes(
                {"t": 10**19, "c": 10**6, "y": 4, "x": 4}
            ),
            dtype="uint8",
            format=fmt,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_first_step_past_the_memory_budget_spills_cleanly() -> None:
    """A spill with nothing in memory yet raised TypeError, then IndexError."""
    from ome_writers import ScratchFormat

    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes({"t": None, "c": 4, "y": 8, "x": 8}),
        dtype="uint16",
        format=ScratchFormat(max_memory_bytes=100),  # less than one step
    )
    frames = [np.full((8, 8), n, "uint16") for n in range(9)]
    with create_stream(settings) as stream:
        with pytest.warns(UserWarning, match="temporary directory"):
            stream.append(frames[0])
        for frame in frames[1:]:
            stream.append(frame)
        assert stream.storage_path is not None
    data = np.asarray(stream.view())
    assert data.shape == (3, 4, 8, 8)
    np.testing.assert_array_equal(data.reshape(12, 8, 8)[:9], np.stack(frames))


ENGINES = ["scratch", "tensorstore", "zarr-python", "acquire-zarr", "tifffile"]


def _root(tmp_path: Path, fmt: str) -> Path:
    if fmt == "scratch":
        return tmp_path / "a"
    return tmp_path / ("a.ome.tiff" if fmt == "tifffile" else "a.ome.zarr")


@pytest.mark.parametrize("fmt", ENGINES)
def test_memory_follows_what_is_written_not_what_is_declared(
    tmp_path: Path, fmt: str
) -> None:
    """A few frames of t=10**8: reads tabulated every declared plane (0.8 GB).

    Scratch in memory (a disk root would be allocated whole, 6.4 GB, by design).
    """
    from ome_writers import ScratchFormat

    scratch = fmt == "scratch"
    settings = AcquisitionSettings(
        root_path="" if scratch else str(_root(tmp_path, fmt)),
        dimensions=dims_from_standard_axes({"t": 10**8, "c": 2, "y": 4, "x": 4}),
        dtype="uint16",
        format=ScratchFormat(max_memory_bytes=2**34) if scratch else fmt,
    )
    tracemalloc.start()
    try:
        with create_stream(settings) as stream:
            for n in range(5):
                stream.append(FRAME + n + 1)
            live = stream.view(dynamic_shape=False)
            np.testing.assert_array_equal(live[2, 0], FRAME + 5)
            assert not live[10**8 - 1, 1].any()
            np.testing.assert_array_equal(
                stream.view()[1], FRAME[None] + [[[3]], [[4]]]
            )
        after = stream.view(dynamic_shape=False)
        assert after.shape == (10**8, 2, 4, 4)
        np.testing.assert_array_equal(after[0, 1], FRAME + 2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2, f"peak {peak:,} bytes"


@pytest.mark.parametrize("fmt", ENGINES)
def test_a_huge_frame_costs_nothing_until_written(tmp_path: Path, fmt: str) -> None:
    """A 100000 x 100000 frame: tensorstore's create allocated 37 GiB.

    Scratch in memory (reserved, not committed): on disk a bounded root is
    allocated whole at create, by design (40 GB here).
    """
    from ome_writers import ScratchFormat

    root = _root(tmp_path, fmt)
    scratch = fmt == "scratch"
    settings = AcquisitionSettings(
        root_path="" if scratch else str(root),
        dimensions=dims_from_standard_axes({"t": 2, "y": 100_000, "x": 100_000}),
        dtype="uint16",
        format=ScratchFormat(max_memory_bytes=2**36) if scratch else fmt,
    )
    tracemalloc.start()
    try:
        stream = create_stream(settings)
        assert stream.view().shape == (0, 100_000, 100_000)
        stream.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2, f"peak {peak:,} bytes"
    if fmt == "tifffile":  # the one page a TIFF needs is a hole in the file
        assert root.stat().st_blocks * 512 < 1024**2
        with tifffile.TiffFile(root) as tif:
            assert tif.pages[0].shape == (100_000, 100_000)


@pytest.mark.parametrize("fmt", ["acquire-zarr", "tifffile"])
def test_a_skip_that_writes_zeros_is_bounded(tmp_path: Path, fmt: str) -> None:
    """skip(2**40) wrote zero frames one by one for days; now refused at once."""
    root = _root(tmp_path, fmt)
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "y": 4, "x": 4}),
        dtype="uint16",
        format=fmt,
    )
    with create_stream(settings) as stream:
        stream.append(FRAME + 1)
        with pytest.raises(ValueError, match="cannot skip 1,099,511,627,776 frames"):
            stream.skip(frames=2**40)
        assert stream.frames_written == 1
        stream.skip(frames=1000)
        stream.append(FRAME + 2)
    if fmt == "tifffile":
        data = tifffile.imread(root)
    else:
        data = zarr.open_array(root / "0", mode="r")[:]
    assert data.shape == (1002, 4, 4)
    np.testing.assert_array_equal(data[0], FRAME + 1)
    assert not data[1:1001].any()
    np.testing.assert_array_equal(data[1001], FRAME + 2)


def test_tiff_skipped_pages_are_holes(tmp_path: Path) -> None:
    """Each skipped frame wrote a full page of zeros."""
    root = tmp_path / "a.ome.tiff"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 200, "y": 512, "x": 512}),
        dtype="uint16",
    )
    with create_stream(settings) as stream:
        stream.skip(frames=199)
        stream.append(np.ones((512, 512), "uint16"))
    assert root.stat().st_blocks * 512 < 20 * 512 * 512 * 2  # < 10% of the pixels
    data = tifffile.imread(root)
    assert not data[:199].any()
    assert (data[199] == 1).all()


def test_acquire_zarr_reads_during_close_never_fail(tmp_path: Path) -> None:
    """A read during close() raised, or kept an interim shape for later reads."""
    root = tmp_path / "a.ome.zarr"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "c": 3, "y": 16, "x": 16}),
        dtype="uint16",
        format="acquire-zarr",
    )
    frames = [np.full((16, 16), n + 1, "uint16") for n in range(40)]
    failures: list[BaseException] = []
    stop = threading.Event()
    stream = create_stream(settings)
    for frame in frames:
        stream.append(frame)

    def read() -> None:
        while not stop.is_set():
            try:
                np.asarray(stream.view()[-1])
                np.asarray(stream.arrays[0][0])
            except BaseException as exc:  # every failure counts
                failures.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    stream.close()
    stop.set()
    for reader in readers:
        reader.join()
    assert failures == []
    data = np.asarray(stream.view())
    assert data.shape == (14, 3, 16, 16)
    np.testing.assert_array_equal(data.reshape(42, 16, 16)[:40], np.stack(frames))
    assert not data.reshape(42, 16, 16)[40:].any()


# ----------------------------------------------- found by tests/test_fuzz.py


def test_empty_coords_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="coords is empty"):
        Dimension("c", coords=[])


def test_a_huge_position_count_is_refused_at_once() -> None:
    """Dimension('p', 10**9) built 10**9 Position objects (hours)."""
    with pytest.raises(ValueError, match=r"count=1,000,000,000 positions"):
        Dimension("p", 10**9, type="position")


@pytest.mark.parametrize("cameras", [10**5, 2**33])
def test_a_folded_camera_axis_past_the_channel_limit_is_refused_at_once(
    cameras: int,
) -> None:
    """A 'cam' axis folded into the channels built a Channel per camera and
    channel before the limit was checked: 10**5 took 3 s, 2**33 MemoryError."""
    dims = [
        Dimension("c", 2),
        Dimension("cam", cameras, type="other"),
        Dimension("y", 4),
        Dimension("x", 4),
    ]
    with pytest.raises(ValueError, match=rf"giving {2 * cameras:,} channels"):
        AcquisitionSettings(root_path="x.ome.zarr", dimensions=dims, dtype="uint8")


def test_positions_from_a_count_are_stored_as_the_count() -> None:
    with pytest.raises(ValueError, match=r"count=100,001 positions, more than 100,000"):
        Dimension("p", 100_001)
    """Dimension('p', 10**6) built and re-validated 10**6 Positions (13 s,
    2.5 GB), and dumped them all into the settings every output keeps; now
    they are copies of one Position, at most 100,000, dumped as the count."""
    dim = Dimension("p", 100_000)
    assert [p.name for p in dim.coords[:3]] == ["0", "1", "2"]
    assert dim.coords[-1].name == "99999"
    dumped = dim.model_dump(mode="json")
    assert dumped["coords"] is None
    assert Dimension.model_validate(dumped) == dim
    # a default position the caller changed is kept
    small = Dimension("p", 3)
    small.coords[1].x_coord = 5.0  # type: ignore[union-attr]
    assert small.model_dump()["coords"][1]["x_coord"] == 5.0
    assert Dimension.model_validate(small.model_dump()).coords[1].x_coord == 5.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(10**5000, id="huge-int"),
        pytest.param(functools.reduce(lambda a, _: [a], range(5000), []), id="deep"),
    ],
)
def test_metadata_json_cannot_hold_is_a_type_error(tmp_path: Path, value: Any) -> None:
    """A huge int or deep nesting raised ValueError/RecursionError from the
    error message itself."""
    with create_stream(_settings(tmp_path / "a", "scratch")) as stream:
        with pytest.raises(TypeError, match="not JSON-serializable"):
            stream.append(FRAME, frame_metadata={"x": value})
        with pytest.raises(TypeError, match="not JSON-serializable"):
            stream.set_global_metadata("lab", {"x": value})
        stream.append(FRAME)
        assert stream.frames_written == 1


@pytest.mark.parametrize(
    ("fmt", "sizes", "message"),
    [
        pytest.param(
            "acquire-zarr", {"t": 2**32, "y": 4, "x": 4}, "below 2\\*\\*32", id="az"
        ),
        pytest.param(
            "tifffile", {"t": 2**31, "y": 4, "x": 4}, "32-bit ints", id="tiff-size"
        ),
        pytest.param(
            "tensorstore", {"c": 20_000, "y": 4, "x": 4}, "20,000 channels", id="ch"
        ),
        pytest.param(
            "tifffile", {"c": None, "y": 4, "x": 4}, "'c' is unbounded",
            id="folded-camera-unbounded",
        ),
    ],
)  # fmt: skip
def test_sizes_a_format_cannot_write_are_refused_by_name(
    tmp_path: Path, fmt: str, sizes: dict[str, Any], message: str
) -> None:
    root = tmp_path / ("a.ome.tiff" if fmt == "tifffile" else "a.ome.zarr")
    dims = dims_from_standard_axes(sizes)
    if "'c' is unbounded" in message:  # a camera axis folded into the channels
        dims.insert(1, Dimension("cam", 2, type="other"))
    with pytest.raises(ValueError, match=message):
        AcquisitionSettings(
            root_path=str(root), dimensions=dims, dtype="uint8", format=fmt
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("engine", "name"),
    [
        pytest.param("zarr-python", "a::b.ome.zarr", id="zarr-python-url-chain"),
        pytest.param("zarr-python", "a\\b.ome.zarr", id="zarr-python-backslash"),
    ],
)
def test_odd_characters_stay_inside_the_root(
    tmp_path: Path, engine: str, name: str
) -> None:
    root = tmp_path / name
    with create_stream(_settings(root, engine)) as stream:
        stream.append(FRAME + 4)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    array = zarr.open_array(zarr.storage.LocalStore(root / "0"), mode="r")
    np.testing.assert_array_equal(array[0], FRAME + 4)


def test_tensorstore_refuses_a_backslash(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backslash"):
        _settings(tmp_path / "a\\b.ome.zarr", "tensorstore")


def test_a_root_through_a_missing_folder_is_normalized(tmp_path: Path) -> None:
    """'a/../x.zarr' was written to x.zarr while output_path named the other."""
    settings = _settings(tmp_path / "nowhere" / ".." / "x.ome.zarr", "zarr-python")
    assert settings.output_path == str(tmp_path / "x.ome.zarr")
    with create_stream(settings) as stream:
        stream.append(FRAME + 1)
    zarr.open_group(settings.output_path, mode="r")


@pytest.mark.parametrize("fmt", ["scratch", "zarr-python", "tifffile"])
def test_a_name_too_long_is_refused_before_any_folder(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "made" / ("x" * 300) / "a"
    with pytest.raises(ValueError, match="bytes; file systems allow 255"):
        _settings(root, fmt)
    assert list(tmp_path.iterdir()) == []


def test_positions_whose_names_clean_to_the_same_group(tmp_path: Path) -> None:
    """' ' and '_' both became '_', the second '__1' (a reserved Zarr name)."""
    root = tmp_path / "a.ome.zarr"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"p": [" ", "_"], "y": 4, "x": 4}),
        dtype="uint16",
        format="acquire-zarr",
    )
    with create_stream(settings) as stream:
        stream.append(FRAME + 1)
        stream.append(FRAME + 2)
    groups = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert not [g for g in groups if g.startswith("__")]
    data = [zarr.open_array(root / g / "0", mode="r")[0] for g in groups if g != "OME"]
    assert sorted(int(d.max()) for d in data) == [1, 2]


def test_a_scratch_root_the_file_system_cannot_hold_leaves_nothing(
    tmp_path: Path,
) -> None:
    """The refusal (EFBIG) left root/pos_0.dat behind."""
    root = tmp_path / "made" / "root"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 2**40, "y": 64, "x": 64}),
        dtype="uint64",
        format="scratch",
    )
    with warnings.catch_warnings():  # "needs ... bytes but ... has ... free"
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(OSError):  # noqa: PT011 - EFBIG or ENOSPC, by file system
            create_stream(settings)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("namespace", ["[", "lab]", "100%", "%zz"])
def test_a_namespace_ome_cannot_store_is_refused(
    tmp_path: Path, namespace: str
) -> None:
    """'[' passed and made the OME-TIFF's XML fail the schema (xs:anyURI)."""
    root = tmp_path / "a.ome.tiff"
    with create_stream(_settings(root, "tifffile")) as stream:
        with pytest.raises(ValueError, match="is not a URI OME-XML can store"):
            stream.set_global_metadata(namespace, {"a": 1})
        stream.set_global_metadata("lab%20one", {"a": 1})
        stream.append(FRAME)
    with tifffile.TiffFile(root) as tif:
        from_xml(tif.ome_metadata, validate=True)


def test_a_scratch_file_past_the_file_system_limit_is_named(tmp_path: Path) -> None:
    """2**40 frames of 20 bytes (22 TB, past ext4's 16 TiB per file) failed
    with a bare 'File too large' (found by the fuzz suite's release profile)."""
    dims = [
        Dimension("cam", 2**40, type="other"),
        Dimension("y", 1),
        Dimension("x", 5),
    ]
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "run"),
        dimensions=dims,
        dtype="float32",
        format="scratch",
    )
    with pytest.raises(WriteError, match=r"21,990,232,555,520 bytes .* count=None"):
        create_stream(settings)
    assert not list(tmp_path.iterdir())


def test_metadata_no_repr_can_show_is_described() -> None:
    """A frame_metadata value holding an int of over 4,300 digits was refused
    as '<dict that cannot be shown>': the message now says what and where."""
    settings = AcquisitionSettings(
        root_path="",
        dimensions=dims_from_standard_axes({"t": 2, "y": 2, "x": 2}),
        dtype="uint8",
    )
    with create_stream(settings) as stream:
        with pytest.raises(TypeError, match=r"4,300 digits at \['a'\]\[1\]"):
            stream.append(
                np.zeros((2, 2), "uint8"), frame_metadata={"a": [1, 10**5000]}
            )
        stream.append(np.zeros((2, 2), "uint8"))
        assert stream.frames_written == 1


def test_a_failed_skip_after_a_spill_keeps_later_frames() -> None:
    """In-memory scratch, one position: a skip past what a file can hold spills
    to disk, then fails to grow the file; the stream kept writing the next
    frame into the in-memory buffer it had left (found by the fuzz suite's
    release profile: append returned, the frame read back as zeros)."""
    settings = AcquisitionSettings(
        root_path="",
        dimensions=dims_from_standard_axes({"t": None, "z": 2, "y": 1, "x": 2}),
        dtype="uint64",
    )
    with create_stream(settings) as stream:
        stream.append(np.array([[1, 2]], "uint64"))
        with (
            pytest.raises(WriteError, match="File too large"),
            pytest.warns(UserWarning, match="temporary directory"),
        ):
            stream.skip(frames=2**40)
        stream.append(np.array([[3, 10]], "uint64"))
        assert stream.frames_written == 2
        np.testing.assert_array_equal(stream.arrays[0][0, 1], [[3, 10]])
        for n in range(100):  # later steps grow the files again
            stream.append(np.array([[n, n + 1]], "uint64"))
    np.testing.assert_array_equal(stream.arrays[0][0], [[[1, 2]], [[3, 10]]])
    assert stream.arrays[0].shape == (51, 2, 1, 2)
    expected = np.arange(100, dtype="uint64").reshape(50, 2, 1, 1)
    np.testing.assert_array_equal(stream.arrays[0][1:, :, :, :1], expected)


def test_tensorstore_frame_files_leave_no_trace_per_frame(tmp_path: Path) -> None:
    """The directories made for frame files are not remembered for ever.

    Each frame of (t, y, x) has a directory of its own (``c/<t>/0``): a set of
    those grew by one entry per frame for the whole acquisition.
    """
    frames = 4000
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "long.ome.zarr"),
        dimensions=dims_from_standard_axes({"t": None, "y": 4, "x": 4}),
        dtype="uint16",
        format=OmeZarrFormat(backend="tensorstore", fsync="never"),
    )
    tracemalloc.start(12)  # deep enough to see _direct.py above pathlib
    try:
        with create_stream(settings) as stream:
            for n in range(frames):
                stream.append(FRAME + n % 1000)
            snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(
        s.size
        for s in snapshot.filter_traces(
            [tracemalloc.Filter(True, "*_backends/zarr/_direct.py", all_frames=True)]
        ).statistics("filename")
    )
    # a remembered directory cost ~470 bytes: all 4,000 took 1.9 MB; none is
    # remembered now (each frame's directory is its own)
    assert held < 1_000_000, f"{held:,} bytes held by the frame-file writer"
    written = zarr.open_array(tmp_path / "long.ome.zarr" / "0", mode="r")
    assert written.shape == (frames, 4, 4)
    np.testing.assert_array_equal(written[frames - 1], FRAME + (frames - 1) % 1000)
    np.testing.assert_array_equal(written[1234], FRAME + 234)


_ANY_URI_SCHEMA = (
    b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a">'
    b'<xs:complexType><xs:attribute name="n" type="xs:anyURI"/></xs:complexType>'
    b"</xs:element></xs:schema>"
)


def test_namespaces_are_refused_exactly_when_ome_xml_cannot_hold_them() -> None:
    """``set_global_metadata`` agrees with libxml2's xs:anyURI on every namespace.

    Found by the fuzz suite's release profile: ``":"`` was accepted, and the
    OME-TIFF's OME-XML then failed the schema at ``close``. The judge here is
    lxml's own schema validation (what ome-types and Bio-Formats' readers
    check), over namespaces drawn from the characters that matter to a URI.
    """
    import random
    from xml.sax.saxutils import quoteattr

    from lxml import etree

    from ome_writers import ScratchFormat

    schema = etree.XMLSchema(etree.XML(_ANY_URI_SCHEMA))

    def xml_can_hold(text: str) -> bool:
        return schema.validate(etree.XML(f"<a n={quoteattr(text)}/>".encode()))

    alphabet = "ab1:/?#@[]%2F._-~!$&'()*+,;= \"<>{}|\\^`\u00fc\t"
    rng = random.Random(20261206)
    namespaces = [":", "1:x", "_:a", "//a:", "a#b#c", "https://lab.org/x", "urn:a:b"]
    namespaces += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9)))
        for _ in range(3000)
    ]
    settings = AcquisitionSettings(
        root_path="",
        dimensions=dims_from_standard_axes({"t": 1, "y": 4, "x": 4}),
        dtype="uint16",
        format=ScratchFormat(),
    )
    refused = {":", "1:x", "_:a", "//a:", "a#b#c"}
    assert [xml_can_hold(n) for n in namespaces[:7]] == [
        n not in refused for n in namespaces[:7]
    ]
    with create_stream(settings) as stream:
        for namespace in namespaces:
            if namespace in ("ome", "ome_writers") or "\t" in namespace:
                continue  # reserved, or a control character (refused for that)
            if xml_can_hold(namespace):
                stream.set_global_metadata(namespace, {"k": 1})
            else:
                with pytest.raises(ValueError, match="is not a URI OME-XML") as exc:
                    stream.set_global_metadata(namespace, {"k": 1})
                assert repr(namespace) in str(exc.value)
