"""Child process for the pyramid crash test (run with sys.executable).

``python _pyramid_crash_child.py <root> <engine>`` streams 37 x 29 frames
(t unbounded, c 2) with a 3-level pyramid and prints ``frame N`` once
``append`` has returned for frame N; it never closes the stream, so the
parent can SIGKILL it at any time.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def main(root: str, engine: str) -> None:
    from ome_writers import (
        AcquisitionSettings,
        OmeTiffFormat,
        OmeZarrFormat,
        Pyramid,
        create_stream,
        dims_from_standard_axes,
    )

    pyramid = Pyramid(levels=3)
    fmt = (
        OmeTiffFormat(pyramid=pyramid)
        if engine == "tifffile"
        else OmeZarrFormat(backend=engine, pyramid=pyramid)
    )
    settings = AcquisitionSettings(
        root_path=root,
        dimensions=dims_from_standard_axes({"t": None, "c": 2, "y": 37, "x": 29}),
        dtype="uint16",
        format=fmt,
    )
    stream = create_stream(settings)
    rng = np.random.default_rng(0)
    for n in range(60):
        # never all zeros: the parent tells a written frame by it
        stream.append(rng.integers(1, 60000, (37, 29), dtype="uint16"))
        sys.stdout.write(f"frame {n}\n")
        sys.stdout.flush()
        time.sleep(0.01)
    sys.stdout.write("stalled\n")
    sys.stdout.flush()
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
