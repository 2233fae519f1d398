"""Wait for a Runloop benchmark run in the triggerer, export its results, report on them.

The run to wait for is the DAG param ``benchmark_run_id``; the results go to
``{results_url}/{benchmark_run_id}.jsonl``, where ``results_url`` is a DAG param too (a ``file://`` or
``s3://`` folder URL). ``make demo`` runs this DAG with ``airflow dags test`` against the bundled emulator,
and the end-to-end tests trigger it through Airflow's REST API, so the code the docs show is tested code.

Three environment variables, read when the DAG file is parsed, fit it to where it runs without edits:

``RUNLOOP_RESULTS_URL``
    the default of the ``results_url`` param (default ``file:///tmp/runloop-results``). For ``s3://``,
    name the AWS connection in the URL: ``s3://aws_conn@bucket/prefix``.
``RUNLOOP_POLL_SECONDS``
    seconds between polls of the benchmark run (default 60).
``RUNLOOP_FAIL_ON_SCENARIO_FAILURE``
    ``true`` (default): failed, timed-out or canceled scenarios fail the wait, naming them, and nothing is
    exported; ``false``: the wait succeeds and the failures are exported and reported with the rest.
    The sensor's policy is a constructor argument, so it is fixed when the file is parsed.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, Param, task

from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

RESULTS_URL = os.environ.get("RUNLOOP_RESULTS_URL", "file:///tmp/runloop-results").rstrip("/")
POLL_SECONDS = float(os.environ.get("RUNLOOP_POLL_SECONDS", "60"))
FAIL_ON_SCENARIO_FAILURE = os.environ.get("RUNLOOP_FAIL_ON_SCENARIO_FAILURE", "true").lower() != "false"
WORST_SHOWN = 5
LISTED = 50

with DAG(
    dag_id="example_runloop_wait_and_export",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    # --8<-- [start:howto_runloop_wait_and_export_params]
    params={
        # No default: a required param. The trigger form asks for it, and a trigger without it is
        # refused before any task runs (instead of failing later on a placeholder id).
        "benchmark_run_id": Param(
            type="string",
            pattern=r"^[A-Za-z0-9_-]+$",
            description="The Runloop benchmark run to wait for and export (bmr_...).",
        ),
        "results_url": Param(
            RESULTS_URL,
            type="string",
            description="Folder URL for the results file (file:///... or s3://conn@bucket/prefix).",
        ),
    },
    # --8<-- [end:howto_runloop_wait_and_export_params]
    tags=["example", "runloop"],
) as dag:
    # --8<-- [start:howto_sensor_runloop_deferrable]
    wait = RunloopBenchmarkRunSensor(
        task_id="wait_for_run",
        benchmark_run_id="{{ params.benchmark_run_id }}",
        deferrable=True,  # wait in the triggerer: no worker slot is held while the run goes on
        poke_interval=POLL_SECONDS,
        timeout=timedelta(hours=12),
        fail_on_scenario_failure=FAIL_ON_SCENARIO_FAILURE,
    )
    # --8<-- [end:howto_sensor_runloop_deferrable]

    # --8<-- [start:howto_operator_runloop_export_to_storage]
    export = RunloopBenchmarkResultsOperator(
        task_id="export_results",
        benchmark_run_id="{{ params.benchmark_run_id }}",
        destination="{{ params.results_url.rstrip('/') }}/{{ params.benchmark_run_id }}.jsonl",
    )
    # --8<-- [end:howto_operator_runloop_export_to_storage]

    # --8<-- [start:howto_runloop_report_from_file]
    @task
    def report(exported: dict[str, Any]) -> dict[str, Any]:
        """Runloop's run score, per-scorer means and the lowest-scoring scenarios, from the file.

        A retried scenario has several runs in the file: each scenario counts once, by its latest run
        (the latest start time; on a tie the one listed first, as the API lists newest first).
        """
        path = ObjectStoragePath(exported["destination"], conn_id=exported["storage_conn_id"])
        latest: dict[str, dict[str, Any]] = {}
        with path.open("rb") as file:
            for line in file:
                record = json.loads(line)
                held = latest.get(record["scenario_id"])
                if held is None or _started(record) > _started(held):
                    latest[record["scenario_id"]] = record
        per_scorer: dict[str, list[float]] = {}
        for record in latest.values():
            for result in record["scoring_function_results"]:
                per_scorer.setdefault(result["name"], []).append(result["score"])
        scored = sorted(
            (r["score"], r["scenario_run_id"], r["name"] or "")
            for r in latest.values()
            if r["score"] is not None
        )
        unscored = [
            f"{r['name'] or '?'} {r['scenario_run_id']} ({r['state']})"
            for r in latest.values()
            if r["score"] is None
        ]
        means = {name: sum(scores) / len(scores) for name, scores in sorted(per_scorer.items())}
        worst = scored[:WORST_SHOWN]
        runloop_score = exported["summary"]["benchmark_score"]  # Runloop's own, as on its dashboard
        print(
            f"{len(latest)} scenarios ({exported['record_count']} scenario runs) in {exported['destination']}"
        )
        print(
            f"  Runloop run score {runloop_score:.3f}"
            if runloop_score is not None
            else "  no Runloop run score"
        )
        for name, mean in means.items():
            print(f"  mean {name:<20} {mean:.3f}")
        for score, run_id, name in worst:
            print(f"  low  {score:.3f}  {name}  {run_id}")
        if unscored:
            print(f"  no score ({len(unscored)}): {', '.join(unscored[:LISTED])}")
        return {  # small whatever the run's size: XCom lives in the metadata database
            "runloop_score": runloop_score,
            "scorer_means": means,
            "worst": [{"scenario_run_id": run_id, "name": name, "score": s} for s, run_id, name in worst],
            "unscored_count": len(unscored),
            "unscored": unscored[:LISTED],
        }

    def _started(record: dict[str, Any]) -> tuple[bool, int]:
        start = record["start_time_ms"]
        return (start is not None, start or 0)

    wait >> export
    report(export.output)
    # --8<-- [end:howto_runloop_report_from_file]
