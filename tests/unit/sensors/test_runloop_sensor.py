"""RunloopBenchmarkRunSensor: construction checks and event handling (no server needed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout
from support.summaries import make_summary
from support.task_state import FakeStateStore

from airflow_provider_runloop.exceptions import (
    RunloopBenchmarkRunFailedError,
    RunloopError,
    RunloopInvalidResponseError,
    RunloopServerError,
)
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

SUMMARY = make_summary()


def _sensor(**kwargs: Any) -> RunloopBenchmarkRunSensor:
    return RunloopBenchmarkRunSensor(task_id="wait", **{"benchmark_run_id": "bmr_1", **kwargs})


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
        ({"poke_interval": 0}, "poke_interval must be >= 0.01"),
        ({"poke_interval": 0, "deferrable": True}, "poke_interval must be >= 0.01"),
        ({"poke_interval": 0, "mode": "reschedule"}, "poke_interval must be >= 0.01"),
        ({"poke_interval": -1}, "poke_interval must be >= 0.01"),
        ({"poke_interval": 1e-9, "deferrable": True}, "poke_interval must be >= 0.01"),
        ({"poke_interval": timedelta(milliseconds=1)}, "poke_interval must be >= 0.01"),
        ({"poke_interval": float("nan")}, "poke_interval must be a finite number"),
        ({"poke_interval": float("inf"), "deferrable": True}, "poke_interval must be a finite number"),
        ({"poke_interval": True}, "poke_interval must be a finite number"),
        (
            {"deferrable": True, "mode": "reschedule"},
            "deferrable=True and mode='reschedule' cannot be combined",
        ),
        ({"benchmark_run_id": "bad id"}, "benchmark_run_id must be a Runloop id"),
        ({"benchmark_run_id": "../bmr"}, "benchmark_run_id must be a Runloop id"),
        ({"runloop_conn_id": ""}, "runloop_conn_id must be a non-empty string"),
    ],
)
def test_bad_options_are_rejected_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _sensor(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"poke_interval": 0.01, "deferrable": True}, id="the-minimum"),
        pytest.param({"poke_interval": timedelta(minutes=1), "mode": "reschedule"}, id="timedelta"),
        pytest.param({"benchmark_run_id": "{{ ti.xcom_pull('start')['benchmark_run_id'] }}"}, id="templated"),
    ],
)
def test_good_options_are_kept(kwargs: dict[str, Any]) -> None:
    sensor = _sensor(**kwargs)
    assert sensor.poke_interval >= 0.01


class FakeTI:
    # Airflow's numbers: max_tries starts at the task's retries and grows when the task is cleared.
    def __init__(self, try_number: int = 1, max_tries: int = 0) -> None:
        self.try_number = try_number
        self.max_tries = max_tries


def _context(store: FakeStateStore, ti: FakeTI) -> Any:
    return {"task_state_store": store, "ti": ti}


def test_timeout_counts_from_the_first_try_and_restarts_when_cleared() -> None:
    store = FakeStateStore()
    first = _sensor(timeout=100, retries=1)._timeout_deadline(
        _context(store, FakeTI(try_number=1, max_tries=1))
    )
    # The retry (try 2 of the same series) keeps the window...
    retry = _sensor(timeout=100, retries=1)._timeout_deadline(
        _context(store, FakeTI(try_number=2, max_tries=1))
    )
    assert retry == first
    # ...clearing the task raises max_tries: a new series, a new window.
    store.values = {k: v - 1000 for k, v in store.values.items()}
    cleared = _sensor(timeout=100, retries=1)._timeout_deadline(
        _context(store, FakeTI(try_number=3, max_tries=3))
    )
    assert cleared > first - 1000
    assert len(store.values) == 2


def test_poke_times_out_once_the_first_tries_window_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStateStore()
    store.set("runloop_wait_started_at_1", 1.0)  # long ago
    sensor = _sensor(timeout=60)
    sensor._link_stored = True
    monkeypatch.setattr(sensor.hook, "check_benchmark_run", lambda *a, **k: _not_done_verdict())
    with pytest.raises(AirflowSensorTimeout, match="not done within the sensor's timeout"):
        sensor.poke(_context(store, FakeTI(try_number=1, max_tries=0)))


def test_reschedule_mode_counts_failed_polls_across_pokes(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStateStore()

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise RunloopServerError(503, "GET", "/v1/benchmark_runs/bmr_1")

    def poke_once() -> Any:
        # Each poke in reschedule mode is a fresh task object.
        sensor = _sensor(mode="reschedule", max_consecutive_poll_failures=1, timeout=3600)
        sensor._link_stored = True
        monkeypatch.setattr(sensor.hook, "check_benchmark_run", failing)
        return sensor.poke(_context(store, FakeTI()))

    assert poke_once().is_done is False
    with pytest.raises(RunloopServerError):
        poke_once()
    assert store.get("runloop_poll_failures_try_1") == 2


def _not_done_verdict() -> Any:
    from airflow_provider_runloop.progress import BenchmarkRunSummary, BenchmarkRunVerdict

    return BenchmarkRunVerdict(BenchmarkRunSummary.from_dict({**SUMMARY, "done": False, "success": False}))


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
