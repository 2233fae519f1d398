"""Test DAG of the HA failover tests (tests/e2e/test_ha_failover.py): one deferred sensor per benchmark run.

Params: ``run_ids`` (a list of benchmark run ids). ``wait`` is mapped over them, one deferrable
``RunloopBenchmarkRunSensor`` each, polling every ``RUNLOOP_HA_POLL_SECONDS`` (default 1; read at parse
time) in the triggerers. No retries: a task's end state is the sensor's verdict, nothing else.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

POLL_SECONDS = float(os.environ.get("RUNLOOP_HA_POLL_SECONDS", "1"))

with DAG(
    dag_id="runloop_ha_failover",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"run_ids": []},
    catchup=False,
    max_active_tasks=512,
) as dag:

    @task
    def run_ids(params: dict[str, Any] | None = None) -> list[str]:
        assert params is not None
        return [str(run_id) for run_id in params["run_ids"]]

    RunloopBenchmarkRunSensor.partial(
        task_id="wait",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=900,
        retries=0,
    ).expand(benchmark_run_id=run_ids())
