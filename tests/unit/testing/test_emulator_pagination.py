"""Cursor pagination (unverified choices 1-5 in docs/emulator.md) and list filters."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from airflow_provider_runloop.testing import RunloopEmulator

STATES = ("running", "scoring", "scored", "completed", "canceled", "timeout", "failed")


def _scripted_run(emulator: RunloopEmulator, count: int, **timing: Any) -> str:
    """A scripted run whose ``count`` scenario runs all start at once (no stagger)."""
    return emulator.start_scripted_run(
        script={"scenario_count": count, "timing": {"start_interval": 0, **timing}}
    )


async def _walk(client: httpx.AsyncClient, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"starting_after": cursor} if cursor else {})}
        page = (await client.get(path, params=query)).json()
        items += page[key]
        if not page["has_more"]:
            return items
        cursor = page[key][-1]["id"]


@pytest.mark.parametrize(("limit", "expected"), [(None, 20), ("", 20), ("1", 1), ("20", 20), ("5000", 45)])
async def test_valid_limits(
    client: httpx.AsyncClient, emulator: RunloopEmulator, limit: str | None, expected: int
) -> None:
    run_id = _scripted_run(emulator, 45)
    params = {} if limit is None else {"limit": limit}
    page = (await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs", params=params)).json()
    assert len(page["runs"]) == expected
    assert page["has_more"] is (expected < 45)
    assert page["total_count"] == 45


@pytest.mark.parametrize("limit", ["5001", "0", "-1", "x", "1.5", "ten"])
async def test_invalid_limits_are_400(
    client: httpx.AsyncClient, emulator: RunloopEmulator, limit: str
) -> None:
    run_id = _scripted_run(emulator, 3)
    for path in (f"/v1/benchmark_runs/{run_id}/scenario_runs", "/v1/benchmarks", "/v1/benchmark_jobs"):
        response = await client.get(path, params={"limit": limit})
        assert response.status_code == 400, path
        assert "limit" in response.json()["message"]


async def test_starting_after_an_unknown_id_is_400(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = _scripted_run(emulator, 3)
    response = await client.get(
        f"/v1/benchmark_runs/{run_id}/scenario_runs", params={"starting_after": "scr_nope"}
    )
    assert response.status_code == 400
    assert "scr_nope" in response.json()["message"]


async def test_include_total_count_false_omits_it_or_sends_null(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = _scripted_run(emulator, 3)
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    page = (await client.get(path, params={"include_total_count": "false"})).json()
    assert set(page) == {"runs", "has_more"}
    emulator.configure(emit_nulls=True)
    page = (await client.get(path, params={"include_total_count": "false"})).json()
    assert page["total_count"] is None
    assert (await client.get(path, params={"include_total_count": "maybe"})).status_code == 400


@pytest.mark.parametrize("limit", [1, 7, 20, 39, 40, 41])
async def test_pages_cover_every_item_once_newest_first(
    client: httpx.AsyncClient, emulator: RunloopEmulator, limit: int
) -> None:
    seeded = emulator.seed_benchmark({"scenario_count": 40, "timing": {"start_interval": 0.5}})
    run_id = emulator.start_scripted_run(seeded.benchmark_id)
    emulator.advance(19.5)  # all 40 started; runs created in the same millisecond are ordered by id
    items = await _walk(client, f"/v1/benchmark_runs/{run_id}/scenario_runs", "runs", limit=limit)
    keys = [(run["start_time_ms"], run["id"]) for run in items]
    assert len(keys) == 40
    assert keys == sorted(keys, reverse=True)


async def test_exact_page_boundary_has_no_more(client: httpx.AsyncClient, emulator: RunloopEmulator) -> None:
    run_id = _scripted_run(emulator, 40)
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    first = (await client.get(path, params={"limit": 20})).json()
    second = (await client.get(path, params={"limit": 20, "starting_after": first["runs"][-1]["id"]})).json()
    assert (first["has_more"], second["has_more"], len(second["runs"])) == (True, False, 20)
    assert second["total_count"] == 40  # the whole filtered set, not what is left after the cursor
    last = (await client.get(path, params={"limit": 5, "starting_after": second["runs"][-1]["id"]})).json()
    assert last == {"runs": [], "has_more": False, "total_count": 40}


async def test_state_counts_match_the_listing_at_any_time(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = emulator.start_scripted_run(
        script={
            "scenario_count": 300,
            "outcomes": {"completed": 6, "failed": 1, "timeout": 1, "canceled": 1, "stays_scored": 1},
            "timing": {"start_interval": 0.1, "duration": [1, 20], "scoring": [1, 10], "complete": [0, 5]},
        }
    )
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    for _ in range(8):
        emulator.advance(4)
        listed = Counter(run["state"] for run in await _walk(client, path, "runs", limit=5000))
        for state in STATES:
            page = (await client.get(path, params={"state": state, "limit": 1})).json()
            assert page["total_count"] == listed[state], state
            assert all(run["state"] == state for run in page["runs"])
            assert page["has_more"] is (listed[state] > 1)


async def test_a_state_filtered_walk_survives_the_cursor_changing_state(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = _scripted_run(emulator, 30, duration=[10, 60])
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    first = (await client.get(path, params={"state": "running", "limit": 10})).json()
    emulator.advance(30)  # some runs, maybe the cursor's, have moved on
    second = await client.get(
        path, params={"state": "running", "limit": 10, "starting_after": first["runs"][-1]["id"]}
    )
    assert second.status_code == 200
    first_ids = {run["id"] for run in first["runs"]}
    assert not first_ids & {run["id"] for run in second.json()["runs"]}


async def test_scenario_runs_state_filter_must_be_a_scenario_run_state(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = _scripted_run(emulator, 3)
    response = await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs", params={"state": "pending"})
    assert response.status_code == 400
    assert "pending" in response.json()["message"]
    # The global lists take a free string: an unknown value matches nothing (unverified choice 5).
    assert (await client.get("/v1/scenarios/runs", params={"state": "pending"})).json()["runs"] == []
    assert (await client.get("/v1/benchmark_runs", params={"state": "pending"})).json()["total_count"] == 0
    assert (await client.get("/v1/scenarios/runs", params={"benchmark_run_id": "bmr_nope"})).json()[
        "runs"
    ] == []


async def test_list_filters(client: httpx.AsyncClient, emulator: RunloopEmulator) -> None:
    seeded = emulator.seed_benchmark({"benchmark_name": "alpha", "scenario_count": 3})
    emulator.seed_benchmark({"benchmark_name": "beta", "scenario_count": 2})
    run_id = emulator.start_scripted_run(seeded.benchmark_id, name="nightly")
    emulator.advance(100)

    async def total(path: str, **params: Any) -> int:
        body = (await client.get(path, params=params)).json()
        return int(body["total_count"])

    assert await total("/v1/benchmarks") == 2
    assert await total("/v1/benchmarks", name="alpha") == 1
    assert await total("/v1/benchmarks", search="BET") == 1
    assert await total("/v1/benchmarks", search=seeded.benchmark_id) == 1
    assert await total("/v1/scenarios") == 5
    assert await total("/v1/scenarios", benchmark_id=seeded.benchmark_id) == 3
    assert await total("/v1/scenarios", benchmark_id="bmd_nope") == 0
    assert await total(f"/v1/benchmarks/{seeded.benchmark_id}/definitions") == 3
    assert await total("/v1/benchmark_runs", benchmark_id=seeded.benchmark_id, state="completed") == 1
    assert await total("/v1/benchmark_runs", name="nightly") == 1
    assert await total("/v1/benchmark_runs", search="night") == 1
    assert await total(f"/v1/benchmarks/{seeded.benchmark_id}/runs") == 1
    assert await total("/v1/scenarios/runs", scenario_id=seeded.scenario_ids[0]) == 1
    assert await total("/v1/scenarios/runs", benchmark_run_id=run_id, state="completed") == 3
    scenario_run = (await client.get("/v1/scenarios/runs", params={"limit": 1})).json()["runs"][0]
    assert await total(f"/v1/benchmark_runs/{run_id}/scenario_runs", search=scenario_run["id"]) == 1
    assert await total(f"/v1/benchmark_runs/{run_id}/scenario_runs", search="scenario-00") == 3


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/v1/benchmarks", "benchmarks"),
        ("/v1/scenarios", "scenarios"),
        ("/v1/benchmark_runs", "runs"),
        ("/v1/scenarios/runs", "runs"),
        ("/v1/benchmark_jobs", "jobs"),
    ],
)
async def test_every_list_pages_with_a_cursor(
    client: httpx.AsyncClient, emulator: RunloopEmulator, path: str, key: str
) -> None:
    for _ in range(3):
        seeded = emulator.seed_benchmark({"scenario_count": 2, "timing": {"start_interval": 0}})
        emulator.start_scripted_run(seeded.benchmark_id)
        agent = [{"type": "job_agent", "name": "agent"}]
        await client.post(
            "/v1/benchmark_jobs",
            json={"spec": {"type": "benchmark", "benchmark_id": seeded.benchmark_id, "agent_configs": agent}},
        )
        emulator.advance(1)
    emulator.advance(60)
    everything = (await client.get(path, params={"limit": 5000})).json()
    walked = await _walk(client, path, key, limit=1)
    assert [item["id"] for item in walked] == [item["id"] for item in everything[key]]
    assert len(walked) == everything["total_count"] > 2


async def test_a_capped_server_serves_short_pages_that_has_more_carries_on(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = _scripted_run(emulator, 7)
    emulator.configure(max_page_size=3)
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    page = (await client.get(path, params={"limit": "5000"})).json()
    assert (len(page["runs"]), page["has_more"], page["total_count"]) == (3, True, 7)
    walked = await _walk(client, path, "runs", limit="5000")
    assert len({run["id"] for run in walked}) == len(walked) == 7
    emulator.configure(max_page_size=None)
    assert len((await client.get(path, params={"limit": "5000"})).json()["runs"]) == 7
    with pytest.raises(ValueError, match="max_page_size"):
        emulator.configure(max_page_size=0)
