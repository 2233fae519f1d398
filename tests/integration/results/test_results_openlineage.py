"""OpenLineage end to end under ``dag.test()``: the results export against the emulator, with Airflow's
OpenLineage provider enabled through Airflow config env vars and the real OpenLineage client writing
its events to a file (the ``file`` transport), read back and checked field by field.

The DAG runs in a fresh interpreter: the provider's plugin registers its listener only if OpenLineage is
configured when the plugin is first imported (and caches its config), which in this test session has
happened long before, with OpenLineage off. The child shares the session's metadata DB and the
emulator (over loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_runloop.results import BASE_COLUMNS
from airflow_provider_runloop.testing import RunloopEmulator

SCRIPT = {
    "seed": 11,
    "scenario_count": 6,
    "outcomes": {"completed": 1.0},
    "timing": {"start_interval": 0.1, "duration": [1, 2]},
}
NAMESPACE = "runloop_ol_tests"

DAG_FILE = """
import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator

with DAG(
    dag_id="runloop_openlineage",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id=os.environ["OL_TEST_RUN_ID"],
        destination=os.environ["OL_TEST_DESTINATION"],
    )

if __name__ == "__main__":
    dag_run = dag.test()
    print("STATES", {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()})
"""


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.usefixtures("airflow_db")
def test_the_export_emits_openlineage_events_with_the_run_in_and_the_file_out(
    emulator_connection: RunloopEmulator, tmp_path: Path
) -> None:
    emulator = emulator_connection
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.advance(3600)
    destination = tmp_path / "out" / f"{run_id}.jsonl"
    events_file = tmp_path / "openlineage.jsonl"
    # dag.test() runs a DAG of a configured bundle: the child has one, of this folder alone.
    dags = tmp_path / "dags"
    dags.mkdir()
    dag_file = dags / "runloop_openlineage.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE))
    env = {
        **os.environ,  # the session's AIRFLOW_HOME (its metadata DB) and the emulator's connection
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {
                    "name": "openlineage_test",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(dags)},
                }
            ]
        ),
        "OL_TEST_RUN_ID": run_id,
        "OL_TEST_DESTINATION": f"file://{destination}",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": NAMESPACE,
        # Emit from a thread of the task's process rather than a fork of it (either works; a thread is
        # lighter on a test machine).
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
    }
    done = subprocess.run(
        [sys.executable, str(dag_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "STATES {'export': 'success'}" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(destination.read_text().splitlines()) == 6

    events = _events(events_file)
    task_events = [event for event in events if event["job"]["name"] == "runloop_openlineage.export"]
    assert [event["eventType"] for event in task_events] == ["START", "COMPLETE"]
    complete = task_events[-1]
    assert complete["job"]["namespace"] == NAMESPACE
    assert complete["run"]["runId"] == task_events[0]["run"]["runId"]

    (source,) = complete["inputs"]
    host = emulator.base_url.split("://", 1)[1].rstrip("/")
    assert source["namespace"] == f"runloop://{host}"
    assert source["name"] == f"benchmark_runs/{run_id}"
    assert source["facets"]["datasource"]["uri"] == f"runloop://{host}"

    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(destination))
    fields = output["facets"]["schema"]["fields"]
    assert [field["name"] for field in fields] == list(BASE_COLUMNS)
    types = {field["name"]: field["type"] for field in fields}
    assert (types["scenario_run_id"], types["score"], types["duration_ms"]) == ("string", "number", "integer")
    (functions,) = (field for field in fields if field["name"] == "scoring_function_results")
    assert [sub["name"] for sub in functions["fields"]] == ["name", "score", "state", "output"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 6

    # Nothing secret in any event: not the API key, not the connection.
    text = events_file.read_text()
    assert emulator.api_key not in text
