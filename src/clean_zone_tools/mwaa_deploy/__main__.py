"""``python -m mwaa_deploy``: see :mod:`mwaa_deploy.cli`."""

import sys

from clean_zone_tools.mwaa_deploy.cli import main

# Guarded, so the doc checks can import this module to find the main it runs.
if __name__ == "__main__":
    sys.exit(main())
