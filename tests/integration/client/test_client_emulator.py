"""The client against the emulator over 127.0.0.1: every endpoint, errors, pagination and faults."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest

from airflow_provider_runloop.client import AsyncRunloopClient, RetryPolicy, RunloopClient
from airflow_provider_runloop.exceptions import (
    RunloopAuthenticationError,
    RunloopBadRequestError,
    RunloopInvalidResponseError,
    RunloopNotFoundError,
    RunloopServerError,
    RunloopTimeoutError,
    RunloopTransportError,
)
from airflow_provider_runloop.models import BenchmarkJobState, BenchmarkRunState, ScenarioRunState
from airflow_provider_runloop.testing import RunloopEmulator

FAST_RETRY = RetryPolicy(max_retries=3, backoff_initial=0.01, backoff_max=0.02)


@pytest.fixture
def client(runloop_emulator: RunloopEmulator) -> Iterator[RunloopClient]:
    with RunloopClient(runloop_emulator.api_key, base_url=runloop_emulator.base_url, retry=FAST_RETRY) as c:
        yield c


def _scripted(emulator: RunloopEmulator, count: int, **timing: float) -> str:
    script = {"scenario_count": count, "seed": 7, "timing": {"start_interval": 0, **timing}}
    return emulator.start_scripted_run(script=script)


def test_every_endpoint(runloop_emulator: RunloopEmulator, client: RunloopClient) -> None:
    client.verify_credentials()
    benchmark = runloop_emulator.seed_benchmark({"scenario_count": 3, "seed": 1})
    fetched = client.get_benchmark(benchmark.benchmark_id)
    assert fetched.scenario_ids == list(benchmark.scenario_ids)

    # Interactive lifecycle: start the run, then each scenario, score, complete; complete the run.
    run = client.start_benchmark_run(benchmark.benchmark_id, run_name="nightly", metadata={"k": "v"})
    assert run.state is BenchmarkRunState.RUNNING
    assert client.count_scenario_runs(run.id) == 0
    scenario_runs = [
        client.start_scenario_run(scenario_id, benchmark_run_id=run.id)
        for scenario_id in benchmark.scenario_ids
    ]
    assert client.count_scenario_runs(run.id, state="running") == 3
    for scenario_run in scenario_runs:
        assert client.score_scenario_run(scenario_run.id).state is ScenarioRunState.SCORING
    runloop_emulator.advance(3600)
    for scenario_run in scenario_runs:
        scored = client.get_scenario_run(scenario_run.id)
        assert scored.state is ScenarioRunState.SCORED
        assert scored.scoring_contract_result is not None
        assert client.complete_scenario_run(scenario_run.id).state is ScenarioRunState.COMPLETED
    listed = list(client.list_scenario_runs(run.id))
    assert {r.id for r in listed} == {r.id for r in scenario_runs}
    assert client.complete_benchmark_run(run.id).state is BenchmarkRunState.COMPLETED
    assert client.get_benchmark_run(run.id).score is not None
    assert run.id in {r.id for r in client.list_benchmark_runs(benchmark_id=benchmark.benchmark_id)}

    # Cancel: a second run, one scenario run started, then canceled with the run.
    second = client.start_benchmark_run(benchmark.benchmark_id)
    lone = client.start_scenario_run(benchmark.scenario_ids[0], benchmark_run_id=second.id)
    assert client.cancel_benchmark_run(second.id).state is BenchmarkRunState.CANCELED
    assert client.get_scenario_run(lone.id).state is ScenarioRunState.CANCELED
    third = client.start_scenario_run(benchmark.scenario_ids[1])
    assert client.cancel_scenario_run(third.id).state is ScenarioRunState.CANCELED

    # A benchmark job runs by itself.
    spec = {
        "type": "benchmark",
        "benchmark_id": benchmark.benchmark_id,
        "agent_configs": [{"type": "job_agent", "name": "agent-a"}, {"type": "job_agent", "name": "agent-b"}],
    }
    job = client.create_benchmark_job(spec, name="job-1")
    runloop_emulator.advance(10_000)
    finished = client.get_benchmark_job(job.id)
    assert finished.state is BenchmarkJobState.COMPLETED
    assert len(finished.benchmark_outcomes) == 2
    assert job.id in {j.id for j in client.list_benchmark_jobs()}


def test_a_retried_post_keeps_its_idempotency_key(
    runloop_emulator: RunloopEmulator, client: RunloopClient
) -> None:
    benchmark = runloop_emulator.seed_benchmark({"scenario_count": 1})
    runloop_emulator.add_fault("status", method="POST", path="/v1/benchmarks/start_run", status=503, times=1)
    client.start_benchmark_run(benchmark.benchmark_id)
    posts = runloop_emulator.requests(method="POST", path="/v1/benchmarks/start_run")
    assert [p.status for p in posts] == [503, 200]
    assert posts[0].request_id == posts[1].request_id


def test_wrong_key_is_an_authentication_error(runloop_emulator: RunloopEmulator) -> None:
    with (
        RunloopClient("not-the-key", base_url=runloop_emulator.base_url) as wrong,
        pytest.raises(RunloopAuthenticationError, match="401"),
    ):
        wrong.get_benchmark_run("bmr_x")
    assert len(runloop_emulator.requests()) == 1


def test_unknown_ids_are_not_found(client: RunloopClient) -> None:
    for call in (
        lambda: client.get_benchmark_run("bmr_nope"),
        lambda: client.cancel_benchmark_run("bmr_nope"),
        lambda: client.get_benchmark("bmd_nope"),
        lambda: list(client.list_scenario_runs("bmr_nope")),
    ):
        with pytest.raises(RunloopNotFoundError, match="404"):
            call()


def test_wrong_state_is_a_bad_request(runloop_emulator: RunloopEmulator, client: RunloopClient) -> None:
    benchmark = runloop_emulator.seed_benchmark({"scenario_count": 1})
    scenario_run = client.start_scenario_run(benchmark.scenario_ids[0])
    with pytest.raises(RunloopBadRequestError, match="400"):
        client.complete_scenario_run(scenario_run.id)  # only a scored run can be completed


@pytest.mark.parametrize(("page_size", "pages"), [(5000, 3), (4000, 4), (3000, 5), (None, 3)])
def test_pagination_over_12001_items(
    runloop_emulator: RunloopEmulator, client: RunloopClient, page_size: int | None, pages: int
) -> None:
    run_id = _scripted(runloop_emulator, 12_001)
    runloop_emulator.advance(5)
    runloop_emulator.clear_requests()
    ids = [r.id for r in client.list_scenario_runs(run_id, page_size=page_size)]
    assert len(ids) == len(set(ids)) == 12_001
    assert set(ids) == set(runloop_emulator.scenario_run_states(run_id))
    assert len(runloop_emulator.requests(path=f"/v1/benchmark_runs/{run_id}/scenario_runs")) == pages
    assert client.count_scenario_runs(run_id) == 12_001


def test_a_listing_over_loopback_asks_one_page_ahead_and_leaves_nothing_running(
    runloop_emulator: RunloopEmulator, client: RunloopClient
) -> None:
    run_id = _scripted(runloop_emulator, 50)
    runloop_emulator.advance(5)
    path = f"/v1/benchmark_runs/{run_id}/scenario_runs"

    def listing_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("runloop-listing")]

    runloop_emulator.clear_requests()
    for _ in client.list_scenario_runs(run_id, page_size=10):
        # The page ahead was on the wire before the first page was validated; it has been answered
        # (or is being answered) by now, and no third page was asked for.
        assert len(listing_threads()) == 1
        break
    assert listing_threads() == []
    assert len(runloop_emulator.requests(path=path)) == 2

    async def first_of_async_listing() -> str:
        async with AsyncRunloopClient(
            runloop_emulator.api_key, base_url=runloop_emulator.base_url
        ) as aclient:
            listing = aclient.list_scenario_runs(run_id, page_size=10)
            first = await anext(listing)
            await asyncio.sleep(0.2)  # a third request would have been made by now
            await listing.aclose()
            assert asyncio.all_tasks() == {asyncio.current_task()}
            return first.id

    runloop_emulator.clear_requests()
    asyncio.run(first_of_async_listing())
    assert len(runloop_emulator.requests(path=path)) == 2


@pytest.mark.parametrize(
    ("total", "page_size", "pages"), [(4, 1, 4), (4, 2, 2), (4, 4, 1), (4, 5, 1), (0, 5, 1)]
)
def test_pagination_page_size_edges(
    runloop_emulator: RunloopEmulator, client: RunloopClient, total: int, page_size: int, pages: int
) -> None:
    benchmark = runloop_emulator.seed_benchmark({"scenario_count": max(total, 1)})
    run = client.start_benchmark_run(benchmark.benchmark_id)
    for scenario_id in benchmark.scenario_ids[:total]:
        client.start_scenario_run(scenario_id, benchmark_run_id=run.id)
    runloop_emulator.clear_requests()
    assert len(list(client.list_scenario_runs(run.id, page_size=page_size))) == total
    assert len(runloop_emulator.requests(path=f"/v1/benchmark_runs/{run.id}/scenario_runs")) == pages


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_status_faults_are_retried(
    runloop_emulator: RunloopEmulator, client: RunloopClient, status: int
) -> None:
    run_id = _scripted(runloop_emulator, 2)
    runloop_emulator.add_fault(
        "status", path=f"/v1/benchmark_runs/{run_id}", status=status, times=2, retry_after=0.01
    )
    assert client.get_benchmark_run(run_id).id == run_id
    assert [r.status for r in runloop_emulator.requests(path=f"/v1/benchmark_runs/{run_id}")] == [
        status,
        status,
        200,
    ]


def test_retries_run_out_with_a_typed_error(runloop_emulator: RunloopEmulator, client: RunloopClient) -> None:
    run_id = _scripted(runloop_emulator, 2)
    runloop_emulator.add_fault("status", path=f"/v1/benchmark_runs/{run_id}", status=503)
    with pytest.raises(RunloopServerError, match="503"):
        client.get_benchmark_run(run_id)
    assert len(runloop_emulator.requests(path=f"/v1/benchmark_runs/{run_id}")) == 4


def test_dropped_connections_are_retried(runloop_emulator: RunloopEmulator, client: RunloopClient) -> None:
    run_id = _scripted(runloop_emulator, 2)
    runloop_emulator.add_fault("drop_connection", path=f"/v1/benchmark_runs/{run_id}", times=2)
    assert client.get_benchmark_run(run_id).id == run_id
    runloop_emulator.add_fault("drop_connection", path=f"/v1/benchmark_runs/{run_id}")
    with pytest.raises(RunloopTransportError):
        client.get_benchmark_run(run_id)


def test_latency_past_the_timeout_is_a_timeout(runloop_emulator: RunloopEmulator) -> None:
    run_id = _scripted(runloop_emulator, 1)
    runloop_emulator.add_fault("latency", latency_seconds=1.0)
    retry = RetryPolicy(max_retries=1, backoff_initial=0.01)
    with (
        RunloopClient(
            runloop_emulator.api_key, base_url=runloop_emulator.base_url, timeout=0.2, retry=retry
        ) as c,
        pytest.raises(RunloopTimeoutError),
    ):
        c.get_benchmark_run(run_id)


@pytest.mark.parametrize("kind", ["truncate_body", "malformed_body"])
def test_broken_bodies_are_clear_errors(
    runloop_emulator: RunloopEmulator, client: RunloopClient, kind: str
) -> None:
    run_id = _scripted(runloop_emulator, 2)
    runloop_emulator.add_fault(kind, path=f"/v1/benchmark_runs/{run_id}")
    with pytest.raises((RunloopInvalidResponseError, RunloopTransportError)) as info:
        client.get_benchmark_run(run_id)
    assert run_id in str(info.value)


def test_a_repeated_page_is_refused_not_looped(
    runloop_emulator: RunloopEmulator, client: RunloopClient
) -> None:
    run_id = _scripted(runloop_emulator, 30)
    runloop_emulator.advance(5)
    runloop_emulator.add_fault("repeat_page", path=f"/v1/benchmark_runs/{run_id}/scenario_runs")
    with pytest.raises(RunloopInvalidResponseError, match="cursor does not advance"):
        list(client.list_scenario_runs(run_id, page_size=10))


def test_an_item_inserted_between_pages_is_listed_once(
    runloop_emulator: RunloopEmulator, client: RunloopClient
) -> None:
    run_id = _scripted(runloop_emulator, 30)
    runloop_emulator.advance(5)
    runloop_emulator.add_fault("insert_item", path=f"/v1/benchmark_runs/{run_id}/scenario_runs", times=1)
    ids = [r.id for r in client.list_scenario_runs(run_id, page_size=10)]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(runloop_emulator.scenario_run_states(run_id))


def test_the_key_never_reaches_the_logs(
    runloop_emulator: RunloopEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "airflow_provider_runloop"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    run_id = _scripted(runloop_emulator, 2)
    runloop_emulator.add_fault("status", path=f"/v1/benchmark_runs/{run_id}", status=503, times=1)
    with RunloopClient(runloop_emulator.api_key, base_url=runloop_emulator.base_url, retry=FAST_RETRY) as c:
        c.get_benchmark_run(run_id)
        with pytest.raises(RunloopNotFoundError) as info:
            c.get_benchmark_run("bmr_missing")
    assert any(r.name.startswith("httpcore") for r in caplog.records), "httpcore DEBUG logs were captured"
    assert runloop_emulator.api_key not in caplog.text
    assert runloop_emulator.api_key not in str(info.value)
