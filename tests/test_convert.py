"""``ome_writers.convert`` and ``ome-writers convert``.

Every source format and layout (``SOURCES``) goes into every destination
(``DESTINATIONS``). Sources are written once per module, complete ones in
this process and interrupted ones by a child that SIGKILLs itself after its
last ``append`` returned (``_convert_child``); each conversion checks that
the source's files are byte for byte what they were. Destinations are read
back with independent readers (numpy and the manifest for scratch,
zarr-python for OME-Zarr, tifffile and ome-types for OME-TIFF) and compared
with what the writer was given: every pixel, dims, dtype, units and scales,
channels, positions and stage coordinates, the plate, per-frame and global
metadata, the frame count and completeness.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import pty
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
import zarr
from _convert_child import GLOBAL_METADATA, frame_for, metadata_for, write
from ome_types import from_xml

from ome_writers import (
    AcquisitionSettings,
    Channel,
    ConversionReport,
    Dimension,
    NotADatasetError,
    Plate,
    Position,
    WriteError,
    convert,
    recover,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

FRAME = (16, 16)
CHILD = Path(__file__).with_name("_convert_child.py")
STAGE = [
    Position(name="A1 site", x_coord=100.0, y_coord=200.0),
    Position(name="B2-site", x_coord=300.0, y_coord=400.0, z_coord=5.0),
]
CHANNELS = [
    Channel(name="DAPI", emission_wavelength_nm=461.0, color="0000FF"),
    Channel(name="GFP", excitation_wavelength_nm=488.0),
]
WELLS = [
    Position(name="fov0", plate_row="A", plate_column="1", x_coord=1.0, y_coord=2.0),
    Position(name="fov1", plate_row="A", plate_column="1", x_coord=3.0, y_coord=4.0),
    Position(name="fov0", plate_row="B", plate_column="2", x_coord=5.0, y_coord=6.0),
]
PLATE = Plate(name="P1", row_names=["A", "B"], column_names=["1", "2"])
UNIT_NAMES = {"s": "second", "um": "micrometer"}
OME_AXIS = {"time": "T", "channel": "C", "space": "Z"}


def frame_dims() -> list[Dimension]:
    return [
        Dimension("y", FRAME[0], unit="um", scale=0.25),
        Dimension("x", FRAME[1], unit="um", scale=0.25),
    ]


DIMS: dict[str, list[Dimension]] = {
    # positions with stage coordinates, channels, z: 16 frames
    "rich": [
        Dimension("t", 2, unit="s", scale=0.5),
        Dimension("p", coords=STAGE),
        Dimension("c", coords=CHANNELS),
        Dimension("z", 2, unit="um", scale=1.5),
        *frame_dims(),
    ],
    "image": [
        Dimension("t", 3, unit="s", scale=2.0),
        Dimension("c", coords=CHANNELS),
        *frame_dims(),
    ],
    "unbounded": [
        Dimension("t", None, unit="s"),
        Dimension("c", coords=CHANNELS),
        *frame_dims(),
    ],
    "plate": [Dimension("t", 2), Dimension("p", coords=WELLS), *frame_dims()],
    # acquired t, z, c; OME-Zarr stores t, c, z; a chunk spans 6 frames
    "chunked": [
        Dimension("t", 2, chunk_size=2),
        Dimension("z", 3, unit="um", scale=1.0, chunk_size=3),
        Dimension("c", coords=CHANNELS),
        *frame_dims(),
    ],
}


@dataclass(frozen=True)
class Source:
    """One source: its format and layout, and what is written into it."""

    dims: str
    format: dict[str, Any]
    suffix: str
    #: frames appended or skipped (None: all declared)
    frames: int | None = None
    #: the writer is killed after its last frame (never closed)
    killed: bool = False
    #: ... and its journal lost too
    drop_journal: bool = False
    compression: str | None = None
    #: what convert is given: the root_path, the folder of files, file 1
    given: str = "root"
    skip: frozenset[int] = field(default_factory=lambda: frozenset({1}))

    @property
    def has_plate(self) -> bool:
        return self.dims == "plate"


SCRATCH = {"name": "scratch", "fsync": "never"}
TIFF = {"name": "ome-tiff", "fsync": "never"}


def zarr_format(backend: str) -> dict[str, Any]:
    return {"name": "ome-zarr", "backend": backend, "fsync": "never"}


SOURCES = [
    pytest.param(Source("rich", SCRATCH, ""), id="scratch-bounded"),
    pytest.param(Source("unbounded", SCRATCH, "", frames=5), id="scratch-unbounded"),
    pytest.param(
        Source("rich", SCRATCH, "", frames=7, killed=True), id="scratch-interrupted"
    ),
    pytest.param(
        Source("image", zarr_format("tensorstore"), ".ome.zarr"), id="zarr-image"
    ),
    pytest.param(
        Source("rich", zarr_format("zarr-python"), ".ome.zarr"), id="zarr-positions"
    ),
    pytest.param(
        Source("plate", zarr_format("tensorstore"), ".ome.zarr"), id="zarr-plate"
    ),
    pytest.param(
        Source("chunked", zarr_format("tensorstore"), ".ome.zarr", compression="zstd"),
        id="zarr-chunked-zstd",
    ),
    pytest.param(
        Source("unbounded", zarr_format("acquire-zarr"), ".ome.zarr", frames=5),
        id="zarr-unbounded",
    ),
    pytest.param(
        Source("rich", zarr_format("tensorstore"), ".ome.zarr", frames=7, killed=True),
        id="zarr-interrupted",
    ),
    pytest.param(Source("image", TIFF, ".ome.tiff"), id="tiff-image"),
    pytest.param(
        Source("rich", {**TIFF, "prefer_single_file": "always"}, ".ome.tiff"),
        id="tiff-positions-one-file",
    ),
    pytest.param(Source("rich", TIFF, ".ome.tiff", given="folder"), id="tiff-files"),
    pytest.param(
        Source("rich", {**TIFF, "multi_file_metadata": "companion-file"}, ".ome.tiff"),
        id="tiff-companion",
    ),
    pytest.param(
        Source(
            "plate",
            {**TIFF, "multi_file_metadata": "master-tiff"},
            ".ome.tif",
            given="file1",
            compression="zlib",
        ),
        id="tiff-plate-master-zlib",
    ),
    pytest.param(
        Source("rich", TIFF, ".ome.tiff", frames=7, killed=True),
        id="tiff-interrupted",
    ),
    pytest.param(
        Source("image", TIFF, ".ome.tiff", frames=4, killed=True, drop_journal=True),
        id="tiff-interrupted-no-journal",
    ),
]


def spec_of(case_id: str) -> Source:
    """The source of ``SOURCES`` with that id."""
    spec: Source = next(p.values[0] for p in SOURCES if p.id == case_id)
    return spec


DESTINATIONS = [
    pytest.param("scratch", "", id="to-scratch"),
    pytest.param("tensorstore", ".ome.zarr", id="to-tensorstore"),
    pytest.param("zarr-python", ".ome.zarr", id="to-zarr-python"),
    pytest.param("acquire-zarr", ".ome.zarr", id="to-acquire-zarr"),
    pytest.param("ome-tiff", ".ome.tiff", id="to-tiff"),
]


# ------------------------------------------------------------------ sources


def source_settings(spec: Source, root: Path) -> AcquisitionSettings:
    return AcquisitionSettings(
        root_path=str(root),
        dimensions=DIMS[spec.dims],
        dtype="uint16",
        format=spec.format,
        compression=spec.compression,
        plate=PLATE if spec.has_plate else None,
    )


@dataclass
class Built:
    """A source on disk, and the path convert is given."""

    spec: Source
    settings: AcquisitionSettings
    folder: Path
    path: Path
    frames: int


_BUILT: dict[tuple[str, Path], Built] = {}


@pytest.fixture(scope="module")
def source_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sources")


def build(spec: Source, base: Path) -> Built:
    """The source of ``spec``, written on first use."""
    if (repr(spec), base) in _BUILT:
        return _BUILT[(repr(spec), base)]
    folder = base / f"source{len(list(base.iterdir()))}"
    folder.mkdir()
    root = folder / f"run{spec.suffix}"
    settings = source_settings(spec, root)
    frames = spec.frames if spec.frames is not None else settings.num_frames
    assert frames is not None
    if spec.killed:
        command = [
            sys.executable,
            str(CHILD),
            "write",
            json.dumps(settings.model_dump(mode="json")),
            str(frames),
            json.dumps(sorted(spec.skip)),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == -9, result.stderr
        if spec.drop_journal:
            for journal in folder.glob("*.ome-writers-journal"):
                shutil.rmtree(journal)
    else:
        write(settings, frames, set(spec.skip))
    path = Path(settings.output_path)
    if spec.given == "root":
        path = root
    elif spec.given == "file1":
        path = sorted(Path(settings.output_path).glob("*.tif*"))[1]
    built = Built(spec, settings, folder, path, frames)
    _BUILT[(repr(spec), base)] = built
    return built


def tree_digest(folder: Path) -> str:
    """Every name and every byte under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# ------------------------------------------------------------------ expected


