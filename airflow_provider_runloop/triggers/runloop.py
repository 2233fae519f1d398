"""Deferrable waiting on a benchmark run, in the triggerer's event loop.

The trigger polls cheaply (:meth:`RunloopHook.acheck_benchmark_run`: five small requests while
scenario runs are active, one full listing at the end), yields exactly one small event and stops.
It only ever reads: Airflow may run two copies of a trigger at once, and a triggerer restart cancels
it, so it must never cancel or change anything remote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_runloop.arguments import (
    check_count,
    check_flag,
    check_number,
    check_optional_count,
    check_text,
)
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.exceptions import (
    RunloopAuthenticationError,
    RunloopBadRequestError,
    RunloopError,
    RunloopNotFoundError,
    RunloopUnknownStateError,
)
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.progress import BenchmarkRunSummary

__all__ = ["EVENT_STATUSES", "RunloopBenchmarkRunTrigger"]

#: The ``status`` values of the trigger's one event.
EVENT_STATUSES = frozenset({"success", "failure", "timeout", "error"})

# Errors no retry can fix: end the wait at once instead of spending the failure budget.
_FATAL_ERRORS = (
    RunloopAuthenticationError,
    RunloopNotFoundError,
    RunloopBadRequestError,
    RunloopUnknownStateError,
    ValueError,
)


class RunloopBenchmarkRunTrigger(BaseTrigger):
    """Wait until a benchmark run is done, then fire one event.

    The event's payload is small whatever the run's size: ``status`` (one of ``success``,
    ``failure``, ``timeout``, ``error``), ``benchmark_run_id``, a one-line ``message`` and the
    ``summary`` (see :class:`~airflow_provider_runloop.progress.BenchmarkRunSummary`) when one exists.

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
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is unannotated
        self.benchmark_run_id = validate_id("benchmark_run_id", benchmark_run_id)
        self.deadline = check_number("deadline", deadline, minimum=0)
        self.runloop_conn_id = check_text("runloop_conn_id", runloop_conn_id)
        self.poll_interval = check_number("poll_interval", poll_interval, minimum=0, inclusive=False)
        self.expected_scenario_count = check_optional_count(
            "expected_scenario_count", expected_scenario_count
        )
        self.accept_scored = check_flag("accept_scored", accept_scored)
        self.fail_on_scenario_failure = check_flag("fail_on_scenario_failure", fail_on_scenario_failure)
        self.max_consecutive_poll_failures = check_count(
            "max_consecutive_poll_failures", max_consecutive_poll_failures, minimum=0
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "benchmark_run_id": self.benchmark_run_id,
                "deadline": self.deadline,
                "runloop_conn_id": self.runloop_conn_id,
                "poll_interval": self.poll_interval,
                "expected_scenario_count": self.expected_scenario_count,
                "accept_scored": self.accept_scored,
                "fail_on_scenario_failure": self.fail_on_scenario_failure,
                "max_consecutive_poll_failures": self.max_consecutive_poll_failures,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = RunloopHook(runloop_conn_id=self.runloop_conn_id)
        try:
            payload = await self._wait(hook)
        finally:
            await hook.aclose()
        yield TriggerEvent(payload)

    async def _wait(self, hook: RunloopHook) -> dict[str, Any]:
        expected_ids: list[str] | None = None
        expected_resolved = self.expected_scenario_count is not None
        failures = 0
        last_summary: BenchmarkRunSummary | None = None
        while True:
            try:
                if not expected_resolved:
                    run = await hook.aget_benchmark_run(self.benchmark_run_id)
                    expected_ids = await hook.aget_expected_scenario_ids(run)
                    expected_resolved = True
                verdict = await hook.acheck_benchmark_run(
                    self.benchmark_run_id,
                    expected_count=self.expected_scenario_count,
                    expected_scenario_ids=expected_ids,
                    accept_scored=self.accept_scored,
                    fail_on_scenario_failure=self.fail_on_scenario_failure,
                )
            except _FATAL_ERRORS as exc:
                return self._event("error", str(exc), last_summary)
            except RunloopError as exc:
                failures += 1
                if failures > self.max_consecutive_poll_failures:
                    message = f"Gave up after {failures} failed polls in a row; the last: {exc}"
                    return self._event("error", message, last_summary)
                self.log.warning("Poll %d in a row failed: %s", failures, exc)
            else:
                failures = 0
                last_summary = verdict.summary
                self.log.info("%s", verdict.message)
                if verdict.done:
                    status = "success" if verdict.success else "failure"
                    return self._event(status, verdict.message, verdict.summary)
            remaining = self.deadline - time.time()
            if remaining <= 0:
                message = f"Benchmark run {self.benchmark_run_id} was not done by the deadline"
                if last_summary is not None:
                    message += f": {last_summary.message}"
                return self._event("timeout", message, last_summary)
            # Wake at the deadline at the latest, for the last check.
            await asyncio.sleep(min(self.poll_interval, remaining))

    def _event(self, status: str, message: str, summary: BenchmarkRunSummary | None) -> dict[str, Any]:
        return {
            "status": status,
            "benchmark_run_id": self.benchmark_run_id,
            "message": message,
            "summary": summary.to_dict() if summary is not None else None,
        }
