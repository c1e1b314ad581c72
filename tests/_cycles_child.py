"""Child of ``test_stream.py``'s reference-cycle test (run with sys.executable).

``python _cycles_child.py <format> <root_path or "">`` appends 401 frames to
an unbounded stream with garbage collection off and prints how many objects
a collection then finds in cycles, and the frames written.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import numpy as np
from test_stream import wait_for_extent

from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes


def main(fmt: str, root: str) -> None:
    settings = AcquisitionSettings(
        root_path=root,
        dimensions=dims_from_standard_axes({"t": None, "c": 2, "y": 16, "x": 16}),
        dtype="uint16",
        format=fmt,
    )
    frame = np.ones((16, 16), "uint16")
    with create_stream(settings) as stream:
        stream.append(frame, frame_metadata={"exposure_ms": 5.0, "tags": ["a"]})
        gc.disable()
        gc.collect()
        for n in range(200):
            stream.append(frame, frame_metadata={"exposure_ms": 5.0, "n": n})
            stream.skip()
        # the metadata threads' last write: the 201st step's shape on disk
        if fmt == "scratch" and root:
            wait_for_extent(Path(root) / "manifest.json", 201)
        elif fmt == "acquire-zarr":
            wait_for_extent(Path(settings.output_path) / "0" / "zarr.json", 201)
        collected = gc.collect()
        gc.enable()
    print("collected", collected, "frames", stream.frames_written)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
