"""Faults of the scratch format: bad roots, a full disk, a memory limit, fsync.

Real faults where they can be made here: a size-limited tmpfs for a full disk
(we run as root), a child process for peak resident memory. Injection is used
only to choose *where* a write fails (partial pixel write, failed metadata
line), which a real filesystem does not let a test pick.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from _crash_child import expected_frame
from _frame_index import acq_index, locate
from _small_fs import SmallFilesystem

from ome_writers import (
    AcquisitionSettings,
    NotADatasetError,
    OMEStream,
    OmeWritersError,
    ScratchFormat,
    WriteError,
    create_stream,
    dims_from_standard_axes,
    open_scratch,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CHILD = Path(__file__).with_name("_crash_child.py")
FRAME = (32, 32)
FRAME_BYTES = math.prod(FRAME) * 2


# ----------------------------------------------------------------- helpers


def make_settings(sizes: dict[str, int | None], **kwargs: Any) -> AcquisitionSettings:
    kwargs.setdefault("format", "scratch")
    return AcquisitionSettings(
        dimensions=dims_from_standard_axes(sizes), dtype="uint16", **kwargs
    )


def read_with_memmap(root: Path) -> tuple[dict[str, Any], list[np.memmap]]:
    """The documented recipe: shapes and dtype from manifest.json, raw pos_<p>.dat."""
    manifest = json.loads((root / "manifest.json").read_text())
    arrays = [
        np.memmap(
            root / f"pos_{p}.dat", dtype=manifest["dtype"], mode="r", shape=tuple(s)
        )
        for p, s in enumerate(manifest["position_shapes"])
    ]
    return manifest, arrays


TC_UNBOUNDED: dict[str, int | None] = {"t": None, "c": 2, "y": 32, "x": 32}


def started_stream(
    root: Path, frames: int, *, with_metadata: bool = False
) -> OMEStream:
    """A (t unbounded, c) stream at ``root`` with frames 0 to ``frames - 1``."""
    stream = create_stream(make_settings(TC_UNBOUNDED, root_path=root))
    for n in range(frames):
        metadata = {"n": n} if with_metadata else None
        stream.append(expected_frame(n, FRAME), frame_metadata=metadata)
    return stream


def check_frames(
    root: Path, sizes: dict[str, int | None], frames: dict[int, np.ndarray]
) -> None:
    """Both independent readers show ``frames`` (frame number -> pixels)."""
    ds = open_scratch(root)
    _, raw = read_with_memmap(root)
    for n, pixels in frames.items():
        position, index = locate(sizes, n)
        np.testing.assert_array_equal(ds.arrays[position][index], pixels, f"{n}")
        np.testing.assert_array_equal(raw[position][index], pixels, f"{n}")


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.iterdir()}


@pytest.fixture
def written_root(tmp_path: Path) -> Path:
    """A cleanly closed two-position root with metadata on every frame."""
    root = tmp_path / "scratch"
    settings = make_settings({"t": None, "p": 2, "y": 8, "x": 8}, root_path=root)
    with create_stream(settings) as stream:
        for n in range(6):
            stream.append(expected_frame(n, (8, 8)), frame_metadata={"n": n})
    return root


# ------------------------------------------------------------ open_scratch


def _remove(name: str) -> Callable[[Path], Path]:
    def mutate(root: Path) -> Path:
        (root / name).unlink()
        return root

    return mutate


def _write(name: str, text: str) -> Callable[[Path], Path]:
    def mutate(root: Path) -> Path:
        (root / name).write_text(text)
        return root

    return mutate


def _edit_manifest(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], Path]:
    def mutate(root: Path) -> Path:
        manifest = json.loads((root / "manifest.json").read_text())
        edit(manifest)
        (root / "manifest.json").write_text(json.dumps(manifest))
        return root

    return mutate


def _truncate(root: Path) -> Path:
    path = root / "pos_1.dat"
    os.truncate(path, path.stat().st_size - 100)
    return root


def _a_file(root: Path) -> Path:
    return root / "pos_0.dat"


def _missing(root: Path) -> Path:
    return root / "no-such-root"


BAD_ROOTS = [
    pytest.param(_remove("manifest.json"), "has no manifest.json", id="no-manifest"),
    pytest.param(
        _write("manifest.json", '{"position_shapes": [[2, 8, 8'),
        "not valid JSON",
        id="corrupt-manifest",
    ),
    pytest.param(
        _edit_manifest(lambda m: m.pop("ome_writers")),
        "no 'ome_writers' marker",
        id="manifest-without-marker",
    ),
    pytest.param(
        _edit_manifest(lambda m: m.update(ome_writers={"kind": "zarr"})),
        "no 'ome_writers' marker",
        id="manifest-of-another-kind",
    ),
    pytest.param(_write("manifest.json", "[1, 2]"), "marker", id="manifest-not-object"),
    pytest.param(
        _edit_manifest(lambda m: m.pop("position_shapes")),
        "position_shapes",
        id="manifest-without-shapes",
    ),
    pytest.param(_truncate, "pos_1.dat' is truncated", id="truncated-dat"),
    pytest.param(_remove("pos_0.dat"), "pos_0.dat' is missing", id="missing-dat"),
    pytest.param(_a_file, "is not a directory", id="path-is-a-file"),
    pytest.param(_missing, "is not a directory", id="path-does-not-exist"),
]


@pytest.mark.parametrize(("mutate", "message"), BAD_ROOTS)
def test_open_scratch_refuses_bad_roots(
    written_root: Path, mutate: Callable[[Path], Path], message: str
) -> None:
    target = mutate(written_root)
    before = snapshot(written_root)
    with pytest.raises(NotADatasetError, match=re.escape(message)) as info:
        open_scratch(target)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, OmeWritersError)
    assert snapshot(written_root) == before


def test_open_scratch_warns_on_truncated_last_metadata_line(written_root: Path) -> None:
    path = written_root / "frame_metadata.jsonl"
    text = path.read_text()
    path.write_text(text[: text.rindex('"n"')])
    before = snapshot(written_root)
    with pytest.warns(UserWarning, match="truncated last line") as record:
        ds = open_scratch(written_root)
    assert len(record) == 1
    assert "frame_metadata.jsonl" in str(record[0].message)
    assert [r["n"] for r in ds.frame_metadata] == list(range(5))
    assert ds.frames_written == 6
    del ds
    assert snapshot(written_root) == before


def test_open_scratch_refuses_corrupt_metadata_in_the_middle(
    written_root: Path,
) -> None:
    path = written_root / "frame_metadata.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:10] + "\n"
    path.write_text("".join(lines))
    with pytest.raises(NotADatasetError, match=r"line 3 of .*frame_metadata\.jsonl"):
        open_scratch(written_root)


def test_open_scratch_reads_what_the_files_hold_when_the_count_ran_ahead(
    tmp_path: Path,
) -> None:
    """After a power loss the counter can reach the disk before a file's growth."""
    sizes = TC_UNBOUNDED
    root = tmp_path / "scratch"
    stream = started_stream(root, 5)
    (root / "progress.bin").write_bytes(struct.pack("<Q", 40))
    # the files hold the 3 steps of data and those they are kept ahead by
    step_bytes = 2 * 32 * 32 * 2
    held = (root / "pos_0.dat").stat().st_size // step_bytes
    assert 3 < held < 20
    match = rf"counts 40 frames but .* hold only {held} steps"
    with pytest.warns(UserWarning, match=match):
        ds = open_scratch(root)
    assert ds.frames_written == 2 * held
    assert ds.arrays[0].shape == (held, 2, 32, 32)
    assert not ds.arrays[0][3:].any()
    for n in range(5):
        _, index = locate(sizes, n)
        np.testing.assert_array_equal(ds.arrays[0][index], expected_frame(n, FRAME))
    del ds
    stream.close()


