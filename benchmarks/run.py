"""Run the benchmark scenarios: ``python benchmarks/run.py [SCENARIO ...]``.

The scenarios live in ``ome_writers._cli._bench`` so that ``ome-writers bench`` runs
the same code; see that module for what is measured against what.
"""

import sys

from ome_writers._cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
