"""The scratch backend: numpy arrays in memory, or raw files on disk.

Memory mode keeps one array per position over a reserved anonymous mapping
(see ``_pages``): bounded streams reserve exactly their size, unbounded ones
reserve their share of ``max_memory_bytes``, so growth never copies. When the
next frame would not fit, the stream moves to disk (a temporary directory, the
data written so far moving with it) or raises ``MemoryError``.

Disk mode writes each frame with ``pwrite`` into ``pos_<p>.dat``. A write lands
in the OS page cache before ``append`` returns, so it survives a killed
process; ``ScratchFormat.fsync`` adds durability against power loss. Readers
use read-only memory maps of the same files, which the page cache keeps
coherent with the writes. ``pwrite`` rather than a writable mapping keeps the
written pages out of this process's resident memory, and avoids the page-fault
cost of first touching mapped file pages.

Crash safety: the data files are extended *before* the manifest that
describes them is replaced, so ``position_shapes`` never exceeds what a file
holds; ``progress.bin`` counts frames after every write; metadata lines are
written with one ``write`` each, and a failed write is cut back so that no half
line stays in the middle of the file.

No stalls: file creation and rename (the manifest), file extension and block
allocation are what waits behind the kernel's writeback, so they stay off the
per-frame path. Bounded files are allocated at create. Unbounded files are
grown ahead of the data from a thread of their own (``_grower``), by a lead
that lasts about half a second at the rate the stream is written (64 MiB to
4 GiB over all positions for big steps, blocks allocated; sparse for small
ones), and trimmed at close (``recover`` trims a killed writer's). The
manifest describes what the files hold, so it is replaced (from its own
thread, ``ManifestWriter``) once per growth rather than once per step, and an
append waits for neither unless the writer catches up with the files.
"""

from __future__ import annotations

import errno
import logging
import math
import mmap
import os
import shutil
import struct
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._base import Backend, FrameMetadata
from ome_writers._backends._pages import (
    Prefaulter,
    allocate_blocks,
    populate,
    punch_hole,
    reserve_array,
)
from ome_writers._backends.scratch import _files as files
from ome_writers._backends.scratch._grower import FileGrower
from ome_writers._backends.scratch._roots import make_temporary_root, prepare_root
from ome_writers._errors import WriteError
from ome_writers._formats import ScratchFormat
from ome_writers._util import (
    pwrite_all,
    replace_file,
    user_stacklevel,
    write_all,
)
from ome_writers._version import __version__

if TYPE_CHECKING:
    from ome_writers._router import FrameRouter
    from ome_writers._settings import AcquisitionSettings

_PREFAULT_MIN_BYTES = 16 * 1024**2
_PREFAULT_AT_CREATE_BYTES = 2 * 1024**3
_PREFAULT_LOOKAHEAD_BYTES = 16 * 1024**2
_UNBOUNDED_ROWS = 1 << 62
#: unbounded data files grow ahead of the data by a lead that lasts
#: _LEAD_HORIZON_S at the rate the stream is written, between the minimum and
#: _LEAD_MAX_BYTES over all positions (``_grower``); the blocks of files whose
#: steps are at least _ALLOCATE_MIN_STEP_BYTES per position are allocated
#: (minimum lead _ALLOCATE_AHEAD_BYTES), those of smaller steps stay sparse
#: (minimum lead two steps: the writer asks for more while one is left)
_ALLOCATE_MIN_STEP_BYTES = 1024**2
_ALLOCATE_AHEAD_BYTES = 64 * 1024**2
_LEAD_MAX_BYTES = 4 * 1024**3
_LEAD_HORIZON_S = 0.5

logger = logging.getLogger("ome_writers")


