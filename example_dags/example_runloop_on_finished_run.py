"""Run a DAG once per finished benchmark run, however the run was started (CI, a notebook, the CLI).

An ``AssetWatcher`` with ``RunloopBenchmarkRunFinishedTrigger`` watches the benchmark runs of one
benchmark (or, as here by default, the runs whose metadata say ``pipeline: nightly-evals``) and turns each
run that reaches ``completed``, ``failed`` or ``canceled`` into one asset event. The DAG is scheduled on
the asset, so it runs for each finished run; its task reads the run from the triggering event's
``extra["payload"]``. Runs that finish a moment apart may share one DAG run (Airflow creates one run for
the asset events since the previous one), so the task loops over the events. The watcher runs in the
triggerer only while the DAG is unpaused.

Environment, read when the file is parsed: ``RUNLOOP_WATCH_BENCHMARK_ID`` (a benchmark id to watch),
``RUNLOOP_WATCH_METADATA`` (a JSON object of metadata to match, default
``{"pipeline": "nightly-evals"}``; ``{}`` with a benchmark id: every run of it) and
``RUNLOOP_POLL_SECONDS`` (default 60).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_runloop.triggers.watch import RunloopBenchmarkRunFinishedTrigger

BENCHMARK_ID = os.environ.get("RUNLOOP_WATCH_BENCHMARK_ID") or None
METADATA: dict[str, str] = json.loads(
    os.environ.get("RUNLOOP_WATCH_METADATA", '{"pipeline": "nightly-evals"}')
)
POLL_SECONDS = float(os.environ.get("RUNLOOP_POLL_SECONDS", "60"))

# --8<-- [start:howto_runloop_on_finished_run]
FINISHED_RUNS = Asset(
    name="runloop_finished_benchmark_runs",
    watchers=[
        AssetWatcher(
            name="runloop_finished_runs_watcher",
            trigger=RunloopBenchmarkRunFinishedTrigger(
                benchmark_id=BENCHMARK_ID,
                metadata=METADATA or None,
                poll_interval=POLL_SECONDS,
            ),
        )
    ],
)

with DAG(
    dag_id="example_runloop_on_finished_run",
    schedule=[FINISHED_RUNS],  # one DAG run per asset event: per finished benchmark run
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "runloop"],
):

    @task
    def report_finished_run(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """Log and return the finished run(s) this DAG run is for."""
        finished = []
        for event in triggering_asset_events[FINISHED_RUNS]:
            run = event.extra["payload"]  # the trigger's event, as the asset event's extra
            print(
                f"benchmark run {run['benchmark_run_id']} ({run['name'] or 'unnamed'}) of "
                f"{run['benchmark_id']} is {run['state']}, score {run['score']}"
            )
            finished.append(run)
        return finished

    report_finished_run()
# --8<-- [end:howto_runloop_on_finished_run]
