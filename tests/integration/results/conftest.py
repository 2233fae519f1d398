"""Fixtures of the results-export integration tests: a finished 10,000-run benchmark run on the emulator,
the emulator's own view of it (fetched raw over HTTP, not through the provider's client), readers for
every format, and an S3-compatible server (moto) started on a free loopback port for the session.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from support.moto_s3 import moto_s3_server

from airflow_provider_runloop.testing import RunloopEmulator

RUN_COUNT = 10_000
# 10,000 scenarios with every kind of ending, a retried scenario (two runs for one scenario) and one
# that fails during setup (no run at all): 10,000 scenario runs in all. Staggered starts give distinct
# start times.
BIG_SCRIPT: dict[str, Any] = {
    "seed": 42,
    "scenario_count": RUN_COUNT,
    "scoring_functions": ["tests_pass", {"name": "lint_clean", "weight": 0.25}],
    "outcomes": {"completed": 0.7, "failed": 0.1, "timeout": 0.1, "canceled": 0.1},
    "timing": {"start_interval": 0.01, "duration": [1, 5], "scoring": 1, "complete": 1},
    "scenarios": [{"attempts": ["failed", "completed"]}, {"outcome": "setup_failed"}],
}

Record = dict[str, Any]


@dataclass(frozen=True)
class FinishedRun:
    """A finished benchmark run on the emulator, and its scenario runs as the emulator serves them."""

    emulator: RunloopEmulator
    benchmark_run_id: str
    raw_runs: list[dict[str, Any]]


@pytest.fixture
def emulator_connection(
    runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch
) -> RunloopEmulator:
    """The emulator, with Airflow's ``runloop_default`` connection pointing at it."""
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", runloop_emulator.airflow_conn_json)
    return runloop_emulator


@pytest.fixture
def finished_run(emulator_connection: RunloopEmulator) -> FinishedRun:
    """10,000 scenario runs, all over, under a completed benchmark run."""
    emulator = emulator_connection
    benchmark = emulator.seed_benchmark(BIG_SCRIPT)
    run_id = emulator.start_scripted_run(benchmark.benchmark_id)
    emulator.advance(3600)
    assert emulator.benchmark_run_state(run_id) == "completed"
    raw = raw_scenario_runs(emulator, run_id)
    assert len(raw) == RUN_COUNT
    return FinishedRun(emulator, run_id, raw)


def raw_scenario_runs(emulator: RunloopEmulator, benchmark_run_id: str) -> list[dict[str, Any]]:
    """Every scenario run as the emulator's API serves it: plain JSON, paged by hand."""
    runs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 5000}
    with httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as http:
        while True:
            page = http.get(f"/v1/benchmark_runs/{benchmark_run_id}/scenario_runs", params=params)
            page.raise_for_status()
            body = page.json()
            runs.extend(body["runs"])
            if not body["runs"] or not body.get("has_more"):
                return runs
            params["starting_after"] = body["runs"][-1]["id"]


