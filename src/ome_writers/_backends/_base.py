"""The backend contract.

A backend owns the storage of one acquisition. The stream does everything that
is the same for every format (validating frames, claiming slots in acquisition
order under a lock, counting frames, dispatching events), then calls the
backend with frames that already have the stream's dtype and frame shape.

Contract, checked by ``tests/backends``:

- ``open()`` creates the output. Every check that can refuse (existing output,
  budgets, paths) runs before anything on disk changes.
- ``write(frame_number, frame, metadata)`` stores one frame, of the stream's
  dtype and frame shape but not necessarily C-contiguous. Writes arrive one
  at a time (the stream serializes them) and in increasing frame number; gaps
  are frames that were skipped with ``skip()``. When ``write`` returns, the
  backend no longer needs ``frame``: the caller may overwrite that buffer, so a
  backend that hands the array to an asynchronous engine copies it first. If
  ``write`` raises, the frame counts as not written and the same frame number
  will be offered again.
- ``skip(first_frame, count)`` marks frames that will never get data; they read
  as zeros. A format that must write something per skipped frame (an OME-TIFF
  page, an acquire-zarr frame) calls ``check_zero_fill`` first, so that a
  huge count is refused at once instead of running for days.
- ``position_data(p, frames_written)`` returns position ``p`` in storage
  order with the logical shape after ``frames_written`` frames: a numpy array,
  or a lazy array-like with ``shape`` whose ``__getitem__`` (ints and slices)
  returns something ``np.asarray`` converts. Frames the backend still buffers
  must be visible. It may be called from any thread, during and after
  acquisition.
- ``close(frames_written)`` finishes the output: every frame handed to
  ``write`` reaches the operating system before it returns, and errors from
  background work are raised from it, never dropped.
- ``get_metadata()`` / ``update_metadata(metadata, closed=...)``: the
  format's editable metadata (OME-Zarr: image group path -> attributes;
  OME-TIFF: file key -> ``ome_types.OME``). The default, for formats without
  any (scratch), is an empty dict and refusing anything else.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from ome_writers._backends._registry import import_backend

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy as np

    from ome_writers._backends._journal import Journal
    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings


#: the most frames one ``skip`` may fill in a format that writes each of them
MAX_ZERO_FILL_FRAMES = 100_000
#: the most bytes of zeros one ``skip`` may fill in such a format
MAX_ZERO_FILL_BYTES = 4 * 1024**3


def check_zero_fill(count: int, frame_bytes: int, format_name: str) -> None:
    """Refuse a skip that would write more zeros than a skip should.

    ``frame_bytes``: the bytes written per skipped frame (0 for a hole in a
    file). The limits keep one call within about a minute on a slow disk.

    Raises
    ------
    ValueError
        Over ``MAX_ZERO_FILL_FRAMES`` frames or ``MAX_ZERO_FILL_BYTES`` bytes;
        nothing is written.
    """
    nbytes = count * frame_bytes
    if count > MAX_ZERO_FILL_FRAMES or nbytes > MAX_ZERO_FILL_BYTES:
        zeros = f" ({nbytes:,} bytes of zeros)" if nbytes else ""
        raise ValueError(
            f"cannot skip {count:,} frames in one call: {format_name} writes "
            f"every skipped frame{zeros}, and one skip may fill at "
            f"most {MAX_ZERO_FILL_FRAMES:,} frames and {MAX_ZERO_FILL_BYTES:,} "
            "bytes; skip in smaller steps, or use OME-Zarr through tensorstore "
            "or zarr-python (or scratch), which skip any count without writing"
        )


class FrameMetadata(NamedTuple):
    """Per-frame metadata, validated and JSON-encoded once by the stream."""

    values: dict[str, Any]
    json: str


@runtime_checkable
class SupportsRecovery(Protocol):
    """A backend that can finish an output its killed writer left behind.

    ``reopen()`` opens the existing output for finishing (instead of
    ``open()``); ``write`` then stores the frames the journal kept,
    ``restore_frame_metadata`` the metadata of frames already in the output,
    and ``close`` writes the final metadata as after a normal acquisition.
    """

    def reopen(self) -> None:
        """Open the interrupted output; ``NotADatasetError`` if it is missing."""

    def restore_frame_metadata(
        self, frame_number: int, metadata: FrameMetadata
    ) -> None:
        """Keep the metadata of a frame already in the output."""


@runtime_checkable
class SupportsDirectWrite(Protocol):
    """Optional ability: frames may be copied straight into a numpy array.

    ``direct_target()`` returns ``(array, stop)``: frame number ``n < stop``
    goes to ``array[n]`` with no other bookkeeping, or None when there is no
    such array now. The stream uses it for frames without metadata and calls
    ``write`` (then asks again) from ``stop`` on, which lets the backend grow,
    pre-fault or move before handing out the next stretch.
    """

    def direct_target(self) -> tuple[np.ndarray, int] | None:
        """The array and the first frame number it does not cover."""
        ...


class Backend(abc.ABC):
    """Storage for one acquisition; see the module notes for the contract."""

    #: set by the stream after ``open()`` when ``journal_output`` is not None
    journal: Journal | None = None

    def __init__(self, settings: AcquisitionSettings, router: FrameRouter) -> None:
        self.settings = settings
        self.router = router

    @property
    def journal_output(self) -> Path | None:
        """The output a journal is kept beside (see ``_journal``), or None."""
        return None

    @property
    def frame_journal(self) -> Journal | None:
        """The journal, if it keeps frames in flight (a conversion's does not)."""
        journal = self.journal
        return journal if journal is not None and journal.keeps_frames else None

    @abc.abstractmethod
    def open(self) -> None:
        """Create the output, refusing before any change on disk."""

    @abc.abstractmethod
    def write(
        self, frame_number: int, frame: np.ndarray, metadata: FrameMetadata | None
    ) -> None:
        """Store one frame."""

    @abc.abstractmethod
    def skip(self, first_frame: int, count: int) -> None:
        """Advance over ``count`` frames that read as zeros."""

    @abc.abstractmethod
    def position_data(self, position_index: int, frames_written: int) -> Any:
        """Read-only array-like of one position, storage order, logical shape."""

    def level_data(self, level: int, position_index: int, frames_written: int) -> Any:
        """Pyramid level ``level`` of one position as stored, storage order.

        Level 0 is ``position_data``. None where the format cannot read a
        lower level back itself (the stream then computes it from level 0).
        """
        if level == 0:
            return self.position_data(position_index, frames_written)
        return None

    @abc.abstractmethod
    def set_global_metadata(self, metadata: dict[str, Any], *, closed: bool) -> None:
        """Persist the acquisition-level metadata (all namespaces).

        ``closed``: the stream is closed; the metadata already written is
        rewritten (nothing else changes).
        """

    @abc.abstractmethod
    def close(self, frames_written: int) -> None:
        """Finish the output; idempotence is handled by the stream."""

    def get_metadata(self) -> dict[Any, Any]:
        """The format's editable metadata; none by default."""
        return {}

    def update_metadata(self, metadata: Mapping[Any, Any], *, closed: bool) -> None:
        """Replace what ``get_metadata`` returned; by default only ``{}`` is."""
        if metadata:
            raise ValueError(
                f"format {self.settings.format.name!r} has no per-image metadata to "
                f"update (got keys {sorted(map(str, metadata))!r}); record "
                "acquisition-level metadata with stream.set_global_metadata(...)"
            )

    @property
    def storage_path(self) -> str | None:
        """Where the data is on disk now, or None while it is only in memory."""
        return self.settings.output_path or None

    def abort(self) -> None:  # noqa: B027 - optional hook, default is nothing
        """Release resources after a failed ``open()``; default does nothing."""


def get_backend_class(name: str) -> type[Backend]:
    """The backend class for ``name``, its engine imported now.

    Raises
    ------
    BackendUnavailableError
        When the engine is not installed; the message names the pip command.
    """
    cls = import_backend(name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"backend {name!r} resolved to {cls!r}, not a Backend class")
    return cls
