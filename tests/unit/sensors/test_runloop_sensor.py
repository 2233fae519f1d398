"""RunloopBenchmarkRunSensor: construction checks and event handling (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_runloop.exceptions import (
    RunloopBenchmarkRunFailedError,
    RunloopError,
    RunloopInvalidResponseError,
)
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

SUMMARY: dict[str, Any] = {
    "benchmark_run_id": "bmr_1",
    "benchmark_run_state": "completed",
    "done": True,
    "success": True,
    "message": "bmr_1: 2/2 finished (completed 2)",
    "exact": True,
    "accept_scored": False,
    "expected_scenarios": 2,
    "started_scenarios": 2,
    "finished_scenarios": 2,
    "total_scenario_runs": 2,
    "state_counts": {"completed": 2},
    "mean_score": 0.5,
    "scored_scenarios": 2,
    "scoring_function_mean_scores": {"tests": 0.5},
    "scoring_function_mean_scores_truncated": False,
    "failed_scenario_count": 0,
    "failed_scenario_run_ids": [],
    "failed_scenario_run_ids_truncated": False,
    "missing_scenario_count": 0,
    "missing_scenario_ids": [],
    "missing_scenario_ids_truncated": False,
    "benchmark_score": 0.5,
}


def _sensor(**kwargs: Any) -> RunloopBenchmarkRunSensor:
    return RunloopBenchmarkRunSensor(task_id="wait", benchmark_run_id="bmr_1", **kwargs)


def test_templated_fields_and_link() -> None:
    sensor = _sensor()
    assert set(sensor.template_fields) == {"benchmark_run_id", "runloop_conn_id"}
    assert [link.name for link in sensor.operator_extra_links] == ["Runloop benchmark run"]


def test_deferrable_follows_the_airflow_setting_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import airflow_provider_runloop.sensors.runloop as module

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    reloaded = importlib.reload(module)
    try:
        assert reloaded.RunloopBenchmarkRunSensor(task_id="w", benchmark_run_id="bmr_1").deferrable is True
    finally:
        monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE")
        importlib.reload(module)
    assert module.RunloopBenchmarkRunSensor(task_id="w", benchmark_run_id="bmr_1").deferrable is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expected_scenario_count": 0}, "expected_scenario_count"),
        ({"accept_scored": "yes"}, "accept_scored must be True or False"),
        ({"fail_on_scenario_failure": None}, "fail_on_scenario_failure"),
        ({"max_consecutive_poll_failures": -2}, "max_consecutive_poll_failures"),
        ({"deferrable": "true"}, "deferrable must be True or False"),
    ],
)
def test_bad_options_are_rejected_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _sensor(**kwargs)


def test_poll_failure_budget_depends_on_the_mode() -> None:
    assert _sensor().max_consecutive_poll_failures == 5
    assert _sensor(deferrable=True, max_consecutive_poll_failures=2).max_consecutive_poll_failures == 2
    assert _sensor(mode="reschedule").max_consecutive_poll_failures == 0
    with pytest.raises(ValueError, match="cannot be used with mode='reschedule'"):
        _sensor(mode="reschedule", max_consecutive_poll_failures=3)


def test_success_event_returns_the_summary() -> None:
    event = {"status": "success", "benchmark_run_id": "bmr_1", "message": "ok", "summary": SUMMARY}
    assert _sensor().execute_complete({}, event) == SUMMARY  # type: ignore[arg-type]


def test_failure_event_raises_naming_the_failures() -> None:
    summary = {**SUMMARY, "success": False, "message": "bmr_1 failed: scenario runs scr_9 failed"}
    event = {"status": "failure", "message": summary["message"], "summary": summary}
    with pytest.raises(RunloopBenchmarkRunFailedError, match="scr_9"):
        _sensor().execute_complete({}, event)  # type: ignore[arg-type]


def test_timeout_event_raises_sensor_timeout() -> None:
    with pytest.raises(AirflowSensorTimeout, match="deadline"):
        _sensor().execute_complete({}, {"status": "timeout", "message": "not done by the deadline"})  # type: ignore[arg-type]


def test_error_event_raises_a_runloop_error_not_a_timeout() -> None:
    with pytest.raises(RunloopError, match="authentication failed") as info:
        _sensor().execute_complete({}, {"status": "error", "message": "authentication failed"})  # type: ignore[arg-type]
    assert not isinstance(info.value, AirflowSensorTimeout)


@pytest.mark.parametrize(
    "event",
    [None, {}, {"status": "done"}, {"status": None}, "success", {"status": "success", "summary": None}],
)
def test_unreadable_events_raise(event: Any) -> None:
    with pytest.raises(RunloopInvalidResponseError):
        _sensor().execute_complete({}, event)  # type: ignore[arg-type]
