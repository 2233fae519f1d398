"""Request bodies against the spec's request schemas: issue 10's cases (point 6), and the leniencies kept.

Each rejected body is also rejected by openapi-core reading the spec on its own, so a row shows what the
real API's contract says, not only what the emulator's conversion does.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from support.spec_checks import request_problem

from airflow_provider_runloop.testing import RunloopEmulator
from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.request_validation import validate_request_body

REMOVE = object()
SCORER = {"name": "tests", "weight": 1.0, "scorer": {"type": "command_scorer", "command": "pytest"}}
AGENT = {"type": "job_agent", "name": "agent"}
# A valid body per route; a row changes one field of it. "{benchmark}" etc. name seeded objects.
BASES: dict[str, dict[str, Any]] = {
    "POST /v1/scenarios": {
        "name": "s",
        "input_context": {"problem_statement": "fix it"},
        "scoring_contract": {"scoring_function_parameters": [SCORER]},
        "environment_parameters": {"working_directory": "/home/user", "launch_parameters": {}},
    },
    "POST /v1/scenarios/{scenario}": {"input_context": {"problem_statement": "again"}},
    "POST /v1/scenarios/start_run": {"scenario_id": "{scenario}", "runProfile": {"launchParameters": {}}},
    "POST /v1/benchmarks": {"name": "b", "scenario_ids": ["{scenario}"]},
    "POST /v1/benchmarks/{benchmark}": {"description": "d"},
    "POST /v1/benchmarks/{benchmark}/scenarios": {"scenarios_to_add": ["{scenario}"]},
    "POST /v1/benchmarks/start_run": {"benchmark_id": "{benchmark}", "runProfile": {"envVars": {"A": "1"}}},
    "POST /v1/benchmark_jobs": {
        "spec": {"type": "benchmark", "benchmark_id": "{benchmark}", "agent_configs": [AGENT]}
    },
}


class Seeded:
    def __init__(self, emulator: RunloopEmulator) -> None:
        benchmark = emulator.seed_benchmark({"scenario_count": 1})
        self.names = {"{benchmark}": benchmark.benchmark_id, "{scenario}": benchmark.scenario_ids[0]}

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.names.get(value, value)
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        return value

    def request(self, route: str, field: str | None = None, value: Any = REMOVE) -> tuple[str, str, Any]:
        """``route``'s base body with ``field`` (``a.b.0.c``) set to ``value``, or removed."""
        method, template = route.split(" ")
        body = copy.deepcopy(BASES[route])
        if field is not None:
            *parents, last = field.split(".")
            target: Any = body
            for part in parents:
                target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
            if value is REMOVE:
                del target[last]
            else:
                target[last] = value
        path = template
        for name, object_id in self.names.items():
            path = path.replace(name, object_id)
        return method, path, self.fill(body)


@pytest.fixture
def seeded(emulator: RunloopEmulator) -> Seeded:
    return Seeded(emulator)


async def _holdings(client: httpx.AsyncClient, seeded: Seeded) -> list[Any]:
    paths = [
        "/v1/scenarios",
        "/v1/benchmarks",
        "/v1/benchmark_runs",
        "/v1/scenarios/runs",
        "/v1/benchmark_jobs",
    ]
    paths += [f"/v1/scenarios/{seeded.names['{scenario}']}", f"/v1/benchmarks/{seeded.names['{benchmark}']}"]
    return [(await client.get(path)).json() for path in paths]


S, U, J = "POST /v1/scenarios", "POST /v1/scenarios/{scenario}", "POST /v1/benchmark_jobs"
ENV = "environment_parameters"
LAUNCH = f"{ENV}.launch_parameters"
FN0 = "scoring_contract.scoring_function_parameters.0"
FN0_SHOWN = "scoring_contract.scoring_function_parameters[0]"
EXTRA = "Additional properties are not allowed"


