"""Fault injection, authentication and the request log (in-process, through httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from airflow_provider_runloop.testing import Fault, ManualClock, RunloopEmulator


def _client(emulator: RunloopEmulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emulator.app),
        base_url="http://emulator",
        headers=emulator.auth_headers,
    )


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_status_faults_fire_the_given_number_of_times(
    client: httpx.AsyncClient, emulator: RunloopEmulator, status: int
) -> None:
    fault = emulator.add_fault(
        "status", status=status, retry_after=2, should_retry=True, times=2, path="/v1/benchmarks"
    )
    statuses = [(await client.get("/v1/benchmarks")).status_code for _ in range(3)]
    assert statuses == [status, status, 200]
    assert (fault.matched, fault.fired) == (2, 2)  # an exhausted fault stops counting
    failed = emulator.requests()[0]
    assert (failed.status, failed.fault) == (status, "status")


async def test_a_status_fault_sends_retry_after_and_x_should_retry(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    emulator.add_fault("status", status=429, retry_after=1.5, should_retry=False, message="slow down")
    response = await client.get("/v1/benchmarks")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"
    assert response.headers["x-should-retry"] == "false"
    assert response.json() == {"message": "slow down"}


@pytest.mark.parametrize("status", [401, 403, 503])
async def test_echo_authorization_quotes_the_request_header_back(
    client: httpx.AsyncClient, emulator: RunloopEmulator, status: int
) -> None:
    fault = emulator.add_fault("echo_authorization", status=status, times=1, should_retry=True)
    response = await client.get("/v1/benchmarks")
    assert response.status_code == status
    assert response.headers["x-should-retry"] == "true"
    (message,) = response.json().values()
    assert f"Authorization: Bearer {emulator.api_key};" in message
    assert f"{{'authorization': 'Bearer {emulator.api_key}'}}" in message
    assert message.endswith(f"token: {emulator.api_key}")
    assert (await client.get("/v1/benchmarks")).status_code == 200
    assert fault.fired == 1
    assert [entry.fault for entry in emulator.requests()] == ["echo_authorization", None]


async def test_faults_match_method_and_path_globs_and_skip_the_first_requests(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = emulator.start_scripted_run(script={"scenario_count": 2})
    emulator.add_fault("status", method="GET", path="/v1/benchmark_runs/*/scenario_runs", skip=1, status=500)
    assert (await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs")).status_code == 200  # skipped
    assert (await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs")).status_code == 500
    assert (await client.get(f"/v1/benchmark_runs/{run_id}")).status_code == 200
    assert (await client.post(f"/v1/benchmark_runs/{run_id}/scenario_runs")).status_code == 405


async def test_latency_delays_without_changing_the_answer(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    fault = emulator.add_fault("latency", latency_seconds=0.01, times=1)
    assert (await client.get("/v1/benchmarks")).status_code == 200
    assert fault.fired == 1
    assert emulator.requests()[0].fault is None  # latency combines with (and is not) the answer's fault


async def test_latency_combines_with_another_fault(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    latency = emulator.add_fault("latency", latency_seconds=0.01)
    emulator.add_fault("status", status=503)
    assert (await client.get("/v1/benchmarks")).status_code == 503
    assert latency.fired == 1


@pytest.mark.parametrize("kind", ["drop_connection", "truncate_body"])
async def test_cut_connections_surface_as_protocol_errors_in_process(
    client: httpx.AsyncClient, emulator: RunloopEmulator, kind: str
) -> None:
    emulator.add_fault(kind, times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("/v1/benchmarks")
    assert (await client.get("/v1/benchmarks")).status_code == 200
    assert [(entry.fault, entry.status) for entry in emulator.requests()] == [(kind, None), (None, 200)]


async def test_a_malformed_body_is_not_json(client: httpx.AsyncClient, emulator: RunloopEmulator) -> None:
    emulator.add_fault("malformed_body", times=1)
    response = await client.get("/v1/benchmarks")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_unknown_state_rewrites_the_states_of_an_object_and_of_a_page(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = emulator.start_scripted_run(script={"scenario_count": 3, "timing": {"start_interval": 0}})
    emulator.faults.add(
        Fault("unknown_state", path=f"/v1/benchmark_runs/{run_id}*", times=2, state="archived")
    )
    run = (await client.get(f"/v1/benchmark_runs/{run_id}")).json()
    page = (await client.get(f"/v1/benchmark_runs/{run_id}/scenario_runs")).json()
    assert run["state"] == "archived"
    assert [item["state"] for item in page["runs"]] == ["archived"] * 3
    # Nothing stored changed, and an exhausted fault lets the real state through.
    assert emulator.benchmark_run_state(run_id) == "running"
    assert (await client.get(f"/v1/benchmark_runs/{run_id}")).json()["state"] == "running"
    assert [entry.fault for entry in emulator.requests()] == ["unknown_state", "unknown_state", None]


async def test_repeat_page_serves_the_previous_page_again(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = emulator.start_scripted_run(script={"scenario_count": 6, "timing": {"start_interval": 0}})
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    emulator.add_fault("repeat_page", path=path, times=1)
    first = (await client.get(path, params={"limit": 2})).json()
    cursor = first["runs"][-1]["id"]
    repeated = (await client.get(path, params={"limit": 2, "starting_after": cursor})).json()
    assert repeated == first
    second = (await client.get(path, params={"limit": 2, "starting_after": cursor})).json()
    assert not {r["id"] for r in second["runs"]} & {r["id"] for r in first["runs"]}
    assert [e.fault for e in emulator.requests()] == [None, "repeat_page", None]


@pytest.mark.parametrize(("shift", "repeated"), [(None, 2), (1, 1), (3, 3), (10, 3)])
async def test_shift_page_starts_the_page_earlier_and_still_advances(
    client: httpx.AsyncClient, emulator: RunloopEmulator, shift: int | None, repeated: int
) -> None:
    run_id = emulator.start_scripted_run(script={"scenario_count": 12, "timing": {"start_interval": 0}})
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    everything = [run["id"] for run in (await client.get(path, params={"limit": 12})).json()["runs"]]
    emulator.add_fault("shift_page", path=path, times=1, shift=shift)
    first = (await client.get(path, params={"limit": 4})).json()
    cursor = first["runs"][-1]["id"]
    shifted = (await client.get(path, params={"limit": 4, "starting_after": cursor})).json()
    # The previous page's last `repeated` items (all but its first, at most), then new ones.
    start = everything.index(cursor) + 1 - repeated
    assert [run["id"] for run in shifted["runs"]] == everything[start : start + 4]
    assert shifted["runs"][-1]["id"] != cursor
    after = (await client.get(path, params={"limit": 4, "starting_after": cursor})).json()
    assert [run["id"] for run in after["runs"]] == everything[4:8]  # fired once
    assert [entry.fault for entry in emulator.requests()[1:]] == [None, "shift_page", None]


async def test_insert_item_adds_a_run_right_after_the_cursor(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    run_id = emulator.start_scripted_run(script={"scenario_count": 6, "timing": {"start_interval": 1}})
    emulator.advance(10)
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    emulator.add_fault("insert_item", times=1)
    first = (await client.get(path, params={"limit": 3})).json()
    cursor = first["runs"][-1]
    second = (await client.get(path, params={"limit": 3, "starting_after": cursor["id"]})).json()
    newcomer = second["runs"][0]
    assert newcomer["id"] not in {run["id"] for run in first["runs"]}
    assert newcomer["scenario_id"] == cursor["scenario_id"]
    assert newcomer["start_time_ms"] == cursor["start_time_ms"] - 1
    assert (first["total_count"], second["total_count"]) == (6, 7)
    assert len(emulator.scenario_run_states(run_id)) == 7


def _firing_pattern(seed: int) -> list[int]:
    emulator = RunloopEmulator(clock=ManualClock(), seed=seed)
    emulator.add_fault("status", status=503, probability=0.5)

    async def run() -> list[int]:
        async with _client(emulator) as client:
            return [(await client.get("/v1/benchmarks")).status_code for _ in range(40)]

    return asyncio.run(run())


def test_probabilistic_faults_are_reproducible_under_a_seed() -> None:
    pattern = _firing_pattern(seed=5)
    assert pattern == _firing_pattern(seed=5)
    assert pattern != _firing_pattern(seed=6)
    assert {200, 503} == set(pattern)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "explode"},
        {"kind": "status", "probability": 1.5},
        {"kind": "status", "times": 0},
        {"kind": "status", "status": 99},
        {"kind": "latency"},
        {"kind": "status", "colour": "red"},
        {"kind": "shift_page", "shift": 0},
        {"kind": "unknown_state", "state": ""},
        {"status": 500},
    ],
)
def test_invalid_faults_are_rejected(fault: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        Fault.from_mapping(fault)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Basic runloop-emulator-key", "runloop-emulator-key"]
)
async def test_requests_without_the_right_key_are_401(
    emulator: RunloopEmulator, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emulator.app), base_url="http://e"
    ) as client:
        for path in ("/v1/benchmarks", "/v1/benchmark_runs/bmr_x", "/_emulator/faults", "/v1/unknown"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, path
            assert set(response.json()) == {"message"}
        assert (await client.get("/_emulator/health")).status_code == 200


async def test_the_request_log_records_what_the_client_sent(
    client: httpx.AsyncClient, emulator: RunloopEmulator
) -> None:
    seeded = emulator.seed_benchmark()
    await client.post(
        "/v1/benchmarks/start_run",
        json={"benchmark_id": seeded.benchmark_id},
        headers={"x-request-id": "req-1", "x-stainless-retry-count": "0"},
    )
    await client.get("/v1/benchmark_runs", params={"limit": "5", "state": "running"})
    await client.get("/_emulator/requests")  # control calls are not logged
    post, get = emulator.requests()
    assert (post.method, post.path, post.status, post.request_id) == (
        "POST",
        "/v1/benchmarks/start_run",
        200,
        "req-1",
    )
    assert post.body == {"benchmark_id": seeded.benchmark_id}
    assert post.headers["x-stainless-retry-count"] == "0"
    assert "authorization" not in post.headers
    assert (get.query, get.params, get.request_id) == (
        "limit=5&state=running",
        {"limit": "5", "state": "running"},
        None,
    )
    assert emulator.requests(method="GET", path="/v1/benchmark_runs*") == [get]
    emulator.clear_requests()
    assert emulator.requests() == []


async def test_responses_carry_the_request_id(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/benchmarks", headers={"x-request-id": "abc"})).headers[
        "x-request-id"
    ] == "abc"
    assert (await client.get("/v1/benchmarks")).headers["x-request-id"].startswith("emu-req-")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/benchmarks/{}"),
        ("POST", "/v1/benchmarks/{}"),
        ("GET", "/v1/benchmarks/{}/definitions"),
        ("GET", "/v1/benchmarks/{}/runs"),
        ("POST", "/v1/benchmarks/{}/scenarios"),
        ("POST", "/v1/benchmarks/{}/archive"),
        ("POST", "/v1/benchmarks/{}/unarchive"),
        ("GET", "/v1/benchmark_runs/{}"),
        ("POST", "/v1/benchmark_runs/{}/cancel"),
        ("POST", "/v1/benchmark_runs/{}/complete"),
        ("GET", "/v1/benchmark_runs/{}/scenario_runs"),
        ("POST", "/v1/benchmark_runs/{}/download_logs"),
        ("GET", "/v1/benchmark_jobs/{}"),
        ("GET", "/v1/scenarios/{}"),
        ("POST", "/v1/scenarios/{}"),
        ("POST", "/v1/scenarios/{}/archive"),
        ("POST", "/v1/scenarios/{}/unarchive"),
        ("GET", "/v1/scenarios/runs/{}"),
        ("POST", "/v1/scenarios/runs/{}/score"),
        ("POST", "/v1/scenarios/runs/{}/complete"),
        ("POST", "/v1/scenarios/runs/{}/cancel"),
        ("POST", "/v1/scenarios/runs/{}/download_logs"),
    ],
)
async def test_unknown_ids_are_404_on_every_id_path(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path.format("unknown_id-1"))
    assert response.status_code == 404, response.text
    assert set(response.json()) == {"message"}
    assert "unknown_id-1" in response.json()["message"]


async def test_an_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/benchmarks/runs/bmr_x/scenario_runs")  # the removed old path
    assert response.status_code == 404
    assert set(response.json()) == {"message"}