def unravel(n: int, counts: list[int]) -> tuple[int, ...]:
    """Acquisition index of frame ``n`` (the first count may be anything)."""
    digits = []
    for count in reversed(counts[1:]):
        n, digit = divmod(n, count)
        digits.append(digit)
    return (n, *reversed(digits))


@dataclass
class Expected:
    settings: AcquisitionSettings
    frames: int
    #: per position, acquisition order (position axis left out), frame last
    arrays: list[np.ndarray]
    metadata: dict[int, dict[str, Any]]
    #: (position, OME T, C, Z) -> frame number
    planes: dict[tuple[int, int, int, int], int]
    index_names: list[str]


def expected(built: Built) -> Expected:
    settings, spec = built.settings, built.spec
    index = settings.dimensions[:-2]
    counts = [d.count or 0 for d in index]
    per_step = math.prod(counts[1:])
    if index[0].count is None:
        counts[0] = -(-built.frames // per_step)
    axis = next((i for i, d in enumerate(index) if d.type == "position"), None)
    others = [i for i in range(len(index)) if i != axis]
    npos = counts[axis] if axis is not None else 1
    arrays = [
        np.zeros([counts[i] for i in others] + list(FRAME), "uint16")
        for _ in range(npos)
    ]
    planes = {}
    metadata = {}
    for n in range(built.frames):
        digits = unravel(n, counts)
        p = digits[axis] if axis is not None else 0
        ome = {"T": 0, "C": 0, "Z": 0}
        for i in others:
            ome[OME_AXIS[index[i].type]] = digits[i]
        planes[(p, ome["T"], ome["C"], ome["Z"])] = n
        if n in spec.skip:
            continue
        arrays[p][tuple(digits[i] for i in others)] = frame_for(n, FRAME)
        if metadata_for(n) is not None and not spec.drop_journal:
            metadata[n] = metadata_for(n)
    names = [index[i].name for i in others]
    return Expected(settings, built.frames, arrays, metadata, planes, names)


# ------------------------------------------------------------------ read back


@dataclass
class ReadBack:
    arrays: list[np.ndarray]
    metadata: dict[int, dict[str, Any]]
    global_metadata: dict[str, Any]
    frames_written: int
    complete: bool
    settings: AcquisitionSettings


def to_acquisition_order(
    data: np.ndarray, axes: list[str], names: list[str]
) -> np.ndarray:
    """``data`` with axes named ``axes`` as ``names + [y, x]``; others squeezed."""
    wanted = [*names, "y", "x"]
    for i in reversed(range(len(axes))):
        if axes[i] not in wanted:
            assert data.shape[i] == 1, (axes, data.shape)
            data = data.take(0, axis=i)
    axes = [a for a in axes if a in wanted]
    return np.transpose(data, [axes.index(n) for n in wanted])


def read_scratch(root: Path, exp: Expected) -> ReadBack:
    """numpy and the manifest, as the README's recipe reads a scratch root."""
    manifest = json.loads((root / "manifest.json").read_text())
    axes = manifest["storage_dimension_names"]  # frame axes included
    arrays = [
        to_acquisition_order(
            np.fromfile(root / f"pos_{p}.dat", manifest["dtype"]).reshape(shape),
            axes,
            exp.index_names,
        )
        for p, shape in enumerate(manifest["position_shapes"])
    ]
    metadata = {}
    for line in (root / "frame_metadata.jsonl").read_text().splitlines():
        record = json.loads(line)
        reserved = ("frame_number", "position_index", "storage_index", "_pos", "_idx")
        metadata[record["frame_number"]] = {
            k: v for k, v in record.items() if k not in reserved
        }
    settings = AcquisitionSettings.model_validate(
        {k: manifest[k] for k in AcquisitionSettings.model_fields}
    )
    assert manifest["dimensions"] == exp.settings.model_dump(mode="json")["dimensions"]
    return ReadBack(
        arrays,
        metadata,
        manifest["global_metadata"],
        manifest["frames_written"],
        manifest["complete"],
        settings,
    )


def zarr_images(group: Any, settings: AcquisitionSettings) -> list[Any]:
    """The image groups of an OME-Zarr, in position order (by multiscales name)."""
    ome = group.attrs["ome"]
    if "multiscales" in ome:
        return [group]
    if "bioformats2raw.layout" in ome:
        return [group[path] for path in group["OME"].attrs["ome"]["series"]]
    images = []
    for well in ome["plate"]["wells"]:
        for image in group[well["path"]].attrs["ome"]["well"]["images"]:
            images.append(group[f"{well['path']}/{image['path']}"])
    assert len(images) == len(settings.positions)
    return images


def read_zarr(root: Path, exp: Expected) -> ReadBack:
    """zarr-python for the arrays, the JSON attributes for the metadata."""
    group = zarr.open_group(zarr.storage.LocalStore(root, read_only=True), mode="r")
    settings = exp.settings
    images = zarr_images(group, settings)
    arrays, metadata = [], {}
    for image, position in zip(images, settings.positions):
        ome = image.attrs["ome"]
        multiscale = ome["multiscales"][0]
        assert multiscale["name"] == position.name
        array = image["0"]
        axes = list(array.metadata.dimension_names)
        assert array.dtype == np.dtype("uint16")
        arrays.append(to_acquisition_order(array[...], axes, exp.index_names))
        dims = {d.name: d for d in settings.dimensions}
        assert [a["name"] for a in multiscale["axes"]] == axes
        for axis in multiscale["axes"]:
            unit = dims[axis["name"]].unit
            assert axis.get("unit") == (UNIT_NAMES[unit] if unit else None), axis
        transforms = multiscale["datasets"][0]["coordinateTransformations"]
        scale = transforms[0]["scale"]
        assert scale == [dims[n].scale or 1.0 for n in axes]
        if position.x_coord is not None and settings.position_dimension_names:
            translation = transforms[1]["translation"]
            assert translation[-2:] == [position.y_coord, position.x_coord]
        if any(d.type == "channel" for d in settings.dimensions):
            labels = [c["label"] for c in ome["omero"]["channels"]]
            assert labels == [c.name for c in CHANNELS]
        own = image.attrs["ome_writers"]
        assert own["position"] == position.model_dump(mode="json")
        for record in own.get("frame_metadata", []):
            values = {
                k: v
                for k, v in record.items()
                if k not in ("frame_number", "storage_index")
            }
            metadata[record["frame_number"]] = values
    if settings.plate is not None:
        plate = group.attrs["ome"]["plate"]
        assert [r["name"] for r in plate["rows"]] == PLATE.row_names
        assert [c["name"] for c in plate["columns"]] == PLATE.column_names
        assert [w["path"] for w in plate["wells"]] == ["A/1", "B/2"]
    own = group.attrs["ome_writers"]
    namespaces = own.get("global_namespaces", [])
    return ReadBack(
        arrays,
        metadata,
        {n: group.attrs[n] for n in namespaces},
        own["frames_written"],
        own["complete"],
        AcquisitionSettings.model_validate(own["settings"]),
    )


def tiff_files(output: Path) -> list[Path]:
    if output.is_file():
        return [output]
    return sorted(p for p in output.iterdir() if ".tif" in p.name)


def tiff_document(output: Path) -> Any:
    if output.is_dir() and list(output.glob("*.ome")):
        (companion,) = output.glob("*.ome")
        return from_xml(companion.read_text(), validate=True)
    with tifffile.TiffFile(tiff_files(output)[0]) as tf:
        return from_xml(tf.ome_metadata, validate=True)


def read_tiff(output: Path, exp: Expected) -> ReadBack:
    """tifffile for the pixels, ome-types (schema-validated) for the metadata."""
    settings = exp.settings
    files = tiff_files(output)
    letters = {
        d.name: OME_AXIS[d.type]
        for d in settings.dimensions[:-2]
        if d.type != "position"
    }
    letters.update(y="Y", x="X")
    arrays = []
    for p in range(len(settings.positions)):
        # each position from its own file (tifffile's advice for folders)
        with tifffile.TiffFile(files[p if len(files) > 1 else 0]) as tf:
            series = tf.series[p]
            data = series.asarray().reshape(series.get_shape(False))
            named = [
                next((n for n, a in letters.items() if a == axis), axis)
                for axis in series.get_axes(False)
            ]
            arrays.append(to_acquisition_order(data, named, exp.index_names))
    ome = tiff_document(output)
    annotations = {a.id: a for a in ome.structured_annotations.map_annotations}
    metadata: dict[int, dict[str, Any]] = {}
    for p, (image, position) in enumerate(zip(ome.images, settings.positions)):
        assert image.name == position.name
        pixels = image.pixels
        assert pixels.type.value == "uint16"
        assert (pixels.physical_size_x, pixels.physical_size_y) == (0.25, 0.25)
        dims = {d.name: d for d in settings.dimensions}
        if "z" in dims:
            assert pixels.physical_size_z == dims["z"].scale
        if dims["t"].scale is not None:
            assert pixels.time_increment == dims["t"].scale
        if "c" in dims:
            assert [c.name for c in pixels.channels] == [c.name for c in CHANNELS]
            assert pixels.channels[0].emission_wavelength == 461.0
        if settings.position_dimension_names:
            label = image.stage_label
            assert (label.x, label.y, label.z) == (
                position.x_coord,
                position.y_coord,
                position.z_coord,
            )
        for plane in pixels.planes:
            n = exp.planes[(p, plane.the_t, plane.the_c, plane.the_z)]
            values: dict[str, Any] = {}
            for key in ("delta_t", "exposure_time", "position_x"):
                if getattr(plane, key) is not None:
                    values[key] = getattr(plane, key)
            for ref in plane.annotation_refs:
                for m in annotations[ref.id].value.ms:
                    values[m.k] = m.value
            metadata[n] = values
    if settings.plate is not None:
        (plate,) = ome.plates
        assert (plate.name, plate.rows, plate.columns) == ("P1", 2, 2)
        assert sorted((w.row, w.column) for w in plate.wells) == [(0, 0), (1, 1)]
    writer = next(a for a in annotations.values() if a.namespace == "ome_writers")
    entries = {m.k: m.value for m in writer.value.ms}
    global_metadata = {
        a.namespace: {m.k: json.loads(m.value) for m in a.value.ms}
        for a in annotations.values()
        if a.namespace in GLOBAL_METADATA
    }
    return ReadBack(
        arrays,
        metadata,
        global_metadata,
        int(entries["frames_written"]),
        entries["complete"] == "true",
        AcquisitionSettings.model_validate_json(entries["settings"]),
    )


def read_back(kind: str, output: Path, exp: Expected) -> ReadBack:
    if kind == "scratch":
        return read_scratch(output, exp)
    if kind == "ome-tiff":
        return read_tiff(output, exp)
    return read_zarr(output, exp)


def check_metadata(kind: str, got: dict[int, Any], want: dict[int, Any]) -> None:
    """Per-frame metadata; OME-TIFF keeps values that are not strings as JSON."""
    assert sorted(got) == sorted(want)
    for n, values in want.items():
        if kind == "ome-tiff":
            decoded = {
                k: v if isinstance(values.get(k), (str, float)) else json.loads(v)
                for k, v in got[n].items()
            }
            assert decoded == values, n
        else:
            assert got[n] == values, n


def check_destination(
    kind: str, output: Path, exp: Expected, report: ConversionReport
) -> None:
    got = read_back(kind, output, exp)
    assert len(got.arrays) == len(exp.arrays)
    for p, (array, want) in enumerate(zip(got.arrays, exp.arrays)):
        np.testing.assert_array_equal(array, want, err_msg=f"position {p}")
    check_metadata(kind, got.metadata, exp.metadata)
    assert got.global_metadata == GLOBAL_METADATA
    assert (got.frames_written, got.complete) == (exp.frames, True)
    source = exp.settings
    assert got.settings.dimensions == source.dimensions
    assert (got.settings.dtype, got.settings.plate) == (source.dtype, source.plate)
    assert got.settings.format.name == kind
    assert report.frames_written == exp.frames
    assert report.bytes == (exp.frames - report.frames_skipped) * 2 * math.prod(FRAME)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize(("destination", "suffix"), DESTINATIONS)
@pytest.mark.parametrize("spec", SOURCES)
def test_round_trip(
    spec: Source, destination: str, suffix: str, source_base: Path, tmp_path: Path
) -> None:
    built = build(spec, source_base)
    before = tree_digest(built.folder)
    output = tmp_path / f"out{suffix}"
    report = convert(built.path, output, format=destination)
    assert tree_digest(built.folder) == before, "the source was modified"
    kind = {"scratch": "scratch", "ome-tiff": "ome-tiff"}.get(destination, "ome-zarr")
    assert (report.source_format, report.format) == (
        spec.format["name"],
        kind,
    )
    assert report.source_complete is not spec.killed
    written = Path(report.destination)
    assert written.exists()
    check_destination(kind, written, expected(built), report)


def test_compression_kept_replaced_or_dropped(
    source_base: Path, tmp_path: Path
) -> None:
    built = build(spec_of("zarr-chunked-zstd"), source_base)
    kept = convert(built.path, tmp_path / "kept.ome.tiff")
    with tifffile.TiffFile(kept.destination) as tf:
        assert tf.pages.first.compression == tifffile.COMPRESSION.ZSTD
    plain = convert(built.path, tmp_path / "plain.ome.tiff", compression="none")
    with tifffile.TiffFile(plain.destination) as tf:
        assert tf.pages.first.compression == tifffile.COMPRESSION.NONE
    # OME-Zarr into OME-Zarr: new chunks, shards and codec
    out = tmp_path / "rechunked.ome.zarr"
    convert(
        built.path,
        out,
        compression="blosc-lz4",
        chunks={"t": 1, "z": 1, "y": 8},
        shards={"y": 2},
    )
    array = json.loads((out / "0" / "zarr.json").read_text())
    # (t, c, z, y, x): c keeps its default chunk of 1, y's shard is 2 chunks
    assert array["chunk_grid"]["configuration"]["chunk_shape"] == [1, 1, 1, 16, 16]
    (sharding,) = array["codecs"]
    assert sharding["configuration"]["chunk_shape"] == [1, 1, 1, 8, 16]
    codecs = [c["name"] for c in sharding["configuration"]["codecs"]]
    assert codecs == ["bytes", "blosc"]
    data = zarr.open_array(out / "0", mode="r")[...]
    np.testing.assert_array_equal(
        data, expected(built).arrays[0].transpose(0, 2, 1, 3, 4)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"chunks": {"q": 2}}, r"chunks: \['q'\] are not dimensions", id="chunks"
        ),
        pytest.param({"compression": "lzma"}, "compression 'lzma'", id="compression"),
        pytest.param({"format": "png"}, "unknown format 'png'", id="format"),
        pytest.param(
            {"format": "scratch", "compression": "zstd"},
            "compression 'zstd' is not supported by format 'scratch'",
            id="scratch-compressed",
        ),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    kwargs: dict[str, Any], message: str, source_base: Path, tmp_path: Path
) -> None:
    built = build(spec_of("scratch-bounded"), source_base)
    with pytest.raises(ValueError, match=message):
        convert(built.path, tmp_path / "out.ome.zarr", **kwargs)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ safety