# --------------------------------------------------------------- disk full


SMALL_FS_BYTES = 256 * 1024


@pytest.fixture
def small_fs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fs = SmallFilesystem(
        tmp_path / "small", monkeypatch, SMALL_FS_BYTES, ballast_bytes=32 * 1024
    )
    try:
        yield fs
    finally:
        fs.unmount()


def test_small_filesystem_is_a_real_tmpfs(small_fs: SmallFilesystem) -> None:
    """The disk-full tests below run against a real full filesystem here."""
    assert small_fs.is_tmpfs
    assert os.statvfs(small_fs.path).f_blocks * os.statvfs(small_fs.path).f_frsize <= (
        SMALL_FS_BYTES
    )


def fill_until_error(
    stream: Any, metadata: bool, limit: int = 100_000
) -> tuple[int, OSError]:
    for n in range(limit):
        try:
            stream.append(
                expected_frame(n, FRAME), frame_metadata={"n": n} if metadata else None
            )
        except OSError as exc:
            return n, exc
    pytest.fail(f"{limit} frames fit on a {SMALL_FS_BYTES} byte disk")


DISK_FULL = [
    pytest.param({"t": 400, "y": 32, "x": 32}, id="tyx-bounded"),
    pytest.param({"t": 200, "p": 2, "y": 32, "x": 32}, id="tpyx-bounded"),
    pytest.param({"t": 100, "p": 2, "c": 2, "y": 32, "x": 32}, id="tpcyx-bounded"),
]


