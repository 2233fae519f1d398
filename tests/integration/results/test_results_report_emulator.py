"""The results export's HTML report (``html_report=True``) against the emulator over 127.0.0.1.

Both files or neither: the report lands beside the data file, after it, and names the failed scenario
runs; a failure in the middle of the export leaves no file at all.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_runloop.operators.results as results_module
from airflow_provider_runloop.exceptions import RunloopServerError
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.testing import RunloopEmulator

TaskInstanceStub = Any  # defined in conftest.py
REPORT_LINK_KEY = "_link_RunloopResultsReportLink"
EVIL_NAME = "<script>alert(1)</script>-fix"

# 40 scenarios: a named failure (its name is markup), a retried one whose retry succeeds, a timeout.
SCRIPT: dict[str, Any] = {
    "seed": 11,
    "scenario_count": 40,
    "scoring_functions": ["tests_pass", {"name": "lint_clean", "weight": 0.25}],
    "outcomes": {"completed": 1.0},
    "timing": {"start_interval": 0.1, "duration": [1, 5], "scoring": 1, "complete": 1},
    "scenarios": [
        {"name": EVIL_NAME, "outcome": "failed"},
        {"name": "flaky-fix", "attempts": ["failed", "completed"]},
        {"name": "slow-one", "outcome": "timeout"},
    ],
}


def _files(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


@pytest.fixture
def two_runs(emulator_connection: RunloopEmulator) -> tuple[RunloopEmulator, str, str]:
    """A finished run and a finished baseline run of the same benchmark."""
    emulator = emulator_connection
    benchmark = emulator.seed_benchmark(SCRIPT)
    baseline = emulator.start_scripted_run(benchmark.benchmark_id)
    run = emulator.start_scripted_run(benchmark.benchmark_id)
    emulator.advance(3600)
    assert emulator.benchmark_run_state(run) == emulator.benchmark_run_state(baseline) == "completed"
    return emulator, run, baseline


def test_the_report_is_written_beside_the_data_and_names_the_failures(
    two_runs: tuple[RunloopEmulator, str, str], task_instance: TaskInstanceStub, tmp_path: Path
) -> None:
    _, run_id, baseline_id = two_runs
    target = tmp_path / "out" / f"{run_id}.jsonl"
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=run_id,
        destination=f"file://{target}",
        html_report=True,
        baseline_benchmark_run_id=baseline_id,
        page_size=7,
    )
    result = operator.execute({"ti": task_instance})  # type: ignore[arg-type]

    report = target.with_suffix(".html")
    assert _files(tmp_path) == [f"out/{run_id}.html", f"out/{run_id}.jsonl"]  # both, nothing staged
    assert result["report"] == f"file://{report}"
    assert task_instance.xcom[REPORT_LINK_KEY] == f"file://{report}"
    assert len(target.read_text().splitlines()) == result["record_count"] == 41  # one retried
    page = report.read_text()
    summary = result["summary"]
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;-fix" in page
    assert "slow-one" in page
    assert "flaky-fix" not in page  # its retry succeeded: not a failure
    assert "1 retried attempt (an earlier run of a scenario that ran again) is not counted" in page
    assert summary["failed_scenario_count"] == 2
    for run in summary["failed_scenario_run_ids"]:
        assert f"<code>{run}</code>" in page
    assert f'Runloop run score</div><div class="value">{summary["benchmark_score"]:.3f}' in page
    # The baseline's column holds its own means (one listing of it), the change beside it.
    assert f"<code>{baseline_id}</code>" in page
    for name, score in summary["scoring_function_mean_scores"].items():
        assert f'<th scope="row">{name}</th><td class="num">{score:.3f}</td><td class="num">' in page
    assert json.dumps(result)  # the XCom value stays JSON


def test_a_fault_in_the_middle_leaves_neither_file(
    two_runs: tuple[RunloopEmulator, str, str], task_instance: TaskInstanceStub, tmp_path: Path
) -> None:
    emulator, run_id, _ = two_runs
    target = tmp_path / "results.csv"
    fault = emulator.add_fault(
        "status",
        path="/v1/benchmark_runs/*/scenario_runs",
        skip=1,  # the first page goes through
        times=1,
        status=503,
        should_retry=False,
    )
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=run_id,
        destination=f"file://{target}",
        format="csv",
        html_report=True,
        page_size=10,
    )
    with pytest.raises(RunloopServerError, match="503"):
        operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    assert fault.fired == 1
    assert _files(tmp_path) == []
    assert REPORT_LINK_KEY not in task_instance.xcom


def test_a_report_that_cannot_be_rendered_leaves_neither_file(
    two_runs: tuple[RunloopEmulator, str, str],
    task_instance: TaskInstanceStub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, run_id, _ = two_runs
    (tmp_path / "results.jsonl").write_text("yesterday's export\n")
    (tmp_path / "results.html").write_text("yesterday's report\n")

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("cannot render")

    monkeypatch.setattr(results_module, "render", broken)
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=run_id,
        destination=f"file://{tmp_path / 'results.jsonl'}",
        html_report=True,
    )
    with pytest.raises(RuntimeError, match="cannot render"):
        operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    # Yesterday's pair stands, untouched, and nothing staged is left beside it.
    assert _files(tmp_path) == ["results.html", "results.jsonl"]
    assert (tmp_path / "results.jsonl").read_text() == "yesterday's export\n"
    assert (tmp_path / "results.html").read_text() == "yesterday's report\n"


def test_to_s3_both_objects_and_the_console_link(
    two_runs: tuple[RunloopEmulator, str, str], s3_connection: Any, task_instance: TaskInstanceStub
) -> None:
    _, run_id, _ = two_runs
    bucket = f"reports-{uuid.uuid4().hex[:12]}"
    client = s3_connection.client()
    client.create_bucket(Bucket=bucket)
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=run_id,
        destination=f"s3://{bucket}/runs/{run_id}.parquet",
        storage_conn_id=s3_connection.conn_id,
        format="parquet",
        html_report=True,
    )
    result = operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"runs/{run_id}.html", f"runs/{run_id}.parquet"]  # no staged object left
    assert result["report"] == f"s3://{bucket}/runs/{run_id}.html"
    assert task_instance.xcom[REPORT_LINK_KEY] == (
        f"https://console.aws.amazon.com/s3/object/{bucket}?prefix=runs%2F{run_id}.html"
    )
    page = client.get_object(Bucket=bucket, Key=f"runs/{run_id}.html")["Body"].read().decode()
    assert "slow-one" in page
