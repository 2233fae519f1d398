"""The ``/_emulator`` control API, the clocks and the index structures behind big listings."""

from __future__ import annotations

import random

import httpx
import pytest

from airflow_provider_runloop.testing import ManualClock, RealClock, RunloopEmulator
from airflow_provider_runloop.testing.records import INFINITE_MS, StateCounter, TimeOrdered
from airflow_provider_runloop.testing.state import ScenarioRunRecord

STATES = ("running", "scoring", "scored", "completed", "canceled", "timeout", "failed")


async def test_clock_and_settings(client: httpx.AsyncClient, emulator: RunloopEmulator) -> None:
    start = (await client.get("/_emulator/clock")).json()
    assert start == {"now_ms": emulator.now_ms(), "clock": "ManualClock"}
    advanced = (await client.post("/_emulator/clock/advance", json={"seconds": 2.5})).json()
    assert advanced["now_ms"] == start["now_ms"] + 2500
    assert (await client.post("/_emulator/clock/advance", json={"seconds": -1})).status_code == 400
    settings = (
        await client.post("/_emulator/settings", json={"emit_nulls": True, "scoring_delay_seconds": 0})
    ).json()
    assert (settings["emit_nulls"], settings["scoring_delay_seconds"]) == (True, 0)
    assert emulator.settings.emit_nulls is True
    assert (await client.get("/_emulator/settings")).json() == settings
    for bad in ({"emit_nulls": "yes"}, {"nope": 1}, {"job_concurrency": 0}):
        response = await client.post("/_emulator/settings", json=bad)
        assert response.status_code == 400
        assert set(response.json()) == {"message"}


async def test_faults_over_the_control_api(client: httpx.AsyncClient, emulator: RunloopEmulator) -> None:
    fault = (
        await client.post(
            "/_emulator/faults", json={"kind": "status", "status": 503, "times": 1, "path": "/v1/*"}
        )
    ).json()
    assert fault["id"] == "flt_1"
    assert fault["fired"] == 0
    assert (await client.get("/v1/benchmarks")).status_code == 503
    assert (await client.get("/_emulator/faults")).json()["faults"][0]["fired"] == 1
    assert (await client.post("/_emulator/faults", json={"kind": "nope"})).status_code == 400
    assert (await client.delete("/_emulator/faults/flt_1")).status_code == 200
    assert (await client.delete("/_emulator/faults/flt_1")).status_code == 404
    await client.post("/_emulator/faults", json={"kind": "status"})
    assert (await client.delete("/_emulator/faults")).json() == {"faults": []}
    assert emulator.faults.list() == []


async def test_request_log_over_the_control_api(client: httpx.AsyncClient, emulator: RunloopEmulator) -> None:
    await client.get("/v1/benchmarks", params={"limit": 3}, headers={"x-request-id": "r-1"})
    await client.get("/v1/scenarios")
    logged = (await client.get("/_emulator/requests", params={"path": "/v1/bench*"})).json()["requests"]
    assert [(r["method"], r["path"], r["query"], r["status"], r["request_id"]) for r in logged] == [
        ("GET", "/v1/benchmarks", "limit=3", 200, "r-1")
    ]
    await client.delete("/_emulator/requests")
    assert (await client.get("/_emulator/requests")).json() == {"requests": []}