def test_existing_destination_needs_overwrite(
    source_base: Path, tmp_path: Path
) -> None:
    built = build(spec_of("scratch-bounded"), source_base)
    out = tmp_path / "out.ome.zarr"
    convert(built.path, out)
    with pytest.raises(FileExistsError, match="already exists"):
        convert(built.path, out)
    report = convert(built.path, out, overwrite=True)
    assert report.frames_written == 16
    foreign = tmp_path / "notes.ome.zarr"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a Zarr hierarchy"):
        convert(built.path, foreign, overwrite=True)
    assert (foreign / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("same", id="same"),
        pytest.param("inside", id="inside"),
        pytest.param("around", id="around"),
    ],
)
def test_destination_never_overlaps_the_source(tmp_path: Path, where: str) -> None:
    base = tmp_path / "data"
    base.mkdir()
    built = build(Source("image", zarr_format("tensorstore"), ".ome.zarr"), base)
    before = tree_digest(built.folder)
    target, fmt = {
        "same": (built.path, "zarr"),
        "inside": (built.path / "copy.ome.zarr", "zarr"),
        "around": (built.folder, "scratch"),  # a scratch root is the folder given
    }[where]
    with pytest.raises(ValueError, match="overlaps the source"):
        convert(built.path, target, format=fmt, overwrite=True)
    assert tree_digest(built.folder) == before


