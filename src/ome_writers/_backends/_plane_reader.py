"""A lazy, read-only array over planes that are fetched by number.

Formats that keep each plane as a unit (an OME-TIFF page, a row of the
acquire-zarr live mirror) read a selection by turning the key into the flat
storage-order numbers of the planes it covers, fetching those planes, and
cutting the frame part of the key out of each. The plane numbers come from
the key's own ranges, never from a table over the declared shape: an axis
declared with 10**9 entries costs what a selection of it reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class PlaneReader:
    """Array-like of shape ``index_shape + frame_shape`` over numbered planes.

    Parameters
    ----------
    index_shape
        The non-frame axes (storage order).
    frame_shape
        (Y, X).
    dtype
        The planes' dtype.
    read
        Given flat C-order plane numbers, returns those planes in that order.
    """

    def __init__(
        self,
        index_shape: tuple[int, ...],
        frame_shape: tuple[int, ...],
        dtype: np.dtype,
        read: Callable[[np.ndarray], Sequence[np.ndarray]],
    ) -> None:
        self._index_shape = index_shape
        self._frame_shape = frame_shape
        self._read = read
        self.dtype = dtype
        self.shape = index_shape + frame_shape
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[...], dtype=dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        nidx = len(self._index_shape)
        index_key, frame_key = split_key(key, self.ndim, nidx)
        flat = flat_planes(index_key, self._index_shape)
        planes = self._read(flat.reshape(-1))
        # the frame part's shape, from a zero-stride array (no frame allocated)
        probe = np.broadcast_to(np.zeros((), self.dtype), self._frame_shape)
        out = np.empty(flat.shape + probe[frame_key].shape, self.dtype)
        flat_out = out.reshape((-1, *probe[frame_key].shape))
        for i, plane in enumerate(planes):
            flat_out[i] = plane[frame_key]
        return out


def flat_planes(key: tuple[Any, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Flat C-order plane numbers that ``key`` selects, shaped as numpy would."""
    flat = np.zeros((), dtype=np.int64)
    for k, n in zip(key, shape):
        if isinstance(k, slice):
            index = np.arange(*k.indices(n), dtype=np.int64)
            flat = flat[..., np.newaxis] * n + index
        else:
            i = int(k)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for size {n}")
            flat = flat * n + i % n
    return flat


def split_key(
    key: Any, ndim: int, nidx: int
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``key`` as (index part, frame part), each one entry per axis."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices: {len(key)} for {ndim} axes")
    for k in key:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer, slice)):
            raise TypeError(f"indices must be ints, slices or '...', not {k!r}")
    key = key + (slice(None),) * (ndim - len(key))
    return key[:nidx], key[nidx:]
