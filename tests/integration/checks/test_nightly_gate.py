"""The nightly gate example under ``dag.test()``, night after night, against the emulator (sped up).

Night 1 has no baseline and passes on its threshold; night 2 runs a worse agent (a regression planted in
the benchmark's script) and fails the gate, naming the metric and the scenario that passed the night
before; night 3 runs the first agent again and passes against night 1, the last night that passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from support.dag_files import load_dag_file

from airflow_provider_runloop.testing import RealClock, RunloopEmulator

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "example_dags" / "example_runloop_nightly_gate.py"

SCRIPT = {
    "scenario_count": 4,
    "seed": 3,
    "timing": {"start_interval": 0, "duration": 2, "scoring": 1, "complete": 1},
    "scores": [0.8, 1.0],
    # The planted regression: agent-v2 scores lower and fails the first scenario.
    "agents": {
        "agent-v2": {"scores": [0.3, 0.5], "scenarios": [{"name": "fix-the-parser", "outcome": "failed"}]}
    },
    "scenarios": [{"name": "fix-the-parser"}],
}


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _gate_xcom(dag_run: Any) -> Any:
    (gate,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == "gate"]
    return gate.xcom_pull(task_ids="gate", key="return_value")


@pytest.mark.usefixtures("airflow_db")
def test_the_gate_fails_on_a_planted_regression_and_passes_without_it(
    runloop_emulator_factory: Callable[..., RunloopEmulator],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emulator = runloop_emulator_factory(clock=RealClock(speed=50))
    benchmark = emulator.seed_benchmark(SCRIPT)
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", emulator.airflow_conn_json)
    monkeypatch.setenv("AIRFLOW_VAR_RUNLOOP_NIGHTLY_BENCHMARK_ID", benchmark.benchmark_id)
    monkeypatch.setenv("RUNLOOP_RESULTS_URL", f"file://{tmp_path}")
    monkeypatch.setenv("RUNLOOP_POLL_SECONDS", "0.2")
    dag = load_dag_file(EXAMPLE).dag

    def night(day: int, agent: str) -> Any:
        monkeypatch.setenv("AIRFLOW_VAR_RUNLOOP_NIGHTLY_AGENT", agent)
        return dag.test(logical_date=datetime(2026, 11, day, tzinfo=timezone.utc))

    first = night(1, "agent-v1")
    assert _states(first) == dict.fromkeys(("run_benchmark", "export_results", "gate"), "success")
    baseline = _gate_xcom(first)
    assert baseline["passed"] is True
    assert baseline["baseline_benchmark_run_id"] is None  # the first night: thresholds only
    first_run = baseline["benchmark_run_id"]
    assert (tmp_path / "nightly" / f"{first_run}.jsonl").exists()

    capfd.readouterr()
    second = night(2, "agent-v2")
    assert _states(second) == {"run_benchmark": "success", "export_results": "success", "gate": "failed"}
    log = "".join(capfd.readouterr())
    assert f"failed its checks against baseline {first_run}" in log
    assert "runloop_score" in log
    # The scenario that passed last night and fails now is named.
    assert "1 scenario passed in the baseline and fails now" in log
    assert "(fix-the-parser)" in log

    third = night(3, "agent-v1")
    assert _states(third) == dict.fromkeys(("run_benchmark", "export_results", "gate"), "success")
    outcome = _gate_xcom(third)
    # Compared with night 1, the last night whose gate passed (night 2's failed gate pushed nothing).
    assert outcome["baseline_benchmark_run_id"] == first_run
    assert outcome["passed"] is True
    assert {row["verdict"] for row in outcome["rows"]} == {"pass"}
    json.dumps(outcome, allow_nan=False)  # strict JSON
