"""Independent index math for the tests: where frame ``n`` of an acquisition goes.

Written from the dimension sizes alone (no ome_writers code), so that the
tests check the package's router rather than repeat it.
"""

from __future__ import annotations


def acq_index(sizes: dict[str, int | None], n: int) -> tuple[int, ...]:
    """Index of frame ``n`` over the non-frame dimensions, acquisition order."""
    names = [k for k in sizes if k not in ("y", "x")]
    digits: list[int] = []
    rest = n
    for name in reversed(names):
        count = sizes[name]
        if count is None:
            digits.append(rest)
        else:
            rest, digit = divmod(rest, count)
            digits.append(digit)
    return tuple(reversed(digits))


def locate(sizes: dict[str, int | None], n: int) -> tuple[int, tuple[int, ...]]:
    """(position, storage index) of frame ``n`` when storage keeps acquisition
    order without the position dimension (scratch, and OME-TIFF's series)."""
    names = [k for k in sizes if k not in ("y", "x")]
    index = dict(zip(names, acq_index(sizes, n)))
    return index.get("p", 0), tuple(v for k, v in index.items() if k != "p")
