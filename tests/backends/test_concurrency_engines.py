"""Every engine under concurrent use, and over many open/close cycles.

Four threads ``append`` and ``skip``, two threads read live (``view()``,
``arrays``, slices) and a fifth closes the stream while the writers are still
going. Every appended frame carries one unique value in all its pixels, so
afterwards the output, read by an independent reader (numpy memmap for
scratch, zarr-python or tensorstore for OME-Zarr, tifffile for OME-TIFF),
tells exactly which call each slot holds: every frame whose ``append``
returned is there exactly once, after the earlier frames of its own thread;
the frames never written, skipped or past the close read as zeros; the calls
after the close raise ``StreamClosedError`` and nothing else; and
``view()`` / ``arrays`` still read after the close and agree with the files.

The cycle test opens and closes many small streams per engine and checks that
open file descriptors, threads (Python's and the process's own, which is where
the engines' native threads show) and resident memory stop growing once the
engines' process-wide pools are warm.
"""

from __future__ import annotations

import gc
import json
import math
import os
import shutil
import threading
import time
import traceback
from dataclasses import dataclass
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

    from ome_writers import OMEStream

FRAME = (16, 16)
WRITERS = 4
CALLS_PER_WRITER = 60
TOTAL_CALLS = WRITERS * CALLS_PER_WRITER
SKIP_EVERY = 7  # every 7th call of a writer is a skip()
CLOSE_AFTER_FRAMES = TOTAL_CALLS // 3
#: how long a thread may take before the test calls it hung
JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Engine:
    """One format engine: how to point settings at it, how to read it back."""

    name: str
    root_name: str  # "" keeps a scratch stream in memory

    def settings(
        self, sizes: dict[str, int | None], tmp_path: Path
    ) -> AcquisitionSettings:
        """Settings writing ``sizes`` with this engine under ``tmp_path``."""
        fmt: Any
        if self.name == "scratch":
            fmt = "scratch"
        elif self.name == "tifffile":
            fmt = OmeTiffFormat()
        else:
            fmt = OmeZarrFormat(backend=self.name)
        return AcquisitionSettings(
            root_path=str(tmp_path / self.root_name) if self.root_name else "",
            dimensions=dims_from_standard_axes(sizes),
            dtype="uint16",
            format=fmt,
        )


ENGINES = {
    "scratch-memory": Engine("scratch", ""),
    "scratch-disk": Engine("scratch", "root"),
    "tensorstore": Engine("tensorstore", "out.ome.zarr"),
    "zarr-python": Engine("zarr-python", "out.ome.zarr"),
    "acquire-zarr": Engine("acquire-zarr", "out.ome.zarr"),
    "tifffile": Engine("tifffile", "out.ome.tiff"),
}

