"""Tests for ``progress.jobs`` and the job-state table: the one place job-state spellings are
normalised, and the job verdict (done, success, the small summary)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_runloop.exceptions import RunloopUnknownStateError
from airflow_provider_runloop.models import BenchmarkJobState, BenchmarkJobView
from airflow_provider_runloop.progress import FINISHED_JOB_STATES, judge_benchmark_job, normalise_job_state

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
