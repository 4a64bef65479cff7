"""plugins.zip: byte-for-byte reproducible, and checked before it ships."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from clean_zone_tools.mwaa_deploy import plugins_zip


def make_plugins(root: Path) -> Path:
    plugins = root / "plugins"
    (plugins / "my_plugin" / "hooks").mkdir(parents=True)
    (plugins / "my_plugin" / "__init__.py").write_text("from my_plugin.hooks.h import Hook\n")
    (plugins / "my_plugin" / "hooks" / "h.py").write_text("class Hook:\n    pass\n")
    (plugins / "standalone.py").write_text("X = 1\n")
    return plugins


def test_same_content_gives_the_same_bytes_whatever_the_timestamps_and_creation_order(tmp_path: Path) -> None:
    first = make_plugins(tmp_path / "a")
    # The same files created in the opposite order, with other times and permissions.
    second = tmp_path / "b" / "plugins"
    (second / "my_plugin" / "hooks").mkdir(parents=True)
    for relative in ("standalone.py", "my_plugin/hooks/h.py", "my_plugin/__init__.py"):
        (second / relative).write_bytes((first / relative).read_bytes())
        os.utime(second / relative, (1_900_000_000, 1_900_000_000))
        (second / relative).chmod(0o600)

    one, two = plugins_zip.build(first), plugins_zip.build(second)

    assert one is not None and two is not None
    assert one.data == two.data
    assert one.digest == two.digest
    assert one.entries == ("my_plugin/__init__.py", "my_plugin/hooks/h.py", "standalone.py")


def test_a_changed_file_changes_the_bytes_and_the_digest(tmp_path: Path) -> None:
    plugins = make_plugins(tmp_path)
    before = plugins_zip.build(plugins)
    (plugins / "standalone.py").write_text("X = 2\n")

    after = plugins_zip.build(plugins)

    assert before is not None and after is not None
    assert before.data != after.data and before.digest != after.digest


def test_caches_are_left_out_and_top_level_folders_kept(tmp_path: Path) -> None:
    plugins = make_plugins(tmp_path)
    (plugins / "my_plugin" / "__pycache__").mkdir()
    (plugins / "my_plugin" / "__pycache__" / "h.cpython-312.pyc").write_bytes(b"\x00")
    (plugins / "stray.pyc").write_bytes(b"\x00")

    archive = plugins_zip.build(plugins)

    assert archive is not None
    names = zipfile.ZipFile(io.BytesIO(archive.data)).namelist()
    assert names == ["my_plugin/__init__.py", "my_plugin/hooks/h.py", "standalone.py"]
    assert plugins_zip.validate(archive.data, plugins) == []


def test_an_empty_plugins_folder_gives_no_archive(tmp_path: Path) -> None:
    (tmp_path / "plugins" / "__pycache__").mkdir(parents=True)
    assert plugins_zip.build(tmp_path / "plugins") is None
    assert plugins_zip.build(tmp_path / "missing") is None


def test_validate_reports_what_mwaa_would_trip_over(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("plugins/my_plugin/__init__.py", "def broken(:\n")
        archive.writestr("../outside.py", "X = 1\n")
    plugins = make_plugins(tmp_path)

    problems = plugins_zip.validate(buffer.getvalue(), plugins)

    assert any("plugins/my_plugin/__init__.py line 1" in p for p in problems)
    assert any("'../outside.py' would be extracted outside" in p for p in problems)
    assert any("top-level entries ['plugins'] do not match the plugins folder's" in p for p in problems)
    assert plugins_zip.validate(b"not a zip") == ["plugins.zip is not a zip file: File is not a zip file"]
