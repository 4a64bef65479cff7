"""The stack commands as a user runs them (``scripts/dev drop|inbox|status|provision|start|stop``).

The commands run as subprocesses, exactly as ``scripts/dev`` runs them, against this worker's
moto server. Every test gets its own bucket, topic and queues (settings from the environment), so
nothing is shared. Commands that manage the stack itself work on a throw-away checkout
(``--root``), so they never touch a developer's running stack.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from clean_zone.config import load_for_parsing
from clean_zone_tools.devstack.processes import process_command, wait_until
from clean_zone_tools.devstack.provision import provision
from clean_zone_tools.envfile import read_env_file

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
ACCOUNT = "123456789012"
# moto accepts any credentials; these are its documented placeholders, not secrets.
PLACEHOLDER_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# --------------------------------------------------------------------------- commands vs moto
class Names:
    """One test's own bucket, topic and queues, as Airflow Variables in the environment."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.bucket = f"lst-{tag}"
        self.topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:lst-failures-{tag}"
        self.alerts_queue = f"lst-alerts-{tag}"
        self.events_queue = f"lst-events-{tag}"

    def environment(self, endpoint: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_VAR_")}
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AIRFLOW_VAR_CLEAN_ZONE_BUCKET": self.bucket,
                "AIRFLOW_VAR_CLEAN_ZONE_FAILURE_TOPIC_ARN": self.topic_arn,
                "AIRFLOW_VAR_CLEAN_ZONE_ALERTS_QUEUE_NAME": self.alerts_queue,
                "AIRFLOW_VAR_CLEAN_ZONE_EVENTS_QUEUE_NAME": self.events_queue,
            }
        )
        return env


class Cli:
    """Runs ``python -m clean_zone_tools.devstack <command>`` as ``scripts/dev`` does."""

    def __init__(self, env: dict[str, str], root: Path | None = None) -> None:
        self.env = env
        self.root = ["--root", str(root)] if root else []

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clean_zone_tools.devstack", *self.root, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def names() -> Names:
    return Names()


@pytest.fixture
def cli(aws_env: str, names: Names) -> Cli:
    """The CLI, with this test's resources provisioned (in-process: faster than the subcommand)."""
    env = names.environment(aws_env)
    provision(load_for_parsing(env), session=boto3.Session(region_name=REGION), quiet=True)
    return Cli(env)


def test_provision_subcommand_creates_the_resources_idempotently(moto_endpoint: str, names: Names) -> None:
    run = Cli(names.environment(moto_endpoint))

    first = run("provision")
    second = run("provision", "--json")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["bucket"] == names.bucket
    sns = _client("sns", moto_endpoint)
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=names.topic_arn)["Subscriptions"]
    assert [s["Endpoint"].rsplit(":", 1)[-1] for s in subscriptions] == [names.alerts_queue]


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **PLACEHOLDER_KEYS)


