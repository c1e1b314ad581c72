"""Regressions found in review of the core: each test failed before its fix."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from pydantic import ValidationError

from ome_writers import (
    AcquisitionSettings,
    CoordsUpdate,
    Dimension,
    ScratchFormat,
    StreamClosedError,
    WriteError,
    create_stream,
    dims_from_standard_axes,
    open_scratch,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ome_writers import OMEStream


def make_settings(sizes: dict[str, Any], **kwargs: Any) -> AcquisitionSettings:
    return AcquisitionSettings(
        dimensions=dims_from_standard_axes(sizes), dtype="uint16", **kwargs
    )


def frame(n: int, shape: tuple[int, int] = (2, 3)) -> np.ndarray:
    return (np.arange(shape[0] * shape[1]).reshape(shape) + 100 * (n + 1)).astype(
        "uint16"
    )


# ------------------------------------------------------------------- view

VIEW_KEYS = [
    pytest.param(np.s_[-10::-1], id="reversed-start-before-first"),
    pytest.param(np.s_[:, -10::-1], id="reversed-start-before-first-position-axis"),
    pytest.param(np.s_[:, :, -7::-1], id="reversed-start-before-first-inner-axis"),
    pytest.param(np.s_[..., -9::-2], id="reversed-start-before-first-frame-axis"),
    pytest.param(np.s_[::-1, ::-1, ::-1], id="all-reversed"),
    pytest.param(np.s_[-1:-10:-1, 1], id="reversed-with-negative-stop"),
    pytest.param(np.s_[1:1], id="empty"),
]


@pytest.mark.parametrize("key", VIEW_KEYS)
def test_view_indexing_matches_numpy(key: Any) -> None:
    settings = make_settings({"t": 3, "p": 2, "c": 2, "y": 2, "x": 3})
    with create_stream(settings) as stream:
        for n in range(10):
            stream.append(frame(n))
        view = stream.view()
        expected = np.asarray(view)[key]
        got = view[key]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_strict_view_empty_selection_reads_nothing() -> None:
    settings = make_settings({"t": 3, "c": 2, "y": 2, "x": 3})
    with create_stream(settings) as stream:
        view = stream.view(strict=True, dynamic_shape=False)
        assert view[1:1].shape == (0, 2, 2, 3)
        assert view[:, 2:].shape == (3, 0, 2, 3)
        with pytest.raises(IndexError, match="not been written"):
            view[0, 0]


# ----------------------------------------------------------------- events


def close_in_thread(stream: OMEStream, timeout_s: float = 10.0) -> bool:
    """Close ``stream`` from a helper thread; True if it returned in time."""
    closer = threading.Thread(target=stream.close, daemon=True)
    closer.start()
    closer.join(timeout_s)
    return not closer.is_alive()


def test_callback_calling_a_stream_method_does_not_deadlock_close() -> None:
    stream = create_stream(make_settings({"t": 4, "y": 2, "x": 3}))
    seen: list[str] = []
    started = threading.Event()

    def callback(update: CoordsUpdate) -> None:
        started.set()
        time.sleep(0.2)  # still running when close() begins
        try:
            stream.set_global_metadata("app", {"frame": update.frame_number})
            seen.append("set")
        except StreamClosedError:
            seen.append("closed")

    stream.on("coords_changed", callback)
    stream.append(frame(0))
    started.wait(5)
    assert close_in_thread(stream), "close() deadlocked with a running callback"
    # global metadata may be set while closing (and after): it is kept
    assert seen == ["set"]
    assert stream.global_metadata == {"app": {"frame": 0}}


def test_callback_raising_systemexit_does_not_hang_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = create_stream(make_settings({"t": 4, "y": 2, "x": 3}))
    delivered: list[int] = []

    def callback(update: CoordsUpdate) -> None:
        if update.frame_number == 0:
            raise SystemExit("callback quits")
        delivered.append(update.frame_number)

    stream.on("coords_changed", callback)
    with caplog.at_level(logging.ERROR, logger="ome_writers"):
        stream.append(frame(0))
        stream.append(frame(1))
        assert close_in_thread(stream), "close() hung after a callback's SystemExit"
    assert delivered == [1]
    assert "failed on frame 0" in caplog.text


def test_updates_from_several_threads_arrive_in_frame_order() -> None:
    out_of_order = 0
    for _ in range(30):
        stream = create_stream(make_settings({"t": None, "y": 2, "x": 3}))
        received: list[int] = []
        stream.on("coords_changed", lambda u, out=received: out.append(u.frame_number))
        pixels = frame(0)

        def work(stream: OMEStream = stream, pixels: np.ndarray = pixels) -> None:
            try:
                while True:
                    stream.append(pixels)
            except StreamClosedError:
                pass

        workers = [threading.Thread(target=work) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(0.01)
        stream.close()
        for worker in workers:
            worker.join()
        # every frame, each once, in frame order, before close() returned
        out_of_order += received != list(range(stream.frames_written))
    assert out_of_order == 0


# ------------------------------------------------- finalization and exit


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unclosed_stream_is_finished_even_if_resourcewarning_is_an_error(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    code = f"""
import gc
import numpy as np
from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes
settings = AcquisitionSettings(
    format="scratch",
    root_path={str(root)!r},
    dimensions=dims_from_standard_axes({{"t": 3, "y": 2, "x": 3}}),
    dtype="uint16",
)
stream = create_stream(settings)
stream.append(np.ones((2, 3), "uint16"))
del stream
gc.collect()
"""
    run_python(code, "-W", "error::ResourceWarning")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["frames_written"] == 1


def test_unclosed_spilled_stream_at_exit_raises_nothing() -> None:
    # a finalizer created before ome_writers is imported makes the exit hook
    # that removes temporary roots run before the stream's own finalizer
    code = """
