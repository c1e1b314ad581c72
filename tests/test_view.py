"""StreamView: all positions in acquisition order, position axis where declared."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ome_writers import Channel, Position, dims_from_standard_axes

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import StreamFactory

STAGE = [Position(name="A1", x_coord=0.0), Position(name="B2", x_coord=9.0)]
SIZES = {"t": 3, "p": STAGE, "c": 2, "y": 3, "x": 4}
COUNTS = (3, 2, 2)  # t, p, c


def acquired(make_frame: Callable, written: int, counts: tuple = COUNTS) -> np.ndarray:
    """Acquisition-order array after ``written`` frames; zeros where unwritten."""
    out = np.zeros((int(np.prod(counts)), 3, 4), "uint16")
    for n in range(written):
        out[n] = make_frame(n)
    return out.reshape(*counts, 3, 4)


def high_water(written: int, counts: tuple = COUNTS) -> tuple[int, ...]:
    """One past the largest index reached on each axis (brute force)."""
    if written == 0:
        return tuple(0 for _ in counts)
    indices = list(itertools.product(*(range(c) for c in counts)))[:written]
    return tuple(int(m) + 1 for m in np.max(indices, axis=0))


def test_view_dims_coords_dtype(scratch_stream: StreamFactory) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    view = stream.view()
    assert view.dims == ("t", "p", "c", "y", "x")
    assert view.ndim == 5
    assert view.dtype == np.dtype("uint16")
    # dynamic shape: nothing acquired yet, so no coordinates but the frame's
    assert view.coords == {
        "t": range(0),
        "p": [],
        "c": range(0),
        "y": range(3),
        "x": range(4),
    }
    fixed = stream.view(dynamic_shape=False)
    assert fixed.coords == {
        "t": range(3),
        "p": ["A1", "B2"],
        "c": range(2),
        "y": range(3),
        "x": range(4),
    }


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        pytest.param(1, {"t": range(1), "p": ["A1"], "c": range(1)}, id="first"),
        pytest.param(3, {"t": range(1), "p": ["A1", "B2"], "c": range(2)}, id="p1"),
        pytest.param(5, {"t": range(2), "p": ["A1", "B2"], "c": range(2)}, id="t1"),
    ],
)
def test_coords_follow_the_dynamic_shape(
    scratch_stream: StreamFactory,
    make_frame: Callable,
    written: int,
    expected: dict[str, Any],
) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    for n in range(written):
        stream.append(make_frame(n))
    assert stream.view().coords == {**expected, "y": range(3), "x": range(4)}


@pytest.mark.parametrize("scratch_mode", ["memory", "disk"])
def test_coords_of_the_unbounded_dimension(scratch_stream: StreamFactory) -> None:
    dims = dims_from_standard_axes({"t": None, "c": 2, "y": 3, "x": 4})
    dims[1] = dims[1].model_copy(update={"coords": [Channel("DAPI"), Channel("GFP")]})
    stream = scratch_stream(dims)
    for _ in range(5):
        stream.append(np.zeros((3, 4), "uint16"))
    assert stream.view().coords["t"] == range(3)
    assert stream.view().coords["c"] == ["DAPI", "GFP"]
    assert stream.view(dynamic_shape=False).coords["t"] == range(3)


@pytest.mark.parametrize("written", [0, 1, 2, 3, 4, 5, 11, 12])
def test_dynamic_shape_follows_acquisition(
    scratch_stream: StreamFactory, make_frame: Callable, written: int
) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    for n in range(written):
        stream.append(make_frame(n))
    dynamic = stream.view()
    fixed = stream.view(dynamic_shape=False)
    extent = high_water(written)
    assert dynamic.shape == (*extent, 3, 4)
    assert len(dynamic) == extent[0]
    assert fixed.shape == (3, 2, 2, 3, 4)
    assert len(fixed) == 3
    full = acquired(make_frame, written)
    np.testing.assert_array_equal(fixed, full)
    np.testing.assert_array_equal(np.asarray(fixed), full)
    region = tuple(slice(0, e) for e in extent)
    np.testing.assert_array_equal(np.asarray(dynamic), full[region])


def test_view_is_live_and_valid_after_close(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    view = stream.view()
    for n in range(12):
        stream.append(make_frame(n))
        assert view.shape == (*high_water(n + 1), 3, 4)
        t, p, c = np.unravel_index(n, COUNTS)
        np.testing.assert_array_equal(view[t, p, c], make_frame(n))
    stream.close()
    np.testing.assert_array_equal(view, acquired(make_frame, 12))
    np.testing.assert_array_equal(stream.view(), acquired(make_frame, 12))


KEYS = [
    pytest.param(0, id="int"),
    pytest.param(-1, id="negative-int"),
    pytest.param((1, 0), id="t-p"),
    pytest.param((1, 1, 0), id="one-frame"),
    pytest.param((2, 1, 1, 2, 3), id="one-pixel"),
    pytest.param((slice(None), 1), id="one-position"),
    pytest.param((slice(None), slice(None), 1), id="one-channel"),
    pytest.param((Ellipsis, 0), id="ellipsis-first-column"),
    pytest.param((0, Ellipsis, 1, 2), id="ellipsis-middle"),
    pytest.param(Ellipsis, id="ellipsis"),
    pytest.param(slice(1, 3), id="t-slice"),
    pytest.param(
        (slice(None, None, 2), slice(None), slice(None), slice(0, 3, 2)), id="steps"
    ),
    pytest.param((slice(None, None, -1), slice(None, None, -1)), id="reversed"),
    pytest.param(
        (slice(-2, None), 1, slice(None), -1, slice(1, -1)), id="negative-bounds"
    ),
    pytest.param((np.int64(1), np.int32(0)), id="numpy-ints"),
    pytest.param(slice(5, 9), id="empty-slice"),
]


@pytest.mark.parametrize("key", KEYS)
def test_view_getitem(
    scratch_stream: StreamFactory, make_frame: Callable, key: Any
) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    for n in range(9):  # part of the last time point is not written yet
        stream.append(make_frame(n))
    expected = acquired(make_frame, 9)
    got = stream.view(dynamic_shape=False)[key]
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected[key])
    assert got.shape == expected[key].shape


@pytest.mark.parametrize(
    ("key", "error"),
    [
        pytest.param(3, IndexError, id="t-out-of-range"),
        pytest.param(-4, IndexError, id="negative-out-of-range"),
        pytest.param((0, 2), IndexError, id="p-out-of-range"),
        pytest.param((0, 0, 0, 3), IndexError, id="y-out-of-range"),
        pytest.param((0, 0, 0, 0, 0, 0), IndexError, id="too-many-indices"),
        pytest.param([0, 1], TypeError, id="fancy-index"),
        pytest.param("t", TypeError, id="string"),
    ],
)
def test_view_bad_keys(
    scratch_stream: StreamFactory, make_frame: Callable, key: Any, error: type
) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    stream.append(make_frame(0))
    with pytest.raises(error):
        stream.view(dynamic_shape=False)[key]


def test_dynamic_view_refuses_beyond_extent(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    for n in range(3):  # t=0: p0 c0, p0 c1, p1 c0
        stream.append(make_frame(n))
    view = stream.view()
    assert view.shape == (1, 2, 2, 3, 4)
    with pytest.raises(IndexError):
        view[1]
    np.testing.assert_array_equal(view[0, 1, 1], 0)  # inside the extent, unwritten


@pytest.mark.parametrize("dynamic_shape", [True, False])
def test_strict_view(
    scratch_stream: StreamFactory, make_frame: Callable, dynamic_shape: bool
) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    for n in range(5):  # up to t=1 p=0 c=0
        stream.append(make_frame(n))
    view = stream.view(dynamic_shape=dynamic_shape, strict=True)
    np.testing.assert_array_equal(view[0], acquired(make_frame, 5)[0])
    np.testing.assert_array_equal(view[1, 0, 0], make_frame(4))
    with pytest.raises(IndexError, match="not been written"):
        view[1, 0, 1]
    with pytest.raises(IndexError, match="not been written"):
        view[1]
    stream.append(make_frame(5))
    np.testing.assert_array_equal(view[1, 0, 1], make_frame(5))


def test_lenient_view_reads_unwritten_as_zeros(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(SIZES))
    stream.append(make_frame(0))
    stream.skip(frames=2)
    stream.append(make_frame(3))
    view = stream.view(dynamic_shape=False)
    np.testing.assert_array_equal(view[0, 0, 1], 0)  # skipped
    np.testing.assert_array_equal(view[0, 1, 0], 0)  # skipped
    np.testing.assert_array_equal(view[0, 1, 1], make_frame(3))
    np.testing.assert_array_equal(view[2], 0)  # not reached yet


def test_view_without_position_axis(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes({"z": 2, "c": 3, "y": 3, "x": 4}))
    for n in range(6):
        stream.append(make_frame(n))
    view = stream.view()
    assert view.dims == ("z", "c", "y", "x")
    expected = np.stack([make_frame(n) for n in range(6)]).reshape(2, 3, 3, 4)
    np.testing.assert_array_equal(view, expected)
    np.testing.assert_array_equal(view[:, 1], expected[:, 1])


@pytest.mark.parametrize(
    ("sizes", "expected_axes"),
    [
        pytest.param({"p": 2, "t": 2, "y": 3, "x": 4}, ("p", "t"), id="p-first"),
        pytest.param({"t": 2, "p": 2, "y": 3, "x": 4}, ("t", "p"), id="p-last"),
    ],
)
def test_view_position_axis_placement(
    scratch_stream: StreamFactory,
    make_frame: Callable,
    sizes: dict,
    expected_axes: tuple[str, str],
) -> None:
    stream = scratch_stream(dims_from_standard_axes(sizes))
    for n in range(4):
        stream.append(make_frame(n))
    stream.close()
    assert stream.view().dims[:2] == expected_axes
    expected = np.stack([make_frame(n) for n in range(4)]).reshape(2, 2, 3, 4)
    np.testing.assert_array_equal(stream.view(), expected)


@pytest.mark.parametrize("scratch_mode", ["memory", "disk"])
def test_unbounded_view(scratch_stream: StreamFactory, make_frame: Callable) -> None:
    stream = scratch_stream(
        dims_from_standard_axes({"t": None, "c": 3, "y": 3, "x": 4})
    )
    assert stream.view().shape == (0, 0, 3, 4)
    assert stream.view(dynamic_shape=False).shape == (0, 3, 3, 4)
    for n in range(7):
        stream.append(make_frame(n))
    assert stream.view().shape == (3, 3, 3, 4)
    assert stream.view(dynamic_shape=False).shape == (3, 3, 3, 4)
    expected = acquired(make_frame, 7, counts=(3, 3))
    np.testing.assert_array_equal(stream.view(), expected)
    with pytest.raises(IndexError, match="not been written"):
        stream.view(strict=True)[2, 1]
    stream.close()
    np.testing.assert_array_equal(stream.view(dynamic_shape=False), expected)
