"""OMEStream: append, skip, close, frame checks, metadata and live arrays.

Most tests run in every scratch mode (memory, disk, spilled) through the
``scratch_stream`` fixture, and read the result back with ``np.memmap`` when
it is on disk.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ome_writers import (
    AcquisitionSettings,
    OmeTiffFormat,
    OmeZarrFormat,
    StreamClosedError,
    create_stream,
    dims_from_standard_axes,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import StreamFactory

TC = {"t": 3, "c": 2, "y": 3, "x": 4}


def expected_tc(values: dict[int, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """A (t, c, y, x) array holding ``values`` by frame number, zeros elsewhere."""
    out = np.zeros((int(np.prod(shape[:-2])), *shape[-2:]), "uint16")
    for n, frame in values.items():
        out[n] = frame
    return out.reshape(shape)


# ------------------------------------------------------------------ the seed


def test_seed_snippet_runs_verbatim() -> None:
    my_frames = [np.full((512, 512), i, dtype="uint16") for i in range(20)]

    from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes

    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes({"t": 10, "c": 2, "y": 512, "x": 512}),
        format="scratch",
        dtype="uint16",
    )

    with create_stream(settings) as stream:
        for frame in my_frames:
            stream.append(frame)

    assert stream.closed
    (array,) = stream.arrays
    assert array.shape == (10, 2, 512, 512)
    data = np.asarray(array)
    np.testing.assert_array_equal(data, np.stack(my_frames).reshape(10, 2, 512, 512))


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param(OmeZarrFormat(), id="ome-zarr"),
        pytest.param(OmeTiffFormat(), id="ome-tiff"),
    ],
)
def test_on_disk_formats_need_root_path(fmt: Any) -> None:
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes(TC), dtype="uint16", format=fmt
    )
    with pytest.raises(ValueError, match="root_path"):
        create_stream(settings)


def test_scratch_needs_no_root_path(make_frame: Callable) -> None:
    settings = AcquisitionSettings(dimensions=dims_from_standard_axes(TC), dtype="u2")
    assert settings.root_path == ""
    with create_stream(settings) as stream:
        stream.append(make_frame(0))
    np.testing.assert_array_equal(stream.arrays[0][0, 0], make_frame(0))


# ------------------------------------------------------------------ append, skip


def test_append_and_skip(scratch_stream: StreamFactory, make_frame: Callable) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    stream.append(make_frame(0))
    stream.skip()
    stream.skip(frames=2)
    stream.append(make_frame(4))
    assert stream.frames_written == 5
    stream.skip(frames=1)
    assert stream.frames_written == 6
    stream.close()
    expected = expected_tc({0: make_frame(0), 4: make_frame(4)}, (3, 2, 3, 4))
    (stored,) = scratch_stream.read_back(stream)
    np.testing.assert_array_equal(stored, expected)
    np.testing.assert_array_equal(stream.view(), expected)


@pytest.mark.parametrize("frames", [0, -1, -10])
def test_skip_needs_positive_frames(frames: int, make_frame: Callable) -> None:
    settings = AcquisitionSettings(dimensions=dims_from_standard_axes(TC), dtype="u2")
    with create_stream(settings) as stream:
        with pytest.raises(ValueError, match="frames"):
            stream.skip(frames=frames)
        assert stream.frames_written == 0
        stream.append(make_frame(0))
    np.testing.assert_array_equal(stream.arrays[0][0, 0], make_frame(0))


@pytest.mark.parametrize("frames", [1.5, "2", True, None])
def test_skip_needs_an_int(frames: Any) -> None:
    settings = AcquisitionSettings(dimensions=dims_from_standard_axes(TC), dtype="u2")
    with create_stream(settings) as stream, pytest.raises(TypeError, match="frames"):
        stream.skip(frames=frames)


def test_append_past_the_end(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes({"t": 2, "c": 2, "y": 3, "x": 4}))
    for n in range(4):
        stream.append(make_frame(n))
    with pytest.raises(IndexError, match="declared with 4 frames"):
        stream.append(make_frame(4))
    with pytest.raises(IndexError, match="declared with 4 frames"):
        stream.skip()
    assert stream.frames_written == 4
    stream.close()
    (stored,) = scratch_stream.read_back(stream)
    np.testing.assert_array_equal(
        stored, np.stack([make_frame(n) for n in range(4)]).reshape(2, 2, 3, 4)
    )


def test_skip_past_the_end_takes_nothing(make_frame: Callable) -> None:
    settings = AcquisitionSettings(dimensions=dims_from_standard_axes(TC), dtype="u2")
    with create_stream(settings) as stream:
        stream.skip(frames=4)
        with pytest.raises(IndexError, match="declared with 6 frames"):
            stream.skip(frames=3)
        assert stream.frames_written == 4
        stream.append(make_frame(4))
        stream.skip(frames=1)
    np.testing.assert_array_equal(stream.arrays[0][2, 0], make_frame(4))


# ------------------------------------------------------------------ close


def test_close_is_idempotent(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    stream.append(make_frame(0))
    assert not stream.closed
    stream.close()
    assert stream.closed
    stream.close()
    assert stream.closed
    np.testing.assert_array_equal(
        scratch_stream.read_back(stream)[0][0, 0], make_frame(0)
    )


def test_context_manager_closes(scratch_stream: StreamFactory) -> None:
    with scratch_stream(dims_from_standard_axes(TC)) as stream:
        assert not stream.closed
    assert stream.closed


def test_context_manager_closes_on_error(scratch_stream: StreamFactory) -> None:
    with (
        pytest.raises(KeyError, match="boom"),
        scratch_stream(dims_from_standard_axes(TC)) as stream,
    ):
        raise KeyError("boom")
    assert stream.closed


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(lambda s, f: s.append(f), id="append"),
        pytest.param(lambda s, f: s.append(f, frame_metadata={"a": 1}), id="append-md"),
        pytest.param(lambda s, f: s.append(f.astype("uint8")), id="append-slow-path"),
        pytest.param(lambda s, f: s.skip(), id="skip"),
    ],
)
def test_writing_after_close_raises(
    scratch_stream: StreamFactory, make_frame: Callable, action: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    stream.append(make_frame(0))
    stream.close()
    with pytest.raises(StreamClosedError, match="closed"):
        action(stream, make_frame(1))
    assert stream.frames_written == 1
    with pytest.raises(RuntimeError):
        action(stream, make_frame(1))


def drop_and_collect(holder: list[Any]) -> None:
    """Drop the last reference to a stream and run the garbage collector."""
    holder.clear()
    gc.collect()


@pytest.mark.parametrize("scratch_mode", ["memory", "disk"])
def test_unclosed_stream_is_finalized_at_gc(
    scratch_stream: StreamFactory, make_frame: Callable, read_scratch_root: Callable
) -> None:
    holder = [scratch_stream(dims_from_standard_axes(TC))]
    scratch_stream.streams.clear()  # the fixture must not keep it alive
    holder[0].append(make_frame(0))
    holder[0].append(make_frame(1))
    with pytest.warns(ResourceWarning, match="close"):
        drop_and_collect(holder)
    if scratch_stream.root is not None:
        manifest = json.loads((scratch_stream.root / "manifest.json").read_text())
        assert manifest["complete"] is True
        (stored,) = read_scratch_root(scratch_stream.root)
        np.testing.assert_array_equal(
            stored[0], np.stack([make_frame(0), make_frame(1)])
        )


# ------------------------------------------------------------------ frame checks

BAD_SHAPES = [
    pytest.param(np.uint16(7), (), id="scalar"),
    pytest.param(np.ones(4, "uint16"), (4,), id="single-row"),
    pytest.param(np.ones((1, 4), "uint16"), (1, 4), id="one-row-2d"),
    pytest.param(np.ones((1, 3, 4), "uint16"), (1, 3, 4), id="stack-of-one"),
    pytest.param(np.ones((4, 3), "uint16"), (4, 3), id="transposed-shape"),
    pytest.param(np.ones((3, 5), "uint16"), (3, 5), id="too-wide"),
    pytest.param(5, (), id="python-int"),
]


@pytest.mark.parametrize(("frame", "shape"), BAD_SHAPES)
def test_wrong_frame_shape(
    scratch_stream: StreamFactory, make_frame: Callable, frame: Any, shape: tuple
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    stream.append(make_frame(0))
    with pytest.raises(ValueError, match="frame shape") as info:
        stream.append(frame)
    assert repr(shape) in str(info.value)
    assert repr((3, 4)) in str(info.value)
    assert stream.frames_written == 1
    stream.append(make_frame(1))  # the refused frame used up no slot
    stream.close()
    (stored,) = scratch_stream.read_back(stream)
    np.testing.assert_array_equal(stored[0], np.stack([make_frame(0), make_frame(1)]))
    np.testing.assert_array_equal(stored[1:], 0)


@pytest.mark.parametrize(
    ("stream_dtype", "frame_dtype"),
    [
        pytest.param("uint16", "float64", id="float64-into-uint16"),
        pytest.param("uint16", "float32", id="float32-into-uint16"),
        pytest.param("uint16", "int32", id="int32-into-uint16"),
        pytest.param("uint16", "int8", id="int8-into-uint16"),
        pytest.param("uint16", "uint32", id="uint32-into-uint16"),
        pytest.param("uint8", "uint16", id="uint16-into-uint8"),
        pytest.param("float32", "float64", id="float64-into-float32"),
        pytest.param("int16", "uint16", id="uint16-into-int16"),
    ],
)
def test_unsafe_dtype(
    scratch_stream: StreamFactory,
    make_frame: Callable,
    stream_dtype: str,
    frame_dtype: str,
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC), dtype=stream_dtype)
    with pytest.raises(TypeError, match=f"{frame_dtype!r}.*{stream_dtype!r}"):
        stream.append(make_frame(0, dtype=frame_dtype))
    assert stream.frames_written == 0
    stream.append(make_frame(0, dtype=stream_dtype))
    stream.close()
    (stored,) = scratch_stream.read_back(stream)
    np.testing.assert_array_equal(stored[0, 0], make_frame(0, dtype=stream_dtype))
    np.testing.assert_array_equal(stored.reshape(6, 3, 4)[1:], 0)


@pytest.mark.parametrize(
    ("stream_dtype", "frame_dtype"),
    [
        pytest.param("uint16", "uint8", id="uint8-into-uint16"),
        pytest.param("uint16", "bool", id="bool-into-uint16"),
        pytest.param("int32", "uint16", id="uint16-into-int32"),
        pytest.param("float32", "uint16", id="uint16-into-float32"),
        pytest.param("float64", "float32", id="float32-into-float64"),
    ],
)
def test_safe_dtype_is_accepted(
    scratch_stream: StreamFactory, stream_dtype: str, frame_dtype: str
) -> None:
    frame = (np.arange(12).reshape(3, 4) % 2).astype(frame_dtype)
    if frame_dtype != "bool":
        frame = frame * 100 + np.arange(12, dtype=frame_dtype).reshape(3, 4)
    stream = scratch_stream(dims_from_standard_axes(TC), dtype=stream_dtype)
    stream.append(frame)
    stream.close()
    (stored,) = scratch_stream.read_back(stream)
    assert stored.dtype == np.dtype(stream_dtype)
    np.testing.assert_array_equal(stored[0, 0], frame.astype(stream_dtype))


def test_shape_and_dtype_errors_keep_the_index(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    for n in range(6):
        with pytest.raises(ValueError, match="frame shape"):
            stream.append(make_frame(n)[:2])
        with pytest.raises(TypeError, match="cannot be safely cast"):
            stream.append(make_frame(n, dtype="float64"))
        stream.append(make_frame(n))
    stream.close()
    (stored,) = scratch_stream.read_back(stream)
    expected = np.stack([make_frame(n) for n in range(6)]).reshape(3, 2, 3, 4)
    np.testing.assert_array_equal(stored, expected)


def test_buffer_reuse_does_not_change_stored_frames(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    ring = [np.empty((3, 4), "uint16") for _ in range(2)]
    for n in range(6):
        buffer = ring[n % 2]
        buffer[...] = make_frame(n)
        stream.append(buffer)
        buffer[...] = 65535  # the camera SDK recycles the buffer
    stream.close()
    (stored,) = scratch_stream.read_back(stream)
    expected = np.stack([make_frame(n) for n in range(6)]).reshape(3, 2, 3, 4)
    np.testing.assert_array_equal(stored, expected)


NON_CONTIGUOUS = [
    pytest.param(lambda f: np.ascontiguousarray(f.T).T, id="transposed-view"),
    pytest.param(lambda f: np.asfortranarray(f), id="fortran-order"),
    pytest.param(lambda f: np.repeat(np.repeat(f, 2, 0), 2, 1)[::2, ::2], id="strided"),
    pytest.param(lambda f: np.stack([f, f + 1], axis=-1)[..., 0], id="interleaved"),
    pytest.param(lambda f: f[::-1][::-1], id="reversed-twice"),
    pytest.param(lambda f: f.astype(">u2"), id="big-endian"),
]


@pytest.mark.parametrize("transform", NON_CONTIGUOUS)
def test_non_contiguous_frames(
    scratch_stream: StreamFactory, make_frame: Callable, transform: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    frames = [make_frame(n) for n in range(6)]
    for frame in frames:
        given = transform(frame.copy())
        np.testing.assert_array_equal(given, frame)
        stream.append(given)
    stream.close()
    (stored,) = scratch_stream.read_back(stream)
    np.testing.assert_array_equal(stored, np.stack(frames).reshape(3, 2, 3, 4))


class CameraBuffer(np.ndarray):
    """An ndarray subclass, as some camera SDKs hand out."""


def test_ndarray_subclass_frames(make_frame: Callable) -> None:
    settings = AcquisitionSettings(dimensions=dims_from_standard_axes(TC), dtype="u2")
    with create_stream(settings) as stream:
        for n in range(6):
            stream.append(make_frame(n).view(CameraBuffer))
    np.testing.assert_array_equal(
        stream.arrays[0],
        np.stack([make_frame(n) for n in range(6)]).reshape(3, 2, 3, 4),
    )


# ------------------------------------------------------------------ frame metadata


@pytest.mark.parametrize(
    ("metadata", "error", "match"),
    [
        pytest.param({"when": object()}, TypeError, "JSON", id="object"),
        pytest.param({"delta_t": float("nan")}, TypeError, "JSON", id="nan"),
        pytest.param({"pos": {1, 2}}, TypeError, "JSON", id="set"),
        pytest.param([1, 2, 3], TypeError, "mapping", id="not-a-mapping"),
        pytest.param({"frame_number": 3}, ValueError, "reserved", id="reserved-frame"),
        pytest.param(
            {"position_index": 0}, ValueError, "reserved", id="reserved-position"
        ),
        pytest.param(
            {"storage_index": [0]}, ValueError, "reserved", id="reserved-storage"
        ),
    ],
)
def test_bad_frame_metadata_uses_no_slot(
    scratch_stream: StreamFactory,
    make_frame: Callable,
    metadata: Any,
    error: type[Exception],
    match: str,
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    with pytest.raises(error, match=match):
        stream.append(make_frame(0), frame_metadata=metadata)
    assert stream.frames_written == 0
    stream.append(make_frame(1), frame_metadata={"ok": True})
    stream.close()
    (stored,) = scratch_stream.read_back(stream)
    np.testing.assert_array_equal(stored[0, 0], make_frame(1))
    if scratch_stream.root is not None:
        lines = (scratch_stream.root / "frame_metadata.jsonl").read_text().splitlines()
        assert [json.loads(line)["ok"] for line in lines] == [True]


# ------------------------------------------------------------------ global metadata


@pytest.mark.parametrize("namespace", ["ome", "ome_writers"])
def test_reserved_global_namespaces(namespace: str) -> None:
    settings = AcquisitionSettings(dimensions=dims_from_standard_axes(TC), dtype="u2")
    with create_stream(settings) as stream:
        with pytest.raises(ValueError, match=repr(namespace)):
            stream.set_global_metadata(namespace, {"a": 1})
        assert stream.global_metadata == {}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"a": object()}, id="object"),
        pytest.param({"a": float("inf")}, id="inf"),
        pytest.param({"a": np.arange(3)}, id="ndarray"),
        pytest.param({"a": b"bytes"}, id="bytes"),
    ],
)
def test_global_metadata_must_be_json(payload: dict) -> None:
    settings = AcquisitionSettings(dimensions=dims_from_standard_axes(TC), dtype="u2")
    with create_stream(settings) as stream:
        with pytest.raises(TypeError, match="JSON"):
            stream.set_global_metadata("lab", payload)
        assert stream.global_metadata == {}


def test_global_metadata_namespaces_replace(scratch_stream: StreamFactory) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    stream.set_global_metadata("micro_manager", {"version": "2.0", "camera": "A"})
    stream.set_global_metadata("lab", {"user": "ada"})
    stream.set_global_metadata("micro_manager", {"version": "2.1"})
    expected = {"micro_manager": {"version": "2.1"}, "lab": {"user": "ada"}}
    assert stream.global_metadata == expected
    stream.close()
    if scratch_stream.root is not None:
        manifest = json.loads((scratch_stream.root / "manifest.json").read_text())
        assert manifest["global_metadata"] == expected


def test_global_metadata_is_copied_at_call_time(scratch_stream: StreamFactory) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    payload: dict[str, Any] = {"objective": {"na": 1.4}}
    stream.set_global_metadata("lab", payload)
    payload["objective"]["na"] = 0.1
    stream.close()
    assert stream.global_metadata == {"lab": {"objective": {"na": 1.4}}}
    if scratch_stream.root is not None:
        manifest = json.loads((scratch_stream.root / "manifest.json").read_text())
        assert manifest["global_metadata"] == {"lab": {"objective": {"na": 1.4}}}


# ------------------------------------------------------------------ arrays


def test_arrays_are_live_and_valid_after_close(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    dims = dims_from_standard_axes({"t": 2, "p": ["a", "b"], "c": 2, "y": 3, "x": 4})
    stream = scratch_stream(dims)
    arrays = stream.arrays
    assert len(arrays) == 2
    for array in arrays:
        assert array.shape == (2, 2, 3, 4)
        assert array.dtype == np.dtype("uint16")
        assert array.ndim == 4
        assert len(array) == 2
    expected = [np.zeros((2, 2, 3, 4), "uint16") for _ in range(2)]
    for n in range(8):
        t, p, c = np.unravel_index(n, (2, 2, 2))
        stream.append(make_frame(n))
        expected[p][t, c] = make_frame(n)
        for array, exp in zip(arrays, expected):  # the same objects, live
            np.testing.assert_array_equal(np.asarray(array), exp)
    stream.close()
    for array, exp in zip(stream.arrays, expected):
        np.testing.assert_array_equal(array, exp)
        np.testing.assert_array_equal(array[1], exp[1])
        np.testing.assert_array_equal(array[0, 1], exp[0, 1])
        np.testing.assert_array_equal(array[:, 1, 1:, ::2], exp[:, 1, 1:, ::2])
        np.testing.assert_array_equal(array[-1, -1, -1, -1], exp[-1, -1, -1, -1])
        np.testing.assert_array_equal(np.asarray(array, dtype="float64"), exp)
    for array, stored in zip(arrays, scratch_stream.read_back(stream)):
        np.testing.assert_array_equal(array, stored)


def test_arrays_are_read_only(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    stream = scratch_stream(dims_from_standard_axes(TC))
    stream.append(make_frame(0))
    (array,) = stream.arrays
    with pytest.raises(TypeError):
        array[0] = 1  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        array[0][...] = 1
    copy = np.asarray(array)
    copy[...] = 1  # a copy may be written, and does not touch the stream
    np.testing.assert_array_equal(array[0, 0], make_frame(0))


@pytest.mark.parametrize("scratch_mode", ["memory", "disk"])
def test_unbounded_arrays_grow(
    scratch_stream: StreamFactory, make_frame: Callable
) -> None:
    dims = dims_from_standard_axes({"t": None, "p": 2, "c": 3, "y": 3, "x": 4})
    stream = scratch_stream(dims)
    arrays = stream.arrays
    assert [a.shape for a in arrays] == [(0, 3, 3, 4)] * 2
    with pytest.raises(IndexError):
        arrays[0][0]
    for n in range(14):  # 2 full time points and two frames of the third
        stream.append(make_frame(n))
        steps = n // 6 + 1
        assert [a.shape for a in arrays] == [(steps, 3, 3, 4)] * 2
        assert len(arrays[1]) == steps
        with pytest.raises(IndexError):
            arrays[1][steps]
    stream.close()
    expected = np.zeros((3 * 6, 3, 4), "uint16")
    expected[:14] = np.stack([make_frame(n) for n in range(14)])
    expected = expected.reshape(3, 2, 3, 3, 4)  # t, p, c, y, x
    for p, (array, stored) in enumerate(zip(arrays, scratch_stream.read_back(stream))):
        assert array.shape == stored.shape == (3, 3, 3, 4)
        np.testing.assert_array_equal(array, expected[:, p])
        np.testing.assert_array_equal(stored, expected[:, p])
        with pytest.raises(IndexError):
            array[3]


# ------------------------------------------------------------------ storage order

STORAGE_ORDERS = [
    pytest.param("acquisition", ("t", "c", "z"), id="acquisition"),
    pytest.param("ome", ("t", "c", "z"), id="ome"),
    pytest.param(["t", "c", "z"], ("t", "c", "z"), id="identity-list"),
    pytest.param(["z", "t", "c"], ("z", "t", "c"), id="z-first"),
    pytest.param(["c", "z", "t"], ("c", "z", "t"), id="c-z-t"),
    pytest.param(["z", "p", "c", "t"], ("z", "c", "t"), id="with-p"),
]


@pytest.mark.parametrize(("storage_order", "storage_names"), STORAGE_ORDERS)
def test_storage_order_permutes_arrays_not_view(
    scratch_stream: StreamFactory,
    make_frame: Callable,
    storage_order: Any,
    storage_names: tuple[str, ...],
) -> None:
    sizes = {"t": 2, "p": 2, "c": 3, "z": 2, "y": 3, "x": 4}
    stream = scratch_stream(dims_from_standard_axes(sizes), storage_order=storage_order)
    frames = [make_frame(n) for n in range(24)]
    for frame in frames:
        stream.append(frame)
    stream.close()
    acquisition = np.stack(frames).reshape(2, 2, 3, 2, 3, 4)  # t p c z y x
    np.testing.assert_array_equal(stream.view(), acquisition)
    assert stream.view().dims == ("t", "p", "c", "z", "y", "x")
    axes = [("t", "c", "z").index(n) for n in storage_names]
    stored = scratch_stream.read_back(stream)
    for p in range(2):
        expected = np.transpose(acquisition[:, p], (*axes, 3, 4))
        assert stream.arrays[p].dims == (*storage_names, "y", "x")
        np.testing.assert_array_equal(stream.arrays[p], expected)
        np.testing.assert_array_equal(stored[p], expected)


def wait_for_extent(path: Path, extent0: int) -> None:
    """Wait until the JSON at ``path`` gives its (first) array ``extent0`` steps."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            document = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            document = {}
        shape = document.get("shape") or (document.get("position_shapes") or [[0]])[0]
        if shape[0] >= extent0:
            return
        time.sleep(0.005)
    raise AssertionError(f"{str(path)!r} never reached {extent0} steps")


@pytest.mark.parametrize(
    ("fmt", "on_disk"),
    [
        pytest.param("scratch", True, id="scratch-disk"),
        pytest.param("scratch", False, id="scratch-memory"),
        pytest.param("tensorstore", True, id="tensorstore"),
        pytest.param("acquire-zarr", True, id="acquire-zarr"),
        pytest.param("zarr-python", True, id="zarr-python"),
    ],
)
def test_appending_leaves_no_reference_cycles(
    tmp_path: Path, fmt: str, on_disk: bool
) -> None:
    # a garbage collection stops every thread, the camera loop included: the
    # frame path, and the metadata rewritten on every growth of an unbounded
    # stream, must not feed it (an indented json.dumps left ~34 objects in
    # cycles per call up to Python 3.12). Counted in a fresh interpreter:
    # threads other tests leave behind (an S3 client's event loop) make
    # garbage of their own
    child = Path(__file__).with_name("_cycles_child.py")
    root = str(tmp_path / "out") if on_disk else ""
    result = subprocess.run(
        [sys.executable, str(child), fmt, root],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["collected", "0", "frames", "401"]
