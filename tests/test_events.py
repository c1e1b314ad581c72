"""Coordinate events: what callbacks receive, and that they never break append."""

from __future__ import annotations

import itertools
import logging
import threading
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ome_writers import (
    AcquisitionSettings,
    CoordsUpdate,
    CoordUpdate,
    create_stream,
    dims_from_standard_axes,
)

if TYPE_CHECKING:
    from collections.abc import Callable

SIZES = {"t": 2, "p": ["A1", "B2"], "c": 3, "y": 3, "x": 4}
NAMES = ("t", "p", "c")
COUNTS = (2, 2, 3)
#: coordinate labels of the dimensions that have them
LABELS = {"p": ["A1", "B2"]}
FRAME = {"y": 3, "x": 4}


def expected_updates(
    frames: range,
    counts: tuple[int, ...] = COUNTS,
    names: tuple[str, ...] = NAMES,
    *,
    skips: tuple[range, ...] = (),
) -> list[CoordUpdate]:
    """Brute force: index of each frame, and the coordinates reached after it.

    One update per frame of ``frames``, except that each range in ``skips``
    (one ``skip`` call) gives one update, for its last frame, a high-water
    mark if any frame of it grew the coordinates.
    """
    indices = list(itertools.product(*(range(c) for c in counts)))
    skipped = {n: r for r in skips for n in r}
    out = []
    extent = [0] * len(counts)
    before = extent
    for n in range(frames.stop):
        if n not in skipped or n == skipped[n].start:
            before = extent
        extent = [max(e, i + 1) for e, i in zip(extent, indices[n])]
        last_of_call = n not in skipped or n == skipped[n][-1]
        if n in frames and last_of_call:
            max_coords: dict = {
                name: LABELS[name][:size] if name in LABELS else range(size)
                for name, size in zip(names, extent)
            }
            max_coords.update({name: range(size) for name, size in FRAME.items()})
            out.append(
                CoordUpdate(
                    frame_number=n,
                    current_indices={**dict(zip(names, indices[n])), "y": 0, "x": 0},
                    max_coords=max_coords,
                    is_high_water_mark=extent != before,
                )
            )
    return out


def make_settings(sizes: dict | None = None) -> AcquisitionSettings:
    return AcquisitionSettings(
        dimensions=dims_from_standard_axes(sizes or SIZES), dtype="uint16"
    )


def test_coords_changed_for_every_append_and_skip(make_frame: Callable) -> None:
    updates: list[CoordUpdate] = []
    with create_stream(make_settings()) as stream:
        stream.on("coords_changed", updates.append)
        for n in range(5):
            stream.append(make_frame(n))
        stream.skip(frames=3)
        for n in range(8, 12):
            stream.append(make_frame(n))
    assert updates == expected_updates(range(12), skips=(range(5, 8),))
    assert [u.frame_number for u in updates] == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]


