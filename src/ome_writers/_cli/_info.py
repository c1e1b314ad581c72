"""``ome-writers info PATH [--json]``: one description, one layout, any format.

Each format's describer turns what its files say about themselves into a
``DatasetInfo`` (``_backends/_info``); this module picks the describer, adds
what only the surroundings know (a journal beside the output means the
writer died before ``close()``), and prints the result either as text, the
same labels in the same order with the same units whatever the format, or
as JSON for scripts (``DatasetInfo.to_json``, keys listed in the README).

Every line is always printed, with ``none`` or ``unknown`` where a format
has nothing to say, so that two datasets' descriptions line up and a script
reading the text finds each label where it expects it. Positions are listed
up to ``MAX_LISTED``; thousands of them would bury the rest.

The describers are imported lazily: the OME-TIFF one needs tifffile and
ome-types (the ``tifffile`` extra), and a scratch root or an OME-Zarr must be
described without them.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import math
import os
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ome_writers._backends._journal import PROGRESS
from ome_writers._errors import BackendUnavailableError, NotADatasetError
from ome_writers._formats import OmeTiffFormat
from ome_writers._recover import _find_journal
from ome_writers._urls import is_s3_url

if TYPE_CHECKING:
    from ome_writers._backends._info import DatasetInfo, DimensionInfo, PositionInfo

#: positions (and channel names) listed one by one; the rest are counted
MAX_LISTED = 20
#: width of the labels, so that values line up
_LABEL_WIDTH = 14
_SEP = " · "
#: UDUNITS-2 names -> the symbols printed
_SYMBOLS = {
    "meter": "m",
    "centimeter": "cm",
    "millimeter": "mm",
    "micrometer": "µm",
    "nanometer": "nm",
    "picometer": "pm",
    "angstrom": "Å",
    "second": "s",
    "millisecond": "ms",
    "microsecond": "µs",
    "nanosecond": "ns",
    "minute": "min",
    "hour": "h",
    "day": "d",
}
_FORMAT_NAMES = {"scratch": "scratch", "ome-zarr": "OME-Zarr", "ome-tiff": "OME-TIFF"}
#: modules whose ``describe(path) -> DatasetInfo | None`` recognize their format
_DESCRIBERS = (
    "ome_writers._backends.zarr._describe",
    "ome_writers._backends.tiff._describe",
)


def run_info(path_text: str, *, as_json: bool = False) -> int:
    """Print the description of the dataset at ``path_text``; the exit status.

    Raises
    ------
    NotADatasetError
        ``path_text`` does not exist or is not a dataset.
    BackendUnavailableError
        It looks like an OME-TIFF but tifffile is not installed.
    """
    info = describe_dataset(path_text)
    if as_json:
        print(json.dumps(info.to_json(), indent=2))
        return 0
    if isinstance(sys.stdout, io.TextIOWrapper):  # "µm" on an ASCII terminal
        sys.stdout.reconfigure(errors="replace")
    print("\n".join(render_text(info)))
    return 0


def describe_dataset(path_text: str) -> DatasetInfo:
    """The ``DatasetInfo`` of a scratch root, an OME-Zarr or an OME-TIFF.

    A TIFF ``root_path`` that became a folder of one file per position (the
    path without its suffix) describes that folder.

    Raises
    ------
    NotADatasetError
        ``path_text`` does not exist or is not a dataset.
    BackendUnavailableError
        It looks like an OME-TIFF but tifffile is not installed.
    """
    if is_s3_url(path_text):
        return _describe_s3(path_text)
    path = Path(path_text)
    if not path.exists():
        folder = _tiff_folder(path)
        if folder is None:
            raise NotADatasetError(f"{path_text!r} does not exist")
        path = folder
    info = _describe(path, path_text)
    return _with_journal(info, path)


def _describe_s3(url: str) -> DatasetInfo:
    """An OME-Zarr under an S3 prefix, read through the store abstraction.

    Endpoint, region and credentials come from the AWS environment, as for
    the writer; an interrupted output's journal is looked for where its
    writer keeps it on this machine (``_store.remote_journal_output``).
    """
    from ome_writers._backends.zarr import _describe as zarr_describe
    from ome_writers._backends.zarr._store import S3Root

    root = S3Root(url, None)  # ValueError for an unsafe URL
    try:
        info = zarr_describe.describe_store(root, root.url)
    except OSError as exc:
        raise NotADatasetError(
            f"cannot read {root.url!r}: {type(exc).__name__}: {exc}; check the "
            "AWS settings (AWS_ENDPOINT_URL, AWS_REGION, credentials)"
        ) from None
    if info is None:
        raise NotADatasetError(
            f"{root.url!r} is not an OME-Zarr (no root zarr.json of an OME-Zarr "
            "group); info reads OME-Zarr only from s3://"
        )
    return _with_journal(info, root.journal_output)


def _tiff_folder(path: Path) -> Path | None:
    if not path.name.lower().endswith((".tif", ".tiff")):
        return None
    folder = Path(OmeTiffFormat().split_tiff_path(str(path))[0])
    return folder if folder.is_dir() else None


def _describe(path: Path, path_text: str) -> DatasetInfo:
    from ome_writers._backends.scratch import _describe as scratch

    if not (path / "manifest.json").exists():
        for module_name in _DESCRIBERS:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                looks_like_tiff = path.name.lower().endswith((".tif", ".tiff", ".ome"))
                if module_name.endswith("tiff._describe") and looks_like_tiff:
                    raise BackendUnavailableError(
                        f"reading {path_text!r} needs tifffile ({exc}); install it "
                        "with: pip install 'ome-writers[tifffile]'"
                    ) from None
                continue
            info: DatasetInfo | None = module.describe(path)
            if info is not None:
                return info
    return scratch.describe(path)  # or NotADatasetError saying why not


def _journal_frames(journal: Path) -> int:
    """Frames the journal's progress counter says ``append`` returned for."""
    try:
        data = (journal / PROGRESS).read_bytes()
    except OSError:
        return 0
    return int(struct.unpack("<Q", data[:8])[0]) if len(data) >= 8 else 0


