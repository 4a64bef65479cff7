"""The manifest format: good manifests parse, every bad one is refused with its own reason code,
and the published JSON Schema agrees with the parser."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from clean_zone import manifest
from clean_zone.manifest import FileEntry, ManifestError, Reason, key_problem, parse

BODY = b"id,name\n1,alpha\n"
SHA = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY, usedforsecurity=False).hexdigest()


def doc(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "manifest_version": 1,
        "batch_id": "acme-2026-09-14",
        "files": [
            {
                "key": "orders/part-1.csv",
                "size": len(BODY),
                "checksum": {"algorithm": "SHA256", "value": SHA},
                "rows": 1,
            },
            {"key": "customers.csv", "size": len(BODY), "checksum": {"algorithm": "MD5", "value": MD5}},
        ],
    }
    document.update(overrides)
    return document


def files(*entries: dict[str, Any]) -> dict[str, Any]:
    return doc(files=list(entries))


def item(key: str = "a.csv", **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": key, "size": 1, "checksum": {"algorithm": "SHA256", "value": SHA}}
    entry.update(overrides)
    return entry


def refuse(document: Any, *, manifest_key: str = "manifests/acme.json") -> ManifestError:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    with pytest.raises(ManifestError) as caught:
        parse(data, manifest_key=manifest_key)
    return caught.value


def schema_accepts(document: Any) -> bool:
    return Draft202012Validator(manifest.schema()).is_valid(document)


# --- good manifests ----------------------------------------------------------------------------------


def test_a_good_manifest_becomes_entries_with_hex_checksums_and_optional_rows():
    parsed = parse(json.dumps(doc()).encode(), manifest_key="manifests/acme.json")
    assert parsed.batch_id == "acme-2026-09-14"
    assert parsed.files == (
        FileEntry("orders/part-1.csv", len(BODY), "SHA256", SHA, 1),
        FileEntry("customers.csv", len(BODY), "MD5", MD5, None),
    )
    assert parsed.total_bytes == 2 * len(BODY)
    assert parsed.batch_prefix("batches/") == "batches/acme-2026-09-14/"


def test_checksums_as_s3_reports_them_base64_are_accepted():
    b64 = base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    parsed = parse(json.dumps(files(item(checksum={"algorithm": "SHA256", "value": b64}))).encode())
    assert parsed.files[0].checksum == SHA


def test_a_thousand_files_are_accepted_and_partner_extension_fields_are_kept():
    document = files(*[item(f"part-{i:04}.csv") for i in range(manifest.MAX_FILES)])
    document["x-partner-run"] = "nightly-42"
    parsed = parse(json.dumps(document).encode())
    assert len(parsed.files) == manifest.MAX_FILES
    assert parsed.extensions == {"x-partner-run": "nightly-42"}


def test_build_writes_what_parse_reads_back():
    entries = [FileEntry("a.csv", 3, "SHA256", SHA, 2), FileEntry("b/c.csv.gz", 0, "MD5", MD5)]
    built = manifest.build("b-1", entries, created_at="2026-09-14T06:00:00+00:00", producer="test")
    assert schema_accepts(built)
    assert parse(manifest.dumps(built)).files == tuple(entries)


def test_build_refuses_what_parse_would_refuse():
    with pytest.raises(ManifestError) as caught:
        manifest.build("../escape", [FileEntry("a.csv", 1, "SHA256", SHA)])
    assert caught.value.reason == "invalid_batch_id"


# --- every bad manifest has its own reason -----------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"id,name\n1,x\n", "not_json"),
        (b"", "not_json"),
        (b"\xff\xfe\x00garbage", "not_json"),
        (b'{"manifest_version": 1, "files": [', "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (doc(manifest_version=2), "unsupported_version"),
        (doc(manifest_version="1"), "unsupported_version"),
        (doc(manifest_version=True), "unsupported_version"),
        ({k: v for k, v in doc().items() if k != "manifest_version"}, "unsupported_version"),
        (doc(files=[]), "empty_file_list"),
        (doc(files=[item("a.csv"), item("b.csv"), item("a.csv")]), "duplicate_entries"),
        (files(item("../other/a.csv")), "key_escapes_batch_prefix"),
        (files(item("orders/../../x.csv")), "key_escapes_batch_prefix"),
        (files(item("%2e%2e/x.csv")), "key_escapes_batch_prefix"),
        (files(item("..\\x.csv")), "key_escapes_batch_prefix"),
        (files(item("/etc/passwd")), "key_escapes_batch_prefix"),
        (files(item("C:\\data\\a.csv")), "key_escapes_batch_prefix"),
        (files(item("s3://other-bucket/a.csv")), "key_escapes_batch_prefix"),
        (files(item("https://example.com/a.csv")), "key_escapes_batch_prefix"),
        (files(item("arn:aws:s3:::other-bucket/a.csv")), "key_escapes_batch_prefix"),
        (files(item("a//b.csv")), "invalid_key"),
        (files(item("./a.csv")), "invalid_key"),
        (files(item("folder/")), "invalid_key"),
        (files(item("a\nb.csv")), "invalid_key"),
        (files(item("")), "invalid_key"),
        (files(item(checksum={"algorithm": "CRC32", "value": "AAAAAA=="})), "unknown_checksum_algorithm"),
        (files(item(checksum={"algorithm": "sha256", "value": SHA})), "unknown_checksum_algorithm"),
        (files(item(checksum={"algorithm": "SHA256", "value": MD5})), "invalid_checksum_value"),
        (files(item(checksum={"algorithm": "MD5", "value": "not-hex"})), "invalid_checksum_value"),
        (files(item("acme.json")), "lists_itself"),
        (doc(batch_id="../etc"), "invalid_batch_id"),
        (doc(batch_id=""), "invalid_batch_id"),
        (doc(batch_id="a/b"), "invalid_batch_id"),
        (files(item(size=-1)), "schema_violation"),
        (files(item(size="12")), "schema_violation"),
        (files({"key": "a.csv", "size": 1}), "schema_violation"),
        (doc(checksums=[]), "schema_violation"),
        (files(item(rows=1.5)), "schema_violation"),
        (b'{"manifest_version": 1, "batch_id": "a", "batch_id": "b", "files": []}', "schema_violation"),
    ],
)
def test_each_bad_manifest_is_refused_with_its_reason(document: Any, reason: str):
    error = refuse(document)
    assert error.reason == reason
    assert error.failure_class == "data_quality"
    assert str(error).startswith(f"bad manifest: {reason}")


def test_ten_thousand_entries_are_refused_as_too_many_without_examining_each():
    document = files(*[item(f"part-{i:05}.csv") for i in range(10_000)])
    document["files"][5]["key"] = "../escape.csv"  # not even looked at: the count alone refuses it
    error = refuse(document)
    assert error.reason == "too_many_files"
    assert error.reasons == ["too_many_files"]
    assert "10000 files; at most 1000" in str(error)
    assert not schema_accepts(document)  # the schema says the same


def test_an_oversized_manifest_is_refused_before_it_is_decoded():
    error = refuse(b" " * (manifest.MAX_MANIFEST_BYTES + 1))
    assert error.reason == "manifest_too_large"


def test_every_problem_is_listed_with_where_it_is_and_the_worst_is_the_reason():
    document = doc(
        files=[
            item("ok.csv"),
            item("../up.csv"),
            item("ok.csv"),
            item("x.csv", checksum={"algorithm": "SHA1", "value": "00"}),
        ]
    )
    error = refuse(document)
    assert error.reason == "unknown_checksum_algorithm"
    assert error.reasons == ["unknown_checksum_algorithm", "key_escapes_batch_prefix", "duplicate_entries"]
    where = {(p.reason.value, p.where) for p in error.problems}
    assert ("key_escapes_batch_prefix", "files[1].key") in where
    assert ("duplicate_entries", "files[2].key") in where
    assert ("unknown_checksum_algorithm", "files[3].checksum.algorithm") in where
    assert "and 2 more problems" in str(error)
    assert error.to_dict()["problems"][0]["message"]


def test_a_key_too_long_for_s3_once_prefixed_is_refused():
    # 768 characters fit the schema; in UTF-8, with the batch prefix, they are over S3's 1024 bytes.
    error = refuse(files(item("é" * 768)))
    assert error.reason == "invalid_key"
    assert "1024-byte" in str(error)


# --- the published schema and the parser agree ------------------------------------------------------

KEYS = [
    "a.csv",
    "orders/2026/09/part-0001.csv",
    "with space.csv",
    "ünïcödé/δ.csv",
    "a..b.csv",
    ".hidden.csv",
    "...csv",
    "a:b/c.csv",
    "../a.csv",
    "a/../b.csv",
    "..",
    ".",
    "/a.csv",
    "a//b",
    "a/",
    "./a",
    "a/.",
    "%2e%2e/a",
    "%2E./a",
    "s3://b/k",
    "S3://b/k",
    "arn:aws:s3:::b/k",
    "C:/x.csv",
    "c:\\x",
    "a\\b.csv",
    "tab\there",
    "del\x7f.csv",
]


def test_the_schema_is_valid_json_schema_2020_12():
    Draft202012Validator.check_schema(manifest.schema())
    assert manifest.schema()["properties"]["files"]["maxItems"] == manifest.MAX_FILES


@pytest.mark.parametrize("key", KEYS)
def test_schema_and_parser_agree_on_every_key(key: str):
    assert schema_accepts(files(item(key))) == (key_problem(key) is None)


def test_schema_and_parser_agree_on_the_version_and_algorithms():
    sha1 = files(item(checksum={"algorithm": "SHA1", "value": "0"}))
    for document in (doc(), doc(manifest_version=2), sha1):
        try:
            parse(json.dumps(document).encode())
            parsed = True
        except ManifestError:
            parsed = False
        assert schema_accepts(document) == parsed


def test_reason_codes_are_stable():
    # Reports, alerts and partner tooling key on these strings: renaming one is a breaking change.
    assert [r.value for r in Reason] == [
        "manifest_too_large",
        "not_json",
        "not_an_object",
        "unsupported_version",
        "too_many_files",
        "empty_file_list",
        "invalid_batch_id",
        "unknown_checksum_algorithm",
        "invalid_checksum_value",
        "key_escapes_batch_prefix",
        "invalid_key",
        "lists_itself",
        "duplicate_entries",
        "schema_violation",
    ]


# --- the partner documentation stays true -----------------------------------------------------------

DOCS = Path(__file__).resolve().parents[3] / "docs" / "manifests.md"


def test_the_documented_example_manifest_is_accepted():
    text = DOCS.read_text(encoding="utf-8")
    example = next(
        block for block in re.findall(r"```json\n(.*?)```", text, re.S) if "manifest_version" in block
    )
    parsed = parse(example.encode(), manifest_key="manifests/acme-2026-09-14.json")
    assert parsed.batch_id == "acme-2026-09-14"
    assert [f.algorithm for f in parsed.files] == ["SHA256", "MD5"]


def test_the_documentation_explains_every_reason_code():
    text = DOCS.read_text(encoding="utf-8")
    assert [r.value for r in Reason if f"| `{r.value}` |" not in text] == []


# --- the partner CLI (clean-zone-manifest) ----------------------------------------------------------


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "outgoing"
    (folder / "orders").mkdir(parents=True)
    (folder / "orders" / "part-1.csv").write_bytes(BODY)
    (folder / "customers.csv").write_bytes(b"id\n1\n2\n")
    (folder / ".DS_Store").write_bytes(b"finder junk")
    return folder


def test_cli_builds_a_manifest_the_pipeline_accepts_and_leaves_itself_out(tmp_path, capsys):
    from clean_zone_tools.partner import manifest_builder as build_manifest

    folder = _folder(tmp_path)
    output = folder / "acme.json"  # inside the folder: it must not list itself
    assert build_manifest.main([str(folder), "--batch-id", "acme", "--rows", "-o", str(output)]) == 0
    parsed = parse(output.read_bytes(), manifest_key="manifests/acme.json")
    assert [(f.key, f.size, f.checksum, f.rows) for f in parsed.files] == [
        ("customers.csv", 7, hashlib.sha256(b"id\n1\n2\n").hexdigest(), 2),
        ("orders/part-1.csv", len(BODY), SHA, 1),
    ]
    assert "[2/2] orders/part-1.csv" in capsys.readouterr().err
    assert build_manifest.main(["--check", str(output)]) == 0
    # A second run does not overwrite without --force.
    assert build_manifest.main([str(folder), "--batch-id", "acme", "-o", str(output)]) == 1


def test_cli_md5_to_stdout(tmp_path, capsys):
    from clean_zone_tools.partner import manifest_builder as build_manifest

    assert build_manifest.main([str(_folder(tmp_path)), "--batch-id", "b", "--algorithm", "MD5", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert {f["checksum"]["algorithm"] for f in json.loads(captured.out)["files"]} == {"MD5"}


@pytest.mark.parametrize(
    ("make", "args", "code", "says"),
    [
        (_folder, ["--batch-id", "../up"], 1, "invalid_batch_id"),
        (lambda p: p, ["--batch-id", "b"], 1, "has no files"),
        (_folder, [], 2, "--batch-id are required"),
        (None, ["--batch-id", "b"], 2, "not a folder"),
    ],
)
def test_cli_refusals_and_usage_errors_have_their_exit_codes(tmp_path, capsys, make, args, code, says):
    from clean_zone_tools.partner import manifest_builder as build_manifest

    folder = make(tmp_path) if make else tmp_path / "absent"
    try:
        result = build_manifest.main([str(folder), *args])
    except SystemExit as usage:  # argparse's way out, with exit code 2
        result = usage.code
    assert result == code
    assert says in capsys.readouterr().err


def test_cli_refuses_more_files_than_a_batch_may_list(tmp_path, capsys, monkeypatch):
    from clean_zone_tools.partner import manifest_builder as build_manifest

    monkeypatch.setattr(manifest, "MAX_FILES", 1)
    assert build_manifest.main([str(_folder(tmp_path)), "--batch-id", "b", "-q"]) == 1
    assert "split the delivery" in capsys.readouterr().err.lower()


def test_cli_check_lists_every_problem(tmp_path, capsys):
    from clean_zone_tools.partner import manifest_builder as build_manifest

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(files(item("../x.csv"), item("bad.json"))))
    assert build_manifest.main(["--check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "key_escapes_batch_prefix" in err
    assert "lists_itself" in err


def test_the_partner_cli_runs_as_a_module_with_help():
    result = subprocess.run(
        [sys.executable, "-m", "clean_zone_tools.partner.manifest_builder", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: clean-zone-manifest")
    assert "--check MANIFEST" in result.stdout
