"""Reading pip requirement and constraint files: the project's one parser of them.

The deploy tool checks the requirements.txt MWAA installs (:mod:`.mwaa_deploy.requirements`), and the
compose checks compare the pins of the requirement and constraint files across the Docker and
no-Docker paths (:mod:`.checks.compose`); both read the files through :func:`parse`, so a line means the
same thing to each. Comments follow pip: a line starting with ``#``, or `` #`` after the content (URLs
may contain ``#``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

_OPTION_PREFIXES = ("-", "--")
CONSTRAINT_OPTIONS = frozenset({"-c", "--constraint"})


@dataclass
class RequirementsFile:
    """The parts of a requirements file the checks need; line numbers count from 1."""

    constraint_urls: list[tuple[int, str]] = field(default_factory=list)  # (line number, URL or path)
    requirements: list[tuple[int, Requirement]] = field(default_factory=list)
    unparsable: list[tuple[int, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def pins(self) -> dict[str, str]:
        """``{canonical name: version}`` of the ``name==version`` requirements (extras, markers dropped)."""
        pins: dict[str, str] = {}
        for _, requirement in self.requirements:
            exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            if len(exact) == 1:
                pins[canonicalize_name(requirement.name)] = exact[0]
        return pins


def strip_comment(line: str) -> str:
    """The line without its comment, stripped; empty for a comment line."""
    if line.lstrip().startswith("#"):
        return ""
    return re.split(r"\s+#", line, maxsplit=1)[0].strip()


def _option(line: str) -> tuple[str, str]:
    """``(option, value)`` of an option line: ``-c URL``, ``--constraint=URL``, ``--no-deps``."""
    words = shlex.split(line)
    option, value = words[0], words[1] if len(words) > 1 else ""
    if "=" in option:
        option, value = option.split("=", 1)
    return option, value


def parse(text: str) -> RequirementsFile:
    parsed = RequirementsFile(lines=text.splitlines())
    for number, raw in enumerate(parsed.lines, start=1):
        line = strip_comment(raw)
        if not line:
            continue
        if line.startswith(_OPTION_PREFIXES):
            option, value = _option(line)
            if option in CONSTRAINT_OPTIONS:
                parsed.constraint_urls.append((number, value))
            continue
        try:
            parsed.requirements.append((number, Requirement(line)))
        except InvalidRequirement:
            parsed.unparsable.append((number, line))
    return parsed


def pins(text: str) -> dict[str, str]:
    """``{canonical name: version}`` of the ``name==version`` lines of a requirements or constraints text."""
    return parse(text).pins()
