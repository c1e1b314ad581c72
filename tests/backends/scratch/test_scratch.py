"""The scratch format: memory, spill, disk layout, overwrite safety, growth.

Everything written to disk is read back with plain ``np.memmap`` and ``json``,
guided only by ``manifest.json``, never through the package.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
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
    create_stream,
    dims_from_standard_axes,
    open_scratch,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import StreamFactory

FRAME_BYTES = 3 * 4 * 2  # (3, 4) uint16
TPC = {"t": 2, "p": 3, "c": 2, "y": 3, "x": 4}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_run(root: Path, make_frame: Callable, npos: int = 2, **kwargs: Any) -> None:
    """A small closed disk acquisition with ``npos`` positions."""
    kwargs.setdefault("format", "scratch")
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 2, "p": npos, "y": 3, "x": 4}),
        dtype="uint16",
        **kwargs,
    )
    with create_stream(settings) as stream:
        for n in range(2 * npos):
            stream.append(make_frame(n), frame_metadata={"n": n})
        stream.set_global_metadata("lab", {"run": npos})


def read_manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text())


def wait_for_manifest(
    root: Path, covers: Callable[[list[list[int]]], bool]
) -> list[list[int]]:
    """``position_shapes`` once ``covers`` them; the manifest has its own thread."""
    deadline = time.monotonic() + 10
    while True:
        shapes = read_manifest(root)["position_shapes"]
        if covers(shapes) or time.monotonic() > deadline:
            assert covers(shapes), shapes
            return shapes
        time.sleep(0.001)


def read_jsonl(root: Path) -> list[dict[str, Any]]:
    text = (root / "frame_metadata.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


# ------------------------------------------------------------------ the recipe


@pytest.mark.filterwarnings(
    "ignore:unclosed file:ResourceWarning"
)  # the recipe's open()
# ------------------------------------------------------------------ memory mode


def test_pure_memory_mode_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_frame: Callable
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for sizes in (TPC, {"t": None, "c": 2, "y": 3, "x": 4}):
        settings = AcquisitionSettings(
            dimensions=dims_from_standard_axes(sizes), dtype="uint16"
        )
        with create_stream(settings) as stream:
            for n in range(12):
                stream.append(make_frame(n), frame_metadata={"n": n})
            stream.set_global_metadata("lab", {"a": 1})
        assert len(stream.arrays) == (3 if sizes is TPC else 1)
    assert list(tmp_path.iterdir()) == []


def test_memory_mode_exactly_at_budget(make_frame: Callable) -> None:
    budget = 12 * FRAME_BYTES
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes(TPC),
        dtype="uint16",
        format=ScratchFormat(max_memory_bytes=budget, spill_to_disk=False),
    )
    with create_stream(settings) as stream:  # no warning: it fits
        for n in range(12):
            stream.append(make_frame(n))
    np.testing.assert_array_equal(stream.arrays[2][1, 1], make_frame(11))


# ------------------------------------------------------------------ spilling


def spilled_path(record: pytest.WarningsRecorder) -> Path:
    (warning,) = record
    (path,) = re.findall(r"temporary directory '([^']+)'", str(warning.message))
    return Path(path)


def test_spill_to_disk_when_over_budget(make_frame: Callable) -> None:
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes(TPC),
        dtype="uint16",
        format={"name": "scratch", "max_memory_bytes": 12 * FRAME_BYTES - 1},
    )
    with pytest.warns(UserWarning, match="max_memory_bytes") as record:
        stream = create_stream(settings)
    root = spilled_path(record)
    assert root.is_dir()
    assert str(12 * FRAME_BYTES) in str(record[0].message).replace(",", "")
    with stream:
        for n in range(12):
            stream.append(make_frame(n), frame_metadata={"n": n})
    assert sorted(p.name for p in root.glob("pos_*.dat")) == [
        "pos_0.dat",
        "pos_1.dat",
        "pos_2.dat",
    ]
    expected = np.stack([make_frame(n) for n in range(12)]).reshape(2, 3, 2, 3, 4)
    manifest = read_manifest(root)
    for p, shape in enumerate(manifest["position_shapes"]):
        data = np.memmap(
            root / f"pos_{p}.dat", dtype="uint16", mode="r", shape=tuple(shape)
        )
        np.testing.assert_array_equal(data, expected[:, p])
        np.testing.assert_array_equal(stream.arrays[p], expected[:, p])
    assert [r["n"] for r in read_jsonl(root)] == list(range(12))


def test_unbounded_spills_while_growing(tmp_path: Path, make_frame: Callable) -> None:
    step_bytes = 2 * FRAME_BYTES
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes({"t": None, "c": 2, "y": 3, "x": 4}),
        dtype="uint16",
        format=ScratchFormat(max_memory_bytes=3 * step_bytes),
    )
    with create_stream(settings) as stream:
        for n in range(6):  # three time points fit in memory
            stream.append(make_frame(n), frame_metadata={"n": n})
        with pytest.warns(UserWarning, match="temporary directory") as record:
            stream.append(make_frame(6), frame_metadata={"n": 6})
        root = spilled_path(record)
        for n in range(7, 9):
            stream.append(make_frame(n))
        assert stream.arrays[0].shape == (5, 2, 3, 4)
    expected = np.zeros((10, 3, 4), "uint16")
    expected[:9] = np.stack([make_frame(n) for n in range(9)])
    expected = expected.reshape(5, 2, 3, 4)
    np.testing.assert_array_equal(stream.arrays[0], expected)
    manifest = read_manifest(root)
    assert manifest["position_shapes"] == [[5, 2, 3, 4]]
    data = np.memmap(root / "pos_0.dat", dtype="uint16", mode="r", shape=(5, 2, 3, 4))
    np.testing.assert_array_equal(data, expected)
    assert (root / "pos_0.dat").stat().st_size == expected.nbytes
    assert [r["n"] for r in read_jsonl(root)] == list(range(7))


def test_spilled_directory_is_removed_at_exit(tmp_path: Path) -> None:
    script = """
