"""Test DAG: the same wait in poke, reschedule and deferrable mode, then a task that records the XComs.

Params: ``run_ids`` ({mode: benchmark run id}) and ``out`` (a file path for the collected summaries).
The sensors' ``failure_settle_seconds`` comes from ``RUNLOOP_TEST_FAILURE_SETTLE_SECONDS`` when set (read
at parse time, so every re-parse during ``dag.test()`` agrees), else the default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

MODES = ("poke", "reschedule", "deferrable")
SETTLE = os.environ.get("RUNLOOP_TEST_FAILURE_SETTLE_SECONDS")
OPTIONS = {} if SETTLE is None else {"failure_settle_seconds": float(SETTLE)}

with DAG(
    dag_id="runloop_sensor_modes",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"run_ids": {}, "out": ""},
    catchup=False,
) as dag:
    sensors = [
        RunloopBenchmarkRunSensor(
            task_id=f"wait_{mode}",
            benchmark_run_id=f"{{{{ params.run_ids['{mode}'] }}}}",
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=mode == "deferrable",
            poke_interval=0.2,
            timeout=120,
            **OPTIONS,
        )
        for mode in MODES
    ]

    @task(trigger_rule="all_done")
    def collect(params: dict[str, Any] | None = None, ti: Any = None) -> None:
        assert params is not None
        results = {mode: ti.xcom_pull(task_ids=f"wait_{mode}") for mode in MODES}
        results["links"] = {
            mode: ti.xcom_pull(task_ids=f"wait_{mode}", key="_link_RunloopBenchmarkRunLink") for mode in MODES
        }
        Path(params["out"]).write_text(json.dumps(results))

    sensors >> collect()