def test_a_huge_skip_gives_one_update() -> None:
    updates: list[CoordUpdate] = []
    settings = make_settings({"t": None, "c": 3, "y": 3, "x": 4})
    with create_stream(settings) as stream:
        stream.on("coords_expanded", updates.append)
        stream.skip(frames=2**24)
    (update,) = updates
    assert update.frame_number == 2**24 - 1
    assert update.current_indices == {"t": (2**24 - 1) // 3, "c": 0, "y": 0, "x": 0}
    assert len(update.max_coords["t"]) == (2**24 - 1) // 3 + 1


def test_coords_expanded_only_at_high_water_marks(make_frame: Callable) -> None:
    expanded: list[CoordUpdate] = []
    with create_stream(make_settings()) as stream:
        stream.on("coords_expanded", expanded.append)
        for n in range(12):
            stream.append(make_frame(n))
    expected = [u for u in expected_updates(range(12)) if u.is_high_water_mark]
    assert expanded == expected
    assert [u.frame_number for u in expanded] == [0, 1, 2, 3, 6]
    assert all(u.is_high_water_mark for u in expanded)


def test_max_coords_is_the_dynamic_view_shape(make_frame: Callable) -> None:
    updates: list[CoordUpdate] = []
    with create_stream(make_settings()) as stream:
        stream.on("coords_changed", updates.append)
        for n in range(4):
            stream.append(make_frame(n))
    view = stream.view()
    sizes = tuple(len(c) for c in updates[-1].max_coords.values())
    assert sizes == view.shape
    assert list(updates[-1].max_coords) == [*NAMES, "y", "x"]
    assert updates[-1].max_coords == view.coords
    assert updates[-1].max_coords["p"] == ["A1", "B2"]


def test_coords_update_is_the_03_name() -> None:
    assert CoordsUpdate is CoordUpdate


def test_listening_from_the_middle(make_frame: Callable) -> None:
    updates: list[CoordUpdate] = []
    with create_stream(make_settings()) as stream:
        for n in range(4):
            stream.append(make_frame(n))
        stream.on("coords_changed", updates.append)
        for n in range(4, 12):
            stream.append(make_frame(n))
    assert updates == expected_updates(range(4, 12))


def test_several_callbacks_and_events(make_frame: Callable) -> None:
    first: list[int] = []
    second: list[int] = []
    expanded: list[int] = []
    with create_stream(make_settings()) as stream:
        stream.on("coords_changed", lambda u: first.append(u.frame_number))
        stream.on("coords_changed", lambda u: second.append(u.frame_number))
        stream.on("coords_expanded", lambda u: expanded.append(u.frame_number))
        for n in range(12):
            stream.append(make_frame(n))
    assert first == second == list(range(12))
    assert expanded == [0, 1, 2, 3, 6]


def test_unbounded_updates(make_frame: Callable) -> None:
    updates: list[CoordUpdate] = []
    with create_stream(make_settings({"t": None, "c": 2, "y": 3, "x": 4})) as stream:
        stream.on("coords_changed", updates.append)
        for n in range(7):
            stream.append(make_frame(n))
    assert updates == expected_updates(range(7), counts=(4, 2), names=("t", "c"))
    assert updates[-1].max_coords == {
        "t": range(4),
        "c": range(2),
        "y": range(3),
        "x": range(4),
    }


def test_callbacks_run_off_the_calling_thread(make_frame: Callable) -> None:
    threads: set[int] = set()
    with create_stream(make_settings()) as stream:
        stream.on("coords_changed", lambda u: threads.add(threading.get_ident()))
        stream.append(make_frame(0))
    assert threads
    assert threading.get_ident() not in threads


def test_blocked_callback_does_not_block_append(make_frame: Callable) -> None:
    release = threading.Event()
    calls: list[int] = []

    def blocking(update: CoordsUpdate) -> None:
        calls.append(update.frame_number)
        release.wait(timeout=30)

    with create_stream(make_settings()) as stream:
        stream.on("coords_changed", blocking)
        for n in range(12):
            stream.append(make_frame(n))
        assert stream.frames_written == 12
        assert len(calls) <= 1  # the callback is still stuck on its first frame
        release.set()
    assert calls == list(range(12))


def test_raising_callback_is_logged_not_raised(
    make_frame: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    delivered: list[int] = []

    def broken(update: CoordsUpdate) -> None:
        raise RuntimeError(f"callback bug at {update.frame_number}")

    caplog.set_level(logging.ERROR, logger="ome_writers")
    with create_stream(make_settings()) as stream:
        stream.on("coords_changed", broken)
        stream.on("coords_expanded", broken)
        stream.on("coords_changed", lambda u: delivered.append(u.frame_number))
        for n in range(12):
            stream.append(make_frame(n))
    assert delivered == list(range(12))
    records = [r for r in caplog.records if r.name == "ome_writers"]
    assert len(records) == 12 + 5
    assert all(r.levelno == logging.ERROR for r in records)
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in records)
    assert "callback bug at 0" in caplog.text
    np.testing.assert_array_equal(
        stream.arrays[1][1, 2], make_frame(11)
    )  # every frame still landed


@pytest.mark.parametrize(
    ("event", "callback", "error", "match"),
    [
        pytest.param("frame_ready", print, ValueError, "coords_changed", id="unknown"),
        pytest.param("coords_changed", 42, TypeError, "callable", id="not-callable"),
    ],
)
def test_bad_registration(
    event: str, callback: object, error: type[Exception], match: str
) -> None:
    with create_stream(make_settings()) as stream:
        with pytest.raises(error, match=match):
            stream.on(event, callback)  # type: ignore[arg-type]
