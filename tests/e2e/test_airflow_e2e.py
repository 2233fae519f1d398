"""End to end on real Airflow components: the REST API, the scheduler, a LocalExecutor worker, the DAG
processor and the triggerer run ``example_runloop_wait_and_export`` against the emulator.

Waits are bounded loops on observable state (a task's state, a log line), never clock readings.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil
from support.airflow_stack import AirflowStack, poll_until
from support.canary import CANARY_API_KEY, scan_paths

from airflow_provider_runloop.testing import RunloopEmulator

DAG_ID = "example_runloop_wait_and_export"
TASKS = ("wait_for_run", "export_results", "report")
TRIGGER_CLASS = "RunloopBenchmarkRunTrigger"
# Scenario plans, in emulated seconds (the emulator runs EMULATOR_SPEED times faster than real time).
QUICK = {"start_interval": 0.5, "duration": [2, 6], "scoring": 1, "complete": 0.5}
# One scenario stops at `scored` until the test completes it: the wait cannot end before the test says so.
HELD_OPEN = {"seed": 4, "scenario_count": 6, "timing": QUICK, "scenarios": [{"outcome": "stays_scored"}]}
FAILING = {
    "seed": 5,
    "scenario_count": 8,
    "timing": QUICK,
    "scenarios": [{"attempts": ["failed"]}, {}, {"attempts": ["timeout"]}, {}, {"attempts": ["failed"]}],
}
PASSING = {"seed": 6, "scenario_count": 5, "timing": QUICK, "outcomes": {"completed": 1.0}}
FINAL_RUN_STATES = {"success", "failed"}
# Bounded waits: 0.5 s apart, so 360 tries is three minutes at most.
RUN_ATTEMPTS = 360


# --- REST API helpers -------------------------------------------------------------------------------


def _dag_ready(api: httpx.Client, dag_id: str = DAG_ID) -> None:
    """Wait until the DAG processor has parsed the DAG, then unpause it."""
    poll_until(
        f"{dag_id} to be parsed", lambda: api.get(f"/dags/{dag_id}").status_code == 200 or None, attempts=240
    )
    response = api.patch(f"/dags/{dag_id}", json={"is_paused": False})
    assert response.status_code == 200, response.text


def _trigger(api: httpx.Client, conf: dict[str, Any], dag_id: str = DAG_ID) -> str:
    _dag_ready(api, dag_id)
    response = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    return str(response.json()["dag_run_id"])


def _task_states(api: httpx.Client, run_id: str, dag_id: str = DAG_ID) -> dict[str, str | None]:
    response = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    assert response.status_code == 200, response.text
    return {ti["task_id"]: ti["state"] for ti in response.json()["task_instances"]}


def _wait_for_run(api: httpx.Client, run_id: str, dag_id: str = DAG_ID) -> str:
    def final_state() -> str | None:
        state = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state if state in FINAL_RUN_STATES else None

    return poll_until(f"DAG run {run_id} of {dag_id} to finish", final_state, attempts=RUN_ATTEMPTS)


def _task_log(
    api: httpx.Client,
    run_id: str,
    task_id: str,
    try_number: int = 1,
    dag_id: str = DAG_ID,
    *,
    whole: bool = False,
) -> str:
    """A task's log through the REST API: each entry's message, or with ``whole`` every field of every
    entry as JSON (an error's detail included)."""
    response = api.get(
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    if whole:
        return json.dumps(response.json())
    content = response.json()["content"]
    return "\n".join(
        str(entry.get("event", entry)) if isinstance(entry, dict) else str(entry) for entry in content
    )


def _trigger_log_entries(
    stack: AirflowStack, run_id: str, progress: re.Pattern[str]
) -> list[dict[str, Any]] | None:
    """The JSON entries of the task's trigger log (written by the triggerer) once our trigger's progress
    line is among them."""
    folder = stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=wait_for_run"
    entries = [
        json.loads(line)
        for path in sorted(folder.glob("attempt=1.log.trigger.*.log"))
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]
    ours = [
        e
        for e in entries
        if str(e.get("logger", "")).endswith(TRIGGER_CLASS) and progress.match(str(e.get("event")))
    ]
    return entries if ours else None


def _conf(run_id: str, results_url: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"benchmark_run_id": run_id}
    if results_url is not None:
        conf["results_url"] = results_url
    return conf


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def _check_records(records: list[dict[str, Any]], emulator: RunloopEmulator, benchmark_run_id: str) -> None:
    expected = emulator.scenario_run_states(benchmark_run_id)
    assert {r["scenario_run_id"]: r["state"] for r in records} == expected
    assert {r["benchmark_run_id"] for r in records} == {benchmark_run_id}
    assert all(r["score"] is not None for r in records if r["state"] == "completed")


# --- tests ------------------------------------------------------------------------------------------


def test_every_component_listens_on_loopback_only(airflow_stack: AirflowStack) -> None:
    listening = []
    for name, process in airflow_stack.processes.items():
        leader = psutil.Process(process.pid)
        for member in [leader, *leader.children(recursive=True)]:
            for conn in member.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.append((name, conn.laddr.ip, conn.laddr.port))
    assert listening, "the API server should be listening"
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening
    assert {port for _, _, port in listening} == {airflow_stack.port}, listening


def test_the_example_dags_parse_without_import_errors(api: httpx.Client) -> None:
    examples = Path(__file__).resolve().parents[2] / "example_dags"
    expected = {
        dag_id for path in examples.glob("*.py") for dag_id in re.findall(r'dag_id="(\w+)"', path.read_text())
    }
    assert DAG_ID in expected

    def all_parsed() -> set[str] | None:
        dags = {dag["dag_id"] for dag in api.get("/dags", params={"limit": 100}).json()["dags"]}
        return dags if expected <= dags else None

    assert poll_until("every example DAG to be parsed", all_parsed, attempts=240) == expected
    errors = api.get("/importErrors").json()
    assert errors["total_entries"] == 0, errors


def test_runloop_connection_created_and_tested_through_the_rest_api(
    api: httpx.Client, runloop_connection: dict[str, Any], emulator: RunloopEmulator
) -> None:
    stored = api.get("/connections/runloop_default").json()
    assert stored["conn_type"] == "runloop"
    assert stored["host"] == emulator.base_url
    assert stored["password"] != emulator.api_key  # the API masks it

    requests_before = len(emulator.requests())
    response = api.post(
        "/connections/test", json={"connection_id": "runloop_default", "conn_type": "runloop"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": True,
        "message": f"Connected to the Runloop API at {emulator.base_url}.",
    }
    # The API server's test really reached the emulator, with the stored key.
    assert len(emulator.requests()) > requests_before


def test_wait_defers_to_the_triggerer_then_exports(
    api: httpx.Client,
    airflow_stack: AirflowStack,
    runloop_connection: dict[str, Any],
    emulator: RunloopEmulator,
    results_dir: Path,
) -> None:
    benchmark_run_id = emulator.start_scripted_run(script=HELD_OPEN)
    run_id = _trigger(api, _conf(benchmark_run_id))

    # The sensor defers while a scenario is held at `scored`...
    poll_until(
        "the sensor to defer",
        lambda: True if _task_states(api, run_id).get("wait_for_run") == "deferred" else None,
        attempts=RUN_ATTEMPTS,
    )
    # ...and the triggerer, not a worker, runs our trigger: the triggerer writes the task's trigger log
    # (its own file beside the task's), which shows the trigger starting and its progress lines.
    # While runs are active the expected count is not fetched yet: the line shows "?" until it matters.
    # Each line says how long the run has been going.
    progress = re.compile(
        rf"^{benchmark_run_id}: \d+/(6|\?) scenarios finished \(.*scored 1\) \(running for [^)]+\)$"
    )
    entries = poll_until(
        "the trigger's progress in the triggerer's log",
        lambda: _trigger_log_entries(airflow_stack, run_id, progress),
        attempts=240,
    )
    assert any(
        e.get("filename") == "triggerer_job_runner.py" and str(e.get("event")).endswith("starting")
        for e in entries
    ), entries[:5]
    assert re.search(progress.pattern, _task_log(api, run_id, "wait_for_run"), re.M)
    assert _task_states(api, run_id)["wait_for_run"] == "deferred"

    held = poll_until(
        "the held scenario to be scored",
        lambda: next(
            (i for i, s in emulator.scenario_run_states(benchmark_run_id).items() if s == "scored"), None
        ),
        attempts=RUN_ATTEMPTS,
    )
    emulator.force_scenario_run_state(held, "completed")

    assert _wait_for_run(api, run_id) == "success", _task_states(api, run_id)
    assert _task_states(api, run_id) == dict.fromkeys(TASKS, "success")
    records = _records((results_dir / f"{benchmark_run_id}.jsonl").read_bytes())
    assert len(records) == 6
    _check_records(records, emulator, benchmark_run_id)
    log = _task_log(api, run_id, "wait_for_run")
    assert "6/6 scenarios finished (completed 6)" in log
    # The trigger and the sensor only ever read.
    assert {r.method for r in emulator.requests(path=f"/v1/benchmark_runs/{benchmark_run_id}*")} == {"GET"}


def test_failed_scenarios_fail_the_wait_and_are_named(
    api: httpx.Client, runloop_connection: dict[str, Any], emulator: RunloopEmulator, results_dir: Path
) -> None:
    benchmark_run_id = emulator.start_scripted_run(script=FAILING)
    run_id = _trigger(api, _conf(benchmark_run_id))

    assert _wait_for_run(api, run_id) == "failed"
    assert _task_states(api, run_id) == {
        "wait_for_run": "failed",
        "export_results": "upstream_failed",
        "report": "upstream_failed",
    }
    states = emulator.scenario_run_states(benchmark_run_id)
    failed_ids = sorted(i for i, s in states.items() if s in ("failed", "timeout"))
    assert Counter(states.values()) == {"completed": 5, "failed": 2, "timeout": 1}
    log = _task_log(api, run_id, "wait_for_run")
    assert "3 scenarios did not complete" in log
    for scenario_run_id in failed_ids:
        assert scenario_run_id in log
    assert not (results_dir / f"{benchmark_run_id}.jsonl").exists()


def test_wait_and_export_to_s3(
    api: httpx.Client, runloop_connection: dict[str, Any], emulator: RunloopEmulator, s3_endpoint: str
) -> None:
    bucket = "runloop-e2e"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    aws = {
        "connection_id": "e2e_s3",
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": json.dumps({"endpoint_url": s3_endpoint, "region_name": "us-east-1"}),
    }
    assert api.post("/connections", json=aws).status_code == 201

    benchmark_run_id = emulator.start_scripted_run(script=PASSING)
    run_id = _trigger(api, _conf(benchmark_run_id, results_url=f"s3://e2e_s3@{bucket}/runloop/"))

    assert _wait_for_run(api, run_id) == "success", _task_states(api, run_id)
    key = f"runloop/{benchmark_run_id}.jsonl"
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    records = _records(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert len(records) == 5
    _check_records(records, emulator, benchmark_run_id)
    # The report task read the file back from S3.
    assert "5 scenarios (5 scenario runs) in s3://" in _task_log(api, run_id, "report")


def test_new_results_trigger_the_asset_scheduled_dag(
    api: httpx.Client, runloop_connection: dict[str, Any], emulator: RunloopEmulator, results_dir: Path
) -> None:
    producer, consumer = "example_runloop_results_asset_producer", "example_runloop_results_asset_consumer"
    _dag_ready(api, consumer)
    assert api.get(f"/dags/{consumer}/dagRuns").json()["total_entries"] == 0

    benchmark_run_id = emulator.start_scripted_run(script=PASSING)
    run_id = _trigger(api, _conf(benchmark_run_id), dag_id=producer)
    assert _wait_for_run(api, run_id, dag_id=producer) == "success", _task_states(api, run_id, producer)
    _check_records(_records((results_dir / "latest.jsonl").read_bytes()), emulator, benchmark_run_id)

    # The export's asset event makes the scheduler start the consumer: no trigger from the test.
    consumer_run = poll_until(
        "the asset-triggered DAG run",
        lambda: next(iter(api.get(f"/dags/{consumer}/dagRuns").json()["dag_runs"]), None),
        attempts=RUN_ATTEMPTS,
    )
    assert consumer_run["run_type"] == "asset_triggered"
    assert _wait_for_run(api, consumer_run["dag_run_id"], dag_id=consumer) == "success"
    xcom = api.get(
        f"/dags/{consumer}/dagRuns/{consumer_run['dag_run_id']}/taskInstances/summarize_latest/xcomEntries/return_value"
    )
    assert xcom.status_code == 200, xcom.text
    # The consumer read the export from the asset event's extra alone: Runloop's score as its API says.
    with httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as runloop:
        response = runloop.get(f"/v1/benchmark_runs/{benchmark_run_id}")
        response.raise_for_status()
        runloop_score = response.json()["score"]
    assert isinstance(runloop_score, float)
    expected = {
        "benchmark_run_id": benchmark_run_id,
        "record_count": 5,
        "format": "jsonl",
        "runloop_score": runloop_score,
        "failed_scenario_count": 0,
    }
    assert xcom.json()["value"] == expected
    # The event itself, as the REST API stores it: strict JSON with the same values.
    events = api.get("/assets/events", params={"source_dag_id": producer, "source_run_id": run_id})
    assert events.status_code == 200, events.text
    (event,) = events.json()["asset_events"]
    assert event["extra"] == expected
    assert event["uri"] == f"file://{results_dir}/latest.jsonl"
    log = _task_log(api, consumer_run["dag_run_id"], "summarize_latest", dag_id=consumer)
    assert f"new results from {producer} / {run_id}: 5 records of {benchmark_run_id} as jsonl" in log


NIGHTLY = "example_runloop_nightly_gate"
NIGHTLY_SCRIPT = {
    "seed": 3,
    "scenario_count": 4,
    "timing": QUICK,
    "scores": [0.8, 1.0],
    "scenarios": [{"name": "fix-the-parser"}],
    # The planted regression: agent-v2 scores lower and fails the first scenario.
    "agents": {
        "agent-v2": {"scores": [0.3, 0.5], "scenarios": [{"name": "fix-the-parser", "outcome": "failed"}]}
    },
}


def _set_variable(api: httpx.Client, key: str, value: str) -> None:
    response = api.patch(f"/variables/{key}", json={"key": key, "value": value})
    if response.status_code == 404:
        response = api.post("/variables", json={"key": key, "value": value})
    assert response.status_code in (200, 201), response.text


def test_the_nightly_gate_fails_on_a_planted_regression_and_passes_without_it(
    api: httpx.Client, runloop_connection: dict[str, Any], emulator: RunloopEmulator
) -> None:
    benchmark = emulator.seed_benchmark(NIGHTLY_SCRIPT)
    _set_variable(api, "runloop_nightly_benchmark_id", benchmark.benchmark_id)
    _set_variable(api, "runloop_nightly_agent", "agent-v1")
    # Night 1 is the scheduler's own: unpausing the @daily DAG makes it run the last night (no catchup).
    _dag_ready(api, NIGHTLY)
    first = poll_until(
        "the scheduled night",
        lambda: next(iter(api.get(f"/dags/{NIGHTLY}/dagRuns").json()["dag_runs"]), None),
        attempts=RUN_ATTEMPTS,
    )
    assert first["run_type"] == "scheduled"
    assert _wait_for_run(api, first["dag_run_id"], NIGHTLY) == "success"

    def gate_xcom(run_id: str) -> Any:
        response = api.get(f"/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/gate/xcomEntries/return_value")
        assert response.status_code == 200, response.text
        return response.json()["value"]

    baseline = gate_xcom(first["dag_run_id"])
    assert (baseline["passed"], baseline["baseline_benchmark_run_id"]) == (True, None)

    def night(agent: str, hours_later: int) -> str:
        # Later than night 1 and in the past: the previous XCom is chosen by logical date.
        logical_date = datetime.fromisoformat(first["logical_date"]) + timedelta(hours=hours_later)
        _set_variable(api, "runloop_nightly_agent", agent)
        response = api.post(
            f"/dags/{NIGHTLY}/dagRuns", json={"logical_date": logical_date.isoformat(), "conf": {}}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["dag_run_id"])

    # Night 2, the worse agent: the gate fails, naming the metrics and the scenario that regressed.
    second = night("agent-v2", 6)
    assert _wait_for_run(api, second, NIGHTLY) == "failed"
    assert _task_states(api, second, NIGHTLY) == {
        "run_benchmark": "success",
        "export_results": "success",
        "gate": "failed",
    }
    log = _task_log(api, second, "gate", dag_id=NIGHTLY, whole=True)
    assert f"against baseline {baseline['benchmark_run_id']} (previous_xcom): runloop_score" in log
    assert "(fix-the-parser)" in log

    # Night 3, the first agent again: compared with night 1, the last night whose gate passed.
    third = night("agent-v1", 12)
    assert _wait_for_run(api, third, NIGHTLY) == "success"
    outcome = gate_xcom(third)
    assert outcome["baseline_benchmark_run_id"] == baseline["benchmark_run_id"]
    assert {row["verdict"] for row in outcome["rows"]} == {"pass"}


WATCH_DAG = "example_runloop_on_finished_run"
WATCH_ASSET = "runloop_finished_benchmark_runs"
WATCH_METADATA = {"e2e": "event-driven"}  # conftest.py tells the example DAG to watch these
WATCH_SCRIPT = {"seed": 7, "scenario_count": 2, "outcomes": {"completed": 1.0}}


def _watch_dag_runs(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get(f"/dags/{WATCH_DAG}/dagRuns", params={"limit": 100})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["dag_runs"]
    return runs


def _watch_watermark(api: httpx.Client) -> dict[str, Any] | None:
    assets = api.get("/assets", params={"name_pattern": WATCH_ASSET}).json()["assets"]
    if not assets:
        return None
    entries = api.get(f"/assets/{assets[0]['id']}/state-store").json()
    found = entries.get("asset_state_store") or []
    return found[0]["value"] if found else None


def _watch_events(api: httpx.Client, run: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.get(f"/dags/{WATCH_DAG}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
    assert response.status_code == 200, response.text
    return [event["extra"]["payload"] for event in response.json()["asset_events"]]


def _finished_watch_dag_runs(api: httpx.Client, count: int) -> list[dict[str, Any]]:
    def finished() -> list[dict[str, Any]] | None:
        runs = _watch_dag_runs(api)
        done = len(runs) >= count and all(run["state"] in ("success", "failed") for run in runs)
        return runs if done else None

    return poll_until(f"{count} finished DAG runs of {WATCH_DAG}", finished, attempts=180)


def test_one_dag_run_per_finished_benchmark_run(
    api: httpx.Client, runloop_connection: dict[str, Any], emulator: RunloopEmulator
) -> None:
    # The asset watcher of example_runloop_on_finished_run runs in the triggerer while its DAG is unpaused.
    # Its first poll stores its watermark: from then on, it sees every run that finishes. Runs that
    # finish a moment apart may share a DAG run (docs/event-driven.md): these finish one after another.
    _dag_ready(api, WATCH_DAG)
    poll_until("the watcher's first watermark", lambda: _watch_watermark(api), attempts=240)
    assert _watch_dag_runs(api) == []

    benchmark = emulator.seed_benchmark(WATCH_SCRIPT).benchmark_id
    first = emulator.start_scripted_run(benchmark, metadata=WATCH_METADATA, auto_complete=False, name="first")
    second = emulator.start_scripted_run(benchmark, metadata=WATCH_METADATA, auto_complete=False)
    unwatched = emulator.start_scripted_run(benchmark, metadata={"e2e": "other"}, auto_complete=False)

    def watching() -> bool | None:
        return {first, second} <= set((_watch_watermark(api) or {}).get("running", {})) or None

    poll_until("the watcher to watch both runs", watching, attempts=60)
    emulator.force_benchmark_run_state(first, "completed")
    emulator.force_benchmark_run_state(unwatched, "completed")
    assert len(_finished_watch_dag_runs(api, 1)) == 1
    emulator.force_benchmark_run_state(second, "failed")
    runs = _finished_watch_dag_runs(api, 2)

    assert [run["state"] for run in runs] == ["success", "success"], runs
    payloads = sorted((_watch_events(api, run) for run in runs), key=lambda events: events[0]["name"] is None)
    assert [[(p["benchmark_run_id"], p["state"]) for p in events] for events in payloads] == [
        [(first, "completed")],
        [(second, "failed")],
    ]
    assert payloads[0][0]["name"] == "first"

    def both_seen() -> dict[str, Any] | None:
        mark = _watch_watermark(api)
        return mark if mark is not None and not {first, second} & set(mark["running"]) else None

    watermark = poll_until("the watermark to record both runs as seen", both_seen, attempts=60)
    assert unwatched not in watermark["running"]
    poll_until(
        "a few more polls", lambda: len(emulator.requests(path="/v1/benchmark_runs")) > 3 or None, attempts=20
    )
    emulator.clear_requests()
    poll_until(
        "a few more polls",
        lambda: len(emulator.requests(path="/v1/benchmark_runs")) >= 3 or None,
        attempts=20,
    )
    assert len(_watch_dag_runs(api)) == 2  # no event repeated


def test_a_server_echoing_the_key_leaves_it_in_no_log_event_or_database(
    api: httpx.Client,
    airflow_stack: AirflowStack,
    runloop_connection: dict[str, Any],
    emulator: RunloopEmulator,
) -> None:
    assert runloop_connection["password"] == emulator.api_key == CANARY_API_KEY
    benchmark_run_id = emulator.start_scripted_run(script=HELD_OPEN)
    run_id = _trigger(api, _conf(benchmark_run_id))
    poll_until(
        "the sensor to defer",
        lambda: True if _task_states(api, run_id).get("wait_for_run") == "deferred" else None,
        attempts=RUN_ATTEMPTS,
    )
    # In the triggerer now: one poll gets 503s that quote the key (retried, then a failed poll), the
    # next a 401 that quotes it (the trigger's error event, stored until the task resumes and fails).
    path = f"/v1/benchmark_runs/{benchmark_run_id}*"
    retried = emulator.add_fault("echo_authorization", status=503, path=path, times=3)
    refused = emulator.add_fault("echo_authorization", status=401, path=path)
    try:
        assert _wait_for_run(api, run_id) == "failed"
    finally:
        emulator.clear_faults()
    assert (retried.fired, refused.fired) == (3, 1)
    assert _task_states(api, run_id) == {
        "wait_for_run": "failed",
        "export_results": "upstream_failed",
        "report": "upstream_failed",
    }
    log = _task_log(api, run_id, "wait_for_run", whole=True)
    assert "returned 401" in log
    assert "Authorization: ***" in log
    folder = airflow_stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=wait_for_run"
    trigger_log = "".join(path.read_text() for path in folder.glob("*.log.trigger.*.log"))
    assert "Poll 1 in a row failed" in trigger_log
    assert CANARY_API_KEY not in log + trigger_log
    # Every log of every component, the task logs and the metadata DB (its dump, too).
    scan = scan_paths([airflow_stack.home])
    assert scan.databases >= 1
    assert not scan.hits, scan.describe()
