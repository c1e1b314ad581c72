"""Small helpers shared across layers (a leaf module)."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from _typeshed import ReadableBuffer

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` that points at the caller's code.

    Counts the frames from the caller of this function up to the first one
    outside this package, so a warning raised deep inside a backend is
    attributed to the user's ``append`` or ``create_stream`` line.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE_DIR
    ):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def replace_file(
    path: Path,
    *pieces: ReadableBuffer,
    durable: bool = False,
    temporary: Path | None = None,
    write_head: Callable[[int], None] | None = None,
) -> None:
    """Replace ``path`` with ``pieces`` joined: readers see the old file or the new.

    The data goes to a temporary file beside ``path`` (hidden and unique
    unless ``temporary`` names it; permissions 0o666 less the umask, so other
    users and servers can read it), which is then renamed over ``path``. With
    ``durable`` the file and the directory entry are flushed to the device
    before returning. ``write_head(fd)`` writes the file's first bytes
    itself, to the open descriptor, before ``pieces``. Raises ``OSError``;
    the temporary file is removed on failure.
    """
    tmp = temporary or path.with_name(
        f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    )
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            if write_head is not None:
                write_head(fd)
            for piece in pieces:
                write_all(fd, piece)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def write_all(fd: int, data: ReadableBuffer) -> None:
    """Write all of ``data`` at the descriptor's position (calls may take less)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def pwrite_all(fd: int, data: ReadableBuffer, offset: int) -> None:
    """Write all of ``data`` at ``offset``; the kernel may take less per call."""
    view = memoryview(data)
    if view.nbytes == 0:  # nothing to write (an empty view cannot be cast)
        return
    view = view.cast("B")
    done = os.pwrite(fd, view, offset)
    while done < len(view):
        step = os.pwrite(fd, view[done:], offset + done)
        if step == 0:
            raise OSError(errno.ENOSPC, "no space left on device (short write)")
        done += step


def fsync_directory(path: Path) -> None:
    """Flush a directory's entries (new and renamed files) to the device."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: characters XML 1.0 cannot hold (OME-XML, OME-Zarr's METADATA.ome.xml):
#: control characters but tab and newlines, lone surrogates, U+FFFE, U+FFFF
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# xs:anyURI as libxml2 (lxml, and so ome-types) checks it: the value's
# whitespace collapsed, the characters a URI cannot hold escaped (here: made a
# harmless "_", since only the shape matters), then parsed as an RFC 3986
# URI reference, with two leniencies of libxml2 (brackets in a fragment, any
# text between an authority's brackets) and one strictness (no empty port).
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|{_PCT})"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_SEGMENT_NZ_NC = rf"(?:[A-Za-z0-9\-._~!$&'()*+,;=@]|{_PCT})+"
_AUTHORITY = (
    rf"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|{_PCT})*@)?"
    rf"(?:\[[^\[\]/?#@]*\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|{_PCT})*)"
    r"(?::[0-9]+)?"
)
_ABEMPTY = rf"(?:/{_SEGMENT})*"
_ABSOLUTE = rf"/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"
_TAIL = rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?\[\]])*)?"
_URI_REFERENCE = re.compile(
    rf"(?:[A-Za-z][A-Za-z0-9+\-.]*:"
    rf"(?://{_AUTHORITY}{_ABEMPTY}|{_ABSOLUTE}|{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"
    rf"|(?://{_AUTHORITY}{_ABEMPTY}|{_ABSOLUTE}|{_SEGMENT_NZ_NC}(?:/{_SEGMENT})*)?)"
    rf"{_TAIL}"
)
_URI_ESCAPED = re.compile(r"[^\x21-\x7e]|[<>\"{}|\\^`']")


def is_xml_uri(text: str) -> bool:
    """Whether OME-XML can hold ``text`` as an ``xs:anyURI`` (e.g. a namespace).

    >>> [is_xml_uri(t) for t in ("https://example.org/x", "my lab", "urn:a:b")]
    [True, True, True]
    >>> [is_xml_uri(t) for t in (":", "1:x", "a%2", "//host:port", "a#b#c")]
    [False, False, False, False, False]
    """
    collapsed = " ".join(re.split(r"[ \t\n\r]+", text.strip(" \t\n\r")))
    return _URI_REFERENCE.fullmatch(_URI_ESCAPED.sub("_", collapsed)) is not None


def sync_filesystem(path: Path) -> None:
    """Flush every file of the file system holding ``path`` to its device.

    One ``syncfs`` call (Linux) instead of an ``fsync`` per file: an OME-Zarr
    output is thousands of files. Elsewhere ``os.sync()``. Raises ``OSError``.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = _libc()
        if libc is None or libc.syncfs(fd) != 0:
            if libc is not None:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs({str(path)!r}): {os.strerror(err)}")
            os.sync()
    finally:
        os.close(fd)


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to talk to
        return None


def xml_unsafe_text(value: Any) -> str | None:
    r"""The first string in ``value`` (nested, dict keys included) XML cannot hold.

    >>> xml_unsafe_text({"a": ["ok", "bell\x07"]}), xml_unsafe_text("fine")
    ('bell\x07', None)
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _NOT_XML.search(item):
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return None


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in the file at ``path``; None if unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
