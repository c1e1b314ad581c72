"""Finishing an acquisition whose writing process died: ``recover``.

OME-Zarr and OME-TIFF keep a journal beside the output while a stream is open
(``_backends/_journal``); ``recover`` rebuilds the stream's backend from the
settings in the journal, opens the output as it was left (``reopen``), writes
the frames the journal kept that the output lacks, gives the backend every
frame's metadata, the global metadata and the format metadata, and closes it:
the same code as a normal ``close()`` then writes the final shape and
metadata and marks the output complete. The journal goes last, so a
recovery that is itself interrupted can be run again.

A scratch root needs no journal (its frames and metadata lines are already in
place): ``recover`` writes its final manifest (exact shapes, ``complete``)
and trims what its files held ahead of the data.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ome_writers._backends._base import (
    FrameMetadata,
    SupportsRecovery,
    get_backend_class,
)
from ome_writers._backends._journal import (
    JOURNAL_SUFFIX,
    is_journal,
    journal_path,
    read_journal,
    read_journal_settings,
)
from ome_writers._backends.scratch import _files as scratch_files
from ome_writers._errors import NotADatasetError
from ome_writers._formats import OmeZarrFormat
from ome_writers._router import build_router
from ome_writers._settings import AcquisitionSettings
from ome_writers._urls import is_s3_url
from ome_writers._util import replace_file


@dataclass(frozen=True)
class RecoveryReport:
    """What ``recover`` did.

    Attributes
    ----------
    path
        The output.
    format
        ``"scratch"``, ``"ome-zarr"`` or ``"ome-tiff"``.
    frames_written
        Frames appended or skipped before the writer died (all of them are
        in the output now).
    frames_restored
        Frames written from the journal (the engine had not written them).
    was_complete
        True when there was nothing to do (already complete or recovered).
    """

    path: str
    format: str
    frames_written: int
    frames_restored: int
    was_complete: bool


def recover(
    path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> RecoveryReport:
    """Finish an acquisition whose writer was killed.

    Every frame for which ``append`` returned is put in place, the final
    shape of an unbounded dimension and all the metadata (every frame's
    included) are written, and the output is marked complete. Running it
    again, or on a complete output, does nothing. Nothing that this package
    did not write is deleted.

    Parameters
    ----------
    path
        The output: an OME-Zarr directory, an OME-TIFF file (or the folder of
        a one-file-per-position dataset), or a scratch root; or the
        ``s3://`` URL of an OME-Zarr, whose journal is on this machine's disk
        (``OME_WRITERS_STATE_DIR``, see the README): the frames it holds are
        uploaded.
    storage_options
        For an ``s3://`` URL: the ``OmeZarrFormat.storage_options`` to use
        (credentials are not kept in the journal; without them the AWS
        environment's are used, and the endpoint and region the stream had).

    Raises
    ------
    NotADatasetError
        ``path`` is not an output of this package (a ``ValueError``).
    """
    if is_s3_url(str(path)):
        return _recover_remote(str(path), storage_options)
    output = Path(os.path.abspath(path))
    journal = _find_journal(output)
    if journal is not None:
        return _recover_from_journal(output, journal)
    manifest = scratch_files.read_manifest_or_none(output)
    if manifest is not None:
        return _finish_scratch(output, manifest)
    complete = _completed_output(output)
    if complete is not None:
        return RecoveryReport(str(output), complete[0], complete[1], 0, True)
    raise NotADatasetError(
        f"{str(path)!r} is not an interrupted or complete output of ome_writers "
        f"(no journal {journal_path(output).name!r} beside it, no scratch manifest, no "
        "ome_writers metadata); nothing to recover"
    )


def _find_journal(output: Path) -> Path | None:
    """The journal beside ``output``, or the one whose output folder it is."""
    journal = journal_path(output)
    if is_journal(journal):
        return journal
    if not output.parent.is_dir():
        return None
    for candidate in output.parent.glob(f"*{JOURNAL_SUFFIX}"):
        if not is_journal(candidate):
            continue
        try:
            settings = read_journal_settings(candidate)
            written = Path(AcquisitionSettings.model_validate(settings).output_path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if Path(os.path.abspath(written)) == output:
            return candidate
    return None


def _recover_remote(url: str, storage_options: dict[str, Any] | None) -> RecoveryReport:
    """Recover an OME-Zarr on S3 from its local journal (see ``_store``)."""
    from ome_writers._backends.zarr._store import remote_journal_output, zarr_root

    root = OmeZarrFormat().get_output_path(url)
    journal = journal_path(remote_journal_output(root))
    if is_journal(journal):
        return _recover_from_journal(Path(root), journal, storage_options, url=root)
    store = zarr_root(root, storage_options)
    try:
        document = json.loads(store.read_bytes("zarr.json"))
        own = document["attributes"]["ome_writers"]
    except (OSError, ValueError, KeyError, TypeError):
        own = None
    if isinstance(own, dict) and own.get("complete"):
        frames = int(own.get("frames_written", 0))
        return RecoveryReport(root, "ome-zarr", frames, 0, True)
    raise NotADatasetError(
        f"{url!r} has no journal on this machine ({str(journal)!r}) and is not a "
        "complete output of ome_writers; recover it on the machine that wrote it "
        "(or with the same OME_WRITERS_STATE_DIR)"
    )


def _recover_from_journal(
    output: Path,
    journal: Path,
    storage_options: dict[str, Any] | None = None,
    *,
    url: str | None = None,
) -> RecoveryReport:
    try:
        contents = read_journal(journal)
        data = {**contents.settings, "overwrite": False}
        if storage_options:
            fmt = dict(data["format"])
            fmt["storage_options"] = {
                **(fmt.get("storage_options") or {}),
                **storage_options,
            }
            data["format"] = fmt
        settings = AcquisitionSettings.model_validate(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotADatasetError(
            f"the journal {str(journal)!r} cannot be read ({exc}); recover "
            "cannot finish the output without it"
        ) from None
    if contents.conversion_of is not None:
        raise NotADatasetError(
            f"{url or str(output)!r} is an interrupted conversion of "
            f"{contents.conversion_of!r}: the frames it was writing are in the "
            "source, not in a journal, so recover cannot finish it; convert "
            "again with overwrite=True (ome-writers convert ... --overwrite)"
        )
    router = build_router(settings)
    backend = get_backend_class(settings.format.backend)(settings, router)
    if not isinstance(backend, SupportsRecovery):  # pragma: no cover - scratch
        raise NotADatasetError(f"format {settings.format.name!r} has no journal")
    backend.reopen()
    frames_written = contents.frames_written
    restored = 0
    for n in sorted(set(contents.frames) | set(contents.frame_metadata)):
        values = contents.frame_metadata.get(n)
        metadata = (
            None
            if values is None
            else FrameMetadata(values, json.dumps(values, separators=(",", ":")))
        )
        frame = contents.frames.get(n)
        if frame is not None:
            backend.write(n, frame.astype(settings.dtype, copy=False), metadata)
            restored += 1
        elif metadata is not None:
            backend.restore_frame_metadata(n, metadata)
    if contents.global_metadata:
        backend.set_global_metadata(contents.global_metadata, closed=False)
    if contents.format_metadata:
        backend.update_metadata(contents.format_metadata, closed=False)
    backend.close(frames_written)
    shutil.rmtree(journal)
    return RecoveryReport(
        url or str(output), settings.format.name, frames_written, restored, False
    )


def _finish_scratch(root: Path, manifest: dict[str, object]) -> RecoveryReport:
    from ome_writers._backends.scratch._reader import open_scratch

    if manifest.get("complete"):
        frames = manifest.get("frames_written", 0)
        return RecoveryReport(str(root), "scratch", int(frames), 0, True)  # type: ignore[call-overload]
    dataset = open_scratch(root)
    shapes = [tuple(a.shape) for a in dataset.arrays]
    itemsize = dataset.arrays[0].dtype.itemsize if dataset.arrays else 0
    frames_written = dataset.frames_written
    del dataset  # its memory maps, before the files are trimmed
    payload = {
        **manifest,
        "position_shapes": [list(shape) for shape in shapes],
        "frames_written": frames_written,
        "complete": True,
    }
    text = scratch_files.manifest_text(payload)
    replace_file(root / scratch_files.MANIFEST, text, durable=True)
    for position, shape in enumerate(shapes):
        path = root / scratch_files.data_file_name(position)
        size = itemsize * math.prod(shape)
        if path.stat().st_size > size:  # the files were kept ahead of the data
            os.truncate(path, size)
    return RecoveryReport(str(root), "scratch", frames_written, 0, False)


def _completed_output(output: Path) -> tuple[str, int] | None:
    """(format, frames) of a complete OME-Zarr or OME-TIFF of ours, else None."""
    root_json = output / "zarr.json"
    if root_json.is_file():
        try:
            attributes = json.loads(root_json.read_text())["attributes"]
            own = attributes["ome_writers"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if isinstance(own, dict) and own.get("complete"):
            return "ome-zarr", int(own.get("frames_written", 0))
        return None
    from ome_writers._formats import OmeTiffFormat

    # a root_path given for a folder of one file per position names the folder
    folder = Path(OmeTiffFormat().split_tiff_path(str(output))[0])
    for candidate in (output, folder):
        if not candidate.exists():
            continue
        from ome_writers._backends.tiff._describe import writer_state

        state = writer_state(candidate)
        if state is not None and state.get("complete") == "true":
            return "ome-tiff", int(state.get("frames_written", 0))
    return None
