"""RunloopBenchmarkRunFinishedTrigger against the emulator over 127.0.0.1, with an in-memory asset state
store that has the accessor API Airflow injects (``aget``/``aset``, ...). A "restart" is a new trigger
instance on the same store after the first one was cancelled, as a triggerer restart does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from airflow_provider_runloop.testing import RunloopEmulator
from airflow_provider_runloop.triggers import watch as watch_module
from airflow_provider_runloop.triggers.watch import RunloopBenchmarkRunFinishedTrigger

SCRIPT = {"scenario_count": 2, "outcomes": {"completed": 1.0}, "seed": 1}
PAYLOAD_KEYS = {"benchmark_run_id", "benchmark_id", "state", "score", "name", "start_time_ms", "duration_ms"}


class MemoryStateStore:
    """The asset state store accessor's API (``airflow.sdk.execution_time.context``), in memory."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reads = 0
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values[key])) if key in self.values else default

    async def aget(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return self.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        self.values[key] = json.loads(json.dumps(value))  # stored as JSON, as Airflow does

    async def aset(self, key: str, value: Any) -> None:
        self.writes += 1
        self.set(key, value)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)

    async def adelete(self, key: str) -> None:
        self.delete(key)

    def clear(self) -> None:
        self.values.clear()

    async def aclear(self) -> None:
        self.clear()


class Watcher:
    """One trigger instance running in a task; its events are collected as they come."""

    def __init__(self, store: MemoryStateStore, **kwargs: Any) -> None:
        self.trigger = RunloopBenchmarkRunFinishedTrigger(poll_interval=0.01, **kwargs)
        self.trigger.asset_state_store = store  # type: ignore[assignment]  # what the triggerer injects
        self.store = store
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._collect(self.trigger.run()))

    async def _collect(self, events: AsyncIterator[Any]) -> None:
        async for event in events:
            self.events.append(event.payload)

    async def until(self, what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not check():
            if self.task.done():
                self.task.result()  # raises what the trigger raised
                raise AssertionError(f"the trigger ended before {what}")
            if loop.time() > end:
                raise AssertionError(f"timed out waiting for {what}; events: {self.events}")
            await asyncio.sleep(0.01)

    async def watching(self) -> None:
        await self.until("the first watermark", lambda: bool(self.store.values))

    async def polls(self, count: int) -> None:
        """Let ``count`` more polls happen (each reads the store once)."""
        target = self.store.reads + count
        await self.until(f"{count} more polls", lambda: self.store.reads >= target)

    def fired(self) -> list[str]:
        return [event["benchmark_run_id"] for event in self.events]

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def _connect(monkeypatch: pytest.MonkeyPatch, emulator: RunloopEmulator) -> None:
    conn = json.loads(emulator.airflow_conn_json)
    conn["extra"] = {"max_retries": 0}
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps(conn))


def _running(emulator: RunloopEmulator, benchmark_id: str, **kwargs: Any) -> str:
    return emulator.start_scripted_run(benchmark_id, auto_complete=False, **kwargs)


