"""How a task waits: the one place that knows it, for the sensor, the triggers and the operators alike.

- :class:`WaitPolicy`: the options of a wait on a benchmark run, checked once, with
  :meth:`~WaitPolicy.to_trigger_kwargs` for the trigger that carries them into the triggerer.
- :class:`PollBudget`: the one rule for a poll that failed. An error a later poll may not meet again
  (:func:`is_transient`: the server failed, the network did, or an answer did not parse) is counted, and
  the ``max_consecutive_poll_failures + 1``-th in a row ends the wait with that error; any other error
  (authentication, not found, a refused request, an unknown state, bad input) ends it at once.
- :class:`RunWait`: what one task holds while it waits on one run (the policy, its budget, the failure
  it holds), so that a poke, a reschedule and a trigger loop take the same steps.
- :func:`read_trigger_event` and :func:`error_event_fields`: the one event a trigger sends, and the
  error it stands for, raised again with the same type in the task that deferred.
- :class:`ProgressLog`: a wait's progress line, logged when it changes and every few minutes.
- :data:`DEFERRAL_GRACE`.

Below the hooks and triggers (it imports neither): data flows client → models → progress → waiting →
hook, trigger, sensor, operators.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from airflow_provider_runloop import exceptions
from airflow_provider_runloop.arguments import check_count, check_flag, check_number, check_optional_count
from airflow_provider_runloop.exceptions import (
    RunloopBenchmarkRunFailedError,
    RunloopError,
    RunloopInvalidResponseError,
)
from airflow_provider_runloop.progress import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    BenchmarkRunSummary,
    BenchmarkRunVerdict,
    FailureHold,
    human_duration,
)

if TYPE_CHECKING:
    import logging

    from airflow.sdk.types import Logger

__all__ = [
    "DEFERRAL_GRACE",
    "EVENT_STATUSES",
    "PROGRESS_HEARTBEAT",
    "PolicyOption",
    "PollBudget",
    "ProgressLog",
    "RunWait",
    "WaitMemory",
    "WaitPolicy",
    "WaitPolicyOptions",
    "deferral_timeout",
    "error_event_fields",
    "finish_run_wait",
    "is_transient",
    "read_trigger_event",
    "verdict_from_event",
]

DEFERRAL_GRACE: Final = timedelta(minutes=5)
"""A deferral's own time-out is a safety net behind the trigger's deadline (say the triggerer is down
at the deadline): the trigger's deadline plus this, so it never fires first."""

PROGRESS_HEARTBEAT: Final = 300.0
"""Seconds after which an unchanged progress line is logged again, to show the wait is alive."""

#: The ``status`` values of a trigger's one event.
EVENT_STATUSES: Final = frozenset({"success", "failure", "timeout", "error"})

_SHOWN_STATUS_CHARS: Final = 40
_T = TypeVar("_T")


def is_transient(exc: BaseException) -> bool:
    """Whether a poll that failed with ``exc`` may succeed next time (so it spends the failure budget).

    The error's *class* decides (:attr:`~airflow_provider_runloop.exceptions.RunloopError.retryable`):
    server errors, rate limits, conflicts, transport errors and invalid responses are transient.
    A server's word on one request (``x-should-retry: false``, a ``Retry-After`` longer than the client
    waits) stops the client's retries of that request, but the next poll is a new request. Anything
    that is not a :class:`~airflow_provider_runloop.exceptions.RunloopError` (a bug, bad input) is fatal.
    """
    return isinstance(exc, RunloopError) and type(exc).retryable


