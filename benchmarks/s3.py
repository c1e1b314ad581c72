"""The S3 scenarios: ``python benchmarks/s3.py [--repeats N] [--json]``.

Same as ``ome-writers bench s3``: each engine streams to a local
S3-compatible server against plain parallel PUTs of the same objects (see
``ome_writers._cli._s3_bench``). ``OME_WRITERS_BENCH_S3`` points it at another
endpoint instead of the moto server it starts.
"""

import sys

from ome_writers._cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "s3", *sys.argv[1:]]))
