"""Format models: which output a stream writes, and each format's own options.

A format model is part of ``AcquisitionSettings`` and is serialized with it.
Besides its options, each model answers the questions the settings and the
stream ask of every format, so that a new format slots in without touching
them: which backend writes it (``backend``), where the data goes
(``get_output_path``), whether it needs a ``root_path``, which compressions it
can write, and its canonical storage order (``ome_storage_order``).

Format names, their aliases and the backend names accepted as formats are all
resolved by ``resolve_format_name``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from ome_writers._backends._registry import is_backend_available
from ome_writers._pyramid import Pyramid, check_pyramid
from ome_writers._urls import (
    check_storage_options,
    is_s3_url,
    is_url,
    public_storage_options,
    split_s3_url,
)
from ome_writers._util import user_stacklevel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ome_writers._models import Dimension


def _check_suffix(value: str, *ends: str) -> str:
    """A file suffix: starts with a dot, no path separator, ends as it must."""
    if not value.startswith(".") or "/" in value or "\\" in value or ".." in value:
        raise ValueError(
            f"suffix {value!r} must be a file suffix such as {ends[0]!r}: it starts "
            "with '.', and has no '/', '\\' or '..' (it is appended to root_path)"
        )
    if not value.lower().endswith(ends):
        raise ValueError(f"suffix {value!r} must end in one of {list(ends)!r}")
    return value


class _Format(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: whether the format writes files, so that ``root_path`` is required
    requires_root_path: ClassVar[bool] = True
    #: compressions the format can write (None: uncompressed)
    compressions: ClassVar[tuple[str | None, ...]] = (None,)
    #: whether a multi-camera axis ("cam") is stored folded into the channels
    folds_camera_axis: ClassVar[bool] = False

    def supported_compressions(self) -> tuple[str | None, ...]:
        """Compression names this format (and its backend) can write."""
        return self.compressions

    def ome_storage_order(self, dimensions: Sequence[Dimension]) -> list[str]:
        """Canonical storage order of the non-frame, non-position dimensions.

        The default keeps acquisition order.
        """
        return [d.name for d in dimensions if d.type != "position"]

    def check_storage_order(self, stored: Sequence[Dimension]) -> None:
        """Refuse a storage order the format cannot write (default: any is fine).

        ``stored`` is every stored axis in storage order, frame axes last.
        """

    def check_root_path(self, root_path: str) -> None:
        """Refuse a ``root_path`` the format cannot write to (default: URLs)."""
        if is_url(root_path):
            raise ValueError(
                f"root_path {root_path!r} is a URL, but format "
                f"{getattr(self, 'name', '?')!r} writes "
                "local files only; use format='ome-zarr' (OME-Zarr writes to "
                "s3:// URLs), or a local path"
            )

    def check_target(
        self, dims: Sequence[Dimension], itemsize: int, root_path: str
    ) -> None:
        """Refuse a layout the format cannot write to ``root_path`` (default: none).

        ``dims`` is every stored axis in storage order, frame axes last.
        """

    def check_counts(self, stored: Sequence[Dimension], root_path: str) -> None:
        """Refuse counts and paths the format cannot write (default: the path).

        ``stored`` is every stored non-frame axis. Every part of ``root_path``
        must fit a file name (255 bytes), so that a refusal comes before any
        directory is made.
        """
        for part in root_path.split(os.sep):
            if len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
                raise ValueError(
                    f"root_path: the name {part[:40]!r}... is "
                    f"{len(part.encode('utf-8', 'surrogatepass'))} bytes; file "
                    f"systems allow {_MAX_NAME_BYTES}: use a shorter name"
                )


_MAX_NAME_BYTES = 255
#: OME metadata lists every channel (OME-XML elements, OME-Zarr ``omero``)
MAX_OME_CHANNELS = 10_000


def _check_ome_counts(
    stored: Sequence[Dimension], fmt: str, limit: int, why: str
) -> None:
    for d in stored:
        if d.type == "channel" and (d.count or 0) > MAX_OME_CHANNELS:
            raise ValueError(
                f"dimensions: {d.name!r} has {d.count:,} channels; {fmt} metadata "
                f"lists every channel, so at most {MAX_OME_CHANNELS:,} are "
                "written: use type='other' for this axis, or format='scratch'"
            )
        if d.count is not None and d.count >= limit:
            raise ValueError(
                f"dimensions: {d.name!r} has count={d.count:,}; {why} "
                f"(at most {limit - 1:,}): declare fewer, or count=None on the "
                "first dimension"
            )


class ScratchFormat(_Format):
    """The scratch format: numpy arrays in memory, or memory-mapped raw files.

    Parameters
    ----------
    max_memory_bytes
        Memory budget of all position arrays together. A stream that would
        exceed it (at creation for bounded streams, while growing for unbounded
        ones) moves to disk or raises ``MemoryError``, see ``spill_to_disk``.
    spill_to_disk
        When the budget is exceeded without a ``root_path``: write to a new
        temporary directory instead (with a ``UserWarning`` naming it; removed
        at process exit), or, if False, raise ``MemoryError``.
    fsync
        Durability against power loss in disk-backed mode. ``"never"``: data is
        in the OS page cache when ``append`` returns, which survives a killed
        process but not a power cut. ``"on_close"`` (default): ``close()`` also
        flushes data, metadata and manifest to the device, so everything is
        durable once ``close()`` returns; this costs the time to write the data
        out (about the size of the acquisition divided by disk bandwidth).
        ``"every_frame"``: each ``append`` returns only once its frame and
        metadata are on the device; this limits the frame rate to what the
        device sustains with one sync per frame (typically a few ms each).
    """

    requires_root_path: ClassVar[bool] = False

    name: Literal["scratch"] = "scratch"
    max_memory_bytes: int = Field(default=4 * 1024**3, ge=0)
    spill_to_disk: bool = True
    fsync: Literal["never", "on_close", "every_frame"] = "on_close"

    @property
    def backend(self) -> str:
        """Name of the engine that writes this format."""
        return "scratch"

    def get_output_path(self, root_path: str, *, num_positions: int = 1) -> str:
        """Where the data goes for ``root_path``: for scratch, ``root_path`` itself."""
        return root_path


_ZARR_AXIS_RANK = {"time": 0, "channel": 1, "other": 2, "space": 3}
#: acquire-zarr on S3: the largest shard of several chunks (see ``check_target``)
ACQUIRE_S3_MAX_SHARD_BYTES = 5 * 1024**2

ZarrBackendName = Literal["tensorstore", "acquire-zarr", "zarr-python"]
ZARR_BACKENDS: tuple[ZarrBackendName, ...] = (
    "tensorstore",
    "acquire-zarr",
    "zarr-python",
)


def _default_zarr_backend() -> ZarrBackendName:
    for name in ZARR_BACKENDS:
        if is_backend_available(name):
            return name
    return ZARR_BACKENDS[0]


class OmeZarrFormat(_Format):
    """OME-Zarr v0.5 (Zarr v3).

    Parameters
    ----------
    backend
        The engine: ``"tensorstore"`` (default when installed),
        ``"acquire-zarr"`` or ``"zarr-python"``; by default (or ``"auto"``) the
        first of these that is installed.
    suffix
        Appended to ``root_path`` unless it already ends in ``.zarr``.
    fsync
        Durability against power loss (a killed process loses nothing either
        way, see ``ome_writers.recover``). ``"on_close"`` (default):
        ``close()`` returns once the data and metadata are on the device (one
        ``syncfs`` of the output's file system). ``"every_frame"``: each
        ``append`` returns once its frame (in the journal beside the output)
        and metadata are on the device, which limits the frame rate to the
        device's sync rate; acquire-zarr's own buffers are made durable only
        at ``close()``. ``"never"``: no sync at all.
    pyramid
        Lower resolutions written as frames arrive (``Pyramid``): arrays
        ``1``, ``2``, ... beside ``0`` in every image, listed in its
        ``multiscales``. None (default): full resolution only.
    storage_options
        For an ``s3://bucket/prefix/name.ome.zarr`` ``root_path`` (the
        ``[s3]`` extra): ``endpoint_url``, ``region``, ``key``, ``secret``,
        ``token``, ``anon`` (no credentials), ``profile`` (of the ``~/.aws``
        files). What is not given comes from the standard AWS environment
        variables and files (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
        ``AWS_ACCESS_KEY_ID``...). Credentials (``key``, ``secret``,
        ``token``) are never serialized: not into the output's metadata, not
        into the journal.
    """

    folds_camera_axis: ClassVar[bool] = True

    name: Literal["ome-zarr"] = "ome-zarr"
    fsync: Literal["never", "on_close", "every_frame"] = "on_close"
    pyramid: Pyramid | None = None
    storage_options: dict[str, Any] | None = None

    @field_validator("storage_options")
    @classmethod
    def _known_options(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_storage_options(value)

    @field_serializer("storage_options")
    def _without_secrets(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return public_storage_options(value)

    backend: ZarrBackendName = Field(default_factory=_default_zarr_backend)

    @field_validator("backend", mode="before")
    @classmethod
    def _auto_backend(cls, value: Any) -> Any:
        return _default_zarr_backend() if value == "auto" else value

    suffix: str = ".ome.zarr"

    @field_validator("suffix")
    @classmethod
    def _plain_suffix(cls, value: str) -> str:
        return _check_suffix(value, ".zarr")

    def get_output_path(self, root_path: str, *, num_positions: int = 1) -> str:
        """``root_path``, with ``suffix`` added unless it ends in ``.zarr``.

        Normalized (``a/../x.zarr`` is ``x.zarr``), as every engine resolves it;
        an ``s3://`` URL keeps its form (``..`` is refused there).
        """
        if not root_path:
            return root_path
        if is_s3_url(root_path):
            bucket, key = split_s3_url(root_path)
            url = f"s3://{bucket}/{key}"
            return url if url.endswith(".zarr") else url + self.suffix
        path = os.path.normpath(root_path)
        return path if path.endswith(".zarr") else path + self.suffix

    #: codecs each engine can write (Zarr v3 ``blosc`` with zstd or lz4, ``zstd``)
    backend_compressions: ClassVar[dict[str, tuple[str | None, ...]]] = {
        "tensorstore": (None, "blosc-zstd", "blosc-lz4", "zstd"),
        "acquire-zarr": (None, "blosc-zstd", "blosc-lz4", "zstd"),
        "zarr-python": (None, "blosc-zstd", "blosc-lz4", "zstd"),
    }

    def supported_compressions(self) -> tuple[str | None, ...]:
        """Codecs the selected backend can write."""
        return self.backend_compressions.get(self.backend, (None,))

    def check_root_path(self, root_path: str) -> None:
        """A local path, or an ``s3://`` URL whose key stays inside its prefix."""
        if is_s3_url(root_path):
            split_s3_url(root_path)
        elif is_url(root_path):
            raise ValueError(
                f"root_path {root_path!r}: OME-Zarr writes to local paths and "
                "s3:// URLs (S3 and S3-compatible stores) only; use one of those"
            )
        elif self.storage_options:
            raise ValueError(
                f"storage_options {sorted(self.storage_options)!r} are for an "
                f"s3:// root_path, but root_path is {root_path!r}; drop them, or "
                "write to s3://bucket/prefix/name.ome.zarr"
            )

    def check_target(
        self, dims: Sequence[Dimension], itemsize: int, root_path: str
    ) -> None:
        """acquire-zarr on S3: refuse what it cannot upload intact.

        acquire-zarr 0.10 uploads a shard of several inner chunks in parts,
        and shards of more than about 5 MiB then come out with wrong sizes or
        not at all (``tests/test_s3.py`` keeps the failure as a regression
        test). Some larger shards upload intact, but which ones depends on the
        chunk sizes in a way that could not be bounded, so every shard of
        several chunks above ``ACQUIRE_S3_MAX_SHARD_BYTES`` (uncompressed) is
        refused. acquire-zarr's unbounded arrays need their ``zarr.json``
        rewritten as they grow, which this package does on a disk only.
        """
        if self.backend != "acquire-zarr" or not is_s3_url(root_path):
            return
        options = self.storage_options or {}
        given = [
            k for k in ("key", "secret", "token", "profile", "anon") if k in options
        ]
        if given:
            raise ValueError(
                f"storage_options {given!r}: acquire-zarr reads credentials only "
                "from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; "
                "set those, or use backend='tensorstore'"
            )
        if dims and dims[0].count is None:
            raise ValueError(
                f"dimensions: {dims[0].name!r} is unbounded, which acquire-zarr "
                "cannot write to S3 here (its arrays' zarr.json must be rewritten "
                "as they grow); give it a count, or use backend='tensorstore'"
            )
        chunks, counts = [], []
        for i, d in enumerate(dims):
            count = d.count or 1
            chunk = min(d.chunk_size or (count if i >= len(dims) - 2 else 1), count)
            chunks.append(max(chunk, 1))
            counts.append(d.shard_size_chunks or 1)
        if not any(d.shard_size_chunks for d in dims):  # one frame plane per shard
            for axis in (-2, -1):
                counts[axis] = -(-(dims[axis].count or 1) // chunks[axis])
        inner = math.prod(counts)
        shard_bytes = math.prod(c * n for c, n in zip(chunks, counts)) * itemsize
        if inner > 1 and shard_bytes > ACQUIRE_S3_MAX_SHARD_BYTES:
            raise ValueError(
                f"acquire-zarr cannot upload shards of {inner} chunks and "
                f"{shard_bytes:,} bytes to S3 intact (acquire-zarr 0.10 corrupts "
                f"shards of several chunks above {ACQUIRE_S3_MAX_SHARD_BYTES:,} "
                "bytes); use backend='tensorstore' (or 'zarr-python'), or make "
                "each shard one chunk (shard_size_chunks=1, or chunks as large as "
                "the shard), or smaller shards"
            )

    def check_counts(self, stored: Sequence[Dimension], root_path: str) -> None:
        """Channels OME metadata can list; counts and paths the engine takes."""
        super().check_counts(stored, root_path)
        if self.backend == "acquire-zarr":
            why = "acquire-zarr takes sizes below 2**32"
            _check_ome_counts(stored, "OME-Zarr", 2**32, why)
        else:
            _check_ome_counts(stored, "OME-Zarr", 2**63, "")
        if self.pyramid is not None:
            check_pyramid(self.pyramid, stored, self.name)
        if self.backend == "tensorstore" and "\\" in root_path:
            raise ValueError(
                f"root_path {root_path!r} contains a backslash, which tensorstore "
                "reads as a path separator: rename it, or use backend='zarr-python'"
            )

    def check_storage_order(self, stored: Sequence[Dimension]) -> None:
        """OME-Zarr 0.5 axes: 2 to 5, ordered time, channel, other, space.

        At most one time and one channel axis, and at most three space axes.
        """
        names = [f"{d.name} ({d.type})" for d in stored]
        types: list[str] = [d.type or "other" for d in stored]
        too_many = [
            f"{types.count(kind)} {kind} axes (at most {limit})"
            for kind, limit in (("time", 1), ("channel", 1), ("space", 3))
            if types.count(kind) > limit
        ]
        if len(stored) > 5:
            too_many.insert(0, f"{len(stored)} axes (at most 5)")
        not_space = [d.name for d in stored[-2:] if d.type != "space"]
        if not_space:
            too_many.append(f"frame axes {not_space!r} not of type 'space'")
        if too_many:
            raise ValueError(
                f"OME-Zarr 0.5 cannot store the axes {names!r}: "
                f"{', '.join(too_many)}; combine dimensions (for example two "
                "'other' dimensions into one), or use format='scratch'"
            )
        ranks = [_ZARR_AXIS_RANK.get(t, 2) for t in types]
        if ranks != sorted(ranks):
            raise ValueError(
                f"storage order {names!r} is not allowed by OME-Zarr, whose axes "
                "must be ordered time, channel, other, space; use "
                "storage_order='ome' (the default) or list the dimensions in that "
                "order"
            )

    def ome_storage_order(self, dimensions: Sequence[Dimension]) -> list[str]:
        """(t, c, [other], z, y, x), as OME-Zarr requires.

        An unbounded first dimension stays first.
        """
        dims = [d for d in dimensions if d.type != "position"]
        ordered = sorted(dims, key=lambda d: _ZARR_AXIS_RANK.get(d.type or "other", 2))
        if dims and dims[0].count is None:
            ordered.remove(dims[0])
            ordered.insert(0, dims[0])
        return [d.name for d in ordered]


#: TIFF file suffixes, longest first (so ``.ome.tiff`` wins over ``.tiff``)
_TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")


class OmeTiffFormat(_Format):
    """OME-TIFF, written with tifffile; OME-XML from ome-types.

    Each frame becomes one TIFF page (IFD) as it arrives. ``DimensionOrder``
    follows the storage order, which for ``storage_order="ome"`` is the
    acquisition order: OME-TIFF allows every permutation of T, C and Z.
    Files are laid out as ome-writers 0.3 lays them out.

    Parameters
    ----------
    suffix
        Appended to ``root_path`` unless it already ends in ``.tif`` or
        ``.tiff`` (``.ome.tiff``, ``.ome.tif``, ``.tif``, ``.tiff`` are kept
        as given).
    prefer_single_file
        ``"auto"`` (default): one file for one position, a folder of files for
        several. ``"always"`` (or True): one file holding every position as an
        OME Image (a tifffile series), plate included; easiest to move and
        open. ``"never"`` (or False): a folder even for one position. The
        folder is ``root_path`` without its suffix; position ``i`` is
        ``<folder>/<folder name>_p<iii><suffix>`` (``run/run_p000.ome.tiff``).
    multi_file_metadata
        Where the OME-XML of a folder of files lives. ``"redundant"``
        (default): every file carries the whole dataset's OME-XML (each
        Image's ``TiffData`` names its file by UUID), so any one file opens as
        the whole dataset. ``"master-tiff"``: the first file carries it, the
        others a ``BinaryOnly`` reference to that file. ``"companion-file"``:
        a ``companion_file`` beside them carries it, every TIFF a
        ``BinaryOnly`` reference to it.
    companion_file
        Name of the companion file in the folder (``"companion-file"`` only).
    bigtiff
        Write BigTIFF (64-bit offsets). None (default): when a file can
        exceed 4 GB, and always for unbounded streams.
    fsync
        Durability against power loss (a killed process loses nothing either
        way, see ``ome_writers.recover``). ``"on_close"`` (default):
        ``close()`` returns once every file is on the device.
        ``"every_frame"``: each ``append`` returns once its page and its
        metadata are on the device (one sync per frame limits the frame
        rate). ``"never"``: no sync at all.
    pyramid
        Lower resolutions (``Pyramid``) written with each page, as its
        SubIFDs (the OME-TIFF pyramid Bio-Formats and tifffile read). Y/X
        only: ``downsample_z`` is refused. None (default): none.
    """

    compressions: ClassVar[tuple[str | None, ...]] = (None, "lzw", "zlib", "zstd")
    folds_camera_axis: ClassVar[bool] = True

    name: Literal["ome-tiff"] = "ome-tiff"
    backend: Literal["tifffile"] = "tifffile"

    @field_validator("backend", mode="before")
    @classmethod
    def _auto_backend(cls, value: Any) -> Any:
        return "tifffile" if value == "auto" else value

    suffix: str = ".ome.tiff"

    @field_validator("suffix")
    @classmethod
    def _plain_suffix(cls, value: str) -> str:
        return _check_suffix(value, ".tiff", ".tif")

    prefer_single_file: Literal["auto", "always", "never"] = "auto"
    multi_file_metadata: Literal["redundant", "master-tiff", "companion-file"] = (
        "redundant"
    )
    companion_file: str = Field(default="companion.ome", min_length=1)
    bigtiff: bool | None = None
    fsync: Literal["never", "on_close", "every_frame"] = "on_close"
    pyramid: Pyramid | None = None

    @field_validator("prefer_single_file", mode="before")
    @classmethod
    def _bool_means_always(cls, value: Any) -> Any:
        if value is True:
            return "always"
        if value is False:
            return "never"
        return value

    @field_validator("companion_file")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(
                f"companion_file {value!r} must be a file name, not a path; it is "
                "written inside the output folder"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _position_layout(cls, data: Any) -> Any:
        if isinstance(data, dict) and "position_layout" in data:
            data = dict(data)
            layout = data.pop("position_layout")
            warnings.warn(
                "OmeTiffFormat(position_layout=...) is deprecated: use "
                "prefer_single_file='always' for 'series', or "
                "prefer_single_file='never' with multi_file_metadata for 'files'",
                DeprecationWarning,
                stacklevel=4,
            )
            if layout == "series":
                data.setdefault("prefer_single_file", "always")
            elif layout == "files":
                data.setdefault("prefer_single_file", "never")
                data.setdefault("multi_file_metadata", "companion-file")
            else:
                raise ValueError(
                    f"position_layout {layout!r} is neither 'series' nor 'files'"
                )
        return data

    def supported_compressions(self) -> tuple[str | None, ...]:
        """None and zlib always; lzw and zstd when ``imagecodecs`` is installed."""
        import importlib.util

        if importlib.util.find_spec("imagecodecs") is None:
            return (None, "zlib")
        return self.compressions

    def ome_storage_order(self, dimensions: Sequence[Dimension]) -> list[str]:
        """The acquisition order (an unbounded dimension is first already).

        Every permutation of T, C and Z is a valid ``DimensionOrder``, so no
        dimension has to move; frames are then also written in storage order.
        """
        return [d.name for d in dimensions if d.type != "position"]

    def single_file(self, num_positions: int) -> bool:
        """Whether ``num_positions`` positions go into one file."""
        return self.prefer_single_file == "always" or (
            self.prefer_single_file == "auto" and num_positions <= 1
        )

    def tiff_path(self, root_path: str) -> str:
        """``root_path`` as given if it ends in ``.tif(f)``, else with ``suffix``."""
        if not root_path or root_path.lower().endswith(_TIFF_SUFFIXES):
            return root_path
        return root_path + self.suffix

    def split_tiff_path(self, root_path: str) -> tuple[str, str]:
        """(path without its TIFF suffix, that suffix: ``.ome.tif(f)``/``.tif(f)``)."""
        path = self.tiff_path(root_path)
        lowered = path.lower()
        suffix = next(s for s in _TIFF_SUFFIXES if lowered.endswith(s))
        return path[: len(path) - len(suffix)], path[len(path) - len(suffix) :]

    def file_paths(self, root_path: str, num_positions: int) -> list[str]:
        """The TIFF file of each position (one path for a single file)."""
        if self.single_file(num_positions):
            return [self.tiff_path(root_path)]
        folder, suffix = self.split_tiff_path(root_path)
        path = Path(folder)
        return [
            str(path / f"{path.name}_p{i:03d}{suffix}") for i in range(num_positions)
        ]

    def check_counts(self, stored: Sequence[Dimension], root_path: str) -> None:
        """Channels OME-XML can list, and sizes its schema allows (< 2**31)."""
        super().check_counts(stored, root_path)
        why = "the OME-XML schema stores SizeT, SizeC and SizeZ as 32-bit ints"
        _check_ome_counts(stored, "OME-TIFF", 2**31, why)
        if self.pyramid is not None:
            check_pyramid(self.pyramid, stored, self.name)

    def get_output_path(self, root_path: str, *, num_positions: int = 1) -> str:
        """The TIFF file (one file), or the folder of files."""
        if not root_path or self.single_file(num_positions):
            return self.tiff_path(root_path)
        return self.split_tiff_path(root_path)[0]


FormatModel = Annotated[
    ScratchFormat | OmeZarrFormat | OmeTiffFormat, Field(discriminator="name")
]

#: format names and aliases accepted by ``AcquisitionSettings.format``, with
#: the fields they imply
FORMAT_ALIASES: dict[str, dict[str, str]] = {
    "scratch": {"name": "scratch"},
    "memory": {"name": "scratch"},
    "ome-zarr": {"name": "ome-zarr"},
    "zarr": {"name": "ome-zarr"},
    "tensorstore": {"name": "ome-zarr", "backend": "tensorstore"},
    "acquire-zarr": {"name": "ome-zarr", "backend": "acquire-zarr"},
    "zarr-python": {"name": "ome-zarr", "backend": "zarr-python"},
    "ome-tiff": {"name": "ome-tiff"},
    "tiff": {"name": "ome-tiff"},
    "tifffile": {"name": "ome-tiff", "backend": "tifffile"},
}


def resolve_format_name(name: str) -> dict[str, str]:
    """The fields a format name or alias stands for.

    >>> resolve_format_name("acquire-zarr")
    {'name': 'ome-zarr', 'backend': 'acquire-zarr'}
    """
    try:
        return dict(FORMAT_ALIASES[name.lower()])
    except KeyError:
        raise ValueError(
            f"unknown format {name!r}; known formats are {sorted(FORMAT_ALIASES)!r}"
        ) from None


def format_from_path(root_path: str) -> dict[str, str]:
    """The format a ``root_path`` implies by its suffix.

    No path: scratch (in memory). A path without a known suffix: OME-Zarr,
    with a ``UserWarning`` (as ome-writers 0.3 does).

    >>> format_from_path("run1.ome.zarr"), format_from_path("run1.tif")
    ({'name': 'ome-zarr'}, {'name': 'ome-tiff'})
    """
    lowered = root_path.lower().rstrip("/")
    if not lowered:
        return {"name": "scratch"}
    if lowered.endswith(".zarr"):
        return {"name": "ome-zarr"}
    if lowered.endswith(_TIFF_SUFFIXES):
        return {"name": "ome-tiff"}
    warnings.warn(
        f"the format cannot be told from root_path {root_path!r} (no .ome.zarr, "
        ".zarr, .ome.tiff or .tif suffix); writing OME-Zarr. Give the suffix, or "
        "format='ome-zarr' / 'ome-tiff' / 'scratch', to choose",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
    return {"name": "ome-zarr"}
