"""The command lines the docs show, read out of README.md and docs/*.md, and how each one is checked.

Every line of a fenced ```bash / ```sh / ```shell / ```console block is a command (in ``console``
blocks only the ``$ `` lines; the rest is output). A trailing ``\\`` joins the next line, ``#`` starts
a comment, ``NAME=value`` words in front are the command's environment, and ``;``, ``&&``, ``||`` and
``|`` separate commands. Inline code spans that start with one of this project's programs are read too,
as references: they must name a program that exists (placeholders such as ``DAG_ID`` are allowed
there), and the DAG runs they trigger are checked like fenced ones.

:func:`capture_parser` is how a program's arguments are checked without running it: the program's own
``main`` is called, and stopped the moment it asks its argparse parser to parse; that parser, and the
argv the program would have given it, are returned. The caller then parses, so a documented command
line goes through exactly the parser (and the argv rewriting) the program uses, and nothing runs.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

from clean_zone_tools import REPO_ROOT

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console", "shell-session"})
CONTROL_OPERATORS = frozenset({";", "&&", "||", "|", "&"})
REDIRECTIONS = frozenset({">", ">>", "<", "2>"})  # only as separate words: `<name>` is prose
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w-]*)")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# Words a doc writes for "fill this in": DAG_ID, FILE, <command>, [--state failed], ...
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$|[<>\[\]]|\.\.\.")

# The project's shell entry points; they are checked by what they run (see :func:`resolve`).
SCRIPTS = (
    "scripts/dev",
    "scripts/deploy",
    "scripts/docker-env",
    "scripts/install-browser",
    "scripts/bootstrap.sh",
)
# scripts/dev handles these itself; every other command goes to ``python -m clean_zone_tools.devstack``.
DEV_SHELL_COMMANDS = ("setup", "test", "lint")
PYTHONS = frozenset({"python", "python3", "python3.12"})
# Inline spans of other programs worth reading: the Airflow command lines (and DAG runs) they show.
INLINE_OTHERS = frozenset({"airflow", "docker"})


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    """README.md and every docs/*.md: the documents whose commands must work."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


@dataclass(frozen=True)
class DocCommand:
    """One command line of a document, split into words as bash would (no expansion)."""

    doc: str  # path relative to the checkout
    line: int  # 1-based line of the document where the command starts
    text: str  # as written, continuations joined
    argv: tuple[str, ...]  # without the leading NAME=value words
    env: tuple[tuple[str, str], ...] = ()
    inline: bool = False

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def split_commands(text: str) -> list[tuple[tuple[str, ...], tuple[tuple[str, str], ...]]]:
    """``text`` (one logical line) as (argv, env) pairs, one per command between control operators."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)
    pieces: list[list[str]] = [[]]
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
        elif word in CONTROL_OPERATORS:
            pieces.append([])
        elif word in REDIRECTIONS:
            skip_next = True  # the redirection's target is no argument
        else:
            pieces[-1].append(word)
    commands = []
    for piece in pieces:
        env = []
        while piece and ENV_ASSIGNMENT.match(piece[0]):
            name, _, value = piece.pop(0).partition("=")
            env.append((name, value))
        if piece:
            commands.append((tuple(piece), tuple(env)))
    return commands


def _logical_lines(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Join ``\\``-continued lines; yield (first line number, joined text)."""
    start, parts = 0, []
    for number, raw in lines:
        if not parts:
            start = number
        stripped = raw.rstrip()
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        yield start, " ".join(part.strip() for part in parts)
        parts = []
    if parts:
        yield start, " ".join(part.strip() for part in parts)


def fenced_commands(path: Path, root: Path = REPO_ROOT) -> list[DocCommand]:
    """Every command of ``path``'s fenced shell blocks."""
    relative = str(path.relative_to(root))
    found: list[DocCommand] = []
    block: list[tuple[int, str]] | None = None
    language = fence = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        opened = FENCE.match(line)
        if block is None:
            if opened:
                fence, language, block = opened.group(1), opened.group(2).lower(), []
            continue
        if opened and opened.group(1).startswith(fence) and not opened.group(2):
            if language in SHELL_LANGUAGES:
                found += _block_commands(relative, block, console=language in {"console", "shell-session"})
            block = None
            continue
        block.append((number, line))
    return found


def _block_commands(doc: str, block: list[tuple[int, str]], *, console: bool) -> list[DocCommand]:
    if console:
        # Only the prompt lines (and what their continuations carry) are commands; the rest is output.
        kept, continuing = [], False
        for number, line in block:
            if line.startswith("$ "):
                kept.append((number, line[2:]))
            elif continuing:
                kept.append((number, line))
            continuing = bool(kept) and kept[-1][0] == number and line.rstrip().endswith("\\")
        block = kept
    commands = []
    for number, text in _logical_lines(block):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        for argv, env in split_commands(text):
            commands.append(DocCommand(doc, number, text.split(" #")[0].strip(), argv, env))
    return commands


def inline_commands(path: Path, root: Path = REPO_ROOT) -> list[DocCommand]:
    """Inline code spans outside fenced blocks that start with one of this project's programs."""
    relative = str(path.relative_to(root))
    found: list[DocCommand] = []
    in_block = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            in_block = not in_block
            continue
        if in_block:
            continue
        for span in INLINE_CODE.findall(line):
            try:
                commands = split_commands(span)
            except ValueError:  # an unbalanced quote: prose, not a command
                continue
            for argv, env in commands:
                if program_name(argv) is not None or argv[0] in INLINE_OTHERS:
                    found.append(DocCommand(relative, number, span, argv, env, inline=True))
    return found


def documented_commands(root: Path = REPO_ROOT) -> list[DocCommand]:
    """Every fenced command, then every inline reference, of every document."""
    files = doc_files(root)
    return [command for path in files for command in fenced_commands(path, root)] + [
        command for path in files for command in inline_commands(path, root)
    ]


def has_placeholder(command: DocCommand) -> bool:
    return any(PLACEHOLDER.search(word) for word in command.argv)


# --- this project's programs -------------------------------------------------------------------------


@cache
def console_scripts(root: Path = REPO_ROOT) -> dict[str, str]:
    """pyproject.toml's [project.scripts]: name -> "module:function" (read once per checkout)."""
    with (root / "pyproject.toml").open("rb") as handle:
        return dict(tomllib.load(handle)["project"]["scripts"])


def program_name(argv: Sequence[str]) -> str | None:
    """The project program ``argv`` runs ("scripts/dev", "python -m MODULE", a console script), or None.

    ``bash scripts/x``, ``source scripts/x``, ``./scripts/x`` and ``.venv/bin/NAME`` name the same program.
    """
    if not argv:
        return None
    words = list(argv)
    if words[0] in {"bash", "source", "."} and len(words) > 1:
        words = words[1:]
    first = words[0].removeprefix("./")
    if first in SCRIPTS:
        return first
    base = first.removeprefix(".venv/bin/")
    if base in console_scripts():
        return base
    if base in PYTHONS and len(words) > 2 and words[1] == "-m" and words[2].startswith("clean_zone_tools"):
        return f"python -m {words[2]}"
    return None


def program_args(argv: Sequence[str]) -> list[str]:
    """The arguments ``argv`` gives the program :func:`program_name` names."""
    words = list(argv)
    if words[0] in {"bash", "source", "."}:
        words = words[1:]
    base = words[0].removeprefix("./").removeprefix(".venv/bin/")
    return words[3:] if base in PYTHONS else words[1:]


def module_main(module: str) -> Callable[..., Any]:
    """The ``main`` that ``python -m module`` runs (a package's ``__main__`` must guard its call)."""
    imported = importlib.import_module(module)
    if hasattr(imported, "__path__"):
        imported = importlib.import_module(f"{module}.__main__")
    return imported.main


def entry_point(spec: str) -> Callable[..., Any]:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class Resolved:
    """How a documented invocation is checked: a Python main, or one of scripts/dev's shell commands."""

    program: str
    args: list[str]
    main: Callable[..., Any] | None = None
    # For scripts/deploy: usage rules the program applies after argparse (exit 2 when broken), and
    # the exception they raise.
    validate: Callable[[argparse.Namespace], None] | None = None
    usage_error: type[Exception] = Exception
    shell_command: str | None = None  # scripts/dev setup|test|lint, scripts/install-browser, ...


def resolve(program: str, args: Sequence[str]) -> Resolved:
    """Which code parses ``args`` when ``program`` is run with them."""
    args = list(args)
    if program == "scripts/dev":
        if args and args[0] in {*DEV_SHELL_COMMANDS, "-h", "--help", "help"}:
            return Resolved(program, args[1:], shell_command=args[0])
        return Resolved(program, args, main=module_main("clean_zone_tools.devstack"))
    if program == "scripts/deploy":
        from clean_zone_tools.mwaa_deploy import cli

        return Resolved(program, args, main=cli.main, validate=cli.validate_args, usage_error=cli.UsageError)
    if program == "scripts/docker-env":
        return Resolved(program, args, main=module_main("clean_zone_tools.devstack.docker_env"))
    if program in {"scripts/install-browser", "scripts/bootstrap.sh"}:
        return Resolved(program, args, shell_command=program)
    if program.startswith("python -m "):
        return Resolved(program, args, main=module_main(program.removeprefix("python -m ")))
    return Resolved(program, args, main=entry_point(console_scripts()[program]))


# --- parsing without running -------------------------------------------------------------------------


class _Captured(Exception):  # a control-flow signal, not an error
    def __init__(self, parser: argparse.ArgumentParser, args: list[str] | None) -> None:
        super().__init__()
        self.parser, self.args = parser, args


@dataclass
class Captured:
    """A program's top-level parser and the argv its ``main`` hands it."""

    parser: argparse.ArgumentParser
    args: list[str]
    subcommands: dict[str, argparse.ArgumentParser] = field(default_factory=dict)


def capture_parser(main: Callable[..., Any], argv: Sequence[str]) -> Captured:
    """Run ``main(argv)`` up to its first ``parse_args`` call and return that parser, unparsed."""

    def stop(self: argparse.ArgumentParser, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        raise _Captured(self, None if args is None else list(args))

    try:
        with mock.patch.object(argparse.ArgumentParser, "parse_args", stop):
            main(list(argv))
    except _Captured as captured:
        subcommands = {
            name: parser
            for action in captured.parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for name, parser in action.choices.items()
        }
        given = list(argv) if captured.args is None else captured.args
        return Captured(captured.parser, given, subcommands)
    raise RuntimeError(f"{main.__module__}.main returned without parsing its arguments")


def parse_documented(resolved: Resolved) -> argparse.Namespace:
    """Parse ``resolved.args`` with the program's own parser; SystemExit(2) when it refuses them."""
    assert resolved.main is not None
    captured = capture_parser(resolved.main, resolved.args)
    namespace = captured.parser.parse_args(captured.args)
    if resolved.validate is not None:
        try:
            resolved.validate(namespace)
        except resolved.usage_error as problem:  # the program prints its usage and exits 2 on these
            captured.parser.error(str(problem))
    return namespace


def reference_problems(resolved: Resolved) -> list[str]:
    """What is wrong with an inline reference such as `scripts/dev reset --yes` or `scripts/dev runs DAG_ID`.

    Prose names a command without all it needs (a target, a DAG id, a placeholder), so only the words
    it does give are checked: the subcommand exists, and every option is one that (sub)command has.
    """
    assert resolved.main is not None
    captured = capture_parser(resolved.main, resolved.args)
    parser, args = captured.parser, list(captured.args)
    if captured.subcommands and args and not args[0].startswith("-"):
        if PLACEHOLDER.search(args[0]):  # `scripts/dev COMMAND`: any of them
            return []
        if args[0] not in captured.subcommands:
            return [f"no subcommand {args[0]!r} (there are {sorted(captured.subcommands)})"]
        parser = captured.subcommands[args.pop(0)]
    known = {*parser._option_string_actions, *captured.parser._option_string_actions}
    return [
        f"no option {word.split('=')[0]} (there are {sorted(known)})"
        for word in args
        if word.startswith("-") and word.split("=")[0] not in known
    ]
