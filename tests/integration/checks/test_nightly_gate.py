"""The nightly gate example under ``dag.test()``, night after night, with OpenLineage on.

Night 1 has no baseline and passes on its threshold; night 2 runs a worse agent (a regression planted in
the benchmark's script) and fails the gate, naming the metrics and the scenario that passed the night
before; night 3 runs the first agent again and passes against night 1, the last night that passed.

The nights run in a fresh interpreter with Airflow's OpenLineage provider enabled through Airflow config
env vars and the real OpenLineage client writing its events to a file (the ``file`` transport): the
provider's plugin registers its listener only if OpenLineage is configured when it is first imported,
which in this test session happened long before, with OpenLineage off. The child shares the session's
metadata DB and this process's emulator (over loopback). The events are read back field by field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_runloop.results import BASE_COLUMNS
from airflow_provider_runloop.testing import RealClock, RunloopEmulator

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "example_dags" / "example_runloop_nightly_gate.py"
DAG_ID = "example_runloop_nightly_gate"
NAMESPACE = "runloop_nightly_tests"

SCRIPT = {
    "scenario_count": 4,
    "seed": 3,
    "timing": {"start_interval": 0, "duration": 2, "scoring": 1, "complete": 1},
    "scores": [0.8, 1.0],
    "scenarios": [{"name": "fix-the-parser"}],
    # The planted regression: agent-v2 scores lower and fails the first scenario.
    "agents": {
        "agent-v2": {"scores": [0.3, 0.5], "scenarios": [{"name": "fix-the-parser", "outcome": "failed"}]}
    },
}
NIGHTS = [(1, "agent-v1"), (2, "agent-v2"), (3, "agent-v1")]

RUNNER = """
import json, os, runpy, sys
from datetime import datetime, timezone

dag = runpy.run_path(sys.argv[1])["dag"]
for day, agent in json.loads(sys.argv[2]):
    os.environ["AIRFLOW_VAR_RUNLOOP_NIGHTLY_AGENT"] = agent
    dag_run = dag.test(logical_date=datetime(2026, 11, day, tzinfo=timezone.utc))
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    night = {
        "states": {task_id: str(ti.state) for task_id, ti in tis.items()},
        "gate": tis["gate"].xcom_pull(task_ids="gate"),
        "export": tis["export_results"].xcom_pull(task_ids="export_results"),
    }
    # One write, newline included: print() writes the newline apart, and a log line from OpenLineage's
    # thread could land between the two.
    sys.stdout.write("NIGHT " + json.dumps(night) + "\\n")
    sys.stdout.flush()
