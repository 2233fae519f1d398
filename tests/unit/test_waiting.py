"""waiting.py: the one poll-failure rule, the wait policy, the wait a task holds, the trigger's event."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from airflow_provider_runloop import exceptions
from airflow_provider_runloop.exceptions import (
    RunloopAuthenticationError,
    RunloopBadRequestError,
    RunloopConflictError,
    RunloopError,
    RunloopInvalidRequestError,
    RunloopInvalidResponseError,
    RunloopNotFoundError,
    RunloopRateLimitError,
    RunloopRedirectError,
    RunloopServerError,
    RunloopTimeoutError,
    RunloopTransportError,
    RunloopUnknownStateError,
)
from airflow_provider_runloop.progress import BenchmarkRunVerdict, FailureHold
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger
from airflow_provider_runloop.waiting import (
    PollBudget,
    RunWait,
    WaitPolicy,
    error_event_fields,
    is_transient,
    read_trigger_event,
    verdict_from_event,
)
from tests.support.task_state import FakeStateStore

log = logging.getLogger(__name__)


def _api(cls: type[exceptions.RunloopAPIError], status: int) -> RunloopError:
    return cls(status, "GET", "/v1/benchmark_runs/bmr_1")


TRANSIENT = [
    _api(RunloopServerError, 503),
    _api(RunloopRateLimitError, 429),
    _api(RunloopConflictError, 409),
    RunloopTransportError("GET", "/v1/x", "server disconnected"),
    RunloopTimeoutError("GET", "/v1/x", "read timeout"),
    RunloopInvalidResponseError("a page without has_more"),
]
FATAL = [
    _api(RunloopAuthenticationError, 401),
    _api(RunloopNotFoundError, 404),
    _api(RunloopBadRequestError, 400),
    RunloopUnknownStateError("state 'paused'"),
    RunloopRedirectError("GET", "/v1/x", "redirect loop"),
    RunloopInvalidRequestError("GET", "/v1/x", "bad header"),
    ValueError("bad input"),
    TypeError("a bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda exc: type(exc).__name__)
def test_server_and_network_failures_spend_the_budget(exc: RunloopError) -> None:
    assert is_transient(exc)
    budget = PollBudget(2)
    assert budget.record_failure(exc)
    assert budget.record_failure(exc)
    assert not budget.record_failure(exc)  # the third in a row: the wait ends with this error
    assert "Gave up after 3 failed polls in a row (max_consecutive_poll_failures=2)" in str(exc)


@pytest.mark.parametrize("exc", FATAL, ids=lambda exc: type(exc).__name__)
def test_errors_no_later_poll_can_fix_end_the_wait_at_once(exc: Exception) -> None:
    assert not is_transient(exc)
    budget = PollBudget(5)
    assert not budget.record_failure(exc)
    assert budget.failures == 0


def test_the_class_decides_not_one_requests_should_retry() -> None:
    # x-should-retry: false stops the client's retries of that request; the next poll is a new request.
    error = _api(RunloopServerError, 503)
    error.retryable = False
    assert is_transient(error)


def test_a_poll_that_works_resets_the_count() -> None:
    budget = PollBudget(1)
    assert budget.run(lambda: (_ for _ in ()).throw(_api(RunloopServerError, 502)), log) is None
    assert budget.failures == 1
    assert budget.run(lambda: "ok", log) == "ok"
    assert budget.failures == 0
    assert budget.run(lambda: (_ for _ in ()).throw(_api(RunloopServerError, 502)), log) is None


def test_a_budget_kept_in_a_state_store_survives_a_new_process() -> None:
    store = FakeStateStore()
    PollBudget(3, store, "k").record_failure(_api(RunloopServerError, 503))
    again = PollBudget(3, store, "k")  # the next reschedule-mode poke: a fresh process
    assert again.failures == 1
    store.set("k", "garbage")
    assert PollBudget(3, store, "k").failures == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expected_scenario_count": 0}, "expected_scenario_count"),
        ({"accept_scored": "yes"}, "accept_scored"),
        ({"fail_on_scenario_failure": 1}, "fail_on_scenario_failure"),
        ({"max_consecutive_poll_failures": -1}, "max_consecutive_poll_failures"),
        ({"failure_settle_seconds": float("nan")}, "failure_settle_seconds"),
    ],
)
def test_a_policy_is_checked_once_naming_the_option(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WaitPolicy(**kwargs)


def test_the_policy_reaches_the_trigger_unchanged() -> None:
    policy = WaitPolicy(expected_scenario_count=3, accept_scored=True, failure_settle_seconds=5)
    trigger = RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=1.0, **policy.to_trigger_kwargs())
    _, kwargs = trigger.serialize()
    assert {key: kwargs[key] for key in policy.to_trigger_kwargs()} == policy.to_trigger_kwargs()
    assert RunloopBenchmarkRunTrigger(**json.loads(json.dumps(kwargs))).policy == policy


def test_a_held_failure_is_kept_where_the_next_poll_finds_it(held_verdict: BenchmarkRunVerdict) -> None:
    store = FakeStateStore()
    calls: list[dict[str, Any]] = []

    def check(benchmark_run_id: str, **kwargs: Any) -> BenchmarkRunVerdict:
        calls.append(kwargs)
        return held_verdict

    assert RunWait(WaitPolicy(), store, key_suffix="_try_1").poll(check, "bmr_1", log) is held_verdict
    again = RunWait(WaitPolicy(), store, key_suffix="_try_1")
    assert again.failure_hold == held_verdict.failure_hold
    again.poll(check, "bmr_1", log)
    assert calls[1]["failure_hold"] == held_verdict.failure_hold
    assert again.trigger_kwargs()["failure_hold"] == held_verdict.failure_hold.to_dict()  # type: ignore[union-attr]
    assert RunWait(WaitPolicy(), store, key_suffix="_try_2").failure_hold is None


@pytest.fixture
def held_verdict() -> BenchmarkRunVerdict:
    from tests.support.progress_runs import sample_summaries

    return BenchmarkRunVerdict(sample_summaries()[0], FailureHold(since=100.0, total_scenario_runs=3))


ERROR_TYPES = sorted(
    name
    for name in exceptions.__all__
    if isinstance(getattr(exceptions, name), type) and issubclass(getattr(exceptions, name), RunloopError)
)


@pytest.mark.parametrize("name", ERROR_TYPES)
def test_an_error_event_is_raised_again_with_the_same_type(name: str) -> None:
    cls = getattr(exceptions, name)
    exc = cls.__new__(cls)
    Exception.__init__(exc, "what went wrong")
    event = {"status": "error", **error_event_fields(exc)}
    json.dumps(event, allow_nan=False)
    with pytest.raises(cls, match="what went wrong") as raised:
        read_trigger_event(event, "summary", timed_out=TimeoutError, source="test trigger")
    assert type(raised.value) is cls


@pytest.mark.parametrize(
    "error_type", [None, 3, "ValueError", "SystemExit", "os", "RunloopNoSuchError", ["x"]]
)
def test_an_error_event_of_another_type_is_a_plain_runloop_error(error_type: object) -> None:
    event = {"status": "error", "message": "boom", "error_type": error_type}
    with pytest.raises(RunloopError, match="boom") as raised:
        read_trigger_event(event, "summary", timed_out=TimeoutError, source="test trigger")
    assert type(raised.value) is RunloopError


def test_an_unreadable_summary_is_an_invalid_response() -> None:
    event = {"status": "success", "message": "", "summary": {"benchmark_run_id": 3}}
    with pytest.raises(RunloopInvalidResponseError, match="summary this task cannot read"):
        verdict_from_event(event, timed_out=TimeoutError)


def test_a_wait_that_defers_does_not_refill_its_budget() -> None:
    wait = RunWait(WaitPolicy(max_consecutive_poll_failures=2))

    def failing(benchmark_run_id: str, **kwargs: Any) -> BenchmarkRunVerdict:
        raise _api(RunloopServerError, 503)

    assert wait.poll(failing, "bmr_1", log) is None
    kwargs = wait.trigger_kwargs()
    assert kwargs["poll_failures"] == 1
    trigger = RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=1.0, **kwargs)
    _, serialized = trigger.serialize()
    assert serialized["poll_failures"] == 1
    assert trigger._wait_state.budget.failures == 1
    assert "poll_failures" not in RunWait(WaitPolicy()).trigger_kwargs()
    with pytest.raises(ValueError, match="poll_failures"):
        RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=1.0, poll_failures=-1)


def test_the_progress_line_is_logged_when_it_changes_and_on_the_heartbeat() -> None:
    from airflow_provider_runloop.waiting import PROGRESS_HEARTBEAT, ProgressLog

    logged: list[str] = []

    class Log:
        def info(self, template: str, message: str) -> None:
            logged.append(template % message)

    progress = ProgressLog()
    shown = [
        progress.log(Log(), "0/5 finished", now=0.0),  # type: ignore[arg-type]
        progress.log(Log(), "0/5 finished", now=10.0),  # type: ignore[arg-type]
        progress.log(Log(), "1/5 finished", now=20.0),  # type: ignore[arg-type]
        progress.log(Log(), "1/5 finished", now=20.0 + PROGRESS_HEARTBEAT - 1),  # type: ignore[arg-type]
        progress.log(Log(), "1/5 finished", now=20.0 + PROGRESS_HEARTBEAT),  # type: ignore[arg-type]
    ]
    assert shown == [True, False, True, False, True]
    assert logged == ["0/5 finished", "1/5 finished", "1/5 finished"]


def test_the_progress_line_says_how_long_the_run_has_been_going(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_runloop import waiting

    logged: list[str] = []

    class Log:
        def info(self, template: str, message: str) -> None:
            logged.append(template % message)

    monkeypatch.setattr(waiting.time, "time", lambda: 1_000_725.0)
    progress = waiting.ProgressLog()
    started = 1_000_000_000  # ms: 725 s before "now"
    assert progress.log(Log(), "1/5 finished", now=0.0, running_since_ms=started)  # type: ignore[arg-type]
    # The elapsed time is not part of the comparison: the same counts are not logged again for it.
    assert not progress.log(Log(), "1/5 finished", now=10.0, running_since_ms=started)  # type: ignore[arg-type]
    assert logged == ["1/5 finished (running for 12 minutes 5 seconds)"]
