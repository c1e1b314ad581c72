"""The README's code runs as printed: the first acquisition and the read-back recipe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr

from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes

if TYPE_CHECKING:
    import pytest

README = (Path(__file__).parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def _block(marker: str) -> str:
    (block,) = [b for b in BLOCKS if marker in b]
    # blocks indented inside a list item
    lines = block.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def test_first_acquisition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(_block('root_path="first.ome.zarr"'), {})
    data = zarr.open_array(tmp_path / "first.ome.zarr" / "0", mode="r")
    assert data.shape == (10, 2, 512, 512)
    assert np.asarray(data[9, 1]).any()  # the last frame is there


def test_read_back_recipe(tmp_path: Path, make_frame) -> None:
    root = tmp_path / "scratch_root"
    settings = AcquisitionSettings(
        format="scratch",
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 2, "p": 3, "c": 2, "y": 3, "x": 4}),
        dtype="uint16",
    )
    with create_stream(settings) as stream:
        for n in range(12):
            stream.append(make_frame(n))
    code = _block("manifest.json").replace("path/to/scratch_root", str(root))
    namespace: dict = {}
    exec(code, namespace)
    expected = np.stack([make_frame(n) for n in range(12)]).reshape(2, 3, 2, 3, 4)
    positions = namespace["positions"]
    assert len(positions) == 3
    for p, data in enumerate(positions):
        np.testing.assert_array_equal(data, expected[:, p])
