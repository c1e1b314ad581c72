"""``convert``: one output of this package into another format, streamed.

Preview now, keep later: acquire into scratch, look at it, then convert what
is worth keeping into OME-Zarr or OME-TIFF (or any of the three into any
other, e.g. OME-Zarr into OME-Zarr with other chunks or compression).

Design. The source is opened read-only as an acquisition (``_dataset``):
its settings (as the writer recorded them), its global metadata, and per
frame number its pixels and its metadata. The destination is a normal stream
(``create_stream``) with the source's settings but ``root_path``, format,
compression and, if given, chunks and shards; its frames are appended in
acquisition order, with their metadata. So the destination is exactly what a
stream writes, with every guarantee a stream gives, and nothing here knows
how a format lays out its files.

- **Frames never written** (skipped, or lost to an interrupted writer)
  read as zeros in every format, and so does a frame whose pixels are all
  zero: such a frame without metadata is skipped in the destination, not
  written (a missing chunk, a hole in a TIFF page); it reads the same.
- **Interrupted sources** are read as they are, never finished in place
  (``_dataset``); the destination is complete and holds the frames that
  exist.
- **Memory** stays a few frames or chunks on the reading side: scratch
  frames and OME-TIFF pages are read with ``pread`` into one reused buffer,
  OME-Zarr in blocks one chunk deep along the non-frame axes, the last few
  kept (``_backends/zarr/_reader``), so a chunk spanning several frames is
  decoded once. The destination's stream holds what any stream holds (an
  OME-Zarr chunk being filled, the writes in flight). Per-frame metadata (a
  few hundred bytes a frame) is held whole, as a stream does.
- **Safety**: the destination is refused if it exists, unless
  ``overwrite=True``, which replaces only what this package wrote (the
  stream's own rule); it may not be, contain, or lie inside the source. If
  the conversion fails or is interrupted (``KeyboardInterrupt``), the stream
  is abandoned, never closed (closing marks an output complete), and what it
  wrote is removed; a killed conversion leaves an interrupted output that
  says so (``complete`` false, a journal beside it). The source is only read.
- **No frame journal for OME-Zarr**: every frame a conversion appends is in
  its source, so the destination's journal keeps no copies of frames in
  flight (``Journal.for_conversion_of``; the copies cost about a fifth of a
  conversion's time). It names the source instead, and ``recover`` refuses
  such an output, naming the source: an interrupted conversion is done
  again (``overwrite=True``), not finished.
- **S3**: an OME-Zarr source may be an ``s3://`` URL (read by zarr-python
  over the store abstraction), and an OME-Zarr destination may be one (the
  stream writes there as any stream does); ``storage_options`` serves both,
  the rest comes from the AWS environment. A failed conversion to S3
  deletes the keys it wrote (``ZarrRoot.remove_written``).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_writers._backends._base import MAX_ZERO_FILL_BYTES, MAX_ZERO_FILL_FRAMES
from ome_writers._backends._journal import journal_path
from ome_writers._backends.scratch import _files as scratch_files
from ome_writers._dataset import Dataset, open_dataset
from ome_writers._format_metadata import carry_format_metadata
from ome_writers._settings import AcquisitionSettings
from ome_writers._stream import create_stream
from ome_writers._urls import is_s3_url, split_s3_url

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ome_writers._formats import OmeTiffFormat, OmeZarrFormat, ScratchFormat
    from ome_writers._pyramid import Pyramid
    from ome_writers._stream import OMEStream

    #: ``progress(frames_done, frames_total, bytes_done)``
    ProgressCallback = Callable[[int, int, int], object]


@dataclass(frozen=True)
class ConversionReport:
    """What ``convert`` did.

    Attributes
    ----------
    source
        The source as given.
    destination
        Where the data went (``settings.output_path`` of the destination).
    source_format, format
        ``"scratch"``, ``"ome-zarr"`` or ``"ome-tiff"``: the source's, and
        the destination's.
    source_complete
        False when the source's writer was interrupted (the destination holds
        the frames it had written, and is complete).
    frames_written
        Frames the destination holds, appended or skipped (as
        ``OMEStream.frames_written`` counts them).
    frames_skipped
        Of those, the frames skipped: never written in the source, or all
        zeros without metadata (they read as zeros).
    frames_declared
        Frames the dimensions declare; None for an unbounded first dimension.
    bytes
        Pixel bytes copied (frames appended x bytes per frame).
    seconds
        Wall time of the whole conversion.
    """

    source: str
    destination: str
    source_format: str
    format: str
    source_complete: bool
    frames_written: int
    frames_skipped: int
    frames_declared: int | None
    bytes: int
    seconds: float


def convert(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    format: str | ScratchFormat | OmeZarrFormat | OmeTiffFormat | None = None,
    compression: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    chunks: Mapping[str, int] | None = None,
    shards: Mapping[str, int] | None = None,
    pyramid: Pyramid | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ConversionReport:
    """Write the acquisition in ``source`` to ``destination`` in another format.

    Everything is kept: dimensions and their order, dtype, units and scales,
    channels, positions and stage coordinates, the plate, per-frame and
    global metadata, and what ``update_metadata`` set where the destination
    format has a place that means the same (see Notes). See the module notes
    for how it streams and what happens on failure.

    Parameters
    ----------
    source
        An output of this package: a scratch root (complete, or interrupted
        and never recovered), an OME-Zarr root, or an OME-TIFF (the file, the
        folder of one file per position or any file in it, its companion
        file, or the ``root_path`` it was written for); or an OME-TIFF of
        another writer or an older version, rebuilt from its OME-XML (see
        Notes). It is never modified.
    destination
        The destination's ``root_path``.
    format
        The destination format, as ``AcquisitionSettings.format`` takes it: a
        name (``"ome-zarr"``, ``"tensorstore"``, ``"ome-tiff"``,
        ``"scratch"``, ...) or a format model for its options (e.g.
        ``OmeTiffFormat(prefer_single_file="always")``). None follows the
        suffix of ``destination`` (``.ome.zarr``, ``.ome.tiff``); scratch
        must be named. Options of the source's format are not carried over.
    compression
        The destination's codec. None keeps the source's if the destination
        format can write it (else uncompressed); ``"none"`` writes
        uncompressed.
    overwrite
        Replace an existing destination that this package wrote.
    progress
        Called after every frame as ``progress(frames_done, frames_total,
        bytes_done)`` (``bytes_done``: pixel bytes copied so far).
    chunks, shards
        Dimension name -> ``Dimension.chunk_size`` / ``shard_size_chunks``
        for the destination (OME-Zarr); the others keep the source's.
    pyramid
        Lower resolutions written beside the full resolution (OME-Zarr,
        OME-TIFF): how a pyramid is added to an existing dataset. None: the
        pyramid of ``format`` when it is a format model, else none (a source's
        pyramid is not carried over unless asked for).
    storage_options
        For an ``s3://`` source or destination (OME-Zarr): endpoint, region
        and credentials as ``OmeZarrFormat.storage_options`` takes them; what
        is not given comes from the AWS environment.

    Returns
    -------
    ConversionReport

    Raises
    ------
    NotADatasetError
        ``source`` is not an output of this package, or an OME-TIFF whose
        OME-XML lacks what an acquisition needs (the message names the file
        and what is missing; a ``ValueError``).
    FileExistsError
        ``destination`` exists and ``overwrite`` is False, or it is not an
        output this package may replace.
    ValueError
        Settings the destination format cannot write (e.g. more than five
        axes in OME-Zarr), an unknown format or compression, a ``chunks``
        name that is not a dimension, a destination overlapping the
        source, or a ``pyramid`` for a format without one (scratch).
    BackendUnavailableError
        The engine of the destination, or a reader of the source, is not
        installed (an ``ImportError``).
    WriteError
        The destination's disk refused (nothing of it is left).

    Notes
    -----
    **Format metadata** (``update_metadata``): OME-Zarr to OME-Zarr, each
    image group's own keys, and the edits made to ``"ome"`` applied to the
    destination's (its ``multiscales`` datasets stay those of its arrays);
    OME-TIFF to OME-TIFF, the edited document, with the destination's files,
    UUIDs, ``TiffData`` and writer annotation, in every document that
    describes the dataset; between the two, a group's own keys as a
    ``MapAnnotation`` (namespace ``ome_writers/zarr_attributes``) of its
    Image, and back. Not carried, since nothing in the other format means the
    same: ``"ome"`` edits into OME-TIFF (NGFF's description of the Zarr
    arrays), other OME-XML edits into OME-Zarr (no place for Instruments,
    ROIs, descriptions; a ``MapAnnotation`` with a namespace that the first
    Image refers to is global metadata and travels as such), anything into or
    out of scratch (none; ``set_global_metadata`` is kept by every format).

    **Per-frame values** keep their type through OME-TIFF (a string ``"1"``
    stays a string); ``delta_t``, ``exposure_time`` and ``position_x/y/z``
    are OME Plane attributes and come back as floats. Files written before
    the writer annotation's ``frame_metadata_encoding`` entry read as they
    always did (a string that reads as JSON comes back as that value).

    **OME-TIFFs without recorded settings** (older versions, tifffile's
    ``ome=True``): dimensions from ``DimensionOrder`` and the sizes above 1,
    positions from the Images (names, stage coordinates, plate wells), dtype,
    physical sizes and time increment with units, channels, and pages from
    ``TiffData``. What only settings hold (chunk hints, format options, an
    unbounded first dimension) is not rebuilt; tiled, predicted or RGB pages
    are refused.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from ome_writers import AcquisitionSettings, create_stream
    >>> from ome_writers import dims_from_standard_axes
    >>> tmp = tempfile.mkdtemp()
    >>> settings = AcquisitionSettings(
    ...     root_path=f"{tmp}/preview",
    ...     format="scratch",
    ...     dimensions=dims_from_standard_axes({"t": 3, "y": 8, "x": 8}),
    ...     dtype="uint16",
    ... )
    >>> with create_stream(settings) as stream:
    ...     for t in range(3):
    ...         stream.append(np.full((8, 8), t, "uint16"))
    >>> report = convert(f"{tmp}/preview", f"{tmp}/kept.ome.zarr")
    >>> report.format, report.frames_written, report.frames_skipped
    ('ome-zarr', 3, 1)
    >>> import shutil
    >>> shutil.rmtree(tmp)
    """
    start = time.perf_counter()
    source_text = os.fspath(source)
    destination_text = os.fspath(destination)
    if storage_options is not None and not (
        is_s3_url(source_text) or is_s3_url(destination_text)
    ):
        raise ValueError(
            f"storage_options {sorted(storage_options)!r} are for an s3:// source "
            f"or destination, but source is {source_text!r} and destination is "
            f"{destination_text!r}; drop them"
        )
    src = open_dataset(
        source_text if is_s3_url(source_text) else Path(source_text),
        storage_options,
    )
    try:
        settings = _destination_settings(
            src, destination, format, compression, overwrite, chunks, shards
        )
        if pyramid is not None:
            settings = _with_pyramid(settings, pyramid)
        if storage_options is not None and is_s3_url(settings.output_path):
            settings = _with_storage_options(settings, storage_options)
        _check_apart(src, settings)
        output = Path(os.path.abspath(settings.output_path))
        existed = os.path.lexists(output)
        stream = create_stream(settings)
        try:
            journal = stream._journal
            if journal is not None and settings.format.name == "ome-zarr":
                journal.for_conversion_of(
                    source_text if is_s3_url(source_text) else os.path.abspath(source)
                )
            for namespace, mapping in src.global_metadata.items():
                stream.set_global_metadata(namespace, mapping)
            appended, skipped = _copy_frames(src, stream, progress)
        except BaseException:
            _abandon(stream)
            _remove_output(stream, output, existed=existed)
            raise
        try:
            stream.close()
            carry_format_metadata(src, stream)
        except BaseException:
            _remove_output(stream, output, existed=existed)
            raise
    finally:
        src.close()
    frame_bytes = math.prod(settings.frame_shape) * settings.itemsize
    return ConversionReport(
        source=source_text,
        destination=settings.output_path,
        source_format=src.kind,
        format=settings.format.name,
        source_complete=src.complete,
        frames_written=appended + skipped,
        frames_skipped=skipped,
        frames_declared=settings.num_frames,
        bytes=appended * frame_bytes,
        seconds=time.perf_counter() - start,
    )


# ------------------------------------------------------------------ destination


def _destination_settings(
    src: Dataset,
    destination: str | os.PathLike[str],
    fmt: Any,
    compression: str | None,
    overwrite: bool,
    chunks: Mapping[str, int] | None,
    shards: Mapping[str, int] | None,
) -> AcquisitionSettings:
    """The source's settings with the destination's path, format and codec."""
    data = src.settings.model_dump(mode="json")
    dims: list[dict[str, Any]] = data["dimensions"]
    names = [d["name"] for d in dims]
    for option, field, mapping in (
        ("chunks", "chunk_size", chunks),
        ("shards", "shard_size_chunks", shards),
    ):
        unknown = sorted(set(mapping or {}) - set(names))
        if unknown:
            raise ValueError(
                f"{option}: {unknown!r} are not dimensions of the source; use "
                f"names from {names!r}"
            )
        for d in dims:
            if mapping and d["name"] in mapping:
                d[field] = mapping[d["name"]]
    data.update(
        root_path=os.fspath(destination),
        format="auto" if fmt is None else fmt,
        compression=None,
        overwrite=overwrite,
    )
    settings = AcquisitionSettings.model_validate(data)
    wanted = compression
    if wanted is None:
        keep = src.compression
        wanted = keep if keep in settings.format.supported_compressions() else None
    if wanted is not None:
        settings.compression = wanted  # validated on assignment
    return settings


def _with_pyramid(
    settings: AcquisitionSettings, pyramid: Pyramid
) -> AcquisitionSettings:
    """``settings`` whose format writes ``pyramid`` (validated again)."""
    fmt = settings.format
    if "pyramid" not in type(fmt).model_fields:
        raise ValueError(
            f"pyramid={pyramid!r}: the {fmt.name!r} format has no lower "
            "resolutions; convert to OME-Zarr (.ome.zarr) or OME-TIFF (.ome.tiff) "
            "to add a pyramid"
        )
    data = dict(settings)
    data["format"] = fmt.model_copy(update={"pyramid": pyramid})
    return AcquisitionSettings.model_validate(data)


def _with_storage_options(
    settings: AcquisitionSettings, storage_options: dict[str, Any]
) -> AcquisitionSettings:
    """``settings`` whose OME-Zarr format has ``storage_options`` (validated)."""
    fmt = settings.format
    if "storage_options" not in type(fmt).model_fields:
        raise ValueError(
            f"storage_options: the {fmt.name!r} format cannot write to "
            f"{settings.output_path!r}; only OME-Zarr writes to s3://"
        )
    data = dict(settings)
    given = dict(getattr(fmt, "storage_options", None) or {})
    data["format"] = fmt.model_copy(
        update={"storage_options": {**given, **storage_options}}
    )
    return AcquisitionSettings.model_validate(data)


def _check_apart(src: Dataset, settings: AcquisitionSettings) -> None:
    """Refuse a destination that is, contains or lies inside the source."""
    if is_s3_url(settings.output_path) or src.url is not None:
        _check_apart_urls(src.url, settings.output_path)
        return
    output = Path(os.path.realpath(settings.output_path))
    journal = Path(os.path.realpath(journal_path(output)))
    for part in src.paths:
        resolved = Path(os.path.realpath(part))
        for target in (output, journal):
            if (
                target == resolved
                or resolved in target.parents
                or target in resolved.parents
            ):
                raise ValueError(
                    f"destination {settings.output_path!r} overlaps the source "
                    f"{str(part)!r}; convert never writes into, over or around its "
                    "source: choose another destination"
                )


def _check_apart_urls(source: str | None, destination: str) -> None:
    """The same rule between two ``s3://`` URLs (a local path never overlaps one)."""
    if source is None or not is_s3_url(destination):
        return
    a = "/".join(split_s3_url(source)) + "/"
    b = "/".join(split_s3_url(destination)) + "/"
    if a.startswith(b) or b.startswith(a):
        raise ValueError(
            f"destination {destination!r} overlaps the source {source!r}; convert "
            "never writes into, over or around its source: choose another "
            "destination"
        )


