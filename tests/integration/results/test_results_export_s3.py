"""RunloopBenchmarkResultsOperator writing to s3:// on an S3-compatible server (moto) on 127.0.0.1.

Through ObjectStoragePath and an Airflow AWS connection (``AIRFLOW_CONN_RESULTS_S3``) whose
``endpoint_url`` points at the server the session started; the emulator serves the benchmark run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk import Asset, ObjectStoragePath

from airflow_provider_runloop.exceptions import RunloopServerError
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator

# Fixture types (defined in conftest.py, which test modules do not import).
FinishedRun = Any
S3Server = Any
TaskInstanceStub = Any


@pytest.fixture
def bucket(s3_connection: S3Server) -> str:
    name = f"results-{uuid.uuid4().hex[:12]}"
    s3_connection.client().create_bucket(Bucket=name)
    return name


def _keys(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _object(server: S3Server, bucket: str, key: str) -> bytes:
    body: bytes = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_every_format_to_s3_field_by_field(
    finished_run: FinishedRun,
    s3_connection: S3Server,
    bucket: str,
    check_export: Callable[[str, bytes, FinishedRun], None],
    task_instance: TaskInstanceStub,
    fmt: str,
) -> None:
    key = f"runloop/{finished_run.benchmark_run_id}.{fmt}"
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=finished_run.benchmark_run_id,
        destination=f"s3://{bucket}/{key}",
        storage_conn_id=s3_connection.conn_id,
        format=fmt,
    )
    assert operator.outlets == [Asset(uri=f"s3://{bucket}/{key}")]
    result = operator.execute({"ti": task_instance})

    assert result["destination"] == f"s3://{bucket}/{key}"
    assert result["storage_conn_id"] == s3_connection.conn_id
    assert len(json.dumps(result)) < 8_000
    assert _keys(s3_connection, bucket) == [key]  # no temporary object left
    # Read back the way a downstream task would: through ObjectStoragePath and the connection.
    path = ObjectStoragePath(result["destination"], conn_id=result["storage_conn_id"])
    with path.open("rb") as file:
        data = file.read()
    assert data == _object(s3_connection, bucket, key)
    check_export(fmt, data, finished_run)


def test_an_object_storage_path_destination_and_a_retry_overwrite_the_same_object(
    finished_run: FinishedRun, s3_connection: S3Server, bucket: str, task_instance: TaskInstanceStub
) -> None:
    destination = ObjectStoragePath(f"s3://{bucket}/latest/results.jsonl", conn_id=s3_connection.conn_id)

    def export() -> dict[str, Any]:
        operator = RunloopBenchmarkResultsOperator(
            task_id="export", benchmark_run_id=finished_run.benchmark_run_id, destination=destination
        )
        result: dict[str, Any] = operator.execute({"ti": task_instance})
        return result

    first = export()
    content = _object(s3_connection, bucket, "latest/results.jsonl")
    second = export()
    assert first == second
    assert _keys(s3_connection, bucket) == ["latest/results.jsonl"]
    assert _object(s3_connection, bucket, "latest/results.jsonl") == content


def test_a_failure_in_the_middle_leaves_no_object(
    finished_run: FinishedRun, s3_connection: S3Server, bucket: str, task_instance: TaskInstanceStub
) -> None:
    s3_connection.client().put_object(Bucket=bucket, Key="results.parquet", Body=b"previous export")
    finished_run.emulator.add_fault(
        "status", path="/v1/benchmark_runs/*/scenario_runs", skip=1, times=1, status=503, should_retry=False
    )
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=finished_run.benchmark_run_id,
        destination=f"s3://{bucket}/results.parquet",
        storage_conn_id=s3_connection.conn_id,
        format="parquet",
        page_size=2000,
    )
    with pytest.raises(RunloopServerError):
        operator.execute({"ti": task_instance})
    assert _keys(s3_connection, bucket) == ["results.parquet"]
    assert _object(s3_connection, bucket, "results.parquet") == b"previous export"
    assert "return_value" not in task_instance.xcom


def test_a_missing_bucket_fails_before_any_request(
    finished_run: FinishedRun, s3_connection: S3Server, task_instance: TaskInstanceStub
) -> None:
    finished_run.emulator.clear_requests()
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=finished_run.benchmark_run_id,
        destination="s3://no-such-bucket/results.jsonl",
        storage_conn_id=s3_connection.conn_id,
    )
    with pytest.raises(ValueError, match=r"Cannot write results to s3://no-such-bucket/results\.jsonl"):
        operator.execute({"ti": task_instance})
    assert finished_run.emulator.requests() == []


def test_a_stale_staged_object_left_by_a_killed_export_is_removed(
    finished_run: FinishedRun,
    s3_connection: S3Server,
    bucket: str,
    task_instance: TaskInstanceStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    from airflow_provider_runloop import storage

    # Objects cannot be back-dated: every staged object counts as stale here.
    monkeypatch.setattr(storage, "STALE_STAGING_AGE", timedelta(0))
    leftover = "runs/.results.jsonl.runloop-0123456789abcdef.partial"
    kept = ["runs/.other.jsonl.runloop-0123456789abcdef.partial", "runs/results.jsonl.bak"]
    for key in [leftover, *kept]:
        s3_connection.client().put_object(Bucket=bucket, Key=key, Body=b"half an export")
    RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=finished_run.benchmark_run_id,
        destination=f"s3://{bucket}/runs/results.jsonl",
        storage_conn_id=s3_connection.conn_id,
    ).execute({"ti": task_instance})
    assert _keys(s3_connection, bucket) == sorted(["runs/results.jsonl", *kept])
