"""A small filesystem that really fills up, for the disk-full tests.

A size-limited tmpfs where mounting is permitted (the tests' machine runs
them as root). Elsewhere the same interface injects ENOSPC at the lowest layer
a real one comes from: ``os.write`` and ``os.pwrite`` on files under the
path, once a byte budget is spent. That stand-in has no ``statvfs`` of its
own, and compiled code that writes for itself (the pyramid's
``write_halving``) goes below ``os.write``, so tests that check free-space
warnings or a full disk under a pyramid need the real tmpfs
(``test_small_filesystem_is_a_real_tmpfs`` says when it is missing).
"""

from __future__ import annotations

import errno
import os
import subprocess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

#: what the fallback keeps back for directories and metadata files
_SLACK_BYTES = 64 * 1024


class SmallFilesystem:
    """A ``size_bytes`` tmpfs at ``path``, with ``ballast_bytes`` taken by a
    file that ``free_ballast`` deletes to make room again."""

    def __init__(
        self,
        path: Path,
        monkeypatch: pytest.MonkeyPatch,
        size_bytes: int,
        ballast_bytes: int = 0,
    ) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self._ballast_bytes = ballast_bytes
        path.mkdir()
        try:
            mount = ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs"]
            result = subprocess.run([*mount, path], capture_output=True, check=False)
            self.is_tmpfs = result.returncode == 0
        except FileNotFoundError:  # no mount command
            self.is_tmpfs = False
        if self.is_tmpfs:
            if ballast_bytes:
                (path / "ballast").write_bytes(b"\0" * ballast_bytes)
            return
        self._budget = size_bytes - ballast_bytes - _SLACK_BYTES
        real_write, real_pwrite = os.write, os.pwrite

        def spend(fd: int, data: Any) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{path}{os.sep}"):
                size = len(memoryview(data).cast("B"))
                if size > self._budget:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self._budget -= size

        def write(fd: int, data: Any) -> int:
            spend(fd, data)
            return real_write(fd, data)

        def pwrite(fd: int, data: Any, offset: int) -> int:
            spend(fd, data)
            return real_pwrite(fd, data, offset)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "pwrite", pwrite)

    def free_ballast(self) -> None:
        """Delete the ballast file: its bytes can be written again."""
        if self.is_tmpfs:
            (self.path / "ballast").unlink()
        else:
            self._budget += self._ballast_bytes

    def unmount(self) -> None:
        """Unmount the tmpfs (lazily, if a leaked reader still maps a file)."""
        if self.is_tmpfs:
            result = subprocess.run(["umount", self.path], capture_output=True)
            if result.returncode != 0:  # still mapped by a leaked reader
                subprocess.run(["umount", "-l", self.path], check=True)
