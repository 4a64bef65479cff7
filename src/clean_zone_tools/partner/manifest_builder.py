"""Build a batch manifest for a folder of files: what a partner runs before uploading a batch.

Every file under FOLDER (recursively; hidden files skipped) is listed with its
key relative to FOLDER, its size and its checksum (SHA-256 by default), and
the result is checked against the same rules the pipeline applies, so a
manifest this tool writes is never refused for its format. Then:

1. upload the files to ``s3://<bucket>/batches/<batch-id>/`` (same relative keys);
2. upload the manifest last, to ``s3://<bucket>/manifests/<batch-id>.json``.

Examples (``clean-zone-manifest`` is the console script; ``python -m
clean_zone_tools.partner.manifest_builder`` is the same command)::

    clean-zone-manifest ./outgoing/2026-09-14 --batch-id acme-2026-09-14 -o acme-2026-09-14.json
    clean-zone-manifest ./outgoing/2026-09-14 --batch-id acme-2026-09-14 --rows > manifest.json
    clean-zone-manifest --check acme-2026-09-14.json

Needs Python 3.12, ``jsonschema`` and this project installed without its development
dependencies (``pip install jsonschema`` then ``pip install --no-deps <checkout>``); nothing else.
Progress goes to stderr, the manifest to stdout unless ``-o`` is given.
Exit codes: 0 written (or checked OK), 1 refused (bad batch id, too many or no
files, unreadable file, a manifest that fails --check), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from clean_zone import csv_validation, manifest
from clean_zone.extensions import FileKind, classify_key
from clean_zone.failures import DataQualityError
from clean_zone.hashing import ALGORITHMS, CHUNK_SIZE, hash_file
from clean_zone.manifest import FileEntry, ManifestError

PRODUCER = "clean-zone-manifest (manifest v1)"


class Refused(Exception):
    """The manifest cannot be built; the message says why and what to do."""


def list_files(folder: Path, *, include_hidden: bool, exclude: set[Path]) -> list[tuple[str, Path]]:
    """(key relative to ``folder``, path) of every regular file, in key order."""
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        if not include_hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if not include_hidden and name.startswith("."):
                continue
            path = Path(root, name)
            if path.resolve() in exclude or not path.is_file():
                continue
            found.append((path.relative_to(folder).as_posix(), path))
    return sorted(found)


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def count_rows(key: str, path: Path) -> int | None:
    """Data rows of a CSV (header excluded), as the pipeline counts them; None for other files."""
    kind = classify_key(key, path.stat().st_size)
    if not kind.is_csv:
        return None
    try:
        return csv_validation.validate(_chunks(path), gzipped=kind is FileKind.CSV_GZIP).rows
    except DataQualityError as error:
        raise Refused(f"{key}: the pipeline would refuse this CSV ({error.reason}: {error})") from error


def build(
    folder: Path,
    batch_id: str,
    *,
    algorithm: str,
    rows: bool,
    include_hidden: bool,
    exclude: set[Path],
    progress: TextIO | None,
) -> dict[str, object]:
    files = list_files(folder, include_hidden=include_hidden, exclude=exclude)
    if not files:
        raise Refused(f"{folder} has no files to list")
    if len(files) > manifest.MAX_FILES:
        raise Refused(
            f"{folder} has {len(files)} files; a batch may list at most {manifest.MAX_FILES}. "
            "Split the delivery into several batches (one folder and batch id each)."
        )
    entries: list[FileEntry] = []
    total = sum(path.stat().st_size for _, path in files)
    done = 0
    started = time.monotonic()
    for number, (key, path) in enumerate(files, start=1):
        try:
            digest = hash_file(path, algorithm)
        except OSError as error:
            raise Refused(f"cannot read {path}: {error}") from error
        entries.append(
            FileEntry(
                key=key,
                size=digest.size,
                algorithm=algorithm,
                checksum=digest.hex,
                rows=count_rows(key, path) if rows else None,
            )
        )
        done += digest.size
        if progress is not None:
            rate = done / max(time.monotonic() - started, 1e-6) / 1e6
            print(
                f"[{number}/{len(files)}] {key} ({digest.size:,} bytes; {done:,} of {total:,}, "
                f"{rate:.0f} MB/s)",
                file=progress,
                flush=True,
            )
    created = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        return manifest.build(batch_id, entries, created_at=created, producer=PRODUCER)
    except ManifestError as error:
        raise Refused("\n".join(f"{p.reason}: {p}" for p in error.problems)) from error


def check(path: Path) -> list[str]:
    """Every problem the pipeline would find in the manifest at ``path`` (empty: it would accept it)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return [f"cannot read {path}: {error}"]
    try:
        parsed = manifest.parse(data, manifest_key=f"manifests/{path.name}")
    except ManifestError as error:
        lines = [f"{p.reason}: {p}" for p in error.problems]
        if error.omitted:
            lines.append(f"... and {error.omitted} more")
        return lines
    print(
        f"OK: batch {parsed.batch_id!r}, {len(parsed.files)} files, {parsed.total_bytes:,} bytes",
        file=sys.stderr,
    )
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="clean-zone-manifest",
        description="Build a clean-zone batch manifest (JSON, version 1) for a folder of files, "
        "or --check an existing manifest.",
        epilog="Upload the files to batches/<batch-id>/ first and the manifest (to manifests/) last: "
        "the manifest starts the batch. Format: docs/manifests.md.",
    )
    parser.add_argument("folder", nargs="?", type=Path, help="the folder whose files make up the batch")
    parser.add_argument("--batch-id", help="the batch id (letters, digits, '.', '_', '-'; at most 128)")
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default="SHA256",
        help="checksum algorithm (default SHA256; MD5 only if you must)",
    )
    parser.add_argument(
        "--rows",
        action="store_true",
        help="also record each CSV's data-row count (the pipeline then checks it)",
    )
    parser.add_argument("-o", "--output", type=Path, help="write the manifest here (default: stdout)")
    parser.add_argument("--include-hidden", action="store_true", help="list dotfiles and dot-folders too")
    parser.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--check",
        type=Path,
        metavar="MANIFEST",
        help="instead of building: check MANIFEST as the pipeline would; list every problem",
    )
    args = parser.parse_args(argv)

    if args.check is not None:
        if args.folder is not None or args.batch_id:
            parser.error("--check takes a manifest only; no folder or --batch-id")
        problems = check(args.check)
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    if args.folder is None or not args.batch_id:
        parser.error("a folder and --batch-id are required (or --check MANIFEST)")
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    if args.output is not None and args.output.exists() and not args.force:
        print(f"refused: {args.output} exists (use --force to overwrite)", file=sys.stderr)
        return 1

    # A manifest written inside the folder is not one of the batch's files (it cannot list itself).
    exclude = {args.output.resolve()} if args.output is not None else set()
    progress = None if args.quiet else sys.stderr
    try:
        document = build(
            args.folder,
            args.batch_id,
            algorithm=args.algorithm,
            rows=args.rows,
            include_hidden=args.include_hidden,
            exclude=exclude,
            progress=progress,
        )
    except Refused as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    data = manifest.dumps(document)
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        args.output.write_bytes(data)
    if not args.quiet:
        files = document["files"]
        count = len(files) if isinstance(files, list) else 0
        where = args.output or "stdout"
        print(
            f"manifest for batch {args.batch_id!r}: {count} files -> {where}\n"
            f"next: upload the files to batches/{args.batch_id}/ , then this manifest to manifests/",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
