"""A pymmcore-plus acquisition written by ome_writers, offline.

Runs without Micro-Manager: the microscope is made of pymmcore-plus'
pure-Python devices (a camera that makes noise, a Z stage, a shutter). With a
real microscope, load its configuration instead (``CMMCorePlus()`` and
``core.loadSystemConfiguration(...)``); the acquisition part stays the same.

    pip install 'ome-writers[tensorstore,useq]' pymmcore-plus
    python examples/pymmcore_plus_acquisition.py [output directory]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import useq
from pymmcore_plus.experimental.unicore import (
    ShutterDevice,
    SimpleCameraDevice,
    StageDevice,
    UniMMCore,
)

from ome_writers import AcquisitionSettings, OmeZarrFormat


class NoiseCamera(SimpleCameraDevice):
    """A 256 x 256 uint16 camera that returns noise."""

    def __init__(self) -> None:
        super().__init__()
        self._exposure_ms = 10.0
        self._rng = np.random.default_rng(0)

    def sensor_shape(self) -> tuple[int, int]:
        return (256, 256)

    def dtype(self) -> np.dtype:
        return np.dtype("uint16")

    def get_exposure(self) -> float:
        return self._exposure_ms

    def set_exposure(self, exposure: float) -> None:
        self._exposure_ms = exposure

    def snap(self, buffer: np.ndarray) -> dict[str, str]:
        buffer[...] = self._rng.integers(100, 4000, buffer.shape, dtype="uint16")
        return {}


class Focus(StageDevice):
    """A Z stage that moves instantly."""

    def __init__(self) -> None:
        super().__init__()
        self._z = 0.0

    def set_position_um(self, val: float) -> None:
        self._z = val

    def get_position_um(self) -> float:
        return self._z

    def home(self) -> None:
        self._z = 0.0

    def stop(self) -> None:
        pass

    def set_origin(self) -> None:
        self._z = 0.0


class Shutter(ShutterDevice):
    """A shutter that opens and closes instantly."""

    def __init__(self) -> None:
        super().__init__()
        self._open = False

    def get_open(self) -> bool:
        return self._open

    def set_open(self, open: bool) -> None:
        self._open = open


def make_microscope() -> UniMMCore:
    """A core with the simulated camera, focus and shutter, 0.65 um pixels."""
    # a folder without device adapters: nothing to search for or load
    core = UniMMCore(mm_path=str(Path(__file__).parent))
    core.loadPyDevice("Camera", NoiseCamera())
    core.loadPyDevice("Z", Focus())
    core.loadPyDevice("Shutter", Shutter())
    core.initializeAllDevices()
    core.setCameraDevice("Camera")
    core.setFocusDevice("Z")
    core.setShutterDevice("Shutter")
    core.definePixelSizeConfig("Res")
    core.setPixelSizeUm("Res", 0.65)
    core.setPixelSizeConfig("Res")
    return core


def main(out_dir: Path) -> list[Path]:
    """Run two acquisitions into ``out_dir``; return what they wrote."""
    core = make_microscope()
    sequence = useq.MDASequence(
        time_plan={"interval": 0.05, "loops": 3},
        z_plan={"range": 4, "step": 2},
    )
    # 1. a path: the suffix picks the format (.ome.zarr, .ome.tiff; "memory")
    zarr_path = out_dir / "timelapse.ome.zarr"
    core.mda.run(sequence, output=zarr_path)

    # 2. settings: every ome_writers option; pymmcore-plus fills in the
    # dimensions and dtype from the sequence and the camera
    settings = AcquisitionSettings(
        root_path=str(out_dir / "compressed.ome.zarr"),
        format=OmeZarrFormat(backend="tensorstore"),
        compression="zstd",
    )
    core.mda.run(sequence, output=settings)
    return [zarr_path, Path(settings.root_path)]


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for path in main(out):
        print("wrote", path)
