"""``ome-writers convert SOURCE DESTINATION``: the command over ``convert``.

A progress bar (frames, MB/s, time remaining) goes to stderr, only when
stderr is a terminal, so that logs and pipes get the one-line summary alone
(stdout). Bad input raises ``ValueError`` (or the package's errors) for the
caller to report as one line with exit status 2. Ctrl-C removes the partial
destination (``convert`` does) and exits with status 130.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO, get_args

from ome_writers._convert import convert
from ome_writers._formats import FORMAT_ALIASES
from ome_writers._pyramid import Pyramid, PyramidMethod

if TYPE_CHECKING:
    import argparse

    from ome_writers._convert import ConversionReport


def add_convert_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``convert`` command to the subcommands ``sub``."""
    cmd = sub.add_parser(
        "convert",
        help="convert a dataset into another format",
        description="Write a dataset (scratch root, OME-Zarr or OME-TIFF written by "
        "ome-writers, complete or interrupted) into another format, keeping "
        "dimensions, channels, positions, plate and all metadata. The source is "
        "never modified; a failed or interrupted conversion leaves no destination.",
    )
    cmd.add_argument(
        "source",
        help="the dataset to read (an OME-Zarr may be an s3:// URL; AWS settings "
        "from the environment)",
    )
    cmd.add_argument(
        "destination",
        help="the new dataset's path (an OME-Zarr may be an s3:// URL); its suffix "
        "(.ome.zarr, .ome.tiff) picks the format unless --format is given",
    )
    cmd.add_argument(
        "--format",
        default=None,
        help=f"destination format: {', '.join(sorted(FORMAT_ALIASES))} "
        "(default: from the destination's suffix)",
    )
    cmd.add_argument(
        "--compression",
        default=None,
        help="destination codec, e.g. blosc-zstd, zstd (OME-Zarr), zlib, lzw, zstd "
        "(OME-TIFF), or none (default: the source's, if the format can write it)",
    )
    cmd.add_argument(
        "--chunks",
        default=None,
        metavar="NAME:N,...",
        help="OME-Zarr chunk size per dimension, e.g. t:4,y:512,x:512 (default: "
        "the source's)",
    )
    cmd.add_argument(
        "--shards",
        default=None,
        metavar="NAME:N,...",
        help="OME-Zarr chunks per shard per dimension, e.g. t:8 (default: the "
        "source's)",
    )
    cmd.add_argument(
        "--pyramid",
        nargs="?",
        const="auto",
        default=None,
        metavar="LEVELS",
        help="add lower resolutions (OME-Zarr levels, OME-TIFF SubIFDs), each "
        "halving Y and X: LEVELS in all, the full resolution included (default: "
        "until the smallest fits one chunk, or 512 x 512)",
    )
    cmd.add_argument(
        "--pyramid-method",
        default=None,
        choices=sorted(get_args(PyramidMethod)),
        help="how 2 x 2 pixels become one (default mean; min or max for masks "
        "and labels); implies --pyramid",
    )
    cmd.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing destination written by ome-writers",
    )


def parse_sizes(text: str | None, option: str) -> dict[str, int] | None:
    """``t:4,y:512`` -> ``{"t": 4, "y": 512}`` (None for None).

    >>> parse_sizes("t:4,y:512", "--chunks")
    {'t': 4, 'y': 512}
    """
    if text is None:
        return None
    sizes: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition(":")
        try:
            size = int(value)
        except ValueError:
            size = 0
        if not sep or not name or size <= 0:
            raise ValueError(
                f"{option} item {item!r} is not NAME:N with N a whole number > 0 "
                "(e.g. t:4,y:512,x:512)"
            )
        sizes[name] = size
    return sizes


def parse_pyramid(levels: str | None, method: str | None) -> Pyramid | None:
    """``--pyramid [LEVELS]`` and ``--pyramid-method`` as a ``Pyramid`` (or None).

    >>> parse_pyramid("3", None)
    Pyramid(levels=3, method='mean', downsample_z=False)
    >>> parse_pyramid(None, "max").method
    'max'
    """
    if levels is None and method is None:
        return None
    count: int | None = None
    if levels not in (None, "auto"):
        try:
            count = int(levels)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(
                f"--pyramid {levels!r} is not a number of levels >= 1 (the full "
                "resolution included, e.g. --pyramid 3); or give --pyramid alone "
                "to halve until the smallest level fits one chunk"
            )
    options: dict[str, Any] = {"levels": count}
    if method is not None:
        options["method"] = method
    return Pyramid(**options)


def run_convert(args: argparse.Namespace, stderr: TextIO | None = None) -> int:
    """Run ``ome-writers convert``; print the summary; return the exit status."""
    stderr = sys.stderr if stderr is None else stderr
    if args.format is not None and args.format.lower() not in FORMAT_ALIASES:
        raise ValueError(
            f"unknown --format {args.format!r}; choose one of "
            f"{', '.join(sorted(FORMAT_ALIASES))}"
        )
    chunks = parse_sizes(args.chunks, "--chunks")
    shards = parse_sizes(args.shards, "--shards")
    pyramid = parse_pyramid(args.pyramid, args.pyramid_method)
    bar = ProgressBar(stderr) if stderr.isatty() else None
    try:
        report = convert(
            args.source,
            args.destination,
            format=args.format,
            compression=args.compression,
            overwrite=args.overwrite,
            progress=bar,
            chunks=chunks,
            shards=shards,
            pyramid=pyramid,
        )
    except FileExistsError as exc:  # the option, not the Python argument
        raise FileExistsError(str(exc).replace("root_path", "destination")) from None
    except KeyboardInterrupt:
        if bar is not None:
            bar.finish()  # the message on a line of its own
        print(
            f"ome-writers convert: interrupted; nothing of {args.destination!r} "
            "was kept (the source is unchanged)",
            file=stderr,
        )
        return 130
    finally:
        if bar is not None:
            bar.finish()
    print(summary(report))
    return 0


def summary(report: ConversionReport) -> str:
    """The one line printed after a conversion."""
    state = "" if report.source_complete else ", interrupted"
    skipped = f", {report.frames_skipped} empty" if report.frames_skipped else ""
    megabytes = report.bytes / 1e6
    rate = megabytes / report.seconds if report.seconds > 0 else 0.0
    return (
        f"converted {report.source} ({report.source_format}{state}) -> "
        f"{report.destination} ({report.format}): {report.frames_written} frames"
        f"{skipped}, {megabytes:,.1f} MB in {report.seconds:.2f} s "
        f"({rate:,.1f} MB/s)"
    )


class ProgressBar:
    """``progress`` for ``convert``: one line on ``stream``, redrawn <= 10x/s."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._start = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int, nbytes: int) -> None:
        now = time.perf_counter()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        width = 30
        filled = int(width * done / max(total, 1))
        left = (total - done) * elapsed / done if done else 0.0
        self._stream.write(
            f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} frames  "
            f"{nbytes / elapsed / 1e6:,.1f} MB/s  {_duration(left)} left "
        )
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """End the bar's line (once, if it was drawn)."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def _duration(seconds: float) -> str:
    """``1:02:03``, ``2:03`` or ``3 s``.

    >>> _duration(3723), _duration(123), _duration(3.4)
    ('1:02:03', '2:03', '3 s')
    """
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
