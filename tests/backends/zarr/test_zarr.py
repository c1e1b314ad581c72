"""OME-Zarr conformance: every layout, every engine, read back independently.

Each case is written by each engine, validated by ``yaozarrs`` and
``ome-zarr-models``, and its pixels are read back frame by frame by an engine
other than the writer (tensorstore output read with zarr-python, the others
read with tensorstore) and compared with data built here from the acquisition
order alone, without the package's router.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tensorstore as ts
import yaozarrs
import zarr
from ome_types import from_xml
from ome_zarr_models.v05 import HCS, BioFormats2Raw, Image

from ome_writers import (
    AcquisitionSettings,
    BackendUnavailableError,
    Channel,
    Dimension,
    OmeZarrFormat,
    Plate,
    Position,
    WriteError,
    create_stream,
    recover,
)
from ome_writers._backends.zarr import _direct as _zarr_direct
from ome_writers._backends.zarr._common import ChunkGeometry
from ome_writers._backends.zarr._direct import FrameFileLayout

if TYPE_CHECKING:
    from _small_fs import SmallFilesystem

BACKENDS = ["tensorstore", "acquire-zarr", "zarr-python"]
FRAME = (6, 8)


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the ``ome-writers`` command in a subprocess, as a user would."""
    command = [sys.executable, "-m", "ome_writers", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def frame_for(n: int) -> np.ndarray:
    """Frame ``n``: distinct in every pixel and from every other frame."""
    return (np.arange(FRAME[0] * FRAME[1]).reshape(FRAME) + 1000 * (n + 1)).astype(
        "uint16"
    )


def yx(**kwargs: Any) -> list[Dimension]:
    return [
        Dimension("y", FRAME[0], unit="um", scale=0.5, **kwargs),
        Dimension("x", FRAME[1], unit="um", scale=0.5),
    ]


def channels() -> Dimension:
    return Dimension("c", coords=[Channel(name="DAPI", color="0000FF"), "GFP"])


PLATE_POSITIONS = [
    Position(name="A1-f0", plate_row="A", plate_column="1", x_coord=1.5, y_coord=2.5),
    Position(name="A1-f1", plate_row="A", plate_column="1", x_coord=3.0),
    Position(name="B2-f0", plate_row="B", plate_column="2"),
]

#: id -> (dimensions in acquisition order, extra settings, frames to write)
LAYOUTS = [
    pytest.param([Dimension("t", 2), channels(), *yx()], {}, None, id="image-tcyx"),
    pytest.param(
        [
            Dimension("t", None, chunk_size=2),
            channels(),
            Dimension("z", 3, chunk_size=3, unit="um", scale=2.0, translation=5.0),
            *yx(),
        ],
        {},
        14,
        id="unbounded-tczyx-partial-step",
    ),
    pytest.param(
        [Dimension("t", 2), Dimension("z", 3, unit="um"), channels(), *yx()],
        {},
        None,
        id="storage-order-tzc-to-tcz",
    ),
    pytest.param(
        [
            Dimension("t", 2),
            Dimension(
                "p",
                coords=[
                    Position(name="left", x_coord=10.0, y_coord=-3.0, z_coord=1.0),
                    Position(name="../escape"),
                ],
            ),
            channels(),
            *yx(),
        ],
        {},
        None,
        id="multi-position-bioformats2raw",
    ),
    pytest.param(
        [Dimension("p", coords=PLATE_POSITIONS), Dimension("t", 2), *yx()],
        {"plate": Plate(row_names=["A", "B"], column_names=["1", "2"], name="P1")},
        None,
        id="plate-several-fields-per-well",
    ),
    pytest.param(
        [
            Dimension("t", 2),
            Dimension("z", 4, chunk_size=2, shard_size_chunks=2),
            Dimension("y", FRAME[0], chunk_size=3, shard_size_chunks=2),
            Dimension("x", FRAME[1], chunk_size=4),
        ],
        {},
        None,
        id="chunked-sharded",
    ),
]


# ------------------------------------------------------------------ helpers


def expected_positions(settings: AcquisitionSettings, frames: int) -> list[np.ndarray]:
    """Position arrays in storage order, built from the acquisition order alone."""
    index_dims = settings.dimensions[:-2]
    counts = [d.count for d in index_dims]
    if counts[0] is None:
        per_step = int(np.prod(counts[1:]))
        counts[0] = -(-frames // per_step)
    acq = np.zeros((*counts, *FRAME), "uint16")
    for n, index in enumerate(np.ndindex(*counts)):
        if n < frames:
            acq[index] = frame_for(n)
    names = [d.name for d in index_dims]
    p_axes = [i for i, d in enumerate(index_dims) if d.type == "position"]
    npos = counts[p_axes[0]] if p_axes else 1
    storage = settings.storage_dimension_names
    out = []
    for p in range(npos):
        data = np.take(acq, p, axis=p_axes[0]) if p_axes else acq
        rest = [n for n in names if not p_axes or n != names[p_axes[0]]]
        order = [rest.index(n) for n in storage] + [len(rest), len(rest) + 1]
        out.append(np.transpose(data, order))
    return out


def array_paths(root: Path) -> list[Path]:
    """The full-resolution array of every image, found from the OME metadata."""
    ome = json.loads((root / "zarr.json").read_text())["attributes"]["ome"]
    if "multiscales" in ome:
        return [root / "0"]
    if "plate" in ome:
        out = []
        for well in ome["plate"]["wells"]:
            doc = json.loads((root / well["path"] / "zarr.json").read_text())
            out += [
                root / well["path"] / i["path"] / "0"
                for i in doc["attributes"]["ome"]["well"]["images"]
            ]
        return out
    series = json.loads((root / "OME" / "zarr.json").read_text())
    return [root / s / "0" for s in series["attributes"]["ome"]["series"]]


def read_independently(backend: str, path: Path) -> Any:
    """An array reader from an engine other than ``backend``."""
    if backend == "tensorstore":
        return zarr.open_array(str(path), mode="r")
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
    return ts.open(spec, open=True, read=True).result()


def validate(root: Path) -> None:
    yaozarrs.validate_zarr_store(str(root))
    group = zarr.open_group(str(root), mode="r")
    ome = json.loads((root / "zarr.json").read_text())["attributes"]["ome"]
    if "plate" in ome:
        HCS.from_zarr(group)
    elif "bioformats2raw.layout" in ome:
        BioFormats2Raw.from_zarr(group)
    else:
        Image.from_zarr(group)


def make_settings(
    tmp_path: Path, backend: str, dims: list[Dimension], **kwargs: Any
) -> AcquisitionSettings:
    return AcquisitionSettings(
        root_path=str(tmp_path / "out.ome.zarr"),
        dimensions=dims,
        dtype="uint16",
        format=backend,
        **kwargs,
    )


def write_all(settings: AcquisitionSettings, frames: int) -> Any:
    with create_stream(settings) as stream:
        for n in range(frames):
            stream.append(frame_for(n), frame_metadata={"delta_t": n * 0.5, "n": n})
    return stream


# -------------------------------------------------------------------- layouts


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("dims", "extra", "frames"), LAYOUTS)
def test_layout_validates_and_reads_back(
    tmp_path: Path, backend: str, dims: list[Dimension], extra: dict, frames: int | None
) -> None:
    settings = make_settings(tmp_path, backend, dims, **extra)
    frames = frames or settings.num_frames
    assert frames is not None
    stream = write_all(settings, frames)
    root = Path(settings.output_path)
    validate(root)
    expected = expected_positions(settings, frames)
    paths = array_paths(root)
    assert len(paths) == len(expected)
    for path, want, live in zip(paths, expected, stream.arrays):
        reader = read_independently(backend, path)
        assert tuple(reader.shape) == want.shape
        for index in np.ndindex(*want.shape[:-2]):
            np.testing.assert_array_equal(np.asarray(reader[index]), want[index])
        np.testing.assert_array_equal(np.asarray(live), want)
        names = json.loads((path / "zarr.json").read_text())["dimension_names"]
        assert names == [*settings.storage_dimension_names, "y", "x"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("compression", [None, "blosc-zstd", "blosc-lz4", "zstd"])
def test_each_compression(
    tmp_path: Path, backend: str, compression: str | None
) -> None:
    dims = [Dimension("z", 4, chunk_size=2, shard_size_chunks=2), *yx()]
    settings = make_settings(tmp_path, backend, dims, compression=compression)
    write_all(settings, 4)
    root = Path(settings.output_path)
    validate(root)
    reader = read_independently(backend, root / "0")
    np.testing.assert_array_equal(
        np.asarray(reader[...]), expected_positions(settings, 4)[0]
    )
    codecs = json.dumps(json.loads((root / "0" / "zarr.json").read_text())["codecs"])
    if compression is None:
        assert "blosc" not in codecs
        assert "zstd" not in codecs
    else:
        assert compression.removeprefix("blosc-") in codecs


SHARD_DEFAULTS = [
    pytest.param({}, {}, [1, 6, 8], None, 1, id="frame-chunks-unsharded"),
    pytest.param(
        {"chunk_size": 3}, {"chunk_size": 4}, [1, 3, 4], [1, 6, 8], 1,
        id="small-chunks-one-shard-per-frame",
    ),
    pytest.param(
        {"chunk_size": 4}, {"chunk_size": 3}, [1, 4, 3], [1, 8, 9], 1,
        id="edge-chunks-shard-rounded-up",
    ),
    pytest.param(
        {"chunk_size": 3, "shard_size_chunks": 1}, {"chunk_size": 4}, [1, 3, 4],
        None, 4, id="shard-size-1-turns-it-off",
    ),
]  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("y", "x", "chunks", "shards", "files_per_frame"), SHARD_DEFAULTS
)
def test_default_sharding_is_one_shard_per_frame(
    tmp_path: Path,
    backend: str,
    y: dict[str, int],
    x: dict[str, int],
    chunks: list[int],
    shards: list[int] | None,
    files_per_frame: int,
) -> None:
    dims = [
        Dimension("t", 3),
        Dimension("y", FRAME[0], **y),
        Dimension("x", FRAME[1], **x),
    ]
    settings = make_settings(tmp_path, backend, dims)
    write_all(settings, 3)
    root = Path(settings.output_path)
    validate(root)
    meta = json.loads((root / "0" / "zarr.json").read_text())
    grid = meta["chunk_grid"]["configuration"]["chunk_shape"]
    sharding = [c for c in meta["codecs"] if c["name"] == "sharding_indexed"]
    if shards is None:
        assert grid == chunks
        if backend == "acquire-zarr":  # always shards: one chunk per shard
            assert sharding[0]["configuration"]["chunk_shape"] == chunks
        else:
            assert sharding == []
    else:
        assert grid == shards
        assert sharding[0]["configuration"]["chunk_shape"] == chunks
    files = sorted(p for p in (root / "0").rglob("*") if p.is_file())
    assert len(files) == 1 + 3 * files_per_frame  # zarr.json and the data
    reader = read_independently(backend, root / "0")
    np.testing.assert_array_equal(
        np.asarray(reader[...]), expected_positions(settings, 3)[0]
    )


# ---------------------------------------- tensorstore: one whole file per frame

WHOLE_FRAME_FILES = [
    pytest.param([Dimension("t", 3), *yx()], 3, id="frame-chunks"),
    pytest.param(
        [Dimension("t", 3), *yx(chunk_size=3)[:1], Dimension("x", 8, chunk_size=4)],
        3,
        id="shard-of-chunks",
    ),
    pytest.param(
        [
            Dimension("t", None),
            Dimension("p", coords=["a", "b"]),
            channels(),
            Dimension("y", FRAME[0], chunk_size=3),
            Dimension("x", FRAME[1], chunk_size=4),
        ],
        10,
        id="unbounded-positions-partial-step",
    ),
    pytest.param(
        [Dimension("z", 2), Dimension("t", 2), *yx()], 4, id="storage-order-tz"
    ),
]


def data_files(array: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(array)): p.read_bytes()
        for p in array.rglob("*")
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.parametrize("copy", ["compiled", "numpy"])
@pytest.mark.parametrize(("dims", "frames"), WHOLE_FRAME_FILES)
def test_whole_frame_files_are_the_files_tensorstore_writes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dims: list[Dimension],
    frames: int,
    copy: str,
) -> None:
    """Frames that are one uncompressed file each skip tensorstore's buffers.

    Their files must be byte for byte what tensorstore itself writes for the
    same pixels and metadata, with nothing else beside them: through the
    compiled chunk-order copy, and through numpy's (an install without a C
    compiler).
    """
    # a copy that got a byte wrong would fail the probe and quietly hand every
    # frame back to tensorstore (same files): so count what took the frames
    monkeypatch.setattr(_zarr_direct, "_verified", {})
    encoded: list[np.ndarray] = []
    real_encode = FrameFileLayout.encode_into

    def encode_into(layout: FrameFileLayout, buffer: Any, frame: Any) -> None:
        encoded.append(frame)
        real_encode(layout, buffer, frame)

    monkeypatch.setattr(FrameFileLayout, "encode_into", encode_into)
    compiled: list[bool] = []
    if copy == "numpy":
        monkeypatch.setattr(_zarr_direct, "copy_to_chunk_order", None)
    else:
        real_copy = _zarr_direct.copy_to_chunk_order
        assert real_copy is not None

        def copy_to_chunk_order(*args: Any) -> bool:
            compiled.append(real_copy(*args))
            return compiled[-1]

        monkeypatch.setattr(_zarr_direct, "copy_to_chunk_order", copy_to_chunk_order)
    settings = make_settings(tmp_path, "tensorstore", dims)
    write_all(settings, frames)
    root = Path(settings.output_path)
    for n, (path, want) in enumerate(
        zip(array_paths(root), expected_positions(settings, frames))
    ):
        metadata = json.loads((path / "zarr.json").read_text())
        metadata.pop("attributes", None)
        metadata.pop("zarr_format")
        metadata.pop("node_type")
        spec = {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": str(tmp_path / f"reference{n}")},
            "metadata": metadata,
            "create": True,
        }
        reference = ts.open(spec).result()
        reference[...].write(want).result()
        ours = data_files(path)
        assert ours  # every written frame is a file ...
        assert ours == data_files(tmp_path / f"reference{n}")  # ... and only those
        np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], want)
    # the probe, then every frame, went through this path and this copy
    assert len(encoded) == 1 + frames
    assert len(compiled) == (1 + frames if copy == "compiled" else 0)


