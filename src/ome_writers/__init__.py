"""Stream microscope camera frames into multi-dimensional arrays with OME metadata."""

from ome_writers._backends.scratch._reader import ScratchDataset, open_scratch
from ome_writers._convert import ConversionReport, convert
from ome_writers._dask import open_dask
from ome_writers._errors import (
    BackendUnavailableError,
    NotADatasetError,
    OmeWritersError,
    StreamClosedError,
    WriteError,
)
from ome_writers._events import CoordsUpdate, CoordUpdate
from ome_writers._formats import OmeTiffFormat, OmeZarrFormat, ScratchFormat
from ome_writers._models import (
    Channel,
    Dimension,
    Plate,
    Position,
    PositionDimension,
    StandardAxis,
    dims_from_standard_axes,
)
from ome_writers._pyramid import Pyramid
from ome_writers._recover import RecoveryReport, recover
from ome_writers._settings import AcquisitionSettings
from ome_writers._stream import OMEStream, create_stream
from ome_writers._useq import dims_from_useq, useq_to_acquisition_settings
from ome_writers._version import __version__
from ome_writers._view import PositionArray, StreamView

__all__ = [
    "AcquisitionSettings",
    "BackendUnavailableError",
    "Channel",
    "ConversionReport",
    "CoordUpdate",
    "CoordsUpdate",
    "Dimension",
    "NotADatasetError",
    "OMEStream",
    "OmeTiffFormat",
    "OmeWritersError",
    "OmeZarrFormat",
    "Plate",
    "Position",
    "PositionArray",
    "PositionDimension",
    "Pyramid",
    "RecoveryReport",
    "ScratchDataset",
    "ScratchFormat",
    "StandardAxis",
    "StreamClosedError",
    "StreamView",
    "WriteError",
    "__version__",
    "convert",
    "create_stream",
    "dims_from_standard_axes",
    "dims_from_useq",
    "open_dask",
    "open_scratch",
    "recover",
    "useq_to_acquisition_settings",
]
