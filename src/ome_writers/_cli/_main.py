"""The ``ome-writers`` command: ``demo``, ``info`` and ``bench``.

Bad arguments print one line to stderr and exit with status 2, never a
traceback: argparse does that for malformed options, and every error this
package raises for bad input (``ValueError`` and friends) is caught at the top
and reported the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pydantic

from ome_writers._cli._camera import SimulatedCamera
from ome_writers._cli._convert_command import add_convert_parser, run_convert
from ome_writers._cli._info import run_info
from ome_writers._errors import NotADatasetError
from ome_writers._formats import FORMAT_ALIASES
from ome_writers._models import SUPPORTED_DTYPES, StandardAxis, dims_from_standard_axes
from ome_writers._recover import recover
from ome_writers._settings import AcquisitionSettings
from ome_writers._stream import create_stream
from ome_writers._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

_DEFAULT_DIMS = "t:20,c:2,y:512,x:512"


class UsageError(Exception):
    """Bad command-line input; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_dims(text: str) -> dict[str, int | None]:
    """Parse ``t:20,c:2,y:512,x:512`` (``t:0`` or ``t:inf`` means unbounded).

    >>> parse_dims("t:3,p:2,y:8,x:8")
    {'t': 3, 'p': 2, 'y': 8, 'x': 8}
    """
    allowed = [a.value for a in StandardAxis]
    sizes: dict[str, int | None] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition(":")
        if not sep or name not in allowed:
            raise UsageError(
                f"--dims item {item!r} is not NAME:COUNT with NAME one of "
                f"{', '.join(allowed)} (e.g. {_DEFAULT_DIMS})"
            )
        if value in ("inf", "0", "none", "None"):
            sizes[name] = None
            continue
        try:
            sizes[name] = int(value)
        except ValueError:
            raise UsageError(
                f"--dims item {item!r}: count {value!r} is not a whole number"
            ) from None
        if sizes[name] is not None and sizes[name] <= 0:  # type: ignore[operator]
            raise UsageError(f"--dims item {item!r}: count must be positive")
    return sizes


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ome-writers",
        description="Stream microscope frames into OME arrays.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="stream a simulated camera into a dataset",
        description="Stream frames from a simulated camera into a dataset, with a "
        "progress bar, then print what was written.",
    )
    demo.add_argument(
        "--format",
        default="scratch",
        help=f"output format: {', '.join(sorted(FORMAT_ALIASES))} "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--root", default="", help="output path (default: in memory, no files)"
    )
    demo.add_argument(
        "--dims",
        default=_DEFAULT_DIMS,
        help="dimensions in acquisition order; t:inf is unbounded and then "
        "needs --frames (default: %(default)s)",
    )
    demo.add_argument(
        "--dtype", default="uint16", help="pixel type (default: %(default)s)"
    )
    demo.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frames per second (default: as fast as it can)",
    )
    demo.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames to acquire (default: all that --dims declares)",
    )
    demo.add_argument("--overwrite", action="store_true", help="replace the output")

    info = sub.add_parser(
        "info",
        help="describe a written dataset",
        description="Describe a dataset: format, shape, dtype, positions, and "
        "whether it is complete or was interrupted.",
    )
    info.add_argument(
        "path",
        help="dataset path (scratch root, OME-Zarr or OME-TIFF), or the s3:// URL "
        "of an OME-Zarr (AWS settings from the environment)",
    )
    info.add_argument(
        "--json",
        action="store_true",
        help="print the description as JSON (keys listed in the README)",
    )

    recover_cmd = sub.add_parser(
        "recover",
        help="finish an acquisition whose writer was killed",
        description="Finish an acquisition whose writing process died: put every "
        "frame append returned for in place, write the final shape and metadata, "
        "mark it complete. Running it again does nothing.",
    )
    recover_cmd.add_argument(
        "path", help="the output (OME-Zarr, OME-TIFF, or scratch root)"
    )

    add_convert_parser(sub)

    bench = sub.add_parser("bench", help="run the benchmark scenarios")
    bench.add_argument(
        "args", nargs=argparse.REMAINDER, help="see ome-writers bench -h"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ome-writers`` console script.

    A reader that stops early (``ome-writers info ... | head -1``) ends the
    command quietly, as with any Unix tool.
    """
    try:
        return _main(argv)
    except BrokenPipeError:
        # Python would report the flush of the closed stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        from ome_writers._cli._bench import main as bench_main

        return bench_main(args_list[1:])
    parser = _build_parser()
    if not args_list:  # the usage and the commands, not just "required: command"
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(args_list)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "recover":
            return _recover(args)
        if args.command == "convert":
            return run_convert(args)
        return _info(args)
    except (
        UsageError,
        NotADatasetError,
        FileExistsError,
        ValueError,
        TypeError,
    ) as exc:
        message = str(exc).strip().splitlines()
        if isinstance(exc, pydantic.ValidationError):
            message = [_validation_text(e) for e in exc.errors()]
        # the options, not the Python arguments they stand for
        message = [m.replace("overwrite=True", "--overwrite") for m in message]
        print(
            f"ome-writers {args.command}: error: {'; '.join(message)}", file=sys.stderr
        )
        return 2
    except ImportError as exc:
        print(f"ome-writers {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _validation_text(error: Any) -> str:
    """One pydantic error as a user reads it: no 'Value error, ' wrapper."""
    text = str(error["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {text}" if where else text


def _demo(args: argparse.Namespace) -> int:
    sizes = parse_dims(args.dims)
    if args.fps is not None and not args.fps > 0:
        raise UsageError(f"--fps {args.fps!r} must be a positive frame rate")
    if args.frames is not None and args.frames <= 0:
        raise UsageError(f"--frames {args.frames!r} must be a positive count")
    if args.dtype not in SUPPORTED_DTYPES:
        raise UsageError(
            f"unknown --dtype {args.dtype!r}; "
            f"choose one of {', '.join(SUPPORTED_DTYPES)}"
        )
    if args.format.lower() not in FORMAT_ALIASES:
        raise UsageError(
            f"unknown --format {args.format!r}; choose one of "
            f"{', '.join(sorted(FORMAT_ALIASES))}"
        )
    settings = AcquisitionSettings(
        root_path=args.root,
        dimensions=dims_from_standard_axes(sizes),
        dtype=args.dtype,
        format=args.format,
        overwrite=args.overwrite,
    )
    total = settings.num_frames if args.frames is None else args.frames
    if total is None:
        raise UsageError("an unbounded --dims (t:inf) needs --frames N")
    declared = settings.num_frames
    if declared is not None and total > declared:
        raise UsageError(
            f"--frames {total} is more than the {declared} frames --dims declares; "
            "raise a count in --dims or make t unbounded (t:inf)"
        )
    if declared is not None and total < declared:
        print(
            f"note: acquiring {total} of the {declared} frames --dims declares; "
            "the others stay empty (zeros)",
            file=sys.stderr,
        )
    root_suffix = Path(args.root).name.lower()
    wanted = settings.format.name
    if args.root and wanted == "ome-zarr" and root_suffix.endswith((".tif", ".tiff")):
        raise UsageError(
            f"--root {args.root!r} names a TIFF file but --format is {args.format!r}; "
            "use a .ome.zarr path, or --format ome-tiff"
        )
    if args.root and wanted == "ome-tiff" and root_suffix.endswith(".zarr"):
        raise UsageError(
            f"--root {args.root!r} names a Zarr directory but --format is "
            f"{args.format!r}; use a .ome.tiff path, or --format ome-zarr"
        )
    camera = SimulatedCamera(settings, fps=args.fps)
    frame_mb = (
        camera.frame_shape[0] * camera.frame_shape[1] * camera.dtype.itemsize / 1e6
    )
    progress = _Progress(total, frame_mb)
    start = time.perf_counter()
    with create_stream(settings) as stream:
        for n, frame in enumerate(camera.frames(total)):
            stream.append(
                frame, frame_metadata={"delta_t": time.perf_counter() - start}
            )
            progress.update(n + 1)
    elapsed = time.perf_counter() - start
    progress.finish()
    _print_summary(settings, stream.frames_written, elapsed, frame_mb, stream.arrays)
    return 0


def _print_summary(
    settings: AcquisitionSettings,
    frames: int,
    elapsed: float,
    frame_mb: float,
    arrays: Sequence[Any],
) -> None:
    where = settings.output_path or "memory (no --root given)"
    print(f"wrote {frames} frames ({frames * frame_mb:,.1f} MB) in {elapsed:.2f} s")
    print(
        f"  {frames / elapsed:,.1f} frames/s, {frames * frame_mb / elapsed:,.1f} MB/s"
    )
    print(f"  format: {settings.format.name}, dtype: {settings.dtype}")
    print(f"  dimensions: {_dims_text(settings)}")
    for p, (pos, array) in enumerate(zip(settings.positions, arrays)):
        data = np.asarray(array)
        print(
            f"  position {p} ({pos.name}): shape {tuple(data.shape)}, "
            f"mean {float(data.mean()) if data.size else 0:.1f}"
        )
    print(f"  output: {where}")


def _dims_text(settings: AcquisitionSettings) -> str:
    return ", ".join(
        f"{d.name}={'unbounded' if d.count is None else d.count} ({d.type})"
        for d in settings.dimensions
    )


def _recover(args: argparse.Namespace) -> int:
    report = recover(args.path)
    if report.was_complete:
        print(
            f"{report.path}: {report.format}, already complete "
            f"({report.frames_written} frames); nothing to do"
        )
    else:
        restored = (
            f", {report.frames_restored} of them written from the journal"
            if report.frames_restored
            else ""
        )
        print(
            f"{report.path}: {report.format}, recovered: {report.frames_written} "
            f"frames{restored}; now complete"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    return run_info(args.path, as_json=args.json)


class _Progress:
    """A one-line progress bar on stderr: frames, frames/s and MB/s."""

    def __init__(self, total: int, frame_mb: float) -> None:
        self.total = total
        self.frame_mb = frame_mb
        self.start = time.perf_counter()
        self.last = 0.0
        self.enabled = True

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last < 0.1 and done < self.total:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        width = 30
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(
            f"\r[{bar}] {done}/{self.total} frames  {done / elapsed:,.1f} frames/s  "
            f"{done * self.frame_mb / elapsed:,.1f} MB/s"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
