"""The contract every backend passes, through the public API.

One parametrized fixture runs each test against every format engine: scratch
in memory and on disk, OME-Zarr through each of its three engines, and
OME-TIFF. Pixels are checked through ``stream.arrays``/``stream.view()`` and,
where the layout is simple enough to name here (a single position), with an
independent reader of the files: numpy memmap for scratch, zarr-python or
tensorstore (never the writer itself) for OME-Zarr, tifffile for OME-TIFF.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ome_writers import (
    AcquisitionSettings,
    Dimension,
    create_stream,
    dims_from_standard_axes,
)

ENGINES = [
    pytest.param(("scratch", ""), id="scratch-memory"),
    pytest.param(("scratch", "root"), id="scratch-disk"),
    pytest.param(("tensorstore", "out.ome.zarr"), id="tensorstore"),
    pytest.param(("acquire-zarr", "out.ome.zarr"), id="acquire-zarr"),
    pytest.param(("zarr-python", "out.ome.zarr"), id="zarr-python"),
    pytest.param(("tifffile", "out.ome.tiff"), id="tifffile"),
]


class Engine:
    """How to point settings at one engine, and how to read its files back."""

    def __init__(self, fmt: str, root: str, tmp_path: Path) -> None:
        self.format = fmt
        self.root = str(tmp_path / root) if root else ""

    def settings(self, sizes: dict, **kwargs) -> AcquisitionSettings:
        dims = kwargs.pop("dimensions", None) or dims_from_standard_axes(sizes)
        return AcquisitionSettings(
            root_path=self.root,
            dimensions=dims,
            dtype=kwargs.pop("dtype", "uint16"),
            format=self.format,
            **kwargs,
        )

    def read_single_position(self, settings: AcquisitionSettings) -> np.ndarray | None:
        """Storage-order pixels of a single-position output, read independently."""
        out = settings.output_path
        if self.format == "scratch":
            if not out:
                return None
            manifest = json.loads(Path(out, "manifest.json").read_text())
            shape = manifest["position_shapes"][0]
            return np.array(
                np.memmap(
                    f"{out}/pos_0.dat", dtype=manifest["dtype"], mode="r", shape=shape
                )
            )
        if self.format in ("tensorstore", "acquire-zarr"):
            import zarr

            return np.asarray(zarr.open_array(f"{out}/0", mode="r")[...])
        if self.format == "zarr-python":
            import tensorstore as ts

            spec = {
                "driver": "zarr3",
                "kvstore": {"driver": "file", "path": f"{out}/0"},
            }
            return np.asarray(ts.open(spec, open=True).result().read().result())
        import tifffile

        with tifffile.TiffFile(out) as tif:
            return np.asarray(tif.series[0].asarray())


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path) -> Engine:
    fmt, root = request.param
    return Engine(fmt, root, tmp_path)


@pytest.fixture(params=ENGINES[1:])
def disk_engine(request, tmp_path) -> Engine:
    fmt, root = request.param
    return Engine(fmt, root, tmp_path)


def _frame(value: int, shape=(16, 24), dtype="uint16") -> np.ndarray:
    """A frame whose pixels identify it: value in the corner, a gradient elsewhere."""
    frame = (np.arange(shape[0] * shape[1]).reshape(shape) % 97).astype(dtype)
    frame[0, 0] = value
    return frame


def _expected(n: int, shape=(16, 24)) -> np.ndarray:
    return np.stack([_frame(i + 1, shape) for i in range(n)])


def _to_storage(data_acq: np.ndarray, settings: AcquisitionSettings) -> np.ndarray:
    """Permute an acquisition-order array (no position axis) into storage order."""
    names = [d.name for d in settings.index_dimensions]
    order = [names.index(n) for n in settings.storage_dimension_names]
    return np.transpose(data_acq, [*order, len(names), len(names) + 1])


def test_bounded_round_trip(engine):
    settings = engine.settings({"t": 3, "c": 2, "y": 16, "x": 24})
    with create_stream(settings) as stream:
        for i in range(6):
            stream.append(_frame(i + 1))
    expected = _expected(6).reshape(3, 2, 16, 24)
    np.testing.assert_array_equal(stream.view()[...], expected)
    np.testing.assert_array_equal(
        np.asarray(stream.arrays[0]), _to_storage(expected, settings)
    )
    independent = engine.read_single_position(settings)
    if independent is not None:
        np.testing.assert_array_equal(independent, _to_storage(expected, settings))


def test_storage_path_names_where_the_data_is(engine):
    settings = engine.settings({"t": 2, "y": 16, "x": 24})
    with create_stream(settings) as stream:
        stream.append(_frame(1))
        if engine.root:
            assert stream.storage_path == settings.output_path
            assert Path(stream.storage_path).exists()
        else:
            assert stream.storage_path is None
    assert stream.storage_path == (settings.output_path or None)


def test_acquisition_order_differs_from_ome_order(engine):
    settings = engine.settings({"z": 3, "c": 2, "y": 16, "x": 24})
    with create_stream(settings) as stream:
        for i in range(6):
            stream.append(_frame(i + 1))
    expected = _expected(6).reshape(3, 2, 16, 24)
    assert stream.view().dims == ("z", "c", "y", "x")
    np.testing.assert_array_equal(stream.view()[...], expected)
    independent = engine.read_single_position(settings)
    if independent is not None:
        np.testing.assert_array_equal(independent, _to_storage(expected, settings))


def test_live_view_during_acquisition(engine):
    settings = engine.settings({"t": 4, "y": 16, "x": 24})
    with create_stream(settings) as stream:
        for i in range(3):
            stream.append(_frame(i + 1))
            view = stream.view()
            assert view.shape == (i + 1, 16, 24)
            np.testing.assert_array_equal(view[i], _frame(i + 1))
            np.testing.assert_array_equal(stream.arrays[0][i], _frame(i + 1))
        stream.append(_frame(4))
    np.testing.assert_array_equal(stream.view()[...], _expected(4))


def test_unbounded_growth(engine):
    settings = engine.settings({"t": None, "c": 2, "y": 16, "x": 24})
    with create_stream(settings) as stream:
        for i in range(7):
            stream.append(_frame(i + 1))
        assert stream.arrays[0].shape[0] == 4
        stream.append(_frame(8))
    expected = _expected(8).reshape(4, 2, 16, 24)
    np.testing.assert_array_equal(stream.view()[...], expected)
    independent = engine.read_single_position(settings)
    if independent is not None:
        np.testing.assert_array_equal(independent, _to_storage(expected, settings))


def test_multi_position_routing(engine):
    dims = dims_from_standard_axes({"t": 2, "p": ["A1", "B2", "C3"], "c": 2})
    dims += [Dimension("y", 16, type="space"), Dimension("x", 24, type="space")]
    settings = engine.settings({}, dimensions=dims)
    with create_stream(settings) as stream:
        for i in range(12):
            stream.append(_frame(i + 1))
    expected = _expected(12).reshape(2, 3, 2, 16, 24)
    np.testing.assert_array_equal(stream.view()[...], expected)
    for p in range(3):
        np.testing.assert_array_equal(
            np.asarray(stream.arrays[p]), _to_storage(expected[:, p], settings)
        )


def test_skipped_frames_read_as_zeros(engine):
    settings = engine.settings({"t": 4, "y": 16, "x": 24})
    with create_stream(settings) as stream:
        stream.append(_frame(1))
        stream.skip(frames=2)
        stream.append(_frame(4))
    expected = _expected(4)
    expected[1:3] = 0
    np.testing.assert_array_equal(stream.view()[...], expected)
    independent = engine.read_single_position(settings)
    if independent is not None:
        np.testing.assert_array_equal(independent, expected)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(np.zeros((15, 24), "uint16"), id="wrong-shape"),
        pytest.param(np.zeros((1, 16, 24), "uint16"), id="stack"),
        pytest.param(np.zeros((16, 24), "float64"), id="float64"),
        pytest.param(np.zeros((16, 24), "int32"), id="int32"),
    ],
)
def test_refused_frame_keeps_its_slot(engine, bad):
    settings = engine.settings({"t": 3, "y": 16, "x": 24})
    with create_stream(settings) as stream:
        stream.append(_frame(1))
        with pytest.raises((ValueError, TypeError)):
            stream.append(bad)
        stream.append(_frame(2))
        stream.append(np.full((16, 24), 3, "uint8"))
        with pytest.raises(IndexError, match="3 frames"):
            stream.append(_frame(4))
    view = stream.view()[...]
    np.testing.assert_array_equal(view[:2], _expected(2))
    np.testing.assert_array_equal(view[2], np.full((16, 24), 3))


def test_caller_may_reuse_the_buffer(engine):
    settings = engine.settings({"t": 5, "y": 16, "x": 24})
    buffer = np.empty((16, 24), "uint16")
    with create_stream(settings) as stream:
        for i in range(5):
            buffer[:] = _frame(i + 1)
            stream.append(buffer, frame_metadata={"delta_t": i * 0.5})
            buffer[:] = 9999
    np.testing.assert_array_equal(stream.view()[...], _expected(5))
    independent = engine.read_single_position(settings)
    if independent is not None:
        np.testing.assert_array_equal(independent, _expected(5))


def test_global_metadata_and_close_twice(engine):
    settings = engine.settings({"t": 2, "y": 16, "x": 24})
    stream = create_stream(settings)
    stream.set_global_metadata("acme", {"objective": "60x", "na": 1.4})
    stream.append(_frame(1), frame_metadata={"exposure_time": 10.0})
    stream.append(_frame(2))
    stream.close()
    stream.close()
    assert stream.closed
    assert stream.global_metadata == {"acme": {"objective": "60x", "na": 1.4}}


def test_existing_output_is_refused(disk_engine):
    engine = disk_engine
    settings = engine.settings({"t": 1, "y": 16, "x": 24})
    with create_stream(settings) as stream:
        stream.append(_frame(1))
    with pytest.raises(FileExistsError):
        create_stream(settings)
    replaced = settings.model_copy(update={"overwrite": True})
    with create_stream(replaced) as stream:
        stream.append(_frame(7))
    np.testing.assert_array_equal(stream.view()[0], _frame(7))