@pytest.mark.parametrize(
    ("route", "field", "value", "message"),
    [
        # The cases issue 10 lists.
        pytest.param(
            S, f"{ENV}.working_directory", 5, f"{ENV}.working_directory: 5 is not of type", id="wd-5"
        ),
        pytest.param(
            S, f"{LAUNCH}.user_parameters", [1], f"{LAUNCH}.user_parameters: [1] is not of", id="up-list"
        ),
        pytest.param(
            S, f"{LAUNCH}.architecture", "sparc", f"{LAUNCH}.architecture: 'sparc' is not one of", id="arch"
        ),
        pytest.param(S, f"{LAUNCH}.bogus", 1, f"{LAUNCH}: {EXTRA} ('bogus' was unexpected)", id="launch-key"),
        pytest.param(S, f"{ENV}.image", "x", f"{ENV}: {EXTRA} ('image' was unexpected)", id="env-key"),
        pytest.param(
            S, f"{FN0}.scorer.timeout", 5, f"{FN0_SHOWN}.scorer: {EXTRA} ('timeout'", id="scorer-key"
        ),
        pytest.param(
            U, "input_context.problem_statement", 5, "input_context.problem_statement: 5 is not", id="ps-5"
        ),
        # Further down, and on every route that has a request body.
        pytest.param(
            S, f"{LAUNCH}.user_parameters", {}, f"{LAUNCH}.user_parameters: 'username' is a", id="no-user"
        ),
        pytest.param(
            S, f"{LAUNCH}.custom_cpu_cores", 1.5, f"{LAUNCH}.custom_cpu_cores: 1.5 is not of", id="float"
        ),
        pytest.param(
            S, "scorer_timeout_sec", 2**31, "scorer_timeout_sec: 2147483648 is greater", id="beyond-int32"
        ),
        pytest.param(
            S, f"{FN0}.scorer.type", "llm", f"{FN0_SHOWN}.scorer.type: 'llm' is not one of", id="scorer"
        ),
        pytest.param(
            S, f"{FN0}.weight", "1", f"{FN0_SHOWN}.weight: '1' is not of type 'number'", id="weight"
        ),
        pytest.param(
            S, "input_context.problem_statement", REMOVE, "input_context: 'problem_statement' is", id="no-ps"
        ),
        pytest.param(S, "name", REMOVE, "invalid request body: 'name' is a required property", id="no-name"),
        pytest.param(
            S, "metadata", {"team": 1}, "metadata.team: 1 is not of type 'string'", id="metadata-int"
        ),
        pytest.param(
            "POST /v1/scenarios/start_run",
            "runProfile.launchParameters.keep_alive_time_seconds",
            "1h",
            "runProfile.launchParameters.keep_alive_time_seconds: '1h' is not of type 'integer'",
            id="start_run-launchParameters",
        ),
        pytest.param(
            "POST /v1/scenarios/start_run",
            "runProfile.mounts",
            [{"type": "file_mount", "target": "/t"}],
            "runProfile.mounts[0]: 'content' is a required property",
            id="mount-without-content",
        ),
        pytest.param(
            "POST /v1/benchmarks",
            "scenario_ids",
            "s",
            "scenario_ids: 's' is not of type 'array'",
            id="ids-string",
        ),
        pytest.param(
            "POST /v1/benchmarks/{benchmark}",
            "required_secret_names",
            [None],
            "required_secret_names[0]: None is not of type 'string'",
            id="null-item",
        ),
        pytest.param(
            "POST /v1/benchmarks/{benchmark}/scenarios",
            "scenarios_to_add",
            [1],
            "scenarios_to_add[0]: 1 is not of type 'string'",
            id="scenarios_to_add-int",
        ),
        pytest.param(
            "POST /v1/benchmarks/start_run",
            "runProfile.envVars",
            {"A": 1},
            "runProfile.envVars.A: 1 is not of type 'string'",
            id="envVars-int",
        ),
        pytest.param(
            J, "spec.agent_configs.0.type", REMOVE, "spec.agent_configs[0]: 'type' is a", id="agent-no-type"
        ),
        pytest.param(
            J, "spec.agent_configs.0.top_p", 1, f"spec.agent_configs[0]: {EXTRA} ('top_p'", id="agent-key"
        ),
        pytest.param(
            J,
            "spec.orchestrator_config",
            {"n_attempts": "2"},
            "spec.orchestrator_config.n_attempts: '2' is not of type 'integer'",
            id="n_attempts-string",
        ),
        pytest.param(J, "spec.type", "nightly", "spec.type: 'nightly' is not one of", id="unknown-spec-type"),
        pytest.param(
            J, "spec.inline_yaml", "a: 1", f"spec: {EXTRA} ('inline_yaml'", id="other-variants-field"
        ),
    ],
)
async def test_a_body_the_spec_rejects_is_400_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, seeded: Seeded, route: str, field: str, value: Any, message: str
) -> None:
    method, path, body = seeded.request(route, field, value)
    before = await _holdings(client, seeded)
    response = await client.request(method, path, json=body)
    assert (response.status_code, set(response.json())) == (400, {"message"}), response.text
    assert message in response.json()["message"]
    assert await _holdings(client, seeded) == before
    assert request_problem(method, path, body) is not None  # openapi-core, reading the spec itself, agrees


