"""Harvest a Runloop benchmark run's scored results: wait, export, use them downstream.

``docs/results.md`` shows the sections between the ``# --8<-- [start:...]`` / ``[end:...]`` markers;
the integration tests run the first DAG with ``dag.test()`` against the emulator, so the docs show
tested code.

Where results go is set with the ``RUNLOOP_RESULTS_URL`` environment variable (a ``file://`` or ``s3://``
folder URL; default ``file:///tmp/runloop-results``), so the DAG runs anywhere without edits.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task

from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

RESULTS_URL = os.environ.get("RUNLOOP_RESULTS_URL", "file:///tmp/runloop-results").rstrip("/")


def benchmark_run_param() -> Param:
    """Required (no default): the trigger form asks for the run, and a trigger without it is refused."""
    return Param(type="string", pattern=r"^[A-Za-z0-9_-]+$", description="The benchmark run (bmr_...).")


with DAG(
    dag_id="example_runloop_results",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"benchmark_run_id": benchmark_run_param()},
    tags=["example", "runloop"],
) as dag:
    # --8<-- [start:howto_operator_runloop_results_file]
    wait = RunloopBenchmarkRunSensor(
        task_id="wait_for_run",
        benchmark_run_id="{{ params.benchmark_run_id }}",
        fail_on_scenario_failure=False,  # failures are part of the results: export them too
        poke_interval=60,
    )

    export = RunloopBenchmarkResultsOperator(
        task_id="export_results",
        benchmark_run_id="{{ params.benchmark_run_id }}",
        destination=RESULTS_URL + "/{{ params.benchmark_run_id }}.jsonl",
    )
    # --8<-- [end:howto_operator_runloop_results_file]

    # --8<-- [start:howto_operator_runloop_results_read]
    @task
    def report(exported: dict[str, Any]) -> dict[str, Any]:
        """Read the exported file back: one JSON record per line."""
        path = ObjectStoragePath(exported["destination"], conn_id=exported["storage_conn_id"])
        by_state: dict[str, int] = {}
        with path.open("rb") as file:
            for line in file:
                record = json.loads(line)
                by_state[record["state"]] = by_state.get(record["state"], 0) + 1
        summary = exported["summary"]
        print(f"{exported['record_count']} records; mean score {summary['mean_score']}; {by_state}")
        return by_state

    wait >> export
    report(export.output)
    # --8<-- [end:howto_operator_runloop_results_read]


with DAG(
    dag_id="example_runloop_results_xcom",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"benchmark_run_id": benchmark_run_param()},
    tags=["example", "runloop"],
) as xcom_dag:
    # --8<-- [start:howto_operator_runloop_results_xcom]
    summary_only = RunloopBenchmarkResultsOperator(
        task_id="results_to_xcom",
        benchmark_run_id="{{ params.benchmark_run_id }}",
        include_scorer_output=False,  # keeps each record small
    )

    @task.branch
    def gate(exported: dict[str, Any]) -> str:
        """Branch on the summary: every scenario passed and the mean score is high enough."""
        summary = exported["summary"]
        good = summary["failed_scenario_count"] == 0 and (summary["mean_score"] or 0.0) >= 0.8
        return "promote" if good else "alert"

    @task
    def promote() -> None:
        print("promoting the agent")

    @task
    def alert(exported: dict[str, Any]) -> None:
        summary = exported["summary"]
        print(f"{summary['failed_scenario_count']} failed: {summary['failed_scenario_run_ids']}")

    gate(summary_only.output) >> [promote(), alert(summary_only.output)]
    # --8<-- [end:howto_operator_runloop_results_xcom]


# --8<-- [start:howto_operator_runloop_results_s3]
NIGHTLY_RESULTS = "s3://my-eval-bucket/runloop/nightly/latest.parquet"

with DAG(
    dag_id="example_runloop_results_s3",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"benchmark_run_id": benchmark_run_param()},
    tags=["example", "runloop"],
) as s3_dag:
    RunloopBenchmarkResultsOperator(
        task_id="export_to_s3",
        benchmark_run_id="{{ params.benchmark_run_id }}",
        destination=NIGHTLY_RESULTS,  # not templated: declared as an Asset outlet
        storage_conn_id="aws_default",
        format="parquet",
    )

# Runs whenever new nightly results land.
with DAG(
    dag_id="example_runloop_results_consumer",
    schedule=[Asset(uri=NIGHTLY_RESULTS)],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "runloop"],
) as consumer_dag:

    @task
    def load_into_warehouse() -> None:
        print(f"loading {NIGHTLY_RESULTS}")

    load_into_warehouse()
# --8<-- [end:howto_operator_runloop_results_s3]