def _iso(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    instant = datetime.fromtimestamp(epoch_ms // 1000, tz=timezone.utc)
    return instant.replace(microsecond=(epoch_ms % 1000) * 1000).isoformat(timespec="milliseconds")


def expected_record(raw: dict[str, Any], *, output: bool = True, environment: bool = False) -> Record:
    """The record the docs promise for a scenario run, built from the API's JSON independently of
    ``results.RecordSchema``."""
    result = raw.get("scoring_contract_result")
    start_ms = raw.get("start_time_ms")
    duration_ms = raw.get("duration_ms")
    start_time = _iso(start_ms)
    end_time = _iso(start_ms + duration_ms) if start_ms is not None and duration_ms is not None else None
    functions = []
    for function in (result or {}).get("scoring_function_results", []):
        entry = {
            "name": function["scoring_function_name"],
            "score": function["score"],
            "state": function["state"],
        }
        if output:
            entry["output"] = function["output"]
        functions.append(entry)
    record: Record = {
        "benchmark_run_id": raw["benchmark_run_id"],
        "scenario_run_id": raw["id"],
        "scenario_id": raw["scenario_id"],
        "name": raw.get("name"),
        "state": raw["state"],
        "score": None if result is None else result["score"],
        "duration_ms": raw.get("duration_ms"),
        "start_time_ms": start_ms,
        "start_time": start_time,
        "end_time": end_time,
        "devbox_id": raw.get("devbox_id"),
        "metadata": raw.get("metadata") or {},
        "scoring_function_results": functions,
    }
    if environment:
        record["environment_variables"] = raw.get("environment_variables")
        record["secrets_provided"] = raw.get("secrets_provided")
    return record


_JSON_COLUMNS = {"metadata", "scoring_function_results", "environment_variables", "secrets_provided"}


def read_records(fmt: str, data: bytes) -> list[Record]:
    """Decode an exported file back into records (typed columns turned back into the JSON values)."""
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode("utf-8").split("\n") if line]
    if fmt == "json":
        loaded: list[Record] = json.loads(data)
        return loaded
    if fmt == "csv":
        rows = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
        return [{key: _csv_value(key, cell) for key, cell in row.items()} for row in rows]
    if fmt == "parquet":
        records = pq.read_table(io.BytesIO(data)).to_pylist()
        for record in records:
            for column in ("start_time", "end_time"):
                if record[column] is not None:
                    record[column] = record[column].isoformat(timespec="milliseconds")
            for key in _JSON_COLUMNS - {"scoring_function_results"}:
                if record.get(key) is not None:
                    record[key] = dict(record[key])
        return records
    raise AssertionError(f"unknown format {fmt}")


def _csv_value(key: str, cell: str) -> Any:
    if cell == "":
        return None
    if key == "score":
        return float(cell)
    if key in ("duration_ms", "start_time_ms"):
        return int(cell)
    if key in _JSON_COLUMNS:
        return json.loads(cell)
    return cell


@pytest.fixture
def check_export() -> Callable[[str, bytes, FinishedRun], None]:
    """Assert that an exported file holds exactly the emulator's scenario runs, field by field, in order."""

    def check(fmt: str, data: bytes, run: FinishedRun) -> None:
        records = read_records(fmt, data)
        expected = [expected_record(raw) for raw in run.raw_runs]
        assert len(records) == len(expected)
        for got, want in zip(records, expected, strict=True):
            assert got == want, f"record of {want['scenario_run_id']} differs"

    return check


@pytest.fixture
def read_export() -> Callable[[str, bytes], list[Record]]:
    """``read_export(format, data)``: the records of an exported file."""
    return read_records


@pytest.fixture
def list_raw_runs() -> Callable[[RunloopEmulator, str], list[dict[str, Any]]]:
    """``list_raw_runs(emulator, benchmark_run_id)``: the scenario runs as the emulator serves them."""
    return raw_scenario_runs


@pytest.fixture
def expected_records() -> Callable[..., list[Record]]:
    """``expected_records(raw_runs, output=True, environment=False)``: the records the docs promise."""

    def build(
        raw_runs: list[dict[str, Any]], *, output: bool = True, environment: bool = False
    ) -> list[Record]:
        return [expected_record(raw, output=output, environment=environment) for raw in raw_runs]

    return build


@pytest.fixture
def task_instance() -> TaskInstanceStub:
    return TaskInstanceStub()


@pytest.fixture
def new_task_instance() -> Callable[[], TaskInstanceStub]:
    return lambda: TaskInstanceStub()


class TaskInstanceStub:
    """Records what the operator pushes to XCom (the real thing is exercised under dag.test())."""

    dag_id = "results"
    task_id = "export"
    run_id = "manual__results"
    map_index = -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


# --- S3: a moto server on a free loopback port ----------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    conn_id: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server, started by this fixture on 127.0.0.1 and stopped by its PID."""
    with moto_s3_server() as endpoint:
        yield S3Server(endpoint_url=endpoint, conn_id="results_s3")


@pytest.fixture
def s3_connection(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """An Airflow AWS connection (``results_s3``) whose endpoint is the moto server."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{s3_server.conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
            }
        ),
    )
    return s3_server