@pytest.mark.parametrize("sizes", DISK_FULL)
def test_disk_full_append_names_the_file_and_keeps_earlier_frames(
    small_fs: SmallFilesystem, sizes: dict[str, int | None]
) -> None:
    root = small_fs.path / "scratch"
    with pytest.warns(UserWarning, match=r"the acquisition needs [\d,]+ bytes but"):
        stream = create_stream(make_settings(sizes, root_path=root))
    failed, exc = fill_until_error(stream, metadata=False)
    assert failed > 0
    assert isinstance(exc, WriteError)
    assert exc.errno == errno.ENOSPC
    position, _ = locate(sizes, failed)
    data_file = str(root / f"pos_{position}.dat")
    assert data_file in str(exc)
    assert exc.filename == data_file
    assert f"frame {failed}" in str(exc)
    assert stream.frames_written == failed
    # readable while the stream is still open (as after a crash) ...
    written = {n: expected_frame(n, FRAME) for n in range(failed)}
    check_frames(root, sizes, written)
    assert open_scratch(root).frames_written == failed
    # ... and after close() with the disk still full
    # close() may fail to write the final manifest (no room for its temporary
    # file); it must say so and leave the earlier manifest readable
    close_error: WriteError | None = None
    try:
        stream.close()
    except WriteError as caught:
        close_error = caught
    assert stream.closed
    if close_error is not None:
        assert str(root / "manifest.json") in str(close_error)
    assert open_scratch(root).complete is (close_error is None)
    ds = open_scratch(root)
    assert ds.frames_written == failed
    del ds
    check_frames(root, sizes, written)


DISK_FULL_RESUME = [
    pytest.param({"t": 400, "y": 32, "x": 32}, False, id="tyx-bounded"),
    pytest.param({"t": None, "y": 32, "x": 32}, True, id="tyx-unbounded-metadata"),
    pytest.param(
        {"t": None, "p": 2, "c": 2, "y": 32, "x": 32}, True, id="tpcyx-unbounded-meta"
    ),
    pytest.param(
        {"t": None, "p": 3, "y": 32, "x": 32}, False, id="tpyx-unbounded-no-meta"
    ),
]


