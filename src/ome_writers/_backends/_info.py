"""What ``ome-writers info`` knows about a dataset, whatever its format.

Each format's describer (``scratch/_describe``, ``zarr/_describe``,
``tiff/_describe``) fills in one ``DatasetInfo`` from what the output says
about itself (the scratch manifest, the Zarr JSON documents, the OME-XML),
so that one renderer and one JSON encoding serve every format: the same
labels, the same units (UDUNITS-2 names), the same index spaces. Nothing
here reads a file or opens an engine, and nothing imports a backend, so the
describers and the command line can all import it.

Why one neutral model rather than each format printing its own summary: a
script (or a person) comparing a scratch preview with the OME-Zarr it was
converted into must find the same sizes under the same names, and an
interrupted run must read as interrupted in every format.

The JSON keys of ``DatasetInfo.to_json`` are a contract (documented in the
README's "Command line" section): keys are only ever added, never renamed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable

#: the writer name a dataset of this package carries
OUR_WRITER = "ome_writers"

State = Literal["complete", "interrupted", "incomplete", "unknown"]

#: spellings of units (settings, OME-XML symbols, UDUNITS-2 names) -> UDUNITS-2
_UNIT_NAMES = {
    **dict.fromkeys(("m", "meter", "metre"), "meter"),
    **dict.fromkeys(("cm", "centimeter"), "centimeter"),
    **dict.fromkeys(("mm", "millimeter"), "millimeter"),
    **dict.fromkeys(("um", "µm", "μm", "micrometer", "micron"), "micrometer"),
    **dict.fromkeys(("nm", "nanometer"), "nanometer"),
    **dict.fromkeys(("pm", "picometer"), "picometer"),
    **dict.fromkeys(("å", "angstrom"), "angstrom"),
    **dict.fromkeys(("s", "sec", "second"), "second"),
    **dict.fromkeys(("ms", "millisecond"), "millisecond"),
    **dict.fromkeys(("us", "µs", "μs", "microsecond"), "microsecond"),
    **dict.fromkeys(("ns", "nanosecond"), "nanosecond"),
    **dict.fromkeys(("min", "minute"), "minute"),
    **dict.fromkeys(("h", "hour"), "hour"),
    **dict.fromkeys(("d", "day"), "day"),
}

#: micrometers per unit, for stage coordinates given in another length unit
_MICROMETERS = {
    "meter": 1e6,
    "centimeter": 1e4,
    "millimeter": 1e3,
    "micrometer": 1.0,
    "nanometer": 1e-3,
    "picometer": 1e-6,
    "angstrom": 1e-4,
}


def unit_name(unit: str | None) -> str | None:
    """The UDUNITS-2 name of ``unit``; a unit not known here is kept as given.

    >>> unit_name("um"), unit_name("µs"), unit_name("furlong"), unit_name(None)
    ('micrometer', 'microsecond', 'furlong', None)
    """
    if unit is None or not str(unit).strip():
        return None
    text = str(unit).strip()
    return _UNIT_NAMES.get(text.lower(), _UNIT_NAMES.get(text, text))


def to_micrometers(value: float | None, unit: str | None) -> float | None:
    """``value`` in ``unit`` (default micrometers) as micrometers, else None.

    >>> to_micrometers(1.5, "mm"), to_micrometers(2.0, None), to_micrometers(1, "px")
    (1500.0, 2.0, None)
    """
    if value is None:
        return None
    factor = _MICROMETERS.get(unit_name(unit) or "micrometer")
    return None if factor is None else float(value) * factor


@dataclass(frozen=True)
class DimensionInfo:
    """One stored axis of every position's array, in storage order.

    Attributes
    ----------
    name
        The axis name (``"t"``, ``"c"``, ``"y"``...).
    type
        ``"time"``, ``"channel"``, ``"space"``, ``"other"``, or None if unknown.
    size
        Its extent on disk; for an interrupted unbounded axis, the steps its
        written frames fill.
    unbounded
        Declared without a count (only known for this package's outputs).
    unit
        Physical unit, as a UDUNITS-2 name (``"micrometer"``, ``"second"``).
    scale
        Step (pixel size, time increment) in ``unit``.
    chunk
        Elements per chunk along this axis (chunked formats).
    shard
        Elements per shard along this axis (sharded formats).
    """

    name: str
    type: str | None
    size: int
    unbounded: bool = False
    unit: str | None = None
    scale: float | None = None
    chunk: int | None = None
    shard: int | None = None


@dataclass(frozen=True)
class PositionInfo:
    """One position (field of view): one array of the dataset.

    Attributes
    ----------
    name
        The position's name.
    path
        Where its pixels are, relative to the dataset's directory (the
        dataset path itself when it is a directory, else its parent).
    shape
        Its array's shape in storage order; None when no array is written yet.
    x_um, y_um, z_um
        Stage coordinates in micrometers, where known.
    plate_row, plate_column
        Its well, for a plate.
    """

    name: str
    path: str
    shape: tuple[int, ...] | None
    x_um: float | None = None
    y_um: float | None = None
    z_um: float | None = None
    plate_row: str | None = None
    plate_column: str | None = None


@dataclass(frozen=True)
class PlateInfo:
    """The plate the positions are wells of.

    Attributes
    ----------
    name
        The plate's name, if it has one.
    rows, columns
        Row and column names of the whole plate.
    wells
        Wells holding at least one position.
    """

    name: str | None
    rows: list[str]
    columns: list[str]
    wells: int


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as its files describe it, in terms shared by every format.

    Attributes
    ----------
    path
        The dataset: a scratch root, an OME-Zarr root, an OME-TIFF file, or
        the folder of a one-file-per-position OME-TIFF.
    format
        ``"scratch"``, ``"ome-zarr"`` or ``"ome-tiff"``.
    format_version
        The OME-Zarr version (``"0.5"``); None for the other formats.
    layout
        ``"root"`` (scratch); ``"image"``, ``"bioformats2raw"`` or ``"plate"``
        (OME-Zarr); ``"single-file"`` or ``"file-per-position"`` (OME-TIFF).
    writer
        ``"ome_writers"`` for this package's outputs; otherwise the creator the
        files name, or None.
    writer_version
        The version of the writer, where recorded.
    engine
        The engine that wrote the pixels (``"tensorstore"``, ``"tifffile"``...),
        for this package's outputs.
    dtype
        Pixel type, as a numpy name.
    dimensions
        The stored axes of each position's array, in storage order (the
        position dimension is not an axis: each position has its own array).
    acquisition_order
        Every dimension's name in acquisition order (the position dimension
        included); None when the files do not say.
    channels
        Channel names, in the order of the channel axis.
    positions
        One entry per position array, in position order.
    plate
        The plate, if the positions are wells of one.
    compression
        Codec name, ``"none"`` when uncompressed.
    frames_written
        Frames appended (or skipped) before close or interruption; None when
        the files do not say.
    frames_total
        Frames the dimensions declare; None when unbounded or unknown.
    complete
        True once the writer closed the dataset; None when the files do not say
        (another writer's output).
    interrupted
        The writer died before ``close()``: ``ome-writers recover`` finishes it.
    journal
        The journal beside an interrupted OME-Zarr or OME-TIFF.
    levels
        Resolution levels, the full resolution included.
    bytes_on_disk
        Bytes the dataset's files occupy on disk (sparse regions excluded).
    """

    path: str
    format: str
    layout: str
    dtype: str
    dimensions: list[DimensionInfo]
    positions: list[PositionInfo]
    format_version: str | None = None
    writer: str | None = None
    writer_version: str | None = None
    engine: str | None = None
    acquisition_order: list[str] | None = None
    channels: list[str] = field(default_factory=list)
    plate: PlateInfo | None = None
    compression: str = "none"
    frames_written: int | None = None
    frames_total: int | None = None
    complete: bool | None = None
    interrupted: bool = False
    journal: str | None = None
    levels: int = 1
    bytes_on_disk: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of each position's array (the dimensions' sizes)."""
        return tuple(d.size for d in self.dimensions)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """(y, x): the last two dimensions' sizes."""
        return self.shape[-2:]

    @property
    def is_ours(self) -> bool:
        """True when this package wrote the dataset."""
        return self.writer == OUR_WRITER

    @property
    def state(self) -> State:
        """``"interrupted"`` (``recover`` finishes it), ``"complete"``,
        ``"incomplete"`` (ours, not closed and no journal: still being
        written, or its journal was removed) or ``"unknown"`` (another
        writer's output)."""
        if self.interrupted:
            return "interrupted"
        if self.complete is None:
            return "unknown"
        return "complete" if self.complete else "incomplete"

    def to_json(self) -> dict[str, Any]:
        """The description as plain JSON types, with the README's stable keys."""
        plate = self.plate
        return {
            "path": self.path,
            "format": self.format,
            "format_version": self.format_version,
            "layout": self.layout,
            "writer": self.writer,
            "writer_version": self.writer_version,
            "engine": self.engine,
            "state": self.state,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "journal": self.journal,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "frame_shape": list(self.frame_shape),
            "dimensions": [
                {
                    "name": d.name,
                    "type": d.type,
                    "size": d.size,
                    "unbounded": d.unbounded,
                    "unit": d.unit,
                    "scale": d.scale,
                    "chunk": d.chunk,
                    "shard": d.shard,
                }
                for d in self.dimensions
            ],
            "acquisition_order": self.acquisition_order,
            "channels": list(self.channels),
            "positions": [
                {
                    "name": p.name,
                    "path": p.path,
                    "shape": None if p.shape is None else list(p.shape),
                    "x_um": p.x_um,
                    "y_um": p.y_um,
                    "z_um": p.z_um,
                    "plate_row": p.plate_row,
                    "plate_column": p.plate_column,
                }
                for p in self.positions
            ],
            "plate": None
            if plate is None
            else {
                "name": plate.name,
                "rows": list(plate.rows),
                "columns": list(plate.columns),
                "wells": plate.wells,
            },
            "compression": self.compression,
            "frames_written": self.frames_written,
            "frames_total": self.frames_total,
            "levels": self.levels,
            "bytes_on_disk": self.bytes_on_disk,
        }


def declared_frames(counts: Iterable[Any]) -> int | None:
    """Frames that non-frame dimension counts declare; None if any is unbounded.

    >>> declared_frames([3, 2, 2]), declared_frames([None, 2]), declared_frames([])
    (12, None, 1)
    """
    given = list(counts)
    values = [c for c in given if isinstance(c, int) and not isinstance(c, bool)]
    return math.prod(values) if len(values) == len(given) else None


def disk_bytes(paths: Iterable[Path]) -> int:
    """Bytes that ``paths`` (files, or directories walked whole) occupy on disk."""
    total = 0
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for folder, _dirs, files in os.walk(path):
                total += disk_bytes(Path(folder, name) for name in files)
            continue
        try:
            total += os.lstat(path).st_blocks * 512
        except OSError:
            continue
    return total
