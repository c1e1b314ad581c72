"""OME-TIFF output, read back independently with tifffile and ome-types.

Every case writes self-identifying frames (some skipped), then checks, for
every file: tifffile sees OME with the expected series shapes and axes, the
OME-XML passes schema validation, and every plane equals the frame that the
independent index math below puts there. ``stream.arrays`` and
``stream.view()`` are checked during and after acquisition.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
from _frame_index import acq_index
from ome_types import from_xml

from ome_writers import (
    AcquisitionSettings,
    Channel,
    Dimension,
    OmeTiffFormat,
    Plate,
    Position,
    create_stream,
    dims_from_standard_axes,
)

if TYPE_CHECKING:
    from collections.abc import Callable

FRAME = (6, 5)
AXIS_LETTER = {"t": "T", "c": "C", "z": "Z"}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the ``ome-writers`` command in a subprocess, as a user would."""
    command = [sys.executable, "-m", "ome_writers", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def frame_for(n: int, shape: tuple[int, int] = FRAME, dtype: str = "uint16") -> Any:
    """Frame ``n``: every pixel says which frame it is and where it sits."""
    y, x = shape
    return ((n + 1) * 100 + np.arange(y * x).reshape(shape) % 100).astype(dtype)


def expected_positions(
    sizes: dict[str, int | None],
    frames: dict[int, np.ndarray],
    total: int,
    storage: list[str] | None = None,
    dtype: str = "uint16",
) -> list[np.ndarray]:
    """Independent index math: per position, the storage-order array."""
    names = [k for k in sizes if k not in ("y", "x")]
    counts = dict(sizes)
    first = names[0]
    if counts[first] is None:
        per_step = math.prod(int(counts[k] or 1) for k in names[1:])
        counts[first] = -(-total // per_step)
    storage = storage or [k for k in names if k != "p"]
    npos = int(counts.get("p") or 1)
    shape = tuple(int(counts[k] or 0) for k in storage) + FRAME
    out = [np.zeros(shape, dtype) for _ in range(npos)]
    for n, frame in frames.items():
        digits: dict[str, int] = {}
        rest = n
        for name in reversed(names):
            rest, digits[name] = divmod(rest, int(counts[name] or 1))
        out[digits.get("p", 0)][tuple(digits[k] for k in storage)] = frame
    return out


def tiff_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.ome.tif*"))


def read_series(path: Path) -> tuple[list[tuple[tuple[int, ...], str]], list[Any]]:
    """(shape, axes) of every OME series, and its data, checked with ome-types."""
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome, path
        from_xml(tf.ome_metadata, validate=True)
        described = [(tuple(s.shape), s.axes) for s in tf.series]
        data = [s.asarray() for s in tf.series]
    return described, data


SINGLE = OmeTiffFormat(prefer_single_file="always")
#: layout name -> format: one file, or a folder with each metadata arrangement
LAYOUTS = {
    "single": SINGLE,
    "redundant": OmeTiffFormat(prefer_single_file="never"),
    "master-tiff": OmeTiffFormat(
        prefer_single_file="never", multi_file_metadata="master-tiff"
    ),
    "companion-file": OmeTiffFormat(
        prefer_single_file="never", multi_file_metadata="companion-file"
    ),
}


def full_xml(settings: AcquisitionSettings) -> str:
    """The OME-XML that describes the whole dataset, wherever the layout puts it."""
    fmt = settings.format
    assert isinstance(fmt, OmeTiffFormat)
    out = Path(settings.output_path)
    if fmt.single_file(len(settings.positions)):
        path = out
    elif fmt.multi_file_metadata == "companion-file":
        return (out / fmt.companion_file).read_text()
    else:
        path = tiff_files(out)[0]
    with tifffile.TiffFile(path) as tf:
        return str(tf.ome_metadata)


CASES = [
    pytest.param({"t": 3, "c": 2, "y": 6, "x": 5}, {}, id="tcyx"),
    pytest.param({"t": 2, "c": 2, "z": 3, "y": 6, "x": 5}, {}, id="tczyx"),
    pytest.param({"z": 3, "t": 2, "c": 2, "y": 6, "x": 5}, {}, id="ztcyx"),
    pytest.param(
        {"t": 2, "c": 2, "z": 3, "y": 6, "x": 5},
        {"storage_order": ["c", "z", "t"]},
        id="tczyx-storage-czt",
    ),
    pytest.param(
        {"t": 2, "c": 2, "z": 3, "y": 6, "x": 5},
        {"storage_order": "acquisition"},
        id="tczyx-storage-acquisition",
    ),
    pytest.param(
        {"t": 3, "p": 3, "c": 2, "y": 6, "x": 5}, {"format": SINGLE}, id="tpcyx-single"
    ),
    pytest.param({"t": 3, "p": 3, "c": 2, "y": 6, "x": 5}, {}, id="tpcyx-redundant"),
    pytest.param(
        {"t": 3, "p": 3, "c": 2, "y": 6, "x": 5},
        {"format": OmeTiffFormat(multi_file_metadata="master-tiff")},
        id="tpcyx-master-tiff",
    ),
    pytest.param(
        {"t": 3, "p": 3, "c": 2, "y": 6, "x": 5},
        {"format": OmeTiffFormat(multi_file_metadata="companion-file")},
        id="tpcyx-companion-file",
    ),
    pytest.param(
        {"p": 2, "t": 2, "c": 2, "y": 6, "x": 5},
        {"storage_order": ["c", "t"], "format": SINGLE},
        id="ptcyx-single-storage-ct",
    ),
    pytest.param(
        {"t": None, "c": 2, "y": 6, "x": 5}, {"frames": 11}, id="tcyx-unbounded"
    ),
    pytest.param(
        {"t": None, "p": 2, "z": 2, "y": 6, "x": 5},
        {
            "frames": 21,
            "format": OmeTiffFormat(
                prefer_single_file="never", multi_file_metadata="companion-file"
            ),
        },
        id="tpzyx-unbounded-companion-file",
    ),
    pytest.param(
        {"t": None, "p": 2, "c": 2, "y": 6, "x": 5},
        {"frames": 17, "compression": "zstd"},
        id="tpcyx-unbounded-redundant-zstd",
    ),
    pytest.param(
        {"t": None, "p": 2, "c": 2, "y": 6, "x": 5},
        {"frames": 17, "format": SINGLE},
        id="tpcyx-unbounded-single",
    ),
    pytest.param({"t": 3, "c": 2, "y": 6, "x": 5}, {"compression": "lzw"}, id="lzw"),
    pytest.param({"t": 3, "c": 2, "y": 6, "x": 5}, {"compression": "zlib"}, id="zlib"),
    pytest.param(
        {"t": 3, "z": 2, "y": 6, "x": 5},
        {"dtype": "float32", "compression": "zlib"},
        id="float32",
    ),
    pytest.param({"t": 4, "y": 6, "x": 5}, {"dtype": "uint8"}, id="tyx-uint8"),
]


@pytest.mark.parametrize(("sizes", "options"), CASES)
def test_write_and_read_back(
    tmp_path: Path, sizes: dict[str, int | None], options: dict[str, Any]
) -> None:
    options = dict(options)
    total = options.pop("frames", None)
    dtype = options.pop("dtype", "uint16")
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "out" / "acq.ome.tiff"),
        dimensions=dims_from_standard_axes(sizes),
        dtype=dtype,
        **options,
    )
    total = total if total is not None else settings.num_frames
    assert total is not None
    frames: dict[int, np.ndarray] = {}
    stream = create_stream(settings)
    storage = stream.arrays[0].dims[:-2]
    for n in range(total):
        if n % 5 == 3:
            stream.skip()
        else:
            frames[n] = frame_for(n, dtype=dtype)
            stream.append(frames[n])
        if n == total // 2:  # live read-back, mid-acquisition
            expected = expected_positions(sizes, frames, n + 1, list(storage), dtype)
            for array, want in zip(stream.arrays, expected):
                np.testing.assert_array_equal(np.asarray(array), want[: array.shape[0]])
    stream.close()
    expected = expected_positions(sizes, frames, total, list(storage), dtype)

    # the stream's own views, after close
    for array, want in zip(stream.arrays, expected):
        assert array.shape == want.shape
        np.testing.assert_array_equal(np.asarray(array), want)
        np.testing.assert_array_equal(array[..., 1:3, ::2], want[..., 1:3, ::2])
    view = stream.view()
    for n, frame in frames.items():
        index = acq_index(sizes, n)
        np.testing.assert_array_equal(view[index], frame)

    # independent reader: tifffile + ome-types
    letters = "".join(AXIS_LETTER[k] for k in storage)
    axes = "".join(a for a, n in zip(letters, expected[0].shape) if n > 1) + "YX"
    fmt = settings.format
    assert isinstance(fmt, OmeTiffFormat)
    if fmt.single_file(len(expected)):
        files = tiff_files(tmp_path / "out")
        assert files == [Path(settings.output_path)] == [tmp_path / "out/acq.ome.tiff"]
        readable = files
    else:
        # a folder named after the root, one file per position
        folder = tmp_path / "out" / "acq"
        assert Path(settings.output_path) == folder
        files = tiff_files(folder)
        assert [f.name for f in files] == [
            f"acq_p{i:03d}.ome.tiff" for i in range(len(expected))
        ]
        mode = fmt.multi_file_metadata
        # which files carry the whole dataset's OME-XML; the rest refer to it
        readable = {"redundant": files, "master-tiff": files[:1]}.get(mode, [])
        target = files[0].name if mode == "master-tiff" else "companion.ome"
        for path in files:
            if path in readable:
                continue
            with tifffile.TiffFile(path) as tf:
                ome = from_xml(tf.ome_metadata, validate=True)
            assert ome.binary_only is not None
            assert ome.binary_only.metadata_file == target
        if mode == "companion-file":
            ome = from_xml((folder / "companion.ome").read_text(), validate=True)
            assert len(ome.images) == len(expected)
            for image, path in zip(ome.images, files):
                (block, *_) = image.pixels.tiff_data_blocks
                assert block.uuid is not None
                assert block.uuid.file_name == path.name
    for path in readable:  # each opens as the whole dataset
        described, data = read_series(path)
        assert len(described) == len(expected)
        for (shape, got_axes), got, want in zip(described, data, expected):
            assert (shape, got_axes) == (_squeezed(want).shape, axes)
            np.testing.assert_array_equal(got, _squeezed(want))
    with tifffile.TiffFile(files[0]) as tf:
        assert tf.is_bigtiff == settings.is_unbounded
        want_name = {None: "NONE", "lzw": "LZW", "zlib": "ADOBE_DEFLATE"}
        name = want_name.get(settings.compression, "ZSTD")
        assert tf.pages.first.compression.name == name


