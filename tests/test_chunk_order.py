"""The compiled chunk-order copy, against numpy's transpose of the same frame."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from ome_writers._chunk_order import copy_to_chunk_order

# (frame shape, chunk shape, dtype): 16-byte chunk rows take streamed stores,
# others memcpy; one chunk per frame is a plain copy
LAYOUTS = [
    pytest.param((2048, 2048), (512, 512), "uint16", id="benchmark-4x4"),
    pytest.param((6, 8), (6, 8), "uint16", id="one-chunk-16-byte-rows"),
    pytest.param((6, 8), (3, 4), "uint16", id="8-byte-chunk-rows"),
    pytest.param((64, 96), (16, 32), "uint8", id="32-byte-rows-uint8"),
    pytest.param((30, 40), (10, 20), "float32", id="80-byte-rows"),
    pytest.param((7, 9), (7, 3), "uint8", id="odd-3-byte-rows"),
    pytest.param((40, 36), (8, 12), "uint16", id="24-byte-rows-grid-5x3"),
    pytest.param((16, 200), (4, 40), "float64", id="320-byte-rows-tail"),
    pytest.param((1, 1), (1, 1), "uint8", id="one-pixel"),
]


def in_chunk_order(frame: np.ndarray, chunk: tuple[int, int]) -> bytes:
    """The reference: numpy's own reshape and transpose."""
    (ny, nx), (cy, cx) = frame.shape, chunk
    grid = frame.reshape(ny // cy, cy, nx // cx, cx).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(grid).tobytes()


def random_frame(shape: tuple[int, int], dtype: str) -> np.ndarray:
    raw = np.random.default_rng(1).integers(0, 256, (*shape, np.dtype(dtype).itemsize))
    return raw.astype(np.uint8).view(dtype).reshape(shape)


STREAMS = platform.machine().lower() in ("x86_64", "amd64")


@pytest.mark.parametrize(("shape", "chunk", "dtype"), LAYOUTS)
@pytest.mark.parametrize("out_offset", [0, 1, 8], ids=["aligned", "off-1", "off-8"])
def test_copy_matches_numpy(
    shape: tuple[int, int], chunk: tuple[int, int], dtype: str, out_offset: int
) -> None:
    """Every byte lands where numpy puts it, streamed or not.

    Stores are streamed (x86-64) exactly when every output row starts on 16
    bytes: a 16-byte multiple of a chunk row in an aligned output.
    """
    frame = random_frame(shape, dtype)
    raw = np.zeros(frame.nbytes + out_offset + 32, np.uint8)
    start = (-raw.ctypes.data) % 16 + out_offset  # 16-byte aligned, then offset
    raw[start + frame.nbytes :] = 0xAB  # guard bytes after the output
    out = raw[start : start + frame.nbytes]
    row_bytes = chunk[1] * frame.itemsize
    streamed = copy_to_chunk_order(frame, out, shape[0], chunk[0], row_bytes)
    assert out.tobytes() == in_chunk_order(frame, chunk)
    assert not raw[:start].any()
    assert (raw[start + frame.nbytes :] == 0xAB).all()
    assert streamed == (STREAMS and out_offset == 0 and row_bytes % 16 == 0)


def test_copy_into_a_numpy_buffer_leaves_the_frame_alone() -> None:
    frame = random_frame((64, 64), "uint16")
    before = frame.copy()
    out = np.empty((2, 2, 32, 32), "uint16")
    assert copy_to_chunk_order(frame, out, 64, 32, 64) == STREAMS
    np.testing.assert_array_equal(
        out, frame.reshape(2, 32, 2, 32).transpose(0, 2, 1, 3)
    )
    np.testing.assert_array_equal(frame, before)


@pytest.mark.parametrize(
    ("rows", "chunk_rows", "chunk_row_bytes", "match"),
    [
        pytest.param(5, 1, 16, "does not split", id="rows-do-not-divide-bytes"),
        pytest.param(8, 3, 16, "does not split", id="chunk-rows-do-not-divide"),
        pytest.param(8, 4, 12, "does not split", id="chunk-bytes-do-not-divide"),
        pytest.param(0, 4, 16, "does not split", id="zero-rows"),
        pytest.param(8, -4, 16, "does not split", id="negative-chunk"),
    ],
)
def test_sizes_that_do_not_divide_are_refused(
    rows: int, chunk_rows: int, chunk_row_bytes: int, match: str
) -> None:
    frame = np.zeros((8, 16), "uint16")
    out = np.full((8, 16), 7, "uint16")
    with pytest.raises(ValueError, match=match):
        copy_to_chunk_order(frame, out, rows, chunk_rows, chunk_row_bytes)
    assert (out == 7).all()  # nothing written


def test_buffers_that_do_not_fit_are_refused() -> None:
    frame = np.zeros((8, 16), "uint16")
    with pytest.raises(ValueError, match="out has 128 bytes but the frame has 256"):
        copy_to_chunk_order(frame, bytearray(128), 8, 4, 16)
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        copy_to_chunk_order(frame[:, ::2], bytearray(128), 8, 4, 8)  # strided
    with pytest.raises((BufferError, TypeError)):
        copy_to_chunk_order(frame, bytes(256), 8, 4, 16)  # read-only


def test_overlapping_buffers_are_refused() -> None:
    storage = np.arange(384, dtype=np.uint8)
    before = storage.copy()
    with pytest.raises(ValueError, match="overlaps the frame"):
        copy_to_chunk_order(storage[:256], storage[128:], 8, 4, 16)
    with pytest.raises(ValueError, match="overlaps the frame"):
        copy_to_chunk_order(storage[:256], storage[:256], 8, 4, 16)
    np.testing.assert_array_equal(storage, before)
    # side by side is fine
    copy_to_chunk_order(storage[:128], storage[128:256], 8, 4, 8)