@pytest.mark.parametrize(
    ("route", "field", "value"),
    [
        # unverified choice 23: unknown top-level keys are ignored, on every route with a body.
        *(pytest.param(route, "unknown_field", True, id=f"unknown-top-level-key {route}") for route in BASES),
        # null is "absent" wherever the spec says nullable, beside a $ref too (the SDK sends null for None).
        pytest.param(S, "environment_parameters", None, id="null-environment"),
        pytest.param(S, f"{LAUNCH}.architecture", None, id="null-architecture"),
        pytest.param(S, "validation_type", None, id="null-validation_type"),
        pytest.param(S, "metadata", None, id="null-metadata"),
        pytest.param(S, "input_context.additional_context", None, id="null-additional_context"),
        pytest.param(S, "input_context.additional_context", {"any": [1, {"x": None}]}, id="open-object"),
        pytest.param(
            "POST /v1/scenarios/{scenario}", "scoring_contract", {}, id="update-empty-scoring_contract"
        ),
        pytest.param(
            "POST /v1/scenarios/{scenario}", "input_context.problem_statement", None, id="update-null"
        ),
        pytest.param("POST /v1/scenarios/start_run", "runProfile", None, id="null-runProfile"),
        pytest.param(
            "POST /v1/scenarios/start_run", "runProfile.launchParameters", None, id="null-launchParameters"
        ),
        pytest.param("POST /v1/benchmarks/start_run", "run_name", None, id="null-run_name"),
        pytest.param(
            "POST /v1/benchmark_jobs", "spec.orchestrator_config", None, id="null-orchestrator_config"
        ),
        pytest.param("POST /v1/benchmark_jobs", "name", None, id="null-job-name"),
    ],
)
async def test_what_the_api_docs_allow_is_accepted(
    client: httpx.AsyncClient, seeded: Seeded, route: str, field: str, value: Any
) -> None:
    method, path, body = seeded.request(route, field, value)
    response = await client.request(method, path, json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("send", [{}, {"content": b""}, {"content": b"null"}, {"json": {}}])
@pytest.mark.parametrize("route", ["POST /v1/scenarios/{scenario}", "POST /v1/benchmarks/{benchmark}"])
async def test_an_update_with_no_body_changes_nothing(
    client: httpx.AsyncClient, seeded: Seeded, route: str, send: dict[str, Any]
) -> None:
    method, path, _ = seeded.request(route)
    before = await _holdings(client, seeded)
    response = await client.request(method, path, **send)
    assert response.status_code == 200, response.text
    assert await _holdings(client, seeded) == before


CONTRACT = {"scoring_function_parameters": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            {"name": "n" * 900, "input_context": 5, "scoring_contract": CONTRACT},
            "invalid request body: input_context: 5 is not of type 'object'",
            id="short",
        ),
        pytest.param(
            {"name": ["n" * 900], "input_context": {"problem_statement": "p"}, "scoring_contract": CONTRACT},
            "invalid request body: name: ['nnnn",
            id="a-long-value-is-cut",
        ),
    ],
)
def test_messages_name_the_field_and_stay_short(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as raised:
        validate_request_body("POST", "/v1/scenarios", body)
    assert raised.value.status_code == 400
    assert raised.value.message.startswith(message)
    assert len(raised.value.message) <= 500


def test_a_route_without_a_request_body_in_the_spec_is_not_checked() -> None:
    validate_request_body("POST", "/v1/benchmark_runs/{id}/complete", {"anything": [1]})
    validate_request_body("GET", "/v1/scenarios", {"anything": [1]})
