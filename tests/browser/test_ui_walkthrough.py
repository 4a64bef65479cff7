"""A new user's walk through the Airflow UI in a real browser (headless Chromium), against a stack
started by ``scripts/dev start``.

Log in with the generated password; see the four DAGs and no import errors; open the file
pipeline's docs and graph; upload a CSV and trigger the pipeline for it from the UI's trigger form,
and watch the run succeed; then drop a corrupt CSV into landing/, read the alert from the inbox
(``scripts/dev inbox``), follow its log link to the failed task and open the failed run.

Selectors come from Airflow 3.3's React UI as rendered (data-testid and aria-label attributes).
Regenerate the README's screenshots: ``scripts/dev test tests/browser -m browser --screenshots``.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.browser.conftest import UI_TIMEOUT_MS, LocalStack

pytestmark = pytest.mark.browser

PIPELINE = "clean_zone_file_pipeline"
# What a new user sees with the default settings (trigger route "events": no landing watcher).
DAG_IDS = (
    PIPELINE,
    "clean_zone_alert_redelivery",
    "clean_zone_file_burst",
    "clean_zone_manifest_batch",
    "clean_zone_s3_events",
)
TASK_IDS = (
    "claim_file", "check_file_extension", "route_by_extension", "validate_csv", "run_failure_generator",
    "write_processed_output", "reject_file", "done",
)
RUN_TIMEOUT = 300.0  # seconds for a run to finish; under 40 s on an idle machine


def _expect(locator: Any) -> Any:
    from playwright.sync_api import expect

    return expect(locator)


def _log_in(page: Any, stack: LocalStack) -> None:
    page.goto(stack.ui_url)
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", stack.user)
    page.fill("input[name=password]", stack.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url)
    _expect(page.get_by_role("heading", name="Welcome")).to_be_visible()


def _see_the_dags(page: Any, stack: LocalStack) -> None:
    # The API answers with the browser's session cookie: the login is real.
    errors = page.request.get(f"{stack.ui_url}/api/v2/importErrors", timeout=UI_TIMEOUT_MS).json()
    assert errors["total_entries"] == 0, errors["import_errors"]
    # The dashboard shows a "Dag Import Error(s)" button only when there are some.
    _expect(page.get_by_text(re.compile("Dag Import Error"))).to_have_count(0)
    page.goto(f"{stack.ui_url}/dags")
    for dag_id in DAG_IDS:
        # .first: clean_zone_s3_events is also the name of the asset that schedules it.
        _expect(page.get_by_role("link", name=dag_id, exact=True).first).to_be_visible()
    _expect(page.get_by_text(f"{len(DAG_IDS)} Dags", exact=True)).to_be_visible()


def _read_docs_and_graph(page: Any, stack: LocalStack, screenshots: Path) -> None:
    page.goto(f"{stack.ui_url}/dags/{PIPELINE}")
    page.get_by_test_id("markdown-button").click()
    docs = page.get_by_role("dialog")
    _expect(docs.get_by_text("Dag Documentation")).to_be_visible()
    _expect(docs.get_by_text("Clean-zone file pipeline")).to_be_visible()
    _expect(docs.get_by_text(re.compile(r"claims the object exactly once"))).to_be_visible()
    docs.get_by_role("button", name="Close").click()
    _expect(docs).to_have_count(0)

    page.get_by_role("button", name="Show Graph").click()
    graph = page.locator(".react-flow")
    for task_id in TASK_IDS:
        _expect(graph.get_by_text(task_id, exact=True)).to_be_visible()
    # The reference state machine's two paths out of the Choice state.
    _expect(graph.get_by_label("Edge from route_by_extension to validate_csv")).to_have_count(1)
    _expect(graph.get_by_label("Edge from route_by_extension to reject_file")).to_have_count(1)
    page.get_by_role("button", name="Collapse Details Panel").click()
    page.get_by_role("button", name="Fit View").click()
    page.wait_for_timeout(500)  # the fit animation
    page.screenshot(path=screenshots / "ui-graph.png")
    page.get_by_role("button", name="Show Details Panel").click()


def _wait_for_run_state(page: Any, timeout: float = RUN_TIMEOUT) -> str:
    """The run page's state badge once the run has finished (the page is reloaded while it runs)."""
    badge = page.get_by_test_id("header-card").get_by_test_id("state-badge").first
    deadline = time.monotonic() + timeout
    while True:
        _expect(badge).to_be_visible()
        state = badge.inner_text().strip()
        if state in {"Success", "Failed"} or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(3000)
        page.reload()


def _task_states(page: Any) -> dict[str, str]:
    """Task id -> state, from the run page's task instance table."""
    rows = page.get_by_test_id("table-list").locator("tbody tr")
    _expect(rows.first).to_be_visible()
    return {
        row.get_by_test_id("table-cell-task_display_name").inner_text().strip():
        row.get_by_test_id("table-cell-state").inner_text().strip()
        for row in rows.all()
    }


