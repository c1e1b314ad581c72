"""``create_stream`` and ``OMEStream``: the hot path.

``append`` does, per frame, only what must happen per frame: a type/shape/
dtype identity check (anything unusual takes the slow path that converts or
refuses), one lock to claim the next slot in acquisition order, the backend's
write, and a counter increment. A refused or failed frame does not use up a
slot. Events cost nothing while nobody listens.

The lock makes ``append`` and ``skip`` safe to call from several threads: each
call takes exactly one slot, in the order the calls take the lock. Readers
(``arrays``, ``view()``) never take it.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import warnings
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._base import (
    FrameMetadata,
    SupportsDirectWrite,
    get_backend_class,
)
from ome_writers._backends._journal import Journal, check_no_journal
from ome_writers._errors import StreamClosedError
from ome_writers._events import EventDispatcher, coord_label
from ome_writers._level_view import LevelArray
from ome_writers._pyramid import levels_of, pyramid_z_dimension
from ome_writers._router import build_router
from ome_writers._util import is_xml_uri, xml_unsafe_text
from ome_writers._view import PositionArray, StreamView

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType

    from ome_writers._backends._base import Backend
    from ome_writers._events import CoordUpdate
    from ome_writers._settings import AcquisitionSettings

RESERVED_NAMESPACES = (
    "ome",
    "ome_writers",
    # OME-TIFF MapAnnotations of the writer: per-frame values, and OME-Zarr
    # group attributes carried by convert
    "ome_writers/frame_metadata",
    "ome_writers/zarr_attributes",
)
#: frame_metadata keys OME stores as numbers (seconds, micrometers)
NUMERIC_FRAME_KEYS = (
    "delta_t",
    "exposure_time",
    "position_x",
    "position_y",
    "position_z",
)
RESERVED_FRAME_KEYS = (
    "frame_number",
    "position_index",
    "storage_index",
    "_pos",
    "_idx",
)
_ndarray = np.ndarray
_NO_DIRECT = np.zeros((0, 1, 1))


def create_stream(settings: AcquisitionSettings) -> OMEStream:
    """Create the output described by ``settings`` and return its stream.

    Nothing on disk changes if creation is refused (existing output, invalid
    settings, memory budget).

    Examples
    --------
    >>> import numpy as np
    >>> from ome_writers import AcquisitionSettings, dims_from_standard_axes
    >>> settings = AcquisitionSettings(
    ...     dimensions=dims_from_standard_axes({"t": 2, "y": 4, "x": 4}),
    ...     dtype="uint8",
    ... )
    >>> with create_stream(settings) as stream:
    ...     stream.append(np.ones((4, 4), "uint8"))
    ...     stream.skip()
    >>> stream.view()[:, 0, 0]
    array([1, 0], dtype=uint8)
    """
    return OMEStream(settings)


class OMEStream:
    """A stream of frames into the output of one acquisition.

    Use ``create_stream`` to make one. Frames go in with ``append`` in
    acquisition order; ``arrays`` and ``view()`` read back what has been
    written, live and after ``close()``.
    """

    def __init__(self, settings: AcquisitionSettings) -> None:
        settings.validate_stream_ready()
        # the stream's own copy: changing the caller's settings later (they
        # may be assigned to) does not change the stream
        settings = settings.model_copy(deep=True)
        self.settings = settings
        fmt = settings.format
        if fmt.requires_root_path and not settings.root_path:
            raise ValueError(
                f"format {fmt.name!r} writes files: set AcquisitionSettings.root_path "
                f"(e.g. root_path='acquisition{getattr(fmt, 'suffix', '')}')"
            )
        self._router = build_router(settings)
        backend_cls = get_backend_class(settings.format.backend)
        backend = backend_cls(settings, self._router)
        journal_output = backend.journal_output
        if journal_output is not None:
            check_no_journal(journal_output, overwrite=settings.overwrite)
        try:
            backend.open()
            if journal_output is not None:
                backend.journal = Journal(
                    journal_output,
                    settings.model_dump(mode="json"),
                    fsync=getattr(settings.format, "fsync", "on_close"),
                )
        except BaseException:
            backend.abort()
            raise
        self._backend: Backend = backend
        self._journal = backend.journal
        self._dtype = np.dtype(settings.dtype)
        self._frame_shape = settings.frame_shape
        self._num_frames = self._router.num_frames
        self._limit = self._num_frames if self._num_frames is not None else 1 << 62
        self._lock = threading.Lock()
        self._frames_written = 0
        self._closed = False
        #: the backend has finished its output (its close() has returned)
        self._finished = False
        self._labels = _coordinate_labels(settings)
        self._levels = levels_of(settings)
        self._events = EventDispatcher(
            self._router,
            self._labels,
            {d.name: int(d.count or 0) for d in settings.frame_dimensions},
        )
        self._listening = False
        self._global_metadata: dict[str, Any] = {}
        self._write: Callable[[int, np.ndarray, FrameMetadata | None], None]
        self._write = backend.write
        self._direct_source: Callable[[], tuple[np.ndarray, int] | None] | None = (
            backend.direct_target if isinstance(backend, SupportsDirectWrite) else None
        )
        self._direct: np.ndarray = _NO_DIRECT
        self._direct_stop = 0
        self._refresh_direct()
        # The finalizer sees the instance dict (current counts, no reference
        # to the instance itself), so it costs nothing on the hot path.
        self._finalizer = weakref.finalize(self, _finalize_unclosed, self.__dict__)

    # ------------------------------------------------------------------ write

    def append(
        self, frame: Any, *, frame_metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Store the next frame in acquisition order.

        Parameters
        ----------
        frame
            A 2D array of the declared frame shape whose dtype casts safely to
            the stream's dtype. Once ``append`` returns the buffer may be reused.
        frame_metadata
            JSON-serializable mapping kept with the frame (e.g. ``delta_t``,
            ``exposure_time``, ``position_x``).

        Raises
        ------
        ValueError
            Wrong frame shape (nothing is written; the next frame goes to the
            same slot).
        TypeError
            Unsafe dtype, or metadata that is not JSON-serializable.
        IndexError
            The stream already holds every declared frame.
        StreamClosedError
            The stream is closed.
        """
        if (
            frame.__class__ is not _ndarray
            or frame.dtype is not self._dtype
            or frame.shape != self._frame_shape
        ):
            frame = self._coerce_frame(frame)
        # encoded before taking the lock, so other appending threads don't wait
        metadata = None if frame_metadata is None else self._encode(frame_metadata)
        lock = self._lock
        lock.acquire()
        try:
            n = self._frames_written
            if n < self._direct_stop and metadata is None:
                self._direct[n] = frame
            else:
                self._append_slow(n, frame, metadata)
            self._frames_written = n + 1
            # queued under the lock: updates arrive in frame order, and none
            # is queued after close() has started draining
            if self._listening:
                self._events.push(n)
        finally:
            lock.release()

    def _append_slow(
        self, n: int, frame: np.ndarray, metadata: FrameMetadata | None
    ) -> None:
        """Everything but a plain in-memory copy; called with the lock held."""
        if n >= self._limit:
            self._refuse_past_end()
        try:
            self._write(n, frame, metadata)
        finally:
            # also after a failure: the backend may have moved its data (a
            # scratch spill to disk) before the step that failed
            self._refresh_direct()
        if self._journal is not None:
            self._journal.record(n + 1, n, None if metadata is None else metadata.json)

    def _refresh_direct(self) -> None:
        source = self._direct_source
        target = None if source is None or self._closed else source()
        if target is None:
            self._direct, self._direct_stop = _NO_DIRECT, 0
        else:
            self._direct, self._direct_stop = target

    def skip(self, *, frames: int = 1) -> None:
        """Advance over ``frames`` frames without data; they read as zeros.

        Listeners get one update, for the last frame skipped (a high-water
        mark if the skip grew the acquired extent), as with ome-writers 0.3.
        OME-Zarr (tensorstore, zarr-python) and scratch skip in constant time;
        OME-TIFF and acquire-zarr write a page or frame of zeros per frame, so
        they refuse (``ValueError``, nothing written) a single skip of more
        than 100,000 frames or 4 GiB of zeros.
        """
        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)):
            raise TypeError(f"frames must be an int, got {frames!r}")
        if frames <= 0:
            raise ValueError(f"frames must be >= 1, got {frames!r}")
        with self._lock:
            n = self._frames_written
            if n + frames > self._limit:
                self._refuse_past_end(frames)
            self._check_open()
            try:
                self._backend.skip(n, int(frames))
            finally:
                # also after a failure: the backend may have moved its data
                # (a scratch spill to disk) before the step that failed
                self._refresh_direct()
            if self._journal is not None:
                self._journal.count(n + int(frames))
            self._frames_written = n + int(frames)
            if self._listening:  # one update, for the frame the skip reaches
                self._events.push(n + int(frames) - 1, n)

    def _refuse_past_end(self, frames: int = 1) -> None:
        self._check_open()
        if self._num_frames is None:
            raise IndexError(
                f"cannot add {frames:,} frame(s): an unbounded stream holds at most "
                f"{self._limit:,} frames and {self._frames_written:,} are written"
            )
        raise IndexError(
            f"cannot add {frames} frame(s): the stream was declared with "
            f"{self._num_frames} frames and {self._frames_written} are written; "
            "declare a larger count, or count=None on the first dimension for an "
            "unbounded acquisition"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise StreamClosedError(
                "the stream is closed; create a new stream to write more frames"
            )

    def _coerce_frame(self, frame: Any) -> np.ndarray:
        """Slow path: accept safe conversions, refuse everything else."""
        self._check_open()
        array = frame if isinstance(frame, np.ndarray) else np.asarray(frame)
        if array.shape != self._frame_shape:
            names = tuple(d.name for d in self.settings.frame_dimensions)
            raise ValueError(
                f"frame shape {array.shape!r} does not match the declared frame "
                f"shape {self._frame_shape!r} {names!r}; frames are not broadcast"
            )
        if array.dtype != self._dtype and not np.can_cast(
            array.dtype, self._dtype, casting="safe"
        ):
            raise TypeError(
                f"frame dtype {array.dtype.name!r} cannot be safely cast to the "
                f"stream dtype {self._dtype.name!r}; convert the frame first, "
                f"e.g. frame.astype({self._dtype.name!r}) if its values fit"
            )
        return np.ascontiguousarray(array, dtype=self._dtype)

    def _encode(self, frame_metadata: Mapping[str, Any]) -> FrameMetadata:
        if not isinstance(frame_metadata, dict):
            try:
                frame_metadata = dict(frame_metadata)
            except (TypeError, ValueError):
                raise TypeError(
                    f"frame_metadata must be a mapping, got {frame_metadata!r}"
                ) from None
        reserved = [k for k in RESERVED_FRAME_KEYS if k in frame_metadata]
        if reserved:
            raise ValueError(
                f"frame_metadata keys {reserved!r} are reserved (the stream records "
                "them itself); rename them"
            )
        try:
            text = json.dumps(frame_metadata, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(
                f"frame_metadata {_short_repr(frame_metadata)} is not "
                f"JSON-serializable ({_short_repr(exc)}); use str, int, float, "
                "bool, None, lists and dicts (nested less than ~1000 deep)"
            ) from None
        # a backslash is how JSON spells what XML may not hold: look closer
        if "\\" in text and (bad := xml_unsafe_text(frame_metadata)) is not None:
            raise ValueError(_xml_message("frame_metadata", bad))
        for key in NUMERIC_FRAME_KEYS:
            if key in frame_metadata:
                _check_number(key, frame_metadata[key])
        # decoded from the text: the stream's own copy, nested values included,
        # so changing the caller's dict after append changes nothing written
        return FrameMetadata(json.loads(text), text)

    # ------------------------------------------------------------------ read

    @property
    def frames_written(self) -> int:
        """Frames appended or skipped so far."""
        return self._frames_written

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    @property
    def storage_path(self) -> str | None:
        """Where the data is on disk, or None while it is only in memory.

        ``settings.output_path`` for output on disk; for a scratch stream that
        spilled to disk, the temporary directory it moved to (removed at
        process exit).
        """
        return self._backend.storage_path

    @property
    def arrays(self) -> list[PositionArray]:
        """One read-only array per position, storage order, live."""
        dims = (
            *self._router.storage_names,
            *(d.name for d in self.settings.frame_dimensions),
        )
        return [
            PositionArray(self._position_data, p, dims, self._dtype)
            for p in range(self._router.num_positions)
        ]

    def _position_data(self, position_index: int) -> Any:
        return self._backend.position_data(position_index, self._frames_written)

    @property
    def levels(self) -> int:
        """Resolution levels written, the full resolution included.

        1 without a pyramid (``OmeZarrFormat(pyramid=...)``,
        ``OmeTiffFormat(pyramid=...)``).
        """
        return self._levels

    def level_arrays(self, level: int) -> list[PositionArray]:
        """``arrays`` at pyramid level ``level`` (0 is the full resolution).

        Live: while the stream is open, a lower level is computed from the
        full-resolution frames written so far on each read (exactly what the
        level holds once written); after ``close()`` the stored level is read.
        """
        self._check_level(level)
        dims = (
            *self._router.storage_names,
            *(d.name for d in self.settings.frame_dimensions),
        )
        source: Callable[[int], Any] = functools.partial(self._level_data, level)
        return [
            PositionArray(source, p, dims, self._dtype)
            for p in range(self._router.num_positions)
        ]

    def _check_level(self, level: int) -> None:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
            raise TypeError(f"level must be an int, got {level!r}")
        if not 0 <= level < self._levels:
            raise ValueError(
                f"level {level!r} does not exist: this stream writes "
                f"{self._levels} level(s), 0 to {self._levels - 1}; give "
                "the format a pyramid (e.g. OmeZarrFormat(pyramid=Pyramid())) "
                "for lower resolutions"
            )

    def _level_data(self, level: int, position_index: int) -> Any:
        frames = self._frames_written
        if level == 0:
            return self._backend.position_data(position_index, frames)
        if self._finished:
            stored = self._backend.level_data(level, position_index, frames)
            if stored is not None:
                return stored
        pyramid = getattr(self.settings.format, "pyramid", None)
        assert pyramid is not None
        full = self._backend.position_data(position_index, frames)
        z_axis = self._z_storage_axis
        return LevelArray(full, level, pyramid.method, z_axis, self._dtype)

    @property
    def _z_storage_axis(self) -> int | None:
        name = pyramid_z_dimension(self.settings)
        if name is None:
            return None
        return list(self._router.storage_names).index(name)

    def view(
        self, *, dynamic_shape: bool = True, strict: bool = False, level: int = 0
    ) -> StreamView:
        """A read-only array-like over all positions, in acquisition order.

        Parameters
        ----------
        dynamic_shape
            Shape covers what was acquired so far (True) or the declared shape
            (False; the unbounded axis still follows the data).
        strict
            Reading frames not yet written raises ``IndexError`` instead of
            returning zeros.
        level
            Pyramid level (0: full resolution); see ``level_arrays`` for how
            a lower level is read live and after ``close()``.
        """
        self._check_level(level)
        frame_shape = self._frame_shape
        shrink: dict[int, int] = {}
        if level:
            factor = 2**level
            frame_shape = (-(-frame_shape[0] // factor), -(-frame_shape[1] // factor))
            z_name = pyramid_z_dimension(self.settings)
            if z_name is not None:
                names = [d.name for d in self.settings.dimensions]
                shrink[names.index(z_name)] = factor
        return StreamView(
            self._position_data if level == 0 else lambda p: self._level_data(level, p),
            self._router,
            lambda: self._frames_written,
            tuple(d.name for d in self.settings.dimensions),
            self._labels,
            frame_shape,
            self._dtype,
            dynamic_shape=dynamic_shape,
            strict=strict,
            shrink=shrink,
        )

    # ---------------------------------------------------------------- events

    def on(self, event: str, callback: Callable[[CoordUpdate], object]) -> None:
        """Call ``callback(update)`` after frames, off the hot path.

        ``"coords_changed"`` fires for every frame; ``"coords_expanded"`` when
        a frame grows the acquired extent. Exceptions in callbacks are logged.
        """
        self._events.add(event, callback)
        self._listening = True

    # --------------------------------------------------------------- metadata

    def set_global_metadata(self, namespace: str, mapping: Mapping[str, Any]) -> None:
        """Record acquisition-level metadata under ``namespace`` (replaces it).

        Where it goes: OME-Zarr, the root group's attribute ``namespace``;
        OME-TIFF, a ``MapAnnotation`` with that namespace (values JSON-encoded)
        in every document that describes the dataset; scratch, the manifest's
        ``global_metadata``. Also after ``close()``: the written metadata is
        rewritten.
        """
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
        if not is_xml_uri(namespace):
            raise ValueError(
                f"namespace {namespace!r} is not a URI OME-XML can store "
                "(xs:anyURI: a first part holding ':' must be a scheme such as "
                "'https:' or 'urn:'; '[' or ']' only after '#'; one '#'; '%' only "
                "before two hex digits; a port only of digits); use e.g. your "
                "software's name or a URL"
            )
        if namespace in RESERVED_NAMESPACES:
            raise ValueError(
                f"namespace {namespace!r} is reserved for the writer; "
                "use another name, e.g. your software's"
            )
        try:
            payload = json.loads(json.dumps(dict(mapping), allow_nan=False))
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(
                f"global metadata for {namespace!r} is not JSON-serializable "
                f"({_short_repr(exc)}); use str, int, float, bool, None, lists and "
                "dicts (nested less than ~1000 deep)"
            ) from None
        bad = xml_unsafe_text([namespace, payload])
        if bad is not None:
            raise ValueError(_xml_message(f"global metadata {namespace!r}", bad))
        with self._lock:
            updated = {**self._global_metadata, namespace: payload}
            self._backend.set_global_metadata(updated, closed=self._finished)
            self._global_metadata = updated
            if self._journal is not None and not self._finished:
                self._journal.set_global_metadata(updated)

    def get_metadata(self) -> dict[Any, Any]:
        """The format's own metadata, to edit and give to ``update_metadata``.

        - OME-Zarr: image group path (``"."`` for a single image, else as in
          the layout, e.g. ``"pos0"``, ``"A/1/fov0"``) -> a copy of that
          group's attributes, without the writer's own ``"ome_writers"`` key.
        - OME-TIFF: ``ome_types.OME`` per file: ``{0: ...}`` for one file (it
          describes every position); for a folder of files, the position
          index -> its file's document (the whole dataset, or a
          ``BinaryOnly`` reference), and ``-1`` -> the companion file.
          Before ``close()`` these are the documents as they stand (planes
          are added at close).
        - scratch: ``{}`` (use ``set_global_metadata``).
        """
        return self._backend.get_metadata()

    def update_metadata(self, metadata: Mapping[Any, Any]) -> None:
        """Write back metadata edited from ``get_metadata`` (only the keys given).

        - OME-Zarr: any time, also after ``close()``. Each group's
          ``zarr.json`` is replaced atomically with the given attributes;
          ``"ome"`` stays the writer's unless given, and the writer's own
          ``"ome_writers"`` key cannot be set. Later rewrites (global
          metadata, close) keep the update.
        - OME-TIFF: after ``close()`` (the final OME-XML exists only then):
          each file's description is replaced crash-safely (a reader sees the
          old or the new document), the companion file atomically.
        - scratch: only ``{}``.

        Raises
        ------
        KeyError
            A key that ``get_metadata`` does not have.
        TypeError
            A value of the wrong type, or not JSON-serializable (OME-Zarr).
        ValueError
            The writer's own key (OME-Zarr), or metadata for scratch.
        RuntimeError
            OME-TIFF before ``close()``.
        """
        with self._lock:
            self._backend.update_metadata(metadata, closed=self._finished)
            if self._journal is not None and not self._finished:
                self._journal.update_format_metadata(metadata)

    @property
    def global_metadata(self) -> dict[str, Any]:
        """The namespaces set with ``set_global_metadata``."""
        return dict(self._global_metadata)

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Finish the output. Calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._write = _closed_write
            self._direct, self._direct_stop = _NO_DIRECT, 0
        try:
            # without the lock: a callback still running may call stream methods
            self._events.stop()
        finally:
            with self._lock:
                try:
                    _finish(self._backend, self._frames_written)
                finally:
                    self._finished = True
        self._finalizer.detach()

    def __enter__(self) -> OMEStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<OMEStream {self.settings.format.name} {state}, "
            f"{self._frames_written} frames written>"
        )


def _coordinate_labels(settings: AcquisitionSettings) -> dict[str, list[Any] | None]:
    """Each dimension's coordinate labels (names, values), None where it has none."""
    return {
        d.name: None if d.coords is None else [coord_label(c) for c in d.coords]
        for d in settings.dimensions
    }


def _xml_message(what: str, bad: str) -> str:
    return (
        f"{what}: {bad!r} holds a character XML cannot store (a control character "
        "other than tab or newline, or a lone surrogate), so the OME metadata "
        "could not be written; remove it"
    )


def _check_number(key: str, value: Any) -> None:
    """``frame_metadata[key]`` must be a finite number (OME stores a float)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        ok = ok and math.isfinite(float(value))
    except OverflowError:
        ok = False
    if not ok:
        raise ValueError(
            f"frame_metadata[{key!r}] = {_short_repr(value)} is not a finite number; "
            "OME stores "
            f"{key} as a float (seconds or micrometers): give an int or float"
        )


def _short_repr(value: Any, limit: int = 200) -> str:
    """``repr`` for an error message: cut short, and never failing itself.

    (The repr of an int past 4,300 digits, or of a structure nested past the
    recursion limit, raises.)
    """
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deep to be shown>"
    except ValueError:
        where = _huge_int_path(value)
        return f"<{type(value).__name__} holding an int of over 4,300 digits{where}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _huge_int_path(value: Any) -> str:
    """`` at [key][index]...``: where the first int too long to show is."""
    stack: list[tuple[Any, str]] = [(value, "")]
    seen = 0
    while stack and seen < 100_000:
        item, path = stack.pop()
        seen += 1
        if isinstance(item, int) and not isinstance(item, bool):
            if item.bit_length() > 14_000:  # more than 4,214 digits
                return f" at {path}" if path else ""
        elif isinstance(item, dict):
            keys = [k if isinstance(k, str) else type(k).__name__ for k in item]
            stack.extend(
                (v, f"{path}[{k!r}]")
                for k, v in reversed(list(zip(keys, item.values())))
            )
        elif isinstance(item, (list, tuple)):
            stack.extend(
                (v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item)))
            )
    return ""


def _finish(backend: Backend, frames_written: int) -> None:
    """Close the backend; once its output is final, the journal goes."""
    journal = backend.journal
    try:
        backend.close(frames_written)
    except BaseException:
        if journal is not None:
            journal.close()  # kept: ome_writers.recover can finish the output
        raise
    if journal is not None:
        journal.remove()


def _closed_write(*args: Any) -> None:
    raise StreamClosedError(
        "the stream is closed; create a new stream to write more frames"
    )


def _finalize_unclosed(state: dict[str, Any]) -> None:
    with state["_lock"]:
        if state["_closed"]:
            return
        state["_closed"] = True
        state["_write"] = _closed_write
        state["_direct_stop"] = 0
    try:
        state["_events"].stop()
    finally:
        try:
            with state["_lock"]:
                try:
                    _finish(state["_backend"], state["_frames_written"])
                finally:
                    state["_finished"] = True
        finally:
            # warned after closing: a filter that turns the warning into an
            # error must not leave the output unfinished
            warnings.warn(
                "an OMEStream was garbage-collected without close(); it was "
                "closed now. Use 'with create_stream(...) as stream:' or call "
                "stream.close().",
                ResourceWarning,
                stacklevel=2,
            )
