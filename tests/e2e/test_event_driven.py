"""End to end, event-driven: the asset watcher of ``example_runloop_on_finished_run`` in a real triggerer,
against the emulator. Two benchmark runs finish; exactly two DAG runs follow, one per run, each with that
run's id in its triggering asset event.

The watcher is told (``RUNLOOP_WATCH_METADATA``, read when the DAG file is parsed) to match this module's
own metadata, so it fires for nothing else. This module's Airflow has the connection from the start (an
environment variable) and unpauses new DAGs, so the watcher starts on its own as soon as the file is
parsed. Waits are bounded loops on observable state.

Airflow creates one DAG run for the asset events it finds since the previous one: two events a moment
apart may share a DAG run (docs/event-driven.md). The runs here finish one after the other, each once the
previous one's DAG run exists.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from support.airflow_stack import poll_until

from airflow_provider_runloop.testing import RunloopEmulator

# Under pytest-xdist (`make test`), every end-to-end test runs in one worker, one after another: each
# module's Airflow deployment starts once, and two never compete for the cores.
pytestmark = pytest.mark.xdist_group("airflow-e2e")

DAG_ID = "example_runloop_on_finished_run"
ASSET_NAME = "runloop_finished_benchmark_runs"
METADATA = {"e2e": "event-driven"}
SCRIPT = {"seed": 7, "scenario_count": 2, "outcomes": {"completed": 1.0}}


@pytest.fixture(scope="module")
def airflow_extra_env(emulator: RunloopEmulator) -> dict[str, str]:
    return {
        "RUNLOOP_WATCH_METADATA": json.dumps(METADATA),
        # The watcher reads the connection when it starts, which is when its DAG is first parsed.
        "AIRFLOW_CONN_RUNLOOP_DEFAULT": emulator.airflow_conn_json,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
    }


def _dag_runs(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get(f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["dag_runs"]
    return runs


def _watermark(api: httpx.Client) -> dict[str, Any] | None:
    assets = api.get("/assets", params={"name_pattern": ASSET_NAME}).json()["assets"]
    if not assets:
        return None
    entries = api.get(f"/assets/{assets[0]['id']}/state-store").json()
    found = entries.get("asset_state_store") or []
    return found[0]["value"] if found else None


def _events(api: httpx.Client, run: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.get(f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
    assert response.status_code == 200, response.text
    return [event["extra"]["payload"] for event in response.json()["asset_events"]]


def _finished_dag_runs(api: httpx.Client, count: int) -> list[dict[str, Any]]:
    def finished() -> list[dict[str, Any]] | None:
        runs = _dag_runs(api)
        done = len(runs) >= count and all(run["state"] in ("success", "failed") for run in runs)
        return runs if done else None

    return poll_until(f"{count} finished DAG runs of {DAG_ID}", finished, attempts=180)


def test_one_dag_run_per_finished_benchmark_run(api: httpx.Client, emulator: RunloopEmulator) -> None:
    # The watcher's first poll stores its watermark: from then on, it sees every run that finishes.
    poll_until("the watcher's first watermark", lambda: _watermark(api), attempts=240)
    assert _dag_runs(api) == []

    benchmark = emulator.seed_benchmark(SCRIPT).benchmark_id
    first = emulator.start_scripted_run(benchmark, metadata=METADATA, auto_complete=False, name="first")
    second = emulator.start_scripted_run(benchmark, metadata=METADATA, auto_complete=False)
    unwatched = emulator.start_scripted_run(benchmark, metadata={"e2e": "other"}, auto_complete=False)

    def watching() -> bool | None:
        return {first, second} <= set((_watermark(api) or {}).get("running", {})) or None

    poll_until("the watcher to watch both runs", watching, attempts=60)
    emulator.force_benchmark_run_state(first, "completed")
    emulator.force_benchmark_run_state(unwatched, "completed")
    assert len(_finished_dag_runs(api, 1)) == 1
    emulator.force_benchmark_run_state(second, "failed")
    runs = _finished_dag_runs(api, 2)

    assert [run["state"] for run in runs] == ["success", "success"], runs
    payloads = sorted((_events(api, run) for run in runs), key=lambda events: events[0]["name"] is None)
    assert [[(p["benchmark_run_id"], p["state"]) for p in events] for events in payloads] == [
        [(first, "completed")],
        [(second, "failed")],
    ]
    assert payloads[0][0]["name"] == "first"

    def both_seen() -> dict[str, Any] | None:
        mark = _watermark(api)
        return mark if mark is not None and not {first, second} & set(mark["running"]) else None

    watermark = poll_until("the watermark to record both runs as seen", both_seen, attempts=60)
    assert unwatched not in watermark["running"]
    poll_until(
        "a few more polls", lambda: len(emulator.requests(path="/v1/benchmark_runs")) > 3 or None, attempts=20
    )
    emulator.clear_requests()
    poll_until(
        "a few more polls",
        lambda: len(emulator.requests(path="/v1/benchmark_runs")) >= 3 or None,
        attempts=20,
    )
    assert len(_dag_runs(api)) == 2  # no event repeated