async def test_fires_once_per_finished_run_and_a_later_one_later(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    benchmark = runloop_emulator.seed_benchmark(SCRIPT).benchmark_id
    other = runloop_emulator.seed_benchmark(SCRIPT).benchmark_id
    before = _running(runloop_emulator, benchmark)
    runloop_emulator.force_benchmark_run_state(before, "completed")  # finished before the watcher
    store = MemoryStateStore()
    watcher = Watcher(store, benchmark_id=benchmark)
    await watcher.watching()

    first, second = _running(runloop_emulator, benchmark, name="first"), _running(runloop_emulator, benchmark)
    elsewhere = _running(runloop_emulator, other)
    await watcher.polls(2)
    assert watcher.events == []  # running: nothing yet
    runloop_emulator.advance(30)
    runloop_emulator.force_benchmark_run_state(first, "completed")
    runloop_emulator.force_benchmark_run_state(second, "failed")
    runloop_emulator.force_benchmark_run_state(elsewhere, "completed")
    await watcher.until("two events", lambda: len(watcher.events) >= 2)
    await watcher.polls(3)
    assert sorted(watcher.fired()) == sorted([first, second])  # once each; not `before`, not `elsewhere`

    by_id = {event["benchmark_run_id"]: event for event in watcher.events}
    assert set(by_id[first]) == PAYLOAD_KEYS
    assert by_id[first]["state"] == "completed"
    assert by_id[first]["name"] == "first"
    assert by_id[first]["benchmark_id"] == benchmark
    assert by_id[second]["state"] == "failed"
    text = json.dumps(watcher.events, allow_nan=False)
    assert runloop_emulator.api_key not in text
    assert len(text) < 1024

    later = _running(runloop_emulator, benchmark)
    await watcher.polls(2)
    assert len(watcher.events) == 2
    runloop_emulator.force_benchmark_run_state(later, "canceled")
    await watcher.until("the later run's event", lambda: len(watcher.events) == 3)
    assert watcher.events[-1]["benchmark_run_id"] == later
    assert watcher.events[-1]["state"] == "canceled"
    await watcher.stop()
    # Read-only: a watcher never changes anything remote.
    assert {r.method for r in runloop_emulator.requests()} == {"GET"}


async def test_a_restart_fires_nothing_twice_and_what_finished_while_down(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    benchmark = runloop_emulator.seed_benchmark(SCRIPT).benchmark_id
    store = MemoryStateStore()
    watcher = Watcher(store, benchmark_id=benchmark, overlap_seconds=60)
    await watcher.watching()
    old = _running(runloop_emulator, benchmark)  # will drop below the overlap window, still running
    fired = _running(runloop_emulator, benchmark)
    await watcher.polls(2)
    runloop_emulator.advance(600)
    newer = _running(runloop_emulator, benchmark)  # moves the watermark: `old` is below the window now
    runloop_emulator.force_benchmark_run_state(fired, "completed")
    await watcher.until("the first event", lambda: watcher.fired() == [fired])
    await watcher.polls(2)  # its watermark is saved by now
    (key,) = store.values
    assert set(store.values[key]["running"]) == {old, newer}
    assert old not in store.values[key]["window"]
    await watcher.stop()

    # While the watcher is down: the old run finishes, a new one starts and finishes.
    runloop_emulator.force_benchmark_run_state(old, "completed")
    new = _running(runloop_emulator, benchmark)
    runloop_emulator.force_benchmark_run_state(new, "failed")

    runloop_emulator.clear_requests()
    restarted = Watcher(store, benchmark_id=benchmark, overlap_seconds=60)
    await restarted.until("two events", lambda: len(restarted.events) >= 2)
    await restarted.polls(3)
    assert sorted(restarted.fired()) == sorted([old, new])  # `fired` is not fired again
    # The old run was below the window: it was fetched by id, not found by listing everything.
    assert runloop_emulator.requests(method="GET", path=f"/v1/benchmark_runs/{old}")
    await restarted.stop()

    again = Watcher(store, benchmark_id=benchmark, overlap_seconds=60)
    await again.polls(3)
    assert again.events == []
    await again.stop()


async def test_metadata_alone_selects_the_runs(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    benchmark = runloop_emulator.seed_benchmark(SCRIPT).benchmark_id
    store = MemoryStateStore()
    watcher = Watcher(store, metadata={"team": "evals"}, states=["completed"])
    await watcher.watching()
    wanted = _running(runloop_emulator, benchmark, metadata={"team": "evals", "sha": "abc"})
    failed = _running(runloop_emulator, benchmark, metadata={"team": "evals"})
    unwanted = _running(runloop_emulator, benchmark, metadata={"team": "infra"})
    await watcher.polls(2)
    for run_id in (wanted, unwanted):
        runloop_emulator.force_benchmark_run_state(run_id, "completed")
    runloop_emulator.force_benchmark_run_state(failed, "failed")  # not in states: forgotten
    await watcher.until("one event", lambda: len(watcher.events) >= 1)
    await watcher.polls(3)
    assert watcher.fired() == [wanted]
    (key,) = store.values
    assert store.values[key]["running"] == {}
    await watcher.stop()


async def test_a_poll_lists_only_down_to_the_watermark(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    monkeypatch.setattr(watch_module, "_PAGE_SIZE", 5)
    benchmark = runloop_emulator.seed_benchmark(SCRIPT).benchmark_id
    for _ in range(40):
        runloop_emulator.force_benchmark_run_state(_running(runloop_emulator, benchmark), "completed")
    runloop_emulator.advance(600)
    watched = [_running(runloop_emulator, benchmark) for _ in range(2)]
    store = MemoryStateStore()
    watcher = Watcher(store, benchmark_id=benchmark, overlap_seconds=60)
    await watcher.watching()
    await watcher.polls(1)
    runloop_emulator.clear_requests()
    reads = store.reads
    await watcher.polls(10)
    polls = store.reads - reads
    listings = runloop_emulator.requests(method="GET", path="/v1/benchmark_runs")
    # Listing all 42 runs takes 9 pages; a poll asks for the first page (and at most the one the
    # client fetches ahead), then stops at the first run below the window.
    assert len(listings) <= 2 * (polls + 1)
    assert all(request.path == "/v1/benchmark_runs" for request in runloop_emulator.requests())
    for run_id in watched:
        runloop_emulator.force_benchmark_run_state(run_id, "completed")
    await watcher.until("two events", lambda: len(watcher.events) == 2)
    assert sorted(watcher.fired()) == sorted(watched)
    await watcher.stop()


async def test_an_unknown_benchmark_ends_the_watcher(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_runloop.exceptions import RunloopNotFoundError

    _connect(monkeypatch, runloop_emulator)
    watcher = Watcher(MemoryStateStore(), benchmark_id="bmd_nope")
    with pytest.raises(RunloopNotFoundError):
        await watcher.task


async def test_a_missing_connection_or_state_store_ends_the_watcher(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.exceptions import AirflowNotFoundException

    _connect(monkeypatch, runloop_emulator)
    watcher = Watcher(MemoryStateStore(), benchmark_id="bmd_1", runloop_conn_id="runloop_nowhere")
    with pytest.raises(AirflowNotFoundException):
        await watcher.task
    alone = RunloopBenchmarkRunFinishedTrigger(benchmark_id="bmd_1", poll_interval=0.01)  # no AssetWatcher
    with pytest.raises(RuntimeError, match="AssetWatcher"):
        await alone.run().__anext__()
    assert runloop_emulator.requests() == []


async def test_transient_errors_are_retried_later(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(monkeypatch, runloop_emulator)
    benchmark = runloop_emulator.seed_benchmark(SCRIPT).benchmark_id
    start_fault = runloop_emulator.add_fault("status", path="/v1/benchmarks/*", status=503, times=2)
    store = MemoryStateStore()
    watcher = Watcher(store, benchmark_id=benchmark)
    await watcher.watching()  # the benchmark's check at the start failed twice, and was tried again
    assert start_fault.fired == 2
    run_id = _running(runloop_emulator, benchmark)
    await watcher.polls(1)
    runloop_emulator.add_fault("status", path="/v1/benchmark_runs", status=503, times=3)
    runloop_emulator.force_benchmark_run_state(run_id, "completed")
    await watcher.until("the event after the errors", lambda: watcher.fired() == [run_id], timeout=15)
    assert not watcher.task.done()
    await watcher.stop()
