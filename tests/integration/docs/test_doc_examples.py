"""The code the docs show that is not an example DAG: each section between ``# --8<-- [start:name]``
and ``# --8<-- [end:name]`` is included in a page by pymdownx.snippets, and runs here against the emulator.
"""

from __future__ import annotations

from typing import Any

import pendulum
import pytest

from airflow_provider_runloop.testing import RunloopEmulator

THREE_SCENARIOS = {"scenario_count": 3, "outcomes": {"completed": 1.0}, "seed": 2}


@pytest.fixture
def connected(runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch) -> RunloopEmulator:
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", runloop_emulator.airflow_conn_json)
    return runloop_emulator


def test_hook_example(connected: RunloopEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = connected.start_scripted_run(script=THREE_SCENARIOS)
    connected.advance(600)

    # --8<-- [start:howto_hook_runloop]
    from airflow_provider_runloop.hooks.runloop import RunloopHook

    hook = RunloopHook(runloop_conn_id="runloop_default")
    run = hook.get_benchmark_run(run_id)
    finished = hook.count_scenario_runs(run.id, state="completed")  # one small request, whatever the size
    for scenario_run in hook.list_scenario_runs(run.id):  # lazy: one page in memory at a time
        result = scenario_run.scoring_contract_result
        print(scenario_run.scenario_id, result.score if result is not None else None)

    verdict = hook.check_benchmark_run(run.id)  # one poll under the completion rule
    print(verdict.done, verdict.success, verdict.summary.mean_score)
    hook.close()
    # --8<-- [end:howto_hook_runloop]

    assert finished == 3
    assert verdict.done
    assert verdict.success
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert all(line.startswith("scn_") and float(line.split()[1]) > 0 for line in lines[:3])


async def test_async_hook_example(connected: RunloopEmulator) -> None:
    run_id = connected.start_scripted_run(script={**THREE_SCENARIOS, "scenarios": [{"attempts": ["failed"]}]})
    connected.advance(600)

    # --8<-- [start:howto_hook_runloop_async]
    from airflow_provider_runloop.hooks.runloop import RunloopHook

    hook = RunloopHook()  # runloop_default
    try:
        run = await hook.aget_benchmark_run(run_id)
        failed = [r.id async for r in hook.alist_scenario_runs(run.id, state="failed")]
    finally:
        await hook.aclose()
    # --8<-- [end:howto_hook_runloop_async]

    assert len(failed) == 1


def test_sensor_mode_examples() -> None:
    from airflow.sdk import DAG

    with DAG("docs_sensor_modes", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
        # --8<-- [start:howto_sensor_runloop_reschedule]
        from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

        wait = RunloopBenchmarkRunSensor(
            task_id="wait_for_nightly_run",
            benchmark_run_id="{{ ti.xcom_pull(task_ids='start_run')['id'] }}",
            mode="reschedule",  # the worker slot is free between pokes
            poke_interval=300,
            timeout=8 * 60 * 60,
            expected_scenario_count=500,  # the run's scenarios, if it has no benchmark to read them from
            accept_scored=True,  # a final score is enough; don't wait for each devbox to close
            retries=2,  # failed polls have their own budget, kept across pokes; retries cover the rest
        )
        # --8<-- [end:howto_sensor_runloop_reschedule]

        # --8<-- [start:howto_sensor_runloop_poke]
        quick_wait = RunloopBenchmarkRunSensor(
            task_id="wait_for_smoke_run",
            benchmark_run_id="{{ params.benchmark_run_id }}",
            poke_interval=10,  # poke mode: holds a worker slot, fine for runs of a few minutes
            timeout=15 * 60,
            max_consecutive_poll_failures=3,
        )
        # --8<-- [end:howto_sensor_runloop_poke]

    assert wait.mode == "reschedule"
    assert wait.expected_scenario_count == 500
    assert wait.accept_scored is True
    assert quick_wait.mode == "poke"
    assert quick_wait.deferrable is False
    assert quick_wait.max_consecutive_poll_failures == 3


# --8<-- [start:howto_emulator_pytest_fixture]
def test_my_dag_waits_for_the_benchmark(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", runloop_emulator.airflow_conn_json)
    run_id = runloop_emulator.start_scripted_run(script={"scenario_count": 5})
    runloop_emulator.advance(120)  # all five scenario runs are done now
    assert runloop_emulator.benchmark_run_state(run_id) == "completed"


# --8<-- [end:howto_emulator_pytest_fixture]


async def test_in_process_emulator_example() -> None:
    # --8<-- [start:howto_emulator_in_process]
    import httpx

    from airflow_provider_runloop.testing import ManualClock, RunloopEmulator

    emulator = RunloopEmulator(clock=ManualClock())
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emulator.app),
        base_url="http://emulator",
        headers=emulator.auth_headers,
    )
    # --8<-- [end:howto_emulator_in_process]
    async with client:
        run_id = emulator.start_scripted_run()
        response = await client.get(f"/v1/benchmark_runs/{run_id}")
    assert response.status_code == 200
    assert response.json()["state"] == "running"


def test_emulator_quickstart() -> None:
    # --8<-- [start:howto_emulator_quickstart]
    import httpx

    from airflow_provider_runloop.testing import ManualClock, RunloopEmulator

    script = {
        "scenario_count": 4,
        "timing": {"start_interval": 10, "duration": 30, "scoring": 5, "complete": 1},
        "scenarios": [{"attempts": ["failed", "completed"]}, {"outcome": "setup_failed"}],
    }
    with (
        RunloopEmulator(clock=ManualClock(), seed=1) as emulator,
        httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as api,
    ):
        run_id = emulator.start_scripted_run(script=script)

        # One poll of a sensor: the run, plus a state-filtered count (limit=1, total_count).
        emulator.advance(25)
        active = api.get(
            f"/v1/benchmark_runs/{run_id}/scenario_runs", params={"state": "running", "limit": 1}
        )
        assert active.json()["total_count"] == 2  # scenarios 0 and 2 run; 1 failed setup; 3 starts at 30 s

        # Rate limiting on the next request, then everything finishes.
        emulator.add_fault("status", status=429, retry_after=1, times=1)
        assert api.get(f"/v1/benchmark_runs/{run_id}").status_code == 429
        emulator.advance(120)
        run = api.get(f"/v1/benchmark_runs/{run_id}").json()
        assert run["state"] == "completed"

        # Every page of the final listing, 2 at a time.
        runs: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"starting_after": cursor} if cursor else {})}
            page = api.get(f"/v1/benchmark_runs/{run_id}/scenario_runs", params=params).json()
            runs += page["runs"]
            if not page["has_more"]:
                break
            cursor = page["runs"][-1]["id"]
        assert sorted(r["state"] for r in runs) == ["completed", "completed", "completed", "failed"]
        assert [e.status for e in emulator.requests(path="/v1/benchmark_runs/*")][:3] == [200, 429, 200]
    # --8<-- [end:howto_emulator_quickstart]