def _squeezed(array: np.ndarray) -> np.ndarray:
    keep = [i for i, n in enumerate(array.shape[:-2]) if n > 1]
    return array.reshape([array.shape[i] for i in keep] + list(array.shape[-2:]))


# ------------------------------------------------------------------ metadata


def _metadata_settings(root: Path, **kwargs: Any) -> AcquisitionSettings:
    return AcquisitionSettings(
        root_path=str(root),
        dimensions=[
            Dimension("t", 2, scale=1.5, unit="second"),
            Dimension(
                "p",
                coords=[
                    Position(name="A1-0", plate_row="A", plate_column="1", x_coord=1.0),
                    Position(name="B2-0", plate_row="B", plate_column="2", y_coord=2.0),
                ],
            ),
            Dimension(
                "c",
                coords=[
                    Channel(
                        name="DAPI",
                        excitation_wavelength_nm=405,
                        emission_wavelength_nm=450,
                        fluorophore="DAPI",
                        color="0000FF",
                    ),
                    Channel(name="GFP", color="00FF0080"),
                ],
            ),
            Dimension("z", 2, scale=2.0, unit="micrometer"),
            Dimension("y", FRAME[0], scale=0.25, unit="micrometer"),
            Dimension("x", FRAME[1], scale=0.25, unit="nm"),
        ],
        dtype="uint16",
        plate=Plate(row_names=["A", "B"], column_names=["1", "2"], name="P1"),
        **kwargs,
    )


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_metadata_mapping(tmp_path: Path, layout: str) -> None:
    settings = _metadata_settings(tmp_path / "meta.ome.tiff", format=LAYOUTS[layout])
    with create_stream(settings) as stream:
        stream.set_global_metadata("scope", {"objective": "60x", "na": 1.4})
        for n in range(16):
            stream.append(
                frame_for(n),
                frame_metadata={
                    "delta_t": n * 0.5,
                    "exposure_time": 0.01,
                    "position_x": 100.0 + n,
                    "position_y": 200.0,
                    "position_z": 3.0,
                    "camera": {"gain": 2},
                    "note": f"frame {n}",
                },
            )
    ome = from_xml(full_xml(settings), validate=True)
    assert [i.name for i in ome.images] == ["A1-0", "B2-0"]
    image = ome.images[1]
    px = image.pixels
    assert (px.size_t, px.size_c, px.size_z) == (2, 2, 2)
    assert px.dimension_order.value == "XYZCT"
    assert px.physical_size_x == 0.25
    assert px.physical_size_x_unit.value == "nm"
    assert px.physical_size_y_unit.value == "µm"
    assert px.physical_size_z == 2.0
    assert px.time_increment == 1.5
    dapi, gfp = px.channels
    assert dapi.name == "DAPI"
    assert dapi.excitation_wavelength == 405
    assert dapi.emission_wavelength == 450
    assert dapi.fluor == "DAPI"
    assert dapi.color.as_rgb_tuple() == (0, 0, 255)
    assert gfp.color.as_rgb_tuple(alpha=True)[:3] == (0, 255, 0)
    assert image.stage_label.name == "B2-0"
    assert image.stage_label.y == 2.0
    assert len(px.planes) == 8
    # frame n of position 1 is n = t*8 + 4 + c*2 + z
    plane = next(p for p in px.planes if (p.the_t, p.the_c, p.the_z) == (1, 1, 0))
    assert plane.delta_t == (8 + 4 + 2) * 0.5
    assert plane.delta_t_unit.value == "s"
    assert plane.exposure_time == 0.01
    assert plane.exposure_time_unit.value == "s"
    assert plane.position_x == 100.0 + 14
    assert plane.position_z == 3.0
    annotations = {a.id: a for a in ome.structured_annotations.map_annotations}
    (ref,) = plane.annotation_refs
    values = {m.k: m.value for m in annotations[ref.id].value.ms}
    assert values == {"camera": '{"gain": 2}', "note": "frame 14"}
    assert annotations[ref.id].namespace == "ome_writers/frame_metadata"
    scope = next(a for a in annotations.values() if a.namespace == "scope")
    # values JSON-encoded, as ome-writers 0.3 writes them
    assert {m.k: m.value for m in scope.value.ms} == {
        "objective": '"60x"',
        "na": "1.4",
    }
    assert any(r.id == scope.id for r in image.annotation_refs)
    (plate,) = ome.plates
    assert (plate.name, plate.rows, plate.columns) == ("P1", 2, 2)
    wells = {(w.row, w.column): w for w in plate.wells}
    assert set(wells) == {(0, 0), (1, 1)}
    (sample,) = wells[(1, 1)].well_samples
    assert sample.image_ref.id == image.id
    assert sample.position_y == 2.0


