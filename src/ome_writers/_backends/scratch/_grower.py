"""Growing an unbounded stream's data files ahead of the writer, off its path.

Extending a file (``ftruncate``), allocating its blocks (``fallocate``) and
replacing the manifest that describes it all wait behind the kernel's
writeback: 0.1-0.2 s each on this project's test machine once a stream has
written past the dirty-page threshold, against microseconds otherwise. A
camera loop that waited for them would stall for that long (session 10 saw
124-131 ms appends against a 1.3 ms median). So a thread of its own grows
the files by a *lead* sized by time: the rate the writer has been writing at,
times ``horizon_s`` (or twice the slowest growth seen, if longer), within a
minimum and a maximum, and no more than what has been written so far (so a
short burst does not take gigabytes of disk; the lead at most doubles the
files); the writer asks for more once less than half of the lead is left,
and waits only when it catches up with the files (a stall longer than the
horizon, or a skip past them).

The rows the files hold are published (``rows``) only once they are extended
and allocated, and the writer never writes at or past them, so the range
being allocated holds no data: ``allocate_blocks`` gives back a failed
allocation by punching a hole over its range, which must never erase a
frame. After each growth ``on_grown(rows)`` runs on this thread (the scratch
backend queues a manifest describing the new extent there).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ome_writers._backends.scratch._files import ConditionThread

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("ome_writers")


class FileGrower(ConditionThread):
    """Keeps data files ``lead`` rows ahead of the writer (see the notes).

    Parameters
    ----------
    rows
        Rows the files hold (and have allocated) now.
    resize
        ``resize(rows)``: extend every file to ``rows`` rows; raises ``OSError``
        (a ``WriteError`` naming the file).
    allocate
        ``allocate(first_row, stop_row)``: allocate those rows' blocks, best
        effort (never raises for lack of room).
    on_grown
        ``on_grown(rows)``: called on this thread once ``rows`` are published.
    rows_per_step
        Growth is in whole steps of this many rows.
    min_lead_rows, max_lead_rows
        Bounds of the lead.
    horizon_s
        The time the lead should last at the writer's rate.
    """

    def __init__(
        self,
        rows: int,
        *,
        resize: Callable[[int], None],
        allocate: Callable[[int, int], None],
        on_grown: Callable[[int], None],
        rows_per_step: int,
        min_lead_rows: int,
        max_lead_rows: int,
        horizon_s: float,
    ) -> None:
        super().__init__("ome-writers-grow")
        self._resize = resize
        self._allocate = allocate
        self._on_grown = on_grown
        self._step = max(1, rows_per_step)
        self._min_lead = self._whole_steps(max(1, min_lead_rows))
        self._max_lead = max(self._min_lead, self._whole_steps(max_lead_rows))
        self._horizon_s = horizon_s
        #: rows every file holds and has allocated; the writer stays below
        self.rows = rows
        #: the writer asks for more once fewer rows than this are left
        self.low_water_rows = self._min_lead // 2
        self._lead = self._min_lead
        self._slowest_s = 0.0
        self._since = (time.monotonic(), 0)
        self._wanted = 0  # rows the writer needs now (the highest asked)
        self._error: OSError | None = None
        self._thread.start()

    def _whole_steps(self, rows: int) -> int:
        return -(-rows // self._step) * self._step

    # ------------------------------------------------------------- the writer

    def request(self, rows_needed: int) -> None:
        """Grow ahead of ``rows_needed``, rows the writer now uses; no wait."""
        with self._cond:
            if rows_needed > self._wanted:
                self._wanted = rows_needed
                self._cond.notify_all()

    def ensure(self, rows_needed: int) -> None:
        """Return once the files hold ``rows_needed`` rows; raise why not.

        A growth that failed in the background is tried again here, and its
        ``OSError`` raised if it fails again.
        """
        with self._cond:
            self._error = None
            # not the highest asked: a failed skip's wish is not retried
            self._wanted = rows_needed
            self._cond.notify_all()
            while self.rows < rows_needed:
                if self._error is not None or not self._thread.is_alive():
                    error = self._error or OSError(
                        "the thread growing the scratch files has stopped"
                    )
                    self._error = None
                    raise error
                self._cond.wait(0.5)

    # ------------------------------------------------------------- the thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (
                    self._error is not None
                    or self._wanted + self.low_water_rows <= self.rows
                ):
                    self._cond.wait()
                if self._stopped:
                    return
                wanted = self._wanted
            try:
                self._grow(wanted)
            except BaseException as exc:  # e.g. MemoryError: the writer raises it
                logger.debug("growing the scratch files failed: %r", exc)
                if not isinstance(exc, OSError):
                    exc = OSError(f"cannot grow the scratch files: {exc!r}")
                # no retry until the writer needs the rows (``ensure``)
                with self._cond:
                    self._error = exc
                    self._wanted = 0
                    self._cond.notify_all()

    def _grow(self, wanted: int) -> None:
        started = time.monotonic()
        then, rows_then = self._since
        if wanted > rows_then and started > then:
            rate = (wanted - rows_then) / (started - then)  # rows per second
            horizon = max(self._horizon_s, 2 * self._slowest_s)
            # never more ahead than written so far: a short burst into the
            # page cache does not take gigabytes of disk (the lead doubles)
            lead = min(int(rate * horizon), wanted)
            lead = self._whole_steps(lead)
            self._lead = min(max(lead, self._min_lead), self._max_lead)
        self._since = (started, wanted)
        first = self.rows
        target = self._whole_steps(wanted + self._lead)
        if target <= first:  # the files hold the new lead already
            with self._cond:  # (else this thread would be woken again at once)
                self.low_water_rows = self._lead // 2
            return
        self._resize(target)
        self._allocate(first, target)
        with self._cond:
            self.rows = target
            self.low_water_rows = self._lead // 2
            self._cond.notify_all()
        self._on_grown(target)
        self._slowest_s = max(self._slowest_s, time.monotonic() - started)
