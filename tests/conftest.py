"""Shared fixtures: frames that identify themselves, and streams in every mode.

``scratch_stream`` opens streams in each scratch mode (pure memory, a given
``root_path``, and spilled to a temporary directory) so that behaviour shared
by all three is tested once. Its ``read_back`` reads disk-backed data with
plain ``np.memmap`` guided only by ``manifest.json``, independently of the
package's own readers.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from ome_writers import AcquisitionSettings, ScratchFormat, create_stream

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ome_writers import Dimension, OMEStream

FRAME_SHAPE = (3, 4)


def _make_frame(
    n: int, shape: tuple[int, int] = FRAME_SHAPE, dtype: str = "uint16"
) -> np.ndarray:
    """Frame ``n``: every pixel says which frame it is and where it sits."""
    y, x = shape
    pattern = np.arange(y * x).reshape(shape) % 100
    return ((n + 1) * 100 + pattern).astype(dtype)


@pytest.fixture
def make_frame() -> Callable[..., np.ndarray]:
    """``make_frame(n, shape=(3, 4), dtype="uint16")``: a self-identifying frame."""
    return _make_frame


def memmap_positions(root: Path) -> list[np.ndarray]:
    """Every position array of a scratch root, read with plain ``np.memmap``."""
    manifest = json.loads((root / "manifest.json").read_text())
    return [
        np.memmap(root / f"pos_{p}.dat", dtype=manifest["dtype"], mode="r", shape=s)
        for p, s in enumerate(tuple(shape) for shape in manifest["position_shapes"])
    ]


@pytest.fixture
def read_scratch_root() -> Callable[[Path], list[np.ndarray]]:
    """``read_scratch_root(root)``: position arrays via ``np.memmap`` + manifest."""
    return memmap_positions


class StreamFactory:
    """Open scratch streams in one mode and read back what they wrote."""

    def __init__(self, mode: str, tmp_path: Path) -> None:
        self.mode = mode
        self._tmp_path = tmp_path
        self.root: Path | None = None
        self.streams: list[OMEStream] = []

    def settings(
        self, dimensions: list[Dimension], dtype: str = "uint16", **kwargs: Any
    ) -> AcquisitionSettings:
        """Settings for this mode (root_path or memory budget filled in)."""
        if self.mode == "disk":
            kwargs.setdefault("root_path", str(self._tmp_path / "root"))
            kwargs.setdefault("format", ScratchFormat(fsync="never"))
        elif self.mode == "spilled":
            kwargs.setdefault("format", ScratchFormat(max_memory_bytes=0))
        return AcquisitionSettings(dimensions=dimensions, dtype=dtype, **kwargs)

    def __call__(
        self, dimensions: list[Dimension], dtype: str = "uint16", **kwargs: Any
    ) -> OMEStream:
        """Create a stream; in spilled mode, expect and check the spill warning."""
        settings = self.settings(dimensions, dtype, **kwargs)
        if self.mode == "spilled":
            if settings.is_unbounded:
                raise AssertionError("spilled mode covers bounded streams only")
            with pytest.warns(UserWarning, match="temporary directory") as record:
                stream = create_stream(settings)
            (path,) = re.findall(
                r"temporary directory '([^']+)'", str(record[0].message)
            )
            self.root = Path(path)
        else:
            stream = create_stream(settings)
            if settings.root_path:
                self.root = Path(settings.root_path)
        self.streams.append(stream)
        return stream

    def read_back(self, stream: OMEStream) -> list[np.ndarray]:
        """Position arrays as stored: ``np.memmap`` on disk, a copy in memory."""
        if self.root is None:
            return [np.array(a) for a in stream.arrays]
        return memmap_positions(self.root)


@pytest.fixture(params=["memory", "disk", "spilled"])
def scratch_mode(request: pytest.FixtureRequest) -> str:
    """Where a scratch stream keeps its data; override with parametrize."""
    return str(request.param)


@pytest.fixture
def scratch_stream(scratch_mode: str, tmp_path: Path) -> Iterator[StreamFactory]:
    """A ``StreamFactory`` for ``scratch_mode``; its streams are closed after."""
    factory = StreamFactory(scratch_mode, tmp_path)
    yield factory
    for stream in factory.streams:
        stream.close()


def _kill_after_reports(command: list[str], kill_after: int) -> dict[str, Any]:
    """Run a writer child and SIGKILL it mid-run.

    The child prints ``frame N`` after each ``append`` returns and ``skip N``
    after each ``skip``; ``stalled`` means it is parked where the test wants it
    killed. The child is killed after ``kill_after`` reports or on ``stalled``.
    """
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    appended: list[int] = []
    skipped: list[int] = []
    stalled = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            kind, _, number = line.strip().partition(" ")
            if kind == "stalled":
                stalled = True
                break
            if kind == "frame":
                appended.append(int(number))
            elif kind == "skip":
                skipped.append(int(number))
            else:
                pytest.fail(f"child finished before it was killed: {line!r}")
            if len(appended) + len(skipped) >= kill_after:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, stderr
    if not stalled:
        assert len(appended) + len(skipped) >= kill_after, stderr
    return {"appended": appended, "skipped": skipped, "stderr": stderr}


@pytest.fixture
def kill_after_reports() -> Callable[[list[str], int], dict[str, Any]]:
    """``kill_after_reports(command, kill_after)``: see ``_kill_after_reports``."""
    return _kill_after_reports


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real 1 MiB tmpfs (``_small_fs``) with 768 KiB of ballast to free.

    Enough to free for ``recover``, which needs room for every frame the
    journal kept (at most what filled the disk, in 8 KiB slots of 64x64
    uint16 frames, each becoming a 12 KiB file there).
    """
    from _small_fs import SmallFilesystem

    fs = SmallFilesystem(
        tmp_path / "small", monkeypatch, 1024 * 1024, ballast_bytes=768 * 1024
    )
    try:
        yield fs
    finally:
        fs.unmount()
