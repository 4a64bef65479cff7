"""Static checks that the docker-compose stack agrees with MWAA and with the no-Docker path.

No Docker engine is needed. Each check takes a :class:`~.parsing.Stack` (the files of one checkout)
and returns a list of problems, empty when all is well, so the tests run the very same checks on the
repository and on a deliberately drifted copy. :mod:`.parsing` reads a checkout, :mod:`.checks` holds
the checks.

    python -m clean_zone_tools.checks.compose            # every check; exit 1 on any problem
    python -m clean_zone_tools.checks.compose --root DIR # another checkout
"""