"""


def _events(path: Path, task_id: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [event for event in events if event["job"]["name"] == f"{DAG_ID}.{task_id}"]


@pytest.mark.usefixtures("airflow_db")
def test_the_gate_fails_on_a_planted_regression_and_passes_without_it(
    runloop_emulator_factory: Callable[..., RunloopEmulator], tmp_path: Path
) -> None:
    emulator = runloop_emulator_factory(clock=RealClock(speed=50))
    benchmark = emulator.seed_benchmark(SCRIPT)
    events_file = tmp_path / "openlineage.jsonl"
    runner = tmp_path / "nights.py"
    runner.write_text(textwrap.dedent(RUNNER))
    env = {
        **os.environ,  # the session's AIRFLOW_HOME (its metadata DB) and DAG bundles (example_dags)
        "AIRFLOW_CONN_RUNLOOP_DEFAULT": emulator.airflow_conn_json,
        "AIRFLOW_VAR_RUNLOOP_NIGHTLY_BENCHMARK_ID": benchmark.benchmark_id,
        "RUNLOOP_RESULTS_URL": f"file://{tmp_path}",
        "RUNLOOP_POLL_SECONDS": "0.2",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": NAMESPACE,
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
    }
    done = subprocess.run(
        [sys.executable, str(runner), str(EXAMPLE), json.dumps(NIGHTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    nights = [
        json.JSONDecoder().raw_decode(line[len("NIGHT ") :])[0]
        for line in done.stdout.splitlines()
        if line.startswith("NIGHT ")
    ]
    assert done.returncode == 0, output[-4000:]
    assert len(nights) == 3, output[-4000:]
    first, second, third = nights

    # Night 1: no baseline, the threshold alone.
    assert first["states"] == dict.fromkeys(("run_benchmark", "export_results", "gate"), "success")
    assert first["gate"]["passed"] is True
    assert first["gate"]["baseline_benchmark_run_id"] is None
    first_run = first["gate"]["benchmark_run_id"]
    assert (tmp_path / "nightly" / f"{first_run}.jsonl").exists()
    assert "Runloop run score" in (tmp_path / "nightly" / f"{first_run}.html").read_text()

    # Night 2: the planted regression fails the gate, naming what got worse and the scenario by name.
    assert second["states"] == {"run_benchmark": "success", "export_results": "success", "gate": "failed"}
    assert second["gate"] is None  # a failed gate pushes nothing: it is never anyone's baseline
    second_run = second["export"]["summary"]["benchmark_run_id"]
    assert (
        f"Benchmark run {second_run} failed its checks against baseline {first_run} (previous_xcom)" in output
    )
    assert "1 scenario passed in the baseline and fails now: " in output
    assert "(fix-the-parser)" in output

    # Night 3: compared with night 1, the last night whose gate passed.
    assert third["states"] == dict.fromkeys(("run_benchmark", "export_results", "gate"), "success")
    assert third["gate"]["baseline_benchmark_run_id"] == first_run
    assert {row["verdict"] for row in third["gate"]["rows"]} == {"pass"}
    third_run = third["gate"]["benchmark_run_id"]
    json.dumps(third["gate"], allow_nan=False)  # strict JSON

    # OpenLineage, field by field: each night's export reads the run and writes the file...
    host = emulator.base_url.split("://", 1)[1].rstrip("/")
    runs = [first_run, second_run, third_run]
    exports = _events(events_file, "export_results")
    assert [event["eventType"] for event in exports] == ["START", "COMPLETE"] * 3
    for (start, complete), run_id, night in zip(
        zip(exports[::2], exports[1::2], strict=True), runs, nights, strict=True
    ):
        assert complete["job"]["namespace"] == NAMESPACE
        assert complete["run"]["runId"] == start["run"]["runId"]
        (source,) = complete["inputs"]
        assert (source["namespace"], source["name"]) == (f"runloop://{host}", f"benchmark_runs/{run_id}")
        assert source["facets"]["datasource"]["uri"] == f"runloop://{host}"
        (written,) = complete["outputs"]
        assert (written["namespace"], written["name"]) == (
            "file",
            str(tmp_path / "nightly" / f"{run_id}.jsonl"),
        )
        fields = written["facets"]["schema"]["fields"]
        assert [field["name"] for field in fields] == list(BASE_COLUMNS)
        types = {field["name"]: field["type"] for field in fields}
        assert (types["scenario_run_id"], types["score"], types["duration_ms"]) == (
            "string",
            "number",
            "integer",
        )
        (functions,) = (field for field in fields if field["name"] == "scoring_function_results")
        assert [sub["name"] for sub in functions["fields"]] == ["name", "score", "state", "output"]
        assert written["outputFacets"]["outputStatistics"]["rowCount"] == night["export"]["record_count"]

    # ...and each gate reads the run (and its baseline), with its rules as data-quality assertions.
    gates = _events(events_file, "gate")
    assert [event["eventType"] for event in gates] == [
        "START",
        "COMPLETE",
        "START",
        "FAIL",
        "START",
        "COMPLETE",
    ]
    ends = gates[1::2]

    def assertions(event: dict[str, Any]) -> dict[str, bool]:
        checked = event["inputs"][0]
        facet = checked["inputFacets"]["dataQualityAssertions"]
        return {item["assertion"]: item["success"] for item in facet["assertions"]}

    assert [[item["name"] for item in end["inputs"]] for end in ends] == [
        [f"benchmark_runs/{first_run}"],
        [f"benchmark_runs/{second_run}", f"benchmark_runs/{first_run}"],
        [f"benchmark_runs/{third_run}", f"benchmark_runs/{first_run}"],
    ]
    # Night 1's comparison was skipped (no baseline): only its threshold was asserted.
    assert assertions(ends[0]) == {"runloop_score": True}
    failed = assertions(ends[1])
    assert failed["runloop_score"] is False
    assert failed["regressed_scenarios"] is False
    assert all(assertions(ends[2]).values())
    assert set(assertions(ends[2])) == {row["metric"] for row in third["gate"]["rows"]}
    assert {"runloop_score", "mean_score", "regressed_scenarios"} <= set(assertions(ends[2]))

    # Nothing secret in any event.
    assert emulator.api_key not in events_file.read_text()