def test_unmappable_dimensions_are_refused(tmp_path: Path) -> None:
    dims = [
        Dimension("t", 2),
        Dimension("time2", 2, type="time"),
        Dimension("y", 4),
        Dimension("x", 4),
    ]
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "a.ome.tiff"), dimensions=dims, dtype="uint8"
    )
    with pytest.raises(ValueError, match="one time axis"):
        create_stream(settings)
    assert not list(tmp_path.iterdir())


def test_other_dimension_takes_a_free_axis(tmp_path: Path) -> None:
    dims = [
        Dimension("angle", 3),
        Dimension("c", 2),
        Dimension("y", 4),
        Dimension("x", 4),
    ]
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "a.ome.tiff"), dimensions=dims, dtype="uint8"
    )
    with create_stream(settings) as stream:
        for n in range(6):
            stream.append(np.full((4, 4), n, "uint8"))
    described, _ = read_series(tmp_path / "a.ome.tiff")
    assert described == [((3, 2, 4, 4), "TCYX")]


# ------------------------------------------------------------------ settings


def test_int64_is_refused_before_disk_changes(tmp_path: Path) -> None:
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "out" / "a.ome.tiff"),
        dimensions=dims_from_standard_axes({"t": 2, "y": 4, "x": 4}),
        dtype="int64",
    )
    with pytest.raises(ValueError, match="cannot be stored in OME-TIFF"):
        create_stream(settings)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("codec", ["blosc-zstd", "jpeg", "gzip"])
