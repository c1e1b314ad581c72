"""The examples in ``examples/`` run as users run them, and write what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import zarr

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_pymmcore_plus_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "pymmcore_plus_acquisition.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"wrote {tmp_path / 'timelapse.ome.zarr'}",
        f"wrote {tmp_path / 'compressed.ome.zarr'}",
    ]
    for name in ("timelapse.ome.zarr", "compressed.ome.zarr"):
        group = zarr.open_group(tmp_path / name, mode="r")
        (multiscale,) = group.attrs["ome"]["multiscales"]
        assert [a["name"] for a in multiscale["axes"]] == ["t", "z", "y", "x"]
        scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
        assert scale == [0.05, 2.0, 0.65, 0.65]
        data = np.asarray(zarr.open_array(tmp_path / name / "0", mode="r")[...])
        assert data.shape == (3, 3, 256, 256)
        assert data.min() >= 100  # every frame was written: noise, no fill zeros
        assert "pymmcore_plus" in group.attrs
    codecs = zarr.open_array(tmp_path / "compressed.ome.zarr" / "0").metadata.codecs
    assert any("zstd" in type(c).__name__.lower() for c in codecs)
