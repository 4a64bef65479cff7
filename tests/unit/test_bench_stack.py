"""The pure parts of the benchmarks on the real stack: percentiles, the rows and tables they print,
their targets and their arguments. The figures themselves are measured by running them (see
docs/throughput.md), never asserted here: machines differ."""

from __future__ import annotations

import argparse
import math

import pytest

from clean_zone_tools.benchmarks import bench_stack_burst as burst
from clean_zone_tools.benchmarks import bench_trigger_latency as latency
from clean_zone_tools.benchmarks import stack_bench as sb
from clean_zone_tools.faults.census import LOST, MISPLACED, WAITING, Census


def test_percentiles_interpolate_between_ranks() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert sb.percentile(values, 0) == 1.0
    assert sb.percentile(values, 50) == 3.0
    assert sb.percentile(values, 100) == 5.0
    assert sb.percentile([1.0, 2.0], 50) == 1.5
    assert sb.percentile(values, 95) == pytest.approx(4.8)
    assert sb.percentile([7.0], 95) == 7.0
    assert math.isnan(sb.percentile([], 50))
    with pytest.raises(ValueError, match="0-100"):
        sb.percentile(values, 101)


def test_spread_of_eight_latencies() -> None:
    # Sorted: 1.1 1.2 1.9 2.0 2.2 2.4 3.3 9.0; p95 sits at rank 6.65, between 3.3 and 9.0.
    figures = sb.spread([1.2, 1.9, 2.4, 2.0, 1.1, 3.3, 2.2, 9.0])
    assert (figures["p50"], figures["max"]) == (2.1, 9.0)
    assert figures["p95"] == pytest.approx(3.3 + 0.65 * 5.7, abs=0.01)
    empty = sb.spread([])
    assert math.isnan(empty["p50"]) and math.isnan(empty["max"])


def test_rest_api_times_and_first_start() -> None:
    assert sb.epoch("1970-01-01T00:01:00Z") == 60.0
    assert sb.epoch("1970-01-01T00:01:00.500000+00:00") == 60.5
    assert sb.epoch(None) is None
    instances = [
        {"task_id": "check", "start_date": "1970-01-01T00:00:12Z"},
        {"task_id": "claim_file", "start_date": "1970-01-01T00:00:10Z"},
        {"task_id": "done", "start_date": None},
    ]
    assert sb.first_start(instances) == 10.0
    assert sb.first_start([{"start_date": None}]) is None


def test_stack_settings_from_key_value_arguments() -> None:
    args = latency.parser().parse_args(["--set", "A=1", "--set", "B=x=y", "--set", "C="])
    assert dict(args.set) == {"A": "1", "B": "x=y", "C": ""}
    for bad in ("no-equals", "=value"):
        with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
            sb.stack_setting(bad)


def test_table_aligns_columns() -> None:
    lines = sb.table([{"route": "events", "p50": 1.5}, {"route": "sensor", "p50": 12.25}]).splitlines()
    assert lines[0].split() == ["route", "p50"]
    assert lines[2].split() == ["sensor", "12.25"]
    column = lines[0].index("p50")
    assert [line[column:].split()[0] for line in lines[1:]] == ["1.5", "12.25"]
    assert sb.table([]) == "(no rows)"


def _timing(first: float | None, done: float | None) -> sb.FileTiming:
    return sb.FileTiming("landing/x.csv", 0.0, None if first is None else first / 2, first, done)


def test_latency_row_and_its_targets() -> None:
    timings = [_timing(1.0, 4.0), _timing(2.0, 5.0), _timing(2.5, 6.0), _timing(None, None)]
    row = latency.summarise("events", timings, running=[0, 0, 0], deferred=[0, 0, 0])
    assert row["files"] == 3  # a file whose run was not seen is not a latency
    assert (row["first task p50 s"], row["max s"], row["done p50 s"]) == (2.0, 2.5, 5.0)
    assert row["run queued p50 s"] == 1.0
    assert row["target"] == "met"
    slow = latency.summarise("events", [_timing(7.0, 9.0)], running=[1, 0], deferred=[0, 0])
    assert slow["target"] == "MISSED p50 < 3 s, p95 < 6 s, 0 slots"
    # The sensor route has no target; its sensor waits deferred (in the triggerer), holding no slot.
    sensor = latency.summarise("sensor", [_timing(8.0, 12.0)], running=[0, 0], deferred=[1, 1])
    assert (sensor["target"], sensor["deferred waiting (mean)"]) == ("-", 1.0)
    assert list(row) == latency.COLUMNS


def _census(files: int, lost: int = 0, misplaced: int = 0, waiting: int = 0) -> Census:
    taken = Census(files_in=files)
    taken.places["processed"] = files - lost - misplaced - waiting
    taken.places[LOST], taken.places[MISPLACED], taken.places[WAITING] = lost, misplaced, waiting
    return taken


def test_burst_figures_and_targets() -> None:
    tis = {"clean_zone_s3_events": 20, "clean_zone_file_burst": 120, "clean_zone_file_pipeline": 16}
    result = burst.figures(1000, 4.2, 150.0, 154.0, _census(1000), tis, {"clean_zone_file_burst": 10})
    assert result["files per minute"] == 400.0
    assert result["task instances per file"] == 0.156
    assert all(result["targets"].values())
    text = burst.report(result)
    lines = {line.rsplit(maxsplit=1)[0].strip(): line.split()[-1] for line in text.splitlines()}
    assert lines["task instances, clean_zone_file_burst"] == "120"
    assert lines["runs, clean_zone_file_burst"] == "10"
    assert "target: none lost" in text and "MISSED" not in text


def test_burst_figures_when_files_are_late_lost_or_twice() -> None:
    late = burst.figures(100, 1.0, None, 60.0, _census(100, lost=1, misplaced=2, waiting=3), {"d": 100}, {})
    # Past the timeout the rate is of the files that did end (lost and twice count: they left landing/).
    assert (late["drop to last terminal s"], late["files per minute"]) == (None, 97.0)
    assert (late["lost"], late["handled twice"], late["still waiting"]) == (1, 2, 3)
    assert not any(late["targets"].values())
    assert burst.report(late).count("MISSED") == 4


def test_sensor_route_waits_only_for_the_file_runs() -> None:
    assert burst.file_dags("events") == (
        "clean_zone_s3_events",
        "clean_zone_file_burst",
        "clean_zone_file_pipeline",
    )
    assert burst.file_dags("sensor")[0] == "clean_zone_landing_watcher"


@pytest.mark.parametrize("module", [latency, burst])
@pytest.mark.parametrize("argv", [["--files", "0"], ["--set", "novalue"], ["--route", "cron"]])
def test_usage_errors_exit_2_before_any_stack_starts(module: object, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        module.main(argv)  # type: ignore[attr-defined]
    assert exited.value.code == 2


def test_defaults_are_the_issues_runs() -> None:
    latency_args = latency.parser().parse_args([])
    assert (latency_args.files, latency_args.route) == (8, None)  # None: both routes
    assert latency.ROUTES == ("events", "sensor")
    burst_args = burst.parser().parse_args([])
    assert (burst_args.files, burst_args.route) == (1000, "events")
