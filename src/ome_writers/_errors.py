"""The package's exceptions.

Each one also subclasses the builtin that describes the same failure, so callers
may catch either ``OmeWritersError`` or the builtin they already expect.
"""

from __future__ import annotations


class OmeWritersError(Exception):
    """Base class of every exception raised by ``ome_writers`` itself."""


class BackendUnavailableError(OmeWritersError, ImportError):
    """A format engine was selected that is not installed."""


class StreamClosedError(OmeWritersError, RuntimeError):
    """A write was attempted on a stream that is already closed."""


class WriteError(OmeWritersError, OSError):
    """Writing to storage failed; the message names the path and the cause."""

    def __str__(self) -> str:
        # OSError's own text, for a cause without an errno but with a
        # filename, would be "[Errno None] None: 'path'"
        if self.errno is None and self.strerror is None and len(self.args) == 1:
            return str(self.args[0])
        return super().__str__()


class NotADatasetError(OmeWritersError, ValueError):
    """A path does not hold a dataset that ``ome_writers`` can read."""
