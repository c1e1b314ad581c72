"""Real pymmcore-plus acquisitions written through ome_writers.

``core.mda.run(sequence, output=...)`` runs pymmcore-plus' own engine, runner
and ome-writers sink on a simulated microscope of pure-Python devices (see
``_microscope``). Every frame the camera took is then found in the output,
read back independently (zarr-python for OME-Zarr, tifffile and ome-types for
OME-TIFF; the live view for memory), at the place the event says: its time,
channel and z index, and the position whose written stage coordinates are the
event's. Channel names, z step, pixel size, time interval, stage positions
and per-plane exposure are checked in the written metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import useq
import zarr
from ome_types import from_xml

from integrations._microscope import make_core
from ome_writers import AcquisitionSettings, useq_to_acquisition_settings

W, H = 16, 12
PIXEL_SIZE_UM = 0.5
CHANNELS = [
    {"config": "DAPI", "exposure": 5.0},
    {"config": "FITC", "exposure": 7.5},
]
Z_PLAN = {"range": 2, "step": 1}
FOV = {"fov_width": 10, "fov_height": 10}

SEQUENCES = [
    pytest.param(
        useq.MDASequence(
            time_plan={"interval": 0.01, "loops": 2}, channels=CHANNELS, z_plan=Z_PLAN
        ),
        id="t-c-z",
    ),
    pytest.param(
        useq.MDASequence(
            axis_order="tpzc",
            stage_positions=[(10, 20, 1), useq.Position(x=30, y=40, z=2, name="B2")],
            channels=CHANNELS,
            z_plan=Z_PLAN,
        ),
        id="positions-z-c",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=[(0, 0, 0), (100, 100, 0)],
            grid_plan={"rows": 1, "columns": 2, **FOV},
            channels=CHANNELS[:1],
        ),
        id="positions-grid",
    ),
    pytest.param(
        useq.MDASequence(
            stage_positions=useq.WellPlatePlan(
                plate=96,
                a1_center_xy=(0, 0),
                selected_wells=([0, 1], [0, 2]),
                well_points_plan={"rows": 1, "columns": 2, **FOV},
            ),
            channels=CHANNELS,
        ),
        id="plate",
    ),
]
OUTPUTS = ["memory", "run.ome.zarr", "run.ome.tiff"]


@dataclass
class Written:
    """What an output holds, per position, read independently."""

    #: position -> {"t"/"c"/"z" index tuple -> frame}
    planes: list[dict[tuple[int, int, int], np.ndarray]] = field(default_factory=list)
    #: position -> (x, y) stage coordinates
    stage_xy: list[tuple[float | None, float | None]] = field(default_factory=list)
    channel_names: list[list[str]] = field(default_factory=list)
    #: (t, c, z) -> exposure in seconds, per position
    exposures_s: list[dict[tuple[int, int, int], float]] = field(default_factory=list)
    z_step_um: float | None = None
    pixel_size_um: float | None = None
    summary: list[Any] = field(default_factory=list)


def _planes(data: np.ndarray, dims: list[str]) -> dict[tuple[int, int, int], Any]:
    """Every (t, c, z) plane of an array whose non-frame axes are ``dims``."""
    out = {}
    for index in np.ndindex(*data.shape[:-2]):
        named = dict(zip(dims, index))
        out[(named.get("t", 0), named.get("c", 0), named.get("z", 0))] = data[index]
    return out


def _read_zarr(root: Path) -> Written:
    group = zarr.open_group(root, mode="r")
    ome = group.attrs["ome"]
    if "multiscales" in ome:
        paths = [""]
    elif "plate" in ome:
        paths = []
        for well in ome["plate"]["wells"]:
            images = zarr.open_group(root / well["path"], mode="r").attrs["ome"]
            paths += [f"{well['path']}/{im['path']}" for im in images["well"]["images"]]
    else:
        paths = zarr.open_group(root / "OME", mode="r").attrs["ome"]["series"]
    out = Written()
    for path in paths:
        image = zarr.open_group(root / path, mode="r")
        (multiscale,) = image.attrs["ome"]["multiscales"]
        axes = [a["name"] for a in multiscale["axes"]]
        array = zarr.open_array(root / path / multiscale["datasets"][0]["path"])
        assert list(array.metadata.dimension_names) == axes
        out.planes.append(_planes(np.asarray(array[...]), axes[:-2]))
        scale = dict(
            zip(
                axes, multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
            )
        )
        out.z_step_um = scale.get("z")
        out.pixel_size_um = scale["x"]
        assert scale["y"] == scale["x"]
        omero = image.attrs["ome"].get("omero", {"channels": []})
        out.channel_names.append([c["label"] for c in omero["channels"]])
        own = image.attrs["ome_writers"]
        position = own["position"]
        out.stage_xy.append((position["x_coord"], position["y_coord"]))
        out.exposures_s.append(
            {
                _tcz(axes[:-2], r["storage_index"]): r["exposure_time"]
                for r in own["frame_metadata"]
            }
        )
        out.summary.append(image.attrs["pymmcore_plus"]["summary_metadata"])
    return out


def _tcz(dims: list[str], index: list[int]) -> tuple[int, int, int]:
    named = dict(zip(dims, index))
    return (named.get("t", 0), named.get("c", 0), named.get("z", 0))


def _read_tiff(path: Path) -> Written:
    """One file, or a folder of one file per position.

    Every file of a folder carries the whole dataset's OME-XML (checked on
    each); pixels are read from each position's own file, since tifffile
    2026.3 reads the series of other files wrongly when a file holds a single
    page (it reads them from the file it opened; Bio-Formats reads them right).
    """
    files = [path]
    if not path.is_file():
        folder = path.with_name(path.name.removesuffix(".ome.tiff"))
        files = sorted(folder.glob("*.ome.tiff"))
        assert [f.name for f in files] == [
            f"{folder.name}_p{i:03d}.ome.tiff" for i in range(len(files))
        ]
    out = Written()
    documents, arrays, axes = [], [], []
    for k, file in enumerate(files):
        with tifffile.TiffFile(file) as tif:
            documents.append(from_xml(tif.ome_metadata, validate=True))
            own = range(len(tif.series)) if len(files) == 1 else [k]
            arrays += [tif.series[i].asarray() for i in own]
            axes += [tif.series[i].axes for i in own]
    ome = documents[-1]
    assert all(len(doc.images) == len(ome.images) for doc in documents)
    for image, data, series_axes in zip(ome.images, arrays, axes):
        pixels = image.pixels
        dims = [a.lower() for a in series_axes[:-2]]
        out.planes.append(_planes(data, dims))
        out.channel_names.append([c.name for c in pixels.channels])
        out.z_step_um = pixels.physical_size_z
        out.pixel_size_um = pixels.physical_size_x
        assert pixels.physical_size_y == pixels.physical_size_x
        label = image.stage_label
        out.stage_xy.append((label.x, label.y) if label else (None, None))
        assert all(p.exposure_time_unit.value == "s" for p in pixels.planes)
        out.exposures_s.append(
            {(p.the_t, p.the_c, p.the_z): p.exposure_time for p in pixels.planes}
        )
    annotations = ome.structured_annotations
    maps = [] if annotations is None else annotations.map_annotations
    out.summary = [
        json.loads(a.value.ms[0].value) for a in maps if a.namespace == "pymmcore_plus"
    ]
    return out


def _read_memory(view: Any, seq: useq.MDASequence) -> Written:
    """The live view; stage coordinates from the settings the sink derived."""
    out = Written()
    dims = list(view.dims[:-2])
    data = np.asarray(view[...])
    converted = useq_to_acquisition_settings(seq, W, H)["dimensions"]
    p_dim = next((d for d in converted if d.type == "position"), None)
    positions: list[Any] = [None] if p_dim is None else list(p_dim.coords or [])
    if p_dim is None:
        data = data[np.newaxis]
    else:
        assert view.coords["p"] == [p.name for p in positions]
        data = np.moveaxis(data, dims.index("p"), 0)
        dims.remove("p")
    for p, pos in enumerate(positions):
        out.planes.append(_planes(data[p], dims))
        out.stage_xy.append((None, None) if pos is None else (pos.x_coord, pos.y_coord))
        out.channel_names.append(list(view.coords.get("c", [])))
    return out


def _run(seq: useq.MDASequence, output: str, tmp_path: Path) -> tuple[Any, list, Any]:
    core = make_core(width=W, height=H, pixel_size_um=PIXEL_SIZE_UM)
    frames: list[tuple[np.ndarray, useq.MDAEvent, dict]] = []

    def on_frame(img: np.ndarray, event: useq.MDAEvent, meta: dict) -> None:
        frames.append((img.copy(), event, meta))

    core.mda.events.frameReady.connect(on_frame)
    target = output if output == "memory" else str(tmp_path / output)
    core.mda.run(seq, output=target)
    return core, frames, target


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("seq", SEQUENCES)
def test_mda_writes_every_frame_where_its_event_says(
    seq: useq.MDASequence, output: str, tmp_path: Path
) -> None:
    core, frames, target = _run(seq, output, tmp_path)
    assert len(frames) == len(list(seq))
    if output == "memory":
        written = _read_memory(core.mda.get_view(), seq)
    elif output.endswith(".zarr"):
        written = _read_zarr(Path(target))
    else:
        written = _read_tiff(Path(target))

    n_positions = max(1, len({(e.x_pos, e.y_pos) for _, e, _ in frames}))
    assert len(written.planes) == n_positions
    seen = set()
    for img, event, meta in frames:
        if event.x_pos is None:
            p = 0
        else:
            p = written.stage_xy.index((event.x_pos, event.y_pos))
        tcz = tuple(event.index.get(a, 0) for a in "tcz")
        np.testing.assert_array_equal(written.planes[p][tcz], img)
        seen.add((p, tcz))
        if written.exposures_s:
            assert written.exposures_s[p][tcz] == pytest.approx(
                meta["exposure_ms"] / 1000
            )
    # every plane of the output was a frame of the acquisition
    assert len(seen) == sum(len(planes) for planes in written.planes)
    channel_names = [c.config for c in seq.channels]
    assert written.channel_names == [channel_names] * n_positions
    if output != "memory":
        assert written.pixel_size_um == PIXEL_SIZE_UM
        if seq.z_plan is not None:
            assert written.z_step_um == Z_PLAN["step"]
        assert written.summary, "pymmcore-plus' summary metadata was not written"
        assert all(s["image_infos"][0]["width"] == W for s in written.summary)


def test_plate_layout_in_zarr(tmp_path: Path) -> None:
    seq = SEQUENCES[3].values[0]
    _core, _frames, target = _run(seq, "run.ome.zarr", tmp_path)
    plate = zarr.open_group(target, mode="r").attrs["ome"]["plate"]
    assert [w["path"] for w in plate["wells"]] == ["A/1", "B/3"]
    assert len(plate["rows"]) == 8
    assert len(plate["columns"]) == 12
    for well in ("A/1", "B/3"):
        images = zarr.open_group(Path(target) / well, mode="r").attrs["ome"]["well"]
        # fields named after their positions, as ome-writers 0.3 names them
        assert [im["path"] for im in images["images"]] == ["fov0", "fov1"]
        names = [
            zarr.open_group(Path(target) / well / field, mode="r").attrs["ome"][
                "multiscales"
            ][0]["name"]
            for field in ("fov0", "fov1")
        ]
        assert names == ["fov0", "fov1"]


def test_generator_of_events_is_an_unbounded_time_series(tmp_path: Path) -> None:
    """pymmcore-plus writes an event iterator as an unbounded (t, y, x) stream."""

    def events() -> Any:
        for i in range(5):
            yield useq.MDAEvent(index={"t": i}, exposure=3.0)

    core = make_core(width=W, height=H, pixel_size_um=PIXEL_SIZE_UM)
    frames: list[np.ndarray] = []
    core.mda.events.frameReady.connect(lambda img, *_: frames.append(img.copy()))
    target = tmp_path / "gen.ome.zarr"
    core.mda.run(events(), output=str(target))
    array = zarr.open_array(target / "0", mode="r")
    assert array.shape == (5, H, W)
    np.testing.assert_array_equal(array[...], np.stack(frames))
    records = zarr.open_group(target, mode="r").attrs["ome_writers"]["frame_metadata"]
    assert [r["exposure_time"] for r in records] == [0.003] * 5


def test_settings_object_as_output(tmp_path: Path) -> None:
    """An AcquisitionSettings given as output keeps its own options."""
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "run.ome.zarr"),
        format={"name": "ome-zarr", "backend": "zarr-python"},
        compression="zstd",
    )
    seq = SEQUENCES[0].values[0]
    core = make_core(width=W, height=H, pixel_size_um=PIXEL_SIZE_UM)
    core.mda.run(seq, output=settings)
    attrs = zarr.open_group(tmp_path / "run.ome.zarr", mode="r").attrs
    written = attrs["ome_writers"]["settings"]
    assert written["format"]["backend"] == "zarr-python"
    assert written["compression"] == "zstd"
    codecs = zarr.open_array(tmp_path / "run.ome.zarr" / "0").metadata.codecs
    assert any("zstd" in type(c).__name__.lower() for c in codecs)


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    seq = useq.MDASequence(channels=CHANNELS[:1])
    core = make_core(width=W, height=H)
    target = str(tmp_path / "run.ome.tiff")
    core.mda.run(seq, output=target)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        core.mda.run(seq, output=target)
    core.mda.run(seq, output=target, overwrite=True)
    with tifffile.TiffFile(target) as tif:
        assert tif.series[0].shape == (H, W)


@pytest.mark.parametrize("output", OUTPUTS)
def test_two_cameras_through_the_clients_sink(output: str, tmp_path: Path) -> None:
    """The ``cam`` dimension exactly as pymmcore-plus' sink adds it.

    Python devices cannot make a multi-camera core (see ``_microscope``), so a
    real single-camera run supplies the summary and per-frame metadata, and
    pymmcore-plus' own ``OmeWritersSink`` is then driven as its runner drives
    it with two camera channels: ``setup``, two frames per event, ``close``.
    """
    from pymmcore_plus.mda._sink import OmeWritersSink

    seq = SEQUENCES[0].values[0]  # t, c, z
    core = make_core(width=W, height=H, pixel_size_um=PIXEL_SIZE_UM)
    summary: list[Any] = []
    frames: list[tuple[np.ndarray, useq.MDAEvent, dict]] = []
    core.mda.events.sequenceStarted.connect(lambda _seq, meta: summary.append(meta))
    core.mda.events.frameReady.connect(
        lambda img, event, meta: frames.append((img.copy(), event, meta))
    )
    core.mda.run(seq)
    meta = dict(summary[0])
    meta["image_infos"] = [{**meta["image_infos"][0], "num_camera_adapter_channels": 2}]

    target = output if output == "memory" else str(tmp_path / output)
    sink = OmeWritersSink.from_output(target)
    with pytest.warns(UserWarning, match="Multi-camera acquisition combined"):
        sink.setup(seq, meta)
    for img, event, frame_meta in frames:
        for camera in range(2):
            sink.append(img + 1000 * camera, event, frame_meta)
    view = sink.get_view()
    assert view is not None
    assert view.dims == ("t", "c", "z", "cam", "y", "x")
    sink.close()

    for img, event, _ in frames:
        t, c, z = (event.index.get(a, 0) for a in "tcz")
        for camera in range(2):
            expected = img + 1000 * camera
            np.testing.assert_array_equal(view[t, c, z, camera], expected)
            if output.endswith(".zarr"):
                array = zarr.open_array(Path(target) / "0", mode="r")
                np.testing.assert_array_equal(array[t, 2 * c + camera, z], expected)
            elif output.endswith(".tiff"):
                with tifffile.TiffFile(target) as tif:
                    data = tif.series[0].asarray()
                np.testing.assert_array_equal(data[t, 2 * c + camera, z], expected)
    if output.endswith(".zarr"):
        omero = zarr.open_group(target, mode="r").attrs["ome"]["omero"]
        names = [ch["label"] for ch in omero["channels"]]
    elif output.endswith(".tiff"):
        with tifffile.TiffFile(target) as tif:
            image = from_xml(tif.ome_metadata).images[0]
        names = [ch.name for ch in image.pixels.channels]
    else:
        return
    assert names == ["DAPI_cam0", "DAPI_cam1", "FITC_cam0", "FITC_cam1"]