@pytest.mark.parametrize(("sizes", "metadata"), DISK_FULL_RESUME)
def test_disk_full_then_space_freed_resumes_at_the_same_slot(
    small_fs: SmallFilesystem, sizes: dict[str, int | None], metadata: bool
) -> None:
    root = small_fs.path / "scratch"
    bounded = sizes["t"] is not None  # its files are allocated at create
    room = pytest.warns(UserWarning, match="bytes free")
    with room if bounded else contextlib.nullcontext():
        stream = create_stream(make_settings(sizes, root_path=root))
    failed, exc = fill_until_error(stream, metadata=metadata)
    assert isinstance(exc, WriteError)
    assert exc.errno == errno.ENOSPC
    assert re.search(
        re.escape(str(root)) + r"/(pos_\d+\.dat|manifest\.json|frame_metadata\.jsonl)",
        str(exc),
    ), str(exc)
    assert stream.frames_written == failed

    small_fs.free_ballast()
    more = 3
    for n in range(failed, failed + more):
        stream.append(
            expected_frame(n, FRAME), frame_metadata={"n": n} if metadata else None
        )
    assert stream.frames_written == failed + more
    expected = {n: expected_frame(n, FRAME) for n in range(failed + more)}
    for n, pixels in expected.items():
        np.testing.assert_array_equal(stream.view()[acq_index(sizes, n)], pixels)
    # as if the writer were killed now: the manifest covers every frame
    ds = open_scratch(root)
    assert ds.frames_written == failed + more
    for n, pixels in expected.items():
        position, index = locate(sizes, n)
        assert index[0] < ds.arrays[position].shape[0], f"frame {n} past manifest"
        np.testing.assert_array_equal(ds.arrays[position][index], pixels)
    del ds

    stream.close()
    ds = open_scratch(root)
    assert ds.complete is True
    assert ds.frames_written == failed + more
    if metadata:  # one record per frame: the failed attempt left none behind
        assert [r["n"] for r in ds.frame_metadata] == list(range(failed + more))
    else:
        assert ds.frame_metadata == []
    del ds
    check_frames(root, sizes, expected)


class FailingWrite:
    """Make the ``fail_on``-th pixel write fail with ENOSPC after ``partial`` bytes."""

    def __init__(self, fail_on: int, partial: int) -> None:
        self.calls = 0
        self.fail_on = fail_on
        self.partial = partial
        self.real = os.pwrite

    def __call__(self, fd: int, data: Any, offset: int) -> int:
        self.calls += 1
        if self.calls == self.fail_on and self.partial:
            return self.real(fd, memoryview(data).cast("B")[: self.partial], offset)
        if self.fail_on <= self.calls <= self.fail_on + 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real(fd, data, offset)


