"""RunloopBenchmarkJobTrigger (construction checks, serde round trip) and the run trigger's
``cancel_on_kill`` (no server needed). The job verdict and job states: tests/unit/progress/test_jobs.py."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkJobTrigger, RunloopBenchmarkRunTrigger

KWARGS: dict[str, Any] = {
    "benchmark_job_id": "bmj_1",
    "deadline": 1_900_000_000.5,
    "runloop_conn_id": "runloop_prod",
    "poll_interval": 5.0,
    "max_consecutive_poll_failures": 3,
    "cancel_on_kill": True,
}


def _revive(trigger: Any) -> Any:
    from airflow.models.trigger import Trigger

    stored = Trigger.from_object(trigger)
    assert stored.classpath == trigger.serialize()[0]
    module, _, name = stored.classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**stored.kwargs)


def test_serialize_names_the_class_and_every_argument() -> None:
    classpath, kwargs = RunloopBenchmarkJobTrigger(**KWARGS).serialize()
    assert classpath == "airflow_provider_runloop.triggers.runloop.RunloopBenchmarkJobTrigger"
    assert kwargs == KWARGS
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON primitives only


def test_serialize_round_trips_through_airflows_trigger_storage() -> None:
    trigger = RunloopBenchmarkJobTrigger(**KWARGS)
    assert _revive(trigger).serialize() == trigger.serialize()


def test_defaults() -> None:
    _, kwargs = RunloopBenchmarkJobTrigger(benchmark_job_id="bmj_1", deadline=1.0).serialize()
    assert kwargs == {
        "benchmark_job_id": "bmj_1",
        "deadline": 1.0,
        "runloop_conn_id": "runloop_default",
        "poll_interval": 30.0,
        "max_consecutive_poll_failures": 5,
        "cancel_on_kill": False,
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"benchmark_job_id": "a/b"}, "benchmark_job_id must be a Runloop id"),
        ({"benchmark_job_id": ""}, "benchmark_job_id must be a Runloop id"),
        ({"deadline": "soon"}, "deadline must be a finite number"),
        ({"deadline": -1}, "deadline must be >= 0"),
        ({"poll_interval": 0}, "poll_interval must be >= 0.01"),
        ({"runloop_conn_id": " "}, "runloop_conn_id must be a non-empty string"),
        ({"max_consecutive_poll_failures": 1.5}, "max_consecutive_poll_failures must be a whole number"),
        ({"cancel_on_kill": "yes"}, "cancel_on_kill must be True or False"),
    ],
)
def test_bad_arguments_are_rejected_at_construction(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunloopBenchmarkJobTrigger(**{**KWARGS, **override})


# --- the run trigger's cancel_on_kill -------------------------------------------------------------------


def test_the_run_trigger_stores_cancel_on_kill_only_when_set() -> None:
    watching = RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=1.0)
    assert "cancel_on_kill" not in watching.serialize()[1]  # a sensor's trigger keeps its kwargs
    assert watching.cancel_on_kill is False
    owning = RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=1.0, cancel_on_kill=True)
    assert owning.serialize()[1]["cancel_on_kill"] is True
    revived = _revive(owning)
    assert revived.cancel_on_kill is True
    assert revived.serialize() == owning.serialize()


def test_the_run_trigger_checks_cancel_on_kill() -> None:
    with pytest.raises(ValueError, match="cancel_on_kill must be True or False"):
        RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=1.0, cancel_on_kill=1)  # type: ignore[arg-type]


async def test_on_kill_without_cancel_on_kill_sends_nothing() -> None:
    # No connection exists in this test: a request would fail loudly.
    await RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=1.0).on_kill()
    await RunloopBenchmarkJobTrigger(benchmark_job_id="bmj_1", deadline=1.0).on_kill()
