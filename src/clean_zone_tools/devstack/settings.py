"""The no-Docker stack's settings.

A re-export shim until the devstack's move lands (engineer H1 moves ``stack_environment`` here); the
compose checks already import it by this name.
"""

from clean_zone_tools.devstack.local_stack import stack_environment

__all__ = ["stack_environment"]
