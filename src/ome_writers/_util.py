"""Small helpers shared across layers (a leaf module)."""

from __future__ import annotations

import os
import sys

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