import warnings, numpy as np
from ome_writers import AcquisitionSettings, ScratchFormat, create_stream
from ome_writers import dims_from_standard_axes
settings = AcquisitionSettings(
    dimensions=dims_from_standard_axes({"t": 2, "y": 3, "x": 4}),
    dtype="uint16",
    format=ScratchFormat(max_memory_bytes=1),
)
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    stream = create_stream(settings)
stream.append(np.ones((3, 4), "uint16"))
stream.close()
print(record[0].message)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    (path,) = re.findall(r"temporary directory '([^']+)'", result.stdout)
    assert path.startswith(tempfile.gettempdir())
    assert not Path(path).exists()


def test_memory_error_without_spill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    needed = 12 * FRAME_BYTES
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes(TPC),
        dtype="uint16",
        format=ScratchFormat(max_memory_bytes=needed - 1, spill_to_disk=False),
    )
    with pytest.raises(MemoryError, match=f"{needed:,} bytes") as info:
        create_stream(settings)
    assert "max_memory_bytes" in str(info.value)
    assert "root_path" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unbounded_memory_error_keeps_earlier_frames(make_frame: Callable) -> None:
    step_bytes = 2 * FRAME_BYTES
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes({"t": None, "c": 2, "y": 3, "x": 4}),
        dtype="uint16",
        format=ScratchFormat(max_memory_bytes=2 * step_bytes, spill_to_disk=False),
    )
    with create_stream(settings) as stream:
        for n in range(4):
            stream.append(make_frame(n))
        with pytest.raises(MemoryError, match=f"{3 * step_bytes:,} bytes"):
            stream.append(make_frame(4))
        assert stream.frames_written == 4
    np.testing.assert_array_equal(
        stream.arrays[0],
        np.stack([make_frame(n) for n in range(4)]).reshape(2, 2, 3, 4),
    )


# ------------------------------------------------------------------ disk layout


