"""The on-disk layout of a scratch root, shared by its writer and its reader.

A scratch root is a directory holding:

- ``manifest.json``: ``AcquisitionSettings.model_dump(mode="json")`` merged at
  the top level with ``position_shapes`` (logical shape of each position array,
  storage order, frame dims last), ``storage_dimension_names``,
  ``global_metadata``, ``frames_written``, ``complete`` and an ``ome_writers``
  marker (``{"kind": "scratch", "version": ...}``) that identifies the root as
  ours. It is only ever replaced atomically (temporary file, then rename).
  The final manifest (``complete: true``) is indented; the ones written while
  the arrays grow are compact, which json serializes in C without leaving
  reference cycles behind: up to Python 3.12 the indenting serializer is
  pure Python and leaves ~30 objects per call for the garbage collector, and
  a collection (about 10 ms here, far more in a large application) blocks
  every thread, the camera loop included.
- ``pos_<p>.dat``: raw C-order pixels of position ``p``. The file always holds
  at least ``position_shapes[p]``; after a clean close exactly that.
- ``frame_metadata.jsonl``: one JSON object per frame appended with metadata.
- ``progress.bin``: 8 bytes, little-endian uint64, the number of frames
  appended or skipped; updated after every frame so that an interrupted run
  knows how far it got.
"""

from __future__ import annotations

import json
import re
import threading
from typing import TYPE_CHECKING, Any

from ome_writers._util import replace_file

if TYPE_CHECKING:
    from pathlib import Path

MANIFEST = "manifest.json"
FRAME_METADATA = "frame_metadata.jsonl"
PROGRESS = "progress.bin"
MARKER_KEY = "ome_writers"
KIND = "scratch"
_DATA_RE = re.compile(r"pos_\d+\.dat")


def manifest_text(payload: dict[str, Any]) -> bytes:
    """The manifest's bytes: indented once complete, compact while growing."""
    indent = 1 if payload.get("complete") else None
    return json.dumps(payload, indent=indent).encode("utf-8")


def data_file_name(position_index: int) -> str:
    """File name of a position's pixels."""
    return f"pos_{position_index}.dat"


def is_scratch_root(path: Path) -> bool:
    """True when ``path`` is a directory whose manifest carries our marker."""
    manifest = read_manifest_or_none(path)
    return manifest is not None


def read_manifest_or_none(path: Path) -> dict[str, Any] | None:
    """The manifest of a scratch root, or None if ``path`` is not one."""
    try:
        text = (path / MANIFEST).read_text(encoding="utf-8")
        manifest = json.loads(text)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    marker = manifest.get(MARKER_KEY)
    if not isinstance(marker, dict) or marker.get("kind") != KIND:
        return None
    return manifest


def is_our_file(name: str) -> bool:
    """True for the file names a scratch root is made of."""
    return name in (MANIFEST, FRAME_METADATA, PROGRESS) or bool(
        _DATA_RE.fullmatch(name)
    )


def remove_scratch_files(path: Path) -> None:
    """Delete the files of an earlier scratch acquisition, and only those.

    The manifest goes last, so that a root interrupted half-way through is
    still recognised as ours (and can be replaced again).
    """
    for entry in path.iterdir():
        if entry.is_file() and is_our_file(entry.name) and entry.name != MANIFEST:
            entry.unlink()
    # hidden names now, "manifest.json.<pid>.tmp" from versions before 0.2
    for pattern in (f".{MANIFEST}.*.tmp", f"{MANIFEST}.*.tmp"):
        for leftover in path.glob(pattern):
            leftover.unlink()
    (path / MANIFEST).unlink(missing_ok=True)


class ConditionThread:
    """A daemon thread running ``_run``, and the condition its users share.

    Subclasses set their state, then start ``_thread``; ``_run`` returns once
    ``_stopped`` is set (by ``stop``) and its work is done.
    """

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Let the thread finish what it has, then end it."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()


class ManifestWriter(ConditionThread):
    """Replaces a manifest from a thread of its own; the latest state wins.

    Replacing a file takes a file creation and a rename, and under heavy
    writeback those wait behind the data queued for the device: tens to
    hundreds of milliseconds on this project's test machine, against 0.2 ms
    normally. The scratch writer keeps an unbounded stream's files ahead of
    the data (``_grower``) and ``submit``s a state describing them after
    each growth; an append waits (``wait_covered``) only for a frame past
    what the manifest on disk covers. A state submitted while an earlier one
    is being written replaces any state still waiting. The manifest never
    describes more than the files hold, because they are extended before a
    state is submitted. ``write_now`` goes through the same thread, so there
    is only ever one writer of the file. A failed write is kept in ``error``
    until the next write: the scratch writer then writes its current state
    with ``write_now`` before its next frame, and raises only if that fails.
    Errors stay in ``error`` after ``stop``.
    """

    def __init__(self, path: Path) -> None:
        super().__init__("ome-writers-manifest")
        self.path = path
        self.error: OSError | None = None
        self._pending: tuple[dict[str, Any], bool, int] | None = None
        #: frames the manifest on disk covers (``covers`` of the last write)
        self.covered = 0
        self._busy = False
        self._thread.start()

    def submit(
        self, payload: dict[str, Any], *, durable: bool = False, covers: int = 0
    ) -> None:
        """Queue ``payload`` (describing ``covers`` frames); do not wait."""
        with self._cond:
            self._pending = (payload, durable, covers)
            self._cond.notify_all()

    def wait_covered(self, frames: int) -> None:
        """Wait until the manifest on disk covers ``frames`` frames (or fails)."""
        with self._cond:
            while not self._cond.wait_for(
                lambda: self.covered >= frames or self._settled(), 0.5
            ):
                pass

    def write_now(
        self, payload: dict[str, Any], *, durable: bool = False, covers: int = 0
    ) -> None:
        """Replace the manifest with ``payload`` and wait; raise its ``OSError``."""
        with self._cond:
            self._pending = (payload, durable, covers)
            self.error = None
            self._cond.notify_all()
            while not self._cond.wait_for(self._settled, 0.5):
                pass
            # the caller handles a failure (no retry of a state it rolls back)
            error, self.error = self.error, None
            if error is None and not self._alive():
                error = OSError(f"the thread writing {str(self.path)!r} has stopped")
        if error is not None:
            raise error

    def _alive(self) -> bool:
        return self._thread.is_alive()

    def _settled(self) -> bool:
        """Nothing queued or being written (or no thread left to write it)."""
        return (self._pending is None and not self._busy) or not self._alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopped:
                    self._cond.wait()
                if self._pending is None:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            error: OSError | None = None
            try:
                text = manifest_text(job[0])
                replace_file(self.path, text, durable=job[1])
            except OSError as exc:
                error = exc
            except BaseException as exc:  # e.g. MemoryError: report, keep going
                error = OSError(f"cannot write {str(self.path)!r}: {exc!r}")
            with self._cond:
                self._busy = False
                if error is None:
                    self.covered = job[2]
                # a later write that succeeds makes an earlier failure moot;
                # a failure is kept for the writer, which rewrites the current
                # state itself (it does not retry an older one)
                self.error = error
                self._cond.notify_all()
