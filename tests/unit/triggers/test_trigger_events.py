"""Both triggers always end with one event the task can read, and read_trigger_event reads any payload.

Whatever goes wrong while waiting, short of cancellation, becomes an ``error`` event with a clear
message (never a raw traceback that Airflow shows as "Trigger failure"), and every event is strict JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:  # anyio's backport, what the triggerer's connect raises on 3.10
    from exceptiongroup import ExceptionGroup

from airflow_provider_runloop.exceptions import RunloopError, RunloopInvalidResponseError
from airflow_provider_runloop.triggers import runloop as triggers
from airflow_provider_runloop.triggers.runloop import (
    RunloopBenchmarkJobTrigger,
    RunloopBenchmarkRunTrigger,
    read_trigger_event,
)


class _Hook:
    """Stands in for RunloopHook: the poll is replaced, so nothing is ever sent."""

    def __init__(self, runloop_conn_id: str) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


def _run_trigger() -> RunloopBenchmarkRunTrigger:
    return RunloopBenchmarkRunTrigger(benchmark_run_id="bmr_1", deadline=4_000_000_000.0)


def _job_trigger() -> RunloopBenchmarkJobTrigger:
    return RunloopBenchmarkJobTrigger(benchmark_job_id="bmj_1", deadline=4_000_000_000.0)


async def _events(trigger: Any) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


@pytest.mark.parametrize("make", [_run_trigger, _job_trigger], ids=["run", "job"])
@pytest.mark.parametrize(
    ("raised", "shown"),
    [
        pytest.param(TypeError("unhashable type: 'list'"), "TypeError: unhashable type", id="type-error"),
        pytest.param(OverflowError("int too large"), "OverflowError: int too large", id="overflow"),
        pytest.param(
            ExceptionGroup("connect", [OverflowError("port must be 0-65535.")]),
            "ExceptionGroup",
            id="exception-group",
        ),
        pytest.param(KeyError("runs"), "KeyError", id="key-error"),
    ],
)
async def test_an_unexpected_error_while_waiting_is_an_error_event(
    monkeypatch: pytest.MonkeyPatch, make: Any, raised: Exception, shown: str
) -> None:
    async def poll(hook: Any) -> Any:
        raise raised

    monkeypatch.setattr(triggers, "RunloopHook", _Hook)
    trigger = make()
    monkeypatch.setattr(trigger, "_poll", poll)
    [event] = await _events(trigger)
    assert event["status"] == "error"
    assert shown in event["message"]
    assert "unexpected error" in event["message"]
    json.dumps(event, allow_nan=False)


async def test_an_event_that_is_not_strict_json_becomes_an_error_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def poll(hook: Any) -> Any:
        return triggers._Poll(True, True, "done", {"mean_score": float("nan")})

    monkeypatch.setattr(triggers, "RunloopHook", _Hook)
    trigger = _run_trigger()
    monkeypatch.setattr(trigger, "_poll", poll)
    [event] = await _events(trigger)
    assert event["status"] == "error"
    assert "not JSON compliant" in event["message"]


async def test_a_connection_whose_port_is_out_of_range_ends_with_an_error_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNLOOP_BAD_PORT",
        json.dumps({"conn_type": "runloop", "host": "http://127.0.0.1", "port": 99999, "password": "k" * 20}),
    )
    trigger = RunloopBenchmarkRunTrigger(
        benchmark_run_id="bmr_1", deadline=4_000_000_000.0, runloop_conn_id="runloop_bad_port"
    )
    [event] = await _events(trigger)
    assert event["status"] == "error"
    # The connection is read before any request: the message names the field and the range.
    assert "port is not a number from 1 to 65535" in event["message"]


def _timed_out(message: str) -> BaseException:
    return TimeoutError(message)


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"status": ["success"]}, id="unhashable-status"),
        pytest.param({"status": {"a": 1}}, id="dict-status"),
        pytest.param({"status": 10**400}, id="huge-status"),
        pytest.param({"status": "succes"}, id="unknown-status"),
        pytest.param({"status": "success", "summary": [1]}, id="summary-not-an-object"),
        pytest.param(["success"], id="not-a-dict"),
        pytest.param(None, id="none"),
    ],
)
def test_an_event_no_trigger_of_ours_sends_is_an_invalid_response(event: object) -> None:
    with pytest.raises(RunloopInvalidResponseError, match="trigger"):
        read_trigger_event(event, "summary", timed_out=_timed_out, source="test trigger")


def test_an_error_event_with_an_odd_message_still_raises_our_error() -> None:
    with pytest.raises(RunloopError):
        read_trigger_event(
            {"status": "error", "message": 10**5000}, "summary", timed_out=_timed_out, source="t"
        )
