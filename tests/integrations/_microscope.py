"""A simulated microscope: a real pymmcore-plus client for the integration tests.

`make_core` builds a `pymmcore_plus` `UniMMCore` whose devices are all pure
Python (camera, Z and XY stages, shutter, filter wheel), so no Micro-Manager
installation and no C++ device adapter is needed. Tests can then run real
acquisitions, ``core.mda.run(sequence, output=...)``, through pymmcore-plus'
own engine, runner and ome-writers sink: ome-writers is exercised by the
client that actually uses it, not by hand-written calls.

Every frame the camera delivers is uniform and says which image it is (see
`frame_value`), and the core keeps a `FrameRecord` of the hardware state at
each exposure (`SimulatedCore.frames`), so a test can check where each frame
landed in the written data.

One camera only: pymmcore-plus cannot run a multi-camera acquisition with
Python devices (``UniMMCore.getNumberOfCameraChannels()`` is 1 for them, so
the engine never sends one frame per camera and the summary metadata never
gets ``num_camera_adapter_channels``). The multi-camera tests drive
pymmcore-plus' own sink with that metadata instead.

Keep no core alive when the interpreter exits right after using it (a short
script, not a pytest session): pymmcore's C++ core delivers its notifications
to Python on a thread of its own, and one still pending at exit aborts the
process ("FATAL: exception not rethrown"). ``del core`` first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pymmcore_plus.experimental.unicore import (
    SimpleCameraDevice,
    StateDevice,
    UniMMCore,
    XYStageDevice,
)

# the example's instant focus stage and shutter (tests run it as users do)
from pymmcore_plus_acquisition import Focus, Shutter

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import DTypeLike

__all__ = [
    "CAMERA",
    "CHANNELS",
    "CHANNEL_GROUP",
    "FILTER_WHEEL",
    "PIXEL_SIZE_CONFIG",
    "SHUTTER",
    "XY_STAGE",
    "Z_STAGE",
    "FrameRecord",
    "SimulatedCore",
    "frame_value",
    "make_core",
]

CAMERA = "Camera"
"""Label of the (single) camera."""
Z_STAGE = "Z"
"""Label of the Z stage, the core's focus device."""
XY_STAGE = "XY"
"""Label of the XY stage, the core's XY stage device."""
FILTER_WHEEL = "Filter"
"""Label of the filter wheel (a state device)."""
SHUTTER = "Shutter"
"""Label of the shutter, the core's shutter device (autoshutter is on)."""
CHANNEL_GROUP = "Channel"
"""Name of the config group that is the core's channel group."""
CHANNELS = ("DAPI", "FITC", "Cy5")
"""Filter wheel labels (states 0, 1, 2) and the presets of `CHANNEL_GROUP`."""
PIXEL_SIZE_CONFIG = "Res"
"""Name of the one pixel size configuration (it has no device settings)."""

# the camera only makes unsigned integer frames: pymmcore-plus' summary
# metadata (metadata/functions.py `image_info`) reports the dtype as
# f"uint{8 * bytes_per_pixel}" whatever the camera's real dtype is, and the
# ome-writers sink creates its arrays with that dtype
_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("uint32"))

# an existing directory with no device adapters in it; see `make_core`
_NO_ADAPTERS_DIR = str(Path(__file__).parent)


def frame_value(number: int, dtype: DTypeLike = "uint16") -> int:
    """The pixel value of every pixel of image number ``number``.

    Parameters
    ----------
    number : int
        The image number: 1 for the first image the core takes, 2 for the
        second, and so on (``FrameRecord.number``).
    dtype : DTypeLike
        The camera's dtype.

    Returns
    -------
    int
        ``number`` modulo ``2**bits``: a uint8 camera wraps after 255 images
        (image 256 is all zeros), uint16 after 65535.
    """
    return number % (int(np.iinfo(np.dtype(dtype)).max) + 1)


