"""Deferrable waiting on a benchmark run or a benchmark job, in the triggerer's event loop.

Both triggers poll on one loop (:class:`_PollingTrigger`): an absolute deadline, a budget of failed
polls in a row, and exactly one small event, after which they stop. They close their client on every
exit. While waiting they only ever read: Airflow may run two copies of a trigger at once, and a
triggerer restart cancels it, so the wait itself never changes anything remote.

The one exception is :meth:`~airflow.triggers.base.BaseTrigger.on_kill`, which Airflow calls when a
user marks the deferred task failed or successful, or clears it (never on a triggerer restart or a
time-out). With ``cancel_on_kill=True``, which only the operators that *started* the run or job set,
it then cancels that run, or the job's in-progress runs. A watch-only wait (the sensor) never sets it.

Airflow 3.3 also calls ``on_kill`` on a triggerer whose triggers were handed to another one while it
was stalled (its heartbeat lapsed: a long pause, a busy host; apache/airflow#73454): the task is still
deferred and its trigger polls on elsewhere. So before canceling, the trigger asks Airflow for its
task instance's state and cancels only if the task is no longer deferred (:func:`_still_deferred`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_runloop.arguments import check_flag, check_number, check_poll_interval, check_text
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.exceptions import RunloopError
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.models import BenchmarkRunState
from airflow_provider_runloop.progress import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    BenchmarkJobVerdict,
    FailureHold,
    judge_benchmark_job,
)
from airflow_provider_runloop.progress.jobs import shorten
from airflow_provider_runloop.progress.states import state_name
from airflow_provider_runloop.redaction import redact_credentials
from airflow_provider_runloop.waiting import (
    EVENT_STATUSES,
    PollBudget,
    ProgressLog,
    RunWait,
    WaitPolicy,
    error_event_fields,
    read_trigger_event,
)

__all__ = [
    "EVENT_STATUSES",
    "BenchmarkJobVerdict",
    "RunloopBenchmarkJobTrigger",
    "RunloopBenchmarkRunTrigger",
    "judge_benchmark_job",
    "read_trigger_event",
]

# BenchmarkJobVerdict, judge_benchmark_job (progress) and EVENT_STATUSES, read_trigger_event (waiting)
# are re-exported: their import paths from here predate those modules.


# The kills in progress (see _PollingTrigger.on_kill): the loop keeps only weak references to tasks.
_KILLS: set[asyncio.Future[None]] = set()


def _describe(exc: Exception) -> str:
    """``Type: message`` (or the type alone), shortened for a log line or an event."""
    return shorten(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


async def _still_deferred(task_instance: Any) -> bool:
    """Whether the task instance a trigger serves is still ``deferred``, as Airflow's metadata DB says.

    Read through the Task SDK (the triggerer's supervisor answers it). ``None`` (a trigger not run for
    a task instance, as in tests that drive one directly) is not deferred.
    """
    if task_instance is None:
        return False
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    map_index = task_instance.map_index
    states = await asyncio.to_thread(
        RuntimeTaskInstance.get_task_states,
        dag_id=task_instance.dag_id,
        task_ids=[task_instance.task_id],
        run_ids=[task_instance.run_id],
        map_index=map_index,
    )
    key = (
        task_instance.task_id
        if map_index is None or map_index < 0
        else f"{task_instance.task_id}_{map_index}"
    )
    state: object = states.get(task_instance.run_id, {}).get(key)
    return state == "deferred"


@dataclass(frozen=True)
class _Poll:
    """What one poll found: is the wait over, how, and what to report."""

    done: bool
    success: bool
    message: str
    summary: dict[str, Any]


class _PollingTrigger(BaseTrigger):
    """The polling loop both triggers share; subclasses say how to poll once and how to cancel.

    A poll's failure is judged by :mod:`~airflow_provider_runloop.waiting`'s one rule (the same as a
    poke's): ``_poll`` returns ``None`` for a failure the budget still tolerates and raises what ends
    the wait, which becomes an ``error`` event carrying the error's type.
    """

    deadline: float
    runloop_conn_id: str
    poll_interval: float
    cancel_on_kill: bool

    def _check_common(
        self, deadline: float, runloop_conn_id: str, poll_interval: float, cancel_on_kill: bool
    ) -> None:
        self.deadline = check_number("deadline", deadline, minimum=0)
        self.runloop_conn_id = check_text("runloop_conn_id", runloop_conn_id)
        self.poll_interval = check_poll_interval("poll_interval", poll_interval)
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
        text = _describe(exc)
        return redact_credentials(
            f"Waiting on {self._subject} failed with an unexpected error ({text}): a server answer "
            "this provider cannot read, or a bug in it. Clear the task to wait again."
        )

    async def on_kill(self) -> None:
        """Cancel what is waited on, if ``cancel_on_kill`` and a user marked or cleared the task.

        Not if the task is still deferred: then this trigger was handed to another triggerer, which
        waits on; nor if its state cannot be read (a run left going costs less than one canceled under
        a live wait).

        The work is shielded: Airflow 3.3's triggerer cancels a killed trigger's task again on each of
        its loops (about a second) until the trigger is gone, which would otherwise interrupt the
        cancel half-way; it goes on to its end in the triggerer's event loop.
        """
        if not self.cancel_on_kill:
            return
        kill = asyncio.ensure_future(self._kill())
        _KILLS.add(kill)
        kill.add_done_callback(_KILLS.discard)
        await asyncio.shield(kill)

    async def _kill(self) -> None:
        try:
            deferred = await _still_deferred(getattr(self, "task_instance", None))
        except Exception as exc:
            self.log.warning(
                "Not canceling %s: could not read the task's state to tell a user's kill from a trigger "
                "moved to another triggerer (%s). If it was a kill, cancel the run in Runloop.",
                self._subject,
                redact_credentials(_describe(exc)),
            )
            return
        if deferred:
            self.log.info(
                "Not canceling %s: the task is still deferred, so its trigger moved to another triggerer "
                "(this one's heartbeat lapsed), which goes on waiting.",
                self._subject,
            )
            return
        self.log.info("Canceling %s: its task was marked or cleared while it waited.", self._subject)
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

    async def _poll(self, hook: RunloopHook) -> _Poll | None:
        raise NotImplementedError

    async def _cancel(self, hook: RunloopHook) -> None:
        raise NotImplementedError

    def _event(self, status: str, message: str, summary: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    async def _wait(self, hook: RunloopHook) -> dict[str, Any]:
        last: _Poll | None = None
        progress = ProgressLog()
        while True:
            try:
                poll = await self._poll(hook)
            except RunloopError as exc:
                # Fatal, or the last of too many failed polls: the task raises the same type again.
                fields = error_event_fields(exc)
                return {
                    **self._event("error", fields.pop("message"), last.summary if last else None),
                    **fields,
                }
            if poll is not None:
                last = poll
                if poll.done:
                    # Not logged here: the task logs the verdict when it resumes (once).
                    return self._event("success" if poll.success else "failure", poll.message, poll.summary)
                progress.log(
                    self.log, poll.message, running_since_ms=poll.summary.get("benchmark_run_start_time_ms")
                )
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

    Polls cheaply (:meth:`RunloopHook.acheck_benchmark_run`: two small requests while scenario runs
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
        clears it (never on a triggerer restart or a hand-over to another triggerer). Off by default:
        only the operator that started the run sets it; a sensor only watches.
    :param failure_settle_seconds: how long a scenario failure seen while the run is still open must
        hold before it is final (a retry could overturn it); ``0``: at once.
    :param failure_hold: a failure the deferring task already held
        (:meth:`~airflow_provider_runloop.progress.FailureHold.to_dict`), so its window goes on.
    :param poll_failures: polls in a row that had already failed in the deferring task, so deferring
        does not refill the budget (the same count of failed polls ends the wait in every mode).
    :param benchmark_scenario_count: when ``expected_scenario_count`` is ``None``, the number of the
        benchmark's scenarios as the deferring task read it: the trigger's polls then never read the
        benchmark (its ids are read once, for the final listing, to name scenarios that never started).
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
        poll_failures: int = 0,
        benchmark_scenario_count: int | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is unannotated
        self.benchmark_run_id = validate_id("benchmark_run_id", benchmark_run_id)
        self._check_common(deadline, runloop_conn_id, poll_interval, cancel_on_kill)
        self.policy = WaitPolicy(
            expected_scenario_count=expected_scenario_count,
            accept_scored=accept_scored,
            fail_on_scenario_failure=fail_on_scenario_failure,
            max_consecutive_poll_failures=max_consecutive_poll_failures,
            failure_settle_seconds=failure_settle_seconds,
        )
        self._wait_state = RunWait(
            self.policy,
            failure_hold=FailureHold.from_dict(failure_hold),
            poll_failures=poll_failures,
            benchmark_scenario_count=benchmark_scenario_count,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "benchmark_run_id": self.benchmark_run_id,
            "deadline": self.deadline,
            "runloop_conn_id": self.runloop_conn_id,
            "poll_interval": self.poll_interval,
            **self._wait_state.trigger_kwargs(),
        }
        # Only when set, so triggers stored by an older version (and the sensor's) keep their kwargs.
        if self.cancel_on_kill:
            kwargs["cancel_on_kill"] = True
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    @property
    def _subject(self) -> str:
        return f"Benchmark run {self.benchmark_run_id}"

    async def _poll(self, hook: RunloopHook) -> _Poll | None:
        # One hook for the trigger's life: it keeps the count plan and the benchmark's scenario count.
        verdict = await self._wait_state.apoll(hook.acheck_benchmark_run, self.benchmark_run_id, self.log)
        if verdict is None:
            return None
        return _Poll(verdict.done, verdict.success, verdict.message, verdict.summary.to_dict())

    async def _cancel(self, hook: RunloopHook) -> None:
        run = await hook.aget_benchmark_run(self.benchmark_run_id)
        if run.state != BenchmarkRunState.RUNNING:
            self.log.info("Benchmark run %s is already %s: nothing to cancel", run.id, state_name(run.state))
            return
        canceled = await hook.acancel_benchmark_run(self.benchmark_run_id)
        self.log.info(
            "Canceled benchmark run %s (the task was killed): it is %s",
            canceled.id,
            state_name(canceled.state),
        )

    def _event(self, status: str, message: str, summary: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "status": status,
            "benchmark_run_id": self.benchmark_run_id,
            "message": message,
            "summary": summary,
        }


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
        self._check_common(deadline, runloop_conn_id, poll_interval, cancel_on_kill)
        self._budget = PollBudget(max_consecutive_poll_failures)
        self.max_consecutive_poll_failures = self._budget.limit

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

    async def _poll(self, hook: RunloopHook) -> _Poll | None:
        job = await self._budget.arun(lambda: hook.aget_benchmark_job(self.benchmark_job_id), self.log)
        if job is None:
            return None
        verdict = judge_benchmark_job(job)
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