def test_unsupported_compression_is_refused_by_the_settings(
    tmp_path: Path, codec: str
) -> None:
    with pytest.raises(ValueError, match="not supported by format 'ome-tiff'"):
        AcquisitionSettings(
            root_path=str(tmp_path / "a.ome.tiff"),
            dimensions=dims_from_standard_axes({"t": 2, "y": 4, "x": 4}),
            dtype="uint16",
            compression=codec,
        )


def test_format_from_suffix_and_aliases(tmp_path: Path) -> None:
    dims = dims_from_standard_axes({"t": 2, "y": 4, "x": 4})
    by_suffix = AcquisitionSettings(
        root_path=str(tmp_path / "a.ome.tif"), dimensions=dims, dtype="uint8"
    )
    assert isinstance(by_suffix.format, OmeTiffFormat)
    assert by_suffix.output_path.endswith("a.ome.tif")
    for alias in ("tiff", "ome-tiff", "tifffile"):
        settings = AcquisitionSettings(
            root_path=str(tmp_path / "b"), dimensions=dims, dtype="uint8", format=alias
        )
        assert settings.output_path == str(tmp_path / "b.ome.tiff")
    files = AcquisitionSettings(
        root_path=str(tmp_path / "c.ome.tiff"),
        dimensions=dims,
        dtype="uint8",
        format={"name": "ome-tiff", "prefer_single_file": False},
    )
    assert files.output_path == str(tmp_path / "c")
    again = AcquisitionSettings.model_validate(files.model_dump(mode="json"))
    assert again == files


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        pytest.param(
            "series", {"prefer_single_file": "always"}, id="series-is-one-file"
        ),
        pytest.param(
            "files",
            {
                "prefer_single_file": "never",
                "multi_file_metadata": "companion-file",
            },
            id="files-is-a-folder-with-a-companion",
        ),
    ],
)
def test_position_layout_is_deprecated(layout: str, expected: dict[str, str]) -> None:
    with pytest.warns(
        DeprecationWarning, match=r"position_layout=\.\.\.\) is deprecated"
    ):
        fmt = OmeTiffFormat(position_layout=layout)  # type: ignore[call-arg]
    assert fmt.model_dump(include=set(expected)) == expected