def _is_zero(frame: np.ndarray) -> bool:
    """All bits zero (so -0.0 is not), looking at a few pixels first."""
    bits = frame.reshape(-1).view(f"u{frame.dtype.itemsize}")
    if bits[0] or bits[bits.size // 2] or bits[-1]:
        return False
    return not bits.any()


def _copy_frames(
    src: Dataset, stream: OMEStream, progress: ProgressCallback | None
) -> tuple[int, int]:
    """Append (or skip) every frame in acquisition order; (appended, skipped)."""
    total = src.frames_written
    settings = src.settings
    frame_bytes = math.prod(settings.frame_shape) * settings.itemsize
    # what one skip may fill in formats that write zeros (OME-TIFF, acquire-zarr)
    max_skip = max(1, min(MAX_ZERO_FILL_FRAMES, MAX_ZERO_FILL_BYTES // frame_bytes))
    read, metadata_of = src.read, src.metadata
    append, skip = stream.append, stream.skip
    appended = skipped = pending = 0
    for n in range(total):
        metadata = metadata_of(n)
        frame = read(n)
        if metadata is None and (frame is None or _is_zero(frame)):
            pending += 1
            if pending == max_skip:
                skip(frames=pending)
                skipped, pending = skipped + pending, 0
        else:
            if pending:
                skip(frames=pending)
                skipped, pending = skipped + pending, 0
            if frame is None:
                frame = np.zeros(settings.frame_shape, settings.dtype)
            append(frame, frame_metadata=metadata)
            appended += 1
        if progress is not None:
            progress(n + 1, total, appended * frame_bytes)
    if pending:
        skip(frames=pending)
        skipped += pending
    return appended, skipped


# ------------------------------------------------------------------ failure


def _abandon(stream: OMEStream) -> None:
    """Release a stream without finishing it: its output must not claim complete.

    ``close()`` (and the finalizer that calls it for a forgotten stream)
    writes the final metadata and marks the output complete, so neither may
    run: the finalizer is detached and the backend aborted (its writer
    threads stopped, its files closed).
    """
    stream._finalizer.detach()
    with stream._lock:
        stream._closed = True
    try:
        stream._events.stop()
    finally:
        stream._backend.abort()


def _remove_output(stream: OMEStream, output: Path, *, existed: bool) -> None:
    """Delete what the destination's stream wrote (and its journal).

    A destination that did not exist before is removed whole; one that did
    (``overwrite=True``) was replaced by the stream, except for a folder that
    may hold files of others (OME-TIFF's folder of files, a reused scratch
    root): there only the stream's own files go.
    """
    backend = stream._backend
    if backend.journal is not None:
        backend.journal.remove()
    store = getattr(backend, "store", None)
    if store is not None and store.is_remote:
        store.remove_written()
        return
    name = stream.settings.format.name
    if name == "ome-tiff" and existed and output.is_dir():
        for path in getattr(backend, "paths", []):
            Path(path).unlink(missing_ok=True)
    elif name == "scratch" and existed and output.is_dir():
        scratch_files.remove_scratch_files(output)
    elif output.is_dir() and not output.is_symlink():
        shutil.rmtree(output, ignore_errors=True)
    elif os.path.lexists(output):
        output.unlink()
