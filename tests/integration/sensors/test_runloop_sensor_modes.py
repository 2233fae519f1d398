"""The sensor in poke, reschedule and deferrable mode, under dag.test(), against the same script."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.dag_files import load_dag_file

from airflow_provider_runloop.testing import RealClock, RunloopEmulator

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "runloop_sensor_modes.py"
MODES = ("poke", "reschedule", "deferrable")
# 8 scenarios, finishing within a few real seconds at speed 20.
OK_SCRIPT = {"scenario_count": 8, "seed": 5, "timing": {"start_interval": 0.5, "duration": [2, 6]}}
FAILING_SCRIPT = {**OK_SCRIPT, "scenarios": [{"attempts": ["failed"]}, {}, {"attempts": ["timeout"]}]}
# The retry gap: the first scenario fails early and is retried 60 emulated seconds later (3 s of wall
# time), long after the other seven are over; in between, the listing looks finished and failed.
RETRY_SCRIPT = {
    **OK_SCRIPT,
    "scenarios": [{"attempts": ["failed", "completed"], "duration": 2}],
    "timing": {**OK_SCRIPT["timing"], "retry_delay": 60},
}
# Fields that legitimately differ between runs of the same script (ids, wording), and the run's own state
# and score: a success can be seen just before the run completes itself or just after.
_PER_RUN = {
    "benchmark_run_id",
    "message",
    "failed_scenario_run_ids",
    "benchmark_score",
    "benchmark_run_state",
    "benchmark_run_start_time_ms",
    "benchmark_run_duration_ms",
    "failed_scenario_run_names",  # keyed by run id
}


def _load_dag() -> Any:
    return load_dag_file(DAG_FILE).dag


def _run(
    factory: Callable[..., RunloopEmulator],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    script: dict[str, Any],
    *,
    auto_complete: bool = True,
) -> tuple[Any, dict[str, Any], dict[str, str], RunloopEmulator, str]:
    emulator = factory(clock=RealClock(speed=20))
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", emulator.airflow_conn_json)
    benchmark = emulator.seed_benchmark(script)
    run_ids = {
        mode: emulator.start_scripted_run(benchmark.benchmark_id, seed=11, auto_complete=auto_complete)
        for mode in MODES
    }
    out = tmp_path / "xcoms.json"
    dag_run = _load_dag().test(run_conf={"run_ids": run_ids, "out": str(out)})
    return dag_run, json.loads(out.read_text()), run_ids, emulator, benchmark.benchmark_id


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.usefixtures("airflow_db")
def test_same_outcome_in_every_mode(
    runloop_emulator_factory: Callable[..., RunloopEmulator], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dag_run, xcoms, run_ids, emulator, benchmark_id = _run(
        runloop_emulator_factory, monkeypatch, tmp_path, OK_SCRIPT
    )
    states = _states(dag_run)
    assert all(states[f"wait_{mode}"] == "success" for mode in MODES), states
    summaries = [{k: v for k, v in xcoms[mode].items() if k not in _PER_RUN} for mode in MODES]
    assert summaries[0] == summaries[1] == summaries[2]
    counts = summaries[0]["state_counts"]
    assert counts["completed"] == 8
    assert sum(counts.values()) == 8
    for mode in MODES:
        assert xcoms[mode]["benchmark_run_id"] == run_ids[mode]
        # The extra link: the emulator's origin, the benchmark and the run.
        assert (
            xcoms["links"][mode]
            == f"{emulator.base_url}/benchmarks/custom/{benchmark_id}/runs/{run_ids[mode]}"
        )
    # The sensors only read.
    assert {r.method for r in emulator.requests()} == {"GET"}


@pytest.mark.usefixtures("airflow_db")
def test_failing_scenarios_fail_every_mode(
    runloop_emulator_factory: Callable[..., RunloopEmulator], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dag_run, xcoms, _, _, _ = _run(runloop_emulator_factory, monkeypatch, tmp_path, FAILING_SCRIPT)
    states = _states(dag_run)
    assert all(states[f"wait_{mode}"] == "failed" for mode in MODES), states
    assert all(xcoms[mode] is None for mode in MODES)


@pytest.mark.usefixtures("airflow_db")
def test_a_retried_scenario_never_fails_the_wait_in_any_mode(
    runloop_emulator_factory: Callable[..., RunloopEmulator], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The default settle window: the failure seen in the gap holds until the retry starts.
    dag_run, xcoms, run_ids, emulator, _ = _run(runloop_emulator_factory, monkeypatch, tmp_path, RETRY_SCRIPT)
    states = _states(dag_run)
    assert all(states[f"wait_{mode}"] == "success" for mode in MODES), states
    for mode in MODES:
        summary = xcoms[mode]
        assert summary["state_counts"]["completed"] == 8, summary
        assert summary["failed_scenario_count"] == 0
        assert summary["total_scenario_runs"] == 9  # the failed attempt and its retry
        # A later look at the same run agrees.
        assert emulator.benchmark_run_state(run_ids[mode]) == "completed"
        assert sorted(emulator.scenario_run_states(run_ids[mode]).values()).count("completed") == 8


@pytest.mark.usefixtures("airflow_db")
def test_a_failure_in_a_run_nobody_closes_ends_within_the_settle_window(
    runloop_emulator_factory: Callable[..., RunloopEmulator],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # An interactive-style run that stays open, with failures nobody retries: the wait fails once the
    # failure has held for the window (1 s here), not at the 120 s time-out.
    monkeypatch.setenv("RUNLOOP_TEST_FAILURE_SETTLE_SECONDS", "1")
    dag_run, xcoms, run_ids, emulator, _ = _run(
        runloop_emulator_factory, monkeypatch, tmp_path, FAILING_SCRIPT, auto_complete=False
    )
    states = _states(dag_run)
    assert all(states[f"wait_{mode}"] == "failed" for mode in MODES), states
    assert all(emulator.benchmark_run_state(run_id) == "running" for run_id in run_ids.values())
    assert all(xcoms[mode] is None for mode in MODES)
    captured = capfd.readouterr()
    text = captured.out + captured.err  # the tasks' log lines
    assert "Scenarios failed while the benchmark run is still open" in text  # it held first
    assert text.count("2 scenarios did not complete") >= len(MODES), text[-3000:]
    assert "not done within the sensor's timeout" not in text
    assert "was not done by the deadline" not in text
