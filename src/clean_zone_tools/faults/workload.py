"""Files to drop on a stack, each with the place it must end in.

A mixed workload holds, in a fixed rotation: good CSVs, gzip CSVs, files with a wrong extension,
corrupt CSVs (ragged rows), empty files, binary files named ``.csv`` and CSVs under hostile keys
(spaces, ``+``, ``%``, unicode, leading and trailing spaces). Keys are unique per workload, so a
census can find every file again.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from enum import StrEnum

from clean_zone.extensions import FileKind, classify_key


class Outcome(StrEnum):
    """Where a file must end, by the pipeline's documented rules (README "File lifecycle")."""

    PROCESSED = "processed"
    REJECTED = "rejected"
    QUARANTINED = "quarantine"

    @property
    def alerts(self) -> bool:
        """Whether a person is told: rejections and quarantines are alerted, processing is not."""
        return self is not Outcome.PROCESSED


@dataclass(frozen=True)
class WorkFile:
    rel: str  # the key below the landing prefix
    body: bytes
    expected: Outcome
    kind: str
    withdrawn: bool = False  # the partner deleted it: gone before its claim, or processed if claimed first
    uploads: int = 1  # how many versions were uploaded (each is processed: one output version each)


def _csv(rows: int, seed: int) -> bytes:
    lines = ["id,name,amount"] + [f"{seed}-{i},item {i},{i * 3 % 97}.{i % 10}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


KINDS = ("good", "gzip", "wrong_extension", "corrupt", "empty", "binary", "hostile_key")


def mixed_files(count: int, tag: str, only: tuple[str, ...] = KINDS) -> list[WorkFile]:
    """``count`` files cycling through ``only`` kinds; ``tag`` keeps keys unique per scenario."""
    files: list[WorkFile] = []
    for index in range(count):
        kind = only[index % len(only)]
        stem = f"{tag}/{index:05d}"
        if kind == "good":
            files.append(WorkFile(f"{stem}-good.csv", _csv(20, index), Outcome.PROCESSED, kind))
        elif kind == "gzip":
            body = gzip.compress(_csv(20, index), mtime=0)
            files.append(WorkFile(f"{stem}-packed.csv.gz", body, Outcome.PROCESSED, kind))
        elif kind == "wrong_extension":
            files.append(WorkFile(f"{stem}-notes.txt", b"not a csv\n", Outcome.REJECTED, kind))
        elif kind == "corrupt":
            body = b"id,name,amount\n1,a,2\n3,b\n"
            files.append(WorkFile(f"{stem}-ragged.csv", body, Outcome.QUARANTINED, kind))
        elif kind == "empty":
            files.append(WorkFile(f"{stem}-empty.csv", b"", Outcome.QUARANTINED, kind))
        elif kind == "binary":
            files.append(WorkFile(f"{stem}-binary.csv", b"\x00\x01\x02PK\x03\x04", Outcome.QUARANTINED, kind))
        elif kind == "hostile_key":
            name = [" lead space.csv", "trail space.csv ", "plus+and%25.csv", "ünïcödé ✓.csv", "a&b=c?d.csv"][
                (index // len(only)) % 5
            ]
            rel = f"{stem}-{name}"
            # "x.csv " (a trailing space) is not a CSV by the extension rule: rejected, as documented.
            csv_like = classify_key(rel, 1) is not FileKind.OTHER
            files.append(
                WorkFile(rel, _csv(5, index), Outcome.PROCESSED if csv_like else Outcome.REJECTED, kind)
            )
        else:
            raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    return files