@pytest.mark.parametrize(
    "destination",
    [
        pytest.param("scratch", id="scratch"),
        pytest.param("tensorstore", id="tensorstore"),
        pytest.param("acquire-zarr", id="acquire-zarr"),
        pytest.param("ome-tiff", id="tiff"),
    ],
)
def test_an_interrupted_conversion_leaves_nothing(
    destination: str, source_base: Path, tmp_path: Path
) -> None:
    built = build(spec_of("scratch-bounded"), source_base)
    before = tree_digest(built.folder)

    def interrupt(done: int, total: int, nbytes: int) -> None:
        if done == 9:
            raise KeyboardInterrupt

    out = tmp_path / "out.ome.tiff" if destination == "ome-tiff" else tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert(built.path, out, format=destination, progress=interrupt)
    assert list(tmp_path.iterdir()) == []  # nor a journal
    assert tree_digest(built.folder) == before


@pytest.mark.parametrize(
    ("destination", "name"),
    [
        pytest.param("ome-tiff", "out.ome.tiff", id="tiff"),
        pytest.param("tensorstore", "out.ome.zarr", id="tensorstore"),
        pytest.param("scratch", "out", id="scratch"),
    ],
)
def test_a_full_disk_leaves_nothing(
    destination: str, name: str, full_disk: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    settings = AcquisitionSettings(
        root_path=str(folder / "run"),
        format=SCRATCH,
        dimensions=[Dimension("t", 8), Dimension("y", 128), Dimension("x", 256)],
        dtype="uint16",
    )  # 512 KiB, twice the free space
    write(settings, 8, set())
    out = full_disk.path / name
    with contextlib.ExitStack() as stack:
        if destination == "scratch":  # it says so before the first frame
            stack.enter_context(pytest.warns(UserWarning, match="bytes free"))
        info = stack.enter_context(pytest.raises(WriteError))
        convert(folder / "run", out, format=destination)
    assert info.value.errno == errno.ENOSPC
    assert sorted(p.name for p in full_disk.path.iterdir()) == ["ballast"]


@pytest.mark.parametrize(
    ("destination", "suffix"),
    [
        pytest.param("scratch", "", id="scratch"),
        pytest.param("tensorstore", ".ome.zarr", id="tensorstore"),
        pytest.param("ome-tiff", ".ome.tiff", id="tiff"),
    ],
)
def test_a_killed_conversion_never_claims_complete(
    destination: str, suffix: str, source_base: Path, tmp_path: Path
) -> None:
    built = build(spec_of("scratch-bounded"), source_base)
    out = tmp_path / f"out{suffix}"
    command = [sys.executable, str(CHILD), "convert", str(built.path), str(out)]
    result = subprocess.run(
        [*command, destination, "9"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == -9, result.stderr
    if destination == "scratch":
        assert json.loads((out / "manifest.json").read_text())["complete"] is False
    elif destination == "tensorstore":
        attrs = json.loads((out / "zarr.json").read_text())["attributes"]
        assert attrs["ome_writers"]["complete"] is False
        # its frames were never copied into the journal (the source has them)
        journal = out.with_name(out.name + ".ome-writers-journal")
        assert journal.is_dir()
        assert not [p.name for p in journal.iterdir() if p.suffix in (".dat", ".idx")]
        # so recover does not finish it: it names the source and the fix
        with pytest.raises(NotADatasetError, match="interrupted conversion") as exc:
            recover(out)
        assert repr(str(built.path)) in str(exc.value)
        assert "overwrite=True" in str(exc.value)
        assert journal.is_dir()  # left as it was
    else:
        folder = out.with_name("out")  # two positions: a folder of files
        with tifffile.TiffFile(sorted(folder.iterdir())[0]) as tf:
            ome = from_xml(tf.ome_metadata)
        (writer,) = [
            a
            for a in ome.structured_annotations.map_annotations
            if a.namespace == "ome_writers"
        ]
        assert {m.k: m.value for m in writer.value.ms}["complete"] == "false"
    # and it is refused as it stands, like any interrupted output
    with pytest.raises(FileExistsError):
        convert(built.path, out, format=destination)


@pytest.mark.parametrize(
    ("spec", "destination"),
    [
        pytest.param(
            Source("chunked", zarr_format("tensorstore"), ".ome.zarr"),
            "scratch",
            id="zarr-chunks-of-6-frames",
        ),
        pytest.param(Source("image", SCRATCH, ""), "ome-tiff", id="scratch"),
        pytest.param(Source("image", TIFF, ".ome.tiff"), "scratch", id="tiff"),
    ],
)
def test_memory_stays_a_few_blocks(
    spec: Source, destination: str, tmp_path: Path
) -> None:
    """The peak resident memory of a child converting 64 MiB (96 MiB zarr).

    Measured from outside Python's allocator (engines' buffers included).
    Frames without metadata: what a stream keeps of per-frame metadata grows
    with the frames by design.
    """
    dims = DIMS[spec.dims]
    big = [
        Dimension("t", 128, chunk_size=dims[0].chunk_size),
        *dims[1:-2],
        Dimension("y", 256),
        Dimension("x", 512),
    ]
    settings = AcquisitionSettings(
        root_path=str(tmp_path / f"big{spec.suffix}"),
        dimensions=big,
        dtype="uint16",
        format=spec.format,
    )
    frames = settings.num_frames or 0
    write(settings, frames, set(), metadata=False)
    frame_bytes = 256 * 512 * 2
    out = str(tmp_path / "out.ome.tiff")
    command = [sys.executable, str(CHILD), "memory", settings.output_path, out]
    result = subprocess.run(
        [*command, destination], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    growth = json.loads(result.stdout)["growth_bytes"]
    dataset_bytes = frames * frame_bytes
    assert dataset_bytes >= 64 * 2**20
    # zarr: 4 blocks of 6 frames kept and one being read (7.5 MiB; 7.5-12 MiB
    # measured, the rest the allocator's); the others: a frame (< 0.5 MiB)
    assert growth < dataset_bytes / 4, growth / frame_bytes


def test_progress_reports_every_frame(source_base: Path, tmp_path: Path) -> None:
    built = build(spec_of("scratch-bounded"), source_base)
    calls: list[tuple[int, int, int]] = []
    report = convert(
        built.path,
        tmp_path / "out",
        format="scratch",
        progress=lambda *args: calls.append(args),
    )
    assert [c[0] for c in calls] == list(range(1, 17))
    assert {c[1] for c in calls} == {16}
    assert calls[-1][2] == report.bytes == 15 * 2 * math.prod(FRAME)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param("missing", id="missing"),
        pytest.param("empty-folder", id="empty-folder"),
        pytest.param("plain-tiff", id="plain-tiff"),
        pytest.param("foreign-zarr", id="foreign-zarr"),
    ],
)
def test_not_a_source(make: str, tmp_path: Path) -> None:
    path = tmp_path / "src"
    if make == "empty-folder":
        path.mkdir()
    elif make == "plain-tiff":  # no OME-XML (OME-TIFFs of other writers convert)
        path = tmp_path / "x.ome.tiff"
        tifffile.imwrite(path, np.zeros((2, 4, 4), "uint8"), ome=False)
    elif make == "foreign-zarr":
        path = tmp_path / "x.zarr"
        zarr.open_group(path, mode="w").attrs["ome"] = {"multiscales": []}
    with pytest.raises(NotADatasetError, match=str(path.name)):
        convert(path, tmp_path / "out.ome.zarr")
    assert not (tmp_path / "out.ome.zarr").exists()


def test_multi_camera_through_every_format(tmp_path: Path) -> None:
    """A camera axis folded into OME channels (OME-Zarr, OME-TIFF) unfolds again."""
    dims = [
        Dimension("t", 2),
        Dimension("c", coords=CHANNELS),
        Dimension("cam", 2, type="other"),
        *frame_dims(),
    ]
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "cams.ome.zarr"), dimensions=dims, dtype="uint16"
    )
    write(settings, 8, {1})
    chain = [
        ("cams.ome.zarr", "cams.ome.tiff", None),
        ("cams.ome.tiff", "again.ome.zarr", "zarr-python"),
        ("again.ome.zarr", "scratch", "scratch"),
    ]
    for source, destination, fmt in chain:
        report = convert(tmp_path / source, tmp_path / destination, format=fmt)
        assert (report.frames_written, report.frames_skipped) == (8, 1)
    manifest = json.loads((tmp_path / "scratch" / "manifest.json").read_text())
    assert manifest["storage_dimension_names"] == ["t", "c", "cam", "y", "x"]
    data = np.fromfile(tmp_path / "scratch" / "pos_0.dat", "uint16")
    data = data.reshape(2, 2, 2, *FRAME)
    for n in range(8):
        want = np.zeros(FRAME, "uint16") if n == 1 else frame_for(n, FRAME)
        np.testing.assert_array_equal(data[np.unravel_index(n, (2, 2, 2))], want)
    records = (tmp_path / "scratch" / "frame_metadata.jsonl").read_text().splitlines()
    assert [json.loads(r)["frame_number"] for r in records] == [0, 2, 4, 6]


