"""A real crash: a child streams OME-TIFF, reports each append, and is SIGKILLed.

The parent then opens every file with tifffile alone: it must see OME, the
OME-XML must validate, and every reported frame must be in its series at the
right place (skipped frames as zeros).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from _frame_index import locate
from _tiff_crash_child import expected_frame
from ome_types import from_xml

CHILD = Path(__file__).with_name("_tiff_crash_child.py")

CASES = [
    # killed inside a page write, between its pixel data and its IFD
    pytest.param(
        {"sizes": {"t": None, "y": 64, "x": 64}, "frames": None, "stall_after": 9},
        9,
        id="tyx-unbounded-killed-inside-page",
    ),
    pytest.param(
        {
            "sizes": {"t": 20, "c": 2, "y": 64, "x": 64},
            "frames": 40,
            "compression": "zlib",
            "stall_after": 5,
        },
        5,
        id="tcyx-zlib-killed-inside-page",
    ),
    pytest.param(
        {"sizes": {"t": 400, "c": 2, "y": 64, "x": 64}, "frames": 800},
        120,
        id="tcyx-bounded",
    ),
    pytest.param(
        {"sizes": {"t": None, "c": 2, "y": 64, "x": 64}, "frames": None},
        150,
        id="tcyx-unbounded",
    ),
    pytest.param(
        {
            "sizes": {"t": None, "p": 2, "c": 2, "y": 32, "x": 32},
            "frames": None,
            "compression": "zlib",
            "skip_every": 7,
        },
        150,
        id="tpcyx-unbounded-series-zlib-skips",
    ),
    pytest.param(
        {
            "sizes": {"t": 300, "p": 3, "y": 32, "x": 32},
            "frames": 900,
            "layout": "redundant",
        },
        100,
        id="tpyx-bounded-folder-redundant",
    ),
]


def run_child_and_kill(
    kill_after_reports: Any, root: Path, config: dict[str, Any], kill_after: int
) -> dict:
    command = [sys.executable, str(CHILD), str(root), json.dumps(config)]
    reports = kill_after_reports(command, kill_after)
    if "stall_after" in config:
        done = len(reports["appended"]) + len(reports["skipped"])
        assert done == config["stall_after"], reports["stderr"]
    return reports


@pytest.mark.parametrize(("config", "kill_after"), CASES)
def test_killed_writer_leaves_readable_ome_tiff(
    tmp_path: Path, config: dict[str, Any], kill_after: int, kill_after_reports: Any
) -> None:
    root = tmp_path / "crash.ome.tiff"
    reports = run_child_and_kill(kill_after_reports, root, config, kill_after)
    sizes = config["sizes"]
    shape = (sizes["y"], sizes["x"])
    npos = len(sizes["p"]) if isinstance(sizes.get("p"), list) else sizes.get("p", 1)
    if config.get("layout") == "redundant":
        # one file per position in a folder, each describing all of them
        paths = [tmp_path / "crash" / f"crash_p{p:03d}.ome.tiff" for p in range(npos)]
    else:
        paths = [root]
    series: list[np.ndarray] = []
    for k, path in enumerate(paths):
        with tifffile.TiffFile(path) as tf:
            assert tf.is_ome
            ome = from_xml(tf.ome_metadata, validate=True)
            writer = next(
                a
                for a in ome.structured_annotations.map_annotations
                if a.namespace == "ome_writers"
            )
            assert {m.k: m.value for m in writer.value.ms}["complete"] == "false"
            if k == 0:  # any one file reads the whole dataset
                series += [s.asarray() for s in tf.series]
    assert len(series) == npos
    for n in reports["appended"]:
        position, index = locate(sizes, n)
        np.testing.assert_array_equal(
            series[position][index], expected_frame(n, shape), err_msg=f"frame {n}"
        )
    for n in reports["skipped"]:
        position, index = locate(sizes, n)
        assert not series[position][index].any()
