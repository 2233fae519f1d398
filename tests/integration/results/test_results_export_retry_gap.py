"""The results export in the retry gap, on the emulator over 127.0.0.1 (manual clock).

Between a scenario's failed run and its retry, the listing looks finished and failed while the benchmark
run is still ``running``. An export then must not write a file that misses the retry: it waits out the
settle window, looks again, and refuses if a run was added. Once the run is over, the file holds the
retry's run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_runloop.exceptions import RunloopResultsNotReadyError
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.testing import RunloopEmulator

# Fixture types (defined in conftest.py, which test modules do not import).
TaskInstanceStub = Any

RETRY_GAP = {
    "scenario_count": 4,
    "seed": 3,
    "scenarios": [{"attempts": ["failed", "completed"]}],
    "timing": {"start_interval": 0, "duration": [2, 3], "scoring": 1, "complete": 0.5, "retry_delay": 40},
}


def _into_the_gap(emulator: RunloopEmulator, *, auto_complete: bool = True) -> str:
    """Start a run and move the clock until every listed run is over while the run is still open."""
    run_id = emulator.start_scripted_run(script=RETRY_GAP, auto_complete=auto_complete)
    for _ in range(30):
        emulator.advance(1)
        states = list(emulator.scenario_run_states(run_id).values())
        if len(states) == 4 and "failed" in states and {"running", "scoring", "scored"}.isdisjoint(states):
            assert emulator.benchmark_run_state(run_id) == "running"
            return run_id
    raise AssertionError("the script never reached its retry gap")


def _export(run_id: str, target: Path, **options: Any) -> RunloopBenchmarkResultsOperator:
    return RunloopBenchmarkResultsOperator(
        task_id="export", benchmark_run_id=run_id, destination=f"file://{target}", **options
    )


def _records(target: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in target.read_text().splitlines()]


@pytest.mark.parametrize(
    "moved_on", [pytest.param(41, id="retry-running"), pytest.param(45, id="retry-done")]
)
def test_an_export_in_the_gap_waits_and_refuses_when_the_retry_starts(
    emulator_connection: RunloopEmulator,
    task_instance: TaskInstanceStub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moved_on: float,
) -> None:
    emulator = emulator_connection
    run_id = _into_the_gap(emulator)
    target = tmp_path / "out" / "results.jsonl"
    real_sleep = time.sleep

    def retry_starts_while_waiting(seconds: float) -> None:
        # The export waits out its window only after listing: the retry starts during that wait.
        emulator.advance(moved_on)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", retry_starts_while_waiting)
    with pytest.raises(RunloopResultsNotReadyError, match="a retry started") as info:
        _export(run_id, target, failure_settle_seconds=0.2).execute({"ti": task_instance})  # type: ignore[arg-type]
    assert "Nothing was written" in str(info.value)
    assert not target.exists()
    assert list(tmp_path.rglob("*")) in ([], [tmp_path / "out"])  # no staged file left behind


def test_after_the_wait_the_file_holds_the_retrys_run(
    emulator_connection: RunloopEmulator, task_instance: TaskInstanceStub, tmp_path: Path
) -> None:
    emulator = emulator_connection
    run_id = _into_the_gap(emulator)
    emulator.advance(120)
    assert emulator.benchmark_run_state(run_id) == "completed"
    target = tmp_path / "results.jsonl"
    result = _export(run_id, target).execute({"ti": task_instance})  # type: ignore[arg-type]
    served = emulator.scenario_run_states(run_id)
    records = {record["scenario_run_id"]: record for record in _records(target)}
    assert {run: record["state"] for run, record in records.items()} == served  # every run, once
    assert sorted(served.values()) == ["completed"] * 4 + ["failed"]
    assert result["summary"]["success"] is True
    assert result["summary"]["failed_scenario_count"] == 0


def test_a_failure_that_holds_is_exported_after_the_window(
    emulator_connection: RunloopEmulator, task_instance: TaskInstanceStub, tmp_path: Path
) -> None:
    # A run nobody closes and nobody retries (the clock stands still): the export waits the window,
    # finds nothing changed, and writes the failure.
    emulator = emulator_connection
    run_id = _into_the_gap(emulator, auto_complete=False)
    target = tmp_path / "results.jsonl"
    result = _export(run_id, target, failure_settle_seconds=0.5).execute({"ti": task_instance})  # type: ignore[arg-type]
    summary = result["summary"]
    assert summary["done"] is True
    assert summary["failed_scenario_count"] == 1
    assert len(_records(target)) == 4


def test_without_a_window_the_gap_exports_a_file_that_misses_the_retry(
    emulator_connection: RunloopEmulator, task_instance: TaskInstanceStub, tmp_path: Path
) -> None:
    # failure_settle_seconds=0 restores the old rule, and with it the bug this window prevents.
    emulator = emulator_connection
    run_id = _into_the_gap(emulator)
    target = tmp_path / "results.jsonl"
    result = _export(run_id, target, failure_settle_seconds=0).execute({"ti": task_instance})  # type: ignore[arg-type]
    assert result["summary"]["done"] is True
    assert result["summary"]["failed_scenario_count"] == 1
    emulator.advance(120)
    assert len(emulator.scenario_run_states(run_id)) == 5 > len(_records(target))
