"""Test DAGs: one sensor each, waiting in poke, reschedule or deferrable mode, recording how the wait ended.

One DAG per mode (``runloop_mode_parity_<mode>``, module globals ``dag_<mode>``), so that a test runs one
mode against one emulator and every request it sees is that mode's. Params: ``run_id`` (the benchmark
run) and ``out`` (a file path). When the sensor finishes, its callback writes ``out`` as JSON:
``{"state": "success"|"failed", "exception": <class name or null>, "message": <str or null>}``.
The poll-failure budget is :data:`BUDGET`; polls are cheap (:data:`POKE_INTERVAL`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

MODES = ("poke", "reschedule", "deferrable")
BUDGET = 2
POKE_INTERVAL = 0.05


def _record(context: Any, state: str) -> None:
    error = context.get("exception")
    outcome = {
        "state": state,
        "exception": None if error is None else type(error).__name__,
        "message": None if error is None else str(error),
    }
    Path(context["params"]["out"]).write_text(json.dumps(outcome))


def _on_success(context: Any) -> None:
    _record(context, "success")


def _on_failure(context: Any) -> None:
    _record(context, "failed")


for _mode in MODES:
    with DAG(
        dag_id=f"runloop_mode_parity_{_mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params={"run_id": "", "out": ""},
        catchup=False,
    ) as _dag:
        RunloopBenchmarkRunSensor(
            task_id="wait",
            benchmark_run_id="{{ params.run_id }}",
            mode="reschedule" if _mode == "reschedule" else "poke",
            deferrable=_mode == "deferrable",
            poke_interval=POKE_INTERVAL,
            timeout=30,
            max_consecutive_poll_failures=BUDGET,
            on_success_callback=_on_success,
            on_failure_callback=_on_failure,
        )
    globals()[f"dag_{_mode}"] = _dag
