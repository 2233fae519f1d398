"""Lifecycle rules of benchmark runs and scenario runs (unverified choices 6-15 in docs/emulator.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_runloop.testing import RunloopEmulator

ALL_COMPLETE = {"scenario_count": 3, "timing": {"scoring": 10}}


async def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def _interactive_run(
    client: httpx.AsyncClient, emulator: RunloopEmulator, script: Any = None
) -> tuple[str, list[str]]:
    seeded = emulator.seed_benchmark(script or ALL_COMPLETE)
    run = await _json(
        await client.post("/v1/benchmarks/start_run", json={"benchmark_id": seeded.benchmark_id})
    )
    assert run["state"] == "running"
    return run["id"], list(seeded.scenario_ids)


async def _start_scenario(client: httpx.AsyncClient, scenario_id: str, run_id: str | None) -> dict[str, Any]:
    body = {"scenario_id": scenario_id, "benchmark_run_id": run_id}
    return await _json(await client.post("/v1/scenarios/start_run", json=body))  # type: ignore[no-any-return]


async def _scenario_run_in(client: httpx.AsyncClient, emulator: RunloopEmulator, state: str) -> str:
    """A scenario run of an interactive run, brought to ``state`` the way a client (or a hook) would."""
    run_id, scenario_ids = await _interactive_run(client, emulator)
    scenario_run_id = (await _start_scenario(client, scenario_ids[0], run_id))["id"]
    if state in ("scoring", "scored", "completed"):
        await _json(await client.post(f"/v1/scenarios/runs/{scenario_run_id}/score"))
    if state in ("scored", "completed"):
        emulator.advance(10)
    if state == "completed":
        await _json(await client.post(f"/v1/scenarios/runs/{scenario_run_id}/complete"))
    if state == "canceled":
        await _json(await client.post(f"/v1/scenarios/runs/{scenario_run_id}/cancel"))
    if state in ("failed", "timeout"):
        emulator.force_scenario_run_state(scenario_run_id, state)
    assert emulator.scenario_run_state(scenario_run_id) == state
    return scenario_run_id


# (action, state before) -> (status, state after); unverified choices 9 and 10.
SCENARIO_RUN_ACTIONS = [
    ("score", "running", 200, "scoring"),
    ("score", "scoring", 200, "scoring"),
    ("score", "scored", 200, "scored"),
    ("score", "completed", 400, "completed"),
    ("score", "canceled", 400, "canceled"),
    ("score", "failed", 400, "failed"),
    ("score", "timeout", 400, "timeout"),
    ("complete", "running", 400, "running"),
    ("complete", "scoring", 400, "scoring"),
    ("complete", "scored", 200, "completed"),
    ("complete", "completed", 200, "completed"),
    ("complete", "canceled", 400, "canceled"),
    ("complete", "failed", 400, "failed"),
    ("cancel", "running", 200, "canceled"),
    ("cancel", "scoring", 200, "canceled"),
    ("cancel", "scored", 200, "canceled"),
    ("cancel", "canceled", 200, "canceled"),
    ("cancel", "completed", 400, "completed"),
    ("cancel", "failed", 400, "failed"),
    ("cancel", "timeout", 400, "timeout"),
]


@pytest.mark.parametrize(("action", "before", "status", "after"), SCENARIO_RUN_ACTIONS)
async def test_scenario_run_actions_follow_the_state_table(
    client: httpx.AsyncClient, emulator: RunloopEmulator, action: str, before: str, status: int, after: str
) -> None:
    scenario_run_id = await _scenario_run_in(client, emulator, before)
    response = await client.post(f"/v1/scenarios/runs/{scenario_run_id}/{action}")
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["state"] == after
    else:
        assert set(response.json()) == {"message"}
        assert before in response.json()["message"]
    assert emulator.scenario_run_state(scenario_run_id) == after


@pytest.mark.parametrize(
    "send",
    [{}, {"content": b""}, {"json": {}}, {"json": None}, {"json": {"unknown": 1}}, {"content": b"null"}],
)
async def test_action_posts_accept_no_body_empty_object_null_and_unknown_keys(
    client: httpx.AsyncClient, emulator: RunloopEmulator, send: dict[str, Any]
) -> None:
    scenario_run_id = await _scenario_run_in(client, emulator, "running")
    response = await client.post(f"/v1/scenarios/runs/{scenario_run_id}/score", **send)
    assert response.status_code == 200, response.text


async def test_an_action_body_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    scenario_run_id = await _scenario_run_in(client, emulator, "running")
    response = await client.post(f"/v1/scenarios/runs/{scenario_run_id}/score", json=[1])
    assert response.status_code == 400
    assert "object" in response.json()["message"]


async def test_score_is_scoring_at_once_then_scored_with_a_result_after_the_delay(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    emulator.configure(scoring_delay_seconds=10)
    scenario_run_id = await _scenario_run_in(client, emulator, "running")
    scored = await _json(await client.post(f"/v1/scenarios/runs/{scenario_run_id}/score"))
    assert scored["state"] == "scoring"
    assert "scoring_contract_result" not in scored
    emulator.advance(9.999)
    assert (await _json(await client.get(f"/v1/scenarios/runs/{scenario_run_id}")))["state"] == "scoring"
    emulator.advance(0.001)
    view = await _json(await client.get(f"/v1/scenarios/runs/{scenario_run_id}"))
    assert view["state"] == "scored"
    result = view["scoring_contract_result"]
    assert 0.5 <= result["score"] <= 1
    assert [r["scoring_function_name"] for r in result["scoring_function_results"]] == [
        "tests_pass",
        "lint_clean",
    ]
    assert all(r["state"] == "complete" and r["output"] for r in result["scoring_function_results"])
    assert "duration_ms" not in view  # not lifecycle-over yet
    completed = await _json(await client.post(f"/v1/scenarios/runs/{scenario_run_id}/complete"))
    assert completed["state"] == "completed"
    assert completed["duration_ms"] == 10_000
    assert completed["scoring_contract_result"] == result


async def test_scripted_failures_end_the_scoring_of_an_interactive_run(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    script = {
        "timing": {"scoring": 2, "setup": 3},
        "scenarios": [{"outcome": "timeout"}, {"outcome": "setup_failed"}],
    }
    run_id, (timing_out, broken) = await _interactive_run(client, emulator, script)
    first = (await _start_scenario(client, timing_out, run_id))["id"]
    await client.post(f"/v1/scenarios/runs/{first}/score")
    second = (await _start_scenario(client, broken, run_id))["id"]
    emulator.advance(2)
    assert emulator.scenario_run_state(first) == "timeout"
    assert emulator.scenario_run_state(second) == "running"
    emulator.advance(1)
    assert emulator.scenario_run_state(second) == "failed"


async def test_scoring_longer_than_scorer_timeout_sec_ends_in_timeout(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    scenario = await _json(
        await client.post(
            "/v1/scenarios",
            json={
                "name": "slow-scorer",
                "input_context": {"problem_statement": "fix it"},
                "scoring_contract": {"scoring_function_parameters": []},
                "scorer_timeout_sec": 5,
            },
        )
    )
    emulator.configure(scoring_delay_seconds=60)
    scenario_run_id = (await _start_scenario(client, scenario["id"], None))["id"]
    await client.post(f"/v1/scenarios/runs/{scenario_run_id}/score")
    emulator.advance(5)
    assert emulator.scenario_run_state(scenario_run_id) == "timeout"


async def test_an_interactive_benchmark_run_never_ends_by_itself(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id, _ = await _interactive_run(client, emulator)
    emulator.advance(10**6)
    view = await _json(await client.get(f"/v1/benchmark_runs/{run_id}"))
    assert view["state"] == "running"
    assert "score" not in view
    assert "duration_ms" not in view
    listing = await _json(await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs"))
    assert listing == {"runs": [], "has_more": False, "total_count": 0}


async def test_completing_a_benchmark_run_leaves_active_scenario_runs_and_scores_the_results(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    emulator.configure(scoring_delay_seconds=1)
    run_id, scenario_ids = await _interactive_run(client, emulator)
    scored = (await _start_scenario(client, scenario_ids[0], run_id))["id"]
    running = (await _start_scenario(client, scenario_ids[1], run_id))["id"]
    await client.post(f"/v1/scenarios/runs/{scored}/score")
    emulator.advance(1)
    result_score = (await _json(await client.get(f"/v1/scenarios/runs/{scored}")))["scoring_contract_result"][
        "score"
    ]
    view = await _json(await client.post(f"/v1/benchmark_runs/{run_id}/complete"))
    assert view["state"] == "completed"
    assert view["duration_ms"] == 1000
    assert view["score"] == pytest.approx(
        result_score / 2, abs=1e-6
    )  # Σ scores ÷ number of scenario runs (unverified choice 8)
    assert emulator.scenario_run_states(run_id) == {scored: "scored", running: "running"}
    assert (await client.post(f"/v1/benchmark_runs/{run_id}/complete")).status_code == 200
    assert (await client.post(f"/v1/benchmark_runs/{run_id}/cancel")).status_code == 400
    blocked = await client.post(
        "/v1/scenarios/start_run", json={"scenario_id": scenario_ids[2], "benchmark_run_id": run_id}
    )
    assert blocked.status_code == 400
    assert "completed" in blocked.json()["message"]


async def test_canceling_a_benchmark_run_cancels_its_active_scenario_runs(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    emulator.configure(scoring_delay_seconds=1)
    run_id, scenario_ids = await _interactive_run(client, emulator)
    ids = [(await _start_scenario(client, scenario_id, run_id))["id"] for scenario_id in scenario_ids]
    await client.post(f"/v1/scenarios/runs/{ids[0]}/score")
    emulator.advance(1)
    await client.post(f"/v1/scenarios/runs/{ids[0]}/complete")
    await client.post(f"/v1/scenarios/runs/{ids[1]}/score")
    emulator.advance(1)
    kept_score = (await _json(await client.get(f"/v1/scenarios/runs/{ids[1]}")))["scoring_contract_result"][
        "score"
    ]
    done_score = (await _json(await client.get(f"/v1/scenarios/runs/{ids[0]}")))["scoring_contract_result"][
        "score"
    ]
    view = await _json(await client.post(f"/v1/benchmark_runs/{run_id}/cancel"))
    assert view["state"] == "canceled"
    assert emulator.scenario_run_states(run_id) == {
        ids[0]: "completed",
        ids[1]: "canceled",
        ids[2]: "canceled",
    }
    # A run canceled after scoring keeps its result and counts towards the score.
    canceled_scored = await _json(await client.get(f"/v1/scenarios/runs/{ids[1]}"))
    assert canceled_scored["scoring_contract_result"]["score"] == kept_score
    assert view["score"] == pytest.approx((done_score + kept_score) / 3, abs=1e-6)
    assert (await client.post(f"/v1/benchmark_runs/{run_id}/cancel")).status_code == 200
    assert (await client.post(f"/v1/benchmark_runs/{run_id}/complete")).status_code == 400


async def test_a_benchmark_run_without_scenario_runs_has_no_score(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id, _ = await _interactive_run(client, emulator)
    view = await _json(await client.post(f"/v1/benchmark_runs/{run_id}/complete"))
    assert view["state"] == "completed"
    assert "score" not in view
    emulator.configure(emit_nulls=True)
    assert (await _json(await client.get(f"/v1/benchmark_runs/{run_id}")))["score"] is None


async def test_a_scripted_run_progresses_on_the_clock_and_completes_itself(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    script = {
        "scenario_count": 4,
        "timing": {
            "start_interval": 10,
            "duration": 5,
            "scoring": 2,
            "complete": 1,
            "setup": 3,
            "retry_delay": 1,
        },
        "scenarios": [{"attempts": ["failed", "completed"]}, {"outcome": "setup_failed"}],
    }
    seeded = emulator.seed_benchmark(script)
    run_id = emulator.start_scripted_run(seeded.benchmark_id)
    states = emulator.scenario_run_states

    assert list(states(run_id).values()) == ["running"]  # the others have not started yet (stagger)
    emulator.advance(5)
    assert list(states(run_id).values()) == ["failed"]
    emulator.advance(1)  # the retry: a second run of the same scenario
    listing = await _json(await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs"))
    assert [r["scenario_id"] for r in listing["runs"]] == [seeded.scenario_ids[0]] * 2
    emulator.advance(14)  # t=20: scenario 2 starts; scenario 1 failed setup without a run
    assert sorted(states(run_id).values()) == ["completed", "failed", "running"]
    emulator.advance(10)  # t=30: scenario 3 starts
    assert emulator.benchmark_run_state(run_id) == "running"
    emulator.advance(8)  # t=38: everything is lifecycle-over
    view = await _json(await client.get(f"/v1/benchmark_runs/{run_id}"))
    assert view["state"] == "completed"
    assert sorted(states(run_id).values()) == ["completed", "completed", "completed", "failed"]
    assert all(r["scenario_id"] != seeded.scenario_ids[1] for r in listing["runs"])
    assert view["duration_ms"] == 38_000
    assert 0 < view["score"] < 1


async def test_a_scripted_run_without_auto_complete_waits_for_the_client(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = emulator.start_scripted_run(script={"scenario_count": 2}, auto_complete=False)
    emulator.advance(3600)
    assert set(emulator.scenario_run_states(run_id).values()) == {"completed"}
    assert emulator.benchmark_run_state(run_id) == "running"
    assert (await _json(await client.post(f"/v1/benchmark_runs/{run_id}/complete")))["state"] == "completed"


async def test_stays_scored_blocks_auto_completion_until_the_client_completes_it(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = emulator.start_scripted_run(script={"scenarios": [{"outcome": "stays_scored"}, {}]})
    emulator.advance(3600)
    states = emulator.scenario_run_states(run_id)
    assert sorted(states.values()) == ["completed", "scored"]
    assert emulator.benchmark_run_state(run_id) == "running"
    stuck = next(run for run, state in states.items() if state == "scored")
    await _json(await client.post(f"/v1/scenarios/runs/{stuck}/complete"))
    assert emulator.benchmark_run_state(run_id) == "completed"


async def test_ending_a_scripted_run_early_drops_the_runs_that_had_not_started(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = emulator.start_scripted_run(
        script={"scenario_count": 5, "timing": {"start_interval": 100, "duration": 60}}
    )
    emulator.advance(150)
    await _json(await client.post(f"/v1/benchmark_runs/{run_id}/cancel"))
    emulator.advance(1000)
    assert list(emulator.scenario_run_states(run_id).values()) == ["completed", "canceled"]


async def test_force_hooks_fail_benchmark_runs_and_scenario_runs(emulator: RunloopEmulator) -> None:
    run_id = emulator.start_scripted_run(script={"scenario_count": 2, "timing": {"start_interval": 100}})
    first = next(iter(emulator.scenario_run_states(run_id)))
    emulator.force_scenario_run_state(first, "timeout")
    emulator.force_benchmark_run_state(run_id, "failed")
    emulator.advance(500)
    assert emulator.benchmark_run_state(run_id) == "failed"
    assert emulator.scenario_run_states(run_id) == {first: "timeout"}


async def test_the_scenario_set_is_snapshotted_when_a_run_starts(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    seeded = emulator.seed_benchmark({"scenario_count": 3, "timing": {"start_interval": 10}})
    run_id = emulator.start_scripted_run(seeded.benchmark_id)
    body = {"scenarios_to_remove": list(seeded.scenario_ids[1:])}
    updated = await _json(await client.post(f"/v1/benchmarks/{seeded.benchmark_id}/scenarios", json=body))
    assert updated["scenarioIds"] == [seeded.scenario_ids[0]]
    emulator.advance(60)
    assert len(emulator.scenario_run_states(run_id)) == 3


async def test_start_run_checks_required_variables_and_reflects_the_run_profile(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    benchmark = await _json(
        await client.post(
            "/v1/benchmarks",
            json={
                "name": "needs-env",
                "required_environment_variables": ["TOKEN"],
                "required_secret_names": ["DB"],
            },
        )
    )
    missing = await client.post("/v1/benchmarks/start_run", json={"benchmark_id": benchmark["id"]})
    assert missing.status_code == 400
    assert "TOKEN" in missing.json()["message"]
    profile = {"envVars": {"TOKEN": "x"}, "secrets": {"DB_PASS": "DB"}, "purpose": "nightly"}
    run = await _json(
        await client.post(
            "/v1/benchmarks/start_run",
            json={
                "benchmark_id": benchmark["id"],
                "run_name": "n1",
                "metadata": {"k": "v"},
                "runProfile": profile,
            },
        )
    )
    assert run["environment_variables"] == {"TOKEN": "x"}
    assert run["secrets_provided"] == {"DB_PASS": "DB"}
    assert (run["purpose"], run["name"], run["metadata"]) == ("nightly", "n1", {"k": "v"})


async def test_archived_benchmarks_are_hidden_from_lists_and_cannot_run(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    seeded = emulator.seed_benchmark()
    await _json(await client.post(f"/v1/benchmarks/{seeded.benchmark_id}/archive"))
    assert (await _json(await client.get("/v1/benchmarks")))["total_count"] == 0
    assert (await _json(await client.get(f"/v1/benchmarks/{seeded.benchmark_id}")))["status"] == "archived"
    refused = await client.post("/v1/benchmarks/start_run", json={"benchmark_id": seeded.benchmark_id})
    assert refused.status_code == 400
    await _json(await client.post(f"/v1/benchmarks/{seeded.benchmark_id}/unarchive"))
    assert (await _json(await client.get("/v1/benchmarks")))["total_count"] == 1


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/benchmarks", {"description": "no name"}, 400),
        ("/v1/benchmarks", {"name": "x", "metadata": {"k": 1}}, 400),
        ("/v1/benchmarks", {"name": "x", "scenario_ids": ["scn_missing"]}, 404),
        ("/v1/benchmarks/start_run", {}, 400),
        ("/v1/benchmarks/start_run", {"benchmark_id": "bmd_missing"}, 404),
        ("/v1/scenarios/start_run", {"scenario_id": "scn_missing"}, 404),
        ("/v1/scenarios", {"name": "x", "input_context": {"problem_statement": "p"}}, 400),
        ("/v1/benchmark_jobs", {"name": "no spec"}, 400),
        (
            "/v1/benchmark_jobs",
            {"spec": {"type": "benchmark", "benchmark_id": "b", "agent_configs": []}},
            400,
        ),
        ("/v1/benchmark_jobs", {"spec": {"type": "nope"}}, 400),
    ],
)
async def test_invalid_requests_get_a_json_message(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == status
    assert set(response.json()) == {"message"}


async def test_unknown_request_fields_are_ignored(client: httpx.AsyncClient) -> None:
    created = await _json(await client.post("/v1/benchmarks", json={"name": "b", "future_field": {"x": 1}}))
    assert created["name"] == "b"
    assert "future_field" not in created


@pytest.mark.parametrize("dedupe", [False, True])
async def test_a_repeated_x_request_id_replays_only_when_dedupe_is_on(
    client: httpx.AsyncClient, emulator: RunloopEmulator, dedupe: bool
) -> None:
    emulator.configure(dedupe_request_ids=dedupe)
    seeded = emulator.seed_benchmark()
    headers = {"x-request-id": "stainless-python-retry-1"}
    body = {"benchmark_id": seeded.benchmark_id}
    first = await _json(await client.post("/v1/benchmarks/start_run", json=body, headers=headers))
    second = await _json(await client.post("/v1/benchmarks/start_run", json=body, headers=headers))
    assert (first["id"] == second["id"]) is dedupe
    runs = await _json(await client.get("/v1/benchmark_runs"))
    assert runs["total_count"] == (1 if dedupe else 2)


async def test_a_run_without_scenario_runs_lists_none_of_other_runs(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    """An empty run's listing is empty, however many scenario runs other runs have (it once fell back
    to every scenario run of the emulator, so a start-and-wait counted other runs' scenarios)."""
    emulator.start_scripted_run(script={"scenario_count": 4})
    emulator.advance(3600)
    run_id, _ = await _interactive_run(client, emulator)
    listing = await _json(await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs"))
    assert listing["runs"] == []
    assert listing["has_more"] is False
    also = await _json(await client.get("/v1/scenarios/runs", params={"benchmark_run_id": run_id}))
    assert also["runs"] == []
    everything = await _json(await client.get("/v1/scenarios/runs"))
    assert len(everything["runs"]) == 4