#: acquisition order; the unbounded or bounded first axis is t
LAYOUTS: dict[str, dict[str, int | None]] = {
    "bounded": {"t": TOTAL_CALLS, "y": FRAME[0], "x": FRAME[1]},
    "unbounded": {"t": None, "y": FRAME[0], "x": FRAME[1]},
    "bounded-2pos": {"t": TOTAL_CALLS // 2, "p": 2, "y": FRAME[0], "x": FRAME[1]},
    "unbounded-2pos-2c": {"t": None, "p": 2, "c": 2, "y": FRAME[0], "x": FRAME[1]},
}

CASES = [
    pytest.param(engine, layout, id=f"{engine}-{layout}")
    for engine in ENGINES
    for layout in LAYOUTS
]


# ------------------------------------------------------------ independent reads


def read_positions(
    engine: Engine,
    stream: OMEStream,
    read_scratch_root: Callable[[Path], list[np.ndarray]],
) -> list[np.ndarray]:
    """Each position's pixels in storage order, read without ``ome_writers``.

    Scratch in memory has no files: its arrays are the only copy.
    """
    out = stream.settings.output_path
    num_positions = len(stream.arrays)
    if engine.name == "scratch":
        if not out:
            return [np.array(a) for a in stream.arrays]
        return [np.array(a) for a in read_scratch_root(Path(out))]
    if engine.name == "tifffile":
        return read_tiff(Path(out), num_positions)
    if num_positions == 1:
        paths = ["0"]
    else:
        series = json.loads(Path(out, "OME", "zarr.json").read_text())
        paths = [f"{name}/0" for name in series["attributes"]["ome"]["series"]]
    if engine.name == "zarr-python":
        import tensorstore as ts

        return [
            ts.open(
                {
                    "driver": "zarr3",
                    "kvstore": {"driver": "file", "path": f"{out}/{p}"},
                },
                open=True,
            )
            .result()
            .read()
            .result()
            for p in paths
        ]
    import zarr

    return [np.asarray(zarr.open_array(f"{out}/{p}", mode="r")[...]) for p in paths]


def read_tiff(out: Path, num_positions: int) -> list[np.ndarray]:
    """OME-TIFF positions: one file's series, or each file's own pages.

    tifffile reads the other files of a folder wrongly when they hold few
    pages, so each position is read page by page from its own file (pages are
    frames in storage order) and padded with zeros to its series' shape.
    """
    import tifffile

    if num_positions == 1:
        with tifffile.TiffFile(out) as tif:
            return [np.asarray(tif.series[0].asarray())]
    files = sorted(out.glob("*.tif*"))
    assert len(files) == num_positions, files
    positions = []
    for p, path in enumerate(files):
        with tifffile.TiffFile(path) as tif:
            shape = tif.series[p].shape
            pages = [page.asarray() for page in tif.pages]
        data = np.zeros(shape, np.uint16).reshape(-1, *FRAME)
        assert len(pages) <= len(data), (path, len(pages), shape)
        if pages:
            data[: len(pages)] = np.stack(pages)
        positions.append(data.reshape(shape))
    return positions


def acquisition_slots(
    positions: list[np.ndarray], sizes: dict[str, int | None]
) -> np.ndarray:
    """(slot, y, x) in acquisition order from storage-order position arrays.

    The layouts here put ``p`` right after ``t`` and keep the other axes in
    storage order, so stacking the positions on axis 1 is acquisition order.
    """
    if "p" in sizes:
        stacked = np.stack([np.asarray(a) for a in positions], axis=1)
    else:
        (stacked,) = (np.asarray(a) for a in positions)
    return stacked.reshape(-1, *FRAME)


# ---------------------------------------------------------------------- threads


class Run:
    """What the threads of one run did, recorded as they did it."""

    def __init__(self) -> None:
        self.start = threading.Event()
        self.closing = threading.Event()  # set just before close() is called
        self.closed = threading.Event()  # set once close() has returned
        self.stop = threading.Event()
        self.appended: list[list[int]] = [[] for _ in range(WRITERS)]
        self.skips = [0] * WRITERS
        self.refused = [0] * WRITERS  # calls that raised StreamClosedError
        self.errors: list[tuple[str, BaseException]] = []
        self.reads_after_close = [0, 0]


def frame_value(worker: int, call: int) -> int:
    """The unique, nonzero value of one writer's call."""
    return worker * 1000 + call + 1


ALL_VALUES = frozenset(
    frame_value(w, i) for w in range(WRITERS) for i in range(CALLS_PER_WRITER)
)


def write(stream: OMEStream, run: Run, worker: int) -> None:
    run.start.wait()
    try:
        for i in range(CALLS_PER_WRITER):
            try:
                if i % SKIP_EVERY == SKIP_EVERY - 1:
                    stream.skip()
                    run.skips[worker] += 1
                else:
                    value = frame_value(worker, i)
                    frame = np.full(FRAME, value, np.uint16)
                    # alternate between the plain and the metadata path
                    metadata = {"v": value} if i % 2 else None
                    stream.append(frame, frame_metadata=metadata)
                    run.appended[worker].append(value)
            except StreamClosedError:
                run.refused[worker] += 1
                if run.refused[worker] >= 3:  # a few calls after close, all refused
                    return
            time.sleep(0)  # let the other threads interleave
    except BaseException as exc:
        run.errors.append((f"writer {worker}", exc))


def check_live(
    data: np.ndarray, ndim: int, frame_shape: tuple[int, ...] = FRAME
) -> None:
    """A live read: its dtype and dimensions, only values ever written."""
    assert data.dtype == np.uint16
    assert data.ndim == ndim, data.shape
    assert data.shape[ndim - len(frame_shape) :] == frame_shape, data.shape
    values = np.unique(data)
    unknown = set(values[values != 0].tolist()) - ALL_VALUES
    assert not unknown, f"a live read returned values never written: {unknown}"


def read(stream: OMEStream, run: Run, reader: int) -> None:
    run.start.wait()
    try:
        while not run.stop.is_set() and run.reads_after_close[reader] < 3:
            after_close = run.closed.is_set()
            if run.closing.is_set() and not after_close:
                read_small(stream)  # many reads inside close()
                continue
            for array in stream.arrays:
                check_live(np.asarray(array[...]), array.ndim)
                if len(array):
                    check_live(np.asarray(array[-1]), array.ndim - 1)
            view = stream.view()
            check_live(np.asarray(view[...]), view.ndim)
            if len(view):
                middle = np.asarray(view[len(view) // 2, ..., 3:9, :])
                check_live(middle, view.ndim - 1, (6, FRAME[1]))
                check_live(np.asarray(view[-1:, ..., 5, 2:4]), view.ndim - 1, (2,))
            if after_close:
                run.reads_after_close[reader] += 1
            time.sleep(0)
    except BaseException as exc:
        run.errors.append((f"reader {reader}", exc))


def read_small(stream: OMEStream) -> None:
    """Quick reads of the last frame, so that some fall inside ``close()``."""
    view = stream.view()
    if len(view):
        check_live(np.asarray(view[-1]), view.ndim - 1)
    array = stream.arrays[-1]
    if len(array):
        check_live(np.asarray(array[-1:]), array.ndim)
    time.sleep(0)


def close_midway(stream: OMEStream, run: Run) -> None:
    run.start.wait()
    try:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while (
            stream.frames_written < CLOSE_AFTER_FRAMES and time.monotonic() < deadline
        ):
            time.sleep(0.0005)
        run.closing.set()
        stream.close()
    except BaseException as exc:
        run.errors.append(("closer", exc))
    finally:
        run.closed.set()


def join_all(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {JOIN_TIMEOUT_S} s: {hung}"


# ------------------------------------------------------------------------ tests


@pytest.mark.parametrize(("engine_id", "layout"), CASES)
def test_append_read_and_close_from_threads(
    engine_id: str,
    layout: str,
    tmp_path: Path,
    read_scratch_root: Callable[[Path], list[np.ndarray]],
) -> None:
    engine = ENGINES[engine_id]
    sizes = LAYOUTS[layout]
    stream = create_stream(engine.settings(sizes, tmp_path))
    run = Run()
    threads = [
        threading.Thread(target=write, args=(stream, run, w), name=f"writer-{w}")
        for w in range(WRITERS)
    ]
    threads += [
        threading.Thread(target=read, args=(stream, run, r), name=f"reader-{r}")
        for r in range(2)
    ]
    threads.append(
        threading.Thread(target=close_midway, args=(stream, run), name="closer")
    )
    for thread in threads:
        thread.daemon = True  # a hung thread must not hang the test session
        thread.start()
    try:
        run.start.set()
        join_all(threads)
    finally:
        run.stop.set()
        run.start.set()
        stream.close()

    failures = [
        f"{who}: {''.join(traceback.format_exception(exc))}" for who, exc in run.errors
    ]
    assert not failures, "\n".join(failures)
    assert stream.closed
    assert any(run.refused), "close() came after every writer had finished"
    assert min(run.reads_after_close) >= 3, "readers stopped before reading closed"

    # calls after close: the public error, nothing written, for every call kind
    n = stream.frames_written
    with pytest.raises(StreamClosedError):
        stream.append(np.ones(FRAME, np.uint16))
    with pytest.raises(StreamClosedError):
        stream.append(np.ones(FRAME, np.uint16), frame_metadata={"v": 1})
    with pytest.raises(StreamClosedError):
        stream.skip(frames=2)
    assert stream.frames_written == n

    appended = [v for values in run.appended for v in values]
    assert n == len(appended) + sum(run.skips)

    positions = read_positions(engine, stream, read_scratch_root)
    slots = acquisition_slots(positions, sizes)
    per_step = len(slots) // positions[0].shape[0]
    if sizes["t"] is None:
        assert len(slots) == -(-n // per_step) * per_step, "unbounded extent"
    else:
        assert len(slots) == math.prod(int(s or 0) for s in list(sizes.values())[:-2])
    first = slots[:, 0, 0]
    assert (slots == first[:, None, None]).all(), "a slot holds a mixed frame"
    assert not first[n:].any(), "a slot past the last call holds data"
    written = first[:n]
    stored = written[written != 0].tolist()
    assert len(stored) == len(set(stored)), "a frame was stored twice"
    assert sorted(stored) == sorted(appended), "frames lost or invented"
    assert int((written == 0).sum()) == sum(run.skips)
    slot_of = {v: i for i, v in enumerate(first.tolist()) if v}
    for values in run.appended:  # each thread's frames in the order of its calls
        places = [slot_of[v] for v in values]
        assert places == sorted(places)

    # the stream's own readers, after close, agree with the files
    view = np.asarray(stream.view()).reshape(-1, *FRAME)
    np.testing.assert_array_equal(view, slots[: len(view)])
    assert len(view) >= n
    declared = np.asarray(stream.view(dynamic_shape=False)).reshape(-1, *FRAME)
    np.testing.assert_array_equal(declared, slots[: len(declared)])
    for array, independent in zip(stream.arrays, positions, strict=True):
        np.testing.assert_array_equal(np.asarray(array), independent)


# ------------------------------------------------------------ open/close cycles

WARMUP_CYCLES = 8
CYCLES = 40
#: engines keep process-wide pools that may still add a thread after warm-up
THREAD_SLACK = 2
RSS_SLACK_BYTES = 24 << 20
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    """The process's threads, but for tensorstore's shared pool.

    That pool (``ts_pool_worker``) serves the whole process and adds workers
    on demand for a long while, up to its own bound, whoever uses it.
    """
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{task}/comm").read_text().strip()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        count += name != "ts_pool_worker"
    return count


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_BYTES


def cycle(engine: Engine, tmp_path: Path, i: int) -> None:
    """Create a small stream, write, read live, close, read closed, delete."""
    folder = tmp_path / f"cycle{i}"
    settings = engine.settings({"t": None, "c": 2, "y": 16, "x": 16}, folder)
    stream = create_stream(settings)
    for k in range(5):
        stream.append(np.full(FRAME, k + 1, np.uint16), frame_metadata={"k": k})
    stream.skip()
    live = np.asarray(stream.view())
    stream.close()
    closed = np.asarray(stream.view())
    np.testing.assert_array_equal(live, closed)
    assert closed.shape == (3, 2, *FRAME)
    del stream, live, closed
    shutil.rmtree(folder, ignore_errors=True)


def counts() -> tuple[int, int, int]:
    return open_fds(), threading.active_count(), os_threads()


def steady_counts() -> tuple[int, int, int]:
    """The counts once they stay the same for 50 ms (at most about a second)."""
    before, now = None, counts()
    for _ in range(20):
        if now == before:
            break
        time.sleep(0.05)
        before, now = now, counts()
    return now


def settled_counts(limit: tuple[int, int, int]) -> tuple[int, int, int]:
    """The counts once they are within ``limit``, or after a few seconds."""
    deadline = time.monotonic() + 5.0
    now = counts()
    while (
        any(c > m for c, m in zip(now, limit, strict=True))
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
        now = counts()
    return now


@pytest.mark.parametrize("engine_id", list(ENGINES))
def test_open_close_cycles_do_not_leak(engine_id: str, tmp_path: Path) -> None:
    engine = ENGINES[engine_id]
    for i in range(WARMUP_CYCLES):
        cycle(engine, tmp_path, i)
    gc.collect()
    fds, threads, tasks = steady_counts()
    rss = rss_bytes()
    for i in range(WARMUP_CYCLES, WARMUP_CYCLES + CYCLES):
        cycle(engine, tmp_path, i)
    gc.collect()
    limit = (fds, threads + THREAD_SLACK, tasks + THREAD_SLACK)
    after = settled_counts(limit)
    assert after[0] <= fds, f"open file descriptors grew from {fds} to {after[0]}"
    assert after[1] <= limit[1], [t.name for t in threading.enumerate()]
    assert after[2] <= limit[2], f"process threads grew from {tasks} to {after[2]}"
    grown = rss_bytes() - rss
    assert grown < RSS_SLACK_BYTES, f"resident memory grew {grown >> 20} MiB"
