"""RunloopBenchmarkJobTrigger (construction checks, serde round trip), the job verdict and the one place
job-state spellings are normalised; and the run trigger's ``cancel_on_kill`` (no server needed)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from airflow_provider_runloop.exceptions import RunloopUnknownStateError
from airflow_provider_runloop.models import BenchmarkJobState, BenchmarkJobView
from airflow_provider_runloop.progress import FINISHED_JOB_STATES, normalise_job_state
from airflow_provider_runloop.triggers.runloop import (
    RunloopBenchmarkJobTrigger,
    RunloopBenchmarkRunTrigger,
    judge_benchmark_job,
)

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


# --- job states: one table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("initializing", BenchmarkJobState.INITIALIZING),
        ("queued", BenchmarkJobState.QUEUED),
        ("running", BenchmarkJobState.RUNNING),
        ("completed", BenchmarkJobState.COMPLETED),
        ("failed", BenchmarkJobState.FAILED),
        ("timeout", BenchmarkJobState.TIMEOUT),
        ("cancelled", BenchmarkJobState.CANCELLED),
        ("canceled", BenchmarkJobState.CANCELLED),
        ("CANCELED", BenchmarkJobState.CANCELLED),
        (" Cancelled ", BenchmarkJobState.CANCELLED),
        (BenchmarkJobState.QUEUED, BenchmarkJobState.QUEUED),
    ],
)
def test_job_state_spellings(state: Any, expected: BenchmarkJobState) -> None:
    assert normalise_job_state(state) is expected


def test_finished_job_states() -> None:
    assert {state.value for state in FINISHED_JOB_STATES} == {"completed", "failed", "cancelled", "timeout"}


def test_an_unknown_job_state_fails_closed_naming_it() -> None:
    with pytest.raises(RunloopUnknownStateError, match=r"Benchmark job bmj_1 is in state 'paused'"):
        normalise_job_state("paused", benchmark_job_id="bmj_1")


# --- the job verdict ------------------------------------------------------------------------------------


def _job(state: str, **fields: Any) -> BenchmarkJobView:
    return BenchmarkJobView.model_validate({"id": "bmj_1", "name": "nightly", "state": state, **fields})


@pytest.mark.parametrize(
    ("state", "done", "success"),
    [
        ("initializing", False, False),
        ("queued", False, False),
        ("running", False, False),
        ("completed", True, True),
        ("failed", True, False),
        ("cancelled", True, False),
        ("canceled", True, False),
        ("timeout", True, False),
    ],
)
def test_judge_benchmark_job(state: str, done: bool, success: bool) -> None:
    verdict = judge_benchmark_job(_job(state))
    assert (verdict.done, verdict.success) == (done, success)
    assert verdict.summary["state"] == normalise_job_state(state).value
    assert ("did not complete" in verdict.message) == (done and not success)


def test_judge_names_an_unknown_state() -> None:
    with pytest.raises(RunloopUnknownStateError, match="paused"):
        judge_benchmark_job(_job("paused"))


def test_the_summary_has_one_entry_per_benchmark_run_and_stays_small() -> None:
    job = _job(
        "running",
        failure_reason="x" * 5000,
        job_spec={"scenario_ids": ["scn_1", "scn_2", "scn_3"], "agent_configs": []},
        benchmark_outcomes=[
            {
                "benchmark_run_id": "bmr_a",
                "agent_name": "a",
                "model_name": "m",
                "n_completed": 2,
                "n_failed": 1,
                "n_timeout": 0,
                "average_score": 0.5,
                "scenario_outcomes": [
                    {"scenario_definition_id": f"scn_{i}", "scenario_name": "s", "state": "COMPLETED"}
                    for i in range(1000)
                ],
            },
        ],
        in_progress_runs=[
            {
                "benchmark_run_id": "bmr_b",
                "state": "running",
                "agent_config": {"name": "b", "model_name": "n"},
            },
        ],
    )
    verdict = judge_benchmark_job(job)
    summary = verdict.summary
    assert summary["benchmark_run_ids"] == ["bmr_a", "bmr_b"]
    assert summary["runs"] == [
        {
            "benchmark_run_id": "bmr_a",
            "agent_name": "a",
            "model_name": "m",
            "in_progress": False,
            "n_completed": 2,
            "n_failed": 1,
            "n_timeout": 0,
            "average_score": 0.5,
        },
        {
            "benchmark_run_id": "bmr_b",
            "agent_name": "b",
            "model_name": "n",
            "in_progress": True,
            "n_completed": 0,
            "n_failed": 0,
            "n_timeout": 0,
            "average_score": None,
        },
    ]
    assert summary["expected_scenarios"] == 3
    assert len(summary["failure_reason"]) == 300
    assert json.loads(json.dumps(summary)) == summary
    assert len(json.dumps(summary)) < 2048  # scenario outcomes are never copied
    assert "2 benchmark runs (1 in progress)" in verdict.message


def test_a_queued_job_sent_with_nulls_reads_as_having_no_runs() -> None:
    job = BenchmarkJobView.model_validate_json(
        b'{"id": "bmj_1", "name": "n", "state": "queued",'
        b' "benchmark_outcomes": null, "in_progress_runs": null}'
    )
    assert judge_benchmark_job(job).summary["runs"] == []


def test_a_failure_reason_that_quotes_credentials_is_redacted() -> None:
    reason = "orchestrator: request with Authorization: Bearer sk-live-123 was refused"
    verdict = judge_benchmark_job(_job("failed", failure_reason=reason))
    assert "sk-live-123" not in json.dumps(verdict.summary)
    assert "sk-live-123" not in verdict.message
    assert verdict.summary["failure_reason"].startswith("orchestrator: request with Authorization: ***")
