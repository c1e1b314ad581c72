"""Global metadata where ome-writers 0.3 puts it, set before and after close.

OME-Zarr: a top-level attribute of the root group (read with zarr-python);
OME-TIFF: a MapAnnotation with JSON-encoded values in every document that
describes the dataset (tifffile + ome-types); scratch: the manifest.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
import zarr
from ome_types import from_xml

from ome_writers import (
    AcquisitionSettings,
    OmeTiffFormat,
    create_stream,
    dims_from_standard_axes,
)

if TYPE_CHECKING:
    from pathlib import Path

TWO_POSITIONS = {"t": 2, "p": ["a", "b"], "y": 4, "x": 4}


def _stream(root: Path, fmt: Any, sizes: dict[str, Any] = TWO_POSITIONS) -> Any:
    settings = AcquisitionSettings(
        root_path=str(root),
        dimensions=dims_from_standard_axes(sizes),
        dtype="uint8",
        format=fmt,
    )
    stream = create_stream(settings)
    for n in range(settings.num_frames or 0):
        stream.append(np.full((4, 4), n + 1, "uint8"), frame_metadata={"delta_t": n})
    return stream


def _tiff_namespaces(xml: str) -> dict[str, dict[str, Any]]:
    ome = from_xml(xml, validate=True)
    out = {}
    for a in ome.structured_annotations.map_annotations:
        if a.namespace in ("scope", "lab"):
            out[a.namespace] = {m.k: json.loads(m.value) for m in a.value.ms}
    refs = {r.id for image in ome.images for r in image.annotation_refs}
    ids = {a.id for a in ome.structured_annotations.map_annotations}
    assert refs <= ids  # no reference left dangling
    return out


@pytest.mark.parametrize("engine", ["tensorstore", "zarr-python", "acquire-zarr"])
def test_zarr_top_level_attribute_before_and_after_close(
    tmp_path: Path, engine: str
) -> None:
    root = tmp_path / "out.ome.zarr"
    stream = _stream(root, engine)
    stream.set_global_metadata("scope", {"objective": "60x"})
    stream.close()
    assert zarr.open_group(root, mode="r").attrs["scope"] == {"objective": "60x"}
    stream.set_global_metadata("lab", {"run": 2})
    stream.set_global_metadata("scope", {"objective": "20x"})
    attrs = zarr.open_group(root, mode="r").attrs
    assert attrs["scope"] == {"objective": "20x"}
    assert attrs["lab"] == {"run": 2}
    assert attrs["ome_writers"]["complete"] is True
    xml = (root / "OME" / "METADATA.ome.xml").read_text()
    ome = from_xml(xml, validate=True)
    assert ome.images[0].pixels.planes  # the final XML keeps its planes


@pytest.mark.parametrize(
    ("fmt", "documents"),
    [
        pytest.param(
            OmeTiffFormat(prefer_single_file="always"), ["out.ome.tiff"], id="single"
        ),
        pytest.param(
            OmeTiffFormat(),
            ["out/out_p000.ome.tiff", "out/out_p001.ome.tiff"],
            id="redundant",
        ),
        pytest.param(
            OmeTiffFormat(multi_file_metadata="master-tiff"),
            ["out/out_p000.ome.tiff"],
            id="master-tiff",
        ),
        pytest.param(
            OmeTiffFormat(multi_file_metadata="companion-file"),
            ["out/companion.ome"],
            id="companion-file",
        ),
    ],
)
def test_tiff_map_annotation_before_and_after_close(
    tmp_path: Path, fmt: OmeTiffFormat, documents: list[str]
) -> None:
    stream = _stream(tmp_path / "out.ome.tiff", fmt)
    stream.set_global_metadata("scope", {"objective": "60x", "na": 1.4})
    stream.close()

    def read(name: str) -> dict[str, dict[str, Any]]:
        if name.endswith(".ome"):
            return _tiff_namespaces((tmp_path / name).read_text())
        with tifffile.TiffFile(tmp_path / name) as tif:
            return _tiff_namespaces(tif.ome_metadata)

    for name in documents:
        assert read(name) == {"scope": {"objective": "60x", "na": 1.4}}
    stream.set_global_metadata("scope", {"objective": "20x"})
    stream.set_global_metadata("lab", {"run": [1, 2]})
    for name in documents:
        assert read(name) == {"scope": {"objective": "20x"}, "lab": {"run": [1, 2]}}
    # the pixels are untouched
    with tifffile.TiffFile(
        tmp_path / documents[0].replace("companion.ome", "out_p000.ome.tiff")
    ) as tif:
        assert tif.pages[0].asarray()[0, 0] == 1


def test_scratch_manifest_after_close(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    stream = _stream(root, "scratch")
    stream.close()
    stream.set_global_metadata("lab", {"run": 3})
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["global_metadata"] == {"lab": {"run": 3}}
    assert manifest["complete"] is True
    assert manifest["frames_written"] == 4
