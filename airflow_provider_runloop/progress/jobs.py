"""The benchmark job's rule: is a job finished, did it complete, and its small summary.

Pure domain logic, as :mod:`~airflow_provider_runloop.progress.rule` is for runs: the job trigger, the job
operator's own wait and its XCom value all come from :func:`judge_benchmark_job`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from airflow_provider_runloop.models import BenchmarkJobState, BenchmarkJobView
from airflow_provider_runloop.progress.states import FINISHED_JOB_STATES, normalise_job_state
from airflow_provider_runloop.redaction import redact_credentials

__all__ = ["FAILURE_REASON_CHARS", "BenchmarkJobVerdict", "judge_benchmark_job", "shorten"]

FAILURE_REASON_CHARS: Final = 300
"""A job's failure reason (free text from the server) is cut to this many characters for events and XCom."""


def shorten(text: str, limit: int = FAILURE_REASON_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class BenchmarkJobVerdict:
    """:func:`judge_benchmark_job`'s answer: is the job finished, did it complete, and its summary.

    ``summary`` holds JSON primitives only (it is the trigger event's ``job`` and the base of the job
    operator's XCom): ``benchmark_job_id``, ``name``, ``state`` (normalised: ``cancelled`` for either
    spelling), ``failure_reason`` (shortened), ``expected_scenarios`` (per benchmark run, from the job
    spec), ``benchmark_run_ids`` and ``runs``: one entry per benchmark run (that is, per agent config)
    with ``benchmark_run_id``, ``agent_name``, ``model_name``, ``in_progress``, ``n_completed``,
    ``n_failed``, ``n_timeout`` and ``average_score``.
    """

    done: bool
    success: bool
    message: str
    summary: dict[str, Any]


def judge_benchmark_job(job: BenchmarkJobView) -> BenchmarkJobVerdict:
    """Decide from one fetch of a benchmark job whether it is finished and how it went.

    Finished means ``completed`` (the only success), ``failed``, ``cancelled``/``canceled`` or
    ``timeout``; ``initializing``, ``queued`` and ``running`` keep the wait going.

    :param job: the job, freshly fetched.
    :raises RunloopUnknownStateError: for a job state this provider does not know.
    """
    state = normalise_job_state(job.state, benchmark_job_id=job.id)
    in_progress = {run.benchmark_run_id: run for run in job.in_progress_runs}
    runs: list[dict[str, Any]] = []
    for outcome in job.benchmark_outcomes:
        runs.append(
            {
                "benchmark_run_id": outcome.benchmark_run_id,
                "agent_name": outcome.agent_name,
                "model_name": outcome.model_name,
                "in_progress": outcome.benchmark_run_id in in_progress,
                "n_completed": outcome.n_completed,
                "n_failed": outcome.n_failed,
                "n_timeout": outcome.n_timeout,
                "average_score": outcome.average_score,
            }
        )
    listed = {run["benchmark_run_id"] for run in runs}
    for run_id, run in in_progress.items():
        if run_id in listed:
            continue
        config = run.agent_config or {}
        runs.append(
            {
                "benchmark_run_id": run_id,
                "agent_name": str(config.get("name", "")),
                "model_name": config.get("model_name") if isinstance(config.get("model_name"), str) else None,
                "in_progress": True,
                "n_completed": 0,
                "n_failed": 0,
                "n_timeout": 0,
                "average_score": None,
            }
        )
    # Free text from the server: it may quote a request's headers, and it goes into events and XCom.
    reason = None if job.failure_reason is None else shorten(redact_credentials(job.failure_reason))
    spec = job.job_spec
    summary: dict[str, Any] = {
        "benchmark_job_id": job.id,
        "name": job.name,
        "state": state.value,
        "failure_reason": reason,
        "expected_scenarios": len(spec.scenario_ids) if spec is not None and spec.scenario_ids else None,
        "benchmark_run_ids": [run["benchmark_run_id"] for run in runs],
        "runs": runs,
    }
    done = state in FINISHED_JOB_STATES
    success = state is BenchmarkJobState.COMPLETED
    return BenchmarkJobVerdict(done, success, _job_message(summary, done, success), summary)


def _job_message(summary: dict[str, Any], done: bool, success: bool) -> str:
    runs = summary["runs"]
    active = sum(1 for run in runs if run["in_progress"])
    totals = {key: sum(run[key] for run in runs) for key in ("n_completed", "n_failed", "n_timeout")}
    line = (
        f"Benchmark job {summary['benchmark_job_id']} ({summary['name']}) is {summary['state']}: "
        f"{len(runs)} benchmark runs ({active} in progress); scenarios completed {totals['n_completed']}, "
        f"failed {totals['n_failed']}, timed out {totals['n_timeout']}"
    )
    if done and not success:
        line += ". The job did not complete"
        if summary["failure_reason"]:
            line += f": {summary['failure_reason']}"
    return line