def test_disk_layout(tmp_path: Path, make_frame: Callable) -> None:
    root = tmp_path / "nested" / "dirs" / "root"  # parents are created
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes(TPC),
        dtype="uint16",
        storage_order=["c", "t"],
    )
    with create_stream(settings) as stream:
        stream.set_global_metadata("lab", {"user": "ada"})
        for n in range(12):
            t, p, c = np.unravel_index(n, (2, 3, 2))
            metadata = {"exposure_ms": 10.0 + n} if c == 1 else None
            stream.append(make_frame(n), frame_metadata=metadata)
    manifest = read_manifest(root)
    dump = settings.model_dump(mode="json")
    assert {k: manifest[k] for k in dump} == dump
    assert manifest["position_shapes"] == [[2, 2, 3, 4]] * 3  # c, t, y, x
    assert manifest["global_metadata"] == {"lab": {"user": "ada"}}
    assert manifest["dtype"] == "uint16"
    for p in range(3):
        path = root / f"pos_{p}.dat"
        assert path.stat().st_size == 2 * 2 * FRAME_BYTES
        raw = np.fromfile(path, dtype="uint16").reshape(2, 2, 3, 4)  # C order
        for c, t in np.ndindex(2, 2):
            np.testing.assert_array_equal(raw[c, t], make_frame(t * 6 + p * 2 + c))
    records = read_jsonl(root)
    assert len(records) == 6  # frames without metadata write no line
    for record, n in zip(records, range(1, 12, 2)):
        t, p, c = (int(i) for i in np.unravel_index(n, (2, 3, 2)))
        assert record["exposure_ms"] == 10.0 + n
        assert record["position_index"] == p
        assert record["storage_index"] == [c, t]
        # the keys ome-writers 0.3 wrote, for its readers
        assert (record["_pos"], record["_idx"]) == (p, [c, t])


def test_manifest_and_data_are_readable_during_acquisition(
    tmp_path: Path, make_frame: Callable
) -> None:
    root = tmp_path / "root"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes(TPC),
        dtype="uint16",
    )
    with create_stream(settings) as stream:
        for n in range(7):
            stream.append(make_frame(n))
        stream.set_global_metadata("lab", {"stage": "running"})
        manifest = read_manifest(root)
        assert manifest["global_metadata"] == {"lab": {"stage": "running"}}
        data = np.memmap(
            root / "pos_0.dat", dtype="uint16", mode="r", shape=(2, 2, 3, 4)
        )
        np.testing.assert_array_equal(data[0, 0], make_frame(0))
        np.testing.assert_array_equal(data[1, 0], make_frame(6))
        np.testing.assert_array_equal(data[1, 1], 0)
        del data


ROUND_TRIPS = [
    pytest.param(
        {"dimensions": dims_from_standard_axes({"t": 2, "c": 2, "y": 3, "x": 4})},
        id="tcyx",
    ),
    pytest.param(
        {
            "dimensions": [
                Dimension("t", None, unit="ms", scale=250.0),
                Dimension(
                    "c",
                    coords=[
                        Channel(
                            name="DAPI",
                            excitation_wavelength_nm=405,
                            emission_wavelength_nm=460,
                            fluorophore="DAPI",
                            color="0000FF",
                        ),
                        Channel(name="GFP", color="#00ff00"),
                    ],
                ),
                Dimension("y", 3, unit="um", scale=0.65),
                Dimension("x", 4, unit="um", scale=0.65, translation=-12.5),
            ]
        },
        id="channels-unbounded",
    ),
    pytest.param(
        {
            "dimensions": [
                Dimension(
                    "p",
                    coords=[
                        Position(
                            name="A1-0",
                            plate_row="A",
                            plate_column="1",
                            grid_row=0,
                            grid_column=0,
                            x_coord=1.5,
                            y_coord=2.5,
                            z_coord=-3.0,
                        ),
                        Position(name="B2-0", plate_row="B", plate_column="2"),
                    ],
                ),
                *dims_from_standard_axes({"z": 2, "y": 3, "x": 4}),
            ],
            "plate": Plate(
                row_names=["A", "B"], column_names=["1", "2"], name="24-well"
            ),
        },
        id="plate",
    ),
    pytest.param(
        {
            "dimensions": dims_from_standard_axes(
                {"t": 2, "p": ["a", "b"], "c": 2, "z": 2, "y": 3, "x": 4}
            ),
            "storage_order": ["z", "p", "c", "t"],
        },
        id="storage-order",
    ),
    pytest.param(
        {
            "dimensions": dims_from_standard_axes(
                {"t": 2, "y": 3, "x": 4}, chunk_shapes={"t": 2}
            ),
            "storage_order": "acquisition",
            "format": {"name": "memory", "max_memory_bytes": 1, "fsync": "never"},
        },
        id="format-dict",
    ),
]