SLOT_CASES = [
    pytest.param("retry", 0, id="retry-after-failure"),
    pytest.param("retry", FRAME_BYTES // 2, id="retry-after-partial-write"),
    pytest.param("skip", FRAME_BYTES // 2, id="skip-after-partial-write"),
    pytest.param("close", FRAME_BYTES // 2, id="close-after-partial-write"),
]


@pytest.mark.parametrize(("then", "partial"), SLOT_CASES)
def test_failed_pixel_write_does_not_use_a_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str, partial: int
) -> None:
    sizes: dict[str, int | None] = {"t": None, "p": 2, "y": 32, "x": 32}
    root = tmp_path / "scratch"
    stream = create_stream(make_settings(sizes, root_path=root))
    for n in range(5):
        stream.append(expected_frame(n, FRAME), frame_metadata={"n": n})
    # frame 5 goes to position 1; two failing calls cover a partial write
    failing = FailingWrite(fail_on=1, partial=partial)
    # a real disk cannot be made to fail (or half-write) exactly one pwrite
    monkeypatch.setattr(os, "pwrite", failing)
    with pytest.raises(WriteError, match=re.escape(str(root / "pos_1.dat"))):
        stream.append(expected_frame(5, FRAME), frame_metadata={"n": 5})
    monkeypatch.setattr(os, "pwrite", failing.real)
    assert stream.frames_written == 5

    expected = {n: expected_frame(n, FRAME) for n in range(5)}
    if then == "close":
        # the half-written slot lies inside the step begun: it reads as zeros
        stream.close()
        expected[5] = np.zeros(FRAME, np.uint16)
        check_frames(root, sizes, expected)
        assert open_scratch(root).frames_written == 5
        return
    if then == "retry":
        stream.append(expected_frame(5, FRAME), frame_metadata={"n": 5})
        expected[5] = expected_frame(5, FRAME)
    else:
        stream.skip()
        expected[5] = np.zeros(FRAME, np.uint16)
    stream.append(expected_frame(6, FRAME), frame_metadata={"n": 6})
    expected[6] = expected_frame(6, FRAME)
    assert stream.frames_written == 7
    for n, pixels in expected.items():
        np.testing.assert_array_equal(stream.view()[acq_index(sizes, n)], pixels)
    stream.close()
    check_frames(root, sizes, expected)
    recorded = [r["n"] for r in open_scratch(root).frame_metadata]
    assert recorded == (
        [0, 1, 2, 3, 4, 5, 6] if then == "retry" else [0, 1, 2, 3, 4, 6]
    )


@pytest.mark.parametrize("then", ["retry", "skip"])
def test_failed_metadata_write_does_not_use_a_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    sizes = TC_UNBOUNDED
    root = tmp_path / "scratch"
    stream = started_stream(root, 3, with_metadata=True)
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if bytes(data[:16]) == b'{"frame_number":':
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_write(fd, data)

    # a real disk cannot be made to fail only the metadata record's write
    monkeypatch.setattr(os, "write", write)
    with pytest.raises(WriteError, match=re.escape(str(root / "frame_metadata.jsonl"))):
        stream.append(expected_frame(3, FRAME), frame_metadata={"n": 3})
    monkeypatch.setattr(os, "write", real_write)
    assert stream.frames_written == 3
    expected = {n: expected_frame(n, FRAME) for n in range(3)}
    if then == "retry":
        stream.append(expected_frame(3, FRAME), frame_metadata={"n": 3})
        expected[3] = expected_frame(3, FRAME)
    else:
        stream.skip()
        expected[3] = np.zeros(FRAME, np.uint16)
    stream.close()
    check_frames(root, sizes, expected)
    recorded = [r["n"] for r in open_scratch(root).frame_metadata]
    assert recorded == ([0, 1, 2, 3] if then == "retry" else [0, 1, 2])


class ManifestReplace:
    """``os.replace`` of the manifest that fails or blocks; other renames pass.

    A real disk cannot be made to stall or fail only the rename of one file.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.called = threading.Event()
        self.release = threading.Event()
        self.real = os.replace

    def __call__(self, src: Any, dst: Any) -> None:
        if Path(dst).name == "manifest.json" and self.mode != "pass":
            self.called.set()
            if self.mode == "fail":
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            self.release.wait()
        self.real(src, dst)


T_UNBOUNDED: dict[str, int | None] = {"t": None, "y": 32, "x": 32}


def failing_manifest_write(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, ManifestReplace]:
    """A t-only stream whose files' last growth's manifest write failed."""
    stream = create_stream(make_settings(T_UNBOUNDED, root_path=root))
    for n in range(3):
        stream.append(expected_frame(n, FRAME))
    replace = ManifestReplace("fail")
    monkeypatch.setattr(os, "replace", replace)
    deadline = time.monotonic() + 10
    while not replace.called.wait(0.001):  # until the files grow (their thread)
        assert time.monotonic() < deadline
        stream.append(expected_frame(stream.frames_written, FRAME))
    return stream, replace


def test_failed_background_manifest_write_surfaces_at_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = T_UNBOUNDED
    root = tmp_path / "scratch"
    stream, replace = failing_manifest_write(root, monkeypatch)
    error: WriteError | None = None
    for _ in range(1000):  # until the writer thread has recorded the failure
        try:
            stream.append(expected_frame(stream.frames_written, FRAME))
        except WriteError as exc:
            error = exc
            break
        time.sleep(0.01)
    assert error is not None
    assert error.filename == str(root / "manifest.json")
    assert error.errno == errno.EIO
    failed_at = stream.frames_written
    replace.mode = "pass"
    for n in range(failed_at, failed_at + 2):
        stream.append(expected_frame(n, FRAME))
    stream.close()
    expected = {n: expected_frame(n, FRAME) for n in range(failed_at + 2)}
    check_frames(root, sizes, expected)
    assert open_scratch(root).frames_written == failed_at + 2


def test_background_manifest_failure_that_has_passed_fails_no_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest write that failed once (the disk was full, and is no longer)
    is rewritten before the next frame, which then goes through."""
    sizes = T_UNBOUNDED
    root = tmp_path / "scratch"
    stream, replace = failing_manifest_write(root, monkeypatch)
    # private, only to wait until the manifest's thread has recorded the failure
    manifest_writer = stream._backend._manifest
    deadline = time.monotonic() + 10
    while manifest_writer.error is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    replace.mode = "pass"
    n = stream.frames_written
    stream.append(expected_frame(n, FRAME))  # no error: the fault has passed
    manifest, _ = read_with_memmap(root)
    assert manifest["position_shapes"][0][0] >= n + 1  # rewritten before frame n
    stream.close()
    check_frames(root, sizes, {v: expected_frame(v, FRAME) for v in range(n + 1)})


def test_failed_global_metadata_write_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "scratch"
    stream = create_stream(make_settings({"t": 2, "y": 32, "x": 32}, root_path=root))
    stream.set_global_metadata("lab", {"run": 1})
    monkeypatch.setattr(os, "replace", ManifestReplace("fail"))
    with pytest.raises(WriteError, match=re.escape(str(root / "manifest.json"))):
        stream.set_global_metadata("lab", {"run": 2})
    monkeypatch.undo()
    assert stream.global_metadata == {"lab": {"run": 1}}
    stream.append(expected_frame(0, FRAME))
    stream.close()
    assert open_scratch(root).global_metadata == {"lab": {"run": 1}}


def test_a_stalled_manifest_holds_up_only_the_append_it_must_cover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest on disk covers every frame ``append`` returned for.

    It describes the data files, which are kept ahead of the data, so appends
    go on while its rename stalls, up to the first frame past what it
    describes: that append waits for it.
    """
    sizes = TC_UNBOUNDED
    root = tmp_path / "scratch"
    stream = started_stream(root, 4)  # two steps of two frames
    replace = ManifestReplace("block")
    monkeypatch.setattr(os, "replace", replace)
    late = threading.Thread(target=lambda: None)
    try:
        # append what the manifest describes until the files grow again: the
        # rewrite saying so then hangs in the manifest's thread
        while not replace.called.is_set():
            described = read_with_memmap(root)[0]["position_shapes"][0][0]
            if stream.frames_written >= 2 * described:  # two frames per step
                assert replace.called.wait(10), "the files did not grow"
                break
            stream.append(expected_frame(stream.frames_written, FRAME))
        manifest, _ = read_with_memmap(root)
        described = manifest["position_shapes"][0][0]
        covered = 2 * described
        # every frame the manifest describes is appended without waiting
        early = threading.Thread(
            target=lambda: [
                stream.append(expected_frame(n, FRAME))
                for n in range(stream.frames_written, covered)
            ],
            daemon=True,
        )
        early.start()
        early.join(10)
        assert not early.is_alive(), "an append waited for a described frame"
        _, raw = read_with_memmap(root)
        for n in range(covered):  # the recipe sees every frame append returned for
            _, index = locate(sizes, n)
            np.testing.assert_array_equal(raw[0][index], expected_frame(n, FRAME))
        del raw
        late = threading.Thread(
            target=stream.append, args=(expected_frame(covered, FRAME),), daemon=True
        )
        late.start()  # the first frame past what the manifest describes
        late.join(0.5)
        assert late.is_alive(), "append returned before the manifest covered it"
    finally:
        replace.release.set()
    late.join(10)
    assert not late.is_alive()
    manifest, raw = read_with_memmap(root)
    assert manifest["position_shapes"][0][0] > described
    _, index = locate(sizes, covered)
    np.testing.assert_array_equal(raw[0][index], expected_frame(covered, FRAME))
    del raw
    stream.close()
    manifest, _ = read_with_memmap(root)
    assert manifest["complete"] is True
    steps = covered // 2 + 1
    assert manifest["position_shapes"] == [[steps, 2, 32, 32]]
    frames = {n: expected_frame(n, FRAME) for n in range(covered + 1)}
    check_frames(root, sizes, frames)


@pytest.fixture
def small_ext4(tmp_path: Path) -> Iterator[Path]:
    """A real 64 MiB ext4 on a loop device: unlike tmpfs, a failed fallocate
    there keeps the blocks it took, unless the writer gives them back."""
    image, mount = tmp_path / "ext4.img", tmp_path / "ext4"
    mount.mkdir()
    with image.open("wb") as fh:
        fh.truncate(64 * 2**20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount)], check=True)  # still mapped


BIG = (512, 1024)  # 1 MiB frames: unbounded files grow ahead and are allocated


@pytest.mark.parametrize("count", [None, 80], ids=["unbounded", "bounded-too-big"])
def test_ext4_fills_up_to_the_last_frame_that_fits(
    small_ext4: Path, count: int | None
) -> None:
    stat = os.statvfs(small_ext4)
    free_frames = stat.f_bavail * stat.f_frsize // 2**20
    root = small_ext4 / "scratch"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": count, "y": BIG[0], "x": BIG[1]}),
        dtype="uint16",
    )
    room = pytest.warns(UserWarning, match=r"needs 83,886,080 bytes but .* bytes free")
    with room if count else contextlib.nullcontext():
        stream = create_stream(settings)
    frame = np.full(BIG, 7, "uint16")
    error: WriteError | None = None
    for _ in range(200):
        try:
            stream.append(frame)
        except WriteError as exc:
            error = exc
            break
    assert error is not None
    assert error.errno == errno.ENOSPC
    assert error.filename == str(root / "pos_0.dat")
    written = stream.frames_written
    assert written >= free_frames - 3, (written, free_frames)  # the disk, not us
    # the final manifest may find no room either: then it says so, and the
    # previous one still describes every frame (the counter has the rest)
    close_error: WriteError | None = None
    try:
        stream.close()
    except WriteError as exc:
        close_error = exc
    assert stream.closed
    if close_error is not None:
        assert close_error.filename == str(root / "manifest.json")
    data = open_scratch(root).arrays[0]
    assert data.shape[0] >= written
    assert (data[:written, ::64, ::64] == 7).all()
    del data, error, close_error, stream


# ------------------------------------------------------------ memory limit

MEMORY_CASES = [
    pytest.param({"t": None, "y": 32, "x": 32}, id="tyx"),
    pytest.param({"t": None, "p": 2, "c": 2, "y": 32, "x": 32}, id="tpcyx"),
]
CAPACITY_FRAMES = 20  # max_memory_bytes below holds exactly this many frames


RESERVE_CHILD = """
import resource
from ome_writers import AcquisitionSettings, ScratchFormat, create_stream
from ome_writers import dims_from_standard_axes
resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
settings = AcquisitionSettings(
    dimensions=dims_from_standard_axes({"t": None, "y": 512, "x": 512}),
    dtype="uint16",
    format=ScratchFormat(max_memory_bytes=16 * 2**30),
)
try:
    create_stream(settings)
except MemoryError as exc:
    print(str(exc))
"""


def test_reserving_more_address_space_than_allowed_is_a_memory_error() -> None:
    """A real address-space limit (RLIMIT_AS, like strict overcommit) in a child."""
    result = subprocess.run(
        [sys.executable, "-c", RESERVE_CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    message = result.stdout
    assert "cannot reserve 17,179,869,184 bytes" in message
    assert "max_memory_bytes" in message
    assert "root_path" in message


@pytest.mark.parametrize("sizes", MEMORY_CASES)
def test_spill_to_disk_when_growth_crosses_the_limit(
    sizes: dict[str, int | None],
) -> None:
    fmt = ScratchFormat(max_memory_bytes=CAPACITY_FRAMES * FRAME_BYTES)
    stream = create_stream(make_settings(sizes, format=fmt))
    early_view = stream.view()
    early_arrays = stream.arrays
    for n in range(CAPACITY_FRAMES):
        stream.append(expected_frame(n, FRAME), frame_metadata={"n": n})
    assert stream.storage_path is None  # in memory
    with pytest.warns(UserWarning, match="temporary directory") as record:
        stream.append(expected_frame(CAPACITY_FRAMES, FRAME), frame_metadata={"n": 20})
    assert len(record) == 1
    match = re.search(r"temporary directory '([^']+)'", str(record[0].message))
    assert match is not None
    spill_root = Path(match.group(1))
    try:
        assert stream.storage_path == str(spill_root)
        assert (spill_root / "manifest.json").is_file()
        total = 2 * CAPACITY_FRAMES + 3
        for n in range(CAPACITY_FRAMES + 1, total):  # no second warning
            stream.append(expected_frame(n, FRAME), frame_metadata={"n": n})
        assert stream.frames_written == total
        expected = {n: expected_frame(n, FRAME) for n in range(total)}
        for view in (early_view, stream.view()):
            for n, pixels in expected.items():
                np.testing.assert_array_equal(view[acq_index(sizes, n)], pixels)
        for arrays in (early_arrays, stream.arrays):
            for n, pixels in expected.items():
                position, index = locate(sizes, n)
                np.testing.assert_array_equal(arrays[position][index], pixels)
        stream.close()
        ds = open_scratch(spill_root)
        assert ds.complete is True
        assert ds.frames_written == total
        assert [r["n"] for r in ds.frame_metadata] == list(range(total))
        del ds
        check_frames(spill_root, sizes, expected)
    finally:
        stream.close()
        shutil.rmtree(spill_root, ignore_errors=True)


@pytest.mark.parametrize("sizes", MEMORY_CASES)
def test_memory_error_when_growth_would_cross_the_limit(
    sizes: dict[str, int | None],
) -> None:
    fmt = ScratchFormat(
        max_memory_bytes=CAPACITY_FRAMES * FRAME_BYTES, spill_to_disk=False
    )
    with create_stream(make_settings(sizes, format=fmt)) as stream:
        for n in range(CAPACITY_FRAMES):
            stream.append(expected_frame(n, FRAME), frame_metadata={"n": n})
        for _ in range(2):
            with pytest.raises(MemoryError, match="max_memory_bytes"):
                stream.append(expected_frame(CAPACITY_FRAMES, FRAME))
            assert stream.frames_written == CAPACITY_FRAMES
        with pytest.raises(MemoryError, match="max_memory_bytes"):
            stream.skip()
        assert stream.frames_written == CAPACITY_FRAMES
        view = stream.view()
        assert view.shape[0] == CAPACITY_FRAMES // math.prod(
            c for k, c in sizes.items() if k not in ("t", "y", "x") and c
        )
        for n in range(CAPACITY_FRAMES):
            np.testing.assert_array_equal(
                view[acq_index(sizes, n)], expected_frame(n, FRAME)
            )
            position, index = locate(sizes, n)
            np.testing.assert_array_equal(
                stream.arrays[position][index], expected_frame(n, FRAME)
            )


# Peak RSS growth allowed beyond max_memory_bytes: a few frames (the caller's
# frame buffer and one being copied) plus 8 MiB for the interpreter (warning
# machinery, json of the manifest, allocator slack). Measured here: ~0.2 MiB.
RSS_FRAMES_ALLOWANCE = 4
RSS_INTERPRETER_ALLOWANCE_BYTES = 8 * 1024**2


def test_peak_resident_memory_stays_within_the_limit() -> None:
    config = {
        "height": 512,
        "width": 512,
        "max_memory_bytes": 64 * 1024**2,
        "frames": 400,  # 200 MiB
    }
    result = subprocess.run(
        [sys.executable, str(CHILD), "rss", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["frames_written"] == 400
    assert len(report["warnings"]) == 1
    assert "temporary directory" in report["warnings"][0]
    assert report["samples"] == {"0": 0, "200": 200, "399": 399}
    frame_bytes = 512 * 512 * 2
    allowed = (
        config["max_memory_bytes"]
        + RSS_FRAMES_ALLOWANCE * frame_bytes
        + RSS_INTERPRETER_ALLOWANCE_BYTES
    )
    growth = report["after"] - report["before"]
    assert growth <= allowed, f"peak RSS grew by {growth:,} bytes > {allowed:,}"


# ------------------------------------------------------------- fsync policy


@pytest.mark.parametrize("fsync", ["never", "on_close", "every_frame"])
@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param({"t": None, "p": 2, "y": 32, "x": 32}, id="unbounded"),
        pytest.param({"t": 4, "c": 2, "y": 32, "x": 32}, id="bounded"),
    ],
)
def test_fsync_policies_round_trip(
    tmp_path: Path, fsync: str, sizes: dict[str, int | None]
) -> None:
    root = tmp_path / "scratch"
    settings = make_settings(sizes, root_path=root, format=ScratchFormat(fsync=fsync))
    with create_stream(settings) as stream:
        for n in range(8):
            stream.append(expected_frame(n, FRAME), frame_metadata={"n": n})
    ds = open_scratch(root)
    assert ds.complete is True
    assert ds.frames_written == 8
    assert ds.settings.format.fsync == fsync
    assert [r["n"] for r in ds.frame_metadata] == list(range(8))
    del ds
    check_frames(root, sizes, {n: expected_frame(n, FRAME) for n in range(8)})
