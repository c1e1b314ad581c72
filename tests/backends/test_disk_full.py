"""A disk that fills up mid-acquisition, for every OME engine (a real tmpfs).

``append`` (or ``close``) raises ``WriteError`` naming the output and caused by
ENOSPC; nothing for which ``append`` returned is lost: once space is freed,
``recover`` completes the output, and every such frame reads back.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
import zarr

from ome_writers import (
    AcquisitionSettings,
    WriteError,
    create_stream,
    dims_from_standard_axes,
    recover,
)

if TYPE_CHECKING:
    from _small_fs import SmallFilesystem

CASES = [
    pytest.param("tensorstore", "blosc-zstd", id="tensorstore-engine-path"),
    pytest.param("zarr-python", None, id="zarr-python"),
    pytest.param("tifffile", None, id="tifffile"),
]


@pytest.mark.parametrize(("engine", "compression"), CASES)
def test_a_full_disk_loses_nothing_append_returned_for(
    full_disk: SmallFilesystem, engine: str, compression: str | None
) -> None:
    name = "run.ome.tiff" if engine == "tifffile" else "run.ome.zarr"
    root = full_disk.path / name
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "y": 64, "x": 64}),
        dtype="uint16",
        format=engine,
        compression=compression,
    )
    rng = np.random.default_rng(0)  # noise: compression cannot shrink it
    frames = [rng.integers(0, 65535, (64, 64), dtype="uint16") for _ in range(80)]
    stream = create_stream(settings)
    with pytest.raises(WriteError, match=r"run\.ome") as info:  # noqa: PT012
        for n, frame in enumerate(frames):
            stream.append(frame, frame_metadata={"n": n})
        stream.close()
    assert info.value.errno == errno.ENOSPC or (
        isinstance(info.value.__cause__, OSError)
        and info.value.__cause__.errno == errno.ENOSPC
    ), repr(info.value)
    returned = stream.frames_written
    assert 0 < returned < len(frames)
    if not stream.closed:
        with pytest.raises(WriteError):
            stream.close()
    full_disk.free_ballast()
    report = recover(root)
    assert report.frames_written >= returned
    if engine == "tifffile":
        data = tifffile.imread(root)
    else:
        data = zarr.open_array(root / "0", mode="r")[:]
    for n in range(returned):
        np.testing.assert_array_equal(data[n], frames[n], err_msg=str(n))


def test_acquire_zarr_on_a_full_disk_fails_cleanly(full_disk: SmallFilesystem) -> None:
    """acquire-zarr writes from its own threads and buffers: its error may come
    at close, and the frames it still held are lost (see README); the error
    is still a ``WriteError`` naming the output, and the output recoverable."""
    root = full_disk.path / "run.ome.zarr"
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": None, "y": 64, "x": 64}),
        dtype="uint16",
        format="acquire-zarr",
    )
    rng = np.random.default_rng(0)
    stream = create_stream(settings)
    with pytest.raises(WriteError, match=r"run\.ome\.zarr"):  # noqa: PT012
        for _ in range(50):
            stream.append(rng.integers(0, 65535, (64, 64), dtype="uint16"))
        stream.close()
    if not stream.closed:
        with pytest.raises(WriteError):
            stream.close()
    full_disk.free_ballast()
    assert recover(root).frames_written == stream.frames_written
    zarr.open_group(root, mode="r")  # the metadata reads
