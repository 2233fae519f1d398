"""The cheap-polling contract of design.md: at 10,000 scenario runs, a poll makes at most 5 requests
and moves under 20 KB while runs are active; the scenario runs are listed once, when it may be done."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from support.canary import CANARY_API_KEY
from support.counting import CountingApp

from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.testing import EmulatorServer, ManualClock, RunloopEmulator

SIZE = 10_000
SCRIPT = {"scenario_count": SIZE, "seed": 4, "timing": {"start_interval": 0, "duration": [30, 60]}}


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
