"""The OME-TIFF plane <-> IFD arithmetic against a brute-force enumeration.

``PlaneMap`` computes ``TiffData`` runs without tabulating the declared planes
(an axis may be declared with 10**9 entries). The model here walks every frame
through the router: a frame's IFD is its frame number in a file shared by the
positions, or its rank among its position's frames in a file of its own.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_writers._backends.tiff._planes import PlaneMap, tiff_data_runs
from ome_writers._router import FrameRouter


def _model_runs(
    router: FrameRouter, shape: tuple[int, ...], position: int, ppf: bool, limit: int
) -> list[tuple[int, int, int]]:
    steps = shape[0] if router.is_unbounded else 1
    frames = (router.num_frames or router.frames_per_step * steps) or 0
    pairs: list[tuple[int, int]] = []
    rank = 0
    for n in range(frames):
        p, index = router.locate(n)
        ifd = rank if ppf else n
        if p == position:
            rank += 1
            if ifd < limit:
                pairs.append((int(np.ravel_multi_index(index, shape)), ifd))
    pairs.sort()
    planes = np.array([p for p, _ in pairs], dtype=np.int64)
    ifds = np.array([i for _, i in pairs], dtype=np.int64)
    return tiff_data_runs(planes, ifds)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[FrameRouter, tuple[int, ...], bool]:
    names = draw(st.permutations(["t", "p", "c", "z", "cam"]))
    names = names[: draw(st.integers(2 if names[0] == "p" else 1, 5))]
    counts: list[int | None] = [draw(st.integers(1, 3)) for _ in names]
    unbounded = names[0] != "p" and draw(st.booleans())
    if unbounded:
        counts[0] = None
    stored = [n for n in names if n != "p"]
    rest = draw(st.permutations(stored[1:] if unbounded else stored))
    order = ([stored[0]] if unbounded else []) + list(rest)
    groups = [[n] for n in order]
    merged = {"c", "cam"} <= set(order[1:] if unbounded else order)
    if merged and draw(st.booleans()):
        at = min(order.index("c"), order.index("cam"))
        groups = [[n] for n in order if n not in ("c", "cam")]
        groups.insert(at, ["c", "cam"])
    position = "p" if "p" in names else None
    router = FrameRouter(names, counts, position_name=position, storage_groups=groups)
    steps = draw(st.integers(1, 3))
    shape = tuple(
        int(np.prod([router.counts[a] or steps for a in g]))
        for g in router.storage_groups
    )
    return router, shape, draw(st.booleans())


@settings(max_examples=300, deadline=None, derandomize=True)
@given(layout=layouts(), data=st.data())
def test_plane_map_matches_the_enumeration(
    layout: tuple[FrameRouter, tuple[int, ...], bool], data: st.DataObject
) -> None:
    router, shape, ppf = layout
    planes = PlaneMap(router, per_position_file=ppf)
    for position in range(router.num_positions):
        every = _model_runs(router, shape, position, ppf, 1 << 62)
        assert planes.declared_runs(position, shape) == every
        limit = data.draw(st.integers(0, int(np.prod(shape)) * router.num_positions))
        written = planes.written_planes(position, shape, limit)
        assert tiff_data_runs(*written) == _model_runs(
            router, shape, position, ppf, limit
        )