async def test_seeding_runs_and_forcing_states_over_the_control_api(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    script = {"scenario_count": 2, "timing": {"start_interval": 0}}
    seeded = (await client.post("/_emulator/benchmarks", json={"script": script, "name": "ctl"})).json()
    assert seeded["name"] == "ctl"
    assert len(seeded["scenario_ids"]) == 2
    started = (
        await client.post(
            "/_emulator/scripted_runs", json={"benchmark_id": seeded["benchmark_id"], "auto_complete": False}
        )
    ).json()
    run_id = started["benchmark_run_id"]
    assert started["benchmark_id"] == seeded["benchmark_id"]
    scenario_run_id = next(iter(emulator.scenario_run_states(run_id)))
    forced = await client.post(
        f"/_emulator/scenario_runs/{scenario_run_id}/force_state", json={"state": "timeout"}
    )
    assert forced.json()["state"] == "timeout"
    assert (
        await client.post(f"/_emulator/scenario_runs/{scenario_run_id}/force_state", json={"state": "failed"})
    ).status_code == 400
    failed = await client.post(f"/_emulator/benchmark_runs/{run_id}/force_state", json={"state": "failed"})
    assert failed.json()["state"] == "failed"
    assert (
        await client.post("/_emulator/benchmark_runs/bmr_nope/force_state", json={"state": "failed"})
    ).status_code == 404
    job = (
        await client.post(
            "/v1/benchmark_jobs",
            json={
                "spec": {
                    "type": "scenarios",
                    "scenario_ids": seeded["scenario_ids"],
                    "agent_configs": [{"type": "job_agent", "name": "a"}],
                }
            },
        )
    ).json()
    forced_job = await client.post(
        f"/_emulator/benchmark_jobs/{job['id']}/force_state",
        json={"state": "timeout", "failure_reason": "slow"},
    )
    assert forced_job.json()["state"] == "timeout"
    bad_script = await client.post("/_emulator/scripted_runs", json={"script": {"bogus": 1}})
    assert bad_script.status_code == 400
    assert "bogus" in bad_script.json()["message"]
    scripted = (await client.post("/_emulator/scripted_runs", json={"script": script})).json()
    assert scripted["benchmark_id"] != seeded["benchmark_id"]  # a benchmark was seeded from the script


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start_ms=1000)
    assert clock.now_ms() == clock.now_ms() == 1000
    assert clock.advance(1.5) == 2500
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_real_clock_is_monotonic_and_can_skip_ahead() -> None:
    clock = RealClock(speed=1000)
    first = clock.now_ms()
    assert clock.advance(60) >= first + 60_000
    assert clock.now_ms() >= first
    with pytest.raises(ValueError, match="speed"):
        RealClock(speed=0)


def _random_run(rng: random.Random, index: int) -> ScenarioRunRecord:
    created = rng.randrange(0, 100)
    times = sorted(rng.randrange(created, 200) for _ in range(3))
    scoring, scored, end = (t if rng.random() < 0.7 else INFINITE_MS for t in times)
    scored = max(scored, scoring) if scored < INFINITE_MS else scored
    end = max(end, scored) if end < INFINITE_MS and scored < INFINITE_MS else end
    return ScenarioRunRecord(
        id=f"scr_{index:05d}",
        scenario_id="scn",
        devbox_id="dbx",
        benchmark_run_id="bmr",
        created_ms=created,
        outcome="completed",
        score=0.5,
        function_scores=(),
        scoring_delay_ms=0,
        scoring_ms=scoring,
        scored_ms=scored,
        end_ms=end,
        end_state=rng.choice(["completed", "failed", "timeout", "canceled"]),
    )


def test_the_state_counter_agrees_with_reading_every_timeline() -> None:
    rng = random.Random(3)
    runs = [_random_run(rng, i) for i in range(400)]
    counter = StateCounter()
    counter.rebuild(runs[:200])
    for run in runs[200:]:
        counter.add(run)
    for run in runs[:50]:  # remove and re-add, as a client action does around a change
        counter.remove(run)
        run.end_ms, run.end_state = max(run.created_ms, 150), "canceled"
        run.scoring_ms = min(run.scoring_ms, run.end_ms)
        run.scored_ms = min(run.scored_ms, run.end_ms) if run.scored_ms >= run.scoring_ms else run.scored_ms
        counter.add(run)
    for now in range(0, 220, 7):
        expected = {state: 0 for state in STATES}
        for run in runs:
            if run.created_ms <= now:
                expected[run.state_at(now)] += 1
        assert {state: counter.count(state, now) for state in STATES} == expected


def test_time_ordered_pages_newest_first_and_hides_the_future() -> None:
    index: TimeOrdered[ScenarioRunRecord] = TimeOrdered()
    rng = random.Random(1)
    runs = [_random_run(rng, i) for i in range(50)]
    index.extend(runs[:25])
    for run in runs[25:]:
        index.add(run)
    visible = sorted(((r.created_ms, r.id) for r in runs if r.created_ms <= 60), reverse=True)
    page = index.page(60, limit=10, after=None)
    assert [(r.created_ms, r.id) for r in page.items] == visible[:10]
    assert page.total_count == len(visible)
    rest = index.page(60, limit=100, after=visible[9])
    assert [(r.created_ms, r.id) for r in rest.items] == visible[10:]
    assert rest.has_more is False
