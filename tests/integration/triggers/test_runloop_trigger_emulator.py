"""RunloopBenchmarkRunTrigger against the emulator over 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_runloop.testing import RunloopEmulator
from airflow_provider_runloop.triggers import runloop as trigger_module
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger

COMPLETED = {"scenario_count": 6, "outcomes": {"completed": 1.0}, "seed": 1}
WITH_FAILURES = {
    "scenario_count": 6,
    "seed": 2,
    "scenarios": [{"attempts": ["failed"]}, {"attempts": ["timeout"]}],
}


def _connect(monkeypatch: pytest.MonkeyPatch, emulator: RunloopEmulator, **extra: Any) -> None:
    conn = json.loads(emulator.airflow_conn_json)
    conn["extra"] = {"max_retries": 0, **extra}
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps(conn))


def _trigger(run_id: str, *, seconds: float = 30.0, **kwargs: Any) -> RunloopBenchmarkRunTrigger:
    options: dict[str, Any] = {"poll_interval": 0.01, **kwargs}
    return RunloopBenchmarkRunTrigger(benchmark_run_id=run_id, deadline=time.time() + seconds, **options)


async def _events(trigger: RunloopBenchmarkRunTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


async def _advance_while(emulator: RunloopEmulator, task: asyncio.Task[Any], step: float = 5.0) -> None:
    while not task.done():
        emulator.advance(step)
        await asyncio.sleep(0.01)


async def test_success_after_waiting(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    run_id = runloop_emulator.start_scripted_run(script=COMPLETED)
    task = asyncio.ensure_future(_events(_trigger(run_id)))
    await asyncio.sleep(0.2)
    assert not task.done(), "the run has not progressed yet; the trigger must still be waiting"
    await _advance_while(runloop_emulator, task)
    events = await task
    assert len(events) == 1
    (event,) = events
    assert event["status"] == "success"
    assert event["benchmark_run_id"] == run_id
    summary = event["summary"]
    assert summary["done"] is True
    assert summary["state_counts"]["completed"] == 6
    assert summary["expected_scenarios"] == 6
    assert len(json.dumps(event)) < 4096
    # Read-only: the trigger never changes anything remote.
    assert {r.method for r in runloop_emulator.requests()} == {"GET"}


async def test_failure_names_the_failed_scenario_runs(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    run_id = runloop_emulator.start_scripted_run(script=WITH_FAILURES)
    runloop_emulator.advance(10_000)
    (event,) = await _events(_trigger(run_id))
    assert event["status"] == "failure"
    failed = {
        rid
        for rid, state in runloop_emulator.scenario_run_states(run_id).items()
        if state in ("failed", "timeout")
    }
    assert len(failed) == 2
    assert set(event["summary"]["failed_scenario_run_ids"]) == failed
    for run in failed:
        assert run in event["message"]


async def test_failures_reported_as_success_when_asked(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    run_id = runloop_emulator.start_scripted_run(script=WITH_FAILURES)
    runloop_emulator.advance(10_000)
    (event,) = await _events(_trigger(run_id, fail_on_scenario_failure=False))
    assert event["status"] == "success"
    assert event["summary"]["failed_scenario_count"] == 2


@pytest.mark.parametrize("state", ["canceled", "failed"])
async def test_canceled_or_failed_run_ends_the_wait_at_once(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    _connect(monkeypatch, runloop_emulator)
    run_id = runloop_emulator.start_scripted_run(script=COMPLETED)
    runloop_emulator.force_benchmark_run_state(run_id, state)
    (event,) = await _events(_trigger(run_id))
    assert event["status"] == "failure"
    assert event["summary"]["benchmark_run_state"] == state


async def test_timeout_after_one_last_check(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    run_id = runloop_emulator.start_scripted_run(script=COMPLETED)
    # The trigger's sleep passes at once and moves its clock on by what it slept: the deadline comes
    # right after the first poll, however long that poll took on a busy machine.
    slept = [0.0]
    real_time, real_sleep = time.time, asyncio.sleep

    async def sleep_at_once(seconds: float) -> None:
        slept[0] += seconds
        await real_sleep(0)

    # Only the trigger's own module sees them (the emulator and httpx keep the real ones).
    monkeypatch.setattr(trigger_module, "time", SimpleNamespace(time=lambda: real_time() + slept[0]))
    monkeypatch.setattr(trigger_module, "asyncio", SimpleNamespace(sleep=sleep_at_once))
    (event,) = await _events(_trigger(run_id, seconds=300, poll_interval=3600.0))
    assert event["status"] == "timeout"
    assert 299 < slept[0] <= 300  # it slept until the deadline, not for the poll interval
    assert "deadline" in event["message"]
    # One poll at the start and one at the deadline, despite the 10 s interval.
    polls = runloop_emulator.requests(method="GET", path=f"/v1/benchmark_runs/{run_id}")
    assert len(polls) == 2  # one fetch of the run per poll, the first poll included


async def test_error_after_the_failure_budget(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    run_id = runloop_emulator.start_scripted_run(script=COMPLETED)
    runloop_emulator.add_fault("status", path="/v1/benchmark_runs/*", status=503)
    (event,) = await _events(_trigger(run_id, max_consecutive_poll_failures=2))
    assert event["status"] == "error"
    assert "3 failed polls" in event["message"]
    assert "503" in event["message"]
    assert len(runloop_emulator.requests(path="/v1/benchmark_runs/*")) == 3


async def test_recovers_after_transient_faults(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    run_id = runloop_emulator.start_scripted_run(script=COMPLETED)
    runloop_emulator.advance(10_000)
    runloop_emulator.add_fault("status", path="/v1/benchmark_runs/*", status=502, times=2)
    runloop_emulator.add_fault("drop_connection", path="/v1/benchmarks/*", times=1)
    (event,) = await _events(_trigger(run_id, max_consecutive_poll_failures=3))
    assert event["status"] == "success"


@pytest.mark.parametrize(("status", "fragment"), [(401, "401"), (404, "404")])
async def test_auth_and_not_found_end_at_once(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch, status: int, fragment: str
) -> None:
    if status == 401:
        conn = json.loads(runloop_emulator.airflow_conn_json)
        conn["password"] = "wrong-key"
        monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps(conn))
        run_id = runloop_emulator.start_scripted_run(script=COMPLETED)
    else:
        _connect(monkeypatch, runloop_emulator)
        run_id = "bmr_does_not_exist"
    (event,) = await _events(_trigger(run_id, max_consecutive_poll_failures=5))
    assert event["status"] == "error"
    assert fragment in event["message"]
    assert len(runloop_emulator.requests()) == 1
    assert "wrong-key" not in json.dumps(event)


async def test_event_stays_small_for_a_large_run(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    script = {
        "scenario_count": 2000,
        "seed": 3,
        "outcomes": {"completed": 0.5, "failed": 0.5},
        "timing": {"start_interval": 0},
    }
    run_id = runloop_emulator.start_scripted_run(script=script)
    runloop_emulator.advance(100_000)
    (event,) = await _events(_trigger(run_id))
    assert event["status"] == "failure"
    assert event["summary"]["failed_scenario_run_ids_truncated"] is True
    assert len(event["summary"]["failed_scenario_run_ids"]) == 50
    assert len(json.dumps(event)) < 8192


async def test_the_event_loop_is_never_blocked_while_the_server_is_slow(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    run_id = runloop_emulator.start_scripted_run(script=COMPLETED)
    runloop_emulator.advance(10_000)
    latency = 0.5
    runloop_emulator.add_fault("latency", latency_seconds=latency)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.ensure_future(ticker())
    try:
        (event,) = await _events(_trigger(run_id))
    finally:
        tick.cancel()
    assert event["status"] == "success"
    # Every request waited `latency` on the server; the loop kept ticking meanwhile.
    assert sum(gaps) >= latency
    assert max(gaps) < latency / 2
