"""Test DAG of the HA failover tests (tests/e2e/test_ha_failover.py): deferred sensors and start-and-wait
operators, every one waiting in a triggerer.

Params: ``run_ids`` (benchmark run ids: one deferrable ``RunloopBenchmarkRunSensor`` each, task ``wait``),
``benchmark_id`` and ``operators`` (that many deferrable ``RunloopStartBenchmarkRunOperator`` with
``cancel_on_kill=True``, task ``start``, each starting a run of the benchmark named ``ha-start-<i>`` and
waiting on it). All poll every ``RUNLOOP_HA_POLL_SECONDS`` (default 1; read at parse time). No retries:
a task's end state is its wait's verdict, nothing else. ``start`` has the higher priority weight, so a
triggerer taking over triggers takes the operators' first (they are the ones a wrongful cancel hurts).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_runloop.operators.runloop import RunloopStartBenchmarkRunOperator
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

POLL_SECONDS = float(os.environ.get("RUNLOOP_HA_POLL_SECONDS", "1"))

with DAG(
    dag_id="runloop_ha_failover",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"run_ids": [], "benchmark_id": "", "operators": 0},
    catchup=False,
    max_active_tasks=1024,
) as dag:

    @task
    def run_ids(params: dict[str, Any] | None = None) -> list[str]:
        assert params is not None
        return [str(run_id) for run_id in params["run_ids"]]

    @task
    def run_names(params: dict[str, Any] | None = None) -> list[str]:
        assert params is not None
        return [f"ha-start-{i}" for i in range(int(params["operators"]))]

    RunloopBenchmarkRunSensor.partial(
        task_id="wait",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=1800,
        retries=0,
    ).expand(benchmark_run_id=run_ids())

    RunloopStartBenchmarkRunOperator.partial(
        task_id="start",
        benchmark_id="{{ params.benchmark_id }}",
        wait_for_termination=True,
        deferrable=True,
        cancel_on_kill=True,
        check_interval=POLL_SECONDS,
        timeout=1800,
        retries=0,
        priority_weight=10,
    ).expand(run_name=run_names())