def _trigger_for_uploaded_file(page: Any, stack: LocalStack, tmp_path: Path, screenshots: Path) -> None:
    name = f"orders-{datetime.now(UTC):%Y%m%dT%H%M%S}.csv"
    source = tmp_path / name
    source.write_text("order_id,customer,amount\n1,Acme Ltd,9.50\n2,Globex,12.00\n", encoding="utf-8")
    # Outside landing/, so the watchers leave it alone and only the run triggered here takes it.
    key = f"manual/{name}"
    stack.dev("drop", str(source), "--key", key)

    page.goto(f"{stack.ui_url}/dags/{PIPELINE}")
    page.get_by_test_id("trigger-dag-button").click()
    dialog = page.get_by_role("dialog")
    _expect(dialog.get_by_text(f"Trigger Dag - {PIPELINE}")).to_be_visible()
    dialog.locator("#element_key").fill(key)
    dialog.get_by_test_id("trigger-dag-submit").click()
    page.wait_for_url(f"**/dags/{PIPELINE}/runs/manual__*")
    run_id = unquote(urlsplit(page.url).path.rsplit("/", 1)[-1])

    assert _wait_for_run_state(page) == "Success", f"run {run_id} did not succeed"
    states = _task_states(page)
    assert states["write_processed_output"] == "Success", states
    assert states["reject_file"] == "Skipped", states
    page.screenshot(path=screenshots / "ui-run-success.png")

    s3 = stack.s3()
    summary_object = s3.get_object(Bucket="clean-zone", Key=f"processed/{key}.summary.json")
    summary = json.loads(summary_object["Body"].read())
    assert summary["rows"] == 2 and summary["run_id"] == run_id
    assert s3.list_objects_v2(Bucket="clean-zone", Prefix=key)["KeyCount"] == 0  # moved, not copied


def _alert_for(stack: LocalStack, key: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """The alert about ``key`` from the inbox queue, as ``scripts/dev inbox`` prints it."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen += json.loads(stack.dev("inbox", "--json", "--wait", "20").stdout)
        for alert in seen:
            if f"s3://clean-zone/{key}" in alert["message"]:
                return alert
    pytest.fail(f"no alert about {key} within {timeout:.0f} s; inbox had: {seen}")


def _corrupt_file_fails_and_alerts(page: Any, stack: LocalStack, tmp_path: Path, screenshots: Path) -> None:
    name = f"orders-corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S}.csv"
    source = tmp_path / name
    source.write_text("order_id,amount\n1,9.50\n2,12.00,EUR,extra\n", encoding="utf-8")
    key = f"landing/{name}"
    stack.dev("drop", str(source))  # to landing/: the watchers start the run, no one clicks

    alert = _alert_for(stack, key)
    print(f"Alert received for {key}:\nSubject: {alert['subject']}\n\n{alert['message']}")
    assert alert["subject"] == f"[WARNING] data_quality failure: {PIPELINE}.validate_csv"
    assert alert["attributes"]["severity"] == "warning"
    message = alert["message"]
    assert f"Now at:        s3://clean-zone/quarantine/{name}" in message
    assert "ragged rows: record 3 (the header is record 1) has 4 columns, the header has 2" in message
    run_id = re.search(r"^Run: +(\S+)$", message, re.MULTILINE)[1]
    log_url = re.search(r"^Log: +(\S+)$", message, re.MULTILINE)[1]
    assert log_url.startswith(f"{stack.ui_url}/dags/{PIPELINE}/runs/")

    # A person follows the alert's link: the failed task and its log.
    page.goto(log_url)
    header = page.get_by_test_id("header-card")
    _expect(header.get_by_text("validate_csv", exact=True)).to_be_visible()
    _expect(header.get_by_test_id("state-badge").first).to_have_text("Failed")
    _expect(page.get_by_text(re.compile("DataQualityError: ragged rows")).first).to_be_visible()

    page.goto(f"{stack.ui_url}/dags/{PIPELINE}/runs/{run_id}")
    assert _wait_for_run_state(page) == "Failed"
    states = _task_states(page)
    assert states["validate_csv"] == "Failed", states
    assert states["write_processed_output"] == "Upstream Failed", states
    page.screenshot(path=screenshots / "ui-run-failed.png")

    reason = stack.s3().get_object(Bucket="clean-zone", Key=f"quarantine/{name}.reason.json")
    assert json.loads(reason["Body"].read())["reason"] == "ragged_rows"


def test_a_new_user_walks_the_file_pipeline_in_the_browser(
    local_stack: LocalStack, page: Any, screenshots: Path, tmp_path: Path
) -> None:
    _log_in(page, local_stack)
    _see_the_dags(page, local_stack)
    _read_docs_and_graph(page, local_stack, screenshots)
    _trigger_for_uploaded_file(page, local_stack, tmp_path, screenshots)
    _corrupt_file_fails_and_alerts(page, local_stack, tmp_path, screenshots)

    # The list again, now with the two runs' colours beside the pipeline.
    page.goto(f"{local_stack.ui_url}/dags")
    _expect(page.get_by_role("link", name=PIPELINE, exact=True).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=screenshots / "ui-dag-list.png")