# ------------------------------------------------------------------ bad input


def test_bad_frames_do_not_use_a_slot(tmp_path: Path) -> None:
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "a.ome.tiff"),
        dimensions=dims_from_standard_axes({"t": 3, "y": 6, "x": 5}),
        dtype="uint16",
    )
    with create_stream(settings) as stream:
        stream.append(frame_for(0))
        with pytest.raises(ValueError, match="frame shape"):
            stream.append(np.zeros((5, 6), "uint16"))
        with pytest.raises(TypeError, match="safely cast"):
            stream.append(np.zeros(FRAME, "float64"))
        stream.append(frame_for(1).astype("uint8"))  # safe cast is accepted
        stream.append(frame_for(2))
        with pytest.raises(IndexError, match="declared"):
            stream.append(frame_for(3))
    _, (data,) = read_series(tmp_path / "a.ome.tiff")
    np.testing.assert_array_equal(
        data, [frame_for(0), frame_for(1).astype("uint8"), frame_for(2)]
    )


def test_buffer_can_be_reused_after_append(tmp_path: Path) -> None:
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "a.ome.tiff"),
        dimensions=dims_from_standard_axes({"t": 20, "y": 64, "x": 64}),
        dtype="uint16",
        compression="zlib",
    )
    buffer = np.zeros((64, 64), "uint16")
    with create_stream(settings) as stream:
        for n in range(20):
            buffer[:] = n + 1
            stream.append(buffer)
            buffer[:] = 9999  # the caller overwrites its buffer at once
    _, (data,) = read_series(tmp_path / "a.ome.tiff")
    assert [int(np.unique(d)[0]) for d in data] == list(range(1, 21))


