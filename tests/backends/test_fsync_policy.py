"""The ``fsync`` policy of OME-Zarr and OME-TIFF: when data is made durable.

A power cut cannot be made real here, so the syscalls that make data durable
are counted (each still runs): ``"every_frame"`` syncs before every ``append``
returns, ``"on_close"`` only in ``close()``, ``"never"`` not at all. What is
written must read back the same under every policy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
import zarr

from ome_writers import (
    AcquisitionSettings,
    OmeTiffFormat,
    OmeZarrFormat,
    create_stream,
    dims_from_standard_axes,
)
from ome_writers._backends.zarr import _store as zarr_store

if TYPE_CHECKING:
    from pathlib import Path

ENGINES = ["tensorstore", "zarr-python", "acquire-zarr", "tifffile"]


class _Syncs:
    """Counts fsync/syncfs calls, passing them through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real_fsync, real_syncfs = os.fsync, zarr_store.sync_filesystem

        def fsync(fd: int) -> None:
            self.count += 1
            real_fsync(fd)

        def syncfs(path: Any) -> None:
            self.count += 1
            real_syncfs(path)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(zarr_store, "sync_filesystem", syncfs)


def _settings(tmp_path: Path, engine: str, fsync: str) -> AcquisitionSettings:
    if engine == "tifffile":
        root, fmt = tmp_path / "a.ome.tiff", OmeTiffFormat(fsync=fsync)
    else:
        root, fmt = tmp_path / "a.ome.zarr", OmeZarrFormat(backend=engine, fsync=fsync)
    return AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "c": 2, "y": 16, "x": 16}),
        dtype="uint16",
        format=fmt,
    )


def _read(settings: AcquisitionSettings) -> np.ndarray:
    if settings.format.name == "ome-tiff":
        return np.asarray(tifffile.imread(settings.root_path))
    return np.asarray(zarr.open_array(f"{settings.output_path}/0", mode="r")[:])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("policy", ["never", "on_close", "every_frame"])
def test_syncs_follow_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str, policy: str
) -> None:
    settings = _settings(tmp_path, engine, policy)
    frames = [np.full((16, 16), n + 1, "uint16") for n in range(6)]
    syncs = _Syncs(monkeypatch)
    stream = create_stream(settings)
    during = []
    for frame in frames:
        before = syncs.count
        stream.append(frame, frame_metadata={"n": 1})
        during.append(syncs.count - before)
    before = syncs.count
    stream.close()
    at_close = syncs.count - before
    if policy == "every_frame":
        assert all(n >= 1 for n in during), during
    else:
        assert during == [0] * len(frames)
    if policy == "never":
        assert at_close == 0
    else:
        assert at_close >= 1
    data = _read(settings).reshape(-1, 16, 16)
    np.testing.assert_array_equal(data[:6], np.stack(frames))


def test_the_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="fsync"):
        OmeZarrFormat(fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fsync"):
        OmeTiffFormat(fsync="always")  # type: ignore[arg-type]
