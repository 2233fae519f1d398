"""Every night: run the benchmark with the agent, export the results, and fail if the agent got worse.

1. ``run_benchmark`` creates a benchmark job of the benchmark in the Airflow Variable
   ``runloop_nightly_benchmark_id`` for the agent named by the Variable ``runloop_nightly_agent`` (default
   ``my-agent``), and waits for it in the triggerer (``deferrable=True``): no worker slot is held while
   Runloop runs the scenarios.
2. ``export_results`` writes the job's benchmark run to ``{RUNLOOP_RESULTS_URL}/nightly/<run id>.jsonl``
   for the data workflows downstream, and an HTML report beside it (``<run id>.html``).
3. ``gate`` checks the run: Runloop's run score at least ``MIN_SCORE``, and no worse than last night's
   (the value this task pushed in its last successful DAG run) by more than the tolerance per metric; a
   scenario that passed last night and fails now fails the gate too, by name. The first night has no
   baseline and passes on the thresholds alone.

A failed gate fails the DAG run, and its XCom-free log table says which metric and by how much; the next
night is compared with the last night that passed. ``RUNLOOP_RESULTS_URL`` (default
``file:///tmp/runloop-results``) and ``RUNLOOP_POLL_SECONDS`` (default 60) are read when the file is
parsed, as in the other examples.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_runloop.operators.runloop import (
    RunloopBenchmarkResultsOperator,
    RunloopBenchmarkRunCheckOperator,
    RunloopCreateBenchmarkJobOperator,
)

RESULTS_URL = os.environ.get("RUNLOOP_RESULTS_URL", "file:///tmp/runloop-results").rstrip("/")
POLL_SECONDS = float(os.environ.get("RUNLOOP_POLL_SECONDS", "60"))
MIN_SCORE = 0.5

# --8<-- [start:howto_runloop_nightly_gate]
with DAG(
    dag_id="example_runloop_nightly_gate",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # night after night: each gate compares with the night before
    tags=["example", "runloop"],
) as dag:
    run_benchmark = RunloopCreateBenchmarkJobOperator(
        task_id="run_benchmark",
        # Airflow Variables: a missing one fails the task before anything starts, naming it.
        benchmark_id="{{ var.value.runloop_nightly_benchmark_id }}",
        agent_configs=[
            {"type": "job_agent", "name": "{{ var.value.get('runloop_nightly_agent', 'my-agent') }}"}
        ],
        wait_for_termination=True,
        deferrable=True,
        check_interval=POLL_SECONDS,
    )
    # The job's one benchmark run (one agent config), from the job operator's XCom.
    benchmark_run_id = "{{ ti.xcom_pull(task_ids='run_benchmark')['runs'][0]['benchmark_run_id'] }}"

    export = RunloopBenchmarkResultsOperator(
        task_id="export_results",
        benchmark_run_id=benchmark_run_id,
        destination=RESULTS_URL + "/nightly/" + benchmark_run_id + ".jsonl",
        fail_on_scenario_failure=False,  # failed scenarios are results; the gate judges them
        html_report=True,  # <run id>.html beside the data: the extra link opens it
    )

    gate = RunloopBenchmarkRunCheckOperator(
        task_id="gate",
        benchmark_run_id=benchmark_run_id,
        min_runloop_score=MIN_SCORE,
        baseline_from_previous_xcom=True,  # last night's (successful) gate pushed its metrics
        tolerances={"runloop_score": 0.05, "mean_score": "10%"},
        default_tolerance="10%",
    )

    run_benchmark >> export >> gate
# --8<-- [end:howto_runloop_nightly_gate]
