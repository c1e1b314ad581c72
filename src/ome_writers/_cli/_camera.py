"""A simulated camera: frames with structure, produced at camera speed.

Frames show a few Gaussian "cells" that drift with time, are brighter in some
channels than others and blur with distance from a focal plane, over a dim
background with shot-like noise. They are rendered into a small ring of
buffers before the acquisition starts (as a camera SDK recycles its buffers),
so producing a frame costs nothing and the writer is what gets measured.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ome_writers._settings import AcquisitionSettings

_RING = 8


class SimulatedCamera:
    """Synthetic frames for an acquisition, in acquisition order.

    Parameters
    ----------
    settings
        The acquisition; its frame shape and dtype are used.
    fps
        Frame rate to pace ``frames()`` at; None for as fast as possible.
    seed
        Seed of the random structure and noise.
    """

    def __init__(
        self, settings: AcquisitionSettings, fps: float | None = None, seed: int = 0
    ) -> None:
        self.frame_shape = settings.frame_shape
        self.dtype = np.dtype(settings.dtype)
        self.fps = fps
        rng = np.random.default_rng(seed)
        self._ring = [self._render(rng, i) for i in range(_RING)]

    def _render(self, rng: np.random.Generator, index: int) -> np.ndarray:
        ny, nx = self.frame_shape
        yy, xx = np.ogrid[0:ny, 0:nx]
        image = np.full((ny, nx), 100.0)
        for _ in range(12):
            cy = (rng.uniform(0, ny) + index * 1.5) % ny
            cx = (rng.uniform(0, nx) + index * 2.0) % nx
            radius = rng.uniform(0.03, 0.08) * min(ny, nx) + 1
            brightness = rng.uniform(500, 3000)
            image += brightness * np.exp(
                -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)
            )
        image += rng.normal(0, 10, size=(ny, nx))
        if self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            image = np.clip(image * (min(info.max, 65535) / 4096), info.min, info.max)
        return image.astype(self.dtype)

    def frame(self, frame_number: int) -> np.ndarray:
        """The frame for ``frame_number`` (one of a ring of prepared buffers)."""
        return self._ring[frame_number % _RING]

    def frames(self, count: int | None) -> Iterator[np.ndarray]:
        """Yield ``count`` frames (forever if None), paced at ``fps`` if set."""
        start = time.perf_counter()
        n = 0
        while count is None or n < count:
            if self.fps:
                delay = start + n / self.fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield self._ring[n % _RING]
            n += 1