@dataclass(frozen=True)
class FrameRecord:
    """The hardware state when the camera took one image.

    Attributes
    ----------
    number : int
        The image number (1, 2, 3, ...), counted per core over every image the
        core's camera takes: snaps, MDA frames, and frames of hardware
        sequences (from 1 again after ``core.frames.clear()``).
    value : int
        The value of every pixel of the image, ``frame_value(number, dtype)``.
    camera : str
        Label of the camera that took it.
    x_um, y_um, z_um : float
        Stage positions, in micrometres.
    channel : str
        The filter wheel's label (one of `CHANNELS`).
    exposure_ms : float
        The camera's exposure, in milliseconds.
    """

    number: int
    value: int
    camera: str
    x_um: float
    y_um: float
    z_um: float
    channel: str
    exposure_ms: float


class SimulatedCore(UniMMCore):
    """A `UniMMCore` that keeps a log of the images its simulated camera took.

    It changes no behaviour of `UniMMCore`; it only carries `frames`.

    Attributes
    ----------
    frames : list[FrameRecord]
        One record per image taken, in the order taken: ``frames[i].number ==
        i + 1``. The next image is number ``len(frames) + 1``, so clearing
        the list restarts the numbering (and the pixel values) at 1.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.frames: list[FrameRecord] = []
        super().__init__(*args, **kwargs)


class _XYStage(XYStageDevice):
    """An XY stage that moves instantly to wherever it is told."""

    def __init__(self) -> None:
        super().__init__()
        self._xy = (0.0, 0.0)

    def set_position_um(self, x: float, y: float) -> None:
        self._xy = (float(x), float(y))

    def get_position_um(self) -> tuple[float, float]:
        return self._xy

    def set_origin_x(self) -> None:
        self._xy = (0.0, self._xy[1])

    def set_origin_y(self) -> None:
        self._xy = (self._xy[0], 0.0)

    def home(self) -> None:
        self._xy = (0.0, 0.0)

    def stop(self) -> None:
        pass

    def set_origin(self) -> None:
        self._xy = (0.0, 0.0)


class _FilterWheel(StateDevice):
    """A filter wheel whose states are labelled with `CHANNELS`."""

    def __init__(self) -> None:
        self._position = 0
        super().__init__(dict(enumerate(CHANNELS)))

    def get_state(self) -> int:
        return self._position

    def set_state(self, position: int) -> None:
        self._position = int(position)


class _Camera(SimpleCameraDevice):
    """A camera whose frames say which image they are.

    Every pixel of image ``n`` (the n-th image the core takes) is
    ``frame_value(n, dtype)``; the hardware state at that moment is appended
    to ``log`` as a `FrameRecord`. Exposure is stored and reported, not
    waited for: a frame is made at once.
    """

    def __init__(
        self,
        *,
        height: int,
        width: int,
        dtype: np.dtype,
        exposure_ms: float,
        log: list[FrameRecord],
        z_stage: Focus,
        xy_stage: _XYStage,
        filter_wheel: _FilterWheel,
    ) -> None:
        super().__init__()
        self._shape = (height, width)
        self._dtype = dtype
        self._exposure_ms = float(exposure_ms)
        self._log = log
        self._z_stage = z_stage
        self._xy_stage = xy_stage
        self._filter_wheel = filter_wheel
        # snaps run on the caller's thread, hardware sequences on the core's
        # acquisition thread: the numbering must not depend on which
        self._lock_numbering = threading.Lock()

    def sensor_shape(self) -> tuple[int, int]:
        return self._shape

    def dtype(self) -> np.dtype:
        return self._dtype

    def get_exposure(self) -> float:
        return self._exposure_ms

    def set_exposure(self, exposure: float) -> None:
        self._exposure_ms = float(exposure)

    def snap(self, buffer: np.ndarray) -> Mapping:
        with self._lock_numbering:
            number = len(self._log) + 1
            x, y = self._xy_stage.get_position_um()
            record = FrameRecord(
                number=number,
                value=frame_value(number, self._dtype),
                camera=self.get_label(),
                x_um=x,
                y_um=y,
                z_um=self._z_stage.get_position_um(),
                channel=CHANNELS[self._filter_wheel.get_state()],
                exposure_ms=self._exposure_ms,
            )
            self._log.append(record)
        buffer[...] = record.value
        # ends up in the Micro-Manager metadata of sequenced frames
        return {"SimulatedImageNumber": str(number)}


def make_core(
    width: int = 64,
    height: int = 48,
    dtype: DTypeLike = "uint16",
    pixel_size_um: float = 0.5,
    *,
    exposure_ms: float = 10.0,
) -> SimulatedCore:
    """Build a simulated microscope from pure-Python devices.

    Loaded and selected: camera `CAMERA`, focus device `Z_STAGE`, XY stage
    `XY_STAGE`, shutter `SHUTTER` (autoshutter on), and filter wheel
    `FILTER_WHEEL`. The config group `CHANNEL_GROUP` is the channel group;
    its presets `CHANNELS` put the filter wheel in states 0, 1, 2. One pixel
    size configuration, `PIXEL_SIZE_CONFIG`, makes ``core.getPixelSizeUm()``
    return ``pixel_size_um``. All positions start at 0, the filter wheel at
    "DAPI".

    Frame encoding: every pixel of the n-th image the core takes (n = 1, 2,
    3, ..., counted over snaps, MDA frames and hardware-sequenced frames, and
    from 1 again after ``core.frames.clear()``) is ``frame_value(n, dtype)``,
    i.e. ``n`` wrapped modulo ``2**bits``. Frames have shape ``(height,
    width)``. ``core.frames[n - 1]`` records the camera, stage positions,
    filter label and exposure at image n.

    Parameters
    ----------
    width, height : int
        Frame size in pixels; frames are numpy arrays of shape
        ``(height, width)``, and ``core.getImageWidth()`` is ``width``.
    dtype : DTypeLike
        ``"uint8"``, ``"uint16"`` or ``"uint32"``.
    pixel_size_um : float
        What ``core.getPixelSizeUm()`` returns.
    exposure_ms : float
        The camera's initial exposure; ``core.setExposure`` changes it.

    Returns
    -------
    SimulatedCore
        A `UniMMCore` subclass that only adds the `SimulatedCore.frames` log.

    Raises
    ------
    ValueError
        For a dtype that is not an unsigned integer of 1, 2 or 4 bytes, or a
        size that is not positive.
    """
    np_dtype = np.dtype(dtype)
    if np_dtype not in _DTYPES:
        raise ValueError(
            f"dtype must be uint8, uint16 or uint32, not {np_dtype}: "
            "pymmcore-plus reports any camera's dtype as uint<8 * bytes per "
            "pixel> in its summary metadata"
        )
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive: {width}, {height}")
    # an explicit mm_path skips pymmcore-plus' search for a Micro-Manager
    # installation: without one it logs an error on every core made, and with
    # an incompatible user-selected one it warns, which pytest turns into an
    # error. Nothing is ever loaded from this directory.
    core = SimulatedCore(mm_path=_NO_ADAPTERS_DIR)

    z_stage = Focus()
    xy_stage = _XYStage()
    filter_wheel = _FilterWheel()
    camera = _Camera(
        height=height,
        width=width,
        dtype=np_dtype,
        exposure_ms=exposure_ms,
        log=core.frames,
        z_stage=z_stage,
        xy_stage=xy_stage,
        filter_wheel=filter_wheel,
    )
    for label, device in (
        (CAMERA, camera),
        (Z_STAGE, z_stage),
        (XY_STAGE, xy_stage),
        (FILTER_WHEEL, filter_wheel),
        (SHUTTER, Shutter()),
    ):
        core.loadPyDevice(label, device)
    core.initializeAllDevices()

    core.setCameraDevice(CAMERA)
    core.setFocusDevice(Z_STAGE)
    core.setXYStageDevice(XY_STAGE)
    core.setShutterDevice(SHUTTER)

    core.defineConfigGroup(CHANNEL_GROUP)
    for channel in CHANNELS:
        core.defineConfig(CHANNEL_GROUP, channel, FILTER_WHEEL, "Label", channel)
    core.setChannelGroup(CHANNEL_GROUP)
    core.setConfig(CHANNEL_GROUP, CHANNELS[0])

    # a pixel size configuration with no device settings always matches the
    # current state, so it is always the current one
    core.definePixelSizeConfig(PIXEL_SIZE_CONFIG)
    core.setPixelSizeUm(PIXEL_SIZE_CONFIG, pixel_size_um)
    core.setPixelSizeConfig(PIXEL_SIZE_CONFIG)
    return core
