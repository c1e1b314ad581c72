"""Object-storage URLs and their storage options: parsing only, no I/O (a leaf).

The settings layer checks an ``s3://`` ``root_path`` and the
``OmeZarrFormat(storage_options=...)`` it comes with when the settings are
made; the backend layer (``_backends/zarr/_store``) opens what they name. Both
import this module, so neither reaches into the other.

Keys stay inside their prefix: a URL is refused when a segment of its key is
empty, ``.`` or ``..``, holds a backslash or a control character, or when the
bucket is not a valid S3 bucket name, so no key this package writes (the
root's plus the group names made safe by the layout) can land outside the
prefix the URL names.
"""

from __future__ import annotations

import re
from typing import Any

S3_SCHEME = "s3://"

#: what ``OmeZarrFormat(storage_options=...)`` accepts, and each value's type
STORAGE_OPTION_TYPES: dict[str, type] = {
    "endpoint_url": str,
    "region": str,
    "key": str,
    "secret": str,
    "token": str,
    "anon": bool,
    "profile": str,
}
#: storage options that are credentials: never written into any output
SECRET_OPTIONS = ("key", "secret", "token")

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_url(path: str) -> bool:
    """True when ``path`` starts with a URL scheme (``s3://``, ``gs://``...).

    >>> is_url("s3://bucket/run.ome.zarr"), is_url("/data/run.ome.zarr")
    (True, False)
    """
    return _SCHEME.match(path) is not None


def is_s3_url(path: str) -> bool:
    """True when ``path`` is an ``s3://`` URL."""
    return path.lower().startswith(S3_SCHEME)


def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of ``s3://bucket/prefix``; ``ValueError`` if unsafe.

    >>> split_s3_url("s3://my-bucket/lab/run1.ome.zarr/")
    ('my-bucket', 'lab/run1.ome.zarr')
    """
    if not is_s3_url(url):
        raise ValueError(f"{url!r} is not an s3:// URL (s3://bucket/prefix/name)")
    bucket, _, key = url[len(S3_SCHEME) :].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"root_path {url!r}: {bucket!r} is not an S3 bucket name (3-63 "
            "lowercase letters, digits, '.' and '-'); write s3://bucket/prefix/name"
        )
    key = key.rstrip("/")
    segments = key.split("/")
    if not key or any(s in ("", ".", "..") for s in segments):
        raise ValueError(
            f"root_path {url!r}: the key {key!r} must be a path of non-empty names "
            "without '.', '..' or '//' (keys never leave the prefix the URL "
            "names); write e.g. s3://bucket/lab/run1.ome.zarr"
        )
    if "\\" in key or _CONTROL.search(key):
        raise ValueError(
            f"root_path {url!r}: the key holds a backslash or a control character; "
            "use letters, digits, '/', '.', '_' and '-'"
        )
    return bucket, key


def check_storage_options(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """``options`` if every key is known and of its type, else ``ValueError``.

    >>> check_storage_options({"endpoint_url": "http://127.0.0.1:9000"})
    {'endpoint_url': 'http://127.0.0.1:9000'}
    """
    if options is None:
        return None
    unknown = sorted(set(options) - set(STORAGE_OPTION_TYPES))
    if unknown:
        raise ValueError(
            f"storage_options: unknown keys {unknown!r}; the keys are "
            f"{sorted(STORAGE_OPTION_TYPES)!r} (endpoint, region, credentials)"
        )
    for name, value in options.items():
        kind = STORAGE_OPTION_TYPES[name]
        if value is not None and not isinstance(value, kind):
            raise ValueError(
                f"storage_options[{name!r}] = {value!r} must be a {kind.__name__}"
            )
    return {k: v for k, v in options.items() if v is not None}


def public_storage_options(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """``options`` without the credentials (what outputs and journals record)."""
    if options is None:
        return None
    return {k: v for k, v in options.items() if k not in SECRET_OPTIONS}