def test_whole_frame_files_convert_the_callers_frames(tmp_path: Path) -> None:
    """Byte order and (safe) dtype of the caller's frames are converted."""
    dims = [Dimension("t", 3), Dimension("y", FRAME[0], chunk_size=3), yx()[1]]
    settings = make_settings(tmp_path, "tensorstore", dims)
    with create_stream(settings) as stream:
        stream.append(frame_for(0).astype(">u2"))
        stream.append(np.asfortranarray(frame_for(1)))
        stream.append((frame_for(2) % 256).astype("uint8"))
    data = zarr.open_array(str(Path(settings.output_path) / "0"), mode="r")[...]
    np.testing.assert_array_equal(data[0], frame_for(0))
    np.testing.assert_array_equal(data[1], frame_for(1))
    np.testing.assert_array_equal(data[2], frame_for(2) % 256)


@pytest.mark.parametrize("chunk", [None, 32], ids=["frame-chunks", "shard-of-chunks"])
def test_whole_frame_files_on_a_full_disk(
    full_disk: SmallFilesystem, chunk: int | None
) -> None:
    """ENOSPC surfaces with the path; no part-written file; nothing returned is lost.

    The cause is the ``OSError`` of the package's own write (tensorstore's
    would be a ``ValueError``), so this also shows the direct path ran. The
    writer threads finish files out of order, and the journal beside the
    output holds the frames in flight (it takes disk space too), so which
    frames are files when the disk fills varies; once space is freed,
    ``recover`` puts every frame whose ``append`` returned in place.
    """
    frame_shape = (64, 64)  # 8 KiB: the disk fills within 30 frames
    root = full_disk.path / "out.ome.zarr"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=[
            Dimension("t", 80),
            Dimension("y", 64, chunk_size=chunk),
            Dimension("x", 64, chunk_size=chunk),
        ],
        dtype="uint16",
        format="tensorstore",
    )
    stream = create_stream(settings)
    frames = [np.full(frame_shape, n + 1, "uint16") for n in range(80)]
    with pytest.raises(WriteError, match=r"out\.ome\.zarr") as info:  # noqa: PT012
        for frame in frames:
            stream.append(frame)
        stream.close()
    cause = info.value.__cause__
    assert isinstance(cause, OSError)
    assert cause.errno == errno.ENOSPC
    returned = stream.frames_written
    if not stream.closed:
        with pytest.raises(WriteError):
            stream.close()
    array = root / "0"
    assert not [p for p in array.rglob("*") if "partial" in p.name]
    full_disk.free_ballast()
    recover(root)
    reader = zarr.open_array(array, mode="r")
    for n in range(returned):
        np.testing.assert_array_equal(reader[n], frames[n], err_msg=str(n))