def _with_journal(info: DatasetInfo, path: Path) -> DatasetInfo:
    """``info`` with what a journal beside the output says (interrupted)."""
    journal = None
    for candidate in dict.fromkeys((path, Path(info.path))):
        journal = _find_journal(Path(os.path.abspath(candidate)))
        if journal is not None:
            break
    if journal is not None:
        written = max(info.frames_written or 0, _journal_frames(journal))
        info = dataclasses.replace(
            info,
            interrupted=True,
            complete=False if info.complete is not None else None,
            journal=str(journal),
            frames_written=written,
        )
    return _unbounded_extent(info)


def _unbounded_extent(info: DatasetInfo) -> DatasetInfo:
    """An interrupted unbounded axis: the steps the written frames fill.

    What the files declare for it at the moment of the interruption differs
    by format (OME-TIFF declares steps ahead); ``recover`` will make it this.
    """
    dims = info.dimensions
    if not (info.interrupted and dims and dims[0].unbounded):
        return info
    if info.frames_written is None or len(dims) < 3:
        return info
    per_step = math.prod(d.size for d in dims[1:-2]) * max(len(info.positions), 1)
    steps = -(-info.frames_written // per_step) if per_step else 0
    positions = [
        p
        if p.shape is None or not p.shape
        else dataclasses.replace(p, shape=(steps, *p.shape[1:]))
        for p in info.positions
    ]
    first = dataclasses.replace(dims[0], size=steps)
    return dataclasses.replace(info, dimensions=[first, *dims[1:]], positions=positions)


# ------------------------------------------------------------------ text


def render_text(info: DatasetInfo) -> list[str]:
    """The lines ``ome-writers info`` prints: the same labels for every format."""
    fmt = _FORMAT_NAMES.get(info.format, info.format)
    if info.format_version:
        fmt = f"{fmt} {info.format_version}"
    state = "not written by ome_writers" if info.state == "unknown" else info.state
    lines = [f"{info.path}: {fmt} {info.layout.replace('-', ' ')}, {state}"]

    def add(label: str, value: str) -> None:
        lines.append(f"  {label + ':':<{_LABEL_WIDTH}}{value}")

    add("written by", _writer_text(info))
    add("state", _state_text(info))
    add("frames", _frames_text(info))
    add("dtype", info.dtype or "unknown")
    add("dimensions", _dims_text(info.dimensions) or "none")
    add("scale", _scale_text(info.dimensions) or "none")
    add("chunks", _per_axis(info.dimensions, "chunk") or "none")
    add("shards", _per_axis(info.dimensions, "shard") or "none")
    add("compression", info.compression)
    add("levels", str(info.levels))
    add("channels", _listed(info.channels) or "none")
    add("positions", f"{len(info.positions):,}")
    for position in info.positions[:MAX_LISTED]:
        lines.append(f"    {_position_text(position, info.shape)}")
    if len(info.positions) > MAX_LISTED:
        lines.append(f"    ... and {len(info.positions) - MAX_LISTED:,} more")
    add("plate", _plate_text(info))
    add("size on disk", f"{info.bytes_on_disk:,} bytes ({_size(info.bytes_on_disk)})")
    return lines


def _writer_text(info: DatasetInfo) -> str:
    version = f" {info.writer_version}" if info.writer_version else ""
    engine = f" ({info.engine})" if info.engine else ""
    if info.is_ours:
        return f"{info.writer}{version}{engine}"
    return f"{info.writer or 'unknown'}{version} (not ome_writers)"


def _state_text(info: DatasetInfo) -> str:
    state = info.state
    if state == "interrupted":
        held = ""
        if info.journal:
            # beside a local output its name is enough; an S3 output's journal
            # is in this machine's state directory (``OME_WRITERS_STATE_DIR``)
            where = (
                f"{info.journal!r} on this machine"
                if is_s3_url(info.path)
                else repr(Path(info.journal).name)
            )
            held = f"; its journal {where} holds the rest"
        return (
            f"interrupted: the writer died before close(){held}: "
            f"'ome-writers recover {info.path}' finishes it"
        )
    if state == "incomplete":
        return "incomplete: not closed, and no journal beside it (still being written?)"
    if state == "unknown":
        return "unknown: not written by ome_writers"
    return state


def _frames_text(info: DatasetInfo) -> str:
    written, total = info.frames_written, info.frames_total
    if written is None:
        return "unknown" if total is None else f"{total:,} declared"
    if total is not None:
        return f"{written:,} of {total:,} written"
    unbounded = info.dimensions and info.dimensions[0].unbounded
    return f"{written:,} written" + (" (unbounded)" if unbounded else "")


def _dims_text(dims: list[DimensionInfo]) -> str:
    return _SEP.join(
        f"{d.name} {d.size}" + (" (unbounded)" if d.unbounded else "") for d in dims
    )


def _scale_text(dims: list[DimensionInfo]) -> str:
    parts = []
    for d in dims:
        unit = "" if d.unit is None else _SYMBOLS.get(d.unit, d.unit)
        if d.scale is not None:
            parts.append(f"{d.name} {_number(d.scale)} {unit}".rstrip())
        elif unit:
            parts.append(f"{d.name} ({unit})")
    return _SEP.join(parts)


def _per_axis(dims: list[DimensionInfo], attribute: str) -> str:
    values = [getattr(d, attribute) for d in dims]
    if all(v is None for v in values):
        return ""
    return _SEP.join(
        f"{d.name} {'-' if v is None else v}" for d, v in zip(dims, values)
    )


def _listed(names: list[str]) -> str:
    text = ", ".join(names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        text += f", ... and {len(names) - MAX_LISTED:,} more"
    return text


def _position_text(position: PositionInfo, shape: tuple[int, ...]) -> str:
    parts = [position.path]
    if position.plate_row is not None and position.plate_column is not None:
        parts.append(f"well {position.plate_row}{position.plate_column}")
    stage = [
        f"{axis} {_number(value)}"
        for axis, value in (
            ("x", position.x_um),
            ("y", position.y_um),
            ("z", position.z_um),
        )
        if value is not None
    ]
    if stage:
        parts.append(f"stage {' '.join(stage)} µm")
    if position.shape is None:
        parts.append("no array written yet")
    elif position.shape != shape:
        parts.append(f"shape {position.shape}")
    return f"{position.name}: {_SEP.join(parts)}"


def _plate_text(info: DatasetInfo) -> str:
    plate = info.plate
    if plate is None:
        return "none"
    return (
        f"{plate.name or 'unnamed'}, {len(plate.rows)} rows, {len(plate.columns)} "
        f"columns, {plate.wells} wells with positions"
    )


def _number(value: float) -> str:
    """A float as short as it reads exactly: ``2``, ``0.5``, ``-2.25``.

    >>> _number(2.0), _number(0.65), _number(1e-07)
    ('2', '0.65', '1e-07')
    """
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _size(nbytes: int) -> str:
    """A byte count in the largest unit it reaches (powers of 1000).

    >>> _size(512), _size(53_248), _size(3_500_000_000)
    ('512 B', '53.2 kB', '3.5 GB')
    """
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes} B"
