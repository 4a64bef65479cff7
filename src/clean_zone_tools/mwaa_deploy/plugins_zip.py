"""Build plugins.zip reproducibly, and check a built one before it ships.

MWAA unzips plugins.zip into its plugins folder keeping the top-level folders, and
an environment only picks up a new plugins.zip through an environment update (20
minutes or more). So an unchanged ``plugins/`` must give byte-identical output:
entries are sorted, every timestamp is the zip epoch, permissions are fixed, and
nothing from the machine (owner, umask, mtime) leaks in.

Besides the bytes, :func:`build` returns a content digest over entry names and
contents. That is what deployments compare: it does not change if another zlib
version compresses the same files differently.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import project

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_FILE_MODE = 0o100644  # regular file, rw-r--r--
_COMPRESS_LEVEL = 9


@dataclass(frozen=True)
class PluginsArchive:
    data: bytes
    digest: str  # sha256 over (name, content) of every entry
    entries: tuple[str, ...]


def content_digest(entries: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, content in sorted(entries):
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def build(plugins_dir: Path) -> PluginsArchive | None:
    """The plugins.zip for ``plugins_dir``, or None when it holds nothing to ship."""
    files = project.collect(plugins_dir)
    if not files:
        return None
    entries = [(relpath, files[relpath].read()) for relpath in sorted(files)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.external_attr = _FILE_MODE << 16
            info.create_system = 3  # Unix, so the mode above is honoured on extraction
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL)
    return PluginsArchive(
        data=buffer.getvalue(), digest=content_digest(entries), entries=tuple(n for n, _ in entries)
    )


def validate(data: bytes, plugins_dir: Path | None = None) -> list[str]:
    """Problems that would make MWAA reject or mis-load this plugins.zip (empty: fine).

    Checks: it is a readable zip with intact entries, names are relative and stay
    inside the plugins folder, every ``.py`` compiles, and (given ``plugins_dir``)
    its top-level entries are exactly that folder's, i.e. nothing got nested under
    an extra ``plugins/`` level that MWAA would keep.
    """
    problems: list[str] = []
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        return [f"plugins.zip is not a zip file: {error}"]
    with archive:
        broken = archive.testzip()
        if broken is not None:
            problems.append(f"plugins.zip: entry {broken} is corrupt")
        top_level: set[str] = set()
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
                problems.append(
                    f"plugins.zip: entry {info.filename!r} would be extracted outside the plugins folder"
                )
                continue
            top_level.add(name.parts[0])
            if info.filename.endswith(".py") and not info.is_dir():
                source = archive.read(info)
                try:
                    compile(source, f"plugins.zip/{info.filename}", "exec", dont_inherit=True)
                except SyntaxError as error:
                    problems.append(f"plugins.zip: {info.filename} line {error.lineno}: {error.msg}")
                except ValueError as error:  # e.g. null bytes
                    problems.append(f"plugins.zip: {info.filename}: {error}")
        if plugins_dir is not None:
            expected = {PurePosixPath(relpath).parts[0] for relpath in project.collect(plugins_dir)}
            if top_level != expected:
                problems.append(
                    "plugins.zip: top-level entries "
                    f"{sorted(top_level)} do not match the plugins folder's {sorted(expected)}"
                )
    return problems
