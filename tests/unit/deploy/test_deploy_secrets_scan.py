"""The secrets scanner: finds AWS keys and private keys, says where, never repeats them."""

from __future__ import annotations

from clean_zone_tools.mwaa_deploy import secrets_scan

# Built at run time so that secret scanners reading this repository do not flag the test itself.
KEY_ID = "AKIA" + "ZQ3RT5WX7Y2B4D6F"
SECRET = "k" * 20 + "/+Zq" + "9" * 16
PEM = "-----BEGIN " + "OPENSSH PRIVATE KEY-----"


def test_finds_each_kind_with_its_line() -> None:
    text = f'import os\nKEY = "{KEY_ID}"\naws_secret_access_key = {SECRET}\n\n{PEM}\nb3Blbn\n'.encode()

    findings = secrets_scan.scan_bytes("dags/settings.py", text)

    assert [(f.line, f.kind) for f in findings] == [
        (2, "AWS access key id"),
        (3, "AWS secret access key"),
        (5, "private key (PEM)"),
    ]
    assert str(findings[0]) == "dags/settings.py:2: AWS access key id"


def test_findings_never_contain_the_secret() -> None:
    findings = secrets_scan.scan([("a.py", f"x = '{KEY_ID}'\nSecretAccessKey: \"{SECRET}\"\n".encode())])

    assert len(findings) == 2
    for finding in findings:
        assert KEY_ID not in str(finding) and SECRET not in str(finding)


def test_aws_documentation_placeholders_and_ordinary_code_are_not_findings() -> None:
    placeholder_id = "AKIA" + "IOSFODNN7EXAMPLE"
    placeholder_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
    text = (
        f"# e.g. {placeholder_id}\naws_secret_access_key = {placeholder_secret}\n"
        "BUCKET = 'clean-zone'\nrole = 'AROAEXAMPLEROLEID12345'\n"
        "digest = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'\n"
    ).encode()

    assert secrets_scan.scan_bytes("docs.py", text) == []


def test_a_key_id_inside_a_longer_token_is_not_a_finding() -> None:
    assert secrets_scan.scan_bytes("x", f"X{KEY_ID}".encode()) == []
    assert secrets_scan.scan_bytes("x", f"{KEY_ID}9".encode()) == []
