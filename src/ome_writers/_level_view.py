"""``LevelArray``: a lower pyramid level computed from the full resolution.

While a stream is open, ``stream.view(level=k)`` and ``stream.level_arrays(k)``
read through this: each read takes the full-resolution region under the
selection (frames still buffered by the engine included) and halves it ``k``
times with the writers' own math, so it shows exactly what level ``k`` will
hold, whatever the engine has written yet. After ``close()`` the stored levels
are read instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._downsample import reduce_array
from ome_writers._view import _normalize_key

if TYPE_CHECKING:
    from ome_writers._pyramid import PyramidMethod


class LevelArray:
    """Level ``level`` of a full-resolution array-like, computed on each read.

    ``source`` is one position in storage order (frame axes last) with a
    ``shape`` and ``__getitem__`` over ints and slices; ``z_axis`` is halved
    too when given.
    """

    def __init__(
        self,
        source: Any,
        level: int,
        method: PyramidMethod,
        z_axis: int | None,
        dtype: np.dtype,
    ) -> None:
        self._source = source
        self._level = level
        self._method: PyramidMethod = method
        self._z_axis = z_axis
        self.dtype = dtype
        self._factor = 2**level
        shape = list(source.shape)
        for axis in self._reduced_axes(len(shape)):
            shape[axis] = -(-shape[axis] // self._factor)
        self.shape = tuple(shape)
        self.ndim = len(shape)

    def _reduced_axes(self, ndim: int) -> list[int]:
        axes = [ndim - 2, ndim - 1]
        return axes if self._z_axis is None else [self._z_axis, *axes]

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key: Any) -> np.ndarray:
        selections = _normalize_key(key, self.shape)
        ranges = [
            range(s, s + 1) if isinstance(s, int) else range(s.start, s.stop, s.step)
            for s in selections
        ]
        squeeze = tuple(i for i, s in enumerate(selections) if isinstance(s, int))
        if not all(ranges):
            shape = tuple(len(r) for r in ranges)
            return np.zeros(shape, self.dtype).squeeze(axis=squeeze)
        reduced = self._reduced_axes(self.ndim)
        source_key = []
        local = []
        for axis, picked in enumerate(ranges):
            low, high = min(picked), max(picked)
            factor = self._factor if axis in reduced else 1
            source_key.append(slice(low * factor, (high + 1) * factor))
            local.append([i - low for i in picked])
        data = np.asarray(self._source[tuple(source_key)])
        for _ in range(self._level):
            data = reduce_array(data, self._method, self._z_axis)
        out = data[np.ix_(*local)]
        return out.squeeze(axis=squeeze) if squeeze else out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[...], dtype=dtype)
