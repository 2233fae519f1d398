"""The lifecycle operators and the job trigger against the emulator over 127.0.0.1 (no mocks):
reattaching after a crash, request ids under faults, cancellation on kill, completing and canceling
runs idempotently, and waiting on jobs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_runloop.exceptions import (
    RunloopBadRequestError,
    RunloopBenchmarkRunFailedError,
    RunloopError,
)
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.operators.runloop import (
    RunloopCancelBenchmarkRunOperator,
    RunloopCompleteBenchmarkRunOperator,
    RunloopCreateBenchmarkJobOperator,
    RunloopStartBenchmarkRunOperator,
    TaskTag,
)
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor
from airflow_provider_runloop.testing import RealClock, RunloopEmulator
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkJobTrigger, RunloopBenchmarkRunTrigger

THREE = {"scenario_count": 3, "seed": 1, "outcomes": {"completed": 1.0}}
AGENTS = [{"name": "agent-a"}, {"name": "agent-b"}]

Connect = Callable[..., RunloopEmulator]


def _start(benchmark_id: str, **kwargs: Any) -> RunloopStartBenchmarkRunOperator:
    return RunloopStartBenchmarkRunOperator(task_id="start", benchmark_id=benchmark_id, **kwargs)


def _job(benchmark_id: str, **kwargs: Any) -> RunloopCreateBenchmarkJobOperator:
    options: dict[str, Any] = {"agent_configs": AGENTS, **kwargs}
    return RunloopCreateBenchmarkJobOperator(task_id="start", benchmark_id=benchmark_id, **options)


def _runs_of(emulator: RunloopEmulator, benchmark_id: str) -> list[dict[str, Any]]:
    """Every benchmark run of a benchmark, as the API lists them (raw, not through the provider)."""
    with httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as http:
        page = http.get("/v1/benchmark_runs", params={"benchmark_id": benchmark_id, "limit": 100})
        runs: list[dict[str, Any]] = page.json()["runs"]
        return runs


def _posts(emulator: RunloopEmulator, path: str) -> list[Any]:
    return emulator.requests(method="POST", path=path)


def _eventually(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the operator"
        time.sleep(0.02)


class _Worker:
    """Runs a task's ``execute`` in a thread, as a worker would, keeping its return value or error."""

    def __init__(self, execute: Callable[[], Any]) -> None:
        self._execute = execute
        self._outcome: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome["value"] = self._execute()
        except BaseException as exc:
            self._outcome["error"] = exc

    def result(self) -> Any:
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the task never finished"
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


# --- reattaching ----------------------------------------------------------------------------------------