def test_whole_frame_files_write_frames_of_zeros_too(tmp_path: Path) -> None:
    """A frame equal to the fill value gets its file (tensorstore leaves it out).

    The one visible difference of the direct path: this fails without it.
    """
    dims = [Dimension("t", 3), Dimension("y", FRAME[0], chunk_size=3), yx()[1]]
    settings = make_settings(tmp_path, "tensorstore", dims)
    with create_stream(settings) as stream:
        stream.append(frame_for(0))
        stream.append(np.zeros(FRAME, "uint16"))
        stream.append(frame_for(2))
    array = Path(settings.output_path) / "0"
    assert sorted(data_files(array)) == ["c/0/0/0", "c/1/0/0", "c/2/0/0"]
    data = zarr.open_array(str(array), mode="r")[...]
    np.testing.assert_array_equal(data[1], np.zeros(FRAME))
    np.testing.assert_array_equal(data[2], frame_for(2))


def test_a_failed_write_names_its_own_array(tmp_path: Path) -> None:
    """Found by a live read of another position, it still names the failed one."""
    positions = Dimension("p", coords=[Position(name="a"), Position(name="b")])
    settings = make_settings(tmp_path, "tensorstore", [positions, *yx()])
    stream = create_stream(settings)
    root = Path(settings.output_path)
    (root / "a" / "0" / "c").write_bytes(b"not a directory")
    stream.append(frame_for(0))  # position 0: its write fails in the background
    np.testing.assert_array_equal(np.asarray(stream.arrays[1][...]), 0)
    with pytest.raises(WriteError) as info:
        stream.append(frame_for(1))
    assert info.value.filename == str(root / "a" / "0")
    assert "NotADirectoryError" in str(info.value)
    assert "[Errno None]" not in str(info.value)
    with pytest.raises(WriteError):
        stream.close()