@pytest.mark.parametrize("kwargs", ROUND_TRIPS)
def test_settings_round_trip_through_manifest(
    tmp_path: Path, make_frame: Callable, kwargs: dict[str, Any]
) -> None:
    kwargs = {"format": "scratch", **kwargs}
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "root"), dtype="uint16", **kwargs
    )
    with create_stream(settings) as stream:
        stream.append(make_frame(0))
    manifest = read_manifest(tmp_path / "root")
    fields = {k: manifest[k] for k in AcquisitionSettings.model_fields}
    assert AcquisitionSettings.model_validate(fields) == settings


# ------------------------------------------------------------------ growth on disk


def test_unbounded_growth_on_disk(tmp_path: Path, make_frame: Callable) -> None:
    root = tmp_path / "root"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "p": 2, "c": 2, "y": 3, "x": 4}),
        dtype="uint16",
    )
    with create_stream(settings) as stream:
        # while streaming the manifest describes the files, which the stream
        # keeps ahead of the data (at least two steps)
        assert read_manifest(root)["position_shapes"] == [[2, 2, 3, 4]] * 2
        for n in range(9):  # two full time points and one frame of a third
            stream.append(make_frame(n))
            steps = n // 4 + 1
            # the manifest on disk covers every frame append returned for
            shapes = read_manifest(root)["position_shapes"]
            assert shapes[0][0] >= steps
            assert shapes[0][1:] == [2, 3, 4]
            for p in range(2):
                size = (root / f"pos_{p}.dat").stat().st_size
                assert size >= shapes[p][0] * 2 * FRAME_BYTES
            assert [a.shape for a in stream.arrays] == [(steps, 2, 3, 4)] * 2
    manifest = read_manifest(root)
    assert manifest["position_shapes"] == [[3, 2, 3, 4]] * 2
    expected = np.zeros((12, 3, 4), "uint16")
    expected[:9] = np.stack([make_frame(n) for n in range(9)])
    expected = expected.reshape(3, 2, 2, 3, 4)  # t p c y x
    for p in range(2):
        path = root / f"pos_{p}.dat"
        assert path.stat().st_size == 3 * 2 * FRAME_BYTES  # no over-allocated tail
        data = np.memmap(path, dtype="uint16", mode="r", shape=(3, 2, 3, 4))
        np.testing.assert_array_equal(data, expected[:, p])


BIG_FRAME = (512, 1024)  # 1 MiB of uint16: files grow 64 MiB ahead, then double
MIB = 2**20


def _described_bytes(root: Path) -> int:
    """Bytes of position 0 the manifest on disk describes."""
    shape = read_manifest(root)["position_shapes"][0]
    return int(np.prod(shape)) * 2


def test_big_frame_files_are_allocated_ahead_and_trimmed_at_close(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "c": 2, "y": 512, "x": 1024}),
        dtype="uint16",
    )
    frames = [np.full(BIG_FRAME, n + 1, "uint16") for n in range(70)]
    path = root / "pos_0.dat"
    with create_stream(settings) as stream:
        stream.append(frames[0])
        # the first lead, allocated at create: 32 steps (64 MiB)
        assert path.stat().st_size == 64 * MIB
        assert path.stat().st_blocks * 512 >= 64 * MIB
        for n, frame in enumerate(frames[1:], 2):
            stream.append(frame)
            size = path.stat().st_size
            described = _described_bytes(root)
            # the manifest covers the data; the files hold what it describes,
            # allocated; ahead by at most the data (or the first lead)
            assert n * MIB <= described <= size
            assert path.stat().st_blocks * 512 >= described
            assert size <= n * MIB + max(64 * MIB, n * MIB) + 2 * MIB
        # as if the writer were killed now: the longer file reads back exactly
        ds = open_scratch(root)
        assert ds.arrays[0].shape == (35, 2, *BIG_FRAME)
        np.testing.assert_array_equal(
            ds.arrays[0].reshape(70, *BIG_FRAME)[:, ::97, ::89],
            np.stack(frames)[:, ::97, ::89],
        )
        del ds
    assert path.stat().st_size == 70 * MIB
    data = np.memmap(path, dtype="uint16", mode="r", shape=(70, *BIG_FRAME))
    assert (data.reshape(70, -1).min(axis=1) == np.arange(1, 71)).all()
    assert (data.reshape(70, -1).max(axis=1) == np.arange(1, 71)).all()