def _queue_depth(sqs: Any, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_drop_uploads_a_file_to_the_landing_prefix(
    cli: Cli, names: Names, moto_endpoint: str, tmp_path: Path
) -> None:
    source = tmp_path / "orders 2026.csv"
    source.write_text("id,amount\n1,10.50\n")

    result = cli("drop", str(source))

    assert result.returncode == 0, result.stderr
    assert f"s3://{names.bucket}/landing/orders 2026.csv" in result.stdout
    stored = _client("s3", moto_endpoint).get_object(Bucket=names.bucket, Key="landing/orders 2026.csv")
    assert stored["Body"].read() == source.read_bytes()
    assert stored["ContentType"] == "text/csv"


def test_drop_honours_prefix_and_key(cli: Cli, names: Names, moto_endpoint: str, tmp_path: Path) -> None:
    manifest = tmp_path / "batch-1.json"
    manifest.write_text("{}")

    by_prefix = cli("drop", str(manifest), "--prefix", "manifests")
    by_key = cli("drop", str(manifest), "--key", "batches/b1/one.json")

    assert by_prefix.returncode == 0, by_prefix.stderr
    assert by_key.returncode == 0, by_key.stderr
    listing = _client("s3", moto_endpoint).list_objects_v2(Bucket=names.bucket)
    assert {item["Key"] for item in listing["Contents"]} == {"manifests/batch-1.json", "batches/b1/one.json"}


def test_drop_sample_uploads_a_generated_csv(cli: Cli, names: Names, moto_endpoint: str) -> None:
    result = cli("drop", "--sample")

    assert result.returncode == 0, result.stderr
    local = REPO / result.stdout.split("Wrote a sample CSV: ", 1)[1].splitlines()[0].strip()
    try:
        key = f"landing/{local.name}"
        assert f"s3://{names.bucket}/{key}" in result.stdout
        body = _client("s3", moto_endpoint).get_object(Bucket=names.bucket, Key=key)["Body"].read()
        assert body == local.read_bytes()
    finally:
        local.unlink(missing_ok=True)


def test_status_counts_objects_per_prefix(cli: Cli, tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("x\n1\n")
        assert cli("drop", str(tmp_path / name)).returncode == 0

    result = cli("status")

    assert "answering" in result.stdout
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "2 objects" in lines["landing/"]
    assert "0 objects" in lines["processed/"]
    assert "refused by SNS" not in result.stdout


def test_status_shows_alerts_sns_refused(cli: Cli, names: Names, moto_endpoint: str) -> None:
    document = {
        "subject": "[WARNING] x",
        "message": "m",
        "attributes": {},
        "due_at": "2026-12-01T00:00:00+00:00",
    }
    _client("s3", moto_endpoint).put_object(
        Bucket=names.bucket,
        Key="_state/alerts/undelivered/20261201T000000.000000Z-abc.json",
        Body=json.dumps(document).encode(),
    )

    result = cli("status")

    assert f"1 refused by SNS, kept in s3://{names.bucket}/_state/alerts/undelivered/" in result.stdout


def test_drop_refuses_a_missing_file_with_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("drop", str(tmp_path / "nope.csv"))

    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_drop_says_when_the_bucket_is_missing(moto_endpoint: str, names: Names, tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_text("a\n1\n")

    result = Cli(names.environment(moto_endpoint))("drop", str(source))  # never provisioned

    assert result.returncode == 1
    assert f"bucket {names.bucket} does not exist" in result.stderr
    assert "scripts/dev provision" in result.stderr


def test_drop_says_when_nothing_answers(names: Names, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    source = tmp_path / "x.csv"
    source.write_text("a\n1\n")

    result = Cli(names.environment(f"http://127.0.0.1:{closed_port}"))("drop", str(source))

    assert result.returncode == 1
    assert "is the local stack running?" in result.stderr


def test_inbox_prints_an_alert_then_leaves_the_queue_empty(
    cli: Cli, names: Names, moto_endpoint: str
) -> None:
    sns = _client("sns", moto_endpoint)
    sns.publish(
        TopicArn=names.topic_arn,
        Subject="[CRITICAL] endpoint failure: clean_zone_file_pipeline.process_csv",
        Message="Airflow task failed: clean_zone_file_pipeline.process_csv\n\nWhat to do: clear the task.",
        MessageAttributes={"severity": {"DataType": "String", "StringValue": "critical"}},
    )

    result = cli("inbox", "--wait", "5")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    subject_at = out.index("[CRITICAL] endpoint failure: clean_zone_file_pipeline.process_csv")
    assert out.index("Airflow task failed: clean_zone_file_pipeline.process_csv") > subject_at
    assert "severity=critical" in out
    sqs = _client("sqs", moto_endpoint)
    queue_url = sqs.get_queue_url(QueueName=names.alerts_queue)["QueueUrl"]
    assert _queue_depth(sqs, queue_url) == (0, 0)
    again = cli("inbox")
    assert again.returncode == 0
    assert "inbox empty" in again.stdout


def test_inbox_reads_every_alert_beyond_one_batch(cli: Cli, names: Names, moto_endpoint: str) -> None:
    sns = _client("sns", moto_endpoint)
    for number in range(13):
        sns.publish(TopicArn=names.topic_arn, Subject=f"alert number {number}", Message=f"body {number}")

    result = cli("inbox", "--json")

    assert result.returncode == 0, result.stderr
    alerts = json.loads(result.stdout)
    assert sorted(alert["subject"] for alert in alerts) == sorted(f"alert number {n}" for n in range(13))
    assert "13 alerts removed" in result.stderr


def test_inbox_keep_leaves_alerts_for_the_next_reader(cli: Cli, names: Names, moto_endpoint: str) -> None:
    sns = _client("sns", moto_endpoint)
    sns.publish(TopicArn=names.topic_arn, Subject="kept alert", Message="still here")

    kept = cli("inbox", "--keep", "--wait", "5")
    then = cli("inbox", "--json")

    assert "kept alert" in kept.stdout
    assert [alert["subject"] for alert in json.loads(then.stdout)] == ["kept alert"]


def test_inbox_shows_a_message_that_is_not_an_sns_envelope(
    cli: Cli, names: Names, moto_endpoint: str
) -> None:
    sqs = _client("sqs", moto_endpoint)
    queue_url = sqs.get_queue_url(QueueName=names.alerts_queue)["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="raw delivery text")

    result = cli("inbox")

    assert "(no subject)" in result.stdout
    assert "raw delivery text" in result.stdout


def test_inbox_says_when_the_queue_is_missing(moto_endpoint: str, names: Names) -> None:
    result = Cli(names.environment(moto_endpoint))("inbox")  # never provisioned

    assert result.returncode == 1
    assert f"no queue {names.alerts_queue}" in result.stderr


# --------------------------------------------------------------------------- stack lifecycle refusals
@pytest.fixture
def checkout(tmp_path: Path, names: Names) -> tuple[Path, Cli]:
    """A throw-away checkout (``--root``): a local.env on free ports, its own .state/."""
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    (tmp_path / "local.env").write_text(f"MOTO_PORT={ports[0]}\nAIRFLOW_UI_PORT={ports[1]}\n")
    env = names.environment("http://unused.invalid")
    for key in ("MOTO_PORT", "AIRFLOW_UI_PORT"):
        env.pop(key, None)
    return tmp_path, Cli(env, tmp_path)


def _fake_supervisor() -> subprocess.Popen[bytes]:
    """A process whose command line looks like a running stack and that exits on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "clean_zone_tools.devstack", "start"]
    )
    # Right after exec the kernel may still show an empty command line for a moment.
    assert wait_until(lambda: bool(process_command(process.pid)), timeout=5)
    return process


def test_start_refuses_while_a_stack_runs(checkout: tuple[Path, Cli]) -> None:
    root, run = checkout
    (root / ".state").mkdir()
    supervisor = _fake_supervisor()
    try:
        (root / ".state" / "stack.pid").write_text(f"{supervisor.pid}\n")

        result = run("start", timeout=30)

        assert result.returncode == 1
        assert f"already running (pid {supervisor.pid}): scripts/dev stop" in result.stderr
    finally:
        supervisor.kill()
        supervisor.wait()


def test_start_refuses_a_busy_port_and_cleans_up(checkout: tuple[Path, Cli]) -> None:
    root, run = checkout
    moto_port = int(read_env_file(root / "local.env")["MOTO_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", moto_port))
        squatter.listen()

        result = run("start", timeout=30)

    assert result.returncode == 1
    assert f"port {moto_port} (MOTO_PORT) is already in use" in result.stderr
    assert not (root / ".state" / "stack.pid").exists()


def test_stop_signals_the_running_stack_and_waits(checkout: tuple[Path, Cli]) -> None:
    root, run = checkout
    (root / ".state").mkdir()
    supervisor = _fake_supervisor()
    (root / ".state" / "stack.pid").write_text(f"{supervisor.pid}\n")

    result = run("stop", timeout=30)

    assert result.returncode == 0
    assert "Stopped (" in result.stdout
    assert supervisor.wait(timeout=5) == -signal.SIGTERM


def test_stop_without_a_stack_says_so(checkout: tuple[Path, Cli]) -> None:
    _, run = checkout

    result = run("stop")

    assert result.returncode == 0
    assert "not running" in result.stdout


def test_reset_without_a_terminal_needs_yes(checkout: tuple[Path, Cli]) -> None:
    root, run = checkout
    (root / ".state" / "endpoint").mkdir(parents=True)

    result = run("reset")

    assert result.returncode == 2
    assert "add --yes to confirm" in result.stderr
    assert (root / ".state" / "endpoint").is_dir()


def test_reset_of_a_stopped_stack_removes_both_halves(checkout: tuple[Path, Cli]) -> None:
    root, run = checkout
    endpoint, airflow = root / ".state" / "endpoint", root / ".state" / "airflow"
    endpoint.mkdir(parents=True)
    (endpoint / "snapshot.pickle").write_bytes(b"state")
    airflow.mkdir()
    (airflow / "airflow.db").write_bytes(b"runs")
    (airflow / "simple_auth_manager_passwords.json.generated").write_text("{}")

    result = run("reset", "--yes")

    assert result.returncode == 0, result.stderr
    assert "The stack is stopped" in result.stdout
    assert not endpoint.exists()
    assert not (airflow / "airflow.db").exists()
    assert (airflow / "simple_auth_manager_passwords.json.generated").exists(), "the login stays"
