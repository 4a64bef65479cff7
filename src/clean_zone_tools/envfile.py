"""Reading ``KEY=value`` env files (local.env).

A re-export shim until the devstack's move lands (engineer H1 moves ``read_env_file`` here); the
compose checks already import it by this name.
"""

from clean_zone_tools.devstack.local_stack import read_env_file

__all__ = ["read_env_file"]