import warnings, weakref
class Holder: pass
holder = Holder()
weakref.finalize(holder, print, "")
import numpy as np
from ome_writers import (
    AcquisitionSettings, ScratchFormat, create_stream, dims_from_standard_axes,
)
warnings.simplefilter("ignore")
settings = AcquisitionSettings(
    dimensions=dims_from_standard_axes({"t": 4, "y": 8, "x": 8}),
    dtype="uint16",
    format=ScratchFormat(max_memory_bytes=0),
)
stream = create_stream(settings)
stream.append(np.ones((8, 8), "uint16"))
"""
    result = run_python(code)
    assert result.returncode == 0
    assert "Traceback" not in result.stderr, result.stderr


# ------------------------------------------------ spill onto a full disk


@pytest.fixture
def small_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 32 KiB tmpfs used as the temporary directory spilled streams go to."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", mount],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    monkeypatch.setattr(tempfile, "tempdir", str(mount))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=False)


@pytest.mark.parametrize(
    ("frames_in_memory", "with_metadata"),
    [
        pytest.param(32, True, id="copy-fails"),
        # the copy fills the tmpfs exactly; what comes next does not fit
        pytest.param(16, True, id="metadata-fails"),
        pytest.param(16, False, id="manifest-fails"),
    ],
)
def test_failed_spill_keeps_data_and_metadata_and_can_be_retried(
    small_tempdir: Path, frames_in_memory: int, with_metadata: bool
) -> None:
    shape = (32, 32)
    frame_bytes = 32 * 32 * 2
    fmt = ScratchFormat(max_memory_bytes=frames_in_memory * frame_bytes)
    stream = create_stream(make_settings({"t": None, "y": 32, "x": 32}, format=fmt))
    for n in range(frames_in_memory):
        stream.append(
            frame(n, shape), frame_metadata={"n": n} if with_metadata else None
        )
    with pytest.warns(UserWarning, match="temporary directory"):
        with pytest.raises(WriteError, match="No space left"):
            stream.append(frame(frames_in_memory, shape), frame_metadata={"n": -1})
    assert stream.frames_written == frames_in_memory
    assert list(small_tempdir.iterdir()) == []  # the failed attempt is gone
    view = stream.view()
    for n in range(frames_in_memory):
        np.testing.assert_array_equal(view[n], frame(n, shape))

    subprocess.run(["mount", "-o", "remount,size=1m", small_tempdir], check=True)
    with pytest.warns(UserWarning, match="temporary directory"):
        stream.append(frame(frames_in_memory, shape), frame_metadata={"n": -1})
    stream.close()
    (root,) = small_tempdir.iterdir()
    dataset = open_scratch(root)
    total = frames_in_memory + 1
    assert dataset.frames_written == total
    expected_records = [*range(total - 1), -1] if with_metadata else [-1]
    assert [r["n"] for r in dataset.frame_metadata] == expected_records
    for n in range(total):
        np.testing.assert_array_equal(dataset.arrays[0][n], frame(n, shape))
    del dataset


# --------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "field", [{"translation": float("nan")}, {"scale": float("inf")}]
)
def test_non_finite_dimension_floats_are_refused(field: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match="finite"):
        Dimension("z", 2, **field)


def test_storage_order_listing_the_position_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="exactly once"):
        make_settings({"p": 2, "t": 2, "y": 2, "x": 3}, storage_order=["p", "t", "p"])
