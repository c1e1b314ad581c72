"""A frame file written piece by piece and halved as it goes (``write_halving``).

The compiled loop and its numpy fallback against an independent reference:
the file holds the frame's chunk-order bytes, unchanged, and the level below
holds the frame halved by numpy's own reshape, placed in that level's chunk
grid. Faults are real: a descriptor that cannot be written, a full tmpfs.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ome_writers._backends import _downsample
from ome_writers._backends._downsample import write_halving

if TYPE_CHECKING:
    from pathlib import Path

    from ome_writers._pyramid import PyramidMethod

# (frame shape, chunk shape, level-below chunk shape, dtype, piece rows)
LAYOUTS = [
    pytest.param((2048, 2048), (512, 512), (512, 512), "uint16", 128, id="bench"),
    pytest.param((16, 16), (8, 8), (8, 8), "uint16", 2, id="2x2-halved-in-one"),
    pytest.param((16, 24), (4, 8), (2, 4), "uint8", 4, id="one-halved-per-chunk"),
    pytest.param((12, 12), (6, 6), (6, 6), "int32", 4, id="last-piece-short"),
    pytest.param((8, 16), (8, 8), (4, 8), "float32", 8, id="whole-chunk-pieces"),
    pytest.param((4, 4), (4, 4), (2, 2), "float64", 2, id="one-chunk"),
]
METHODS: list[PyramidMethod] = ["mean", "decimate", "min", "max"]


def halved(frame: np.ndarray, method: PyramidMethod) -> np.ndarray:
    """The reference: numpy's reshape into 2 x 2 blocks (even sides)."""
    ny, nx = frame.shape
    blocks = frame.reshape(ny // 2, 2, nx // 2, 2).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(ny // 2, nx // 2, 4)
    if method == "decimate":
        return frame[::2, ::2]
    if method == "min":
        return blocks.min(axis=2)
    if method == "max":
        return blocks.max(axis=2)
    if frame.dtype.kind == "f":
        return (blocks.astype(np.float64).sum(axis=2) * 0.25).astype(frame.dtype)
    total = blocks.astype(np.int64).sum(axis=2)
    return ((total + 2) // 4).astype(frame.dtype)  # floor((sum + n/2) / n)


def chunk_order(plane: np.ndarray, chunk: tuple[int, int]) -> np.ndarray:
    """``plane`` as a (grid Y, grid X, chunk Y, chunk X) array."""
    (ny, nx), (cy, cx) = plane.shape, chunk
    grid = plane.reshape(ny // cy, cy, nx // cx, cx).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(grid)


def frame_of(shape: tuple[int, int], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype) * 1000
    info = np.iinfo(dtype)  # the extremes too: the mean must not overflow
    frame = rng.integers(info.min, info.max, shape, dtype, endpoint=True)
    frame.flat[:4] = info.max
    return frame


@pytest.fixture(params=["compiled", "numpy"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with the compiled loop and with the numpy fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(_downsample, "_write_halving_kernel", None)
        monkeypatch.setattr(_downsample, "_reduce_kernel", None)
    return str(request.param)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("shape", "chunk", "out_chunk", "dtype", "piece_rows"), LAYOUTS
)
def test_file_and_level_below_match_the_reference(
    tmp_path: Path,
    kernel: str,
    method: PyramidMethod,
    shape: tuple[int, int],
    chunk: tuple[int, int],
    out_chunk: tuple[int, int],
    dtype: str,
    piece_rows: int,
) -> None:
    frame = frame_of(shape, dtype)
    chunks = chunk_order(frame, chunk)
    out_shape = (shape[0] // 2 // out_chunk[0], shape[1] // 2 // out_chunk[1])
    out = np.full((*out_shape, *out_chunk), 7, dtype)
    path = tmp_path / "frame"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        os.write(fd, b"head")  # written from the descriptor's position
        write_halving(fd, chunks, out, method, piece_rows)
        os.write(fd, b"tail")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"head" + chunks.tobytes() + b"tail"
    expected = chunk_order(halved(frame, method), out_chunk)
    np.testing.assert_array_equal(out, expected)


def test_rows_of_the_level_below_may_be_strided(tmp_path: Path, kernel: str) -> None:
    """The level below is one slot of a shard buffer: a view, not a copy."""
    frame = frame_of((16, 16), "uint16")
    shard = np.zeros((3, 1, 1, 8, 8), "uint16")
    out = shard[1]  # contiguous rows inside a larger buffer
    strided = np.zeros((1, 1, 8, 16), "uint16")[..., :8]  # rows 32 bytes apart
    for target in (out, strided):
        fd = os.open(tmp_path / f"f{target.strides[2]}", os.O_WRONLY | os.O_CREAT)
        try:
            write_halving(fd, chunk_order(frame, (8, 8)), target, "mean", 4)
        finally:
            os.close(fd)
        np.testing.assert_array_equal(target[0, 0], halved(frame, "mean"))
    assert not shard[0].any()  # nothing beside the slot
    assert not shard[2].any()


def test_a_descriptor_that_cannot_be_written_raises(tmp_path: Path) -> None:
    path = tmp_path / "read-only"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    out = np.zeros((1, 1, 4, 4), "uint16")
    try:
        with pytest.raises(OSError, match="Bad file descriptor") as info:
            write_halving(fd, np.ones((1, 1, 8, 8), "uint16"), out, "mean", 2)
    finally:
        os.close(fd)
    assert info.value.errno == errno.EBADF


def test_a_full_filesystem_raises_enospc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: str
) -> None:
    """A real 1 MiB tmpfs: the write fails with ENOSPC part way through the
    frame, and the error says so (the writer then removes its partial file)."""
    from _small_fs import SmallFilesystem

    fs = SmallFilesystem(tmp_path / "small", monkeypatch, size_bytes=1024**2)
    if kernel == "compiled" and not fs.is_tmpfs:
        pytest.fail("the compiled loop writes below os.write: this needs a real tmpfs")
    try:
        frame = frame_of((1024, 1024), "uint16")  # 2 MiB: more than fits
        out = np.zeros((1, 1, 512, 512), "uint16")
        fd = os.open(fs.path / "frame", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError, match="No space left") as info:
                write_halving(fd, chunk_order(frame, (1024, 1024)), out, "mean", 64)
        finally:
            os.close(fd)
        assert info.value.errno == errno.ENOSPC
        # the pieces written whole before the failure were halved, no others
        written = (fs.path / "frame").stat().st_size // (1024 * 2) // 64 * 64
        assert 0 < written < 1024
        np.testing.assert_array_equal(
            out[0, 0, : written // 2], halved(frame[:written], "mean")
        )
        assert not out[0, 0, written // 2 :].any()
    finally:
        fs.unmount()


BAD = [
    pytest.param((1, 1, 7, 8), (1, 1, 4, 4), 2, "must be even", id="odd-chunk"),
    pytest.param((1, 1, 8, 8), (1, 1, 4, 4), 3, "must be even", id="odd-pieces"),
    pytest.param((2, 2, 8, 8), (1, 1, 4, 4), 2, "cannot hold", id="out-too-small"),
    pytest.param((1, 2, 8, 8), (1, 1, 4, 6), 2, "cannot hold", id="straddles-chunks"),
]


@pytest.mark.parametrize(("chunks_shape", "out_shape", "piece_rows", "message"), BAD)
def test_bad_shapes_are_refused_before_writing(
    tmp_path: Path,
    chunks_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    piece_rows: int,
    message: str,
) -> None:
    from ome_writers._pyramid_kernel import write_halving as compiled

    path = tmp_path / "frame"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(ValueError, match=message):
            compiled(
                fd,
                np.ones(chunks_shape, "uint16"),
                np.zeros(out_shape, "uint16"),
                piece_rows,
                "H",
                0,
            )
    finally:
        os.close(fd)
    assert path.read_bytes() == b""