# ------------------------------------------------------------------ overwrite


def _small(root: Path, **kwargs: Any) -> AcquisitionSettings:
    return AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes({"t": 2, "p": ["a", "b"], "y": 4, "x": 4}),
        dtype="uint8",
        **kwargs,
    )


def _write_small(settings: AcquisitionSettings, value: int) -> None:
    with create_stream(settings) as stream:
        for _ in range(4):
            stream.append(np.full((4, 4), value, "uint8"))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_overwrite_rules(tmp_path: Path, layout: str) -> None:
    fmt = LAYOUTS[layout]
    root = tmp_path / "acq.ome.tiff"
    _write_small(_small(root, format=fmt), 1)
    bystander = tmp_path / "notes.txt"
    bystander.write_text("keep me")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        create_stream(_small(root, format=fmt))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    _write_small(_small(root, format=fmt, overwrite=True), 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert bystander.read_text() == "keep me"
    written = sorted(tmp_path.rglob("*.ome.tiff"))
    assert len(written) == (1 if layout == "single" else 2)
    for path in written:
        _, data = read_series(path)
        assert all((d == 7).all() for d in data)


def test_overwrite_refuses_foreign_files(tmp_path: Path) -> None:
    root = tmp_path / "acq.ome.tiff"
    root.write_text("my thesis")
    with pytest.raises(FileExistsError, match="not an OME-TIFF"):
        create_stream(_small(root, overwrite=True, format=SINGLE))
    assert root.read_text() == "my thesis"
    (tmp_path / "dir.ome.tiff").mkdir()
    with pytest.raises(FileExistsError):
        create_stream(_small(tmp_path / "dir.ome.tiff", overwrite=True, format=SINGLE))
    # a folder of files: a foreign file where a position file goes
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run_p001.ome.tiff").write_text("not ours")
    with pytest.raises(FileExistsError, match="not an OME-TIFF"):
        create_stream(_small(tmp_path / "run.ome.tiff", overwrite=True))
    assert (folder / "run_p001.ome.tiff").read_text() == "not ours"
    assert sorted(p.name for p in folder.iterdir()) == ["run_p001.ome.tiff"]
    # the folder's name is taken by a file
    (tmp_path / "taken").write_text("x")
    with pytest.raises(FileExistsError, match="folder"):
        create_stream(_small(tmp_path / "taken.ome.tiff"))


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(["../escape", "/etc/passwd"], id="traversal"),
        pytest.param(["a/b", "a\\b"], id="separators"),
        pytest.param(["..", "."], id="dots"),
    ],
)
def test_position_names_never_become_file_names(
    tmp_path: Path, names: list[str]
) -> None:
    out = tmp_path / "out"
    settings = AcquisitionSettings(
        root_path=str(out / "acq.ome.tiff"),
        dimensions=dims_from_standard_axes({"t": 1, "p": names, "y": 4, "x": 4}),
        dtype="uint8",
        format=LAYOUTS["companion-file"],
    )
    _write_small_n(settings, 2)
    written = sorted(
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()
    )
    assert [str(p) for p in written] == [
        "out/acq/acq_p000.ome.tiff",
        "out/acq/acq_p001.ome.tiff",
        "out/acq/companion.ome",
    ]
    ome = from_xml((out / "acq" / "companion.ome").read_text(), validate=True)
    assert [image.name for image in ome.images] == names


