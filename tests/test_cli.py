"""The ``ome-writers`` command, run through its real entry points in subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ome_writers import open_scratch

if TYPE_CHECKING:
    from pathlib import Path


def run(*args: str, entry: str = "module") -> subprocess.CompletedProcess[str]:
    if entry == "script":
        exe = shutil.which("ome-writers")
        assert exe is not None, "the ome-writers console script is not installed"
        command = [exe, *args]
    else:
        command = [sys.executable, "-m", "ome_writers", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("entry", [pytest.param("module"), pytest.param("script")])
def test_demo_runs_in_memory_by_default(entry):
    result = run("demo", entry=entry)
    assert result.returncode == 0, result.stderr
    assert "wrote 40 frames" in result.stdout
    assert "memory" in result.stdout
    assert "t=20 (time), c=2 (channel), y=512 (space), x=512 (space)" in result.stdout
    # the progress bar reports frames, frames/s and MB/s
    assert "40/40 frames" in result.stderr
    assert "frames/s" in result.stderr
    assert "MB/s" in result.stderr


def test_demo_to_disk_then_info(tmp_path):
    root = tmp_path / "demo_root"
    result = run("demo", "--root", str(root), "--dims", "t:3,p:2,c:2,y:32,x:48")
    assert result.returncode == 0, result.stderr
    assert str(root) in result.stdout

    dataset = open_scratch(root)
    assert dataset.complete
    assert dataset.frames_written == 12
    assert [a.shape for a in dataset.arrays] == [(3, 2, 32, 48)] * 2
    # synthetic frames have structure: not constant, not all distinct noise
    frame = np.asarray(dataset.arrays[0][0, 0])
    assert frame.std() > 0
    assert len(dataset.frame_metadata) == 12
    assert all("delta_t" in r for r in dataset.frame_metadata)

    info = run("info", str(root))
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines()[0] == f"{root}: scratch root, complete"
    assert "  frames:       12 of 12 written" in info.stdout
    assert "  dimensions:   t 3 · c 2 · y 32 · x 48" in info.stdout
    assert "  positions:    2" in info.stdout
    assert "  size on disk: " in info.stdout


def test_info_describes_an_interrupted_root(tmp_path):
    root = tmp_path / "root"
    assert run("demo", "--root", str(root), "--dims", "t:2,y:8,x:8").returncode == 0
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["complete"] = False
    manifest_path.write_text(json.dumps(manifest))
    info = run("info", str(root))
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines()[0].endswith(", interrupted")
    assert f"'ome-writers recover {root}' finishes it" in info.stdout


def test_demo_unbounded_needs_frames(tmp_path):
    bad = run("demo", "--dims", "t:inf,y:8,x:8")
    assert bad.returncode == 2
    ok = run("demo", "--dims", "t:inf,y:8,x:8", "--frames", "5")
    assert ok.returncode == 0, ok.stderr
    assert "wrote 5 frames" in ok.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("demo", "--dims", "q:3,y:8,x:8"), "--dims", id="unknown-axis"),
        pytest.param(("demo", "--dims", "t3,y:8,x:8"), "--dims", id="no-colon"),
        pytest.param(("demo", "--dims", "t:x,y:8,x:8"), "whole number", id="count"),
        pytest.param(("demo", "--dims", "t:-2,y:8,x:8"), "positive", id="negative"),
        pytest.param(("demo", "--dtype", "uint12"), "--dtype", id="dtype"),
        pytest.param(("demo", "--format", "bmp"), "--format", id="format"),
        pytest.param(("demo", "--fps", "fast"), "--fps", id="fps"),
        pytest.param(("demo", "--fps", "-5"), "--fps -5.0 must be", id="fps-negative"),
        pytest.param(
            ("demo", "--dims", "t:10,y:8,x:8", "--frames", "11"),
            "more than the 10 frames",
            id="frames-past-dims",
        ),
        pytest.param(
            ("demo", "--dims", "t:20,c:2"),
            "dimensions: the last two dimensions are the frame",
            id="pydantic-wrapper",
        ),
        pytest.param(
            (
                "demo",
                "--format",
                "ome-zarr",
                "--root",
                "foo.tif",
                "--dims",
                "t:1,y:8,x:8",
            ),
            "names a TIFF file but --format is 'ome-zarr'",
            id="zarr-to-tif",
        ),
        pytest.param(
            (
                "demo",
                "--format",
                "ome-tiff",
                "--root",
                "foo.zarr",
                "--dims",
                "t:1,y:8,x:8",
            ),
            "names a Zarr directory",
            id="tiff-to-zarr",
        ),
        pytest.param(("info",), "path", id="info-no-path"),
        pytest.param(("frobnicate",), "invalid choice", id="command"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert ": : " not in result.stderr
    assert "Value error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # argparse adds a usage line


@pytest.mark.parametrize(
    "make_path",
    [
        pytest.param(lambda tmp: tmp / "missing", id="missing"),
        pytest.param(lambda tmp: tmp, id="plain-directory"),
        pytest.param(
            lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt",
            id="file",
        ),
    ],
)
def test_info_on_a_non_dataset_exits_2(tmp_path, make_path):
    path: Path = make_path(tmp_path)
    result = run("info", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_existing_root_is_refused_with_one_line(tmp_path):
    root = tmp_path / "root"
    assert run("demo", "--root", str(root), "--dims", "t:1,y:8,x:8").returncode == 0
    again = run("demo", "--root", str(root), "--dims", "t:1,y:8,x:8")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert "--overwrite" in again.stderr
    assert "overwrite=True" not in again.stderr
    assert "Traceback" not in again.stderr
    replaced = run("demo", "--root", str(root), "--dims", "t:1,y:8,x:8", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr


def test_bench_lists_scenarios():
    result = run("bench", "--help")
    assert result.returncode == 0
    for name in ("overhead", "bandwidth", "disk", "unbounded-memory"):
        assert name in result.stdout


def test_bench_runs_a_scenario_and_reports_it():
    """A real (small) scenario, as JSON and as the table printed from it."""
    from ome_writers._cli._bench import SCENARIOS, format_results

    result = run("bench", "overhead", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    stream, limit = record["stream"], record["baseline"]
    assert record["scenario"] == "overhead"
    assert record["ratio"] == pytest.approx(stream["mean_us"] / limit["mean_us"])
    frames = SCENARIOS["overhead"].frames
    assert record["frames_per_s"] == pytest.approx(frames / stream["append_s"])
    assert 0 < stream["median_us"] <= stream["p99_us"] <= stream["max_us"]
    table = format_results([record]).splitlines()
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[0] == "overhead"
    assert cells[1] == f"{record['frames_per_s']:,.0f}"
    assert cells[3] == (
        f"{stream['median_us']:.1f} / {stream['p99_us']:.1f} / {stream['max_us']:.1f}"
    )
    assert cells[4] == f"{limit['total_s']:.3f} (numpy)"
    assert cells[7] == f"{record['ratio']:.2f}"
    assert cells[8] == "append time / limit <= 1.4"
    assert len(table) == 3  # no latency table: not an unbounded scenario
    # the unbounded scenarios add the limit's own latency, from the same run
    latency = format_results([{**record, "scenario": "unbounded-disk"}]).splitlines()
    cells = [c.strip() for c in latency[-1].strip("|").split("|")]
    assert cells[:2] == ["unbounded-disk", "numpy"]
    assert cells[3] == f"{limit['max_us'] / limit['median_us']:.2f}"


def test_bench_disk_rounds_settle_and_leave_no_data(tmp_path: Path) -> None:
    """A (tiny) disk scenario: 4 rounds of each side, a settle write before
    each timed run, and every output emptied once measured."""
    from ome_writers._cli._bench import Scenario, run_scenario

    scenario = Scenario(
        "tiny-disk", 4, (16, 16), True, False, "raw-disk", "4 frames of 16x16"
    )
    work = tmp_path / "work"
    result = run_scenario(scenario, work, warm=False)
    stream, limit = result["stream"], result["baseline"]
    assert len(stream["rounds_total_s"]) == len(limit["rounds_total_s"]) == 4
    assert result["ratio"] == pytest.approx(limit["total_s"] / stream["total_s"])
    assert stream["output_bytes"] >= 4 * 16 * 16 * 2  # measured before emptying
    settled = sorted((work / "settle").iterdir())
    assert len(settled) == 8  # before each timed run, limit and stream
    assert all(p.stat().st_size == 0 for p in settled)
    spent = [p for p in (work / "spent").rglob("*") if p.is_file()]
    assert spent
    assert all(p.stat().st_size == 0 for p in spent)
    assert not list(work.glob("stream*"))
    assert not list(work.glob("baseline*"))


def test_bench_rejects_unknown_scenario():
    result = run("bench", "nonsense")
    assert result.returncode == 2
    assert "unknown scenario" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_shows_the_usage_and_the_commands() -> None:
    result = run()
    assert result.returncode == 2
    for command in ("demo", "info", "recover", "bench"):
        assert command in result.stderr


def test_demo_help_describes_it_with_defaults() -> None:
    result = run("demo", "--help")
    assert result.returncode == 0
    assert "simulated camera" in result.stdout
    assert "(default: t:20,c:2,y:512,x:512)" in result.stdout
    assert "(default: uint16)" in result.stdout


def test_fewer_frames_than_declared_says_so() -> None:
    result = run("demo", "--dims", "t:10,y:8,x:8", "--frames", "3")
    assert result.returncode == 0, result.stderr
    assert "acquiring 3 of the 10 frames" in result.stderr


@pytest.mark.parametrize("args", [("demo", "--dims", "t:50,y:8,x:8"), ("info", "ROOT")])
def test_a_closed_pipe_ends_quietly(tmp_path: Path, args: tuple[str, ...]) -> None:
    root = tmp_path / "root"
    assert run("demo", "--root", str(root), "--dims", "t:2,y:8,x:8").returncode == 0
    command = [sys.executable, "-m", "ome_writers"]
    command += [str(root) if a == "ROOT" else a for a in args]
    # "| head -1": the reader closes the pipe after one line
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert b"Traceback" not in stderr
    assert b"BrokenPipeError" not in stderr
    assert proc.returncode == 0


def test_info_on_a_tiff_without_tifffile_names_the_extra(tmp_path: Path) -> None:
    root = tmp_path / "a.ome.tiff"
    made = run(
        "demo", "--format", "ome-tiff", "--root", str(root), "--dims", "t:1,y:8,x:8"
    )
    assert made.returncode == 0, made.stderr
    # tifffile made unimportable, as when the extra is not installed
    code = (
        "import sys; sys.modules['tifffile'] = None; "
        "from ome_writers._cli._main import main; "
        f"sys.exit(main(['info', {str(root)!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "ome-writers[tifffile]" in result.stderr
    assert "not a directory" not in result.stderr
