"""``python -m ome_writers``: the same as the ``ome-writers`` command."""

import sys

from ome_writers._cli import main

sys.exit(main())
