"""Frame routing, checked through the public API against a brute-force model.

Every frame of a stream carries a unique value. Whatever the dimension order,
sizes, position-axis placement and storage order, each storage slot of each
position must receive exactly one frame, the frame that an independent
``itertools.product`` enumeration of the acquisition says belongs there, and
``frame_metadata.jsonl`` must list the frames in acquisition order.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_writers import AcquisitionSettings, Dimension, ScratchFormat, create_stream

FRAME_SHAPE = (1, 2)


def frame_value(n: int) -> int:
    return n + 1


def make_frame(n: int) -> np.ndarray:
    # pixel (0, 1) differs from (0, 0), so a transposed frame would show
    return np.array([[frame_value(n), frame_value(n) + 1_000_000]], dtype="uint32")


@dataclass
class Layout:
    """A random acquisition: names/counts in acquisition order and a storage order."""

    names: list[str]
    counts: list[int | None]
    position_axis: int | None
    storage_order: str | list[str]

    @property
    def storage_names(self) -> list[str]:
        """Non-position names in storage order (the model's own derivation)."""
        acq = [n for i, n in enumerate(self.names) if i != self.position_axis]
        if isinstance(self.storage_order, str):
            return acq
        return [n for n in self.storage_order if n in acq]

    @property
    def num_positions(self) -> int:
        if self.position_axis is None:
            return 1
        return int(self.counts[self.position_axis] or 1)

    def dimensions(self) -> list[Dimension]:
        dims = []
        for i, (name, count) in enumerate(zip(self.names, self.counts)):
            if i == self.position_axis:
                dims.append(Dimension(name, coords=[f"s{k}" for k in range(count)]))
            else:
                dims.append(Dimension(name, count, type="other"))
        return [*dims, Dimension("y", FRAME_SHAPE[0]), Dimension("x", FRAME_SHAPE[1])]


@st.composite
def layouts(draw: st.DrawFn, *, unbounded: bool) -> Layout:
    n_axes = draw(st.integers(1 if unbounded else 0, 3))
    names = draw(
        st.lists(
            st.sampled_from(["t", "c", "z", "a", "b"]),
            min_size=n_axes,
            max_size=n_axes,
            unique=True,
        )
    )
    counts: list[int | None] = draw(
        st.lists(st.integers(1, 3), min_size=n_axes, max_size=n_axes)
    )
    position_axis = None
    if draw(st.booleans()):
        position_axis = draw(st.integers(1 if unbounded else 0, n_axes))
        names.insert(position_axis, "p")
        counts.insert(position_axis, draw(st.integers(1, 3)))
    if unbounded:
        counts[0] = None
    non_position = [n for n in names if n != "p"]
    choice = draw(st.sampled_from(["acquisition", "ome", "list", "list-with-p"]))
    storage_order: str | list[str] = choice
    if choice.startswith("list"):
        head, tail = (
            (non_position[:1], non_position[1:]) if unbounded else ([], non_position)
        )
        order = head + list(draw(st.permutations(tail)))
        if choice == "list-with-p" and position_axis is not None:
            order.insert(draw(st.integers(0, len(order))), "p")
        storage_order = order
    return Layout(names, counts, position_axis, storage_order)


def brute_force(
    layout: Layout, num_frames: int
) -> tuple[list[tuple[int, tuple[int, ...]]], list[np.ndarray], tuple[int, ...]]:
    """Where each frame goes, computed by enumerating acquisition indices.

    Returns the (position, storage index) of each frame in acquisition order,
    the expected value grid of each position in storage order (0 = unwritten),
    and the acquisition-order counts covering ``num_frames`` frames.
    """
    counts = list(layout.counts)
    if counts and counts[0] is None:
        rest = math.prod(c for c in counts[1:] if c is not None)
        counts[0] = -(-num_frames // rest)
    storage_axes = [layout.names.index(n) for n in layout.storage_names]
    storage_shape = tuple(counts[a] for a in storage_axes)
    grids = [np.zeros(storage_shape, "int64") for _ in range(layout.num_positions)]
    hits = [np.zeros(storage_shape, "int64") for _ in range(layout.num_positions)]
    order = []
    indices = itertools.product(*(range(int(c)) for c in counts))
    for n, index in enumerate(itertools.islice(indices, num_frames)):
        position = 0 if layout.position_axis is None else index[layout.position_axis]
        storage_index = tuple(index[a] for a in storage_axes)
        order.append((position, storage_index))
        grids[position][storage_index] = frame_value(n)
        hits[position][storage_index] += 1
    assert all(h.max(initial=0) <= 1 for h in hits)
    return order, grids, tuple(int(c) for c in counts)


def read_root(root: Path) -> tuple[dict[str, Any], list[np.ndarray], list[dict]]:
    manifest = json.loads((root / "manifest.json").read_text())
    arrays = [
        np.memmap(
            root / f"pos_{p}.dat", dtype=manifest["dtype"], mode="r", shape=tuple(s)
        )
        for p, s in enumerate(manifest["position_shapes"])
    ]
    lines = (root / "frame_metadata.jsonl").read_text().splitlines()
    return manifest, arrays, [json.loads(line) for line in lines]


def check_stored(layout: Layout, arrays: list[Any], grids: list[np.ndarray]) -> None:
    assert len(arrays) == layout.num_positions
    for array, grid in zip(arrays, grids):
        data = np.asarray(array)
        assert data.shape == (*grid.shape, *FRAME_SHAPE)
        np.testing.assert_array_equal(data[..., 0, 0], grid)
        written = grid > 0
        np.testing.assert_array_equal(
            data[..., 0, 1][written], grid[written] + 1_000_000
        )
        np.testing.assert_array_equal(data[..., 0, 1][~written], 0)


def check_view(stream: Any, acq_counts: tuple[int, ...], num_frames: int) -> None:
    expected = np.zeros(math.prod(acq_counts), "int64")
    expected[:num_frames] = np.arange(1, num_frames + 1)
    expected = expected.reshape(acq_counts)
    view = stream.view(dynamic_shape=False)
    assert view.shape == (*acq_counts, *FRAME_SHAPE)
    np.testing.assert_array_equal(np.asarray(view)[..., 0, 0], expected)


@settings(max_examples=60, deadline=None)
@given(layout=layouts(unbounded=False))
def test_bounded_routing_on_disk(layout: Layout) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        acq = AcquisitionSettings(
            root_path=str(root),
            dimensions=layout.dimensions(),
            dtype="uint32",
            storage_order=layout.storage_order,
            format=ScratchFormat(fsync="never"),
        )
        num_frames = acq.num_frames
        assert num_frames == math.prod(c or 1 for c in layout.counts)
        order, grids, acq_counts = brute_force(layout, num_frames)
        with create_stream(acq) as stream:
            for n in range(num_frames):
                stream.append(make_frame(n), frame_metadata={"n": n})
                position, storage_index = order[n]
                live = stream.arrays[position][storage_index]
                np.testing.assert_array_equal(live, make_frame(n))
            with pytest.raises(IndexError):
                stream.append(make_frame(num_frames))
        _manifest, arrays, records = read_root(root)
        check_stored(layout, arrays, grids)
        # every slot hit exactly once: the unique values cover 1..N, no zeros
        values = np.sort(np.concatenate([a[..., 0, 0].ravel() for a in arrays]))
        np.testing.assert_array_equal(values, np.arange(1, num_frames + 1))
        # frames recorded in acquisition order, each where the model puts it
        assert [r["n"] for r in records] == list(range(num_frames))
        assert [
            (r["position_index"], tuple(r["storage_index"])) for r in records
        ] == order
        check_view(stream, acq_counts, num_frames)
        del arrays


@settings(max_examples=40, deadline=None)
@given(
    layout=layouts(unbounded=True),
    extra_frames=st.integers(0, 10),
    on_disk=st.booleans(),
)
def test_unbounded_routing(layout: Layout, extra_frames: int, on_disk: bool) -> None:
    per_step = math.prod(c for c in layout.counts[1:] if c is not None)
    num_frames = per_step + extra_frames
    order, grids, acq_counts = brute_force(layout, num_frames)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root" if on_disk else None
        acq = AcquisitionSettings(
            root_path=str(root or ""),
            dimensions=layout.dimensions(),
            dtype="uint32",
            storage_order=layout.storage_order,
            format=ScratchFormat(fsync="never"),
        )
        with create_stream(acq) as stream:
            for n in range(num_frames):
                stream.append(make_frame(n), frame_metadata={"n": n})
                steps = -(-(n + 1) // per_step)
                assert stream.arrays[0].shape[0] == steps
                position, storage_index = order[n]
                live = stream.arrays[position][storage_index]
                np.testing.assert_array_equal(live, make_frame(n))
            check_stored(layout, stream.arrays, grids)
            check_view(stream, acq_counts, num_frames)
            # dynamic extent: one past the largest index reached on each axis
            indices = list(itertools.product(*(range(c) for c in acq_counts)))
            extent = np.max(indices[:num_frames], axis=0) + 1
            assert stream.view().shape == (*extent.tolist(), *FRAME_SHAPE)
        check_stored(layout, stream.arrays, grids)
        if root is not None:
            _manifest, arrays, records = read_root(root)
            check_stored(layout, arrays, grids)
            assert [
                (r["position_index"], tuple(r["storage_index"])) for r in records
            ] == order
            del arrays


@pytest.mark.parametrize(
    ("frame_number", "position", "storage_index"),
    [
        pytest.param(0, 0, (0, 0), id="first"),
        pytest.param(1, 0, (0, 1), id="next-channel"),
        pytest.param(2, 1, (0, 0), id="next-position"),
        pytest.param(5, 2, (0, 1), id="last-of-t0"),
        pytest.param(7, 0, (1, 1), id="t1"),
        pytest.param(11, 2, (1, 1), id="last"),
    ],
)
def test_known_routes_tpc(
    frame_number: int, position: int, storage_index: tuple
) -> None:
    layout = Layout(["t", "p", "c"], [2, 3, 2], 1, "acquisition")
    order, _grids, _counts = brute_force(layout, 12)
    assert order[frame_number] == (position, storage_index)
    acq = AcquisitionSettings(dimensions=layout.dimensions(), dtype="uint32")
    with create_stream(acq) as stream:
        for n in range(12):
            stream.append(make_frame(n))
    np.testing.assert_array_equal(
        stream.arrays[position][storage_index], make_frame(frame_number)
    )