def test_growth_ahead_is_bounded_by_the_data(tmp_path: Path) -> None:
    # the lead is sized by the rate (here that of skips, far beyond any
    # camera's), but never more than what was written: the files at most
    # double, so they grow a handful of times over a gigabyte
    root = tmp_path / "root"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "y": 512, "x": 1024}),
        dtype="uint16",
    )
    path = root / "pos_0.dat"
    sizes_mib: list[int] = []
    # allocation takes at most half the free space (best effort by design)
    room = shutil.disk_usage(tmp_path).free > 8 * 1024**3
    with create_stream(settings) as stream:
        for n in range(1, 1101):
            stream.skip()
            size = path.stat().st_size // MIB
            described = _described_bytes(root)
            assert n * MIB <= described <= size * MIB
            assert size <= n + max(64, n) + 1
            # what the manifest describes is allocated, not sparse
            assert not room or path.stat().st_blocks * 512 >= described
            if not sizes_mib or sizes_mib[-1] != size:
                sizes_mib.append(size)
        stream.append(np.full(BIG_FRAME, 7, "uint16"))
        assert open_scratch(root).arrays[0].shape == (1101, *BIG_FRAME)
    assert 5 <= len(sizes_mib) <= 12, sizes_mib
    assert path.stat().st_size == 1101 * MIB
    data = np.memmap(path, dtype="uint16", mode="r", shape=(1101, *BIG_FRAME))
    assert (data[1100] == 7).all()
    assert not data[1099].any()


def test_bounded_files_are_allocated_at_create(tmp_path: Path) -> None:
    root = tmp_path / "root"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 40, "p": 2, "y": 256, "x": 256}),
        dtype="uint16",
    )
    with create_stream(settings) as stream:
        for p in range(2):
            stat = (root / f"pos_{p}.dat").stat()
            assert stat.st_size == 40 * 256 * 256 * 2
            assert stat.st_blocks * 512 >= stat.st_size  # reserved, not sparse
        stream.append(np.ones((256, 256), "uint16"))
    data = open_scratch(root).arrays
    assert data[0][0].min() == 1
    assert not data[0][1:].any()
    assert not data[1].any()


@pytest.mark.parametrize(
    ("sizes", "frames", "shape"),
    [
        pytest.param({"t": 4, "c": 2}, 8, [4, 2, 3, 4], id="bounded-full"),
        pytest.param({"t": 4, "c": 2}, 3, [4, 2, 3, 4], id="bounded-partial"),
        pytest.param({"t": None, "c": 2}, 3, [2, 2, 3, 4], id="unbounded-partial"),
        pytest.param({"t": None, "c": 2}, 4, [2, 2, 3, 4], id="unbounded-full"),
        pytest.param({"t": None, "c": 2}, 0, [0, 2, 3, 4], id="unbounded-empty"),
    ],
)
def test_dat_file_has_exact_size_after_close(
    tmp_path: Path, sizes: dict, frames: int, shape: list[int], make_frame: Callable
) -> None:
    root = tmp_path / "root"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({**sizes, "y": 3, "x": 4}),
        dtype="uint16",
        format="scratch",
    )
    with create_stream(settings) as stream:
        for n in range(frames):
            stream.append(make_frame(n))
    assert read_manifest(root)["position_shapes"] == [shape]
    assert (root / "pos_0.dat").stat().st_size == int(np.prod(shape)) * 2


# ------------------------------------------------------------------ routing


@pytest.mark.parametrize(
    "storage_order", ["ome", "acquisition", ["c", "t"], ["t", "p", "c"]]
)
def test_multi_position_routing(
    scratch_stream: StreamFactory, make_frame: Callable, storage_order: Any
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TPC), storage_order=storage_order)
    for n in range(12):
        stream.append(make_frame(n))
    stream.close()
    c_first = storage_order == ["c", "t"]
    stored = scratch_stream.read_back(stream)
    assert len(stored) == 3
    for p in range(3):
        for t, c in np.ndindex(2, 2):
            n = t * 6 + p * 2 + c  # positions interleaved within each time point
            slot = (c, t) if c_first else (t, c)
            np.testing.assert_array_equal(stored[p][slot], make_frame(n))
            np.testing.assert_array_equal(stream.arrays[p][slot], make_frame(n))


# ------------------------------------------------------------------ existing roots


