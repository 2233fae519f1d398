"""Schedule a DAG on new benchmark results: the export declares its file as an asset, a consumer runs on it.

The producer waits for a benchmark run (the param ``benchmark_run_id``) and exports its results to one
fixed file, ``{RUNLOOP_RESULTS_URL}/latest.jsonl``. Because that destination is known when the file is
parsed (it is not templated), ``RunloopBenchmarkResultsOperator`` declares it as an ``Asset`` outlet, and
each successful export is an asset event. The consumer is scheduled on that asset: it runs after every
export and reports it from the event's ``extra`` (the benchmark run, the record count, the format,
Runloop's score and the failed scenarios), without opening the file. The end-to-end tests run both on a
real scheduler.

Environment, read when the file is parsed: ``RUNLOOP_RESULTS_URL`` (a ``file://`` or ``s3://`` folder
URL, default ``file:///tmp/runloop-results``; ``s3://aws_conn@bucket/prefix`` names the AWS connection)
and ``RUNLOOP_POLL_SECONDS`` (default 60). A ``file://`` asset works only where every worker sees the
same disk.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

RESULTS_URL = os.environ.get("RUNLOOP_RESULTS_URL", "file:///tmp/runloop-results").rstrip("/")
POLL_SECONDS = float(os.environ.get("RUNLOOP_POLL_SECONDS", "60"))
# --8<-- [start:howto_runloop_results_asset_producer]
LATEST_RESULTS = f"{RESULTS_URL}/latest.jsonl"  # may name a connection: s3://aws_conn@bucket/...
# The asset is the data, not how it is reached: its URI leaves the connection out, as the operator does.
LATEST_RESULTS_ASSET = Asset(uri=re.sub(r"^(\w+://)[^@/]*@", r"\1", LATEST_RESULTS))

with DAG(
    dag_id="example_runloop_results_asset_producer",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    # Required (no default): the trigger form asks for the run; a trigger without it is refused.
    params={"benchmark_run_id": Param(type="string", pattern=r"^[A-Za-z0-9_-]+$")},
    tags=["example", "runloop"],
) as producer_dag:
    wait = RunloopBenchmarkRunSensor(
        task_id="wait_for_run",
        benchmark_run_id="{{ params.benchmark_run_id }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        fail_on_scenario_failure=False,  # failed scenarios are results too
    )
    export = RunloopBenchmarkResultsOperator(
        task_id="export_latest",
        benchmark_run_id="{{ params.benchmark_run_id }}",
        destination=LATEST_RESULTS,  # not templated: declared as an Asset outlet
    )
    wait >> export
# --8<-- [end:howto_runloop_results_asset_producer]

# --8<-- [start:howto_runloop_results_asset_consumer]
# What each export's asset event carries in its extra (see docs/results.md).
EVENT_KEYS = ("benchmark_run_id", "record_count", "format", "runloop_score", "failed_scenario_count")

with DAG(
    dag_id="example_runloop_results_asset_consumer",
    schedule=[LATEST_RESULTS_ASSET],  # runs after each successful export
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "runloop"],
) as consumer_dag:

    @task
    def summarize_latest(triggering_asset_events: Any = None) -> dict[str, Any]:
        """Report the latest export from its asset event's extra: no need to open the file."""
        events = triggering_asset_events[LATEST_RESULTS_ASSET]  # one or more exports since the last run
        for event in events:
            extra = event.extra  # set by the export: strict JSON
            print(
                f"new results from {event.source_dag_id} / {event.source_run_id}: "
                f"{extra['record_count']} records of {extra['benchmark_run_id']} as {extra['format']}, "
                f"Runloop score {extra['runloop_score']}, {extra['failed_scenario_count']} failed scenarios"
            )
        latest = max(events, key=lambda event: event.timestamp).extra
        return {key: latest[key] for key in EVENT_KEYS}

    summarize_latest()
# --8<-- [end:howto_runloop_results_asset_consumer]
