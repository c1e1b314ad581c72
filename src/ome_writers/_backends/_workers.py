"""Daemon worker threads for the writes a backend runs in the background.

Why not ``concurrent.futures.ThreadPoolExecutor``: since Python 3.9 it refuses
new work once the interpreter begins to shut down, and that begins when the
main thread ends. An acquisition program that runs its camera loop in a
thread of its own and lets the main thread return (Python then waits for that
thread) would fail at its next frame. These threads take work until
``shutdown``. They are daemons, so a stream that is never closed does not keep
the process alive; its finalizer closes it at exit (atexit callbacks run
while daemon threads still run), and that waits for every queued write.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

_Work = tuple[Future[Any], "Callable[..., Any]", tuple[Any, ...]]


class WorkerThreads:
    """A fixed set of daemon threads running submitted calls in order.

    Calls start in submission order (one queue), so a call may wait for one
    submitted before it without deadlocking the set.
    """

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._is_shut_down = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(max(count, 1))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on a worker; its result or error goes to the future."""
        future: Future[Any] = Future()
        with self._lock:
            if self._is_shut_down:
                raise RuntimeError("these worker threads were shut down")
            self._queue.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Run everything submitted, then stop the threads; idempotent."""
        with self._lock:
            if not self._is_shut_down:
                self._is_shut_down = True
                for _ in self._threads:
                    self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            future, fn, args = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to whoever waits for it
                future.set_exception(exc)
            else:
                future.set_result(result)