def _write_small_n(settings: AcquisitionSettings, frames: int) -> None:
    with create_stream(settings) as stream:
        for n in range(frames):
            stream.append(np.full((4, 4), n, "uint8"))


# ------------------------------------------------------------------ edge cases


def test_closed_early_and_empty_files_are_valid(tmp_path: Path) -> None:
    settings = _small(tmp_path / "acq.ome.tiff")  # a folder, every file whole
    with create_stream(settings) as stream:
        stream.append(np.full((4, 4), 5, "uint8"))  # position "a" only
    files = tiff_files(tmp_path / "acq")
    assert len(files) == 2
    for path in files:
        described, data = read_series(path)
        assert [shape for shape, _ in described] == [(2, 4, 4), (2, 4, 4)]
        np.testing.assert_array_equal(data[0][0], np.full((4, 4), 5))
        assert not data[0][1:].any()
        assert not data[1].any()


def test_growing_xml_stays_small_and_the_final_one_has_every_plane(
    tmp_path: Path,
) -> None:
    # the XML replaced as an unbounded stream grows declares the planes but
    # does not carry their metadata, so replacing it costs the same at frame
    # 1,000 as at frame 10; the XML written at close has every Plane
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "grow.ome.tiff"),
        dimensions=dims_from_standard_axes({"t": None, "y": 8, "x": 8}),
        dtype="uint16",
    )
    path = Path(settings.output_path)
    sizes = []
    with create_stream(settings) as stream:
        for n in range(130):
            stream.append(np.full((8, 8), n, "uint16"), frame_metadata={"delta_t": n})
            if n + 1 in (9, 17, 65, 129):  # just past a replacement
                with tifffile.TiffFile(path) as tif:
                    xml = tif.pages[0].description
                    ome = from_xml(xml)
                    assert ome.images[0].pixels.size_t >= n + 1
                    assert not ome.images[0].pixels.planes
                    sizes.append(len(xml))
                    series = tif.series[0].asarray()
                np.testing.assert_array_equal(series[n], np.full((8, 8), n))
    assert max(sizes) - min(sizes) < 100  # only the counts change
    with tifffile.TiffFile(path) as tif:
        ome = from_xml(tif.pages[0].description)
    pixels = ome.images[0].pixels
    assert pixels.size_t == 130
    assert [p.delta_t for p in pixels.planes] == list(range(130))


def test_interleaved_positions_read_back_while_growing(tmp_path: Path) -> None:
    # two positions interleaved in one file need one TiffData per plane; the
    # XML replaced as the stream grows must map every page written so far
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "two.ome.tiff"),
        dimensions=dims_from_standard_axes({"t": None, "p": 2, "y": 8, "x": 8}),
        dtype="uint16",
        format=SINGLE,
    )
    path = Path(settings.output_path)
    with create_stream(settings) as stream:
        for n in range(70):
            stream.append(np.full((8, 8), n, "uint16"))
            if n + 1 in (3, 9, 33, 65):  # just past a replacement
                with tifffile.TiffFile(path) as tif:
                    ome = from_xml(tif.pages[0].description)
                    for p in range(2):
                        pixels = ome.images[p].pixels
                        assert pixels.size_t > n // 2  # the declared capacity
                        blocks = pixels.tiff_data_blocks
                        # one element per declared plane, IFDs interleaved
                        assert [b.ifd for b in blocks] == list(
                            range(p, 2 * pixels.size_t, 2)
                        )
                        assert [b.first_t for b in blocks] == list(range(pixels.size_t))
                        assert {b.plane_count for b in blocks} == {1}
                        for b in blocks:
                            if b.ifd <= n:  # written: the page holds its frame
                                page = tif.pages[b.ifd].asarray()
                                np.testing.assert_array_equal(page, b.ifd)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param({"y": 8, "x": 8}, id="one-frame"),
        pytest.param({"p": 3, "y": 8, "x": 8}, id="one-frame-per-position"),
    ],
)
def test_no_t_c_or_z_axis(tmp_path: Path, sizes: dict[str, int], layout: str) -> None:
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "snap.ome.tiff"),
        dimensions=dims_from_standard_axes(sizes),
        dtype="uint16",
        format=LAYOUTS[layout],
    )
    positions = sizes.get("p", 1)
    with create_stream(settings) as stream:
        for p in range(positions):
            stream.append(np.full((8, 8), p + 1, "uint16"))
    files = sorted(tmp_path.rglob("*.tif*"))
    ome = from_xml(full_xml(settings))
    assert len(ome.images) == positions
    pages = []
    for path in files:
        with tifffile.TiffFile(path) as tif:
            for image in ome.images:
                (block,) = image.pixels.tiff_data_blocks
                assert (block.first_t, block.first_c, block.first_z) == (0, 0, 0)
            pages += [page.asarray() for page in tif.pages]
    assert len(pages) == positions
    for p, page in enumerate(pages):
        np.testing.assert_array_equal(page, p + 1)