def make_scratch_root(root: Path, make_frame: Callable) -> None:
    write_run(root, make_frame, npos=2)


def make_foreign_dir(root: Path, make_frame: Callable) -> None:
    root.mkdir()
    (root / "notes.txt").write_text("precious")
    (root / "pos_0.dat").write_bytes(b"not ours")


def make_foreign_manifest(root: Path, make_frame: Callable) -> None:
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"dtype": "uint16"}))


def make_file(root: Path, make_frame: Callable) -> None:
    root.write_text("a file, not a directory")


def make_empty_dir(root: Path, make_frame: Callable) -> None:
    root.mkdir()


REFUSALS = [
    pytest.param(make_scratch_root, False, "overwrite=True", id="scratch-root"),
    pytest.param(make_empty_dir, False, "already exists", id="empty-dir"),
    pytest.param(make_foreign_dir, False, "already exists", id="foreign-dir"),
    pytest.param(
        make_foreign_dir, True, "not a scratch root", id="foreign-dir-overwrite"
    ),
    pytest.param(
        make_foreign_manifest, True, "not a scratch root", id="foreign-manifest"
    ),
    pytest.param(make_file, False, "not a directory", id="file"),
    pytest.param(make_file, True, "not a directory", id="file-overwrite"),
]


@pytest.mark.parametrize(("make_existing", "overwrite", "match"), REFUSALS)
def test_existing_root_is_refused_and_untouched(
    tmp_path: Path,
    make_frame: Callable,
    make_existing: Callable,
    overwrite: bool,
    match: str,
) -> None:
    root = tmp_path / "root"
    make_existing(root, make_frame)
    before = snapshot(tmp_path)
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 3, "y": 3, "x": 4}),
        dtype="uint16",
        overwrite=overwrite,
    )
    with pytest.raises(FileExistsError, match=match) as info:
        create_stream(settings)
    assert repr(str(root)) in str(info.value)
    assert snapshot(tmp_path) == before


def test_refused_settings_leave_earlier_run_untouched(
    tmp_path: Path, make_frame: Callable
) -> None:
    root = tmp_path / "root"
    make_scratch_root(root, make_frame)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="dtype"):
        AcquisitionSettings(
            format="scratch",
            root_path=str(root),
            dimensions=dims_from_standard_axes({"t": 3, "y": 3, "x": 4}),
            dtype="complex128",
            overwrite=True,
        )
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_a_scratch_root(
    tmp_path: Path, make_frame: Callable
) -> None:
    root = tmp_path / "root"
    write_run(root, make_frame, npos=3)
    write_run(root, lambda n: make_frame(n + 50), npos=1, overwrite=True)
    assert sorted(p.name for p in root.glob("pos_*.dat")) == ["pos_0.dat"]
    manifest = read_manifest(root)
    assert manifest["position_shapes"] == [[2, 3, 4]]
    assert manifest["global_metadata"] == {"lab": {"run": 1}}
    data = np.memmap(root / "pos_0.dat", dtype="uint16", mode="r", shape=(2, 3, 4))
    np.testing.assert_array_equal(data, np.stack([make_frame(50), make_frame(51)]))
    assert [r["n"] for r in read_jsonl(root)] == [0, 1]


def test_overwrite_accepts_an_empty_dir(tmp_path: Path, make_frame: Callable) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_run(root, make_frame, npos=1, overwrite=True)
    data = np.memmap(root / "pos_0.dat", dtype="uint16", mode="r", shape=(2, 3, 4))
    np.testing.assert_array_equal(data, np.stack([make_frame(0), make_frame(1)]))


def test_metadata_of_a_frame_not_counted_is_not_reported(tmp_path):
    """A kill between a frame's metadata line and its count: the record is dropped."""
    root = tmp_path / "root"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 4, "y": 2, "x": 2}),
        dtype="uint8",
    )
    with create_stream(settings) as stream:
        for i in range(3):
            stream.append(np.full((2, 2), i, "uint8"), frame_metadata={"i": i})
    # rewind the run to "frame 2's line is on disk, its count is not"
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.update(complete=False, frames_written=0)
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "progress.bin").write_bytes(struct.pack("<Q", 2))
    dataset = open_scratch(root)
    assert dataset.frames_written == 2
    assert [r["i"] for r in dataset.frame_metadata] == [0, 1]
