"""Test DAG: an interactive benchmark run driven end to end, then a task that records the XComs.

start the run → start, score and complete each scenario through the hook → wait (sensor) → complete
the run. Params: ``benchmark_id``, ``poll_seconds`` and ``out`` (a file path for the collected XComs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.operators.runloop import (
    RunloopCompleteBenchmarkRunOperator,
    RunloopStartBenchmarkRunOperator,
)
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

RUN_ID = "{{ ti.xcom_pull(task_ids='start_run')['benchmark_run_id'] }}"

with DAG(
    dag_id="runloop_lifecycle_interactive",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"benchmark_id": "", "poll_seconds": 0.05, "out": ""},
    catchup=False,
) as dag:
    start_run = RunloopStartBenchmarkRunOperator(
        task_id="start_run",
        benchmark_id="{{ params.benchmark_id }}",
        metadata={"purpose": "{{ dag.dag_id }}"},
    )

    @task
    def run_scenarios(started: dict[str, Any], params: dict[str, Any] | None = None) -> list[str]:
        assert params is not None
        ids = []
        with RunloopHook() as hook:
            for scenario_id in started["scenario_ids"]:
                run = hook.start_scenario_run(scenario_id, benchmark_run_id=started["benchmark_run_id"])
                hook.score_scenario_run(run.id)
                while (run := hook.get_scenario_run(run.id)).state in ("running", "scoring"):
                    time.sleep(params["poll_seconds"])
                if run.state == "scored":
                    hook.complete_scenario_run(run.id)
                ids.append(run.id)
        return ids

    wait = RunloopBenchmarkRunSensor(task_id="wait", benchmark_run_id=RUN_ID, poke_interval=0.1, timeout=120)
    complete_run = RunloopCompleteBenchmarkRunOperator(task_id="complete_run", benchmark_run_id=RUN_ID)

    @task(trigger_rule="all_done")
    def collect(params: dict[str, Any] | None = None, ti: Any = None) -> None:
        assert params is not None
        tasks = ("start_run", "run_scenarios", "wait", "complete_run")
        results: dict[str, Any] = {name: ti.xcom_pull(task_ids=name) for name in tasks}
        results["link"] = ti.xcom_pull(task_ids="start_run", key="_link_RunloopBenchmarkRunLink")
        Path(params["out"]).write_text(json.dumps(results))

    run_scenarios(start_run.output) >> wait >> complete_run >> collect()
