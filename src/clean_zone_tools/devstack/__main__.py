"""``python -m clean_zone_tools.devstack``: the local stack's commands (``scripts/dev``)."""

import sys

from clean_zone_tools.devstack.cli import main

sys.exit(main())
