"""The cheap-polling contract of design.md: at 10,000 scenario runs, a poll makes at most 5 requests
and moves under 20 KB while runs are active, and fetches the benchmark run exactly once, in every mode;
the scenario runs are listed once, when it may be done."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.canary import CANARY_API_KEY
from support.counting import CountingApp
from support.task_state import FakeStateStore

from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor
from airflow_provider_runloop.testing import EmulatorServer, ManualClock, RunloopEmulator
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger

SIZE = 10_000
SCRIPT = {"scenario_count": SIZE, "seed": 4, "timing": {"start_interval": 0, "duration": [30, 60]}}
# Where the figure does not depend on the run's size (which requests a poll makes), a smaller run.
SMALL = 1_000
SMALL_SCRIPT = {**SCRIPT, "scenario_count": SMALL}


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunloopEmulator, CountingApp]]:
    emulator = RunloopEmulator(api_key=CANARY_API_KEY, clock=ManualClock(), seed=4)
    counting = CountingApp(emulator.app)
    server = EmulatorServer(counting)
    server.start()
    conn = {"conn_type": "runloop", "host": server.base_url, "password": emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps(conn))
    try:
        yield emulator, counting
    finally:
        server.stop()


def test_a_poll_costs_five_small_requests_whatever_the_size(
    counted: tuple[RunloopEmulator, CountingApp],
) -> None:
    emulator, counting = counted
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.advance(20)
    hook = RunloopHook()
    hook.get_conn()  # reading the connection is not part of a poll

    counting.reset()
    verdict = hook.check_benchmark_run(run_id, expected_count=SIZE)
    traffic = counting.snapshot()
    assert not verdict.done
    assert verdict.summary.state_counts["running"] == SIZE
    assert traffic.requests <= 5
    assert traffic.body_bytes < 20 * 1024

    emulator.advance(10_000)
    counting.reset()
    verdict = hook.check_benchmark_run(run_id, expected_count=SIZE)
    traffic = counting.snapshot()
    assert verdict.done
    assert verdict.summary.started_scenarios == SIZE
    # The five small requests, then the one full listing in pages of 5000.
    assert traffic.requests == 5 + 2
    hook.close()


class _TaskInstance:
    try_number = 1
    max_tries = 0

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _sensor_poll(
    mode: str, run_id: str, store: FakeStateStore
) -> tuple[Callable[[], None], Callable[[], None]]:
    # Reschedule mode: every poke is a fresh task object (a fresh process in Airflow).
    sensors: list[RunloopBenchmarkRunSensor] = []

    def poll() -> None:
        if not sensors or mode == "reschedule":
            if sensors:
                sensors[-1].hook.close()  # as its execute() would, in Airflow
            sensors.append(
                RunloopBenchmarkRunSensor(task_id=f"wait_{mode}", benchmark_run_id=run_id, mode=mode)
            )
        sensors[-1].poke({"ti": _TaskInstance(), "task_state_store": store})  # type: ignore[arg-type]

    def close() -> None:
        sensors[-1].hook.close()

    return poll, close


def _trigger_poll(run_id: str) -> tuple[Callable[[], None], Callable[[], None]]:
    trigger = RunloopBenchmarkRunTrigger(benchmark_run_id=run_id, deadline=time.time() + 3600)
    hook = RunloopHook()
    loop = asyncio.new_event_loop()

    def poll() -> None:
        loop.run_until_complete(trigger._poll(hook))

    def close() -> None:
        loop.run_until_complete(hook.aclose())
        loop.close()

    return poll, close


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_every_poll_fetches_the_run_once_in_every_mode(
    counted: tuple[RunloopEmulator, CountingApp], mode: str
) -> None:
    # The expected scenarios come from the benchmark (10,000 scenarioIds, about 270 KB): fetched only
    # when the verdict depends on them, so no poll while runs are active pays for them.
    emulator, counting = counted
    benchmark = emulator.seed_benchmark(SCRIPT)
    run_id = emulator.start_scripted_run(benchmark.benchmark_id)
    store = FakeStateStore()
    poll, close = _trigger_poll(run_id) if mode == "deferrable" else _sensor_poll(mode, run_id, store)
    run_path = f"/v1/benchmark_runs/{run_id}"
    try:
        _three_cheap_polls_then_the_last(emulator, counting, poll, run_path, benchmark.benchmark_id)
    finally:
        close()


def _three_cheap_polls_then_the_last(
    emulator: RunloopEmulator,
    counting: CountingApp,
    poll: Callable[[], None],
    run_path: str,
    benchmark_id: str,
) -> None:
    for _ in range(3):
        emulator.advance(10)
        emulator.clear_requests()
        counting.reset()
        poll()
        traffic = counting.snapshot()
        assert len(emulator.requests(path=run_path)) == 1
        assert traffic.requests <= 5
        assert traffic.body_bytes < 20 * 1024
    # The last poll: still one fetch of the run, then the benchmark once and the one listing.
    emulator.advance(10_000)
    emulator.clear_requests()
    poll()
    assert len(emulator.requests(path=run_path)) == 1
    assert len(emulator.requests(path=f"/v1/benchmarks/{benchmark_id}")) == 1


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_a_steady_poll_is_two_requests_and_the_counts_that_decide_are_all_fetched(
    counted: tuple[RunloopEmulator, CountingApp], twin: str
) -> None:
    emulator, counting = counted
    run_id = emulator.start_scripted_run(script=SMALL_SCRIPT)
    emulator.advance(20)
    hook = RunloopHook()
    loop = asyncio.new_event_loop()

    def poll() -> Any:
        if twin == "sync":
            return hook.check_benchmark_run(run_id, expected_count=SMALL)
        return loop.run_until_complete(hook.acheck_benchmark_run(run_id, expected_count=SMALL))

    try:
        traffic = []
        verdicts = []
        for advance in (0, 1, 1, 10_000):
            emulator.advance(advance)
            counting.reset()
            verdicts.append(poll())
            traffic.append(counting.snapshot())
    finally:
        hook.close()
        loop.run_until_complete(hook.aclose())
        loop.close()
    # The first poll counts every state; then one count (the busiest active state) says "not done".
    assert [t.requests for t in traffic[:3]] == [5, 2, 2]
    assert [v.done for v in verdicts[:3]] == [False, False, False]
    assert verdicts[1].summary.state_counts["running"] > 0
    # When that count finds nothing, the same poll counts the rest, then lists once: 5 + 1 page.
    assert traffic[3].requests == 5 + 1
    assert verdicts[3].done
    assert verdicts[3].summary.started_scenarios == SMALL


def test_a_deferred_sensor_hands_its_trigger_the_count_and_the_trigger_reads_the_ids_once(
    counted: tuple[RunloopEmulator, CountingApp],
) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    emulator, counting = counted
    benchmark = emulator.seed_benchmark(SMALL_SCRIPT)
    run_id = emulator.start_scripted_run(benchmark.benchmark_id)
    emulator.advance(20)
    benchmark_path = f"/v1/benchmarks/{benchmark.benchmark_id}"
    sensor = RunloopBenchmarkRunSensor(
        task_id="wait", benchmark_run_id=run_id, deferrable=True, poke_interval=5
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": _TaskInstance(), "task_state_store": FakeStateStore()})  # type: ignore[arg-type]
    # The worker read the benchmark once, to count its scenarios; the trigger carries the number.
    assert len(emulator.requests(path=benchmark_path)) == 1
    classpath, kwargs = deferred.value.trigger.serialize()
    assert kwargs["benchmark_scenario_count"] == SMALL
    assert len(json.dumps(kwargs)) < 1024

    assert classpath.endswith(f".{RunloopBenchmarkRunTrigger.__name__}")
    trigger = RunloopBenchmarkRunTrigger(**kwargs)  # as the triggerer builds it (after a restart, too)
    hook = RunloopHook()
    loop = asyncio.new_event_loop()
    try:
        emulator.clear_requests()
        counting.reset()
        loop.run_until_complete(trigger._poll(hook))
        first = counting.snapshot()
        # A poll once the scenario runs have finished (the benchmark run is still open): the counts
        # need the number only, the listing checks each expected scenario by id, read then.
        emulator.advance(10_000)
        poll = loop.run_until_complete(trigger._poll(hook))
    finally:
        loop.run_until_complete(hook.aclose())
        loop.close()
    assert first.requests <= 5
    assert first.body_bytes < 20 * 1024
    assert poll is not None
    assert poll.done
    assert len(emulator.requests(path=benchmark_path)) == 1