def test_a_retry_after_a_worker_crash_reattaches_to_the_running_run(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    first = _start(benchmark.benchmark_id).execute({"ti": ti})
    # The worker died before the task could finish: a fresh operator, the next try, same task instance.
    second = _start(benchmark.benchmark_id).execute({"ti": ti.retry()})

    assert second["benchmark_run_id"] == first["benchmark_run_id"]
    assert (first["reattached"], second["reattached"]) == (False, True)
    assert second["scenario_ids"] == list(benchmark.scenario_ids)
    assert len(_posts(emulator, "/v1/benchmarks/start_run")) == 1
    (run,) = _runs_of(emulator, benchmark.benchmark_id)
    tag = TaskTag.from_context({"ti": ti})  # type: ignore[arg-type]
    assert run["metadata"]["airflow_tag"] == tag.key
    assert run["name"] == f"lifecycle.start [airflow {tag.key}]"
    # The key stays in the connection.
    assert emulator.api_key not in json.dumps([first, second, ti.xcom])


def test_reattaching_checks_the_tag_not_only_the_name(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    mine = _start(benchmark.benchmark_id, run_name="nightly").execute({"ti": ti})
    other_task = type(ti)(task_id="other")
    theirs = _start(benchmark.benchmark_id, run_name="nightly").execute({"ti": other_task})
    again = _start(benchmark.benchmark_id, run_name="nightly").execute({"ti": ti.retry()})

    assert theirs["benchmark_run_id"] != mine["benchmark_run_id"]
    assert theirs["reattached"] is False
    assert again["benchmark_run_id"] == mine["benchmark_run_id"]
    assert again["reattached"] is True
    assert len(_runs_of(emulator, benchmark.benchmark_id)) == 2


def test_a_finished_run_is_not_reattached_and_reattach_false_always_starts(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    first = _start(benchmark.benchmark_id).execute({"ti": ti})
    emulator.force_benchmark_run_state(first["benchmark_run_id"], "canceled")
    second = _start(benchmark.benchmark_id).execute({"ti": ti.retry()})
    third = _start(benchmark.benchmark_id, reattach=False).execute({"ti": ti.retry().retry()})

    ids = {first["benchmark_run_id"], second["benchmark_run_id"], third["benchmark_run_id"]}
    assert len(ids) == 3
    assert not second["reattached"]
    assert not third["reattached"]


def test_a_retried_job_task_reattaches_to_its_live_job(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    first = _job(benchmark.benchmark_id).execute({"ti": ti})
    second = _job(benchmark.benchmark_id).execute({"ti": ti.retry()})
    assert second["benchmark_job_id"] == first["benchmark_job_id"]
    assert second["reattached"] is True
    assert len(_posts(emulator, "/v1/benchmark_jobs")) == 1

    # Another spec under the same task (the DAG was edited): not the same job.
    changed = _job(benchmark.benchmark_id, agent_configs=[{"name": "agent-c"}]).execute({"ti": ti.retry()})
    assert changed["benchmark_job_id"] != first["benchmark_job_id"]
    # A finished job is not reattached either.
    emulator.force_job_state(changed["benchmark_job_id"], "completed")
    emulator.force_job_state(first["benchmark_job_id"], "failed")
    fresh = _job(benchmark.benchmark_id).execute({"ti": ti.retry()})
    assert fresh["benchmark_job_id"] not in (first["benchmark_job_id"], changed["benchmark_job_id"])
    assert len(_posts(emulator, "/v1/benchmark_jobs")) == 3


# --- request ids under faults ------------------------------------------------------------------------------


@pytest.mark.runloop_emulator(dedupe_request_ids=True)
def test_a_503_then_success_starts_one_run(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    emulator.add_fault(
        "status", method="POST", path="/v1/benchmarks/start_run", status=503, retry_after=0, times=1
    )
    started = _start(benchmark.benchmark_id).execute({"ti": ti})

    posts = _posts(emulator, "/v1/benchmarks/start_run")
    assert [post.status for post in posts] == [503, 200]
    tag = TaskTag.from_context({"ti": ti})  # type: ignore[arg-type]
    assert {post.request_id for post in posts} == {f"airflow-runloop-start-run-{tag.key}-1"}
    assert [run["id"] for run in _runs_of(emulator, benchmark.benchmark_id)] == [started["benchmark_run_id"]]


@pytest.mark.parametrize("dedupe", [True, False])
def test_a_lost_response_is_not_a_second_run_when_the_server_dedupes(
    runloop_emulator_factory: Callable[..., RunloopEmulator], connect: Connect, ti: Any, dedupe: bool
) -> None:
    emulator = connect(runloop_emulator_factory(dedupe_request_ids=dedupe))
    benchmark = emulator.seed_benchmark(THREE)
    # The server starts the run, but the response never arrives whole: the client retries the POST.
    emulator.add_fault("truncate_body", method="POST", path="/v1/benchmarks/start_run", times=1)
    started = _start(benchmark.benchmark_id).execute({"ti": ti})

    posts = _posts(emulator, "/v1/benchmarks/start_run")
    assert len(posts) == 2
    assert len({post.request_id for post in posts}) == 1  # the retry carries the same request id
    runs = _runs_of(emulator, benchmark.benchmark_id)
    if dedupe:
        assert posts[1].fault == "replayed"
        assert [run["id"] for run in runs] == [started["benchmark_run_id"]]
    else:
        # What the request id cannot do alone: without server-side de-duplication the retry starts a
        # second run (docs/lifecycle.md says so; Runloop's behaviour here is unverified).
        assert len(runs) == 2


@pytest.mark.runloop_emulator(dedupe_request_ids=True)
def test_a_new_try_is_a_new_request(emulator: RunloopEmulator, ti: Any) -> None:
    # A user clears a finished task to run the benchmark again: the new try must not get the old run back.
    benchmark = emulator.seed_benchmark(THREE)
    first = _start(benchmark.benchmark_id).execute({"ti": ti})
    emulator.force_benchmark_run_state(first["benchmark_run_id"], "completed")
    second = _start(benchmark.benchmark_id).execute({"ti": ti.retry()})
    assert second["benchmark_run_id"] != first["benchmark_run_id"]
    request_ids = [post.request_id for post in _posts(emulator, "/v1/benchmarks/start_run")]
    assert len(set(request_ids)) == 2
    assert request_ids[1].endswith("-2")


@pytest.mark.runloop_emulator(dedupe_request_ids=True)
def test_a_job_create_survives_a_503(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    emulator.add_fault("status", method="POST", path="/v1/benchmark_jobs", status=503, retry_after=0, times=1)
    created = _job(benchmark.benchmark_id).execute({"ti": ti})
    posts = _posts(emulator, "/v1/benchmark_jobs")
    assert [post.status for post in posts] == [503, 200]
    assert len({post.request_id for post in posts}) == 1
    assert posts[0].request_id.startswith("airflow-runloop-create-job-")
    with httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as http:
        jobs = http.get("/v1/benchmark_jobs").json()["jobs"]
    assert [job["id"] for job in jobs] == [created["benchmark_job_id"]]


# --- cancellation on kill ------------------------------------------------------------------------------


async def _run_then_kill(trigger: Any, emulator: RunloopEmulator | None = None) -> None:
    """What the triggerer does when a user marks the deferred task failed: cancel run(), call on_kill().
    With ``emulator``, the kill comes once the trigger has polled (however slow a loaded host is)."""
    task = asyncio.ensure_future(trigger.run().__anext__())
    await asyncio.sleep(0.3)
    if emulator is not None:
        await asyncio.to_thread(_eventually, lambda: bool(emulator.requests(method="GET")))
    assert not task.done(), "the wait must still be going on"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await trigger.on_kill()


def _deferred(operator: Any, ti: Any) -> Any:
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})
    return deferred.value.trigger


async def test_killing_a_deferred_start_and_wait_task_cancels_its_run(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(benchmark.benchmark_id, wait_for_termination=True, deferrable=True, check_interval=0.05)
    trigger = await asyncio.to_thread(_deferred, operator, ti)
    assert isinstance(trigger, RunloopBenchmarkRunTrigger)
    assert trigger.serialize()[1]["cancel_on_kill"] is True
    assert emulator.api_key not in json.dumps(trigger.serialize())
    run_id = ti.xcom["runloop_resume"]["benchmark_run_id"]
    hook = RunloopHook()
    scenario_run = await hook.astart_scenario_run(benchmark.scenario_ids[0], benchmark_run_id=run_id)
    await hook.aclose()

    await _run_then_kill(trigger)

    assert emulator.benchmark_run_state(run_id) == "canceled"
    assert emulator.scenario_run_state(scenario_run.id) == "canceled"


@dataclass
class _TaskInstanceKey:
    """What the triggerer sets as ``trigger.task_instance``: the fields the kill guard reads."""

    dag_id: str = "nightly"
    run_id: str = "manual__1"
    task_id: str = "start"
    map_index: int = -1


def _airflow_says(
    monkeypatch: pytest.MonkeyPatch, answer: Callable[..., dict[str, Any]]
) -> list[dict[str, Any]]:
    """Stand in for the triggerer's supervisor answering ``RuntimeTaskInstance.get_task_states``."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    asked: list[dict[str, Any]] = []

    def get_task_states(**query: Any) -> dict[str, Any]:
        asked.append(query)
        return answer(**query)

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    return asked


@pytest.mark.parametrize(
    ("map_index", "state", "canceled"),
    [
        (-1, "failed", True),
        (-1, "success", True),
        (-1, None, True),
        (3, "deferred", False),
        (-1, "deferred", False),
    ],
)
async def test_a_kill_cancels_only_when_the_task_left_deferred(
    emulator: RunloopEmulator,
    ti: Any,
    monkeypatch: pytest.MonkeyPatch,
    map_index: int,
    state: str | None,
    canceled: bool,
) -> None:
    """Airflow 3.3 calls on_kill both for a user's kill and for a trigger handed to another triggerer
    (apache/airflow#73454); only the task's state tells them apart."""
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(benchmark.benchmark_id, wait_for_termination=True, deferrable=True, check_interval=0.05)
    trigger = await asyncio.to_thread(_deferred, operator, ti)
    run_id = ti.xcom["runloop_resume"]["benchmark_run_id"]
    trigger.task_instance = key = _TaskInstanceKey(map_index=map_index)
    task_key = "start" if map_index < 0 else f"start_{map_index}"
    asked = _airflow_says(monkeypatch, lambda **_: {key.run_id: {task_key: state, "other": "failed"}})

    await _run_then_kill(trigger)

    assert asked == [
        {"dag_id": "nightly", "task_ids": ["start"], "run_ids": ["manual__1"], "map_index": map_index}
    ]
    assert emulator.benchmark_run_state(run_id) == ("canceled" if canceled else "running")
    assert len(_posts(emulator, f"/v1/benchmark_runs/{run_id}/cancel")) == (1 if canceled else 0)


async def test_a_kill_goes_on_when_the_triggerer_cancels_on_kill_again(
    emulator: RunloopEmulator, ti: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow 3.3 re-sends the cancel of a killed trigger on every triggerer loop until it is gone, so
    on_kill is itself cancelled about a second in; the cancel must still reach the server."""
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(benchmark.benchmark_id, wait_for_termination=True, deferrable=True, check_interval=0.05)
    trigger = await asyncio.to_thread(_deferred, operator, ti)
    run_id = ti.xcom["runloop_resume"]["benchmark_run_id"]
    trigger.task_instance = key = _TaskInstanceKey()

    def slow_answer(**_: Any) -> dict[str, Any]:
        time.sleep(0.5)  # a busy supervisor; runs in a worker thread
        return {key.run_id: {key.task_id: "failed"}}

    _airflow_says(monkeypatch, slow_answer)
    task = asyncio.ensure_future(trigger.run().__anext__())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    kill = asyncio.ensure_future(trigger.on_kill())
    await asyncio.sleep(0.1)
    kill.cancel()  # the triggerer's next loop
    with pytest.raises(asyncio.CancelledError):
        await kill

    await asyncio.to_thread(_eventually, lambda: emulator.benchmark_run_state(run_id) == "canceled")
    assert len(_posts(emulator, f"/v1/benchmark_runs/{run_id}/cancel")) == 1


async def test_a_kill_whose_task_state_cannot_be_read_cancels_nothing_and_says_so(
    emulator: RunloopEmulator, ti: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(benchmark.benchmark_id, wait_for_termination=True, deferrable=True, check_interval=0.05)
    trigger = await asyncio.to_thread(_deferred, operator, ti)
    run_id = ti.xcom["runloop_resume"]["benchmark_run_id"]
    trigger.task_instance = _TaskInstanceKey()

    def unreachable(**_: Any) -> dict[str, Any]:
        raise ConnectionError("supervisor gone")

    _airflow_says(monkeypatch, unreachable)

    await _run_then_kill(trigger)

    assert emulator.benchmark_run_state(run_id) == "running"
    assert not _posts(emulator, f"/v1/benchmark_runs/{run_id}/cancel")
    warning = next(line for line in capsys.readouterr().out.splitlines() if "Not canceling" in line)
    assert "could not read the task's state" in warning
    assert "ConnectionError: supervisor gone" in warning


async def test_a_watch_only_sensor_never_cancels_the_run(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    started = await asyncio.to_thread(_start(benchmark.benchmark_id).execute, {"ti": ti})
    run_id = started["benchmark_run_id"]
    sensor = RunloopBenchmarkRunSensor(
        task_id="wait", benchmark_run_id=run_id, deferrable=True, poke_interval=0.05
    )
    emulator.clear_requests()
    trigger = await asyncio.to_thread(_deferred, sensor, type(ti)(task_id="wait"))
    assert "cancel_on_kill" not in trigger.serialize()[1]

    await _run_then_kill(trigger, emulator)

    assert emulator.benchmark_run_state(run_id) == "running"
    assert {request.method for request in emulator.requests()} == {"GET"}


def test_killing_a_start_and_wait_task_on_a_worker_cancels_its_run(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(
        benchmark.benchmark_id, wait_for_termination=True, deferrable=False, check_interval=0.05
    )
    worker = _Worker(lambda: operator.execute({"ti": ti}))
    # Started and polling; then Airflow's SIGTERM handler calls on_kill.
    _eventually(lambda: len(emulator.requests(path="/v1/benchmark_runs/*/scenario_runs")) > 0)
    operator.on_kill()

    # The wait then sees the canceled run and fails the task, as the sensor would.
    with pytest.raises(RunloopBenchmarkRunFailedError, match="the benchmark run was canceled"):
        worker.result()
    assert emulator.benchmark_run_state(str(operator._started_run_id)) == "canceled"


def _jobs(emulator: RunloopEmulator) -> list[dict[str, Any]]:
    with httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as http:
        jobs: list[dict[str, Any]] = http.get("/v1/benchmark_jobs").json()["jobs"]
        return jobs


def test_a_kill_while_the_start_is_in_flight_cancels_the_run_found_by_its_tag(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    # The server creates the run at once but answers only later: the task never learns the run's id.
    emulator.add_fault("delay_answer", method="POST", path="/v1/benchmarks/start_run", latency_seconds=2)
    operator = _start(benchmark.benchmark_id)
    worker = _Worker(lambda: operator.execute({"ti": ti}))
    _eventually(lambda: len(_runs_of(emulator, benchmark.benchmark_id)) == 1)
    assert operator._started_run_id is None
    operator.on_kill()

    (run,) = _runs_of(emulator, benchmark.benchmark_id)
    assert emulator.benchmark_run_state(run["id"]) == "canceled"
    assert worker.result()["benchmark_run_id"] == run["id"]


def test_a_kill_before_the_start_reaches_the_server_cancels_nothing(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(benchmark.benchmark_id)
    emulator.clear_requests()
    operator.on_kill()  # killed before execute asked anything of the server: nothing to look for
    assert emulator.requests() == []


def test_a_kill_while_the_job_create_is_in_flight_cancels_the_job_found_by_its_name(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    emulator.add_fault("delay_answer", method="POST", path="/v1/benchmark_jobs", latency_seconds=2)
    operator = _job(benchmark.benchmark_id)
    worker = _Worker(lambda: operator.execute({"ti": ti}))
    _eventually(lambda: len(_jobs(emulator)) == 1)
    emulator.advance(2)  # out of the queue: the job's runs are running
    assert operator._started_job_id is None
    operator.on_kill()

    (job,) = _jobs(emulator)
    run_ids = emulator.job_benchmark_run_ids(job["id"])
    assert [emulator.benchmark_run_state(run_id) for run_id in run_ids] == ["canceled", "canceled"]
    assert worker.result()["benchmark_job_id"] == job["id"]


def test_on_kill_does_nothing_when_asked_not_to_cancel(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(benchmark.benchmark_id, cancel_on_kill=False)
    started = operator.execute({"ti": ti})
    operator.on_kill()
    assert emulator.benchmark_run_state(started["benchmark_run_id"]) == "running"


async def test_killing_a_deferred_job_task_cancels_the_jobs_running_runs(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _job(benchmark.benchmark_id, wait_for_termination=True, deferrable=True, check_interval=0.05)
    trigger = await asyncio.to_thread(_deferred, operator, ti)
    assert isinstance(trigger, RunloopBenchmarkJobTrigger)
    assert trigger.cancel_on_kill is True
    job_id = trigger.benchmark_job_id
    emulator.advance(2)  # out of the queue: the job's runs are running
    run_ids = emulator.job_benchmark_run_ids(job_id)
    assert [emulator.benchmark_run_state(run_id) for run_id in run_ids] == ["running", "running"]

    await _run_then_kill(trigger)

    assert [emulator.benchmark_run_state(run_id) for run_id in run_ids] == ["canceled", "canceled"]


async def test_a_job_trigger_without_cancel_on_kill_leaves_the_job_alone(emulator: RunloopEmulator) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    hook = RunloopHook()
    spec = {
        "type": "benchmark",
        "benchmark_id": benchmark.benchmark_id,
        "agent_configs": [{"type": "job_agent", "name": "a"}],
    }
    job = await hook.acreate_benchmark_job(spec)
    await hook.aclose()
    emulator.advance(2)
    trigger = RunloopBenchmarkJobTrigger(
        benchmark_job_id=job.id, deadline=time.time() + 30, poll_interval=0.05
    )
    emulator.clear_requests()
    await _run_then_kill(trigger, emulator)
    (run_id,) = emulator.job_benchmark_run_ids(job.id)
    assert emulator.benchmark_run_state(run_id) == "running"
    assert {request.method for request in emulator.requests()} == {"GET"}


def test_the_job_operators_on_kill_cancels_its_running_runs(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _job(benchmark.benchmark_id)
    created = operator.execute({"ti": ti})
    emulator.advance(2)
    operator.on_kill()
    run_ids = emulator.job_benchmark_run_ids(created["benchmark_job_id"])
    assert [emulator.benchmark_run_state(run_id) for run_id in run_ids] == ["canceled", "canceled"]


# --- completing and canceling runs ---------------------------------------------------------------------


def _complete(run_id: str, **kwargs: Any) -> RunloopCompleteBenchmarkRunOperator:
    return RunloopCompleteBenchmarkRunOperator(task_id="complete", benchmark_run_id=run_id, **kwargs)


def _cancel(run_id: str) -> RunloopCancelBenchmarkRunOperator:
    return RunloopCancelBenchmarkRunOperator(task_id="cancel", benchmark_run_id=run_id)


def test_completing_is_idempotent_and_refuses_a_canceled_run(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    run_id = _start(benchmark.benchmark_id).execute({"ti": ti})["benchmark_run_id"]
    first = _complete(run_id).execute({"ti": ti})
    again = _complete(run_id).execute({"ti": ti})
    assert (first["state"], first["changed"]) == ("completed", True)
    assert (again["state"], again["changed"]) == ("completed", False)
    assert len(_posts(emulator, f"/v1/benchmark_runs/{run_id}/complete")) == 1
    assert ti.xcom["_link_RunloopBenchmarkRunLink"] == first["dashboard_url"]

    other = _start(benchmark.benchmark_id, reattach=False).execute({"ti": ti})["benchmark_run_id"]
    emulator.force_benchmark_run_state(other, "canceled")
    with pytest.raises(
        AirflowFailException, match=f"Benchmark run {other} is canceled and cannot be completed"
    ):
        _complete(other).execute({"ti": ti})


def test_completing_waits_for_active_scenario_runs_unless_told_otherwise(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    run_id = _start(benchmark.benchmark_id).execute({"ti": ti})["benchmark_run_id"]
    hook = RunloopHook()
    hook.start_scenario_run(benchmark.scenario_ids[0], benchmark_run_id=run_id)
    with pytest.raises(RunloopError, match=r"1 of its scenario runs are still active \(running 1\)"):
        _complete(run_id).execute({"ti": ti})
    assert emulator.benchmark_run_state(run_id) == "running"
    assert _complete(run_id, allow_active_scenario_runs=True).execute({"ti": ti})["changed"] is True
    assert emulator.benchmark_run_state(run_id) == "completed"
    hook.close()


@pytest.mark.runloop_emulator(refuse_repeated_actions=True)
@pytest.mark.parametrize(("action", "done"), [("complete", "completed"), ("cancel", "canceled")])
def test_an_action_whose_answer_was_lost_is_a_success_once_the_run_shows_it(
    emulator: RunloopEmulator, ti: Any, action: str, done: str, capsys: pytest.CaptureFixture[str]
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    run_id = _start(benchmark.benchmark_id).execute({"ti": ti})["benchmark_run_id"]
    # The server acts, the answer is lost; the client's retry (same request id) is refused: 400.
    emulator.add_fault("truncate_body", method="POST", path=f"/v1/benchmark_runs/{run_id}/{action}", times=1)
    operator = _complete(run_id) if action == "complete" else _cancel(run_id)
    outcome = operator.execute({"ti": ti})

    posts = _posts(emulator, f"/v1/benchmark_runs/{run_id}/{action}")
    assert [(post.fault, post.status) for post in posts] == [("truncate_body", None), (None, 400)]
    assert (outcome["state"], outcome["changed"]) == (done, True)
    assert (
        f"but the run is {done} already: an earlier attempt of this request did it" in capsys.readouterr().out
    )
    assert emulator.benchmark_run_state(run_id) == done


@pytest.mark.runloop_emulator(refuse_repeated_actions=True)
@pytest.mark.parametrize("action", ["complete", "cancel"])
def test_a_refusal_of_a_run_still_running_fails_the_task(
    emulator: RunloopEmulator, ti: Any, action: str
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    run_id = _start(benchmark.benchmark_id).execute({"ti": ti})["benchmark_run_id"]
    path = f"/v1/benchmark_runs/{run_id}/{action}"
    emulator.add_fault("status", method="POST", path=path, status=400, message="refused", times=1)
    operator = _complete(run_id) if action == "complete" else _cancel(run_id)
    with pytest.raises(RunloopBadRequestError, match="refused"):
        operator.execute({"ti": ti})
    assert emulator.benchmark_run_state(run_id) == "running"


def test_completing_names_the_active_scenario_runs(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    run_id = _start(benchmark.benchmark_id).execute({"ti": ti})["benchmark_run_id"]
    hook = RunloopHook()
    started = [
        hook.start_scenario_run(scenario_id, benchmark_run_id=run_id, run_name=f"case-{n}")
        for n, scenario_id in enumerate(benchmark.scenario_ids)
    ]
    hook.close()
    with pytest.raises(
        RunloopError, match=r"3 of its scenario runs are still active \(running 3\)"
    ) as raised:
        _complete(run_id).execute({"ti": ti})
    for n, scenario_run in enumerate(started):
        assert f"{scenario_run.id} (case-{n}) [running]" in str(raised.value)


def test_canceling_is_idempotent_and_refuses_a_completed_run(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    run_id = _start(benchmark.benchmark_id).execute({"ti": ti})["benchmark_run_id"]
    first = _cancel(run_id).execute({"ti": ti})
    again = _cancel(run_id).execute({"ti": ti})
    assert (first["state"], first["changed"], again["state"], again["changed"]) == (
        "canceled",
        True,
        "canceled",
        False,
    )
    other = _start(benchmark.benchmark_id, reattach=False).execute({"ti": ti})["benchmark_run_id"]
    emulator.force_benchmark_run_state(other, "completed")
    with pytest.raises(AirflowFailException, match="is completed and cannot be canceled"):
        _cancel(other).execute({"ti": ti})


# --- waiting -----------------------------------------------------------------------------------------------


def _drive_scenarios(emulator: RunloopEmulator, run_id: str, scenario_ids: list[str]) -> None:
    """The interactive part, done from the test: start, score and complete each scenario."""
    hook = RunloopHook()
    try:
        for scenario_id in scenario_ids:
            scenario_run = hook.start_scenario_run(scenario_id, benchmark_run_id=run_id)
            hook.score_scenario_run(scenario_run.id)
            emulator.advance(30)
            hook.complete_scenario_run(scenario_run.id)
    finally:
        hook.close()


def test_start_and_wait_on_the_worker(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(
        benchmark.benchmark_id, wait_for_termination=True, deferrable=False, check_interval=0.05
    )
    worker = _Worker(lambda: operator.execute({"ti": ti}))
    _eventually(lambda: operator._started_run_id is not None)
    _drive_scenarios(emulator, str(operator._started_run_id), list(benchmark.scenario_ids))
    result = worker.result()

    assert result["benchmark_run_id"] == operator._started_run_id
    summary = result["summary"]
    assert summary["done"] is True
    assert summary["state_counts"]["completed"] == 3
    assert summary["expected_scenarios"] == 3


async def test_start_and_wait_deferred_resumes_with_the_start_xcom_and_the_summary(
    emulator: RunloopEmulator, ti: Any
) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(benchmark.benchmark_id, wait_for_termination=True, deferrable=True, check_interval=0.05)
    trigger = await asyncio.to_thread(_deferred, operator, ti)
    run_id = trigger.benchmark_run_id
    await asyncio.to_thread(_drive_scenarios, emulator, run_id, list(benchmark.scenario_ids))
    (event,) = [event.payload async for event in trigger.run()]
    assert event["status"] == "success"
    # On resumption Airflow builds a new operator from the DAG: nothing of the first one survives.
    resumed = _start(benchmark.benchmark_id, wait_for_termination=True, deferrable=True)
    result = resumed.execute_complete({"ti": ti}, event=json.loads(json.dumps(event)))
    assert result["benchmark_run_id"] == run_id
    assert result["scenario_ids"] == list(benchmark.scenario_ids)
    assert result["summary"]["state_counts"]["completed"] == 3


def test_a_wait_that_runs_out_of_time_fails_the_try_not_the_run(emulator: RunloopEmulator, ti: Any) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    operator = _start(
        benchmark.benchmark_id,
        wait_for_termination=True,
        deferrable=False,
        check_interval=0.05,
        timeout=0.2,
    )
    with pytest.raises(RunloopError, match="a retry of this task reattaches to it"):
        operator.execute({"ti": ti})
    assert emulator.benchmark_run_state(operator._started_run_id) == "running"


async def _create_and_wait(
    operator: RunloopCreateBenchmarkJobOperator, ti: Any, end: Callable[[str], None]
) -> dict[str, Any]:
    """Run the job operator to the end; ``end(job_id)`` makes the emulator finish the job meanwhile."""
    if operator.deferrable:
        trigger = await asyncio.to_thread(_deferred, operator, ti)
        end(trigger.benchmark_job_id)
        (event,) = [event.payload async for event in trigger.run()]
        return operator.execute_complete({"ti": ti}, event=event)
    worker = _Worker(lambda: operator.execute({"ti": ti}))
    await asyncio.to_thread(_eventually, lambda: operator._started_job_id is not None)
    end(str(operator._started_job_id))
    return await asyncio.to_thread(worker.result)


@pytest.mark.parametrize("deferrable", [True, False])
async def test_waiting_for_a_job(emulator: RunloopEmulator, ti: Any, deferrable: bool) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    options: dict[str, Any] = {"wait_for_termination": True, "deferrable": deferrable, "check_interval": 0.05}

    done = await _create_and_wait(
        _job(benchmark.benchmark_id, **options), ti, lambda job_id: emulator.advance(3600)
    )
    assert done["state"] == "completed"
    assert [run["agent_name"] for run in done["runs"]] == ["agent-a", "agent-b"]
    assert all(run["n_completed"] == 3 for run in done["runs"])
    assert ti.xcom["_link_RunloopBenchmarkJobLink"] == done["dashboard_url"]

    def fail(job_id: str) -> None:
        emulator.force_job_state(job_id, "failed", failure_reason="the orchestrator stopped")

    accepted = await _create_and_wait(
        _job(benchmark.benchmark_id, fail_on_job_failure=False, **options), type(ti)(task_id="b"), fail
    )
    assert accepted["state"] == "failed"
    assert accepted["failure_reason"] == "the orchestrator stopped"

    failing = _job(benchmark.benchmark_id, **options)
    with pytest.raises(RunloopBenchmarkRunFailedError, match=r"is cancelled.*fail_on_job_failure=False"):
        await _create_and_wait(
            failing, type(ti)(task_id="c"), lambda job_id: emulator.force_job_state(job_id, "cancelled")
        )


async def test_job_trigger_events(emulator: RunloopEmulator) -> None:
    benchmark = emulator.seed_benchmark(THREE)
    hook = RunloopHook()
    spec = {
        "type": "benchmark",
        "benchmark_id": benchmark.benchmark_id,
        "agent_configs": [{"type": "job_agent", "name": "a"}],
    }
    job = await hook.acreate_benchmark_job(spec)
    await hook.aclose()

    def trigger(**kwargs: Any) -> RunloopBenchmarkJobTrigger:
        options: dict[str, Any] = {"deadline": time.time() + 30, "poll_interval": 0.02, **kwargs}
        return RunloopBenchmarkJobTrigger(benchmark_job_id=job.id, **options)

    async def events(t: RunloopBenchmarkJobTrigger) -> list[dict[str, Any]]:
        return [event.payload async for event in t.run()]

    (timeout,) = await events(trigger(deadline=time.time() + 0.2))
    assert timeout["status"] == "timeout"
    assert "queued" in timeout["message"]

    emulator.advance(3600)
    (success,) = await events(trigger())
    assert success["status"] == "success"
    assert success["job"]["state"] == "completed"
    assert success["job"]["benchmark_run_ids"] == emulator.job_benchmark_run_ids(job.id)
    assert len(json.dumps(success)) < 2048
    assert {request.method for request in emulator.requests(path="/v1/benchmark_jobs/*")} == {"GET"}

    (missing,) = [
        event.payload async for event in RunloopBenchmarkJobTrigger("bmj_nope", time.time() + 5).run()
    ]
    assert missing["status"] == "error"
    assert "404" in missing["message"]


async def test_job_trigger_reports_a_failed_job_and_survives_transient_faults(
    runloop_emulator_factory: Callable[..., RunloopEmulator], connect: Connect
) -> None:
    emulator = connect(runloop_emulator_factory(clock=RealClock(speed=100)), max_retries=0)
    benchmark = emulator.seed_benchmark(THREE)
    hook = RunloopHook()
    spec = {
        "type": "benchmark",
        "benchmark_id": benchmark.benchmark_id,
        "agent_configs": [{"type": "job_agent", "name": "a"}],
    }
    job = await hook.acreate_benchmark_job(spec)
    await hook.aclose()
    emulator.force_job_state(job.id, "failed", failure_reason="x" * 1000)
    emulator.add_fault("status", path="/v1/benchmark_jobs/*", status=502, times=2)
    trigger = RunloopBenchmarkJobTrigger(
        job.id, time.time() + 30, poll_interval=0.02, max_consecutive_poll_failures=2
    )
    (event,) = [event.payload async for event in trigger.run()]
    assert event["status"] == "failure"
    assert event["job"]["state"] == "failed"
    assert len(event["job"]["failure_reason"]) == 300
    assert len(json.dumps(event)) < 4096
