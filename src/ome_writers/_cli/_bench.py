"""Benchmark scenarios, each measured beside its physical limit in the same run.

Every scenario runs in a fresh Python process (so one scenario's memory does
not warm the next), generates its frames before the timed loop (a ring of
prepared buffers, as a camera SDK recycles them), and measures the baseline in
the same process right before the stream, so the ratio between the two is
meaningful on a shared, noisy machine. Latency figures are per ``append``,
timed with ``perf_counter_ns`` around each call; the baselines are timed the
same way, so both sides carry the same timer overhead.

Baselines (the physical limits):

- ``numpy``: ``arr[i] = frame`` into an array from ``np.empty`` (fresh memory).
- ``numpy-touched``: the same into an array whose pages were already written.
- ``memmap``: ``np.memmap`` of a new file, ``mm[i] = frame``, then ``flush()``.
- ``raw-disk``: sequential ``write`` of the same bytes to one file, then
  ``close`` (for OME-Zarr and OME-TIFF written with ``fsync="never"``, whose
  ``close()`` likewise returns once everything is handed to the operating
  system).
- ``raw-disk-on_close`` / ``raw-disk-every_frame``: the same with one
  ``fsync`` before ``close``, or one after every ``write``: the limits of the
  OME formats' ``fsync`` policies (the ``*-fsync-*`` scenarios).
- ``copy-on_close`` / ``copy-never``: ``shutil.copyfile`` of the scratch
  source's data file (the same bytes ``convert`` reads, on the same disk;
  an in-kernel copy on Linux), with one ``fsync`` of the copy or none: the
  limits of the ``convert-*`` scenarios, which convert that scratch root into
  OME-Zarr or OME-TIFF with the format's ``fsync`` policy set the same way.
  The source is written (and synced) before the rounds, so both sides read
  it from the page cache.
- ``s3-put``: plain parallel PUTs of the objects an ``s3-*`` scenario's
  stream writes, to the same S3 server (a local moto server this process
  starts, or ``$OME_WRITERS_BENCH_S3``; see ``_s3_bench``).

Warm memory: on a virtual machine whose free memory goes back to the host
(a balloon with free page reporting, as on this project's test machine), the
first write into a page that has been free for about a second costs ten
times more (0.4 GB/s instead of 4), so a run's latency and speed would
depend on how long ago the memory it lands in was last used. Before each
timed run of a disk scenario, limit and stream alike, the runner therefore
touches and frees as much memory as the run will write (``--cold`` skips
this); a workstation without a balloon behaves like the warm runs.

Settled disk: the runner frees each round's output before the next (the
limit deletes its file; the stream's files are truncated, see
``_retire_outputs``), and on this project's test machine the first frames
written after freeing gigabytes took 3-9 ms each instead of about 1.2 ms (the
limit's first frame up to 50 ms): a cost of the runner's own cleanup, not of
the writer measured next. So before each timed disk run, limit and stream
alike, the runner also writes a few frames, unmeasured, to a file of its own
(flushed to the device, so that it leaves no dirty pages behind; emptied when
the scenario's rounds are done).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

_RING = 8


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One benchmark: what is written, where, and against which limit."""

    name: str
    frames: int
    frame_shape: tuple[int, int]
    disk: bool
    unbounded: bool
    baseline: str
    description: str
    format: str = "scratch"
    compression: str | None = None
    chunk_yx: int | None = None
    #: the OME formats' fsync policy ("never" matches the raw-disk limit)
    fsync: str = "never"
    #: write a pyramid (``Pyramid()``, levels=None) beside the full resolution
    pyramid: bool = False

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame (uint16)."""
        return self.frame_shape[0] * self.frame_shape[1] * 2


def _frames_past_writeback(frame_bytes: int, floor: int = 600) -> int:
    """Frames that write three times the kernel's dirty-page limit.

    Up to that limit (``nr_dirty_threshold``: 20% of the free memory by
    default, 4.4 GiB here) the kernel takes writes into memory; past it,
    writers wait for the disk. A stream of three times as much runs mostly
    at the speed the disk sustains (Linux: ``/proc/vmstat``; elsewhere, and
    at least, ``floor``).
    """
    try:
        with open("/proc/vmstat") as fh:
            pages = next(
                int(line.split()[1])
                for line in fh
                if line.startswith("nr_dirty_threshold ")
            )
    except (OSError, StopIteration, ValueError):
        return floor
    return max(floor, math.ceil(3 * pages * os.sysconf("SC_PAGE_SIZE") / frame_bytes))


_SUSTAINED_FRAMES = _frames_past_writeback(2048 * 2048 * 2)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "overhead", 5000, (64, 64), False, False, "numpy",
            "per-frame overhead: 5,000 frames of 64x64 uint16, scratch in memory",
        ),
        Scenario(
            "bandwidth", 200, (2048, 2048), False, False, "numpy-touched",
            "bandwidth: 200 frames of 2048x2048 uint16, scratch in memory",
        ),
        Scenario(
            "disk", 200, (2048, 2048), True, False, "memmap",
            "disk-backed scratch: 200 frames of 2048x2048, create+append+close",
        ),
        Scenario(
            "unbounded-memory", 300, (2048, 2048), False, True, "numpy-touched",
            "unbounded growth in memory: 300 frames of 2048x2048 uint16",
        ),
        Scenario(
            "unbounded-disk", 300, (2048, 2048), True, True, "memmap",
            "unbounded growth on disk: 300 frames of 2048x2048 uint16",
        ),
    ]
}  # fmt: skip

for _backend in ("tensorstore", "acquire-zarr", "zarr-python"):
    for _codec in (None, "blosc-zstd"):
        _name = f"zarr-{_backend}" + (f"-{_codec}" if _codec else "")
        SCENARIOS[_name] = Scenario(
            _name, 200, (2048, 2048), True, False, "raw-disk",
            f"OME-Zarr via {_backend}: 200 frames of 2048x2048 uint16, chunks "
            f"(1, 512, 512), {_codec or 'uncompressed'}",
            format=_backend, compression=_codec, chunk_yx=512,
        )  # fmt: skip
for _codec in (None, "zlib"):
    _name = "tiff" + (f"-{_codec}" if _codec else "")
    SCENARIOS[_name] = Scenario(
        _name, 200, (2048, 2048), True, False, "raw-disk",
        f"OME-TIFF via tifffile: 200 frames of 2048x2048 uint16, "
        f"{_codec or 'uncompressed'}",
        format="tifffile", compression=_codec,
    )  # fmt: skip

for _backend, _label in (("tensorstore", "zarr-tensorstore"), ("tifffile", "tiff")):
    for _policy in ("on_close", "every_frame"):
        _name = f"{_label}-fsync-{_policy.replace('_', '-')}"
        SCENARIOS[_name] = Scenario(
            _name, 200, (2048, 2048), True, False, f"raw-disk-{_policy}",
            f"{_label} with fsync={_policy!r}: 200 frames of 2048x2048 uint16, "
            f"against writes synced the same way",
            format=_backend, chunk_yx=512 if _backend == "tensorstore" else None,
            fsync=_policy,
        )  # fmt: skip

for _backend, _label in (("tensorstore", "zarr"), ("tifffile", "tiff")):
    for _policy in ("on_close", "never"):
        _name = f"convert-{_label}" + ("" if _policy == "on_close" else "-nosync")
        SCENARIOS[_name] = Scenario(
            _name, 64, (2048, 2048), True, False, f"copy-{_policy}",
            f"convert a scratch root of 64 frames of 2048x2048 uint16 (537 MB) to "
            f"{_label} ({_backend}, uncompressed, fsync={_policy!r}), against "
            f"copying its data file" + (" and syncing the copy" if _policy ==
            "on_close" else ""),
            format=_backend, fsync=_policy,
        )  # fmt: skip
SCENARIOS["zarr-tensorstore-pyramid"] = Scenario(
    "zarr-tensorstore-pyramid", 200, (2048, 2048), True, False, "stream-no-pyramid",
    "OME-Zarr via tensorstore with Pyramid() (levels=None: 2048, 1024, 512): 200 "
    "frames of 2048x2048 uint16, chunks (1, 512, 512), uncompressed, against the "
    "same stream without a pyramid (a burst: without the pyramid it stays in "
    "the page cache)",
    format="tensorstore", chunk_yx=512, pyramid=True,
)  # fmt: skip
SCENARIOS["zarr-tensorstore-pyramid-sustained"] = Scenario(
    "zarr-tensorstore-pyramid-sustained",
    _SUSTAINED_FRAMES, (2048, 2048), True, False, "stream-no-pyramid",
    f"zarr-tensorstore-pyramid over {_SUSTAINED_FRAMES} frames: both streams "
    "write at least three times this machine's dirty-page limit, so that both "
    "are measured mostly at the speed the disk sustains, not in a burst into "
    "memory",
    format="tensorstore", chunk_yx=512, pyramid=True,
)  # fmt: skip
SCENARIOS["zarr-tensorstore-pyramid-bytes"] = Scenario(
    "zarr-tensorstore-pyramid-bytes", 200, (2048, 2048), True, False,
    "stream-no-pyramid-same-bytes",
    "the zarr-tensorstore-pyramid stream against the same stream without a "
    "pyramid writing as many bytes (262 frames: 200 x (1 + 1/4 + 1/16)): what "
    "the pyramid costs beyond its bytes",
    format="tensorstore", chunk_yx=512, pyramid=True,
)  # fmt: skip
for _backend in ("tensorstore", "zarr-python", "acquire-zarr"):
    SCENARIOS[f"s3-{_backend}"] = Scenario(
        f"s3-{_backend}", 64, (2048, 2048), False, False, "s3-put",
        f"OME-Zarr via {_backend} to s3:// (a local moto server, or "
        "$OME_WRITERS_BENCH_S3): 64 frames of 2048x2048 uint16, one object per "
        "frame, against plain parallel PUTs of the same objects",
        format=_backend,
    )  # fmt: skip
#: ``ome-writers bench convert`` runs every ``convert-*`` scenario; ``s3`` every
#: ``s3-*`` one
SCENARIO_GROUPS = {
    "convert": [n for n in SCENARIOS if n.startswith("convert-")],
    "s3": [n for n in SCENARIOS if n.startswith("s3-")],
}

#: what each scenario's ratio is compared with, and in which direction
TARGETS: dict[str, tuple[str, float]] = {
    "overhead": ("append time / limit <=", 1.4),
    "bandwidth": ("speed / limit >=", 0.9),
    "disk": ("create+append+close time / limit <=", 1.05),
    "unbounded-memory": ("max / median append <=", 5.0),
    "unbounded-disk": ("max / median append <=", 5.0),
    **{
        name: ("speed / raw-disk limit >=", 0.8)
        for name, s in SCENARIOS.items()
        if s.baseline == "raw-disk" and s.compression is None
    },
    **dict.fromkeys(SCENARIO_GROUPS["convert"], ("speed / plain copy >=", 0.8)),
    **dict.fromkeys(
        ["zarr-tensorstore-pyramid", "zarr-tensorstore-pyramid-sustained"],
        ("speed / same stream without pyramid >=", 1 / 1.35),
    ),
    **dict.fromkeys(SCENARIO_GROUPS["s3"], ("speed / parallel PUTs >=", 0.8)),
}


def _frames(scenario: Scenario) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 4096, scenario.frame_shape, dtype=np.uint16)
        for _ in range(_RING)
    ]


def _latency_stats(ns: np.ndarray) -> dict[str, float]:
    return {
        "median_us": float(np.median(ns) / 1e3),
        "p99_us": float(np.percentile(ns, 99) / 1e3),
        "max_us": float(ns.max() / 1e3),
        "mean_us": float(ns.mean() / 1e3),
    }


def _warm_free_memory(nbytes: int) -> None:
    """Touch and free ``nbytes`` so the next run gets host-backed pages.

    At most half the memory now free: a run that writes more than that
    (``*-sustained``) is past the page cache's dirty limit anyway.
    """
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    scratch = np.empty(min(nbytes, available // 2), np.uint8)
    scratch[:: os.sysconf("SC_PAGE_SIZE")] = 1
    del scratch


#: frames written, unmeasured, right before each timed disk run
_SETTLE_FRAMES = 8


def _settle_disk(frames: list[np.ndarray], workdir: Path) -> None:
    """Write a few frames to a new file of the runner's, right before a timed run.

    After the runner freed the previous round's 1.6-2.4 GB, the next writer's
    first ~8 frames took 3-9 ms each instead of 1.1-1.4 ms; after this write
    they took 1.4-2.5 ms (benchmarks/RESULTS.md, session 5). Why freeing does
    that is not established (the disk here is ext4 mounted with ``discard``;
    a 5 s pause did not help). The file is fsynced: its pages must not be
    written back during the timed run that follows.
    """
    settle = workdir / "settle"
    settle.mkdir(exist_ok=True)
    path = settle / f"{len(list(settle.iterdir()))}.raw"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for i in range(_SETTLE_FRAMES):
            os.write(fd, frames[i % len(frames)].data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _time_loop(store: Any, frames: list[np.ndarray], n: int) -> np.ndarray:
    ns = np.empty(n, np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        frame = frames[i % _RING]
        t0 = clock()
        store(i, frame)
        ns[i] = clock() - t0
    return ns


def _baseline(
    scenario: Scenario, frames: list[np.ndarray], workdir: Path
) -> dict[str, Any]:
    if scenario.baseline.startswith("stream-no-pyramid"):
        plain = dataclasses.replace(scenario, pyramid=False)
        if scenario.baseline == "stream-no-pyramid-same-bytes":
            plain = dataclasses.replace(
                plain, frames=round(scenario.frames * _pyramid_bytes_factor(scenario))
            )
        result = _stream_run(plain, frames, workdir)
        _retire_outputs(workdir)
        return result
    n = scenario.frames
    shape = (n, *scenario.frame_shape)
    t0 = time.perf_counter()
    if scenario.baseline == "numpy-touched":
        # what creating and filling fresh memory costs, for create+append+close
        fresh = np.empty(shape, np.uint16)
        for i in range(n):
            fresh[i] = frames[i % _RING]
        fresh_total = time.perf_counter() - t0
        del fresh
        t0 = time.perf_counter()
    if scenario.baseline in ("numpy", "numpy-touched"):
        arr = np.empty(shape, np.uint16)
        if scenario.baseline == "numpy-touched":
            arr.fill(1)
            t0 = time.perf_counter()

        def store(i: int, frame: np.ndarray) -> None:
            arr[i] = frame

        ns = _time_loop(store, frames, n)
        total = time.perf_counter() - t0
    elif scenario.baseline == "memmap":
        path = workdir / "baseline.dat"
        mm = np.memmap(path, dtype=np.uint16, mode="w+", shape=shape)

        def store(i: int, frame: np.ndarray) -> None:
            mm[i] = frame

        ns = _time_loop(store, frames, n)
        mm.flush()
        del mm
        total = time.perf_counter() - t0
        path.unlink()
    elif scenario.baseline.startswith("copy"):
        path = workdir / "baseline.copy"
        shutil.copyfile(workdir / _CONVERT_SOURCE / "pos_0.dat", path)
        if scenario.baseline == "copy-on_close":
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        total = time.perf_counter() - t0
        ns = np.array([int(total * 1e9)])  # one call: no per-frame latency
        path.unlink()
    else:  # raw-disk, raw-disk-on_close (fsync at the end), -every_frame
        path = workdir / "baseline.raw"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        every_frame = scenario.baseline == "raw-disk-every_frame"

        def store(i: int, frame: np.ndarray) -> None:
            os.write(fd, frame.data)
            if every_frame:
                os.fsync(fd)

        ns = _time_loop(store, frames, n)
        if scenario.baseline == "raw-disk-on_close":
            os.fsync(fd)
        os.close(fd)
        total = time.perf_counter() - t0
        path.unlink()
    result = {"total_s": total, **_latency_stats(ns)}
    if scenario.baseline == "numpy-touched":
        result["fresh_total_s"] = fresh_total
    return result


def _pyramid_bytes_factor(scenario: Scenario) -> float:
    """Bytes of all levels of ``Pyramid()`` over those of the full resolution."""
    from ome_writers import Pyramid

    tile = (scenario.chunk_yx,) * 2 if scenario.chunk_yx else None
    shapes = Pyramid().level_frame_shapes(scenario.frame_shape, tile)
    return sum(y * x for y, x in shapes) / (shapes[0][0] * shapes[0][1])


def _stream_run(
    scenario: Scenario, frames: list[np.ndarray], workdir: Path
) -> dict[str, Any]:
    from ome_writers import (
        AcquisitionSettings,
        OmeTiffFormat,
        OmeZarrFormat,
        Pyramid,
        create_stream,
        dims_from_standard_axes,
    )

    ny, nx = scenario.frame_shape
    count = None if scenario.unbounded else scenario.frames
    root = str(workdir / "stream") if scenario.disk else ""
    chunks = (
        {"y": scenario.chunk_yx, "x": scenario.chunk_yx} if scenario.chunk_yx else {}
    )
    fmt: Any = scenario.format
    if fmt == "tifffile":
        fmt = OmeTiffFormat(fsync=scenario.fsync)
    elif fmt != "scratch":
        fmt = OmeZarrFormat(
            backend=fmt,
            fsync=scenario.fsync,
            pyramid=Pyramid() if scenario.pyramid else None,
        )
    settings = AcquisitionSettings(
        root_path=root,
        dimensions=dims_from_standard_axes(
            {"t": count, "y": ny, "x": nx}, chunk_shapes=chunks
        ),
        dtype="uint16",
        format=fmt,
        compression=scenario.compression,
    )
    cpu0 = os.times()
    t0 = time.perf_counter()
    stream = create_stream(settings)
    t1 = time.perf_counter()
    ns = _time_loop(lambda _i, f: stream.append(f), frames, scenario.frames)
    t2 = time.perf_counter()
    stream.close()
    t3 = time.perf_counter()
    cpu1 = os.times()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "create_s": t1 - t0,
        "append_s": t2 - t1,
        "close_s": t3 - t2,
        "total_s": t3 - t0,
        "cores_used": cpu_s / (t3 - t0),
        "output_bytes": _tree_bytes(Path(settings.output_path)) if root else 0,
        **_latency_stats(ns),
    }


#: the scratch root the convert scenarios read (written before the rounds)
_CONVERT_SOURCE = "convert-source"


def _write_convert_source(
    scenario: Scenario, frames: list[np.ndarray], workdir: Path
) -> None:
    """The scratch root to convert, on the device and in the page cache."""
    from ome_writers import (
        AcquisitionSettings,
        ScratchFormat,
        create_stream,
        dims_from_standard_axes,
    )

    ny, nx = scenario.frame_shape
    settings = AcquisitionSettings(
        root_path=str(workdir / _CONVERT_SOURCE),
        dimensions=dims_from_standard_axes({"t": scenario.frames, "y": ny, "x": nx}),
        dtype="uint16",
        format=ScratchFormat(fsync="on_close"),
    )
    with create_stream(settings) as stream:
        for i in range(scenario.frames):
            stream.append(frames[i % _RING])


def _convert_run(scenario: Scenario, workdir: Path) -> dict[str, Any]:
    """``convert`` of the scratch source; latency: time between frames."""
    from ome_writers import OmeTiffFormat, OmeZarrFormat, convert

    fmt: Any = (
        OmeTiffFormat(fsync=scenario.fsync)
        if scenario.format == "tifffile"
        else OmeZarrFormat(backend=scenario.format, fsync=scenario.fsync)
    )
    suffix = ".ome.tiff" if scenario.format == "tifffile" else ".ome.zarr"
    stamps: list[int] = []
    clock = time.perf_counter_ns
    cpu0 = os.times()
    t0 = clock()
    report = convert(
        workdir / _CONVERT_SOURCE,
        workdir / f"stream{suffix}",
        format=fmt,
        progress=lambda *_: stamps.append(clock()),
    )
    t3 = clock()
    cpu1 = os.times()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    total = (t3 - t0) / 1e9
    ns = np.diff(np.array([t0, *stamps]))
    return {
        # until the first frame is written (the destination created), frames,
        # and close after the last
        "create_s": (stamps[0] - t0) / 1e9,
        "append_s": (stamps[-1] - stamps[0]) / 1e9,
        "close_s": (t3 - stamps[-1]) / 1e9,
        "total_s": total,
        "cores_used": cpu_s / total,
        "output_bytes": _tree_bytes(Path(report.destination)),
        **_latency_stats(ns),
    }


_DISK_ROUNDS = 4
#: rounds of an ``s3-*`` scenario (the median is kept)
_S3_ROUNDS = 3


def _retire_outputs(workdir: Path) -> None:
    """Drop the outputs' dirty pages but keep their inodes until the run ends.

    Deleting thousands of chunk files right before the next round would make
    that round pay for it: ext4 without a journal (as here) does not reuse an
    inode deleted within the last ``dirty_expire_centisecs`` (30 s), and it
    finds that out by reading each such inode, on every file it creates. The
    next round's 3,200 chunk files then cost ~1 ms of kernel CPU each (against
    ~20 us on a disk without fresh deletions), a cost of the benchmark's own
    cleanup that the single-file baseline never sees. Truncating drops the
    pages as deleting did; the empty trees are deleted at the end of the run.
    """
    spent = workdir / "spent"
    spent.mkdir(exist_ok=True)
    for output in workdir.glob("stream*"):
        files = output.rglob("*") if output.is_dir() else [output]
        for path in files:
            if path.is_file():
                os.truncate(path, 0)
        output.rename(spent / f"{len(list(spent.iterdir()))}-{output.name}")


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median total time (all figures from one round)."""
    ordered = sorted(rounds, key=lambda r: r["total_s"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rounds_total_s"] = [r["total_s"] for r in rounds]
    return chosen


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _backend_name(scenario: Scenario) -> str:
    from ome_writers._formats import resolve_format_name

    fields = resolve_format_name(scenario.format)
    return str(fields.get("backend", fields["name"]))


def is_available(scenario: Scenario) -> bool:
    """True when the engine the scenario needs is installed."""
    import importlib.util

    from ome_writers._backends._registry import is_backend_available

    needs = []
    if scenario.baseline == "s3-put":  # the S3 client, and a server unless given
        needs = ["s3fs", "boto3"]
        if not os.environ.get("OME_WRITERS_BENCH_S3"):
            needs.append("moto.server")
    found = all(importlib.util.find_spec(n.split(".")[0]) for n in needs)
    return found and is_backend_available(_backend_name(scenario))


def run_scenario(
    scenario: Scenario, workdir: Path, *, warm: bool = True
) -> dict[str, Any]:
    """Measure one scenario and its baseline in this process.

    The emptied outputs stay in ``workdir``; the caller deletes it. ``warm``
    (disk scenarios) warms the machine's free memory before each timed run.
    """
    frames = _frames(scenario)
    warm_bytes = scenario.frames * scenario.frame_bytes * 2
    warm = warm and scenario.disk
    workdir.mkdir(parents=True, exist_ok=True)
    # Disk throughput on a shared machine swings with the page cache and the
    # device: alternate limit and stream (swapping which goes first) a few
    # times and keep the median round of each, truncating each output before
    # the next so that its dirty pages are dropped rather than written back.
    rounds = _DISK_ROUNDS if scenario.disk else 1
    if scenario.baseline == "s3-put":
        return _run_s3(scenario, frames)
    # an acquisition program imports its engine once, before acquiring: so
    # does this process, rather than timing the import in its first round
    from ome_writers._backends._base import get_backend_class

    get_backend_class(_backend_name(scenario))
    converting = scenario.baseline.startswith("copy")
    if converting:
        _write_convert_source(scenario, frames, workdir)
    if scenario.disk:
        # warm-up, not measured: the first writes of a process into page-cache
        # memory the machine has not used yet are several times slower
        _baseline(scenario, frames, workdir)
    if converting:
        # and a first conversion imports what a stream's create does not (the
        # OME model, the units registry: about 2 s once per process, whatever
        # the size of the dataset); the scenarios time the streaming
        _convert_run(scenario, workdir)
        _retire_outputs(workdir)
    baselines: list[dict[str, Any]] = []
    streams: list[dict[str, Any]] = []
    for round_index in range(rounds):
        for side in ("stream", "limit") if round_index % 2 else ("limit", "stream"):
            if warm:
                _warm_free_memory(warm_bytes)
            if scenario.disk:
                _settle_disk(frames, workdir)
            if side == "limit":
                baselines.append(_baseline(scenario, frames, workdir))
            else:
                streams.append(
                    _convert_run(scenario, workdir)
                    if converting
                    else _stream_run(scenario, frames, workdir)
                )
                _retire_outputs(workdir)
    for settled in (workdir / "settle").glob("*.raw"):
        os.truncate(settled, 0)  # their space back; the inodes go with the run's
    baseline = _median_round(baselines)
    stream = _median_round(streams)
    nbytes = scenario.frames * scenario.frame_bytes
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "warm_memory": warm,
        "description": scenario.description,
        "baseline_kind": scenario.baseline,
        "bytes": nbytes,
        "baseline": baseline,
        "stream": stream,
    }
    loop_s = stream["total_s"] if converting else stream["append_s"]
    base_s = baseline["total_s"]
    result["frames_per_s"] = scenario.frames / loop_s
    result["gb_per_s"] = nbytes / loop_s / 1e9
    if scenario.name == "overhead":
        result["ratio"] = stream["mean_us"] / baseline["mean_us"]
    elif scenario.name == "bandwidth":
        result["ratio"] = base_s / loop_s
    elif scenario.name == "disk":
        result["ratio"] = stream["total_s"] / base_s
    elif scenario.baseline.startswith(("raw-disk", "copy", "stream-no-pyramid")):
        result["ratio"] = base_s / stream["total_s"]
    else:
        result["ratio"] = stream["max_us"] / stream["median_us"]
    result["target"] = TARGETS.get(scenario.name)
    return result


def _run_s3(scenario: Scenario, frames: list[np.ndarray]) -> dict[str, Any]:
    """An ``s3-*`` scenario: rounds of PUTs and stream, alternating (one server)."""
    from ome_writers._backends._base import get_backend_class
    from ome_writers._cli._s3_bench import BenchS3, acquire_zarr_alone, stream_to_s3

    get_backend_class(_backend_name(scenario))
    s3 = BenchS3()
    baselines: list[dict[str, Any]] = []
    streams: list[dict[str, Any]] = []
    alone: list[dict[str, Any]] = []
    sides = ["limit", "stream"]
    if scenario.format == "acquire-zarr":
        sides.append("engine alone")
    try:
        s3.put_frames(frames, len(frames))  # warm-up: connections, server
        for round_index in range(_S3_ROUNDS):
            for side in sides[::-1] if round_index % 2 else sides:
                if side == "limit":
                    baselines.append(s3.put_frames(frames, scenario.frames))
                elif side == "stream":
                    streams.append(
                        stream_to_s3(s3, scenario.format, frames, scenario.frames)
                    )
                else:
                    alone.append(acquire_zarr_alone(s3, frames, scenario.frames))
        # a camera at half the rate the server takes plain PUTs: the writer's
        # buffer never fills, so no append should wait for the network
        put_rate = scenario.frames / _median_round(baselines)["total_s"]
        paced = stream_to_s3(
            s3, scenario.format, frames, scenario.frames, frames_per_s=put_rate / 2
        )
    finally:
        s3.close()
    baseline = _median_round(baselines)
    stream = _median_round(streams)
    extra: dict[str, Any] = {
        "paced_frames_per_s": put_rate / 2,
        "paced": paced,
    }
    if alone:
        extra["engine_alone"] = _median_round(alone)
        extra["ratios_to_engine_alone"] = [
            a["total_s"] / t["total_s"] for a, t in zip(alone, streams)
        ]
        extra["engine_alone_ratios"] = [
            b["total_s"] / a["total_s"] for b, a in zip(baselines, alone)
        ]
    nbytes = scenario.frames * scenario.frame_bytes
    return {
        "scenario": scenario.name,
        "warm_memory": False,
        "description": scenario.description,
        "baseline_kind": scenario.baseline,
        "bytes": nbytes,
        "baseline": baseline,
        "stream": stream,
        "frames_per_s": scenario.frames / stream["total_s"],
        "gb_per_s": nbytes / stream["total_s"] / 1e9,
        "ratio": baseline["total_s"] / stream["total_s"],
        "ratios": [b["total_s"] / t["total_s"] for b, t in zip(baselines, streams)],
        "target": TARGETS.get(scenario.name),
        **extra,
    }


def run_all(
    names: list[str], repeats: int, workdir: Path | None = None, *, warm: bool = True
) -> list[dict[str, Any]]:
    """Run each scenario ``repeats`` times, each time in a fresh process."""
    results = []
    base = Path(workdir or tempfile.mkdtemp(prefix="ome-writers-bench-"))
    for name in names:
        if not is_available(SCENARIOS[name]):
            print(f"skipping {name}: its backend is not installed", file=sys.stderr)
            continue
        for r in range(repeats):
            out = subprocess.run(
                [sys.executable, "-m", "ome_writers._cli._bench", "--one", name,
                 "--workdir", str(base / f"{name}-{r}"),
                 *([] if warm else ["--cold"])],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if out.returncode != 0:
                last = (out.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"scenario {name} failed: {last}", file=sys.stderr)
                continue
            results.append(json.loads(out.stdout))
    shutil.rmtree(base, ignore_errors=True)
    return results


def format_results(results: list[dict[str, Any]]) -> str:
    """A table of results, one row per run."""
    lines = [
        "| scenario | frames/s | GB/s | append median / p99 / max (us) "
        "| limit (s) | stream total (s) | cores | ratio | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["stream"]
        target = r["target"]
        target_text = f"{target[0]} {target[1]}" if target else ""
        lines.append(
            f"| {r['scenario']} | {r['frames_per_s']:,.0f} | {r['gb_per_s']:.2f} | "
            f"{s['median_us']:.1f} / {s['p99_us']:.1f} / {s['max_us']:.1f} | "
            f"{r['baseline']['total_s']:.3f} ({r['baseline_kind']}) | "
            f"{s['total_s']:.3f} | {s['cores_used']:.1f} | {r['ratio']:.2f} | "
            f"{target_text} |"
        )
    remote = [r for r in results if r["baseline_kind"] == "s3-put"]
    if remote:
        # append waits only when the writer's bounded buffer is full
        lines += [
            "",
            "| scenario | ratio per round | appends > 10 ms | time blocked (s) "
            "| paced at half the PUT rate: median / p99 / max append (ms), "
            "appends > 10 ms |",
            "|---|---|---|---|---|",
        ]
        for r in remote:
            s, p = r["stream"], r["paced"]
            rounds = ", ".join(f"{x:.2f}" for x in r["ratios"])
            lines.append(
                f"| {r['scenario']} | {rounds} | {s['appends_blocked']} | "
                f"{s['append_blocked_s']:.2f} | {p['median_us'] / 1e3:.1f} / "
                f"{p['p99_us'] / 1e3:.1f} / {p['max_us'] / 1e3:.1f}, "
                f"{p['appends_blocked']} |"
            )
        for r in remote:
            if "engine_alone" in r:
                alone = ", ".join(f"{x:.2f}" for x in r["engine_alone_ratios"])
                ours = ", ".join(f"{x:.2f}" for x in r["ratios_to_engine_alone"])
                lines.append(
                    f"\n{r['scenario']}: the engine's own API against plain PUTs "
                    f"{alone}; this package's stream against the engine's own "
                    f"API {ours} (per round)"
                )
    latency = [r for r in results if r["scenario"].startswith("unbounded")]
    if latency:
        # how a plain loop's slowest write compares on the same machine, in
        # the same run: stalls of the kernel or the host hit it as well
        lines += [
            "",
            "| scenario | limit | limit append median / p99 / max (us) "
            "| limit max / median |",
            "|---|---|---|---|",
        ]
        for r in latency:
            b = r["baseline"]
            lines.append(
                f"| {r['scenario']} | {r['baseline_kind']} | "
                f"{b['median_us']:.1f} / {b['p99_us']:.1f} / {b['max_us']:.1f} | "
                f"{b['max_us'] / b['median_us']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line of the benchmark runner (also ``ome-writers bench``)."""
    parser = argparse.ArgumentParser(prog="ome-writers bench", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", default=list(SCENARIOS),
        help=f"scenarios to run (default: all): {', '.join(SCENARIOS)}; "
        "'convert' runs every convert-* scenario",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario")
    parser.add_argument("--json", action="store_true", help="print JSON results")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help="directory for disk scenarios")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="do not warm free memory before each timed disk run (see above)",
    )
    args = parser.parse_args(argv)
    if args.one:
        result = run_scenario(SCENARIOS[args.one], args.workdir, warm=not args.cold)
        print(json.dumps(result))
        return 0
    args.scenarios = [
        name for s in args.scenarios for name in SCENARIO_GROUPS.get(s, [s])
    ]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {unknown!r}; choose from {list(SCENARIOS)!r}"
        )
    results = run_all(args.scenarios, args.repeats, args.workdir, warm=not args.cold)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
