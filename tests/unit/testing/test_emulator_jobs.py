"""Benchmark jobs orchestrate themselves: queued → running → completed, with outcomes.

Unverified choice 20 in docs/emulator.md.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_runloop.testing import RunloopEmulator

AGENTS = [
    {"type": "job_agent", "name": "claude", "model_name": "m-1"},
    {"type": "job_agent", "name": "codex"},
]
SCRIPT = {
    "scenario_count": 4,
    "timing": {
        "start_interval": 0,
        "duration": 10,
        "scoring": 2,
        "complete": 1,
        "setup": 3,
        "retry_delay": 1,
    },
    "scenarios": [{"attempts": ["failed", "completed"]}, {"outcome": "setup_failed"}, {"outcome": "timeout"}],
}


async def _create_job(
    client: httpx.AsyncClient, spec: dict[str, Any], name: str | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/v1/benchmark_jobs", json={"spec": spec, **({"name": name} if name else {})}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return (await client.get(f"/v1/benchmark_jobs/{job_id}")).json()  # type: ignore[no-any-return]


async def test_a_benchmark_job_runs_every_agent_and_completes_itself(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    seeded = emulator.seed_benchmark(SCRIPT)
    spec = {"type": "benchmark", "benchmark_id": seeded.benchmark_id, "agent_configs": AGENTS}
    job = await _create_job(client, spec)
    assert job["state"] == "queued"
    assert "in_progress_runs" not in job
    assert "benchmark_outcomes" not in job
    assert job["job_source"] == {
        "type": "benchmark",
        "benchmark_id": seeded.benchmark_id,
        "benchmark_name": seeded.name,
    }
    assert job["job_spec"]["scenario_ids"] == list(seeded.scenario_ids)
    assert job["job_spec"]["orchestrator_config"] == {
        "n_attempts": 0,
        "n_concurrent_trials": 10,
        "timeout_multiplier": 1.0,
        "quiet": False,
    }
    assert [config["type"] for config in job["job_spec"]["agent_configs"]] == ["job_agent", "job_agent"]

    emulator.advance(1)  # job_queue_seconds
    job = await _job(client, job["id"])
    assert job["state"] == "running"
    assert [run["state"] for run in job["in_progress_runs"]] == ["running", "running"]
    assert [run["agent_config"]["name"] for run in job["in_progress_runs"]] == ["claude", "codex"]
    run_ids = [run["benchmark_run_id"] for run in job["in_progress_runs"]]
    assert run_ids == emulator.job_benchmark_run_ids(job["id"])
    for run_id in run_ids:
        run = (await client.get(f"/v1/benchmark_runs/{run_id}")).json()
        assert run["benchmark_id"] == seeded.benchmark_id
    assert all(outcome["scenario_outcomes"] == [] for outcome in job["benchmark_outcomes"])

    emulator.advance(3)  # the setup failure shows first, without a scenario run
    outcome = (await _job(client, job["id"]))["benchmark_outcomes"][0]
    assert outcome["scenario_outcomes"] == [
        {
            "scenario_definition_id": seeded.scenario_ids[1],
            "scenario_name": "scenario-002",
            "state": "FAILED",
            "duration_ms": 3000,
            "failure_reason": {
                "exception_type": "SetupError",
                "exception_message": "[emulated] scenario setup failed",
            },
        }
    ]
    assert (outcome["n_completed"], outcome["n_failed"], outcome["n_timeout"]) == (0, 1, 0)

    emulator.advance(20)
    job = await _job(client, job["id"])
    assert job["state"] == "completed"
    assert job["in_progress_runs"] == []
    claude = job["benchmark_outcomes"][0]
    assert (claude["agent_name"], claude["model_name"]) == ("claude", "m-1")
    by_scenario = {o["scenario_definition_id"]: o for o in claude["scenario_outcomes"]}
    # n_attempts=0: the scenario scripted to fail first is not retried.
    assert by_scenario[seeded.scenario_ids[0]]["state"] == "FAILED"
    assert by_scenario[seeded.scenario_ids[2]]["state"] == "TIMEOUT"
    assert by_scenario[seeded.scenario_ids[3]]["state"] == "COMPLETED"
    assert by_scenario[seeded.scenario_ids[3]]["score"] == claude["average_score"]
    assert all(("score" in o) == (o["state"] == "COMPLETED") for o in claude["scenario_outcomes"])
    assert (claude["n_completed"], claude["n_failed"], claude["n_timeout"]) == (1, 2, 1)
    assert claude["duration_ms"] == 13_000
    for run_id in run_ids:
        assert emulator.benchmark_run_state(run_id) == "completed"


async def test_n_attempts_retries_failed_scenarios(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    seeded = emulator.seed_benchmark(SCRIPT)
    spec = {
        "type": "benchmark",
        "benchmark_id": seeded.benchmark_id,
        "agent_configs": AGENTS[:1],
        "orchestrator_config": {"n_attempts": 1},
    }
    job = await _create_job(client, spec)
    emulator.advance(100)
    job = await _job(client, job["id"])
    assert job["state"] == "completed"
    (run_id,) = emulator.job_benchmark_run_ids(job["id"])
    runs = (await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs", params={"limit": 50})).json()[
        "runs"
    ]
    retried = sorted(
        (r["start_time_ms"], r["state"], r["id"]) for r in runs if r["scenario_id"] == seeded.scenario_ids[0]
    )
    assert [state for _, state, _ in retried] == ["failed", "completed"]
    timed_out = [r["state"] for r in runs if r["scenario_id"] == seeded.scenario_ids[2]]
    assert timed_out == ["timeout", "timeout"]  # retried once, failed again
    outcome = {o["scenario_definition_id"]: o for o in job["benchmark_outcomes"][0]["scenario_outcomes"]}
    assert outcome[seeded.scenario_ids[0]]["state"] == "COMPLETED"
    assert outcome[seeded.scenario_ids[0]]["scenario_run_id"] == retried[-1][2]


async def test_a_scenarios_job_has_runs_without_a_benchmark(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    seeded = emulator.seed_benchmark({"scenario_count": 3})
    scenario_ids = list(seeded.scenario_ids[:2])
    job = await _create_job(
        client, {"type": "scenarios", "scenario_ids": scenario_ids, "agent_configs": AGENTS[:1]}
    )
    assert job["job_source"] == {"type": "scenarios", "scenario_ids": scenario_ids}
    emulator.advance(1)
    (run_id,) = emulator.job_benchmark_run_ids(job["id"])
    assert "benchmark_id" not in (await client.get(f"/v1/benchmark_runs/{run_id}")).json()
    emulator.advance(100)
    job = await _job(client, job["id"])
    assert job["state"] == "completed"
    assert len(job["benchmark_outcomes"][0]["scenario_outcomes"]) == 2


async def test_concurrency_limits_how_many_scenarios_run_at_once(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    seeded = emulator.seed_benchmark({"scenario_count": 4, "timing": {"start_interval": 0}})
    spec = {
        "type": "benchmark",
        "benchmark_id": seeded.benchmark_id,
        "agent_configs": AGENTS[:1],
        "orchestrator_config": {"n_concurrent_trials": 1},
    }
    job = await _create_job(client, spec)
    emulator.advance(1)
    (run_id,) = emulator.job_benchmark_run_ids(job["id"])
    for _ in range(60):
        active = [
            s for s in emulator.scenario_run_states(run_id).values() if s not in ("completed", "failed")
        ]
        assert len(active) <= 1
        emulator.advance(2)
    assert emulator.job_state(job["id"]) == "completed"


async def test_harbor_jobs_are_accepted_and_fail(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    job = await _create_job(client, {"type": "harbor", "inline_yaml": "jobs: []"}, name="harbor")
    assert job["job_source"] == {"type": "harbor", "inline_yaml": "jobs: []"}
    emulator.advance(1)
    assert (await _job(client, job["id"]))["state"] == "running"
    emulator.advance(1)
    job = await _job(client, job["id"])
    assert job["state"] == "failed"
    assert "Harbor" in job["failure_reason"]


async def test_force_job_state_and_job_listing(client: httpx.AsyncClient, emulator: RunloopEmulator) -> None:
    seeded = emulator.seed_benchmark()
    spec = {"type": "benchmark", "benchmark_id": seeded.benchmark_id, "agent_configs": AGENTS[:1]}
    job = await _create_job(client, spec, name="nightly")
    emulator.force_job_state(job["id"], "cancelled", failure_reason="operator stop")
    assert (await _job(client, job["id"]))["state"] == "cancelled"
    with pytest.raises(Exception, match="already cancelled"):
        emulator.force_job_state(job["id"], "failed")
    listing = (await client.get("/v1/benchmark_jobs", params={"name": "nightly"})).json()
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    emulator.configure(job_concurrency=3)
    other = await _create_job(client, spec)
    assert other["job_spec"]["orchestrator_config"]["n_concurrent_trials"] == 3
    assert other["name"] == f"{seeded.name} job"


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "benchmark", "benchmark_id": "bmd_nope", "agent_configs": AGENTS},
        {"type": "scenarios", "scenario_ids": ["scn_nope"], "agent_configs": AGENTS},
    ],
)
async def test_jobs_referencing_unknown_ids_are_404(client: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    assert (await client.post("/v1/benchmark_jobs", json={"spec": spec})).status_code == 404


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "benchmark", "agent_configs": AGENTS},
        {"type": "scenarios", "agent_configs": AGENTS},
        {"type": "scenarios", "scenario_ids": [], "agent_configs": [{"type": "external_api"}]},
        {"type": "scenarios", "scenario_ids": [], "agent_configs": [{"model_name": "no name"}]},
        {
            "type": "scenarios",
            "scenario_ids": [],
            "agent_configs": AGENTS,
            "orchestrator_config": {"n_attempts": -1},
        },
        {"type": "harbor"},
    ],
)
async def test_invalid_job_specs_are_400(client: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    response = await client.post("/v1/benchmark_jobs", json={"spec": spec})
    assert response.status_code == 400
    assert set(response.json()) == {"message"}


async def test_a_scripts_agents_entry_decides_what_that_agent_does(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    # The planted regression of a nightly gate: the same benchmark, another agent, worse results.
    script = {
        "scenario_count": 3,
        "timing": {"start_interval": 0, "duration": 1, "scoring": 1, "complete": 1},
        "scores": [0.9, 1.0],
        "agents": {"agent-v2": {"scores": [0.1, 0.2], "scenarios": [{"outcome": "failed"}]}},
    }
    seeded = emulator.seed_benchmark(script)
    configs = [{"type": "job_agent", "name": "agent-v1"}, {"type": "job_agent", "name": "agent-v2"}]
    job = await _create_job(
        client, {"type": "benchmark", "benchmark_id": seeded.benchmark_id, "agent_configs": configs}
    )
    emulator.advance(30)
    outcomes = (await _job(client, job["id"]))["benchmark_outcomes"]
    v1, v2 = (
        sorted((o["state"], o.get("score")) for o in outcome["scenario_outcomes"]) for outcome in outcomes
    )
    assert [state for state, _ in v1] == ["COMPLETED"] * 3
    assert all(score >= 0.9 for _, score in v1)
    assert [state for state, _ in v2] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert all(score <= 0.2 for _, score in v2 if score is not None)


@pytest.mark.parametrize(
    ("agents", "problem"),
    [
        ([], "agents must map"),
        ({"": {}}, "non-empty"),
        ({"a": {"timing": {}}}, "timing"),
        ({"a": {"scores": [2, 3]}}, "scores"),
    ],
)
def test_a_bad_agents_entry_is_refused_naming_it(agents: Any, problem: str) -> None:
    from airflow_provider_runloop.testing.script import ScenarioScript, ScriptError

    with pytest.raises(ScriptError, match=problem):
        ScenarioScript.from_mapping({"agents": agents})
