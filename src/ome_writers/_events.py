"""Coordinate updates and their dispatch off the hot path.

``append`` only puts the frame number on a queue, and only when somebody is
listening. A daemon thread turns frame numbers into ``CoordUpdate`` objects and
calls the callbacks, so a slow callback delays other callbacks, never the
camera loop, and a failing one is logged with its traceback and otherwise
ignored. ``close()`` waits until every queued update has been delivered, so
callbacks have seen every frame when it returns.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ome_writers._router import FrameRouter

logger = logging.getLogger("ome_writers")

EventName = Literal["coords_changed", "coords_expanded"]
EVENT_NAMES: tuple[EventName, ...] = ("coords_changed", "coords_expanded")
_STOP = -1


@dataclass(frozen=True)
class CoordUpdate:
    """Where the acquisition is after a frame (as ome-writers 0.3 defines it).

    Attributes
    ----------
    frame_number
        The frame just appended (or skipped), counted from 0.
    current_indices
        Its index along every dimension, by name, acquisition order (0 for
        the frame dimensions).
    max_coords
        The coordinates reached so far along every dimension, by name: the
        labels of the first ``n`` entries of a dimension with ``coords``
        (channel and position names, or the values given), else
        ``range(n)``, where ``n`` is one past the largest index reached; the
        frame dimensions in full. Their lengths are the shape of
        ``view(dynamic_shape=True)``, and they equal its ``coords``.
    is_high_water_mark
        True when this frame grew ``max_coords``; ``coords_expanded`` fires
        exactly for these updates.
    """

    frame_number: int
    current_indices: Mapping[str, int]
    max_coords: Mapping[str, Sequence[Any]]
    is_high_water_mark: bool


#: the name this package used first; the same class
CoordsUpdate = CoordUpdate


def coord_label(coord: Any) -> Any:
    """A coordinate as a label: a channel's or position's name, else itself."""
    name = getattr(coord, "name", None)
    return name if isinstance(name, str) else coord


def coords_for_extent(
    labels: Mapping[str, Sequence[Any] | None], extent: Mapping[str, int]
) -> dict[str, Sequence[Any]]:
    """Every dimension's coordinates covering ``extent`` (labels or a range)."""
    out: dict[str, Sequence[Any]] = {}
    for name, size in extent.items():
        own = labels.get(name)
        out[name] = range(size) if own is None else list(own[:size])
    return out


class EventDispatcher:
    """Deliver ``CoordsUpdate``s to callbacks from a background thread."""

    def __init__(
        self,
        router: FrameRouter,
        labels: Mapping[str, Sequence[Any] | None],
        frame_sizes: Mapping[str, int],
    ) -> None:
        self._router = router
        self._labels = labels
        self._frame_sizes = dict(frame_sizes)
        self._frame_zeros = dict.fromkeys(frame_sizes, 0)
        self._callbacks: dict[str, list[Callable[[CoordUpdate], object]]] = {
            name: [] for name in EVENT_NAMES
        }
        self._queue: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._extent: tuple[int, ...] = tuple(0 for _ in router.names)

    @property
    def is_listening(self) -> bool:
        """True once any callback is registered."""
        return self._thread is not None

    def add(self, event: str, callback: Callable[[CoordUpdate], object]) -> None:
        """Register ``callback`` for ``event``."""
        if event not in self._callbacks:
            raise ValueError(
                f"unknown event {event!r}; events are {list(EVENT_NAMES)!r}"
            )
        if not callable(callback):
            raise TypeError(f"callback {callback!r} is not callable")
        self._callbacks[event].append(callback)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="ome-writers-events", daemon=True
            )
            self._thread.start()

    def push(self, frame_number: int, frames_before: int | None = None) -> None:
        """Queue the update of a frame; cheap, never blocks.

        ``frames_before``: frames written before the call that reached
        ``frame_number`` (a skip reaches its last frame in one call, and
        delivers one update, a high-water mark if anything in it grew).
        """
        since = frame_number if frames_before is None else frames_before
        with self._idle:
            self._pending += 1
        self._queue.put((frame_number, since))

    def drain(self) -> None:
        """Wait until every queued update has been delivered."""
        if self._thread is None or threading.current_thread() is self._thread:
            return
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0)

    def stop(self) -> None:
        """Deliver what is queued, then end the thread."""
        if self._thread is None:
            return
        self.drain()
        self._queue.put((_STOP, _STOP))
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while True:
            frame_number, since = self._queue.get()
            if frame_number == _STOP:
                return
            try:
                self._deliver(frame_number, since)
            finally:
                with self._idle:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def _deliver(self, frame_number: int, since: int) -> None:
        router = self._router
        index = router.acq_index(frame_number)
        extent = router.acq_extent(frame_number + 1)
        # compare with the extent before the call, not with the last delivered
        # update: frames written before anybody listened count too
        previous = router.acq_extent(since)
        grew = any(new > old for new, old in zip(extent, previous))
        self._extent = tuple(max(a, b) for a, b in zip(extent, self._extent))
        extent_by_name = {**dict(zip(router.names, self._extent)), **self._frame_sizes}
        update = CoordUpdate(
            frame_number=frame_number,
            current_indices={**dict(zip(router.names, index)), **self._frame_zeros},
            max_coords=coords_for_extent(self._labels, extent_by_name),
            is_high_water_mark=grew,
        )
        names: tuple[EventName, ...] = EVENT_NAMES if grew else ("coords_changed",)
        for name in names:
            for callback in list(self._callbacks[name]):
                try:
                    callback(update)
                except BaseException:  # even SystemExit: the thread must live on
                    logger.exception(
                        "ome_writers %s callback %r failed on frame %d",
                        name,
                        callback,
                        frame_number,
                    )
