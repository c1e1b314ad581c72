"""What the convert tests write, and a child program that writes it and dies.

``python _convert_child.py write <settings-json> <frames> <skip-json>``
    Write ``frames`` frames of ``frame_for`` (skipping the frame numbers in
    ``skip``) with ``metadata_for`` and ``GLOBAL_METADATA`` into a stream of
    those settings, then kill itself with SIGKILL: an acquisition whose writer
    died after every one of those ``append`` calls returned.
``python _convert_child.py convert <source> <destination> <format> <kill-at>``
    Convert, and kill itself with SIGKILL once ``kill-at`` frames are done.
``python _convert_child.py memory <source> <destination> <format>``
    Convert once to warm up (imports, thread pools), then again with the
    peak resident memory reset first (``/proc/self/clear_refs``); print
    ``{"growth_bytes": ...}``: the peak during the second conversion over
    the resident memory before it.

``write`` is also called in-process by the tests for complete sources, so that
the writer and the checks agree on every pixel and every record.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import numpy as np

GLOBAL_METADATA: dict[str, Any] = {
    "lab": {"who": "test", "values": [1, 2.5], "nested": {"ok": True}},
    "scope": {"objective": "60x"},
}


def frame_for(n: int, shape: tuple[int, int], dtype: str = "uint16") -> np.ndarray:
    """Frame ``n``: never zero, and different from every other frame."""
    ramp = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape) % 97
    return ((n + 1) * 100 + ramp).astype(dtype)


def metadata_for(n: int) -> dict[str, Any] | None:
    """Metadata of every even frame: OME plane keys and keys of our own."""
    if n % 2:
        return None
    return {
        "delta_t": 0.5 * n,
        "exposure_time": 0.01,
        "position_x": 10.0 + n,
        "note": f"frame {n}",
        "camera": {"gain": n % 3, "binning": [1, 1]},
    }


def write(
    settings: Any,
    frames: int,
    skip: set[int],
    *,
    kill: bool = False,
    metadata: bool = True,
) -> None:
    """Write the test acquisition into a stream of ``settings``."""
    from ome_writers import create_stream

    stream = create_stream(settings)
    for namespace, mapping in GLOBAL_METADATA.items():
        stream.set_global_metadata(namespace, mapping)
    for n in range(frames):
        if n in skip:
            stream.skip()
        else:
            frame = frame_for(n, settings.frame_shape, settings.dtype)
            values = metadata_for(n) if metadata else None
            stream.append(frame, frame_metadata=values)
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
    stream.close()


def _progress_killer(kill_at: int) -> Any:
    def progress(done: int, total: int, nbytes: int) -> None:
        if done >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    return progress


def main(argv: list[str]) -> None:
    command = argv[0]
    if command == "write":
        from ome_writers import AcquisitionSettings

        settings = AcquisitionSettings.model_validate(json.loads(argv[1]))
        write(settings, int(argv[2]), set(json.loads(argv[3])), kill=True)
    elif command == "convert":
        from ome_writers import convert

        source, destination, fmt, kill_at = argv[1:5]
        convert(
            source, destination, format=fmt, progress=_progress_killer(int(kill_at))
        )
    elif command == "memory":
        from ome_writers import convert

        source, destination, fmt = argv[1:4]
        convert(source, destination + ".warm", format=fmt)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # VmHWM := VmRSS
        before = _status_kib("VmRSS")
        convert(source, destination, format=fmt)
        growth = (_status_kib("VmHWM") - before) * 1024
        print(json.dumps({"growth_bytes": growth}))
        return
    raise SystemExit(f"the child was not killed: {argv!r}")


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


if __name__ == "__main__":
    main(sys.argv[1:])
