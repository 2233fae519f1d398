"""Drive Runloop benchmarks from Airflow: an interactive benchmark run, and a benchmark job.

``docs/lifecycle.md`` shows the sections between the ``# --8<-- [start:...]`` / ``[end:...]`` markers;
the integration tests run both DAGs with ``dag.test()`` against the emulator, so the docs show tested code.

Two environment variables, read when the file is parsed, fit it to where it runs without edits:

``RUNLOOP_RESULTS_URL``
    the folder (``file://`` or ``s3://``) the job's results are exported to (default
    ``file:///tmp/runloop-results``).
``RUNLOOP_POLL_SECONDS``
    seconds between polls of a run, a job or a scenario run being scored (default 60).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.operators.runloop import (
    RunloopBenchmarkResultsOperator,
    RunloopCancelBenchmarkRunOperator,
    RunloopCompleteBenchmarkRunOperator,
    RunloopCreateBenchmarkJobOperator,
    RunloopStartBenchmarkRunOperator,
)
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

RESULTS_URL = os.environ.get("RUNLOOP_RESULTS_URL", "file:///tmp/runloop-results").rstrip("/")
POLL_SECONDS = float(os.environ.get("RUNLOOP_POLL_SECONDS", "60"))


def benchmark_param() -> Param:
    """Required (no default): the trigger form asks for the benchmark; a trigger without it is refused."""
    return Param(type="string", pattern=r"^[A-Za-z0-9_-]+$", description="The benchmark to run (bmd_...).")


with DAG(
    dag_id="example_runloop_interactive_run",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"benchmark_id": benchmark_param()},
    tags=["example", "runloop"],
) as interactive_dag:
    # --8<-- [start:howto_operator_runloop_start_run]
    start_run = RunloopStartBenchmarkRunOperator(
        task_id="start_run",
        benchmark_id="{{ params.benchmark_id }}",
        metadata={"agent": "my-agent", "git_sha": "{{ dag_run.conf.get('git_sha', 'dev') }}"},
    )
    # --8<-- [end:howto_operator_runloop_start_run]

    # --8<-- [start:howto_runloop_run_scenarios]
    @task
    def run_scenarios(started: dict[str, Any]) -> list[str]:
        """Start each scenario of the run, let the agent work, score it, and close it once scored."""
        scenario_run_ids = []
        with RunloopHook() as hook:  # closes its connections when done
            for scenario_id in started["scenario_ids"]:
                scenario_run = hook.start_scenario_run(
                    scenario_id, benchmark_run_id=started["benchmark_run_id"]
                )
                # ... your agent works on the devbox scenario_run.devbox_id here ...
                hook.score_scenario_run(scenario_run.id)
                while (scenario_run := hook.get_scenario_run(scenario_run.id)).state in (
                    "running",
                    "scoring",
                ):
                    time.sleep(POLL_SECONDS)
                if scenario_run.state == "scored":
                    hook.complete_scenario_run(scenario_run.id)
                scenario_run_ids.append(scenario_run.id)
        return scenario_run_ids

    scenarios = run_scenarios(start_run.output)
    # --8<-- [end:howto_runloop_run_scenarios]

    # --8<-- [start:howto_operator_runloop_complete_run]
    wait_for_scenarios = RunloopBenchmarkRunSensor(
        task_id="wait_for_scenarios",
        benchmark_run_id="{{ ti.xcom_pull(task_ids='start_run')['benchmark_run_id'] }}",
        fail_on_scenario_failure=False,  # a failed scenario is a result, not a reason to stop
        poke_interval=POLL_SECONDS,
    )
    complete_run = RunloopCompleteBenchmarkRunOperator(
        task_id="complete_run",
        benchmark_run_id="{{ ti.xcom_pull(task_ids='start_run')['benchmark_run_id'] }}",
    )
    scenarios >> wait_for_scenarios >> complete_run
    # --8<-- [end:howto_operator_runloop_complete_run]

    # --8<-- [start:howto_operator_runloop_cancel_run]
    cancel_run = RunloopCancelBenchmarkRunOperator(
        task_id="cancel_run",
        benchmark_run_id="{{ ti.xcom_pull(task_ids='start_run')['benchmark_run_id'] }}",
        trigger_rule="one_failed",  # only when something upstream failed: do not leave the run open
    )
    [scenarios, wait_for_scenarios, complete_run] >> cancel_run
    # --8<-- [end:howto_operator_runloop_cancel_run]


with DAG(
    dag_id="example_runloop_benchmark_job",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"benchmark_id": benchmark_param()},
    tags=["example", "runloop"],
) as job_dag:
    # --8<-- [start:howto_operator_runloop_create_job]
    create_job = RunloopCreateBenchmarkJobOperator(
        task_id="create_job",
        benchmark_id="{{ params.benchmark_id }}",
        agent_configs=[
            {"name": "baseline", "agent_id": "agt_baseline", "model_name": "small-model"},
            {"name": "candidate", "agent_id": "agt_candidate", "model_name": "large-model"},
        ],
        orchestrator_config={"n_attempts": 1, "n_concurrent_trials": 10},
        wait_for_termination=True,
        check_interval=POLL_SECONDS,
    )
    # --8<-- [end:howto_operator_runloop_create_job]

    # --8<-- [start:howto_operator_runloop_job_results]
    @task
    def benchmark_run_ids(job: dict[str, Any]) -> list[str]:
        """One benchmark run per agent config (Airflow maps over a whole return value only)."""
        return job["benchmark_run_ids"]

    RunloopBenchmarkResultsOperator.partial(
        task_id="export_results",
        destination=RESULTS_URL + "/{{ run_id }}/{{ ti.map_index }}.jsonl",
    ).expand(benchmark_run_id=benchmark_run_ids(create_job.output))

    @task
    def compare(job: dict[str, Any]) -> dict[str, float | None]:
        """Each agent's average score, from the job's XCom."""
        return {run["agent_name"]: run["average_score"] for run in job["runs"]}

    compare(create_job.output)
    # --8<-- [end:howto_operator_runloop_job_results]
