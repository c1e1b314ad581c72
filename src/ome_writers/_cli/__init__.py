"""The ``ome-writers`` command line: ``demo``, ``info``, ``bench``."""

from ome_writers._cli._main import main

__all__ = ["main"]
