"""A deliberately simple scanner for credentials in files about to be uploaded.

It looks for the three things that most often leak into a DAG bucket: AWS access
key ids, AWS secret access keys assigned in code or config, and PEM private keys.
Findings name the file, line and kind only: the matched text is never printed,
not even partly, because deploy output ends up in CI logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Access key ids (AKIA long-term, ASIA temporary, ...): a 4-letter prefix and 16 letters or digits.
_ACCESS_KEY_ID = re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])")
# A 40-character secret next to a name that says what it is (aws_secret_access_key,
# AWS_SECRET_ACCESS_KEY, secretAccessKey, "SecretAccessKey": ...).
_SECRET_ACCESS_KEY = re.compile(
    rb"(?i)secret_?access_?key['\"]?\s*[:=]\s*['\"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")

# AWS documentation's placeholder credentials end in EXAMPLE / EXAMPLEKEY; they are
# not secrets and appear in comments and docs.
_PLACEHOLDER_MARK = b"EXAMPLE"


@dataclass(frozen=True)
class Finding:
    """One suspected secret: where it is and what kind, never its value."""

    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def scan_bytes(name: str, data: bytes) -> list[Finding]:
    """Findings in one file's content, in the order they appear."""
    findings: list[Finding] = []
    for match in _ACCESS_KEY_ID.finditer(data):
        if _PLACEHOLDER_MARK not in match.group(0):
            findings.append(Finding(name, _line_of(data, match.start()), "AWS access key id"))
    for match in _SECRET_ACCESS_KEY.finditer(data):
        if _PLACEHOLDER_MARK not in match.group(1):
            findings.append(Finding(name, _line_of(data, match.start()), "AWS secret access key"))
    for match in _PRIVATE_KEY.finditer(data):
        findings.append(Finding(name, _line_of(data, match.start()), "private key (PEM)"))
    return sorted(findings, key=lambda f: f.line)


def scan(files: Iterable[tuple[str, bytes]]) -> list[Finding]:
    """Findings across ``(display name, content)`` pairs."""
    findings: list[Finding] = []
    for name, data in files:
        findings.extend(scan_bytes(name, data))
    return findings
