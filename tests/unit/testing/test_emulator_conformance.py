"""Conformance: every response of every route validates against Runloop's OpenAPI spec.

The spec is the copy packaged with the emulator (``airflow_provider_runloop/testing/openapi/``; its
README names the source). Its views declare ``additionalProperties: false``, so an extra
field fails here just like a missing required one or a ``null`` where none is allowed. The whole
exercise runs twice: optional fields omitted (the default) and written as ``null``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from support.spec_checks import response_problem

from airflow_provider_runloop.testing import ManualClock, RunloopEmulator

SCORERS = [
    {"type": "ast_grep_scorer", "search_directory": "src", "pattern": "foo($A)", "lang": "python"},
    {"type": "bash_script_scorer", "bash_script": "echo score=1"},
    {"type": "command_scorer", "command": "pytest"},
    {"type": "custom_scorer", "custom_scorer_type": "mine", "scorer_params": {"k": 1}},
    {"type": "python_script_scorer", "python_script": "print(1)", "requirements_contents": None},
    {
        "type": "test_based_scorer",
        "test_command": "pytest",
        "test_files": [{"file_path": "t.py", "file_contents": "x"}],
    },
]


class Recorder:
    """Keeps every response the client receives, with its request."""

    def __init__(self) -> None:
        self.exchanges: list[httpx.Response] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.exchanges.append(response)


@pytest.fixture(params=[False, True], ids=["omit-absent", "emit-nulls"])
def emulator(request: pytest.FixtureRequest) -> RunloopEmulator:
    return RunloopEmulator(clock=ManualClock(), seed=11, emit_nulls=request.param, scoring_delay_seconds=2)


@pytest.fixture
async def recorded(emulator: RunloopEmulator) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    recorder = Recorder()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emulator.app),
        base_url="http://emulator",
        headers=emulator.auth_headers,
        event_hooks={"response": [recorder]},
    ) as client:
        yield client, recorder


async def _ok(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await client.request(method, path, **kwargs)
    assert response.status_code == 200, f"{method} {path}: {response.text}"
    return response.json() if response.headers["content-type"] == "application/json" else None


async def _exercise_every_route(client: httpx.AsyncClient, emulator: RunloopEmulator) -> None:
    # Scenarios, with every optional field and every scorer type.
    scenario = await _ok(
        client,
        "POST",
        "/v1/scenarios",
        json={
            "name": "full",
            "input_context": {"problem_statement": "fix", "additional_context": {"repo": "x"}},
            "scoring_contract": {
                "scoring_function_parameters": [
                    {"name": f"f{i}", "weight": 1 / len(SCORERS), "scorer": scorer}
                    for i, scorer in enumerate(SCORERS)
                ]
            },
            "environment_parameters": {
                "blueprint_id": "bp_1",
                "working_directory": "/home/user",
                "launch_parameters": {
                    "launch_commands": ["true"],
                    "resource_size_request": "SMALL",
                },
            },
            "metadata": {"team": "evals"},
            "reference_output": "diff",
            "required_environment_variables": ["A"],
            "required_secret_names": ["S"],
            "validation_type": "FORWARD",
            "scorer_timeout_sec": 600,
            "unknown_field": True,
        },
    )
    minimal = await _ok(
        client,
        "POST",
        "/v1/scenarios",
        json={
            "name": "minimal",
            "input_context": {"problem_statement": "p"},
            "scoring_contract": {"scoring_function_parameters": []},
        },
    )
    await _ok(client, "GET", f"/v1/scenarios/{scenario['id']}")
    await _ok(
        client,
        "POST",
        f"/v1/scenarios/{minimal['id']}",
        json={"name": "renamed", "reference_output": "", "metadata": {"k": "v"}},
    )
    await _ok(
        client,
        "POST",
        f"/v1/scenarios/{minimal['id']}",
        json={"input_context": {"additional_context": {"a": 1}}},
    )
    await _ok(client, "POST", f"/v1/scenarios/{minimal['id']}/archive")
    await _ok(client, "POST", f"/v1/scenarios/{minimal['id']}/unarchive")
    await _ok(client, "GET", "/v1/scenarios", params={"validation_type": "FORWARD"})
    await _ok(client, "GET", "/v1/scenarios/list_public")
    await _ok(client, "GET", "/v1/scenarios/metadata/keys")
    await _ok(client, "GET", "/v1/scenarios/metadata/keys/team/values")

    # Benchmarks: created over the API, seeded (one public), updated, archived.
    benchmark = await _ok(
        client,
        "POST",
        "/v1/benchmarks",
        json={
            "name": "api-benchmark",
            "scenario_ids": [scenario["id"], minimal["id"]],
            "metadata": {"suite": "a"},
            "attribution": "me",
            "description": "d",
            "required_environment_variables": [],
            "required_secret_names": [],
        },
    )
    emulator.seed_benchmark({"scenario_count": 1}, public=True)
    script = {
        "scenario_count": 7,
        "outcomes": {"completed": 4, "failed": 1, "timeout": 1, "canceled": 1},
        "timing": {
            "start_interval": 2,
            "duration": [2, 6],
            "scoring": [1, 3],
            "complete": [1, 2],
            "setup": 1,
        },
        "scenarios": [
            {"attempts": ["failed", "completed"]},
            {"outcome": "setup_failed"},
            {"outcome": "stays_scored"},
        ],
    }
    seeded = emulator.seed_benchmark(script, name="seeded")
    await _ok(client, "GET", f"/v1/benchmarks/{benchmark['id']}")
    await _ok(
        client,
        "POST",
        f"/v1/benchmarks/{benchmark['id']}",
        json={"description": "", "metadata": {"suite": "b"}},
    )
    await _ok(
        client,
        "POST",
        f"/v1/benchmarks/{benchmark['id']}/scenarios",
        json={"scenarios_to_remove": [minimal["id"]]},
    )
    await _ok(client, "POST", f"/v1/benchmarks/{benchmark['id']}/archive")
    await _ok(client, "POST", f"/v1/benchmarks/{benchmark['id']}/unarchive")
    await _ok(client, "GET", "/v1/benchmarks")
    await _ok(client, "GET", "/v1/benchmarks/list_public")
    await _ok(client, "GET", f"/v1/benchmarks/{benchmark['id']}/definitions")
    await _ok(client, "GET", "/v1/benchmarks/metadata/keys")
    await _ok(client, "GET", "/v1/benchmarks/metadata/keys/suite/values")

    # An interactive run driven through every scenario-run action.
    profile = {
        "envVars": {"A": "1"},
        "secrets": {"S": "s"},
        "purpose": "ci",
        "launchParameters": {"launch_commands": []},
    }
    run = await _ok(
        client,
        "POST",
        "/v1/benchmarks/start_run",
        json={
            "benchmark_id": benchmark["id"],
            "run_name": "interactive",
            "metadata": {"m": "1"},
            "runProfile": profile,
        },
    )
    started = [
        await _ok(
            client,
            "POST",
            "/v1/scenarios/start_run",
            json={
                "scenario_id": scenario["id"],
                "benchmark_run_id": run["id"],
                "run_name": f"r{i}",
                "metadata": {"i": str(i)},
                "runProfile": profile,
            },
        )
        for i in range(3)
    ]
    standalone = await _ok(client, "POST", "/v1/scenarios/start_run", json={"scenario_id": minimal["id"]})
    await _ok(client, "POST", f"/v1/scenarios/runs/{started[0]['id']}/score")
    await _ok(client, "POST", f"/v1/scenarios/runs/{started[1]['id']}/score")
    emulator.advance(2)
    await _ok(client, "POST", f"/v1/scenarios/runs/{started[0]['id']}/complete")
    await _ok(client, "POST", f"/v1/scenarios/runs/{started[2]['id']}/cancel")
    await _ok(client, "GET", f"/v1/scenarios/runs/{started[1]['id']}")
    await _ok(client, "GET", f"/v1/scenarios/runs/{standalone['id']}")
    await _ok(client, "POST", f"/v1/scenarios/runs/{standalone['id']}/download_logs")
    await _ok(client, "GET", "/v1/scenarios/runs", params={"benchmark_run_id": run["id"], "limit": 2})
    await _ok(
        client,
        "GET",
        "/v1/scenarios/runs",
        params={"scenario_id": minimal["id"], "include_total_count": "false"},
    )
    await _ok(client, "GET", f"/v1/benchmark_runs/{run['id']}/scenario_runs", params={"state": "scored"})
    await _ok(client, "POST", f"/v1/benchmark_runs/{run['id']}/download_logs")
    await _ok(client, "POST", f"/v1/benchmark_runs/{run['id']}/complete")
    other = await _ok(client, "POST", "/v1/benchmarks/start_run", json={"benchmark_id": seeded.benchmark_id})
    await _ok(client, "POST", f"/v1/benchmark_runs/{other['id']}/cancel")

    # A scripted run and jobs, looked at while they progress: every state shows up somewhere.
    scripted = emulator.start_scripted_run(seeded.benchmark_id, name="scripted")
    agents = [
        {
            "type": "job_agent",
            "name": "a",
            "model_name": "m",
            "timeout_seconds": 60.5,
            "kwargs": {"k": "v"},
            "agent_environment": {"environment_variables": {"E": "1"}, "secrets": {"S": "sec_1"}},
        },
        {"type": "job_agent", "name": "b"},
    ]
    jobs = [
        await _ok(
            client,
            "POST",
            "/v1/benchmark_jobs",
            json={
                "name": "bench-job",
                "spec": {
                    "type": "benchmark",
                    "benchmark_id": seeded.benchmark_id,
                    "agent_configs": agents,
                    "orchestrator_config": {"n_attempts": 1, "quiet": True},
                },
            },
        ),
        await _ok(
            client,
            "POST",
            "/v1/benchmark_jobs",
            json={
                "spec": {
                    "type": "scenarios",
                    "scenario_ids": list(seeded.scenario_ids[:2]),
                    "agent_configs": agents[1:],
                }
            },
        ),
        await _ok(
            client, "POST", "/v1/benchmark_jobs", json={"spec": {"type": "harbor", "inline_yaml": "a: 1"}}
        ),
    ]
    for _ in range(12):
        for job in jobs:
            await _ok(client, "GET", f"/v1/benchmark_jobs/{job['id']}")
        await _ok(client, "GET", f"/v1/benchmark_runs/{scripted}")
        await _ok(client, "GET", f"/v1/benchmark_runs/{scripted}/scenario_runs", params={"limit": 50})
        emulator.advance(2)
    await _ok(client, "GET", "/v1/benchmark_jobs", params={"limit": 2})
    await _ok(client, "GET", "/v1/benchmark_runs", params={"state": "completed"})
    await _ok(client, "GET", f"/v1/benchmarks/{seeded.benchmark_id}/runs")

    # Errors must be {"message": ...} too.
    await client.get("/v1/benchmark_runs/bmr_missing")
    await client.get(f"/v1/benchmark_runs/{scripted}/scenario_runs", params={"limit": 0})
    await client.post(f"/v1/scenarios/runs/{started[0]['id']}/score")


def _route_of(method: str, path: str, routes: list[tuple[str, str]]) -> str | None:
    for route_method, template in routes:
        pattern = "^" + re.sub(r"\{[a-z_]+\}", "[^/]+", template) + "$"
        if route_method == method and re.match(pattern, path):
            return f"{method} {template}"
    return None


async def test_every_route_conforms_to_the_openapi_spec(
    recorded: tuple[httpx.AsyncClient, Recorder], emulator: RunloopEmulator
) -> None:
    client, recorder = recorded
    await _exercise_every_route(client, emulator)

    api = emulator.app.app  # type: ignore[attr-defined]  # the FastAPI app behind the gateway
    routes = [
        (method, route.path)
        for route in api.routes
        for method in route.methods
        if route.path.startswith("/v1")
    ]
    covered: set[str] = set()
    seen_states: set[str] = set()
    problems = []
    for response in recorder.exchanges:
        request = response.request
        if response.status_code != 200:
            body = response.json()
            if set(body) != {"message"} or not isinstance(body["message"], str):
                problems.append(f"{request.method} {request.url.path}: error body {body}")
            continue
        route = _route_of(request.method, request.url.path, routes)
        assert route is not None, f"{request.method} {request.url.path} matched no route"
        covered.add(route)
        if response.headers["content-type"] == "application/json":
            body = response.json()
            runs = body.get("runs", [body]) if isinstance(body, dict) else []
            seen_states.update(str(r.get("state")) for r in runs if isinstance(r, dict))
        problem = response_problem(response)
        if problem is not None:
            problems.append(problem)
    assert problems == []
    assert covered == {f"{method} {path}" for method, path in routes}
    assert {"running", "scoring", "scored", "completed", "canceled", "failed", "timeout"} <= seen_states
