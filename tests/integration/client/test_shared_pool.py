"""Every async client of one connection on one event loop sends through one shared pool
(airflow_provider_runloop.pool), and the waits that share it stay independent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from support.counting import CountingApp

from airflow_provider_runloop.client import AsyncRunloopClient, RetryPolicy, RunloopClient
from airflow_provider_runloop.exceptions import RunloopAuthenticationError
from airflow_provider_runloop.pool import MAX_CONNECTIONS, borrowers
from airflow_provider_runloop.testing import EmulatorServer, ManualClock, RunloopEmulator

NO_RETRY = RetryPolicy(max_retries=0)
SCRIPT = {"scenario_count": 5, "seed": 3, "timing": {"start_interval": 0, "duration": [30, 60]}}


@pytest.fixture
def served() -> Iterator[tuple[RunloopEmulator, CountingApp, str]]:
    emulator = RunloopEmulator(clock=ManualClock(), seed=3)
    counting = CountingApp(emulator.app)
    server = EmulatorServer(counting)
    server.start()
    try:
        yield emulator, counting, server.base_url
    finally:
        server.stop()


def _clients(emulator: RunloopEmulator, base_url: str, count: int) -> list[AsyncRunloopClient]:
    return [AsyncRunloopClient(emulator.api_key, base_url=base_url, retry=NO_RETRY) for _ in range(count)]


async def test_the_clients_of_one_loop_share_one_warm_pool(
    served: tuple[RunloopEmulator, CountingApp, str],
) -> None:
    emulator, counting, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    clients = _clients(emulator, base_url, 50)
    counting.reset()
    try:
        await asyncio.gather(*(client.get_benchmark_run(run_id) for client in clients))
        first_round = counting.snapshot()
        for _ in range(3):
            await asyncio.gather(*(client.get_benchmark_run(run_id) for client in clients))
        after = counting.snapshot()
        assert len({id(client._http) for client in clients}) == 1
        assert borrowers(clients[0]._settings) == 50
    finally:
        for client in clients:
            await client.aclose()
    assert after.requests == 200
    # The later rounds reuse the first round's connections, and 50 requests at once never open more
    # than the pool's gate lets through: connections are the pool's size, not one per request.
    assert first_round.connections <= MAX_CONNECTIONS
    assert after.connections <= first_round.connections + 5


async def test_each_request_carries_its_own_clients_key(
    served: tuple[RunloopEmulator, CountingApp, str],
) -> None:
    emulator, _, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    good = AsyncRunloopClient(emulator.api_key, base_url=base_url, retry=NO_RETRY)
    wrong = AsyncRunloopClient("not-the-key", base_url=base_url, retry=NO_RETRY)
    try:
        results = await asyncio.gather(
            good.get_benchmark_run(run_id), wrong.get_benchmark_run(run_id), return_exceptions=True
        )
        assert good._http is wrong._http  # one pool: the key is not part of it
        assert "not-the-key" not in str(good._http.headers)
    finally:
        await good.aclose()
        await wrong.aclose()
    assert not isinstance(results[0], BaseException)
    assert results[0].id == run_id
    assert isinstance(results[1], RunloopAuthenticationError)


async def test_one_client_closing_leaves_the_pool_to_the_others_and_the_last_closes_it(
    served: tuple[RunloopEmulator, CountingApp, str],
) -> None:
    emulator, _, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    first, second = _clients(emulator, base_url, 2)
    await first.get_benchmark_run(run_id)
    await second.get_benchmark_run(run_id)
    shared = second._http
    await first.aclose()
    assert not shared.is_closed
    assert (await second.get_benchmark_run(run_id)).id == run_id
    settings = second._settings
    await second.aclose()
    assert shared.is_closed
    assert borrowers(settings) == 0
    await second.aclose()  # closing twice is harmless


async def test_a_canceled_request_does_not_break_the_others(
    served: tuple[RunloopEmulator, CountingApp, str],
) -> None:
    emulator, _, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.add_fault("latency", method="GET", path=f"/v1/benchmark_runs/{run_id}", latency_seconds=0.3)
    clients = _clients(emulator, base_url, 10)
    try:
        tasks = [asyncio.create_task(client.get_benchmark_run(run_id)) for client in clients]
        await asyncio.sleep(0.1)  # every request is in flight
        tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert all(not isinstance(result, BaseException) and result.id == run_id for result in results[1:])
        # The canceled wait's own client, and the pool, go on working.
        assert (await clients[0].get_benchmark_run(run_id)).id == run_id
    finally:
        for client in clients:
            await client.aclose()


async def test_a_failing_client_does_not_break_the_others(
    served: tuple[RunloopEmulator, CountingApp, str],
) -> None:
    emulator, _, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.add_fault("drop_connection", method="GET", path="/v1/benchmark_runs/bmr_missing")
    clients = _clients(emulator, base_url, 5)
    try:
        calls = [clients[0].get_benchmark_run("bmr_missing")]
        calls += [client.get_benchmark_run(run_id) for client in clients[1:]]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[0], Exception)
        assert all(not isinstance(result, BaseException) and result.id == run_id for result in results[1:])
    finally:
        for client in clients:
            await client.aclose()


def test_a_sync_client_keeps_its_connection_between_calls(
    served: tuple[RunloopEmulator, CountingApp, str],
) -> None:
    emulator, counting, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    counting.reset()
    with RunloopClient(emulator.api_key, base_url=base_url, retry=NO_RETRY) as client:
        for _ in range(5):
            client.get_benchmark_run(run_id)
    traffic = counting.snapshot()
    assert (traffic.requests, traffic.connections) == (5, 1)


async def test_clients_on_two_loops_do_not_share(
    served: tuple[RunloopEmulator, CountingApp, str],
) -> None:
    emulator, _, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    here = AsyncRunloopClient(emulator.api_key, base_url=base_url, retry=NO_RETRY)
    await here.get_benchmark_run(run_id)

    async def elsewhere() -> int:
        other = AsyncRunloopClient(emulator.api_key, base_url=base_url, retry=NO_RETRY)
        try:
            await other.get_benchmark_run(run_id)
            return id(other._http)
        finally:
            await other.aclose()

    other_http = await asyncio.to_thread(asyncio.run, elsewhere())
    try:
        assert other_http != id(here._http)
        assert (await here.get_benchmark_run(run_id)).id == run_id
    finally:
        await here.aclose()


async def test_requests_past_the_gate_wait_for_a_free_connection(
    served: tuple[RunloopEmulator, CountingApp, str],
) -> None:
    emulator, counting, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.add_fault("latency", method="GET", path=f"/v1/benchmark_runs/{run_id}", latency_seconds=0.2)
    clients = _clients(emulator, base_url, 2 * MAX_CONNECTIONS)
    counting.reset()
    try:
        results = await asyncio.gather(*(client.get_benchmark_run(run_id) for client in clients))
    finally:
        for client in clients:
            await client.aclose()
    assert [run.id for run in results] == [run_id] * len(clients)
    traffic = counting.snapshot()
    assert traffic.requests == 2 * MAX_CONNECTIONS
    assert traffic.connections <= MAX_CONNECTIONS


def test_http2_is_negotiated_over_tls_and_spoken_over_cleartext_only_when_asked() -> None:
    assert AsyncRunloopClient("k", base_url="https://api.runloop.ai")._settings.http2
    assert not AsyncRunloopClient("k", base_url="http://127.0.0.1:1")._settings.http2
    assert AsyncRunloopClient("k", base_url="http://127.0.0.1:1", http2=True)._settings.http2
    assert not RunloopClient("k", base_url="https://api.runloop.ai", http2=False)._settings.http2


@pytest.mark.parametrize("http2", [False, True])
async def test_the_shared_pool_speaks_http2_to_the_emulator_over_one_connection(
    served: tuple[RunloopEmulator, CountingApp, str], http2: bool
) -> None:
    emulator, counting, base_url = served
    run_id = emulator.start_scripted_run(script=SCRIPT)
    versions: list[str] = []

    async def hook(response: httpx.Response) -> None:
        versions.append(response.http_version)

    clients = [
        AsyncRunloopClient(emulator.api_key, base_url=base_url, retry=NO_RETRY, http2=http2)
        for _ in range(20)
    ]
    counting.reset()
    try:
        clients[0]._http.event_hooks["response"].append(hook)
        results = await asyncio.gather(*(client.get_benchmark_run(run_id) for client in clients))
    finally:
        for client in clients:
            await client.aclose()
    assert {run.id for run in results} == {run_id}
    assert set(versions) == {"HTTP/2" if http2 else "HTTP/1.1"}
    if http2:
        assert counting.snapshot().connections == 1  # every request multiplexed on one connection