def test_zero_frames(tmp_path: Path) -> None:
    settings = AcquisitionSettings(
        root_path=str(tmp_path / "a.ome.tiff"),
        dimensions=dims_from_standard_axes({"t": None, "y": 4, "x": 4}),
        dtype="uint8",
    )
    with create_stream(settings) as stream:
        assert stream.arrays[0].shape == (0, 4, 4)
    described, _ = read_series(tmp_path / "a.ome.tiff")
    assert described == [((4, 4), "YX")]


def test_forced_bigtiff(tmp_path: Path) -> None:
    for bigtiff in (True, False):
        path = tmp_path / f"{bigtiff}.ome.tiff"
        fmt = OmeTiffFormat(bigtiff=bigtiff, prefer_single_file="always")
        _write_small(_small(path, format=fmt), 1)
        with tifffile.TiffFile(path) as tf:
            assert tf.is_bigtiff is bigtiff


# ------------------------------------------------------------------ describe, cli


def test_info_describes_ome_tiff(tmp_path: Path) -> None:
    _write_small(_small(tmp_path / "s.ome.tiff", format=SINGLE), 1)
    result = run_cli("info", tmp_path / "s.ome.tiff")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith("OME-TIFF single file, complete")
    assert "frames:       4 of 4 written" in result.stdout
    assert "dimensions:   t 2 · y 4 · x 4" in result.stdout
    assert "positions:    2" in result.stdout
    assert "    a: s.ome.tiff" in result.stdout
    _write_small(_small(tmp_path / "f.ome.tiff", format=LAYOUTS["companion-file"]), 1)
    result = run_cli("info", tmp_path / "f" / "companion.ome")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'f'}: OME-TIFF file per position")
    assert "    b: f_p001.ome.tiff" in result.stdout
    # a folder of files: any file describes the whole dataset
    _write_small(_small(tmp_path / "r.ome.tiff"), 1)
    result = run_cli("info", tmp_path / "r" / "r_p001.ome.tiff")
    assert result.returncode == 0, result.stderr
    assert "positions:    2" in result.stdout
    assert "    a: r_p000.ome.tiff" in result.stdout


def _plain_tiff(path: Path) -> None:
    tifffile.imwrite(path, np.zeros((4, 4), "uint8"))


@pytest.mark.parametrize(
    ("name", "make"),
    [
        pytest.param("plain.tif", _plain_tiff, id="plain-tiff"),
        pytest.param("x.txt", lambda p: p.write_text("hello"), id="text"),
        pytest.param("missing.ome.tiff", lambda p: None, id="missing"),
    ],
)
def test_info_refuses_what_is_not_ome_tiff(
    tmp_path: Path, name: str, make: Callable[[Path], object]
) -> None:
    make(tmp_path / name)
    result = run_cli("info", tmp_path / name)
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    assert "OME-TIFF" not in result.stdout


def test_cli_demo_writes_ome_tiff(tmp_path: Path) -> None:
    root = tmp_path / "out.ome.tiff"
    result = run_cli(
        "demo", "--format", "ome-tiff", "--root", root, "--dims", "t:3,c:2,y:16,x:16"
    )
    assert result.returncode == 0, result.stderr
    described, (data,) = read_series(root)
    assert described == [((3, 2, 16, 16), "TCYX")]
    assert data.any()