class ScratchBackend(Backend):
    """Writer of the scratch format; see the module notes."""

    def __init__(self, settings: AcquisitionSettings, router: FrameRouter) -> None:
        super().__init__(settings, router)
        fmt = settings.format
        assert isinstance(fmt, ScratchFormat)
        self._format = fmt
        self._dtype = np.dtype(settings.dtype)
        self._frame_shape = settings.frame_shape
        self._frame_bytes = math.prod(self._frame_shape) * self._dtype.itemsize
        self._npos = router.num_positions
        self._rows_per_step = router.frames_per_position_step
        self._locate = router.flat_offset
        self._root: Path | None = (
            Path(settings.root_path) if settings.root_path else None
        )
        self._is_temporary = False
        self._on_disk = False
        # memory mode
        self._buffers: list[np.ndarray] = []
        self._capacity_rows = 0
        self._prefaulter: Prefaulter | None = None
        self._triggers: list[int] = [_UNBOUNDED_ROWS] * self._npos
        self._meta_lines: list[str] = []
        # disk mode
        self._fds: list[int] = []
        self._paths: list[Path] = []
        self._readers: list[np.ndarray | None] = [None] * self._npos
        self._reader_lock = threading.Lock()
        self._meta_fd: int | None = None
        self._meta_path = Path()
        self._meta_size = 0
        self._progress: mmap.mmap | None = None
        self._progress_fd: int | None = None
        self._manifest: files.ManifestWriter | None = None
        #: one manifest state built and queued at a time (writer and grower)
        self._manifest_lock = threading.Lock()
        self._file_rows = 0  # rows each data file holds (>= the logical extent)
        self._described_rows = 0  # the most rows a manifest written has described
        self._can_allocate = True
        #: an unbounded stream's files grow ahead of the data (see the notes)
        self._grower: FileGrower | None = None
        step_bytes = self._npos * self._rows_per_step * self._frame_bytes
        self._grows_ahead = step_bytes >= _ALLOCATE_MIN_STEP_BYTES * self._npos
        ahead_steps = _ALLOCATE_AHEAD_BYTES // step_bytes if self._grows_ahead else 2
        self._min_lead_rows = self._rows_per_step * max(2, ahead_steps)
        self._max_lead_rows = self._rows_per_step * max(
            1, _LEAD_MAX_BYTES // step_bytes
        )
        # both
        if router.num_frames is None:
            self._extent_frames = 0
        else:
            self._extent_frames = router.num_frames
        self._frames_done = 0
        self._failed_frame: int | None = None
        self._global_metadata: dict[str, Any] = {}
        # what every manifest says whatever the progress (one per growth)
        self._settings_json = settings.model_dump(mode="json")
        self._storage_dimension_names = [
            *router.storage_names,
            *(d.name for d in settings.frame_dimensions),
        ]
        self._marker = {"kind": files.KIND, "version": __version__}

    # ---------------------------------------------------------------- opening

    def open(self) -> None:
        """Check the root and the memory budget, then create the storage."""
        if self._root is not None:
            root = self._root
            missing = [p for p in (root, *root.parents) if not p.exists()]
            prepare_root(root, overwrite=self.settings.overwrite)
            try:
                self._open_disk(root, self._bounded_rows())
            except BaseException:
                # a refused create leaves nothing: our files, and the folders
                # made for them (the innermost first)
                if root.is_dir():
                    files.remove_scratch_files(root)
                for folder in missing:
                    try:
                        folder.rmdir()
                    except OSError:
                        break
                raise
            return
        if self.router.is_unbounded:
            step_bytes = self._npos * self._rows_per_step * self._frame_bytes
            steps = self._format.max_memory_bytes // step_bytes
            self._open_memory(steps * self._rows_per_step, populate_now=False)
            return
        needed = self._npos * self._bounded_rows() * self._frame_bytes
        if needed <= self._format.max_memory_bytes:
            self._open_memory(self._bounded_rows(), populate_now=True)
        elif self._format.spill_to_disk:
            self._open_disk(self._make_temporary_root(needed), self._bounded_rows())
        else:
            raise MemoryError(
                f"the acquisition needs {needed:,} bytes but "
                f"ScratchFormat.max_memory_bytes is {self._format.max_memory_bytes:,}; "
                "raise max_memory_bytes, set spill_to_disk=True, or give a root_path "
                "to write to disk"
            )

    def _bounded_rows(self) -> int:
        if self.router.is_unbounded:
            return 0
        return math.prod(self.router.storage_shape())

    def _make_temporary_root(self, needed_bytes: int) -> Path:
        self._is_temporary = True
        return make_temporary_root(needed_bytes, self._format.max_memory_bytes)

    def _open_memory(self, rows: int, *, populate_now: bool) -> None:
        """Reserve ``rows`` per position; pre-fault what is cheap now, the rest later.

        A bounded stream will fill its rows, so up to ``_PREFAULT_AT_CREATE_BYTES``
        of them are populated right away (about 0.1 s per GiB), keeping page
        faults out of the append loop; beyond that, and for unbounded streams
        (whose rows may never be used), a thread keeps a few frames ahead.
        """
        self._capacity_rows = rows
        shape = (rows, *self._frame_shape)
        try:
            self._buffers = [
                reserve_array(shape, self._dtype) for _ in range(self._npos)
            ]
        except OSError as exc:  # ENOMEM: no address space, or strict overcommit
            nbytes = self._npos * rows * self._frame_bytes
            raise MemoryError(
                f"cannot reserve {nbytes:,} bytes of memory for the scratch arrays "
                f"({exc.strerror or exc}); an unbounded stream reserves its "
                "whole max_memory_bytes up front, which fails where memory "
                "overcommit is strict (vm.overcommit_memory=2). Lower "
                "ScratchFormat.max_memory_bytes, or give a root_path to write "
                "to disk."
            ) from exc
        ready = 0
        if populate_now and rows:
            per_position = _PREFAULT_AT_CREATE_BYTES // (self._npos * self._frame_bytes)
            ready = min(rows, per_position)
            if not all(populate(buffer, 0, ready) for buffer in self._buffers):
                ready = 0
        remaining = (rows - ready) * self._frame_bytes * self._npos
        # frames bigger than the lookahead are not pre-faulted: two frames
        # ahead of a 100000 x 100000 camera would commit 40 GB up front
        small_frames = self._frame_bytes <= _PREFAULT_LOOKAHEAD_BYTES
        if remaining >= _PREFAULT_MIN_BYTES and small_frames:
            lookahead = max(2, _PREFAULT_LOOKAHEAD_BYTES // self._frame_bytes)
            self._prefaulter = Prefaulter(self._buffers, lookahead, first_row=ready)
            self._triggers = self._prefaulter.triggers

    def _open_disk(
        self,
        root: Path,
        rows: int,
        copy_from: list[np.ndarray] | None = None,
        metadata: bytes = b"",
    ) -> None:
        self._root = root
        self._paths = [root / files.data_file_name(p) for p in range(self._npos)]
        try:
            for path in self._paths:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
                self._fds.append(fd)
                os.ftruncate(fd, rows * self._frame_bytes)
                if copy_from:
                    pwrite_all(fd, copy_from[len(self._fds) - 1][:rows].data, 0)
            self._file_rows = rows
            if rows and not copy_from:
                self._allocate(root, 0, rows)
            if self.router.is_unbounded:
                # the first lead, ready before the next frame
                self._resize_files(rows + self._min_lead_rows, "cannot grow")
                self._allocate_ahead(rows, self._file_rows)
                self._grower = FileGrower(
                    self._file_rows,
                    resize=lambda rows: self._resize_files(rows, "cannot grow"),
                    allocate=self._allocate_ahead,
                    on_grown=self._files_grown,
                    rows_per_step=self._rows_per_step,
                    min_lead_rows=self._min_lead_rows,
                    max_lead_rows=self._max_lead_rows,
                    horizon_s=_LEAD_HORIZON_S,
                )
            self._meta_path = root / files.FRAME_METADATA
            self._meta_fd = os.open(
                self._meta_path,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                0o644,
            )
            write_all(self._meta_fd, metadata)
            self._meta_size = len(metadata)
            self._progress_fd = os.open(
                root / files.PROGRESS, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644
            )
            os.ftruncate(self._progress_fd, 8)
            self._progress = mmap.mmap(self._progress_fd, 8)
            self._on_disk = True
            self._manifest = files.ManifestWriter(root / files.MANIFEST)
            self._write_manifest(complete=False)
        except BaseException as exc:
            # whatever failed, no descriptor or half-open state stays behind
            self._on_disk = False  # the data stays where it was (memory, on a spill)
            self._readers = [None] * self._npos
            self._close_files()
            if isinstance(exc, WriteError) or not isinstance(exc, OSError):
                raise  # the manifest's (naming its path), or not a disk error
            if exc.errno == errno.EFBIG:
                nbytes = rows * self._frame_bytes
                raise WriteError(
                    exc.errno,
                    f"cannot create scratch files in {str(root)!r}: each position "
                    f"needs one file of {nbytes:,} bytes ({rows:,} frames of "
                    f"{self._frame_bytes:,} bytes, as declared), more than this "
                    "file system allows in one file: declare smaller counts, or "
                    "count=None on the first dimension",
                    str(root),
                ) from exc
            raise _write_error(exc, "cannot create scratch files in", root) from exc

    # ---------------------------------------------------------------- writing

    def write(
        self, frame_number: int, frame: np.ndarray, metadata: FrameMetadata | None
    ) -> None:
        """Store one frame (see the contract in ``_base``)."""
        if self._manifest is not None and self._manifest.error is not None:
            self._rewrite_failed_manifest()
        self._frames_done = frame_number  # frames before it may have gone direct
        grown = frame_number >= self._extent_frames
        if grown:
            self._extend(frame_number + 1)
        position, row = self._locate(frame_number)
        if self._on_disk:
            self._pwrite(position, row, frame, frame_number)
        else:
            self._buffers[position][row] = frame
            if row >= self._triggers[position]:
                self._prefaulter.advance(position, row)  # type: ignore[union-attr]
        if metadata is not None:
            self._write_metadata(frame_number, position, metadata)
        self._frames_done = frame_number + 1
        if self._progress is not None:
            struct.pack_into("<Q", self._progress, 0, frame_number + 1)
            if self._syncs_every_frame:
                self._sync_frame(position)
            manifest = self._manifest
            if manifest is not None and manifest.covered <= frame_number:
                # normally covered since the files last grew (see the notes)
                manifest.wait_covered(frame_number + 1)

    def skip(self, first_frame: int, count: int) -> None:
        """Advance over frames that read as zeros (the storage is zero already)."""
        if self._manifest is not None and self._manifest.error is not None:
            self._rewrite_failed_manifest()
        stop = first_frame + count
        self._frames_done = first_frame
        if stop > self._extent_frames:
            self._extend(stop)
        failed = self._failed_frame  # only ever set on disk
        if failed is not None and first_frame <= failed < stop:
            self._zero_slot(failed)
            self._failed_frame = None
        self._frames_done = stop
        if self._progress is not None:
            struct.pack_into("<Q", self._progress, 0, stop)
            if self._manifest is not None and self._manifest.covered < stop:
                self._manifest.wait_covered(stop)

    def _pwrite(self, position: int, row: int, frame: np.ndarray, n: int) -> None:
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        try:
            pwrite_all(self._fds[position], frame.data, row * self._frame_bytes)
        except OSError as exc:
            self._failed_frame = n
            raise _write_error(
                exc, f"cannot write frame {n} to", self._paths[position]
            ) from exc

    def _write_metadata(self, n: int, position: int, metadata: FrameMetadata) -> None:
        _, storage_index = self.router.locate(n)
        index = ",".join(map(str, storage_index))
        # "_pos"/"_idx": the same position and index under the keys ome-writers
        # 0.3 wrote, for readers of its files
        head = (
            f'{{"frame_number":{n},"position_index":{position},'
            f'"storage_index":[{index}],"_pos":{position},"_idx":[{index}]'
        )
        body = metadata.json
        line = head + ("}" if body == "{}" else "," + body[1:]) + "\n"
        if self._meta_fd is None:
            self._meta_lines.append(line)
            return
        data = line.encode("utf-8")
        try:
            if os.write(self._meta_fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write")
        except OSError as exc:
            os.ftruncate(self._meta_fd, self._meta_size)
            self._failed_frame = n  # its pixels are written: zero them on skip
            raise _write_error(
                exc, f"cannot write metadata of frame {n} to", self._meta_path
            ) from exc
        self._meta_size += len(data)

    @property
    def _syncs_every_frame(self) -> bool:
        """``fsync="every_frame"`` applies: the root is the user's, not a spill."""
        return self._format.fsync == "every_frame" and not self._is_temporary

    def _sync_frame(self, position: int) -> None:
        os.fdatasync(self._fds[position])
        if self._meta_fd is not None:
            os.fdatasync(self._meta_fd)
        if self._progress is not None:
            self._progress.flush()

    def direct_target(self) -> tuple[np.ndarray, int] | None:
        """Memory mode, one position, acquisition order: frame n is row n."""
        if self._on_disk or not self._buffers or not self.router.is_identity:
            return None
        stop = min(self._extent_frames, self._capacity_rows, self._triggers[0])
        return self._buffers[0], stop

    # ---------------------------------------------------------------- growing

    def _extend(self, frames_needed: int) -> None:
        """Grow the logical extent of an unbounded stream to cover frames_needed."""
        steps = self.router.steps_started(frames_needed)
        rows = steps * self._rows_per_step
        if not self._on_disk and rows > self._capacity_rows:
            needed = self._npos * rows * self._frame_bytes
            if not self._format.spill_to_disk:
                raise MemoryError(
                    f"frame {frames_needed - 1} would take the scratch data to "
                    f"{needed:,} bytes, past max_memory_bytes="
                    f"{self._format.max_memory_bytes:,}; the {self._frames_done} "
                    "frames written so far are kept. Raise max_memory_bytes, set "
                    "spill_to_disk=True, or give a root_path to write to disk."
                )
            self._spill(needed)
        grower = self._grower
        if self._on_disk and grower is not None:
            # the files are normally far enough ahead (see the notes); the
            # writer waits only when it has caught up with them
            if rows > grower.rows:
                grower.ensure(rows)  # a WriteError: the next write retries
            elif grower.rows - rows < grower.low_water_rows:
                grower.request(rows)
        self._extent_frames = steps * self.router.frames_per_step

    def _resize_files(self, rows: int, action: str) -> None:
        """Make every data file hold ``rows`` rows (sparse where it grows)."""
        for fd, path in zip(self._fds, self._paths):
            try:
                os.ftruncate(fd, rows * self._frame_bytes)
            except OSError as exc:
                raise _write_error(exc, action, path) from exc
        self._file_rows = rows

    def _allocate_ahead(self, first_row: int, stop_row: int) -> None:
        """Allocate rows the files hold ahead of the data (big steps only)."""
        if self._grows_ahead:
            self._allocate(None, first_row, stop_row)

    def _files_grown(self, rows: int) -> None:
        """The grower's files hold ``rows`` rows: queue a manifest saying so."""
        if self._manifest is not None:
            self._write_manifest(
                complete=False, durable=self._syncs_every_frame, wait=False
            )

    def _allocate(self, root: Path | None, first_row: int, stop_row: int) -> None:
        """Allocate rows ``[first_row, stop_row)`` of every data file, best effort.

        At create (``root`` given) the files are allocated only if the disk
        has room for all of them, else a warning says the acquisition will not
        fit; growing ahead takes at most half of the free space. Either way
        writing goes on until the disk is actually full, and a write then
        reports it. A file system that cannot allocate turns this off.
        """
        if not self._can_allocate or not self._fds:
            return
        needed = self._npos * (stop_row - first_row) * self._frame_bytes
        stat = os.fstatvfs(self._fds[0])
        free = stat.f_bavail * stat.f_frsize
        if needed > (free if root is not None else free // 2):
            if root is not None:
                warnings.warn(
                    f"the acquisition needs {needed:,} bytes but {str(root)!r} "
                    f"has {free:,} bytes free: frames past the free space will "
                    "fail with a disk-full error. Free space, or choose another "
                    "root_path.",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
            return
        for fd in self._fds:
            offset = first_row * self._frame_bytes
            error = allocate_blocks(
                fd, offset, (stop_row - first_row) * self._frame_bytes
            )
            if error == errno.ENOSPC:  # taken meanwhile; nothing kept
                return
            if error:
                logger.debug("no block allocation here (errno %d)", error)
                self._can_allocate = False
                return

    def _spill(self, needed_bytes: int) -> None:
        """Move the in-memory data to a temporary directory and continue there."""
        rows = self._extent_frames // self.router.frames_per_step * self._rows_per_step
        root = self._make_temporary_root(needed_bytes)
        if self._prefaulter is not None:
            self._prefaulter.stop()
            self._prefaulter = None
            self._triggers = [_UNBOUNDED_ROWS] * self._npos
        metadata = "".join(self._meta_lines).encode("utf-8")
        try:
            self._open_disk(root, rows, copy_from=self._buffers, metadata=metadata)
        except WriteError:
            shutil.rmtree(root, ignore_errors=True)  # a later frame tries again
            raise
        self._meta_lines = []
        assert self._progress is not None
        struct.pack_into("<Q", self._progress, 0, self._frames_done)
        self._buffers = []
        self._capacity_rows = 0

    # ---------------------------------------------------------------- reading

    @property
    def storage_path(self) -> str | None:
        """The root on disk (``root_path``, or a spill directory), else None."""
        return str(self._root) if self._on_disk and self._root else None

    def position_data(self, position_index: int, frames_written: int) -> np.ndarray:
        """Read-only view of one position with its logical shape."""
        shape = self.router.storage_shape(frames_written) + self._frame_shape
        rows = math.prod(shape[:-2])
        if not self._on_disk:
            buffers = self._buffers
            if buffers:
                view = buffers[position_index][:rows].reshape(shape)
                view.flags.writeable = False
                return view
        return self._disk_view(position_index, rows).reshape(shape)

    def _disk_view(self, position: int, rows: int) -> np.ndarray:
        reader = self._readers[position]
        if reader is None or len(reader) < rows:
            with self._reader_lock:
                reader = self._readers[position]
                if reader is None or len(reader) < rows:
                    mapped = max(rows, self._extent_rows())
                    if mapped == 0:
                        return np.zeros((0, *self._frame_shape), self._dtype)
                    reader = np.memmap(
                        self._paths[position],
                        dtype=self._dtype,
                        mode="r",
                        shape=(mapped, *self._frame_shape),
                    )
                    self._readers[position] = reader
        return reader[:rows]

    def _extent_rows(self) -> int:
        # rows of the storage shape: acquisition steps only match storage steps
        # when the first storage axis is the first acquisition axis
        return math.prod(self.router.storage_shape(self._extent_frames))

    # ---------------------------------------------------------------- metadata

    def set_global_metadata(self, metadata: dict[str, Any], *, closed: bool) -> None:
        """Keep the namespaces; on disk, rewrite the manifest now (also after close).

        If that fails, the earlier namespaces stay, as in the stream.
        """
        previous, self._global_metadata = self._global_metadata, metadata
        root = self._root
        try:
            if self._on_disk and self._fds:
                self._write_manifest(complete=False)
            elif closed and self._on_disk and root is not None and root.is_dir():
                # the final manifest again, with the new namespaces
                payload = self._manifest_payload(complete=True)
                try:
                    replace_file(root / files.MANIFEST, files.manifest_text(payload))
                except OSError as exc:
                    raise _write_error(
                        exc, "cannot write", root / files.MANIFEST
                    ) from exc
        except OSError:
            self._global_metadata = previous
            raise

    def _write_manifest(
        self, *, complete: bool, durable: bool = False, wait: bool = True
    ) -> None:
        """Replace the manifest; with ``wait`` False, leave it to its thread.

        One state is built and queued at a time (the writer's and the
        grower's), so the latest one queued is the latest one built.
        """
        manifest = self._manifest
        assert manifest is not None
        with self._manifest_lock:
            payload = self._manifest_payload(complete=complete)
            covers = (
                self._extent_frames if complete else self._described_extent_frames()
            )
            rows = self._extent_rows() if complete else self._described_extent_rows()
            self._described_rows = max(self._described_rows, rows)
            if not wait:
                manifest.submit(payload, durable=durable, covers=covers)
                return
            try:
                manifest.write_now(payload, durable=durable, covers=covers)
            except OSError as exc:
                raise _write_error(exc, "cannot write", manifest.path) from exc

    def _described_extent_frames(self) -> int:
        """Frames a manifest written while streaming describes: all of an
        unbounded stream's files (published rows, whole steps)."""
        grower = self._grower
        if grower is None:
            return self._extent_frames
        steps = grower.rows // self._rows_per_step
        return max(self._extent_frames, steps * self.router.frames_per_step)

    def _described_extent_rows(self) -> int:
        return math.prod(self.router.storage_shape(self._described_extent_frames()))

    def _manifest_payload(self, *, complete: bool) -> dict[str, Any]:
        frames = self._extent_frames if complete else self._described_extent_frames()
        shape = list(self.router.storage_shape(frames) + self._frame_shape)
        payload = dict(self._settings_json)
        payload.update(
            position_shapes=[shape for _ in range(self._npos)],
            storage_dimension_names=self._storage_dimension_names,
            global_metadata=self._global_metadata,
            frames_written=self._frames_done,
            complete=complete,
        )
        payload[files.MARKER_KEY] = self._marker
        return payload

    def _rewrite_failed_manifest(self) -> None:
        """A background manifest write failed: write the current state now.

        Raises (naming the manifest) only if this write fails too. A failure
        that has passed since (space freed on a full disk) changes nothing
        once the manifest describes the data again, so the append goes on;
        the stream does not fail a frame for a fault that is gone.
        """
        self._write_manifest(complete=False, durable=self._syncs_every_frame)

    # ---------------------------------------------------------------- closing

    def close(self, frames_written: int) -> None:
        """Flush per the fsync policy and write the final manifest."""
        if self._prefaulter is not None:
            self._prefaulter.stop()
            self._prefaulter = None
            self._triggers = [_UNBOUNDED_ROWS] * self._npos
        if not self._on_disk:
            return
        self._frames_done = frames_written
        self._stop_growing()
        if self._is_temporary and not (self._root and self._root.is_dir()):
            # removed by the exit handler before this stream was finalized
            self._close_files()
            return
        durable = self._format.fsync != "never" and not self._is_temporary
        try:
            assert self._progress is not None
            struct.pack_into("<Q", self._progress, 0, frames_written)
            self._clear_failed_slot(frames_written)  # before the fsync covers it
            if durable:
                for fd in self._fds:
                    os.fsync(fd)
                if self._meta_fd is not None:
                    os.fsync(self._meta_fd)
                self._progress.flush()
            # trimmed first, freeing the disk space for the manifest, but never
            # below what any manifest handed to the disk has described
            rows = max(self._extent_rows(), self._described_rows)
            if self._file_rows > rows:  # an unbounded file grown ahead
                self._resize_files(rows, "cannot trim")
            self._write_manifest(complete=True, durable=durable)
            # the step the manifests described ahead, now that none does
            if self._file_rows > self._extent_rows():
                self._resize_files(self._extent_rows(), "cannot trim")
        finally:
            self._close_files()

    def _clear_failed_slot(self, frames_written: int) -> None:
        """Zero the slot of a frame whose write failed and was never redone.

        A failed ``pwrite`` can leave part of a frame in a slot the stream did
        not count; readers would see those pixels as data. Best effort: close
        goes on if it cannot.
        """
        failed = self._failed_frame
        if failed is None or failed < frames_written:
            return
        if self._locate(failed)[1] >= self._file_rows:
            return
        try:
            self._zero_slot(failed)
        except WriteError as exc:
            logger.warning("could not clear the partly written frame: %s", exc)
            return
        self._failed_frame = None

    def _zero_slot(self, n: int) -> None:
        """Make frame ``n``'s slot on disk read as zeros; ``WriteError`` if not.

        A punched hole needs no disk space (a failed write was often a full
        disk); where the file system cannot punch, zeros are written.
        """
        position, row = self._locate(n)
        fd, offset = self._fds[position], row * self._frame_bytes
        if punch_hole(fd, offset, self._frame_bytes):
            self._pwrite(position, row, np.zeros(self._frame_shape, self._dtype), n)

    def abort(self) -> None:
        """Release file handles after a failed open."""
        if self._prefaulter is not None:
            self._prefaulter.stop()
            self._prefaulter = None
        self._close_files()

    def _stop_growing(self) -> None:
        """End the grower: the files hold what it last published."""
        if self._grower is not None:
            self._grower.stop()
            self._grower = None

    def _close_files(self) -> None:
        self._stop_growing()
        if self._manifest is not None:
            self._manifest.stop()
            self._manifest = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        for fd in [*self._fds, self._meta_fd, self._progress_fd]:
            if fd is not None:
                os.close(fd)
        self._fds = []
        self._meta_fd = None
        self._progress_fd = None


def _write_error(exc: OSError, action: str, path: Path) -> WriteError:
    """A ``WriteError`` naming the path and the cause; earlier frames are kept."""
    return WriteError(
        exc.errno,
        f"{action} {str(path)!r}: {exc.strerror or exc}; "
        "everything written before is kept",
        str(path),
    )
