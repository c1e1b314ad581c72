"""Child-process programs for the crash and memory tests (run with sys.executable).

``crash <root> <config-json>``
    Stream frames into a disk-backed scratch root and print each frame number
    (flushed) once ``append`` has returned for it; never closes the stream, so
    the parent can kill it with SIGKILL at any time. When every frame of a
    bounded stream is written it waits to be killed.
``rss <config-json>``
    Stream an unbounded in-memory stream past its memory budget and print a
    JSON line with the peak resident memory before and after.

``expected_frame`` is the deterministic content of frame ``n``; the tests load
it from this file so that writer and checker agree.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings

import numpy as np


def expected_frame(n: int, shape: tuple[int, int]) -> np.ndarray:
    """Frame ``n``: a ramp shifted by ``n``, distinct for every ``n`` < 65536."""
    ramp = np.arange(math.prod(shape), dtype=np.int64) + n * 4099
    return (ramp % 65536).astype(np.uint16).reshape(shape)


def _settings(sizes: dict[str, int | None], **kwargs: object) -> object:
    from ome_writers import AcquisitionSettings, dims_from_standard_axes

    return AcquisitionSettings(
        dimensions=dims_from_standard_axes(sizes), dtype="uint16", **kwargs
    )


def run_crash(root: str, config: dict) -> None:
    from ome_writers import ScratchFormat, create_stream

    sizes = config["sizes"]
    frame_shape = (sizes["y"], sizes["x"])
    settings = _settings(
        sizes,
        root_path=root,
        format=ScratchFormat(fsync=config.get("fsync", "never")),
    )
    stream = create_stream(settings)
    stream.set_global_metadata("child", {"pid": 1})
    skip_every = config.get("skip_every", 0)
    n = 0
    while config["frames"] is None or n < config["frames"]:
        if skip_every and n % skip_every == skip_every - 1:
            stream.skip()
            sys.stdout.write(f"skip {n}\n")
        else:
            stream.append(
                expected_frame(n, frame_shape),
                frame_metadata={"n": n, "exposure_ms": 10.0 + n},
            )
            sys.stdout.write(f"frame {n}\n")
        sys.stdout.flush()
        n += 1
    sys.stdout.write("done\n")
    sys.stdout.flush()
    while True:  # wait for SIGKILL, never close()
        time.sleep(1)


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_rss(config: dict) -> None:
    from ome_writers import ScratchFormat, create_stream

    shape = (config["height"], config["width"])
    settings = _settings(
        {"t": None, "y": shape[0], "x": shape[1]},
        format=ScratchFormat(
            max_memory_bytes=config["max_memory_bytes"], spill_to_disk=True
        ),
    )
    frame = np.zeros(shape, np.uint16)
    frame.fill(1)  # fault the frame buffer in before the baseline
    stream = create_stream(settings)
    before = _peak_rss_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(config["frames"]):
            frame.fill(n % 65536)
            stream.append(frame)
    after = _peak_rss_bytes()
    spilled = [str(w.message) for w in caught]
    # read back a few frames only after the measurement (mapped pages count)
    view = stream.view()
    samples = {n: int(view[n, 0, 0]) for n in (0, config["frames"] // 2)}
    samples[config["frames"] - 1] = int(view[config["frames"] - 1, -1, -1])
    stream.close()
    print(
        json.dumps(
            {
                "before": before,
                "after": after,
                "warnings": spilled,
                "samples": samples,
                "frames_written": stream.frames_written,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1] == "crash":
        run_crash(sys.argv[2], json.loads(sys.argv[3]))
    elif sys.argv[1] == "rss":
        run_rss(json.loads(sys.argv[2]))
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}")
