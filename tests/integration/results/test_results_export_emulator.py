"""RunloopBenchmarkResultsOperator against the emulator over 127.0.0.1, writing to file://.

10,000 scenario runs per export, read back in every format and compared field by field with what the
emulator serves; retries, failures in the middle, unfinished runs, environment columns, the API key.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_runloop.exceptions import (
    RunloopNotFoundError,
    RunloopResultsNotReadyError,
    RunloopServerError,
)
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.results import JsonLinesWriter
from airflow_provider_runloop.testing import RunloopEmulator

# Fixture types (defined in conftest.py, which test modules do not import).
FinishedRun = Any
TaskInstanceStub = Any

FORMATS = ("jsonl", "json", "csv", "parquet")
LINK_KEY = "_link_RunloopBenchmarkRunLink"
FAILURE_STATES = {"failed", "timeout", "canceled"}
ALL_STATES = ("running", "scoring", "scored", "completed", "failed", "timeout", "canceled")


def _files(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


def _latest_per_scenario(raw_runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for run in raw_runs:
        held = latest.get(run["scenario_id"])
        if held is None or run["start_time_ms"] > held["start_time_ms"]:
            latest[run["scenario_id"]] = run
    return latest


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_scenario_run_is_exported_field_by_field(
    finished_run: FinishedRun,
    check_export: Callable[[str, bytes, FinishedRun], None],
    task_instance: TaskInstanceStub,
    tmp_path: Path,
    fmt: str,
) -> None:
    target = tmp_path / "exports" / f"{finished_run.benchmark_run_id}.{fmt}"
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=finished_run.benchmark_run_id,
        destination=f"file://{target}",
        format=fmt,
    )
    result = operator.execute({"ti": task_instance})  # type: ignore[arg-type]

    check_export(fmt, target.read_bytes(), finished_run)
    assert _files(tmp_path) == [f"exports/{target.name}"]  # nothing beside it

    # The XCom value stays small whatever the run's size, and names the file.
    assert len(json.dumps(result)) < 8_000
    assert result["destination"] == f"file://{target}"
    assert result["format"] == fmt
    assert result["record_count"] == 10_000
    summary = result["summary"]
    latest = _latest_per_scenario(finished_run.raw_runs)
    failed = sorted(run["id"] for run in latest.values() if run["state"] in FAILURE_STATES)
    assert summary["done"] is True
    assert summary["total_scenario_runs"] == 10_000
    assert summary["started_scenarios"] == len(latest) == 9_999  # one scenario retried
    assert summary["missing_scenario_count"] == 1  # one failed during setup: it never got a run
    assert summary["state_counts"] == {
        state: count
        for state, count in {
            **dict.fromkeys(ALL_STATES, 0),
            **Counter(run["state"] for run in latest.values()),
        }.items()
    }
    assert summary["failed_scenario_count"] == len(failed) > 0
    assert summary["failed_scenario_run_ids"] == failed[:50]
    scores = [
        run["scoring_contract_result"]["score"] for run in latest.values() if "scoring_contract_result" in run
    ]
    assert summary["mean_score"] == pytest.approx(sum(scores) / len(scores))
    assert set(summary["scoring_function_mean_scores"]) == {"tests_pass", "lint_clean"}
    # The dashboard link (the emulator's host has no "api." to replace).
    assert task_instance.xcom[LINK_KEY].endswith(f"/runs/{finished_run.benchmark_run_id}")


def test_a_retry_writes_the_same_object(
    finished_run: FinishedRun, task_instance: TaskInstanceStub, tmp_path: Path
) -> None:
    target = tmp_path / "results.jsonl"

    def export() -> dict[str, Any]:
        operator = RunloopBenchmarkResultsOperator(
            task_id="export", benchmark_run_id=finished_run.benchmark_run_id, destination=f"file://{target}"
        )
        result: dict[str, Any] = operator.execute({"ti": task_instance})  # type: ignore[arg-type]
        return result

    first = export()
    content = target.read_bytes()
    second = export()
    assert target.read_bytes() == content
    assert first == second
    assert _files(tmp_path) == ["results.jsonl"]


def test_a_fault_on_the_second_page_leaves_nothing_and_returns_nothing(
    finished_run: FinishedRun, task_instance: TaskInstanceStub, tmp_path: Path
) -> None:
    target = tmp_path / "results.csv"
    target.write_text("yesterday's complete export\n")
    fault = finished_run.emulator.add_fault(
        "status",
        path="/v1/benchmark_runs/*/scenario_runs",
        skip=1,  # the first page goes through
        times=1,
        status=503,
        should_retry=False,
    )
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=finished_run.benchmark_run_id,
        destination=f"file://{target}",
        format="csv",
        page_size=1000,
    )
    with pytest.raises(RunloopServerError, match="503"):
        operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    assert fault.fired == 1
    assert target.read_text() == "yesterday's complete export\n"  # untouched
    assert _files(tmp_path) == ["results.csv"]  # and no partial or temporary file
    assert set(task_instance.xcom) == {LINK_KEY}  # only the dashboard link; no return value


def test_a_writer_failure_in_the_middle_leaves_nothing(
    finished_run: FinishedRun,
    task_instance: TaskInstanceStub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = JsonLinesWriter.write

    def write_until_the_disk_is_full(self: JsonLinesWriter, record: Any) -> None:
        if self.records_written == 6_000:
            raise OSError(28, "No space left on device")
        original(self, record)

    monkeypatch.setattr(JsonLinesWriter, "write", write_until_the_disk_is_full)
    target = tmp_path / "results.jsonl"
    operator = RunloopBenchmarkResultsOperator(
        task_id="export", benchmark_run_id=finished_run.benchmark_run_id, destination=f"file://{target}"
    )
    with pytest.raises(OSError, match="No space left on device"):
        operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    assert _files(tmp_path) == []


def test_an_unfinished_run_is_refused_before_anything_is_written(
    emulator_connection: RunloopEmulator, task_instance: TaskInstanceStub, tmp_path: Path
) -> None:
    emulator = emulator_connection
    script = {"scenario_count": 30, "timing": {"start_interval": 0, "duration": [10, 100]}}
    run_id = emulator.start_scripted_run(script=script)
    emulator.advance(50)
    active = sorted(
        scenario_run_id
        for scenario_run_id, state in emulator.scenario_run_states(run_id).items()
        if state in ("running", "scoring")
    )
    assert active  # some are still going
    operator = RunloopBenchmarkResultsOperator(
        task_id="export", benchmark_run_id=run_id, destination=f"file://{tmp_path}/results.jsonl"
    )
    with pytest.raises(RunloopResultsNotReadyError) as caught:
        operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    message = str(caught.value)
    assert f"{len(active)} scenario runs are still active" in message
    assert all(scenario_run_id in message for scenario_run_id in active)
    assert _files(tmp_path) == []

    # Once the runs are over, the same task exports.
    emulator.advance(3600)
    result = operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    assert result["record_count"] == 30
    assert result["summary"]["done"] is True


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_environment_columns_come_from_the_scenario_runs(
    emulator_connection: RunloopEmulator,
    task_instance: TaskInstanceStub,
    tmp_path: Path,
    fmt: str,
    read_export: Callable[[str, bytes], list[dict[str, Any]]],
    list_raw_runs: Callable[[RunloopEmulator, str], list[dict[str, Any]]],
    expected_records: Callable[..., list[dict[str, Any]]],
) -> None:
    # An interactive run: the client starts each scenario run with its own run profile.
    emulator = emulator_connection
    benchmark = emulator.seed_benchmark({"scenario_count": 3})
    with httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as http:
        run = http.post("/v1/benchmarks/start_run", json={"benchmark_id": benchmark.benchmark_id}).json()
        for index, scenario_id in enumerate(benchmark.scenario_ids):
            profile = {"envVars": {"MODEL": f"m-{index}"}, "secrets": {"API_TOKEN": "vault-token"}}
            body = {"scenario_id": scenario_id, "benchmark_run_id": run["id"], "runProfile": profile}
            started = http.post("/v1/scenarios/start_run", json=body).json()
            http.post(f"/v1/scenarios/runs/{started['id']}/score").raise_for_status()
        emulator.advance(60)
        for scenario_run_id in emulator.scenario_run_states(run["id"]):
            http.post(f"/v1/scenarios/runs/{scenario_run_id}/complete").raise_for_status()
        http.post(f"/v1/benchmark_runs/{run['id']}/complete").raise_for_status()

    target = tmp_path / f"results.{fmt}"
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=run["id"],
        destination=f"file://{target}",
        format=fmt,
        include_environment=True,
        include_scorer_output=False,
    )
    operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    records = read_export(fmt, target.read_bytes())
    raw = list_raw_runs(emulator, run["id"])
    assert records == expected_records(raw, output=False, environment=True)
    assert {record["environment_variables"]["MODEL"] for record in records} == {"m-0", "m-1", "m-2"}
    assert all(record["secrets_provided"] == {"API_TOKEN": "vault-token"} for record in records)


SECRET_KEY = "rl-SECRET-do-not-log-8f3a2c"


@pytest.mark.runloop_emulator(api_key=SECRET_KEY)
def test_the_api_key_never_reaches_logs_xcom_errors_or_files(
    emulator_connection: RunloopEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    new_task_instance: Callable[[], TaskInstanceStub],
) -> None:
    emulator = emulator_connection
    caplog.set_level(logging.DEBUG)
    run_id = emulator.start_scripted_run(script={"scenario_count": 20, "timing": {"start_interval": 0}})
    emulator.advance(3600)
    seen: list[str] = []

    ok = new_task_instance()
    for fmt in ("jsonl", "csv"):
        operator = RunloopBenchmarkResultsOperator(
            task_id="export",
            benchmark_run_id=run_id,
            destination=f"file://{tmp_path}/results.{fmt}",
            format=fmt,
            include_environment=True,
        )
        seen.append(json.dumps(operator.execute({"ti": ok})))  # type: ignore[arg-type]
        seen.append((tmp_path / f"results.{fmt}").read_text())
    seen.append(json.dumps(ok.xcom))
    seen.append(repr(operator) + repr(operator.hook) + repr(operator.hook.get_conn()))

    # Failures: an unknown run, a server error that is retried, and results too big for XCom.
    emulator.add_fault("status", path="/v1/benchmark_runs/*/scenario_runs", times=1, status=500)
    failing = [
        (RunloopBenchmarkResultsOperator(task_id="a", benchmark_run_id="bmr_nope"), RunloopNotFoundError),
        (
            RunloopBenchmarkResultsOperator(task_id="b", benchmark_run_id=run_id, max_xcom_records_bytes=10),
            AirflowFailException,
        ),
    ]
    for operator, error in failing:
        with pytest.raises(error) as caught:
            operator.execute({"ti": new_task_instance()})  # type: ignore[arg-type]
        seen.extend([str(caught.value), repr(caught.value), str(caught.value.__cause__)])

    captured = capsys.readouterr()
    seen.extend([caplog.text, captured.out, captured.err])
    assert caplog.records  # the export did log (at every level up to DEBUG)
    assert any("retry" in record.getMessage() for record in caplog.records)  # the 500 was retried and logged
    for text in seen:
        assert SECRET_KEY not in text
