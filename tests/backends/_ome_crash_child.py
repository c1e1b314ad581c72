"""Child process for the OME-Zarr / OME-TIFF crash tests (run with sys.executable).

``python _ome_crash_child.py <root> <config-json>`` streams frames and prints
``frame V`` (flushed) once ``append`` has returned for the frame whose pixels
are ``expected_frame(V)`` and whose metadata is ``{"v": V, ...}``; it never
closes the stream, so the parent can SIGKILL it at any time. With
``"threads": k`` the frames come from ``k`` threads at once (values are then
unique but not frame numbers). ``"frames": n`` stops after ``n`` frames
(``stalled``); with ``"drain": true`` the writes of the first ``n - 1`` have
finished when the last is appended.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent / "scratch"))
from _crash_child import expected_frame


def main(root: str, config: dict) -> None:
    from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes

    sizes = config["sizes"]
    frame_shape = (sizes["y"], sizes["x"])
    dims = dims_from_standard_axes(sizes)
    if config.get("chunk_t"):
        dims[0].chunk_size = config["chunk_t"]
    if config.get("shard_t"):
        dims[0].shard_size_chunks = config["shard_t"]
    settings = AcquisitionSettings(
        root_path=root,
        dimensions=dims,
        dtype="uint16",
        format=config["format"],
        compression=config.get("compression"),
    )
    stream = create_stream(settings)
    stream.set_global_metadata("child", {"started": True})
    values = itertools.count()
    lock = threading.Lock()
    limit = config.get("frames")

    def run() -> None:
        while True:
            with lock:
                v = next(values)
            if limit is not None and v >= limit:
                return
            if config.get("drain") and v == limit - 1:
                # read everything first (it waits for the writes in flight),
                # so the last append finds them all finished
                for array in stream.arrays:
                    np.asarray(array[...])
            stream.append(
                expected_frame(v, frame_shape),
                frame_metadata={"v": v, "exposure_time": 0.001 * (v + 1)},
            )
            sys.stdout.write(f"frame {v}\n")
            sys.stdout.flush()

    threads = [threading.Thread(target=run) for _ in range(config.get("threads", 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stdout.write("stalled\n")  # every frame written: kill now
    sys.stdout.flush()
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
