"""Test DAGs: a benchmark job created and awaited (deferrable, and polling on the worker), its benchmark
runs exported by a mapped results task, then a task that records the XComs.

Params: ``benchmark_id`` and ``out`` (a file path for the collected XComs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_runloop.operators.runloop import (
    RunloopBenchmarkResultsOperator,
    RunloopCreateBenchmarkJobOperator,
)

AGENTS = [{"name": "agent-a", "model_name": "model-1"}, {"name": "agent-b", "timeout_seconds": 600.0}]

for mode in ("deferrable", "poll"):
    with DAG(
        dag_id=f"runloop_lifecycle_job_{mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params={"benchmark_id": "", "out": ""},
        catchup=False,
    ) as dag:
        create_job = RunloopCreateBenchmarkJobOperator(
            task_id="create_job",
            benchmark_id="{{ params.benchmark_id }}",
            agent_configs=AGENTS,
            orchestrator_config={"n_concurrent_trials": 4},
            wait_for_termination=True,
            deferrable=mode == "deferrable",
            check_interval=0.1,
        )

        @task
        def run_ids(job: dict[str, Any]) -> list[str]:
            return list(job["benchmark_run_ids"])

        export = RunloopBenchmarkResultsOperator.partial(
            task_id="export", include_scorer_output=False
        ).expand(benchmark_run_id=run_ids(create_job.output))

        @task(trigger_rule="all_done")
        def collect(exports: Any, params: dict[str, Any] | None = None, ti: Any = None) -> None:
            assert params is not None
            results = {
                "create_job": ti.xcom_pull(task_ids="create_job"),
                "run_ids": ti.xcom_pull(task_ids="run_ids"),
                "link": ti.xcom_pull(task_ids="create_job", key="_link_RunloopBenchmarkJobLink"),
                "exports": list(exports),
            }
            Path(params["out"]).write_text(json.dumps(results))

        collect(export.output)
    globals()[f"dag_{mode}"] = dag
