"""Child process for the OME-TIFF crash test (run with sys.executable).

``python _tiff_crash_child.py <root_path> <config-json>`` streams frames into
an OME-TIFF and prints ``frame N`` / ``skip N`` (flushed) once ``append`` /
``skip`` has returned; it never closes the stream, so the parent can SIGKILL
it at any time. With a bounded stream it waits to be killed once done.

With ``"stall_after": N`` in the config, the child stops inside the write of
page N+1, right after its pixel data and before its IFD (the moment a naive
writer has already pointed the chain at the missing IFD), prints ``stalled``
and waits there to be killed: the kill then lands in that window every time.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

_RAMPS: dict[tuple[int, int], np.ndarray] = {}


def expected_frame(n: int, shape: tuple[int, int]) -> np.ndarray:
    """Frame ``n``: a ramp shifted by ``n``, distinct for every ``n`` < 65536.

    Cheap to make (uint16 arithmetic wraps), so that the child spends its time
    writing and a kill most likely lands inside a page write.
    """
    ramp = _RAMPS.get(shape)
    if ramp is None:
        ramp = (np.arange(math.prod(shape)) % 65536).astype(np.uint16).reshape(shape)
        _RAMPS[shape] = ramp
    return ramp + np.uint16(n * 4099 % 65536)


def main(root: str, config: dict) -> None:
    from ome_writers import (
        AcquisitionSettings,
        OmeTiffFormat,
        create_stream,
        dims_from_standard_axes,
    )

    sizes = config["sizes"]
    settings = AcquisitionSettings(
        root_path=root,
        dimensions=dims_from_standard_axes(sizes),
        dtype="uint16",
        format=OmeTiffFormat(
            prefer_single_file="always"
            if config.get("layout", "single") == "single"
            else "never"
        ),
        compression=config.get("compression"),
    )
    frame_shape = (sizes["y"], sizes["x"])
    stall_after = config.get("stall_after")
    if stall_after is not None:
        _install_stall()
    stream = create_stream(settings)
    stream.set_global_metadata("child", {"pid": 1})
    skip_every = config.get("skip_every", 0)
    n = 0
    while config["frames"] is None or n < config["frames"]:
        _STALL["armed"] = n == stall_after
        if skip_every and n % skip_every == skip_every - 1:
            stream.skip()
            sys.stdout.write(f"skip {n}\n")
        else:
            stream.append(expected_frame(n, frame_shape), frame_metadata={"n": n})
            sys.stdout.write(f"frame {n}\n")
        sys.stdout.flush()
        n += 1
    sys.stdout.write("done\n")
    sys.stdout.flush()
    while True:  # wait for SIGKILL, never close()
        time.sleep(1)


_STALL = {"armed": False}


def _install_stall() -> None:
    # fault injection: the kill must land inside a page write, which no public
    # name reaches, so the private file writer is patched
    from ome_writers._backends.tiff import _io as _tiff_io

    original = _tiff_io.OrderedFile.write

    def write(self: _tiff_io.OrderedFile, buffer: bytes) -> int:
        # once the chain pointer is held, the next write is pixel data or the
        # IFD itself: stop there
        if _STALL["armed"] and self._held:
            sys.stdout.write("stalled\n")
            sys.stdout.flush()
            while True:
                time.sleep(1)
        return original(self, buffer)

    _tiff_io.OrderedFile.write = write  # type: ignore[method-assign]


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