class WaitMemory(Protocol):
    """Where a wait keeps its budget and held failure between polls: a dict, or Airflow's task state
    store (``context["task_state_store"]``) in reschedule mode, where each poke is a new process."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class _InMemory:
    """A :class:`WaitMemory` for one process (poke mode, the triggerer, an operator's own loop)."""

    def __init__(self) -> None:
        self._values: MutableMapping[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._values[key] = value


class PollBudget:
    """Failed polls in a row, against ``max_consecutive_poll_failures``: the one rule for every waiter.

    :param limit: polls in a row that may fail (each after the client's own retries) and the wait goes on.
    :param memory: where the count lives between polls (default: this object).
    :param key: the count's key in ``memory``.
    """

    def __init__(
        self, limit: int, memory: WaitMemory | None = None, key: str = "runloop_poll_failures"
    ) -> None:
        self.limit = check_count("max_consecutive_poll_failures", limit, minimum=0)
        self._memory: WaitMemory = memory if memory is not None else _InMemory()
        self._key = key

    @property
    def failures(self) -> int:
        """Failed polls in a row so far."""
        failures = self._memory.get(self._key, 0)
        return failures if isinstance(failures, int) and not isinstance(failures, bool) else 0

    def record_failure(self, exc: BaseException) -> bool:
        """Count a failed poll. ``True``: the wait goes on; ``False``: it must end, with ``exc``.

        When the budget is spent, ``exc``'s message says so (shown with it, and in a trigger's event).
        """
        if not is_transient(exc):
            return False
        failures = self.failures + 1
        self._memory.set(self._key, failures)
        if failures <= self.limit:
            return True
        note = f"Gave up after {failures} failed polls in a row (max_consecutive_poll_failures={self.limit})"
        exc.args = (f"{exc}. {note}.", *exc.args[1:])
        return False

    def reset(self) -> None:
        """A poll worked: the next failure is the first in a row again."""
        if self.failures:
            self._memory.set(self._key, 0)

    def run(self, poll: Callable[[], _T], log: Logger | logging.Logger) -> _T | None:
        """``poll()``'s result, or ``None`` if it failed and the wait goes on (logged); else raise.

        :raises Exception: what ``poll`` raised, when it ends the wait (fatal, or the budget is spent).
        """
        try:
            result = poll()
        except Exception as exc:
            if not self.record_failure(exc):
                raise
            log.warning("Poll %d in a row failed: %s", self.failures, exc)
            return None
        self.reset()
        return result

    async def arun(self, poll: Callable[[], Awaitable[_T]], log: Logger | logging.Logger) -> _T | None:
        """Async twin of :meth:`run`."""
        try:
            result = await poll()
        except Exception as exc:
            if not self.record_failure(exc):
                raise
            log.warning("Poll %d in a row failed: %s", self.failures, exc)
            return None
        self.reset()
        return result


class ProgressLog:
    """A wait's progress line in the task log: when it changes, and every ``heartbeat`` seconds.

    A long wait polls hundreds of times with the same counts; one line per poll floods the log (and, in
    a triggerer with a thousand waits, costs CPU). The final verdict is not logged here: the task logs
    it once when the wait ends.

    :param heartbeat: seconds after which an unchanged line is logged again.
    """

    def __init__(self, heartbeat: float = PROGRESS_HEARTBEAT) -> None:
        self._heartbeat = heartbeat
        self._last: str | None = None
        self._logged_at = float("-inf")

    def log(
        self,
        log: Logger | logging.Logger,
        message: str,
        now: float | None = None,
        *,
        running_since_ms: int | None = None,
    ) -> bool:
        """Log ``message`` if it is new or the heartbeat is due; ``True`` if it was logged.

        :param log: the task's or trigger's logger.
        :param message: the progress line (compared with the last one logged).
        :param now: the monotonic clock, for the heartbeat (default: ``time.monotonic()``).
        :param running_since_ms: when what is waited for started (ms since the Unix epoch): the line
            then says how long it has been going, e.g. ``(running for 12 minutes 5 seconds)``. Not part
            of the comparison, so a line whose counts have not changed is not logged again for it.
        """
        now = time.monotonic() if now is None else now
        if message == self._last and now - self._logged_at < self._heartbeat:
            return False
        self._last, self._logged_at = message, now
        if running_since_ms is not None:
            message += f" (running for {human_duration(time.time() - running_since_ms / 1000)})"
        log.info("%s", message)
        return True


@dataclass(frozen=True)
class WaitPolicy:
    """The options of a wait on a benchmark run, checked once; the same for every task that waits.

    :param expected_scenario_count: how many scenarios the run should have; ``None``: the benchmark's
        ``scenarioIds`` (fetched when the verdict depends on them), else unknown.
    :param accept_scored: count ``scored`` scenario runs as finished.
    :param fail_on_scenario_failure: a run whose scenarios failed is a failure (default), or a success
        that reports them.
    :param max_consecutive_poll_failures: see :class:`PollBudget`.
    :param failure_settle_seconds: how long a scenario failure seen while the run is still open must hold
        before it is final (see the completion rule); ``0``: at once.
    :raises ValueError: naming the option, for a value that cannot work.
    """

    expected_scenario_count: int | None = None
    accept_scored: bool = False
    fail_on_scenario_failure: bool = True
    max_consecutive_poll_failures: int = 5
    failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS

    def __post_init__(self) -> None:
        checked = {
            "expected_scenario_count": check_optional_count(
                "expected_scenario_count", self.expected_scenario_count
            ),
            "accept_scored": check_flag("accept_scored", self.accept_scored),
            "fail_on_scenario_failure": check_flag("fail_on_scenario_failure", self.fail_on_scenario_failure),
            "max_consecutive_poll_failures": check_count(
                "max_consecutive_poll_failures", self.max_consecutive_poll_failures, minimum=0
            ),
            "failure_settle_seconds": check_number(
                "failure_settle_seconds", self.failure_settle_seconds, minimum=0
            ),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def to_trigger_kwargs(self) -> dict[str, Any]:
        """The policy as :class:`~airflow_provider_runloop.triggers.runloop.RunloopBenchmarkRunTrigger`
        keyword arguments (JSON primitives)."""
        return {
            "expected_scenario_count": self.expected_scenario_count,
            "accept_scored": self.accept_scored,
            "fail_on_scenario_failure": self.fail_on_scenario_failure,
            "max_consecutive_poll_failures": self.max_consecutive_poll_failures,
            "failure_settle_seconds": self.failure_settle_seconds,
        }

    def check_kwargs(self) -> dict[str, Any]:
        """The policy as :meth:`~airflow_provider_runloop.hooks.runloop.RunloopHook.check_benchmark_run`
        keyword arguments (the failure hold aside)."""
        return {
            "expected_count": self.expected_scenario_count,
            "expected_from_benchmark": self.expected_scenario_count is None,
            "accept_scored": self.accept_scored,
            "fail_on_scenario_failure": self.fail_on_scenario_failure,
            "failure_settle_seconds": self.failure_settle_seconds,
        }


class PolicyOption:
    """A task attribute that reads the option of the same name from the task's ``policy``.

    ``sensor.accept_scored`` reads ``sensor.policy.accept_scored``: the options stay attributes, as
    Airflow users expect, while the policy checked once is the one source.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, task: object, owner: type | None = None) -> Any:
        if task is None:
            return self
        return getattr(task.policy, self._name)  # type: ignore[attr-defined]


class WaitPolicyOptions:
    """The options of a task's :class:`WaitPolicy` as its attributes (``task.accept_scored``), read from
    ``task.policy``: a base of the sensor and of the operators that wait on a run, which set ``policy``."""

    policy: WaitPolicy

    expected_scenario_count = PolicyOption()
    accept_scored = PolicyOption()
    fail_on_scenario_failure = PolicyOption()
    max_consecutive_poll_failures = PolicyOption()
    failure_settle_seconds = PolicyOption()


# The hook's check_benchmark_run / acheck_benchmark_run (waiting imports no hook).
_Check = Callable[..., BenchmarkRunVerdict]
_AsyncCheck = Callable[..., Awaitable[BenchmarkRunVerdict]]


class RunWait:
    """One task's wait on one benchmark run: the steps of a poll, the same in every mode.

    Each poll checks the run with the policy and the failure held so far; a failed poll spends the
    :class:`PollBudget` (``None`` is returned while it lasts) or raises. The sensor, the start operator
    and the run trigger each hold one.

    :param policy: the wait's options.
    :param memory: where the budget and the held failure live between polls (default: this object).
    :param key_suffix: appended to the memory keys (the reschedule-mode sensor keeps one set per try).
    :param failure_hold: a failure already held (the deferring task's, carried in trigger kwargs).
    :param poll_failures: failed polls in a row so far (the deferring task's, carried in trigger kwargs).
    :param benchmark_scenario_count: the number of the benchmark's scenarios, when the task that
        deferred read it (carried in trigger kwargs, so the triggerer never reads the benchmark's ids to
        count them); only used when the policy expects the benchmark's scenarios.
    """

    def __init__(
        self,
        policy: WaitPolicy,
        memory: WaitMemory | None = None,
        *,
        key_suffix: str = "",
        failure_hold: FailureHold | None = None,
        poll_failures: int = 0,
        benchmark_scenario_count: int | None = None,
    ) -> None:
        self.policy = policy
        self.benchmark_scenario_count = check_optional_count(
            "benchmark_scenario_count", benchmark_scenario_count
        )
        self._memory: WaitMemory = memory if memory is not None else _InMemory()
        self._hold_key = f"runloop_failure_hold{key_suffix}"
        self._failures_key = f"runloop_poll_failures{key_suffix}"
        self.budget = PollBudget(policy.max_consecutive_poll_failures, self._memory, self._failures_key)
        if failure_hold is not None:
            self._memory.set(self._hold_key, failure_hold.to_dict())
        if poll_failures:
            self._memory.set(self._failures_key, check_count("poll_failures", poll_failures, minimum=0))

    @property
    def failure_hold(self) -> FailureHold | None:
        """The scenario failure being held (waiting out the settle window), if any."""
        return FailureHold.from_dict(self._memory.get(self._hold_key))

    def poll(
        self, check: _Check, benchmark_run_id: str, log: Logger | logging.Logger
    ) -> BenchmarkRunVerdict | None:
        """One poll with ``check`` (the hook's ``check_benchmark_run``); ``None`` if it failed within budget.

        :raises RunloopError: what ended the wait: a fatal error, or the last of too many failed polls.
        """
        hold = self.failure_hold
        verdict = self.budget.run(lambda: check(benchmark_run_id, **self._check_kwargs(hold)), log)
        return None if verdict is None else self._polled(verdict, hold)

    async def apoll(
        self, check: _AsyncCheck, benchmark_run_id: str, log: Logger | logging.Logger
    ) -> BenchmarkRunVerdict | None:
        """Async twin of :meth:`poll` (``check`` is the hook's ``acheck_benchmark_run``)."""
        hold = self.failure_hold
        verdict = await self.budget.arun(lambda: check(benchmark_run_id, **self._check_kwargs(hold)), log)
        return None if verdict is None else self._polled(verdict, hold)

    def _check_kwargs(self, hold: FailureHold | None) -> dict[str, Any]:
        kwargs = {**self.policy.check_kwargs(), "failure_hold": hold}
        if self.benchmark_scenario_count is not None and self.policy.expected_scenario_count is None:
            kwargs["benchmark_scenario_count"] = self.benchmark_scenario_count
        return kwargs

    def _polled(self, verdict: BenchmarkRunVerdict, hold: FailureHold | None) -> BenchmarkRunVerdict:
        if verdict.failure_hold != hold:
            # ``{}`` for "no hold": Airflow's task state store refuses None (FailureHold reads {} as none).
            self._memory.set(self._hold_key, verdict.failure_hold.to_dict() if verdict.failure_hold else {})
        return verdict

    def trigger_kwargs(self) -> dict[str, Any]:
        """The policy, the held failure and the failed polls in a row so far, as run-trigger keyword
        arguments: a wait that defers goes on where it was (its budget is not refilled)."""
        hold = self.failure_hold
        kwargs = {**self.policy.to_trigger_kwargs(), "failure_hold": hold.to_dict() if hold else None}
        if self.budget.failures:
            kwargs["poll_failures"] = self.budget.failures
        if self.benchmark_scenario_count is not None and self.policy.expected_scenario_count is None:
            # A number, never the ids: the kwargs stay a few hundred bytes whatever the benchmark's size.
            kwargs["benchmark_scenario_count"] = self.benchmark_scenario_count
        return kwargs


def finish_run_wait(verdict: BenchmarkRunVerdict) -> dict[str, Any]:
    """The summary of a finished wait, as XCom; raises if the run is a failure under the rule.

    :raises RunloopBenchmarkRunFailedError: the run failed, was canceled, or scenarios failed.
    """
    if not verdict.success:
        raise RunloopBenchmarkRunFailedError(verdict.message)
    return verdict.summary.to_dict()


def deferral_timeout(deadline: float) -> timedelta:
    """The ``timeout`` to defer with, for a trigger whose own deadline is ``deadline`` (Unix seconds)."""
    return timedelta(seconds=max(0.0, deadline - time.time())) + DEFERRAL_GRACE


# --- the trigger's one event ----------------------------------------------------------------------


def error_event_fields(exc: BaseException) -> dict[str, Any]:
    """What an ``error`` event says of ``exc``: its message and, for our errors, its type.

    The task that deferred raises the same type again (:func:`read_trigger_event`), so a wait that ends
    in the triggerer fails with the error a poke would have raised.
    """
    fields: dict[str, Any] = {"message": str(exc)}
    if isinstance(exc, RunloopError):
        fields["error_type"] = type(exc).__name__
    return fields


def _error_from_event(error_type: object, message: str) -> RunloopError:
    found = getattr(exceptions, error_type, None) if isinstance(error_type, str) else None
    if not (isinstance(found, type) and issubclass(found, RunloopError) and error_type in exceptions.__all__):
        return RunloopError(message)
    # Built without its own __init__ (an API error's takes a status and a path): its type and message.
    error = found.__new__(found)
    Exception.__init__(error, message)
    return error


def read_trigger_event(
    event: object, payload_key: str, *, timed_out: Callable[[str], BaseException], source: str
) -> tuple[str, str, dict[str, Any]]:
    """Check one of our triggers' events; raise what a ``timeout`` or ``error`` event says.

    :param event: the event payload as the task received it.
    :param payload_key: where a ``success``/``failure`` event carries its summary (``summary``, ``job``).
    :param timed_out: builds the exception a ``timeout`` raises (the sensor and the operators differ).
    :param source: names the trigger in error messages.
    :return: ``(status, message, payload)`` for a ``success`` or ``failure`` event.
    :raises RunloopError: for an ``error`` event, of the type the trigger's error had.
    :raises RunloopInvalidResponseError: for an event this task cannot read.
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
        raise _error_from_event(event.get("error_type"), message)
    payload = event.get(payload_key)
    if not isinstance(payload, dict):
        raise RunloopInvalidResponseError(f"The {source}'s {status} event has no {payload_key}")
    return status, message, payload


def verdict_from_event(
    event: object, *, timed_out: Callable[[str], BaseException], source: str = "Runloop trigger"
) -> BenchmarkRunVerdict:
    """The run trigger's event as the verdict it carries; raises what a ``timeout``/``error`` says.

    :raises RunloopInvalidResponseError: for an event whose summary cannot be read.
    """
    _, _, summary = read_trigger_event(event, "summary", timed_out=timed_out, source=source)
    try:
        return BenchmarkRunVerdict(BenchmarkRunSummary.from_dict(summary))
    except ValueError as exc:
        raise RunloopInvalidResponseError(
            f"The {source}'s event has a summary this task cannot read: {exc}"
        ) from None