def test_emulator_http2_prior_knowledge() -> None:
    # --8<-- [start:howto_emulator_http2]
    import httpx

    from airflow_provider_runloop.testing import ManualClock, RunloopEmulator

    with (
        RunloopEmulator(clock=ManualClock()) as emulator,
        # HTTP/2 with prior knowledge on http://: no HTTP/1.1 at all, no Upgrade; needs h2 installed.
        httpx.Client(
            base_url=emulator.base_url, headers=emulator.auth_headers, http1=False, http2=True
        ) as api,
    ):
        run_id = emulator.start_scripted_run()
        response = api.get(f"/v1/benchmark_runs/{run_id}")
        assert response.http_version == "HTTP/2"
    # --8<-- [end:howto_emulator_http2]
    assert response.json()["id"] == run_id


@pytest.mark.parametrize("results_format", ["jsonl", "json", "csv", "parquet"])
def test_reading_exported_results_back(
    connected: RunloopEmulator, tmp_path: Any, results_format: str
) -> None:
    from airflow_provider_runloop.hooks.runloop import RunloopHook
    from airflow_provider_runloop.results import RecordSchema, open_writer

    run_id = connected.start_scripted_run(script=THREE_SCENARIOS)
    connected.advance(600)
    target = tmp_path / f"results.{results_format}"
    schema = RecordSchema()
    hook = RunloopHook()
    with target.open("wb") as out:
        writer = open_writer(results_format, out, schema)
        for scenario_run in hook.list_scenario_runs(run_id):
            writer.write(schema.record(scenario_run))
        writer.finish()
    hook.close()
    exported: dict[str, Any] = {
        "destination": f"file://{target}",
        "storage_conn_id": None,
        "format": results_format,
    }

    # --8<-- [start:howto_operator_runloop_results_read_any_format]
    import csv
    import io
    import json

    import pyarrow.parquet as pq
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(exported["destination"], conn_id=exported["storage_conn_id"])
    with path.open("rb") as file:
        if exported["format"] == "jsonl":
            records = [json.loads(line) for line in file]
        elif exported["format"] == "json":
            records = json.load(file)
        elif exported["format"] == "csv":
            with io.TextIOWrapper(file, "utf-8", newline="") as text:
                records = list(csv.DictReader(text))
        else:
            records = pq.read_table(file).to_pylist()
    # --8<-- [end:howto_operator_runloop_results_read_any_format]

    assert len(records) == 3
    assert {record["benchmark_run_id"] for record in records} == {run_id}
