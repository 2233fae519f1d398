"""20,000 scenario runs listed and exported while the emulator repeats, shifts and breaks pages
(over 127.0.0.1): each scenario run is there exactly once, as the emulator's own state says.

A page GET is idempotent, so the client asks again for a repeated (the cursor would not advance) or
malformed page, with the same cursor, within its retry policy; a shifted page (a window that starts
early) advances and its already-listed items are dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.canary import CANARY_API_KEY

from airflow_provider_runloop.client import AsyncRunloopClient, RetryPolicy, RunloopClient
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.testing import Fault, ManualClock, RunloopEmulator

TaskInstanceStub = Any  # defined in conftest.py, which test modules do not import
SIZE = 20_000
PAGE = 2_000  # ten pages, so the faults land on different ones
SCRIPT = {
    "seed": 12,
    "scenario_count": SIZE,
    "outcomes": {"completed": 0.8, "failed": 0.1, "timeout": 0.1},
    "timing": {"start_interval": 0.01, "duration": [1, 5], "scoring": 1, "complete": 1},
}
FAST = RetryPolicy(max_retries=3, backoff_initial=0.01, backoff_max=0.02)
# (kind, skip, times): on the listing's pages, by the requests each kind can act on.
PAGE_FAULTS = [("repeat_page", 1, 2), ("malformed_body", 4, 1), ("shift_page", 5, 2)]


@pytest.fixture(scope="module")
def finished() -> Iterator[tuple[RunloopEmulator, str]]:
    """One emulator for the module (planning 20,000 runs takes seconds), its run over."""
    with RunloopEmulator(api_key=CANARY_API_KEY, clock=ManualClock()) as emulator:
        run_id = emulator.start_scripted_run(script=SCRIPT)
        emulator.advance(3600)
        assert emulator.benchmark_run_state(run_id) == "completed"
        yield emulator, run_id


@pytest.fixture
def faulty(finished: tuple[RunloopEmulator, str]) -> Iterator[tuple[RunloopEmulator, str, list[Fault]]]:
    emulator, run_id = finished
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    faults = [
        emulator.add_fault(kind, path=path, skip=skip, times=times) for kind, skip, times in PAGE_FAULTS
    ]
    try:
        yield emulator, run_id, faults
    finally:
        emulator.clear_faults()
        emulator.clear_requests()


async def _list_async(emulator: RunloopEmulator, run_id: str) -> list[str]:
    async with AsyncRunloopClient(emulator.api_key, base_url=emulator.base_url, retry=FAST) as client:
        return [run.id async for run in client.list_scenario_runs(run_id, page_size=PAGE)]


def _list_sync(emulator: RunloopEmulator, run_id: str) -> list[str]:
    with RunloopClient(emulator.api_key, base_url=emulator.base_url, retry=FAST) as client:
        return [run.id for run in client.list_scenario_runs(run_id, page_size=PAGE)]


def _check(listed: list[str], emulator: RunloopEmulator, run_id: str, faults: list[Fault]) -> None:
    assert [(fault.kind, fault.fired) for fault in faults] == [(k, times) for k, _, times in PAGE_FAULTS]
    assert len(listed) == SIZE
    assert Counter(listed).most_common(1)[0][1] == 1
    assert set(listed) == set(emulator.scenario_run_states(run_id))


@pytest.mark.parametrize("twin", ["sync", "async"])
async def test_a_listing_holds_each_scenario_run_once(
    faulty: tuple[RunloopEmulator, str, list[Fault]], twin: str
) -> None:
    emulator, run_id, faults = faulty
    listed = _list_sync(emulator, run_id) if twin == "sync" else await _list_async(emulator, run_id)
    _check(listed, emulator, run_id, faults)


def test_an_export_holds_each_scenario_run_once(
    faulty: tuple[RunloopEmulator, str, list[Fault]],
    monkeypatch: pytest.MonkeyPatch,
    new_task_instance: Callable[[], TaskInstanceStub],
    tmp_path: Path,
) -> None:
    emulator, run_id, faults = faulty
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", emulator.airflow_conn_json)
    target = tmp_path / "results.jsonl"
    operator = RunloopBenchmarkResultsOperator(
        task_id="export", benchmark_run_id=run_id, destination=f"file://{target}", page_size=PAGE
    )
    exported = operator.execute({"ti": new_task_instance()})  # type: ignore[arg-type]
    records = [json.loads(line) for line in target.read_text().splitlines()]
    _check([record["scenario_run_id"] for record in records], emulator, run_id, faults)
    assert exported["record_count"] == SIZE
    states = emulator.scenario_run_states(run_id)
    assert {record["scenario_run_id"]: record["state"] for record in records} == states