@pytest.mark.parametrize("backend", ["tensorstore", "acquire-zarr"])
def test_acquisition_thread_outliving_the_main_thread(
    tmp_path: Path, backend: str
) -> None:
    """A camera loop in its own thread may go on after the main thread returns.

    Python then waits for that thread, but has begun shutting down, which
    ``concurrent.futures`` pools refuse to work through. The engine is
    imported first, as acquisition programs do (Python cannot import a module
    that starts a ``concurrent.futures`` pool once shutting down). zarr-python
    reads files through such a pool itself, so it cannot (README, Limitations).
    """
    root = tmp_path / "late.ome.zarr"
    engine = {"acquire-zarr": "acquire_zarr"}.get(backend, backend)
    script = f"""
import threading, time
import numpy as np
import {engine}
from ome_writers import AcquisitionSettings, Dimension, create_stream

def acquire():
    settings = AcquisitionSettings(
        root_path={str(root)!r}, format={backend!r}, dtype="uint16",
        dimensions=[Dimension("t", 10), Dimension("y", 16), Dimension("x", 16)],
    )
    with create_stream(settings) as stream:
        for n in range(10):
            time.sleep(0.02)
            stream.append(np.full((16, 16), n + 1, "uint16"))

threading.Thread(target=acquire).start()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr, result.stderr
    data = np.asarray(read_independently(backend, root / "0")[...])
    np.testing.assert_array_equal(data[:, 0, 0], np.arange(1, 11))


def test_whole_frame_files_only_where_tensorstore_agrees() -> None:
    """The guard against an engine that encodes differently: it writes then.

    Private names: no public setting can make tensorstore disagree.
    """
    geometry = ChunkGeometry((0, 6, 8), (1, 3, 4), (1, 6, 8))
    layout = FrameFileLayout.for_geometry(geometry, np.dtype("uint16"), None)
    assert layout is not None

    def chunk_order(probe: np.ndarray) -> bytes:
        buffer = layout.new_buffer()
        layout.encode_into(buffer, probe)
        return buffer.tobytes()

    size = 3 * 4 * 2
    entries = np.array([[k * size, size] for k in range(4)], "<u8").tobytes()
    crc = b"\x01\x02\x03\x04"
    engines = {
        "frame-order": (lambda p: p.tobytes() + entries + crc, False),
        "short-index": (lambda p: chunk_order(p) + entries, False),
        "other-offsets": (lambda p: chunk_order(p) + entries[::-1] + crc, False),
        "agrees": (lambda p: chunk_order(p) + entries + crc, True),
    }
    for case, (engine, agrees) in engines.items():
        verified = layout.verified({"guard-test": case}, engine)
        assert (verified is not None) == agrees, case
        if verified is not None:
            assert verified.index == entries + crc

    def not_asked_again(probe: np.ndarray) -> bytes:
        raise AssertionError("the verdict is kept per metadata")

    assert layout.verified({"guard-test": "agrees"}, not_asked_again) is not None
    assert layout.verified({"guard-test": "frame-order"}, not_asked_again) is None
    for compression, z_chunk in [("zstd", 1), (None, 2)]:
        other = ChunkGeometry((0, 6, 8), (z_chunk, 3, 4), (z_chunk, 6, 8))
        assert FrameFileLayout.for_geometry(other, layout.dtype, compression) is None
    edge = ChunkGeometry((0, 6, 8), (1, 4, 3), (1, 8, 9))
    assert FrameFileLayout.for_geometry(edge, layout.dtype, None) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_metadata_files_are_readable_by_others(tmp_path: Path, backend: str) -> None:
    """Servers that read the data (e.g. OMERO) run as another user."""
    dims = [Dimension("p", coords=["a", "b"]), Dimension("t", 2), *yx()]
    settings = make_settings(tmp_path, backend, dims)
    old_umask = os.umask(0o022)
    try:
        write_all(settings, 4)
    finally:
        os.umask(old_umask)
    root = Path(settings.output_path)
    written = [*root.rglob("zarr.json"), *root.rglob("*.xml")]
    assert len(written) >= 5  # root, OME, two images, two arrays, the XML
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert not list(root.rglob("*.tmp"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_unbounded_positions_closed_mid_step_end_alike(
    tmp_path: Path, backend: str
) -> None:
    dims = [Dimension("t", None), Dimension("p", coords=["a", "b", "c"]), *yx()]
    settings = make_settings(tmp_path, backend, dims)
    stream = write_all(settings, 4)  # t=0 for a, b, c; t=1 for a only
    root = Path(settings.output_path)
    for name in ["a", "b", "c"]:
        reader = read_independently(backend, root / name / "0")
        assert tuple(reader.shape) == (2, *FRAME)
    view = stream.view()
    assert view.shape == (2, 3, *FRAME)
    np.testing.assert_array_equal(view[1, 0], frame_for(3))
    assert not np.asarray(view[1, 1]).any()
    assert not np.asarray(view[1, 2]).any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("t_shard", [None, 2], ids=["t-chunks", "t-shards-of-2"])
def test_bounded_closed_early_keeps_the_declared_shape(
    tmp_path: Path, backend: str, t_shard: int | None
) -> None:
    dims = [Dimension("t", 5, shard_size_chunks=t_shard), channels(), *yx()]
    settings = make_settings(tmp_path, backend, dims)
    write_all(settings, 7)  # t=0..2 for both channels, t=3 for the first
    root = Path(settings.output_path)
    validate(root)
    data = np.asarray(read_independently(backend, root / "0")[...])
    assert data.shape == (5, 2, *FRAME)
    flat = data.reshape(10, *FRAME)
    for n in range(7):
        np.testing.assert_array_equal(flat[n], frame_for(n))
    assert not flat[7:].any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("frames", [0, 2], ids=["no-frame", "position-b-unreached"])
def test_bounded_arrays_without_frames_exist_with_the_declared_shape(
    tmp_path: Path, backend: str, frames: int
) -> None:
    dims = [Dimension("p", coords=["a", "b"]), Dimension("t", 3), *yx()]
    settings = make_settings(tmp_path, backend, dims)
    write_all(settings, frames)  # position "a" only, or nothing
    root = Path(settings.output_path)
    validate(root)
    for position, name in enumerate(["a", "b"]):
        data = np.asarray(read_independently(backend, root / name / "0")[...])
        assert data.shape == (3, *FRAME)
        for n in range(3):
            expected = frame_for(n) if position == 0 and n < frames else 0
            np.testing.assert_array_equal(data[n], expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exception_in_the_with_block_is_the_one_raised(
    tmp_path: Path, backend: str
) -> None:
    settings = make_settings(tmp_path, backend, [Dimension("t", 3), *yx()])
    # before its first frame, as when the camera fails to start
    with pytest.raises(KeyError, match="camera did not start"):
        with create_stream(settings):
            raise KeyError("camera did not start")
    data = np.asarray(read_independently(backend, Path(settings.output_path) / "0"))
    assert data.shape == (3, *FRAME)
    assert not data.any()


def test_backends_read_back_identically(tmp_path: Path) -> None:
    dims = [Dimension("t", 3), Dimension("z", 2, chunk_size=2), channels(), *yx()]
    results = []
    for backend in BACKENDS:
        settings = make_settings(tmp_path / backend, backend, dims)
        write_all(settings, 12)
        results.append(zarr.open_array(settings.output_path + "/0", mode="r")[...])
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


# ------------------------------------------------------------------ metadata


@pytest.mark.parametrize("backend", BACKENDS)
def test_metadata_contents(tmp_path: Path, backend: str) -> None:
    dims = [
        Dimension("t", 2, unit="s", scale=1.5),
        Dimension("p", coords=[Position(name="a", x_coord=1.0, y_coord=2.0), "b"]),
        channels(),
        Dimension("z", 2, unit="um", scale=2.0, translation=-1.0),
        *yx(),
    ]
    settings = make_settings(tmp_path, backend, dims)
    with create_stream(settings) as stream:
        stream.set_global_metadata("mm", {"objective": "60x"})
        for n in range(settings.num_frames or 0):
            stream.append(frame_for(n), frame_metadata={"exposure_time": 10.0, "k": n})
    root = Path(settings.output_path)
    top = json.loads((root / "zarr.json").read_text())["attributes"]
    assert top["ome"] == {"version": "0.5", "bioformats2raw.layout": 3}
    # as ome-writers 0.3 puts it: the namespace is a top-level attribute
    assert top["mm"] == {"objective": "60x"}
    assert top["ome_writers"]["global_namespaces"] == ["mm"]
    assert top["ome_writers"]["complete"] is True
    assert top["ome_writers"]["frames_written"] == 16
    image = json.loads((root / "a" / "zarr.json").read_text())["attributes"]
    multiscale = image["ome"]["multiscales"][0]
    assert multiscale["name"] == "a"
    assert multiscale["axes"] == [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    transforms = multiscale["datasets"][0]["coordinateTransformations"]
    # the z origin, plus position "a"'s stage coordinates on y and x
    assert transforms == [
        {"type": "scale", "scale": [1.5, 1.0, 2.0, 0.5, 0.5]},
        {"type": "translation", "translation": [0.0, 0.0, -1.0, 2.0, 1.0]},
    ]
    assert multiscale["type"] == "none"
    omero = image["ome"]["omero"]["channels"]
    assert [(c["label"], c["color"]) for c in omero] == [
        ("DAPI", "0000FF"),
        ("GFP", "FF00FF"),
    ]
    own = image["ome_writers"]
    assert own["position"]["x_coord"] == 1.0
    records = own["frame_metadata"]
    assert len(records) == 8  # half of the frames belong to position "a"
    assert records[1] == {
        "frame_number": 1,
        "storage_index": [0, 0, 1],
        "exposure_time": 10.0,
        "k": 1,
    }
    series = json.loads((root / "OME" / "zarr.json").read_text())["attributes"]
    assert series["ome"]["series"] == ["a", "b"]


def test_plate_has_no_empty_groups(tmp_path: Path) -> None:
    dims = [Dimension("p", coords=PLATE_POSITIONS), *yx()]
    plate = Plate(row_names=["A", "B", "C"], column_names=["1", "2", "3"])
    settings = make_settings(tmp_path, "tensorstore", dims, plate=plate)
    write_all(settings, 3)
    root = Path(settings.output_path)
    groups = sorted(
        str(p.parent.relative_to(root))
        for p in root.rglob("zarr.json")
        if p.parent != root
    )
    # fields are named after their positions, letters and digits only
    assert groups == [
        "A",
        "A/1",
        "A/1/A1f0",
        "A/1/A1f0/0",
        "A/1/A1f1",
        "A/1/A1f1/0",
        "B",
        "B/2",
        "B/2/B2f0",
        "B/2/B2f0/0",
    ]
    validate(root)


# ---------------------------------------------------------- OME/METADATA.ome.xml

STAGE = [
    Position(name="left", x_coord=10.0, y_coord=-3.0, z_coord=1.0),
    Position(name="../escape", x_coord=0.5),
]

#: id -> (dimensions in acquisition order, frames to write)
XML_CASES = [
    pytest.param(
        [
            Dimension("t", 2, unit="s", scale=1.5),
            Dimension("p", coords=STAGE),
            channels(),
            Dimension("z", 3, unit="um", scale=2.0),
            *yx(),
        ],
        None,
        id="tpczyx",
    ),
    pytest.param(
        [Dimension("t", None), Dimension("p", coords=STAGE), channels(), *yx()],
        9,
        id="unbounded-partial-step",
    ),
    pytest.param(
        [Dimension("p", coords=STAGE), Dimension("z", 2), channels(), *yx()],
        None,
        id="storage-order-zc-to-cz",
    ),
]


def read_metadata_xml(root: Path) -> Any:
    """``OME/METADATA.ome.xml``, validated against the OME schema."""
    return from_xml((root / "OME" / "METADATA.ome.xml").read_text(), validate=True)


def writer_annotation(ome: Any) -> dict[str, str]:
    ann = ome.structured_annotations.map_annotations
    return next(
        {m.k: m.value for m in a.value.ms} for a in ann if a.namespace == "ome_writers"
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("dims", "frames"), XML_CASES)
def test_bioformats2raw_metadata_xml(
    tmp_path: Path, backend: str, dims: list[Dimension], frames: int | None
) -> None:
    settings = make_settings(tmp_path, backend, dims)
    frames = frames or settings.num_frames
    assert frames is not None
    root = Path(settings.output_path)
    with create_stream(settings) as stream:
        assert writer_annotation(read_metadata_xml(root))["complete"] == "false"
        stream.set_global_metadata("mm", {"objective": "60x"})
        live = read_metadata_xml(root).structured_annotations.map_annotations
        assert [a.namespace for a in live] == ["ome_writers", "mm"]
        for n in range(frames):
            stream.append(frame_for(n), frame_metadata={"delta_t": n * 0.5, "k": n})
    validate(root)
    assert sorted(p.name for p in (root / "OME").iterdir()) == [
        "METADATA.ome.xml",
        "zarr.json",
    ]
    ome = read_metadata_xml(root)
    assert writer_annotation(ome)["complete"] == "true"
    assert ome.plates == []
    series = json.loads((root / "OME" / "zarr.json").read_text())["attributes"]
    paths = series["ome"]["series"]
    assert len(ome.images) == len(paths) == len(STAGE)
    for i, (image, path, pos) in enumerate(zip(ome.images, paths, STAGE)):
        group = json.loads((root / path / "zarr.json").read_text())["attributes"]
        assert image.id == f"Image:{i}"
        assert image.name == group["ome"]["multiscales"][0]["name"] == pos.name
        assert (image.stage_label.x, image.stage_label.y, image.stage_label.z) == (
            pos.x_coord,
            pos.y_coord,
            pos.z_coord,
        )
        pixels = image.pixels
        array = json.loads((root / path / "0" / "zarr.json").read_text())
        shape = dict(zip(array["dimension_names"], array["shape"]))
        for name, size in shape.items():
            assert getattr(pixels, f"size_{name}") == size, name
        # the arrays are (t, c, z, y, x): DimensionOrder lists them fastest first
        stored = "".join(n.upper() for n in reversed(array["dimension_names"]))
        assert pixels.dimension_order.value.startswith(stored)
        assert pixels.type.value == "uint16"
        assert [c.name for c in pixels.channels] == ["DAPI", "GFP"]
        assert pixels.channels[0].color.as_rgb_tuple() == (0, 0, 255)
        assert pixels.metadata_only is not None
        assert pixels.tiff_data_blocks == []
        assert pixels.bin_data_blocks == []
        assert (pixels.physical_size_x, pixels.physical_size_y) == (0.5, 0.5)
        assert pixels.physical_size_x_unit.value == "µm"
        z_scale = next((d.scale for d in dims if d.name == "z"), None)
        assert pixels.physical_size_z == z_scale
        records = group["ome_writers"]["frame_metadata"]
        assert [p.delta_t for p in pixels.planes] == [r["delta_t"] for r in records]
    if dims[0].scale is not None:
        assert ome.images[0].pixels.time_increment == 1.5


@pytest.mark.parametrize(("dims", "extra", "frames"), LAYOUTS)
def test_metadata_xml_only_in_bioformats2raw_layout(
    tmp_path: Path, dims: list[Dimension], extra: dict, frames: int | None
) -> None:
    settings = make_settings(tmp_path, "zarr-python", dims, **extra)
    write_all(settings, frames or settings.num_frames or 0)
    root = Path(settings.output_path)
    ome = json.loads((root / "zarr.json").read_text())["attributes"]["ome"]
    has_xml = (root / "OME" / "METADATA.ome.xml").is_file()
    assert has_xml == ("bioformats2raw.layout" in ome)


#: id -> (dimensions, dtype) that OME-XML cannot describe but OME-Zarr stores
#: (dimensions OME's T, C, Z cannot hold exceed OME-Zarr's five axes as well)
NOT_OME_XML = [
    pytest.param([Dimension("p", 2), Dimension("t", 2), *yx()], "int64", id="int64"),
    pytest.param([Dimension("t", 2), Dimension("p", 2), *yx()], "uint64", id="uint64"),
]


@pytest.mark.parametrize(("dims", "dtype"), NOT_OME_XML)
def test_metadata_xml_skipped_when_ome_cannot_describe_it(
    tmp_path: Path, dims: list[Dimension], dtype: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "out.ome.zarr"),
        dimensions=dims,
        dtype=dtype,
        format="tensorstore",
    )
    caplog.set_level(logging.INFO, logger="ome_writers")
    with create_stream(settings) as stream:
        for n in range(settings.num_frames or 0):
            stream.append(frame_for(n).astype(dtype))
    root = Path(settings.output_path)
    validate(root)
    assert not (root / "OME" / "METADATA.ome.xml").exists()
    skips = [r for r in caplog.records if "METADATA.ome.xml not written" in r.message]
    assert len(skips) == 1
    assert skips[0].name == "ome_writers"
    assert skips[0].levelno == logging.INFO


SKIP_WITHOUT_OME_TYPES = """
import logging, sys
import numpy as np
import ome_writers
assert "ome_types" not in sys.modules, "importing ome_writers imported ome-types"
sys.modules["ome_types"] = None  # any import of it now fails, as if not installed
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
from ome_writers import AcquisitionSettings, Dimension, create_stream
for k in range(2):
    settings = AcquisitionSettings(
        root_path=f"{sys.argv[1]}/out{k}.ome.zarr",
        dimensions=[Dimension("p", 2), Dimension("t", 2), Dimension("y", 4),
                    Dimension("x", 4)],
        dtype="uint16",
        format=sys.argv[2],
    )
    with create_stream(settings) as stream:
        for n in range(4):
            stream.append(np.full((4, 4), n, "uint16"))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_ome_types_the_xml_is_skipped_and_logged_once(
    tmp_path: Path, backend: str
) -> None:
    command = [sys.executable, "-c", SKIP_WITHOUT_OME_TYPES, str(tmp_path), backend]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    skips = [line for line in result.stderr.splitlines() if "not written" in line]
    assert len(skips) == 1, result.stderr
    assert skips[0].startswith("ome_writers INFO ")
    assert "ome-types is not installed" in skips[0]
    for k in range(2):
        root = tmp_path / f"out{k}.ome.zarr"
        validate(root)
        assert (root / "OME" / "zarr.json").is_file()
        assert not (root / "OME" / "METADATA.ome.xml").exists()


