"""``ome-writers info`` for a scratch root: the manifest as a ``DatasetInfo``.

Goes through ``open_scratch``, the reader users call, so that ``info`` agrees
with it about an interrupted root (its progress counter, not the manifest,
says how many frames were written, and so how far an unbounded axis
reaches) and refuses the same broken roots with the same messages. Opening
maps the data files but reads no pixel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ome_writers._backends._info import (
    OUR_WRITER,
    DatasetInfo,
    DimensionInfo,
    PlateInfo,
    PositionInfo,
    unit_name,
)
from ome_writers._backends.scratch import _files as files
from ome_writers._backends.scratch._reader import open_scratch
from ome_writers._models import Channel

if TYPE_CHECKING:
    from pathlib import Path


def describe(path: Path) -> DatasetInfo:
    """Describe the scratch root ``path``.

    Raises
    ------
    NotADatasetError
        ``path`` is not a scratch root (the message says why).
    """
    dataset = open_scratch(path)
    settings = dataset.settings
    manifest = files.read_manifest_or_none(dataset.path) or {}
    marker = manifest.get(files.MARKER_KEY) or {}
    by_name = {d.name: d for d in settings.dimensions}
    shape = tuple(dataset.arrays[0].shape) if dataset.arrays else ()
    names = list(dataset.storage_dimension_names)
    dimensions = []
    for name, size in zip(names, shape):
        dim = by_name.get(name)
        dimensions.append(
            DimensionInfo(
                name=name,
                type=None if dim is None else dim.type,
                size=int(size),
                unbounded=dim is not None and dim.count is None,
                unit=None if dim is None else unit_name(dim.unit),
                scale=None if dim is None else dim.scale,
            )
        )
    channels = [
        c.name if isinstance(c, Channel) else str(c)
        for d in settings.dimensions
        if d.type == "channel"
        # unnamed channels are numbered, as the OME formats name them
        for c in (d.coords or range(d.count or 0))
    ]
    positions = [
        PositionInfo(
            name=pos.name,
            path=files.data_file_name(p),
            shape=tuple(int(n) for n in array.shape),
            x_um=pos.x_coord,
            y_um=pos.y_coord,
            z_um=pos.z_coord,
            # a well is a place on a plate: without one, the OME formats drop it
            plate_row=None if settings.plate is None else pos.plate_row,
            plate_column=None if settings.plate is None else pos.plate_column,
        )
        for p, (pos, array) in enumerate(zip(settings.positions, dataset.arrays))
    ]
    plate = None
    if settings.plate is not None:
        wells = {
            (p.plate_row, p.plate_column)
            for p in settings.positions
            if p.plate_row is not None
        }
        plate = PlateInfo(
            name=settings.plate.name,
            rows=list(settings.plate.row_names),
            columns=list(settings.plate.column_names),
            wells=len(wells),
        )
    version = marker.get("version") if isinstance(marker, dict) else None
    return DatasetInfo(
        path=str(path),
        format="scratch",
        layout="root",
        writer=OUR_WRITER,
        writer_version=None if version is None else str(version),
        dtype=settings.dtype,
        dimensions=dimensions,
        acquisition_order=[d.name for d in settings.dimensions],
        channels=channels,
        positions=positions,
        plate=plate,
        compression="none",
        frames_written=dataset.frames_written,
        frames_total=settings.num_frames,
        complete=dataset.complete,
        interrupted=not dataset.complete,
        bytes_on_disk=dataset.nbytes_on_disk,
    )
