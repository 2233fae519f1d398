"""The export lists in bounded pages: every listing request asks for at most ``EXPORT_PAGE_SIZE`` runs
(one page of parsed runs is what the export holds at a time), unless ``page_size`` says otherwise."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from support.canary import CANARY_API_KEY
from support.counting import ASGIApp, CountingApp, Scope

from airflow_provider_runloop.operators.results import EXPORT_PAGE_SIZE, RunloopBenchmarkResultsOperator
from airflow_provider_runloop.testing import EmulatorServer, ManualClock, RunloopEmulator

RUNS = 2_500
SCRIPT = {"scenario_count": RUNS, "seed": 9, "timing": {"start_interval": 0, "duration": 1, "scoring": 1}}


class LimitRecorder(CountingApp):
    """Counts requests (as ``CountingApp``) and keeps the ``limit`` of every scenario-run listing."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.listing_limits: list[int] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/scenario_runs"):
            query = parse_qs(scope.get("query_string", b"").decode())
            if "include_total_count" not in query:  # a listing, not a limit=1 count
                self.listing_limits.extend(int(value) for value in query.get("limit", ["0"]))
        await super().__call__(scope, receive, send)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunloopEmulator, LimitRecorder, str]]:
    emulator = RunloopEmulator(api_key=CANARY_API_KEY, clock=ManualClock(), seed=9)
    recorder = LimitRecorder(emulator.app)
    server = EmulatorServer(recorder)
    server.start()
    conn = {"conn_type": "runloop", "host": server.base_url, "password": emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps(conn))
    try:
        run_id = emulator.start_scripted_run(script=SCRIPT)
        emulator.advance(3600)
        assert emulator.benchmark_run_state(run_id) == "completed"
        yield emulator, recorder, run_id
    finally:
        server.stop()


@pytest.mark.parametrize("page_size", [None, 700])
def test_the_export_lists_in_bounded_pages(
    recorded: tuple[RunloopEmulator, LimitRecorder, str],
    task_instance: Any,
    tmp_path: Path,
    page_size: int | None,
) -> None:
    _, recorder, run_id = recorded
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=run_id,
        destination=f"file://{tmp_path}/results.jsonl",
        page_size=page_size,
    )
    result = operator.execute({"ti": task_instance})  # type: ignore[arg-type]
    assert result["record_count"] == RUNS
    limit = EXPORT_PAGE_SIZE if page_size is None else page_size
    assert EXPORT_PAGE_SIZE <= 1000
    assert recorder.listing_limits == [limit] * math.ceil(RUNS / limit)
