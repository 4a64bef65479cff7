"""Write .env for docker-compose.yaml: the stack's secrets, freshly generated.

Reads .env.example (the list of settings, committed without values) and writes .env
(git-ignored). Values already in .env are kept, so running it again is safe: it only fills
in what is missing. --rotate generates every secret anew.

Run as ``scripts/docker-env`` (or ``python -m clean_zone_tools.devstack.docker_env``). It reads
env files with the project's one parser (:mod:`clean_zone_tools.envfile`) and never prints a
secret: it names what it wrote.

Exit codes: 0 written or nothing to do, 1 failure (template missing, file not writable),
2 usage.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from clean_zone_tools import REPO_ROOT
from clean_zone_tools.envfile import read_env_file


def fernet_key() -> str:
    """A Fernet key: 32 random bytes, URL-safe base64 (what cryptography's Fernet.generate_key returns)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


# Hex for the database password: it is embedded in a connection URL, where it needs no escaping.
GENERATORS: dict[str, Callable[[], str]] = {
    "AIRFLOW__CORE__FERNET_KEY": fernet_key,
    # HS512 (Airflow's JWT algorithm) wants a key of at least 64 bytes; PyJWT warns below that.
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_urlsafe(64),
    "AIRFLOW__API__SECRET_KEY": lambda: secrets.token_urlsafe(32),
    "AIRFLOW_LOGIN_PASSWORD": lambda: secrets.token_urlsafe(16),
    "POSTGRES_PASSWORD": lambda: secrets.token_hex(24),
}

ROTATION_NOTES = {
    "AIRFLOW__CORE__FERNET_KEY": "connections and Variables already stored in the database become unreadable",
    "POSTGRES_PASSWORD": (
        "the existing database volume keeps its old password: run `docker compose down -v` first"
    ),
}


def render(template: str, existing: dict[str, str], rotate: bool) -> tuple[str, list[str], list[str]]:
    """The new .env text, the names generated and the names kept from the existing file."""
    lines = ["# Written by scripts/docker-env from .env.example. Secrets: never commit this file.", ""]
    generated: list[str] = []
    kept: list[str] = []
    seen: set[str] = set()
    # The template's opening comment block speaks about the template itself: leave it out.
    body = template.split("\n\n", 1)[1] if template.startswith("#") and "\n\n" in template else template
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            lines.append(line)
            continue
        key, default = (part.strip() for part in stripped.split("=", 1))
        seen.add(key)
        current = existing.get(key, "")
        if key in GENERATORS and (rotate or not current):
            value = GENERATORS[key]()
            generated.append(key)
        elif current:
            value = current
            kept.append(key)
        else:
            value = default
        lines.append(f"{key}={value}")
    extra = [key for key in existing if key not in seen]
    if extra:
        lines.append("")
        lines.append("# Kept from the previous .env (not in .env.example).")
        lines.extend(f"{key}={existing[key]}" for key in extra)
        kept.extend(extra)
    return "\n".join(lines) + "\n", generated, kept


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only, replacing the file in one step."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/docker-env",
        description="Write .env for `docker compose` with freshly generated secrets (Fernet key, "
        "API secrets, login and database passwords). Keeps values already in .env.",
    )
    parser.add_argument(
        "--template", type=Path, default=REPO_ROOT / ".env.example", help="default: .env.example"
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / ".env", help="default: .env")
    parser.add_argument(
        "--rotate",
        action="store_true",
        help="generate every secret anew, replacing those in the existing .env",
    )
    args = parser.parse_args(argv)

    try:
        template = args.template.read_text(encoding="utf-8")
    except OSError as error:
        print(f"docker-env: cannot read the template {args.template}: {error.strerror}", file=sys.stderr)
        return 1
    try:
        existing = read_env_file(args.output) if args.output.exists() else {}
        local_env = REPO_ROOT / "local.env"
        local = read_env_file(local_env) if local_env.exists() else {}
    except ValueError as error:
        print(f"docker-env: {error}", file=sys.stderr)
        return 1

    text, generated, kept = render(template, existing, args.rotate)
    if not generated:
        print(f"docker-env: {args.output} already has every secret; nothing to do (--rotate to renew them)")
        return 0
    try:
        write_private(args.output, text)
    except OSError as error:
        print(f"docker-env: cannot write {args.output}: {error.strerror}", file=sys.stderr)
        return 1

    print(f"docker-env: wrote {args.output} (mode 600)")
    print(f"  generated: {', '.join(generated)}")
    if kept:
        print(f"  kept: {', '.join(kept)}")
    if args.rotate and existing:
        for key in generated:
            if key in ROTATION_NOTES and existing.get(key):
                print(f"  note: new {key}: {ROTATION_NOTES[key]}")
    user = local.get("AIRFLOW_LOGIN_USER", "admin")
    port = local.get("AIRFLOW_UI_PORT", "8080")
    print(
        f"Next: docker compose up -d, then open http://localhost:{port} and log in as '{user}' "
        f"with AIRFLOW_LOGIN_PASSWORD from {args.output}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
