"""Property-based conformance of requests: the emulator accepts the bodies the spec accepts, and only those.

For every POST operation of the packaged spec with a request body, hypothesis (derandomized, bounded)
draws bodies from the spec itself (``support.spec_bodies``, which reads the spec independently of the
emulator's JSON Schema conversion):

* a valid body is answered 200, or 404 when it names an object that does not exist; the answer, the
  stored object read back, and the same object after the clock moves on all validate against the spec's
  response schemas (openapi-core);
* a valid body with one thing broken (a wrongly typed value anywhere in it, a string outside an enum, a
  required key removed, an unknown key in a closed object) is answered 400 ``{"message": ...}`` naming
  the field, and nothing changes.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.spec_bodies import SpecBodies
from support.spec_checks import response_problem

from airflow_provider_runloop.testing import ManualClock, RunloopEmulator
from airflow_provider_runloop.testing.openapi import load_spec

BODIES = SpecBodies(load_spec())
ROUTES = sorted(
    (method.upper(), path)
    for path, operations in load_spec()["paths"].items()
    for method, operation in operations.items()
    if "requestBody" in operation
)
# Where what a 200 stored can be read back: GET this path with the answer's id.
READ_BACK = {
    ("POST", "/v1/benchmark_jobs"): "/v1/benchmark_jobs/{id}",
    ("POST", "/v1/benchmarks"): "/v1/benchmarks/{id}",
    ("POST", "/v1/benchmarks/start_run"): "/v1/benchmark_runs/{id}",
    ("POST", "/v1/benchmarks/{id}"): "/v1/benchmarks/{id}",
    ("POST", "/v1/benchmarks/{id}/scenarios"): "/v1/benchmarks/{id}",
    ("POST", "/v1/scenarios"): "/v1/scenarios/{id}",
    ("POST", "/v1/scenarios/start_run"): "/v1/scenarios/runs/{id}",
    ("POST", "/v1/scenarios/{id}"): "/v1/scenarios/{id}",
}
UNKNOWN_IDS = {"benchmark": "bmd_unknown", "scenario": "scn_unknown", "benchmark_run": "bmr_unknown"}
# Rules the spec states only in prose, which the emulator enforces too: valid bodies keep them.
PROSE_RULES: dict[str, dict[str, Any]] = {
    "name": {"pattern": r"[A-Za-z0-9_-]{1,12}"},  # scoring functions: [a-zA-Z0-9_-]; others: not blank
    "inline_yaml": {"minLength": 1},
    "spec": {"present": True, "nullable": False},  # "Exactly one spec type must be set"
    "agent_configs": {"minItems": 1},  # "Must specify at least one agent"
    "scorer_timeout_sec": {"minimum": 1},
    "n_concurrent_trials": {"minimum": 1},
    "n_attempts": {"minimum": 0},
}
LISTINGS = [
    "/v1/benchmarks",
    "/v1/scenarios",
    "/v1/benchmark_runs",
    "/v1/scenarios/runs",
    "/v1/benchmark_jobs",
]
EXAMPLES = settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class World:
    """A fresh emulator with one benchmark of two scenarios and one running interactive run of it."""

    def __init__(self) -> None:
        self.emulator = RunloopEmulator(clock=ManualClock(), seed=0)
        seeded = self.emulator.seed_benchmark({"scenario_count": 2})
        self.benchmark_id = seeded.benchmark_id
        self.scenario_ids = list(seeded.scenario_ids)
        self.benchmark_run_id = self.emulator.start_scripted_run(self.benchmark_id, auto_complete=False)

    def rules(self) -> dict[str, dict[str, Any]]:
        """:data:`PROSE_RULES`, and every id field naming an existing object (or, sometimes, none)."""
        scenario = {"enum": [*self.scenario_ids, UNKNOWN_IDS["scenario"]]}
        return {
            **PROSE_RULES,
            "benchmark_id": {"enum": [self.benchmark_id, UNKNOWN_IDS["benchmark"]]},
            "scenario_id": scenario,
            "benchmark_run_id": {"enum": [self.benchmark_run_id, UNKNOWN_IDS["benchmark_run"]]},
            "scenario_ids": {"items": scenario},
            "scenarios_to_add": {"items": scenario},
            "scenarios_to_remove": {"items": scenario},
        }

    def url(self, path: str) -> str:
        return path.replace(
            "{id}", self.scenario_ids[0] if path.startswith("/v1/scenarios") else self.benchmark_id
        )

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.emulator.app),
            base_url="http://emulator",
            headers=self.emulator.auth_headers,
        )


def _names_an_unknown_id(body: Any) -> bool:
    return bool(set(UNKNOWN_IDS.values()) & set(re.findall(r"\w+_unknown", repr(body))))


async def _fingerprint(client: httpx.AsyncClient, world: World) -> list[Any]:
    """What the emulator holds, as its listings and the objects an update could change show it."""
    paths = [*LISTINGS, f"/v1/benchmarks/{world.benchmark_id}", f"/v1/scenarios/{world.scenario_ids[0]}"]
    return [(await client.get(path, params={"limit": 5000})).json() for path in paths]


@pytest.mark.parametrize("route", ROUTES, ids=[f"{method} {path}" for method, path in ROUTES])
@EXAMPLES
@given(data=st.data())
def test_a_valid_body_is_accepted_and_what_is_stored_reads_back_as_the_spec_says(
    route: tuple[str, str], data: st.DataObject
) -> None:
    method, path = route
    world = World()
    body = data.draw(BODIES.valid(BODIES.request_schema(method, path), world.rules()), label="body")

    async def exchange() -> None:
        async with world.client() as client:
            response = await client.request(method, world.url(path), json=body)
            event(f"answered {response.status_code}")  # shown by pytest --hypothesis-show-statistics
            if response.status_code == 404 and _names_an_unknown_id(body):
                return
            assert response.status_code == 200, response.text
            read_back = READ_BACK[route].replace("{id}", response.json()["id"])
            answers = [response, await client.get(read_back)]
            world.emulator.advance(30)
            answers.append(await client.get(read_back))
            assert [response_problem(answer) for answer in answers] == [None, None, None]

    asyncio.run(exchange())


@pytest.mark.parametrize("route", ROUTES, ids=[f"{method} {path}" for method, path in ROUTES])
@EXAMPLES
@given(data=st.data())
def test_a_body_with_one_thing_broken_is_400_naming_the_field_and_changes_nothing(
    route: tuple[str, str], data: st.DataObject
) -> None:
    method, path = route
    world = World()
    schema = BODIES.request_schema(method, path)
    body = data.draw(BODIES.valid(schema, world.rules()), label="body")
    breakages = BODIES.breakages(body, schema)
    # A depth first, then a breakage at it: the many top-level ones would otherwise crowd out deep ones.
    depth = data.draw(st.sampled_from(sorted({len(b.path) for b in breakages})), label="depth")
    breakage = data.draw(st.sampled_from([b for b in breakages if len(b.path) == depth]), label="breakage")
    broken = breakage.apply(body)
    event(breakage.kind)

    async def exchange() -> None:
        async with world.client() as client:
            before = await _fingerprint(client, world)
            response = await client.request(method, world.url(path), json=broken)
            assert response.status_code == 400, f"{breakage}: {response.text}"
            message = response.json()
            assert set(message) == {"message"}
            assert breakage.where in message["message"], f"{breakage}: {message}"
            assert await _fingerprint(client, world) == before

    asyncio.run(exchange())


def test_every_post_route_with_a_request_body_in_the_spec_is_served_and_checked() -> None:
    from airflow_provider_runloop.testing.request_validation import request_body_routes

    api = World().emulator.app.app  # type: ignore[attr-defined]  # the FastAPI app behind the gateway
    served = {(method, route.path) for route in api.routes for method in route.methods}
    assert set(ROUTES) <= served
    assert request_body_routes() == set(ROUTES)
    assert set(READ_BACK) == set(ROUTES)
