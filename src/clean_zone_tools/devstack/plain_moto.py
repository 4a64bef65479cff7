"""moto's own server (``moto_server``), its PutObjects applied one at a time as on S3.

The tests' endpoint: no journal and no checkpoints (each test session starts empty), but the same
conditional-put guarantee as the durable endpoint (``endpoint.serialise_puts``). Takes
``moto_server``'s arguments::

    python -m clean_zone_tools.devstack.plain_moto -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import sys

from clean_zone_tools.devstack.endpoint import serialise_puts


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    serialise_puts()
    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
