"""The project's one env-file parser: ``local.env`` (the local stacks' settings), ``.env`` and
``.env.example`` (the Docker stack's secrets) are all read by :func:`read_env_file`."""

from __future__ import annotations

import re
from pathlib import Path

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_env_file(path: Path | str) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file, as docker compose's ``env_file`` reads them.

    Blank lines and ``#`` comment lines are skipped; ``export KEY=VALUE`` is
    accepted; a value in matching single or double quotes loses the quotes;
    in an unquoted value `` #`` starts a comment. Anything else raises
    ValueError naming the file and line.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, separator, value = line.partition("=")
        key = key.strip()
        if not separator or not _ENV_KEY.fullmatch(key):
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[key] = value
    return values
