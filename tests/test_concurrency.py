"""``append``/``skip`` from several threads, with readers running alongside.

Every appended frame carries a unique value in all its pixels. Afterwards each
value must appear in exactly one slot, skipped slots must read as zeros, and
the totals must match the calls; reader threads must never raise. The check
runs on the live stream and, for disk-backed streams, on the closed root with
the independent readers (``open_scratch`` and ``np.memmap``).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ome_writers import (
    AcquisitionSettings,
    ScratchFormat,
    create_stream,
    dims_from_standard_axes,
    open_scratch,
)

WRITERS = 4
CALLS_PER_WRITER = 150
SKIP_EVERY = 10  # every 10th call of a writer is a skip()
FRAME = (16, 16)
FRAME_BYTES = FRAME[0] * FRAME[1] * 2
TOTAL = WRITERS * CALLS_PER_WRITER

CASES = [
    pytest.param({"t": TOTAL, "y": 16, "x": 16}, "memory", id="bounded-memory"),
    pytest.param({"t": None, "y": 16, "x": 16}, "memory", id="unbounded-memory"),
    pytest.param(
        {"t": TOTAL // 6, "p": 3, "c": 2, "y": 16, "x": 16},
        "disk",
        id="bounded-disk-multiposition",
    ),
    pytest.param({"t": None, "c": 3, "y": 16, "x": 16}, "disk", id="unbounded-disk"),
    pytest.param(
        {"t": None, "p": 2, "y": 16, "x": 16},
        "spill",
        id="unbounded-memory-spills-mid-run",
    ),
]


def make_stream(sizes: dict[str, int | None], mode: str, tmp_path: Path) -> Any:
    kwargs: dict[str, Any] = {}
    if mode == "disk":
        kwargs["root_path"] = tmp_path / "scratch"
        kwargs["format"] = "scratch"
    elif mode == "spill":
        kwargs["format"] = ScratchFormat(max_memory_bytes=TOTAL // 3 * FRAME_BYTES)
    settings = AcquisitionSettings(
        dimensions=dims_from_standard_axes(sizes), dtype="uint16", **kwargs
    )
    return create_stream(settings)


def writer(
    stream: Any, worker: int, skipped: list[int], start: threading.Event
) -> None:
    start.wait()
    for i in range(CALLS_PER_WRITER):
        if i % SKIP_EVERY == SKIP_EVERY - 1:
            stream.skip()
            skipped.append(1)
        else:
            value = worker * 1000 + i + 1  # unique, never 0
            stream.append(np.full(FRAME, value, np.uint16), frame_metadata={"v": value})


def reader(stream: Any, stop: threading.Event, errors: list[BaseException]) -> None:
    try:
        while not stop.is_set():
            for array in stream.arrays:
                data = array[...]
                assert data.shape[-2:] == FRAME
                if len(data):
                    _ = array[-1, ...].sum()
            view = stream.view()
            data = view[...]
            assert data.shape[-2:] == FRAME
            if data.shape[0]:
                _ = view[0].sum()
    except BaseException as exc:
        errors.append(exc)


def expected_values() -> set[int]:
    return {
        w * 1000 + i + 1
        for w in range(WRITERS)
        for i in range(CALLS_PER_WRITER)
        if i % SKIP_EVERY != SKIP_EVERY - 1
    }


def check_slots(frames: np.ndarray) -> None:
    """Each slot holds one whole frame; each value once; zeros where skipped."""
    frames = frames.reshape(-1, *FRAME)
    assert frames.shape[0] == TOTAL
    first = frames[:, 0, 0]
    assert (frames == first[:, None, None]).all(), "a slot holds a mixed frame"
    values = first[first != 0].tolist()
    assert len(values) == len(set(values)), "a frame was written twice"
    assert set(values) == expected_values()
    assert int((first == 0).sum()) == TOTAL - len(expected_values())


def gather(arrays: list[Any], sizes: dict[str, int | None]) -> np.ndarray:
    """All slots in acquisition order from per-position storage arrays."""
    stacked = np.stack([np.asarray(a) for a in arrays], axis=0)
    names = [k for k in sizes if k not in ("y", "x")]
    if "p" in names:
        # storage is (p, t, c..., y, x): move p back to its acquisition place
        stacked = np.moveaxis(stacked, 0, names.index("p"))
    else:
        stacked = stacked[0]
    return stacked.reshape(-1, *FRAME)


@pytest.mark.parametrize(("sizes", "mode"), CASES)
def test_threads_append_and_read_concurrently(
    tmp_path: Path, sizes: dict[str, int | None], mode: str
) -> None:
    stream = make_stream(sizes, mode, tmp_path)
    start, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    skipped: list[int] = []
    writers = [
        threading.Thread(target=writer, args=(stream, w, skipped, start))
        for w in range(WRITERS)
    ]
    readers = [
        threading.Thread(target=reader, args=(stream, stop, errors)) for _ in range(2)
    ]
    warns = (
        pytest.warns(UserWarning, match="temporary directory")
        if mode == "spill"
        else contextlib.nullcontext()
    )
    spill_root: Path | None = None
    try:
        with warns as record:
            for thread in readers + writers:
                thread.start()
            start.set()
            for thread in writers:
                thread.join()
            stop.set()
            for thread in readers:
                thread.join()
        if mode == "spill":
            assert len(record) == 1
            match = re.search(r"directory '([^']+)'", str(record[0].message))
            assert match is not None
            spill_root = Path(match.group(1))
        assert errors == []
        assert stream.frames_written == TOTAL
        assert len(skipped) == TOTAL - len(expected_values())
        check_slots(gather(stream.arrays, sizes))
        check_slots(np.asarray(stream.view()[...]).reshape(-1, *FRAME))
        stream.close()
        root = spill_root if mode == "spill" else tmp_path / "scratch"
        if mode != "memory":
            ds = open_scratch(root)
            assert ds.complete is True
            assert ds.frames_written == TOTAL
            check_slots(gather(ds.arrays, sizes))
            recorded = [r["v"] for r in ds.frame_metadata]
            assert sorted(recorded) == sorted(expected_values())
            for r in ds.frame_metadata:  # each record describes its own slot
                position = r["position_index"]
                slot = ds.arrays[position][tuple(r["storage_index"])]
                assert int(slot[0, 0]) == r["v"]
            del ds
            manifest = json.loads((root / "manifest.json").read_text())
            raw = [
                np.memmap(
                    root / f"pos_{p}.dat",
                    dtype=manifest["dtype"],
                    mode="r",
                    shape=tuple(s),
                )
                for p, s in enumerate(manifest["position_shapes"])
            ]
            check_slots(gather(raw, sizes))
    finally:
        stop.set()
        start.set()
        stream.close()
        if spill_root is not None:
            shutil.rmtree(spill_root, ignore_errors=True)
