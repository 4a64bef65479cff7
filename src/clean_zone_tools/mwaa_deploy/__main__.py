"""``python -m mwaa_deploy``: see :mod:`mwaa_deploy.cli`."""

import sys

from clean_zone_tools.mwaa_deploy.cli import main

sys.exit(main())
