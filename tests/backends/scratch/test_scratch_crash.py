"""Crash recovery for real: a child process streams to disk and is SIGKILLed.

The parent reads the child's reports (one line per ``append`` that returned),
kills it mid-run, then checks every reported frame with two independent
readers: ``open_scratch`` and the documented ``np.memmap`` recipe over
``manifest.json``. Also: ``open_scratch`` must not modify the root it reads.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _crash_child import expected_frame
from _frame_index import locate

from ome_writers import (
    AcquisitionSettings,
    create_stream,
    dims_from_standard_axes,
    open_scratch,
)

CHILD = Path(__file__).with_name("_crash_child.py")

CASES = [
    pytest.param(
        {"sizes": {"t": 20000, "y": 32, "x": 32}, "frames": 20000},
        200,
        id="tyx-bounded",
    ),
    pytest.param(
        {"sizes": {"t": None, "y": 32, "x": 32}, "frames": None},
        300,
        id="tyx-unbounded",
    ),
    pytest.param(
        {"sizes": {"t": 2000, "p": 3, "c": 2, "y": 32, "x": 32}, "frames": 12000},
        250,
        id="tpcyx-bounded",
    ),
    pytest.param(
        {"sizes": {"t": None, "p": 3, "c": 2, "y": 32, "x": 32}, "frames": None},
        250,
        id="tpcyx-unbounded",
    ),
    pytest.param(
        {
            "sizes": {"t": None, "c": 3, "y": 16, "x": 24},
            "frames": None,
            "skip_every": 7,
        },
        200,
        id="tcyx-unbounded-skips",
    ),
    pytest.param(
        {
            "sizes": {"t": None, "p": 2, "y": 16, "x": 16},
            "frames": None,
            "fsync": "every_frame",
        },
        40,
        id="tpyx-unbounded-fsync-every-frame",
    ),
]


def run_child_and_kill(
    kill_after_reports: Any, root: Path, config: dict[str, Any], kill_after: int
) -> dict:
    """Run the crash child, SIGKILL it after ``kill_after`` reports."""
    command = [sys.executable, str(CHILD), "crash", str(root), json.dumps(config)]
    return kill_after_reports(command, kill_after)


def read_with_memmap(root: Path) -> tuple[dict[str, Any], list[np.memmap]]:
    """The documented recipe: shapes and dtype from manifest.json, raw pos_<p>.dat."""
    manifest = json.loads((root / "manifest.json").read_text())
    arrays = [
        np.memmap(
            root / f"pos_{p}.dat",
            dtype=manifest["dtype"],
            mode="r",
            shape=tuple(shape),
        )
        for p, shape in enumerate(manifest["position_shapes"])
    ]
    return manifest, arrays


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.iterdir()}


@pytest.mark.parametrize(("config", "kill_after"), CASES)
def test_killed_writer_keeps_every_reported_frame(
    tmp_path: Path, config: dict[str, Any], kill_after: int, kill_after_reports: Any
) -> None:
    root = tmp_path / "scratch"
    reports = run_child_and_kill(kill_after_reports, root, config, kill_after)
    sizes = config["sizes"]
    frame_shape = (sizes["y"], sizes["x"])
    reported = len(reports["appended"]) + len(reports["skipped"])
    before = snapshot(root)

    ds = open_scratch(root)
    assert ds.complete is False
    assert ds.frames_written >= reported
    assert ds.global_metadata == {"child": {"pid": 1}}
    npos = sizes.get("p") or 1
    assert len(ds.arrays) == npos
    records = {r["frame_number"]: r for r in ds.frame_metadata}
    for n in reports["appended"]:
        position, index = locate(sizes, n)
        np.testing.assert_array_equal(
            ds.arrays[position][index], expected_frame(n, frame_shape), err_msg=f"{n}"
        )
        record = records[n]
        assert record["position_index"] == position
        assert tuple(record["storage_index"]) == index
        assert record["n"] == n
        assert record["exposure_ms"] == 10.0 + n
    for n in reports["skipped"]:
        position, index = locate(sizes, n)
        assert not ds.arrays[position][index].any()
        assert n not in records

    # the recipe maps what the manifest describes: every frame append returned
    # for (an unbounded manifest describes a step ahead, read as zeros)
    manifest, raw = read_with_memmap(root)
    assert manifest["complete"] is False
    assert manifest["frames_written"] <= ds.frames_written
    for n in reports["appended"]:
        position, index = locate(sizes, n)
        np.testing.assert_array_equal(
            raw[position][index], expected_frame(n, frame_shape)
        )
    del ds, raw
    assert snapshot(root) == before, "reading the root modified it"


def test_unreported_frames_are_consistent(
    tmp_path: Path, kill_after_reports: Any
) -> None:
    """Every frame the recovered count covers is complete, reported or not."""
    root = tmp_path / "scratch"
    sizes = {"t": None, "c": 2, "y": 32, "x": 32}
    reports = run_child_and_kill(
        kill_after_reports, root, {"sizes": sizes, "frames": None}, 150
    )
    ds = open_scratch(root)
    frame_shape = (32, 32)
    assert ds.frames_written >= len(reports["appended"])
    recorded = {r["frame_number"] for r in ds.frame_metadata}
    assert set(reports["appended"]) <= recorded
    # every frame the reader counts as written lies inside the arrays it maps
    rows = math.prod(ds.arrays[0].shape[:-2])
    assert ds.frames_written <= rows
    for n in range(ds.frames_written):
        _, index = locate(sizes, n)
        np.testing.assert_array_equal(
            ds.arrays[0][index], expected_frame(n, frame_shape)
        )


def test_open_scratch_does_not_modify_a_complete_root(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "p": 2, "y": 8, "x": 8}),
        dtype="uint16",
    )
    with create_stream(settings) as stream:
        for n in range(6):
            stream.append(expected_frame(n, (8, 8)), frame_metadata={"n": n})
    before = snapshot(root)
    ds = open_scratch(root)
    assert ds.complete is True
    assert ds.frames_written == 6
    assert [r["n"] for r in ds.frame_metadata] == list(range(6))
    for n in range(6):
        position, index = locate({"t": None, "p": 2}, n)
        np.testing.assert_array_equal(
            ds.arrays[position][index], expected_frame(n, (8, 8))
        )
        with pytest.raises(ValueError, match="read-only"):
            ds.arrays[position][index] = 0
    del ds
    assert snapshot(root) == before


def test_recover_finishes_a_killed_scratch_root(
    tmp_path: Path, kill_after_reports: Any
) -> None:
    """``recover`` writes the final manifest: exact shapes, complete, trimmed."""
    from ome_writers import recover

    root = tmp_path / "scratch"
    sizes = {"t": None, "p": 2, "y": 16, "x": 16}
    reports = run_child_and_kill(
        kill_after_reports, root, {"sizes": sizes, "frames": None}, 33
    )
    before = open_scratch(root)
    frames = before.frames_written
    del before
    report = recover(root)
    assert report.format == "scratch"
    assert report.was_complete is False
    assert report.frames_written == frames >= len(reports["appended"])
    manifest, raw = read_with_memmap(root)
    steps = -(-frames // 2)
    assert manifest["complete"] is True
    assert manifest["position_shapes"] == [[steps, 16, 16]] * 2
    for p in range(2):  # the step held ahead is trimmed
        assert (root / f"pos_{p}.dat").stat().st_size == steps * 16 * 16 * 2
    for n in reports["appended"]:
        position, index = locate(sizes, n)
        np.testing.assert_array_equal(raw[position][index], expected_frame(n, (16, 16)))
    del raw
    ds = open_scratch(root)
    assert ds.complete is True
    assert ds.frames_written == frames
    del ds
    assert recover(root).was_complete is True
