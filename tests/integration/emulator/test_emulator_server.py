"""The emulator served over 127.0.0.1 (pytest fixture, and the CLI as a subprocess), hit with plain httpx."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_runloop.testing import RealClock, RunloopEmulator


@pytest.fixture
def http(runloop_emulator: RunloopEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=runloop_emulator.base_url, headers=runloop_emulator.auth_headers, timeout=10
    ) as client:
        yield client


def _walk(http: httpx.Client, path: str, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every item of a listing, and every page envelope (without items) on the way."""
    items: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = http.get(path, params={**params, **({"starting_after": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["runs"]
        pages.append(
            {"count": len(page["runs"]), "has_more": page["has_more"], "total": page.get("total_count")}
        )
        if not page["has_more"]:
            return items, pages
        cursor = page["runs"][-1]["id"]


def test_the_fixture_serves_on_loopback_with_an_airflow_connection(
    runloop_emulator: RunloopEmulator, http: httpx.Client
) -> None:
    assert runloop_emulator.base_url.startswith("http://127.0.0.1:")
    conn = json.loads(runloop_emulator.airflow_conn_json)
    assert conn == {
        "conn_type": "runloop",
        "host": runloop_emulator.base_url,
        "password": runloop_emulator.api_key,
    }
    assert runloop_emulator.airflow_env() == {
        "AIRFLOW_CONN_RUNLOOP_DEFAULT": runloop_emulator.airflow_conn_json
    }
    assert http.get("/v1/benchmarks").json() == {"benchmarks": [], "has_more": False, "total_count": 0}


def test_auth_failures_and_unknown_ids(runloop_emulator: RunloopEmulator, http: httpx.Client) -> None:
    base = runloop_emulator.base_url
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(f"{base}/v1/benchmark_runs", headers=headers)
        assert response.status_code == 401
        assert "message" in response.json()
    assert httpx.get(f"{base}/_emulator/health").json() == {"status": "ok"}
    missing = http.get("/v1/benchmark_runs/bmr_doesnotexist")
    assert missing.status_code == 404
    assert "bmr_doesnotexist" in missing.json()["message"]
    assert http.post("/v1/scenarios/runs/scr_doesnotexist/score").status_code == 404


@pytest.mark.parametrize(
    ("limit", "page_sizes"),
    [(5000, [5000, 5000, 2001]), (4000, [4000, 4000, 4000, 1]), (12001, None), (12000, [12000, 1])],
)
def test_paginating_12001_scenario_runs(
    runloop_emulator: RunloopEmulator, http: httpx.Client, limit: int, page_sizes: list[int] | None
) -> None:
    run_id = runloop_emulator.start_scripted_run(
        script={"scenario_count": 12_001, "timing": {"start_interval": 0}}
    )
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    if page_sizes is None:
        response = http.get(path, params={"limit": limit})
        assert response.status_code == 400
        assert "5000" in response.json()["message"]
        return
    if limit > 5000:
        assert http.get(path, params={"limit": limit}).status_code == 400
        limit = 5000
        page_sizes = [5000, 5000, 2001]
    items, pages = _walk(http, path, limit=limit)
    assert [page["count"] for page in pages] == page_sizes
    assert [page["has_more"] for page in pages] == [True] * (len(pages) - 1) + [False]
    assert {page["total"] for page in pages} == {12_001}
    assert len({item["id"] for item in items}) == 12_001
    keys = [(item["start_time_ms"], item["id"]) for item in items]
    assert keys == sorted(keys, reverse=True)
    running = http.get(path, params={"state": "running", "limit": 1}).json()
    assert running["total_count"] == 12_001
    assert len(running["runs"]) == 1
    assert running["has_more"] is True


def test_status_and_latency_faults(runloop_emulator: RunloopEmulator, http: httpx.Client) -> None:
    runloop_emulator.add_fault("status", status=429, retry_after=1, should_retry=True, times=1)
    throttled = http.get("/v1/benchmarks")
    assert throttled.status_code == 429
    assert (throttled.headers["retry-after"], throttled.headers["x-should-retry"]) == ("1", "true")
    assert http.get("/v1/benchmarks").status_code == 200

    # Latency sleeps asynchronously: a request to another path is answered while a slow one waits.
    runloop_emulator.add_fault("latency", latency_seconds=1.5, path="/v1/scenarios", times=1)
    slow = threading.Thread(target=lambda: http.get("/v1/scenarios"))
    slow.start()
    while not any(f.fired for f in runloop_emulator.faults.list() if f.kind == "latency"):
        time.sleep(0.01)
    assert http.get("/v1/benchmarks").status_code == 200
    assert slow.is_alive()
    slow.join()
    assert [entry.path for entry in runloop_emulator.requests()][-2:] == ["/v1/benchmarks", "/v1/scenarios"]


def test_dropped_truncated_and_malformed_responses(
    runloop_emulator: RunloopEmulator, http: httpx.Client
) -> None:
    runloop_emulator.add_fault("drop_connection", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/benchmarks")
    runloop_emulator.add_fault("truncate_body", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/benchmarks")
    runloop_emulator.add_fault("malformed_body", times=1)
    malformed = http.get("/v1/benchmarks")
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    assert http.get("/v1/benchmarks").status_code == 200  # the server is fine afterwards
    assert [(e.fault, e.status) for e in runloop_emulator.requests()] == [
        ("drop_connection", None),
        ("truncate_body", None),
        ("malformed_body", 200),
        (None, 200),
    ]


def test_repeated_pages_and_items_inserted_between_pages(
    runloop_emulator: RunloopEmulator, http: httpx.Client
) -> None:
    run_id = runloop_emulator.start_scripted_run(
        script={"scenario_count": 30, "timing": {"start_interval": 0.1}}
    )
    runloop_emulator.advance(5)
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    runloop_emulator.add_fault("repeat_page", path=path, skip=1, times=1)
    runloop_emulator.add_fault("insert_item", path=path, skip=1, times=1)
    items, pages = _walk(http, path, limit=10)
    ids = [item["id"] for item in items]
    assert len(ids) == 41  # 30 + the 10 served twice + 1 newcomer
    assert len(set(ids)) == 31
    assert [page["total"] for page in pages][-1] == 31
    assert [e.fault for e in runloop_emulator.requests()].count("repeat_page") == 1
    assert [e.fault for e in runloop_emulator.requests()].count("insert_item") == 1


def test_an_interactive_run_through_its_whole_lifecycle(
    runloop_emulator: RunloopEmulator, http: httpx.Client
) -> None:
    runloop_emulator.configure(scoring_delay_seconds=5)
    seeded = runloop_emulator.seed_benchmark({"scenario_count": 3})
    benchmark = http.get(f"/v1/benchmarks/{seeded.benchmark_id}").json()
    run = http.post(
        "/v1/benchmarks/start_run", json={"benchmark_id": benchmark["id"], "run_name": "it"}
    ).json()
    history: dict[str, list[str]] = {}

    def observe() -> None:
        for scenario_run in http.get(f"/v1/benchmark_runs/{run['id']}/scenario_runs").json()["runs"]:
            states = history.setdefault(scenario_run["id"], [])
            if not states or states[-1] != scenario_run["state"]:
                states.append(scenario_run["state"])

    scenario_runs = [
        http.post("/v1/scenarios/start_run", json={"scenario_id": sid, "benchmark_run_id": run["id"]}).json()
        for sid in benchmark["scenarioIds"]
    ]
    observe()
    for scenario_run in scenario_runs:
        assert http.post(f"/v1/scenarios/runs/{scenario_run['id']}/score").json()["state"] == "scoring"
    observe()
    runloop_emulator.advance(5)
    observe()
    for scenario_run in scenario_runs:
        completed = http.post(f"/v1/scenarios/runs/{scenario_run['id']}/complete").json()
        assert completed["state"] == "completed"
        assert 0 <= completed["scoring_contract_result"]["score"] <= 1
    observe()
    assert http.get(f"/v1/benchmark_runs/{run['id']}").json()["state"] == "running"  # never ends by itself
    done = http.post(f"/v1/benchmark_runs/{run['id']}/complete").json()
    assert done["state"] == "completed"
    assert 0 <= done["score"] <= 1
    assert list(history.values()) == [["running", "scoring", "scored", "completed"]] * 3


def test_a_benchmark_job_completes_by_itself_on_the_driven_clock(
    runloop_emulator: RunloopEmulator, http: httpx.Client
) -> None:
    script = {
        "scenario_count": 5,
        "scenarios": [{}, {"outcome": "setup_failed"}],
        "timing": {"start_interval": 1},
    }
    seeded = runloop_emulator.seed_benchmark(script)
    spec = {
        "type": "benchmark",
        "benchmark_id": seeded.benchmark_id,
        "agent_configs": [{"type": "job_agent", "name": "agent-a"}],
    }
    job = http.post("/v1/benchmark_jobs", json={"spec": spec}).json()
    states = [job["state"]]
    for _ in range(40):
        runloop_emulator.advance(1)
        job = http.get(f"/v1/benchmark_jobs/{job['id']}").json()
        if job["state"] != states[-1]:
            states.append(job["state"])
    assert states == ["queued", "running", "completed"]
    (outcome,) = job["benchmark_outcomes"]
    assert len(outcome["scenario_outcomes"]) == 5
    setup_failure = next(
        o for o in outcome["scenario_outcomes"] if o["scenario_definition_id"] == seeded.scenario_ids[1]
    )
    assert setup_failure["state"] == "FAILED"
    assert "scenario_run_id" not in setup_failure
    assert job["in_progress_runs"] == []
    run = http.get(f"/v1/benchmark_runs/{outcome['benchmark_run_id']}").json()
    assert run["state"] == "completed"
    assert run["benchmark_id"] == seeded.benchmark_id


@pytest.mark.runloop_emulator(seed=9, emit_nulls=True, api_key="marker-key")
def test_the_marker_passes_options_to_the_fixture(
    runloop_emulator: RunloopEmulator, http: httpx.Client
) -> None:
    assert runloop_emulator.seed == 9
    assert runloop_emulator.api_key == "marker-key"
    run_id = runloop_emulator.start_scripted_run()
    assert http.get(f"/v1/benchmark_runs/{run_id}").json()["duration_ms"] is None


@pytest.mark.parametrize("runloop_emulator_options", [{"seed": 4, "api_key": "options-key"}])
@pytest.mark.runloop_emulator(api_key="marker-key")
def test_options_are_the_fixtures_defaults_and_markers_and_arguments_win(
    runloop_emulator: RunloopEmulator, runloop_emulator_factory: Any
) -> None:
    assert (runloop_emulator.seed, runloop_emulator.api_key) == (4, "marker-key")
    made = runloop_emulator_factory(seed=5)
    assert (made.seed, made.api_key) == (5, "options-key")


def test_the_factory_starts_independent_emulators(runloop_emulator_factory: Any) -> None:
    fast = runloop_emulator_factory(clock=RealClock(speed=1000))
    other = runloop_emulator_factory()
    assert fast.base_url != other.base_url
    run_id = fast.start_scripted_run(script={"scenario_count": 1})
    deadline = time.monotonic() + 20
    while fast.benchmark_run_state(run_id) != "completed":  # ~20 emulated seconds at 1000x
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert (
        httpx.get(f"{other.base_url}/v1/benchmark_runs/{run_id}", headers=other.auth_headers).status_code
        == 404
    )


def test_the_cli_writes_a_ready_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    command = [
        sys.executable,
        "-m",
        "airflow_provider_runloop.testing",
        "--port=0",
        f"--ready-file={ready}",
        "--scenarios=3",
        "--speed=1000",
        "--api-key=cli-key",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the CLI did not write its ready file"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["pid"] == process.pid
        assert info["base_url"].startswith("http://127.0.0.1:")
        assert json.loads(info["airflow_conn"])["password"] == "cli-key"
        headers = {"Authorization": "Bearer cli-key"}
        run = httpx.get(f"{info['base_url']}/v1/benchmark_runs/{info['benchmark_run_id']}", headers=headers)
        assert run.status_code == 200
        assert run.json()["benchmark_id"] == info["benchmark_id"]
        os.kill(info["pid"], signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert f"AIRFLOW_CONN_RUNLOOP_DEFAULT='{info['airflow_conn']}'" in stdout
    assert "stopped" in stdout
    assert not ready.exists()
