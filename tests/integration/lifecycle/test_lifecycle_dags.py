"""Whole DAGs under dag.test() against the emulator (real time, sped up), with a real metadata DB:
the interactive flow (start → scenarios through the hook → sensor → complete), the job flow (create and
wait → mapped results export), the example DAGs, and the docs showing every region of the example."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.dag_files import load_dag_file

from airflow_provider_runloop.testing import RealClock, RunloopEmulator

REPO = Path(__file__).resolve().parents[3]
TEST_DAGS = REPO / "tests" / "dags"
EXAMPLE = REPO / "example_dags" / "example_runloop_lifecycle.py"
DOCS = REPO / "docs" / "lifecycle.md"

ALL_COMPLETE = {"scenario_count": 4, "seed": 7, "outcomes": {"completed": 1.0}}
# Jobs: some scenarios fail, so the counts per agent differ and failures are exported too.
MIXED = {"scenario_count": 5, "seed": 4, "outcomes": {"completed": 0.6, "failed": 0.4}}


def _emulator(factory: Callable[..., RunloopEmulator], monkeypatch: pytest.MonkeyPatch) -> RunloopEmulator:
    emulator = factory(clock=RealClock(speed=50))
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", emulator.airflow_conn_json)
    return emulator


def _states(dag_run: Any) -> dict[str, str]:
    states = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state)
    return states


@pytest.mark.usefixtures("airflow_db")
def test_interactive_flow(
    runloop_emulator_factory: Callable[..., RunloopEmulator], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emulator = _emulator(runloop_emulator_factory, monkeypatch)
    benchmark = emulator.seed_benchmark(ALL_COMPLETE)
    out = tmp_path / "xcoms.json"
    dag = load_dag_file(TEST_DAGS / "runloop_lifecycle_interactive.py").dag
    dag_run = dag.test(run_conf={"benchmark_id": benchmark.benchmark_id, "out": str(out)})

    states = _states(dag_run)
    assert set(states.values()) == {"success"}, states
    xcoms = json.loads(out.read_text())
    started = xcoms["start_run"]
    run_id = started["benchmark_run_id"]
    assert started["scenario_ids"] == list(benchmark.scenario_ids)
    assert started["expected_scenario_count"] == 4
    assert started["reattached"] is False
    assert xcoms["link"] == started["dashboard_url"]
    assert run_id in started["dashboard_url"]

    # Remotely: one run, started once and tagged; every scenario run completed; the run completed.
    (post,) = emulator.requests(method="POST", path="/v1/benchmarks/start_run")
    assert post.body["metadata"] == {
        "purpose": "runloop_lifecycle_interactive",
        "airflow_dag_id": "runloop_lifecycle_interactive",
        "airflow_run_id": dag_run.run_id,
        "airflow_task_id": "start_run",
        "airflow_map_index": "-1",
        "airflow_tag": post.body["metadata"]["airflow_tag"],
    }
    assert post.request_id is not None
    assert post.request_id.startswith("airflow-runloop-start-run-")
    scenario_states = emulator.scenario_run_states(run_id)
    assert sorted(scenario_states) == sorted(xcoms["run_scenarios"])
    assert list(scenario_states.values()) == ["completed"] * 4
    assert emulator.benchmark_run_state(run_id) == "completed"

    assert xcoms["wait"]["state_counts"]["completed"] == 4
    assert xcoms["wait"]["benchmark_run_state"] == "running"  # the sensor waited on the scenarios
    assert xcoms["complete_run"]["state"] == "completed"
    assert xcoms["complete_run"]["changed"] is True
    assert xcoms["complete_run"]["score"] is not None


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", ["deferrable", "poll"])
def test_job_flow_with_a_mapped_export_per_benchmark_run(
    runloop_emulator_factory: Callable[..., RunloopEmulator],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    mode: str,
) -> None:
    emulator = _emulator(runloop_emulator_factory, monkeypatch)
    benchmark = emulator.seed_benchmark(MIXED)
    out = tmp_path / "xcoms.json"
    dag = getattr(load_dag_file(TEST_DAGS / "runloop_lifecycle_job.py"), f"dag_{mode}")
    dag_run = dag.test(run_conf={"benchmark_id": benchmark.benchmark_id, "out": str(out)})

    states = _states(dag_run)
    assert states == {
        "create_job": "success",
        "run_ids": "success",
        "export[0]": "success",
        "export[1]": "success",
        "collect": "success",
    }
    xcoms = json.loads(out.read_text())
    job = xcoms["create_job"]
    run_ids = emulator.job_benchmark_run_ids(job["benchmark_job_id"])
    assert emulator.job_state(job["benchmark_job_id"]) == "completed"
    assert job["state"] == "completed"
    assert job["benchmark_run_ids"] == xcoms["run_ids"]
    assert sorted(xcoms["run_ids"]) == sorted(run_ids)
    assert {run["agent_name"] for run in job["runs"]} == {"agent-a", "agent-b"}
    for run in job["runs"]:
        assert run["n_completed"] + run["n_failed"] + run["n_timeout"] == 5
        assert run["in_progress"] is False
    assert job["expected_scenarios"] == 5
    assert job["name"].startswith(f"runloop_lifecycle_job_{mode}.create_job [airflow ")
    assert xcoms["link"] == job["dashboard_url"]
    assert job["dashboard_url"].endswith(f"/benchmarks/custom/{benchmark.benchmark_id}")
    assert len(emulator.requests(method="POST", path="/v1/benchmark_jobs")) == 1

    # One export per benchmark run, each with that run's scenario runs, failures included.
    exported = {export["summary"]["benchmark_run_id"]: export for export in xcoms["exports"]}
    assert sorted(exported) == sorted(run_ids)
    for run in job["runs"]:
        export = exported[run["benchmark_run_id"]]
        assert export["record_count"] == len(emulator.scenario_run_states(run["benchmark_run_id"]))
        counts = export["summary"]["state_counts"]
        assert counts["completed"] == run["n_completed"]
        assert counts["failed"] + counts["timeout"] + counts["canceled"] == run["n_failed"] + run["n_timeout"]


@pytest.mark.usefixtures("airflow_db")
def test_the_example_dags_run_green(
    runloop_emulator_factory: Callable[..., RunloopEmulator], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emulator = _emulator(runloop_emulator_factory, monkeypatch)
    benchmark = emulator.seed_benchmark(ALL_COMPLETE)
    monkeypatch.setenv("RUNLOOP_RESULTS_URL", f"file://{tmp_path}/results")
    monkeypatch.setenv("RUNLOOP_POLL_SECONDS", "0.05")
    example = load_dag_file(EXAMPLE)

    interactive = example.interactive_dag.test(run_conf={"benchmark_id": benchmark.benchmark_id})
    assert _states(interactive) == {
        "start_run": "success",
        "run_scenarios": "success",
        "wait_for_scenarios": "success",
        "complete_run": "success",
        "cancel_run": "skipped",  # nothing failed
    }
    (run_id,) = [r.body["benchmark_id"] for r in emulator.requests(path="/v1/benchmarks/start_run")]
    assert run_id == benchmark.benchmark_id

    job_run = example.job_dag.test(run_conf={"benchmark_id": benchmark.benchmark_id})
    assert _states(job_run) == {
        "create_job": "success",
        "benchmark_run_ids": "success",
        "export_results[0]": "success",
        "export_results[1]": "success",
        "compare": "success",
    }
    files = sorted(path.name for path in tmp_path.rglob("*.jsonl"))
    assert files == ["0.jsonl", "1.jsonl"]


def test_the_docs_show_every_region_of_the_example() -> None:
    # The docs site includes the sections by name (pymdownx.snippets with check_paths fails on a missing one).
    in_example = re.findall(r"^[ \t]*# --8<-- \[start:(\w+)\]$", EXAMPLE.read_text(), re.M)
    included = re.findall(
        r'^--8<-- "example_dags/example_runloop_lifecycle.py:(\w+)"$', DOCS.read_text(), re.M
    )
    assert (
        sorted(included)
        == sorted(in_example)
        == sorted(
            [
                "howto_operator_runloop_start_run",
                "howto_runloop_run_scenarios",
                "howto_operator_runloop_complete_run",
                "howto_operator_runloop_cancel_run",
                "howto_operator_runloop_create_job",
                "howto_operator_runloop_job_results",
            ]
        )
    )
