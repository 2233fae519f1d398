"""Deferrable waiting on a benchmark run or a benchmark job, in the triggerer's event loop.

Both triggers poll on one loop (:class:`_PollingTrigger`): an absolute deadline, a budget of failed
polls in a row, and exactly one small event, after which they stop. They close their client on every
exit. While waiting they only ever read: Airflow may run two copies of a trigger at once, and a
triggerer restart cancels it, so the wait itself never changes anything remote.

The one exception is :meth:`~airflow.triggers.base.BaseTrigger.on_kill`, which Airflow calls only
when a user marks the deferred task failed or successful, or clears it (never on a triggerer restart,
a redistribution or a time-out). With ``cancel_on_kill=True``, which only the operators that *started*
the run or job set, it then cancels that run, or the job's in-progress runs. A watch-only wait (the
sensor) never sets it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_runloop.arguments import (
    check_count,
    check_flag,
    check_number,
    check_optional_count,
    check_poll_interval,
    check_text,
)
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.exceptions import (
    RunloopAuthenticationError,
    RunloopBadRequestError,
    RunloopError,
    RunloopInvalidResponseError,
    RunloopNotFoundError,
    RunloopUnknownStateError,
)
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.models import BenchmarkJobState, BenchmarkJobView, BenchmarkRunState
from airflow_provider_runloop.progress import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    FINISHED_JOB_STATES,
    FailureHold,
    normalise_job_state,
)
from airflow_provider_runloop.redaction import redact_credentials

__all__ = [
    "EVENT_STATUSES",
    "BenchmarkJobVerdict",
    "RunloopBenchmarkJobTrigger",
    "RunloopBenchmarkRunTrigger",
    "judge_benchmark_job",
    "read_trigger_event",
]

#: The ``status`` values of a trigger's one event.
EVENT_STATUSES = frozenset({"success", "failure", "timeout", "error"})


def read_trigger_event(
    event: object, payload_key: str, *, timed_out: Callable[[str], BaseException], source: str
) -> tuple[str, str, dict[str, Any]]:
    """Check one of our triggers' events; raise what a ``timeout`` or ``error`` event says.

    :param event: the event payload as the task received it.
    :param payload_key: where a ``success``/``failure`` event carries its summary (``summary``, ``job``).
    :param timed_out: builds the exception a ``timeout`` raises (the sensor and the operators differ).
    :param source: names the trigger in error messages.
    :return: ``(status, message, payload)`` for a ``success`` or ``failure`` event.
    """
    status = event.get("status") if isinstance(event, dict) else None
    # Checked as a str first: an unhashable status (a list) cannot be looked up in a set.
    if not isinstance(event, dict) or not isinstance(status, str) or status not in EVENT_STATUSES:
        shown = repr(status)[:_SHOWN_STATUS_CHARS] if isinstance(status, str) else type(status).__name__
        raise RunloopInvalidResponseError(
            f"The {source} sent an event this task cannot read (status {shown}); clear the task to "
            "wait again."
        )
    raw_message = event.get("message", "")
    message = raw_message if isinstance(raw_message, str) else ""
    if status == "timeout":
        raise timed_out(message)
    if status == "error":
        raise RunloopError(message)
    payload = event.get(payload_key)
    if not isinstance(payload, dict):
        raise RunloopInvalidResponseError(f"The {source}'s {status} event has no {payload_key}")
    return status, message, payload


_SHOWN_STATUS_CHARS: Final = 40

# Errors no retry can fix: end the wait at once instead of spending the failure budget.
_FATAL_ERRORS = (
    RunloopAuthenticationError,
    RunloopNotFoundError,
    RunloopBadRequestError,
    RunloopUnknownStateError,
    ValueError,
)

# A job's failure reason is free text from the server: keep events and XCom small.
_FAILURE_REASON_CHARS: Final = 300


@dataclass(frozen=True)
class _Poll:
    """What one poll found: is the wait over, how, and what to report."""

    done: bool
    success: bool
    message: str
    summary: dict[str, Any]


class _PollingTrigger(BaseTrigger):
    """The polling loop both triggers share; subclasses say how to poll once and how to cancel."""

    deadline: float
    runloop_conn_id: str
    poll_interval: float
    max_consecutive_poll_failures: int
    cancel_on_kill: bool

    def _check_common(
        self,
        deadline: float,
        runloop_conn_id: str,
        poll_interval: float,
        max_consecutive_poll_failures: int,
        cancel_on_kill: bool,
    ) -> None:
        self.deadline = check_number("deadline", deadline, minimum=0)
        self.runloop_conn_id = check_text("runloop_conn_id", runloop_conn_id)
        self.poll_interval = check_poll_interval("poll_interval", poll_interval)
        self.max_consecutive_poll_failures = check_count(
            "max_consecutive_poll_failures", max_consecutive_poll_failures, minimum=0
        )
        self.cancel_on_kill = check_flag("cancel_on_kill", cancel_on_kill)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The trigger always ends with one event: whatever goes wrong but cancellation (a triggerer
        # restart, which is a BaseException and passes) becomes an ``error`` event the task can read,
        # not a traceback the UI shows as "Trigger failure".
        try:
            payload = await self._wait_and_close()
            # Events are stored as JSON: strict JSON (no NaN), or an error event saying why not.
            json.dumps(payload, allow_nan=False)
        except Exception as exc:
            message = self._unexpected(exc)
            self.log.error("%s", message)
            payload = self._event("error", message, None)
        yield TriggerEvent(payload)

    async def _wait_and_close(self) -> dict[str, Any]:
        hook = RunloopHook(runloop_conn_id=self.runloop_conn_id)
        try:
            return await self._wait(hook)
        finally:
            await hook.aclose()

    def _unexpected(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if len(text) > _FAILURE_REASON_CHARS:
            text = text[: _FAILURE_REASON_CHARS - 1] + "…"
        return redact_credentials(
            f"Waiting on {self._subject} failed with an unexpected error ({text}): a server answer "
            "this provider cannot read, or a bug in it. Clear the task to wait again."
        )

    async def on_kill(self) -> None:
        """Cancel what is waited on, if ``cancel_on_kill`` (a user marked or cleared the task)."""
        if not self.cancel_on_kill:
            return
        hook = RunloopHook(runloop_conn_id=self.runloop_conn_id)
        try:
            await self._cancel(hook)
        except RunloopError as exc:
            # Best effort: Airflow logs what on_kill raises and moves on anyway; say what was not done.
            self.log.warning("Could not cancel %s: %s", self._subject, exc)
        finally:
            await hook.aclose()

    @property
    def _subject(self) -> str:
        raise NotImplementedError

    async def _poll(self, hook: RunloopHook) -> _Poll:
        raise NotImplementedError

    async def _cancel(self, hook: RunloopHook) -> None:
        raise NotImplementedError

    def _event(self, status: str, message: str, summary: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    async def _wait(self, hook: RunloopHook) -> dict[str, Any]:
        failures = 0
        last: _Poll | None = None
        while True:
            try:
                poll = await self._poll(hook)
            except _FATAL_ERRORS as exc:
                return self._event("error", str(exc), last.summary if last else None)
            except RunloopError as exc:
                failures += 1
                if failures > self.max_consecutive_poll_failures:
                    message = f"Gave up after {failures} failed polls in a row; the last: {exc}"
                    return self._event("error", message, last.summary if last else None)
                self.log.warning("Poll %d in a row failed: %s", failures, exc)
            else:
                failures = 0
                last = poll
                self.log.info("%s", poll.message)
                if poll.done:
                    return self._event("success" if poll.success else "failure", poll.message, poll.summary)
            remaining = self.deadline - time.time()
            if remaining <= 0:
                message = f"{self._subject} was not done by the deadline"
                if last is not None:
                    message += f": {last.message}"
                return self._event("timeout", message, last.summary if last else None)
            # Wake at the deadline at the latest, for the last check.
            await asyncio.sleep(min(self.poll_interval, remaining))


class RunloopBenchmarkRunTrigger(_PollingTrigger):
    """Wait until a benchmark run is done, then fire one event.

    Polls cheaply (:meth:`RunloopHook.acheck_benchmark_run`: five small requests while scenario runs
    are active, one full listing at the end). The event's payload is small whatever the run's size:
    ``status`` (one of ``success``, ``failure``, ``timeout``, ``error``), ``benchmark_run_id``, a
    one-line ``message`` and the ``summary`` (see
    :class:`~airflow_provider_runloop.progress.BenchmarkRunSummary`) when one exists.

    :param benchmark_run_id: the benchmark run to wait for.
    :param deadline: when to give up, as a Unix timestamp (seconds); the run is checked once more at
        the deadline before ``timeout`` is emitted.
    :param runloop_conn_id: the Runloop connection.
    :param poll_interval: seconds between polls.
    :param expected_scenario_count: how many scenarios the run should have; when ``None``, the
        benchmark's ``scenarioIds`` are used (fetched once).
    :param accept_scored: count ``scored`` scenario runs as finished.
    :param fail_on_scenario_failure: a run whose scenarios failed is a ``failure`` (default) rather
        than a ``success`` that reports them.
    :param max_consecutive_poll_failures: polls in a row that may fail (after the client's own
        retries) before the trigger gives up with an ``error`` event. Authentication, not-found and
        unknown-state errors end the wait at once.
    :param cancel_on_kill: cancel the run if a user marks the deferred task failed or successful, or
        clears it (never on a triggerer restart). Off by default: only the operator that started the
        run sets it; a sensor only watches.
    :param failure_settle_seconds: how long a scenario failure seen while the run is still open must
        hold before it is final (a retry could overturn it); ``0``: at once.
    :param failure_hold: a failure the deferring task already held
        (:meth:`~airflow_provider_runloop.progress.FailureHold.to_dict`), so its window goes on.
    """

    def __init__(
        self,
        benchmark_run_id: str,
        deadline: float,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        poll_interval: float = 30.0,
        expected_scenario_count: int | None = None,
        accept_scored: bool = False,
        fail_on_scenario_failure: bool = True,
        max_consecutive_poll_failures: int = 5,
        cancel_on_kill: bool = False,
        failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS,
        failure_hold: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is unannotated
        self.benchmark_run_id = validate_id("benchmark_run_id", benchmark_run_id)
        self._check_common(
            deadline, runloop_conn_id, poll_interval, max_consecutive_poll_failures, cancel_on_kill
        )
        self.expected_scenario_count = check_optional_count(
            "expected_scenario_count", expected_scenario_count
        )
        self.accept_scored = check_flag("accept_scored", accept_scored)
        self.fail_on_scenario_failure = check_flag("fail_on_scenario_failure", fail_on_scenario_failure)
        self.failure_settle_seconds = check_number(
            "failure_settle_seconds", failure_settle_seconds, minimum=0
        )
        self._failure_hold = FailureHold.from_dict(failure_hold)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "benchmark_run_id": self.benchmark_run_id,
            "deadline": self.deadline,
            "runloop_conn_id": self.runloop_conn_id,
            "poll_interval": self.poll_interval,
            "expected_scenario_count": self.expected_scenario_count,
            "accept_scored": self.accept_scored,
            "fail_on_scenario_failure": self.fail_on_scenario_failure,
            "max_consecutive_poll_failures": self.max_consecutive_poll_failures,
            "failure_settle_seconds": self.failure_settle_seconds,
            "failure_hold": self._failure_hold.to_dict() if self._failure_hold else None,
        }
        # Only when set, so triggers stored by an older version (and the sensor's) keep their kwargs.
        if self.cancel_on_kill:
            kwargs["cancel_on_kill"] = True
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    @property
    def _subject(self) -> str:
        return f"Benchmark run {self.benchmark_run_id}"

    async def _poll(self, hook: RunloopHook) -> _Poll:
        # One hook for the trigger's life: it fetches the benchmark's scenarioIds at most once.
        verdict = await hook.acheck_benchmark_run(
            self.benchmark_run_id,
            expected_count=self.expected_scenario_count,
            expected_from_benchmark=self.expected_scenario_count is None,
            accept_scored=self.accept_scored,
            fail_on_scenario_failure=self.fail_on_scenario_failure,
            failure_settle_seconds=self.failure_settle_seconds,
            failure_hold=self._failure_hold,
        )
        self._failure_hold = verdict.failure_hold
        return _Poll(verdict.done, verdict.success, verdict.message, verdict.summary.to_dict())

    async def _cancel(self, hook: RunloopHook) -> None:
        run = await hook.aget_benchmark_run(self.benchmark_run_id)
        if run.state != BenchmarkRunState.RUNNING:
            self.log.info("Benchmark run %s is already %s: nothing to cancel", run.id, run.state)
            return
        canceled = await hook.acancel_benchmark_run(self.benchmark_run_id)
        self.log.info(
            "Canceled benchmark run %s (the task was killed): it is %s", canceled.id, canceled.state
        )

    def _event(self, status: str, message: str, summary: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "status": status,
            "benchmark_run_id": self.benchmark_run_id,
            "message": message,
            "summary": summary,
        }


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
    reason = None if job.failure_reason is None else redact_credentials(job.failure_reason)
    if reason is not None and len(reason) > _FAILURE_REASON_CHARS:
        reason = reason[: _FAILURE_REASON_CHARS - 1] + "…"
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


class RunloopBenchmarkJobTrigger(_PollingTrigger):
    """Wait until a benchmark job is finished, then fire one event.

    Each poll is one ``GET /v1/benchmark_jobs/{id}``. The event's payload: ``status`` (``success`` when
    the job is ``completed``; ``failure`` when it ended ``failed``, ``cancelled`` or ``timeout``; else
    ``timeout`` or ``error``), ``benchmark_job_id``, a one-line ``message`` and ``job``, the
    :class:`BenchmarkJobVerdict` summary (one small entry per benchmark run), when one exists.

    :param benchmark_job_id: the benchmark job to wait for.
    :param deadline: when to give up, as a Unix timestamp (seconds); the job is checked once more at
        the deadline before ``timeout`` is emitted.
    :param runloop_conn_id: the Runloop connection.
    :param poll_interval: seconds between polls.
    :param max_consecutive_poll_failures: polls in a row that may fail (after the client's own
        retries) before the trigger gives up with an ``error`` event. Authentication, not-found and
        unknown-state errors end the wait at once.
    :param cancel_on_kill: if a user marks the deferred task failed or successful, or clears it, cancel
        the job's in-progress benchmark runs (Runloop has no endpoint to cancel a job itself). Never on
        a triggerer restart. Off by default.
    """

    def __init__(
        self,
        benchmark_job_id: str,
        deadline: float,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        poll_interval: float = 30.0,
        max_consecutive_poll_failures: int = 5,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is unannotated
        self.benchmark_job_id = validate_id("benchmark_job_id", benchmark_job_id)
        self._check_common(
            deadline, runloop_conn_id, poll_interval, max_consecutive_poll_failures, cancel_on_kill
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "benchmark_job_id": self.benchmark_job_id,
                "deadline": self.deadline,
                "runloop_conn_id": self.runloop_conn_id,
                "poll_interval": self.poll_interval,
                "max_consecutive_poll_failures": self.max_consecutive_poll_failures,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    @property
    def _subject(self) -> str:
        return f"Benchmark job {self.benchmark_job_id}"

    async def _poll(self, hook: RunloopHook) -> _Poll:
        verdict = judge_benchmark_job(await hook.aget_benchmark_job(self.benchmark_job_id))
        return _Poll(verdict.done, verdict.success, verdict.message, verdict.summary)

    async def _cancel(self, hook: RunloopHook) -> None:
        canceled = await hook.acancel_benchmark_job(self.benchmark_job_id)
        self.log.info(
            "Canceled %d in-progress benchmark runs of job %s (the task was killed): %s",
            len(canceled),
            self.benchmark_job_id,
            ", ".join(canceled) or "none",
        )

    def _event(self, status: str, message: str, summary: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "status": status,
            "benchmark_job_id": self.benchmark_job_id,
            "message": message,
            "job": summary,
        }
