"""A killed OME-Zarr / OME-TIFF writer loses nothing ``append`` returned for.

A child process streams frames whose pixels and metadata identify them, prints
each one once ``append`` has returned, and is SIGKILLed. Before recovery the
output must already read whole with independent readers (zarr, tifffile);
``ome_writers.recover`` must then put every reported frame and its metadata in
place, with the global metadata, the final shape and ``complete``; a second
``recover`` does nothing.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr
from _crash_child import expected_frame
from ome_types import from_xml

from ome_writers import NotADatasetError, recover

CHILD = Path(__file__).with_name("_ome_crash_child.py")
FRAME = {"y": 32, "x": 32}

ENGINES = ("tensorstore", "zarr-python", "acquire-zarr", "tifffile")
_SHORT = {
    "tensorstore": "ts",
    "zarr-python": "zp",
    "acquire-zarr": "aqz",
    "tifffile": "tiff",
}
#: where each case's child is killed: after this many reported appends (it
#: goes on appending until the signal lands, so the point within an append,
#: a block or a shard row differs from case to case)
_KILL_AFTER = random.Random(16).choices(range(5, 61), k=64)


def _matrix() -> list[Any]:
    """Every engine x {bounded, unbounded} x {1, 3 positions}, then the odd ones."""
    cases = []
    for engine in ENGINES:
        for t, bound in ((20, "bounded"), (None, "unbounded")):
            for npos in (1, 3):
                sizes: dict[str, Any] = {"t": t, "c": 2}
                if npos > 1:
                    sizes = {"t": t, "p": npos, "c": 2}
                kill_after = min(_KILL_AFTER[len(cases)], 20 * npos * 2 - 1)
                cases.append(
                    pytest.param(
                        engine, sizes, {}, kill_after,
                        id=f"{_SHORT[engine]}-{bound}-{npos}pos",
                    )
                )  # fmt: skip
        cases.append(
            pytest.param(
                engine, {"t": None, "p": 3, "c": 2}, {"threads": 3}, 60,
                id=f"{_SHORT[engine]}-threads",
            )
        )  # fmt: skip
    return cases


CASES = [
    *_matrix(),
    pytest.param(
        "tensorstore",
        {"t": None, "p": 3, "c": 2},
        {"compression": "blosc-lz4"},
        41,
        id="ts-compressed-3pos-unbounded",
    ),
    pytest.param(
        "zarr-python", {"t": 20, "p": 3, "c": 2}, {"chunk_t": 4}, 41, id="zp-blocks"
    ),
    pytest.param(
        "acquire-zarr",
        {"t": None, "p": 2, "c": 2},
        {"chunk_t": 4, "shard_t": 2, "compression": "blosc-lz4", "tear": True},
        41,
        id="aqz-shards-compressed-torn",
    ),
]


def _kill_child(
    kill_after_reports: Any, root: Path, config: dict[str, Any], kill_after: int
) -> dict[str, Any]:
    """Run the writer child on ``root`` and SIGKILL it after ``kill_after`` frames."""
    command = [sys.executable, str(CHILD), str(root), json.dumps(config)]
    reports: dict[str, Any] = kill_after_reports(command, kill_after)
    return reports


def _positions(sizes: dict[str, Any]) -> int:
    return int(sizes.get("p") or 1)


def _zarr_frames(root: Path, npos: int) -> dict[int, tuple[np.ndarray, dict]]:
    """value -> (pixels at the frame's storage index, its metadata record)."""
    out = {}
    for p in range(npos):
        group = root if npos == 1 else root / str(p)
        attrs = zarr.open_group(group, mode="r").attrs
        data = zarr.open_array(group / "0", mode="r")[:]
        for record in attrs["ome_writers"]["frame_metadata"]:
            pixels = data[tuple(record["storage_index"])]
            assert record["v"] not in out, "a frame recorded twice"
            out[record["v"]] = (pixels, record)
    return out


def _tiff_frames(root: Path, npos: int) -> dict[int, tuple[np.ndarray, dict]]:
    first = (
        root
        if npos == 1
        else sorted((root.parent / root.name.split(".")[0]).iterdir())[0]
    )
    out = {}
    with tifffile.TiffFile(first) as tif, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ome = from_xml(tif.ome_metadata)
        annotations = {
            a.id: {m.k: json.loads(m.value) for m in a.value.ms}
            for a in ome.structured_annotations.map_annotations
            if a.namespace == "ome_writers/frame_metadata"
        }
        for p, image in enumerate(ome.images):
            data = tif.series[p].asarray()  # T C Y X
            for plane in image.pixels.planes:
                refs = [r.id for r in plane.annotation_refs]
                record = annotations[refs[0]]
                record["exposure_time"] = plane.exposure_time
                out[record["v"]] = (data[plane.the_t, plane.the_c], record)
    return out


def _read_whole(root: Path, fmt: str, npos: int) -> None:
    """Every array opens and reads whole (nothing torn inside the shape)."""
    if fmt == "tifffile":
        files = (
            [root]
            if npos == 1
            else sorted((root.parent / root.name.split(".")[0]).iterdir())
        )
        for path in files:
            with tifffile.TiffFile(path) as tif, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for series in tif.series:
                    series.asarray()
        return
    for p in range(npos):
        group = root if npos == 1 else root / str(p)
        zarr.open_array(group / "0", mode="r")[:]


def _tear_next_shard(root: Path, npos: int) -> None:
    """Leave a torn shard file (chunk bytes, no index) where acquire-zarr
    would write next: the first shard row with no file yet, whose frames the
    journal must still hold."""
    for p in range(npos):
        chunks = root / str(p) / "0" / "c"
        rows = [int(d.name) for d in chunks.iterdir()] if chunks.is_dir() else []
        torn = chunks / str(max(rows, default=-1) + 1) / "0" / "0" / "0"
        torn.parent.mkdir(parents=True, exist_ok=True)
        torn.write_bytes(np.random.default_rng(p).bytes(700))


@pytest.mark.parametrize(("fmt", "sizes", "options", "kill_after"), CASES)
def test_killed_writer_recovers_every_reported_frame(
    tmp_path: Path,
    kill_after_reports: Any,
    fmt: str,
    sizes: dict[str, Any],
    options: dict[str, Any],
    kill_after: int,
) -> None:
    root = tmp_path / ("run.ome.tiff" if fmt == "tifffile" else "run.ome.zarr")
    config = {"format": fmt, "sizes": {**sizes, **FRAME}, **options}
    reports = _kill_child(kill_after_reports, root, config, kill_after)
    reported = set(reports["appended"])
    assert len(reported) >= kill_after
    npos = _positions(sizes)

    if fmt != "acquire-zarr":  # it writes shards in place (README, Limitations)
        _read_whole(root, fmt, npos)  # before recovery
    if options.get("tear"):
        _tear_next_shard(root, npos)
    report = recover(root)
    _read_whole(root, fmt, npos)
    assert report.was_complete is False
    assert report.frames_written >= len(reported)
    assert not root.with_name(root.name + ".ome-writers-journal").exists()
    if fmt != "tifffile":  # the killed writer's temporary files are gone
        assert not [p for p in root.rglob("*") if p.name.endswith((".tmp", "partial"))]

    frames = (_tiff_frames if fmt == "tifffile" else _zarr_frames)(root, npos)
    shape = (FRAME["y"], FRAME["x"])
    for v in sorted(reported):
        assert v in frames, f"frame {v} lost"
        pixels, record = frames[v]
        np.testing.assert_array_equal(pixels, expected_frame(v, shape), err_msg=str(v))
        assert record["exposure_time"] == pytest.approx(0.001 * (v + 1))
    if fmt == "tifffile":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = recover(root)
    else:
        attrs = zarr.open_group(root, mode="r").attrs
        assert attrs["child"] == {"started": True}
        own = attrs["ome_writers"]
        assert own["complete"] is True
        assert own["frames_written"] == report.frames_written
        if sizes["t"] is None:
            per_step = npos * sizes["c"]
            steps = -(-report.frames_written // per_step)
            group = root if npos == 1 else root / "0"
            assert zarr.open_array(group / "0", mode="r").shape[0] == steps
        state = recover(root)
    assert state.was_complete is True


def test_recover_refuses_what_is_not_ours(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotADatasetError, match=r"notes\.txt.* not an interrupted"):
        recover(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "hello"


def test_command_line_says_interrupted_and_recovers(
    tmp_path: Path, kill_after_reports: Any
) -> None:
    root = tmp_path / "run.ome.zarr"
    config = {"format": "tensorstore", "sizes": {"t": None, "c": 2, **FRAME}}
    _kill_child(kill_after_reports, root, config, 9)
    cli = [sys.executable, "-m", "ome_writers"]
    info = subprocess.run([*cli, "info", str(root)], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert f"'ome-writers recover {root}' finishes it" in info.stdout
    done = subprocess.run([*cli, "recover", str(root)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "recovered" in done.stdout
    assert "now complete" in done.stdout
    again = subprocess.run([*cli, "recover", str(root)], capture_output=True, text=True)
    assert again.returncode == 0
    assert "already complete" in again.stdout
    info = subprocess.run([*cli, "info", str(root)], capture_output=True, text=True)
    assert "interrupted" not in info.stdout
    assert ", complete" in info.stdout.splitlines()[0]
    (tmp_path / "notes.txt").write_text("hello")
    bad = subprocess.run(
        [*cli, "recover", str(tmp_path / "notes.txt")], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "not an interrupted or complete output" in bad.stderr


def test_an_interrupted_output_is_not_overwritten_by_accident(
    tmp_path: Path, kill_after_reports: Any
) -> None:
    from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes

    root = tmp_path / "run.ome.zarr"
    config = {"format": "zarr-python", "sizes": {"t": None, "c": 2, **FRAME}}
    _kill_child(kill_after_reports, root, config, 5)
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 2, "c": 2, **FRAME}),
        dtype="uint16",
        format="zarr-python",
    )
    with pytest.raises(FileExistsError, match=r"interrupted acquisition.*recover"):
        create_stream(settings)
    assert recover(root).frames_written >= 5
    with create_stream(settings.model_copy(update={"overwrite": True})) as stream:
        stream.append(np.ones((32, 32), "uint16"))
    assert not root.with_name(root.name + ".ome-writers-journal").exists()


def _mark_in_journal(journal: Path, frames: dict[int, np.ndarray]) -> None:
    """Mark ``frames`` in new journal slots, as a writer killed while it freed
    a written block's slots leaves some of them (the format is the one the
    journal module documents: ``.idx`` frame number + 1, ``.dat`` pixels)."""
    document = json.loads((journal / "journal.json").read_text())
    ((name, layout),) = document["slots"].items()
    assert layout.get("order", "frames") == "frames", layout
    slot_bytes = int(layout["slot_bytes"])
    idx, dat = journal / f"{name}.idx", journal / f"{name}.dat"
    for number, pixels in frames.items():
        slot = idx.stat().st_size // 8
        with idx.open("r+b") as fh:
            fh.seek(slot * 8)
            fh.write(np.uint64(number + 1).astype("<u8").tobytes())
        with dat.open("r+b") as fh:
            fh.seek(slot * slot_bytes)
            fh.write(pixels.astype("<u2").tobytes())


@pytest.mark.parametrize("fmt", ["zarr-python", "tensorstore"])
def test_a_block_partly_left_in_the_journal_keeps_its_other_frames(
    tmp_path: Path, kill_after_reports: Any, fmt: str
) -> None:
    """The kill lands while the writer frees the journal slots of a block it
    has written: the journal gives back only some of the block's frames, and
    recovery must take the others from the output, not write zeros over them.
    """
    root = tmp_path / "run.ome.zarr"
    sizes = {"t": 20, "p": 3, "c": 2, **FRAME}
    # 100 frames, the blocks of the first 96 written whole before the last
    config = {"format": fmt, "sizes": sizes, "chunk_t": 4, "frames": 100, "drain": True}
    reports = _kill_child(kill_after_reports, root, config, 101)
    assert len(reports["appended"]) == 100
    reported = set(reports["appended"])
    journal = root.with_name(root.name + ".ome-writers-journal")
    marks = np.frombuffer(
        b"".join(p.read_bytes() for p in sorted(journal.glob("*.idx"))), "<u8"
    )
    held = {int(m) - 1 for m in marks if m}
    # blocks are (position, c) x 4 time points: frame = t * 6 + p * 2 + c
    blocks = [
        [t * 6 + p * 2 + c for t in range(t0, t0 + 4)]
        for t0 in (0, 4, 8)
        for p in range(3)
        for c in range(2)
    ]
    written = [b for b in blocks if set(b) <= reported and not set(b) & held]
    assert written, f"no written block to cut the release of: held {sorted(held)}"
    block = written[0]
    shape = (FRAME["y"], FRAME["x"])
    _mark_in_journal(journal, {v: expected_frame(v, shape) for v in block[2:]})

    report = recover(root)
    assert report.frames_restored >= 2
    frames = _zarr_frames(root, 3)
    for v in sorted(reported):
        np.testing.assert_array_equal(frames[v][0], expected_frame(v, shape), str(v))