def test_readme_preview_then_keep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's "Preview, then keep" code runs as printed."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    (block,) = [
        b
        for b in re.findall(r"```python\n(.*?)```", readme, re.S)
        if 'convert("preview"' in b
    ]
    monkeypatch.chdir(tmp_path)
    settings = source_settings(spec_of("scratch-bounded"), Path("preview"))
    write(settings, 16, set())
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    assert namespace["report"].frames_written == 16
    assert (tmp_path / "kept.ome.zarr" / "zarr.json").is_file()


# ------------------------------------------------------------------ command line


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m ome_writers convert ARGS``; stdout and stderr captured."""
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "ome_writers", "convert", *args],
        stdout=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


def test_cli_converts_and_summarizes(source_base: Path, tmp_path: Path) -> None:
    built = build(spec_of("scratch-bounded"), source_base)
    out = tmp_path / "out.ome.tiff"
    result = run_cli(str(built.path), str(out), "--compression", "zlib")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"converted {built.path} (scratch) -> {tmp_path / 'out'}")
    assert "(ome-tiff): 16 frames, 1 empty" in line
    assert "MB/s" in line
    assert result.stderr == ""  # no progress bar: stderr is not a terminal
    again = run_cli(str(built.path), str(out))
    assert again.returncode == 2
    (error,) = again.stderr.splitlines()
    assert error.startswith("ome-writers convert: error: ")
    assert "--overwrite" in error
    replaced = run_cli(str(built.path), str(out), "--overwrite", "--format", "tiff")
    assert replaced.returncode == 0, replaced.stderr


def test_cli_progress_bar_on_a_terminal(source_base: Path, tmp_path: Path) -> None:
    built = build(spec_of("scratch-bounded"), source_base)
    leader, follower = pty.openpty()
    try:
        result = run_cli(
            str(built.path), str(tmp_path / "out"), "--format", "scratch",
            stderr=follower,
        )  # fmt: skip
        os.close(follower)
        bar = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end closed
                break
            if not chunk:
                break
            bar += chunk
    finally:
        os.close(leader)
    assert result.returncode == 0
    text = bar.decode()
    assert "16/16 frames" in text
    assert "MB/s" in text
    assert "left" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["missing", "out.ome.zarr"], "does not exist", id="missing-source"
        ),
        pytest.param(
            ["SRC", "out.ome.zarr", "--format", "png"],
            "unknown --format 'png'",
            id="format",
        ),
        pytest.param(
            ["SRC", "out", "--chunks", "t4"], "--chunks item 't4'", id="chunks"
        ),
        pytest.param(
            ["SRC"], "the following arguments are required", id="no-destination"
        ),
        pytest.param(
            ["SRC", "out.ome.zarr", "--compression", "lzma"],
            "compression 'lzma' is not supported",
            id="compression",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_status_2(
    args: list[str], message: str, source_base: Path, tmp_path: Path
) -> None:
    built = build(spec_of("scratch-bounded"), source_base)
    args = [str(built.path) if a == "SRC" else a for a in args]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ome-writers convert: error: ")
    assert message in line
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(autouse=True, scope="module")
def _forget_sources() -> Iterator[None]:
    yield
    _BUILT.clear()
