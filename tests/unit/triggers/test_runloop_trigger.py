"""RunloopBenchmarkRunTrigger: construction checks and the serde round trip (no server needed)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger

KWARGS: dict[str, Any] = {
    "benchmark_run_id": "bmr_1",
    "deadline": 1_900_000_000.5,
    "runloop_conn_id": "runloop_prod",
    "poll_interval": 5.0,
    "expected_scenario_count": 120,
    "accept_scored": True,
    "fail_on_scenario_failure": False,
    "max_consecutive_poll_failures": 3,
    "failure_settle_seconds": 30.0,
    "failure_hold": {"since": 1_899_999_990.0, "total_scenario_runs": 7},
}


def test_serialize_names_the_class_and_every_argument() -> None:
    classpath, kwargs = RunloopBenchmarkRunTrigger(**KWARGS).serialize()
    assert classpath == "airflow_provider_runloop.triggers.runloop.RunloopBenchmarkRunTrigger"
    assert kwargs == KWARGS
    # JSON primitives only.
    assert json.loads(json.dumps(kwargs)) == kwargs


def test_serialize_round_trips_through_airflows_trigger_storage() -> None:
    from airflow.models.trigger import Trigger

    trigger = RunloopBenchmarkRunTrigger(**KWARGS)
    stored = Trigger.from_object(trigger)
    assert stored.classpath == trigger.serialize()[0]
    module, _, name = stored.classpath.rpartition(".")
    revived = getattr(importlib.import_module(module), name)(**stored.kwargs)
    assert revived.serialize() == trigger.serialize()


def test_defaults() -> None:
    trigger = RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=1.0)
    _, kwargs = trigger.serialize()
    assert kwargs["runloop_conn_id"] == "runloop_default"
    assert kwargs["expected_scenario_count"] is None
    assert kwargs["accept_scored"] is False
    assert kwargs["fail_on_scenario_failure"] is True


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"benchmark_run_id": "../x"}, "benchmark_run_id must be a Runloop id"),
        ({"deadline": "tomorrow"}, "deadline must be a finite number"),
        ({"deadline": float("inf")}, "deadline must be a finite number"),
        ({"deadline": 10**400}, "deadline must be a finite number, got an integer of about 401 digits"),
        ({"deadline": -(10**5000)}, "deadline must be a finite number"),
        ({"poll_interval": float("nan")}, "poll_interval must be a finite number"),
        ({"failure_settle_seconds": 10**400}, "failure_settle_seconds must be a finite number"),
        ({"max_consecutive_poll_failures": 2.5}, "max_consecutive_poll_failures must be a whole number"),
        ({"poll_interval": 0}, "poll_interval must be >= 0.01"),
        ({"poll_interval": 0.001}, "poll_interval must be >= 0.01"),
        ({"poll_interval": True}, "poll_interval must be a finite number"),
        ({"runloop_conn_id": ""}, "runloop_conn_id must be a non-empty string"),
        ({"expected_scenario_count": 0}, "expected_scenario_count must be a whole number >= 1"),
        ({"expected_scenario_count": "12"}, "expected_scenario_count"),
        ({"accept_scored": "false"}, "accept_scored must be True or False"),
        ({"fail_on_scenario_failure": 1}, "fail_on_scenario_failure must be True or False"),
        ({"max_consecutive_poll_failures": -1}, "max_consecutive_poll_failures must be a whole number >= 0"),
    ],
)
def test_bad_arguments_are_rejected_at_construction(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunloopBenchmarkRunTrigger(**{**KWARGS, **override})


@pytest.mark.parametrize(
    "hold",
    [
        {"since": 10**400, "total_scenario_runs": 1},
        {"since": float("nan"), "total_scenario_runs": 1},
        {"since": 1.0},
        [1],
    ],
)
def test_a_failure_hold_that_cannot_be_one_starts_the_window_again(hold: object) -> None:
    trigger = RunloopBenchmarkRunTrigger(**{**KWARGS, "failure_hold": hold})
    assert trigger.serialize()[1]["failure_hold"] is None
