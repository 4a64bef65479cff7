"""``python -m clean_zone_tools.devstack``: the local stack's commands (``scripts/dev``)."""

import sys

from clean_zone_tools.devstack.cli import main

# Guarded, so the doc checks can import this module to find the main it runs.
if __name__ == "__main__":
    sys.exit(main())