# --------------------------------------------------------------- live reading


@pytest.mark.parametrize("backend", BACKENDS)
def test_arrays_and_view_during_and_after(tmp_path: Path, backend: str) -> None:
    dims = [Dimension("t", None), Dimension("z", 4, chunk_size=4), channels(), *yx()]
    settings = make_settings(tmp_path, backend, dims, storage_order="ome")
    stream = create_stream(settings)
    try:
        for n in range(11):
            stream.append(frame_for(n))
            want = expected_positions(settings, n + 1)[0]
            np.testing.assert_array_equal(np.asarray(stream.arrays[0]), want)
            assert stream.arrays[0].shape == want.shape
            # the view is in acquisition order (t, z, c)
            np.testing.assert_array_equal(stream.view()[0, 0, 0], frame_for(0))
            np.testing.assert_array_equal(
                stream.view(dynamic_shape=False)[n // 8, (n // 2) % 4, n % 2],
                frame_for(n),
            )
    finally:
        stream.close()
    want = expected_positions(settings, 11)[0]
    np.testing.assert_array_equal(np.asarray(stream.arrays[0]), want)
    np.testing.assert_array_equal(stream.arrays[0][1, 1, ::2], want[1, 1, ::2])
    assert stream.view().shape == (2, 4, 2, *FRAME)


@pytest.mark.parametrize("backend", ["tensorstore", "zarr-python"])
def test_unbounded_shape_on_disk_after_every_resize(
    tmp_path: Path, backend: str
) -> None:
    dims = [Dimension("t", None), channels(), *yx()]
    settings = make_settings(tmp_path, backend, dims)
    meta = Path(settings.output_path) / "0" / "zarr.json"
    with create_stream(settings) as stream:
        for n in range(7):
            stream.append(frame_for(n))
            assert json.loads(meta.read_text())["shape"] == [n // 2 + 1, 2, *FRAME]
    assert json.loads(meta.read_text())["shape"] == [4, 2, *FRAME]


#: id -> (unbounded first dimension, frames to write: two per step, the last
#: step left half full)
GROWTH = [
    pytest.param(Dimension("t", None), 7, id="t-chunks-of-1"),
    pytest.param(Dimension("t", None, chunk_size=2), 7, id="t-chunks-of-2"),
    pytest.param(Dimension("t", None, shard_size_chunks=2), 9, id="t-shards-of-2"),
]


def extent_on_disk(backend: str, first: Dimension, frames: int) -> int:
    """First-axis size the array's ``zarr.json`` gives after ``frames`` frames."""
    if backend == "acquire-zarr" and first.shard_size_chunks:
        # acquire-zarr's half-filled shards cannot be read: whole shard rows only
        rows = (first.chunk_size or 1) * first.shard_size_chunks
        return frames // (2 * rows) * rows
    return -(-frames // 2)  # every step a frame was written to


def settled_shape(
    backend: str, path: Path, want: tuple[int, ...], settle_s: float = 0.0
) -> tuple[int, ...]:
    """The shape read by another engine, once it has been ``want`` for ``settle_s``.

    acquire-zarr writes the array's ``zarr.json`` from its own threads, some
    time after ``append``; gives up after 10 s and returns the last shape read.
    """
    shape: tuple[int, ...] = ()
    since = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            shape = tuple(read_independently(backend, path).shape)
        except ValueError:  # read while acquire-zarr rewrote it in place
            shape = ()
        now = time.monotonic()
        if shape != want:
            since = None
        elif since is None:
            since = now
        if since is not None and now - since >= settle_s:
            return shape
        time.sleep(0.01)
    return shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("first", "frames"), GROWTH)
def test_unbounded_array_metadata_during_acquisition(
    tmp_path: Path, backend: str, first: Dimension, frames: int
) -> None:
    settings = make_settings(tmp_path, backend, [first, channels(), *yx()])
    root = Path(settings.output_path)
    array = root / "0"
    with create_stream(settings) as stream:
        assert settled_shape(backend, array, (0, 2, *FRAME)) == (0, 2, *FRAME)
        validate(root)
        for n in range(frames - 4):
            stream.append(frame_for(n))
            want = (extent_on_disk(backend, first, n + 1), 2, *FRAME)
            assert settled_shape(backend, array, want) == want, n
        for n in range(frames - 4, frames):  # two steps at full speed, then a pause
            stream.append(frame_for(n))
        # in a half-full step: acquire-zarr's rewrites, late and with fewer
        # steps, must not stay
        want = (extent_on_disk(backend, first, frames), 2, *FRAME)
        assert settled_shape(backend, array, want, settle_s=0.5) == want
        validate(root)
        live = json.loads((array / "zarr.json").read_text())
    validate(root)
    final = json.loads((array / "zarr.json").read_text())
    assert final["shape"] == [-(-frames // 2), 2, *FRAME]
    assert {**live, "shape": None} == {**final, "shape": None}
    reader = read_independently(backend, array)
    expected = expected_positions(settings, frames)[0]
    assert tuple(reader.shape) == expected.shape
    for index in np.ndindex(*expected.shape[:-2]):
        np.testing.assert_array_equal(np.asarray(reader[index]), expected[index])


# ------------------------------------------------------------------ guarantees


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("z_chunk", [1, 3], ids=["frame-chunks", "z-chunks"])
def test_buffer_reuse(tmp_path: Path, backend: str, z_chunk: int) -> None:
    dims = [Dimension("t", 4), Dimension("z", 3, chunk_size=z_chunk), *yx()]
    settings = make_settings(tmp_path, backend, dims)
    buffer = np.empty(FRAME, "uint16")
    with create_stream(settings) as stream:
        for n in range(12):
            buffer[...] = frame_for(n)
            stream.append(buffer)
            buffer[...] = 7
    reader = read_independently(backend, Path(settings.output_path) / "0")
    np.testing.assert_array_equal(
        np.asarray(reader[...]), expected_positions(settings, 12)[0]
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_frames_do_not_use_a_slot(tmp_path: Path, backend: str) -> None:
    settings = make_settings(tmp_path, backend, [Dimension("t", 2), *yx()])
    with create_stream(settings) as stream:
        with pytest.raises(ValueError, match="does not match the declared frame shape"):
            stream.append(np.zeros((FRAME[0] + 1, FRAME[1]), "uint16"))
        with pytest.raises(TypeError, match="cannot be safely cast"):
            stream.append(np.zeros(FRAME, "float64"))
        stream.append(frame_for(0))
        stream.skip()
    reader = read_independently(backend, Path(settings.output_path) / "0")
    np.testing.assert_array_equal(np.asarray(reader[0]), frame_for(0))
    np.testing.assert_array_equal(np.asarray(reader[1]), np.zeros(FRAME))


@pytest.mark.parametrize("backend", BACKENDS)
def test_write_error_surfaces_with_path(tmp_path: Path, backend: str) -> None:
    settings = make_settings(tmp_path, backend, [Dimension("t", 4), *yx()])
    stream = create_stream(settings)
    # a file where the engine must create the chunk directory: a real ENOTDIR
    chunks = Path(settings.output_path) / "0" / "c"
    chunks.parent.mkdir(exist_ok=True)
    chunks.write_bytes(b"not a directory")
    with pytest.raises(WriteError, match=r"out\.ome\.zarr") as info:  # noqa: PT012
        for n in range(4):
            stream.append(frame_for(n))
        stream.close()
    assert info.value.__cause__ is not None
    if not stream.closed:  # raised by append: close raises it again, never drops it
        with pytest.raises(WriteError, match=r"out\.ome\.zarr"):
            stream.close()
    assert stream.closed


# ------------------------------------------------------------- paths and names


@pytest.mark.parametrize("backend", BACKENDS)
def test_overwrite_rules(tmp_path: Path, backend: str) -> None:
    dims = [Dimension("t", 1), *yx()]
    settings = make_settings(tmp_path, backend, dims)
    write_all(settings, 1)
    with pytest.raises(FileExistsError, match="already exists"):
        create_stream(settings)
    replaced = settings.model_copy(update={"overwrite": True})
    write_all(replaced, 1)
    validate(Path(settings.output_path))

    foreign = tmp_path / "foreign.zarr"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    a_file = tmp_path / "file.zarr"
    a_file.write_text("precious")
    for target in (foreign, a_file):
        with pytest.raises(FileExistsError, match="not a Zarr hierarchy"):
            create_stream(
                make_settings(tmp_path, backend, dims, overwrite=True).model_copy(
                    update={"root_path": str(target)}
                )
            )
    assert (foreign / "keep.txt").read_text() == "precious"
    assert a_file.read_text() == "precious"


@pytest.mark.parametrize(
    "row",
    ["..", "A/B", "", "A.B", " A"],
    ids=["dotdot", "slash", "empty", "dot", "space"],
)
def test_unsafe_plate_names_are_refused(tmp_path: Path, row: str) -> None:
    dims = [
        Dimension("p", coords=[Position(name="f", plate_row=row, plate_column="1")]),
        *yx(),
    ]
    settings = make_settings(
        tmp_path, "tensorstore", dims, plate=Plate(row_names=[row], column_names=["1"])
    )
    with pytest.raises(ValueError, match="cannot be used as a Zarr group name"):
        create_stream(settings)
    assert not Path(settings.output_path).exists()


def test_position_names_become_safe_group_names(tmp_path: Path) -> None:
    names = ["../../escape", "/abs", "", "OME", "a b", "a_b"]
    dims = [Dimension("p", coords=names), *yx()]
    settings = make_settings(tmp_path, "tensorstore", dims)
    write_all(settings, len(names))
    root = Path(settings.output_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]
    groups = ["p0", "_abs", "p2", "OME_1", "a_b", "a_b_1"]
    series = json.loads((root / "OME" / "zarr.json").read_text())["attributes"]
    assert series["ome"]["series"] == groups
    written = [
        json.loads((root / g / "zarr.json").read_text())["attributes"]["ome"][
            "multiscales"
        ][0]["name"]
        for g in groups
    ]
    assert written == names
    validate(root)


# ------------------------------------------------------------ settings checks


def test_unsupported_codec_is_refused_at_settings_time(tmp_path: Path) -> None:
    for backend in BACKENDS:
        assert "blosc-zstd" in OmeZarrFormat(backend=backend).supported_compressions()
        with pytest.raises(ValueError, match=r"compression 'lzw' is not supported"):
            make_settings(
                tmp_path, backend, [Dimension("t", 1), *yx()], compression="lzw"
            )


def test_format_selection(tmp_path: Path) -> None:
    dims = [Dimension("t", 1), *yx()]
    by_suffix = AcquisitionSettings(
        root_path=str(tmp_path / "a.zarr"), dimensions=dims, dtype="uint8"
    )
    assert by_suffix.format.name == "ome-zarr"
    assert by_suffix.output_path.endswith("a.zarr")
    by_alias = AcquisitionSettings(
        root_path=str(tmp_path / "b"), dimensions=dims, dtype="uint8", format="zarr"
    )
    assert by_alias.output_path.endswith("b.ome.zarr")
    assert by_alias.format.backend == "tensorstore"


# ------------------------------------------------------------ engines and cli


def test_missing_engine_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    # acquire-zarr is installed here: hiding it from find_spec is the only way
    # to make it missing without a second environment
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "acquire_zarr" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    settings = make_settings(tmp_path, "acquire-zarr", [Dimension("t", 1), *yx()])
    with pytest.raises(
        BackendUnavailableError, match=r"pip install 'ome-writers\[acquire-zarr\]'"
    ):
        create_stream(settings)
    assert not Path(settings.output_path).exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_info_describes_ome_zarr(tmp_path: Path, backend: str) -> None:
    dims = [Dimension("t", 2), Dimension("p", coords=["a", "b"]), *yx()]
    settings = make_settings(tmp_path, backend, dims, compression="blosc-zstd")
    write_all(settings, 4)
    result = run_cli("info", settings.output_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "OME-Zarr 0.5 bioformats2raw, complete" in text.splitlines()[0]
    (writer,) = [line for line in text.splitlines() if "written by:" in line]
    assert writer.startswith("  written by:   ome_writers ")
    assert writer.endswith(f" ({backend})")
    assert f"dimensions:   t 2 · y {FRAME[0]} · x {FRAME[1]}" in text
    assert "dtype:        uint16" in text
    assert "positions:    2" in text
    assert "    a: a/0" in text
    assert "frames:       4 of 4 written" in text
    assert "compression:  blosc-zstd" in text
    assert "size on disk:" in text
    # the directory holding the store is not itself a dataset
    outside = run_cli("info", tmp_path)
    assert outside.returncode == 2
    assert "OME-Zarr" not in outside.stdout


def test_cli_demo_writes_ome_zarr(tmp_path: Path) -> None:
    out = tmp_path / "demo.ome.zarr"
    result = run_cli(
        "demo", "--format", "ome-zarr", "--root", out, "--dims", "t:3,c:2,y:16,x:16"
    )
    assert result.returncode == 0, result.stderr
    assert "output:" in result.stdout
    validate(out)
    assert zarr.open_array(str(out / "0"), mode="r").shape == (3, 2, 16, 16)


@pytest.mark.parametrize(
    ("positions", "plate", "groups"),
    [
        pytest.param(["only"], None, [""], id="one-position-is-an-image"),
        pytest.param(
            [Position(name="s", grid_row=0, grid_column=c) for c in range(2)],
            None,
            ["s_0_0", "s_0_1"],
            id="tiles-named-with-their-cell",
        ),
        pytest.param(
            [
                Position(name="fov0", plate_row="A", plate_column="1"),
                Position(name="fov1", plate_row="A", plate_column="1"),
                Position(name="fov0", plate_row="B", plate_column="2"),
            ],
            Plate(["A", "B"], ["1", "2"]),
            ["A/1/fov0", "A/1/fov1", "B/2/fov0"],
            id="plate-fields-named-after-positions",
        ),
    ],
)
def test_group_names_as_03_writes_them(
    tmp_path: Path, positions: list, plate: Plate | None, groups: list[str]
) -> None:
    dims = [Dimension("p", coords=positions), *yx()]
    settings = make_settings(tmp_path, "zarr-python", dims, plate=plate)
    write_all(settings, len(positions))
    root = Path(settings.output_path)
    assert array_paths(root) == [root / g / "0" if g else root / "0" for g in groups]
    for p, group in enumerate(groups):
        np.testing.assert_array_equal(
            zarr.open_array(root / group / "0", mode="r")[...], frame_for(p)
        )
    validate(root)
