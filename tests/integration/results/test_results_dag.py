"""The example DAG (sensor → results export → a task reading the file) under dag.test(), against the
emulator, with a real metadata DB; and the docs' snippets are the example's code."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airflow_provider_runloop.results import JsonLinesWriter
from airflow_provider_runloop.testing import RunloopEmulator

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "example_dags" / "example_runloop_results.py"
DOCS = REPO / "docs" / "results.md"
SCRIPT = {
    "seed": 3,
    "scenario_count": 40,
    "outcomes": {"completed": 0.75, "failed": 0.25},
    "timing": {"start_interval": 0.1, "duration": [1, 3]},
}


def _load_example(monkeypatch: pytest.MonkeyPatch, results_url: str) -> ModuleType:
    # The example reads RUNLOOP_RESULTS_URL when it is imported.
    monkeypatch.setenv("RUNLOOP_RESULTS_URL", results_url)
    spec = importlib.util.spec_from_file_location("example_runloop_results", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _return_values(dag_run: Any) -> dict[str, Any]:
    """The ``return_value`` XComs of a DAG run, read from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            )
        ).all()
    return {task_id: XComModel.deserialize_value(_Row(value)) for task_id, value in rows}


class _Row:
    def __init__(self, value: Any) -> None:
        self.value = value


@pytest.mark.usefixtures("airflow_db")
def test_sensor_export_and_reader_run_green(
    emulator_connection: RunloopEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emulator = emulator_connection
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.advance(3600)
    states = Counter(emulator.scenario_run_states(run_id).values())
    assert states["failed"] > 0  # failures are exported too: the sensor lets them through

    dag = _load_example(monkeypatch, f"file://{tmp_path}/results").dag
    dag_run = dag.test(run_conf={"benchmark_run_id": run_id})

    assert _states(dag_run) == {"wait_for_run": "success", "export_results": "success", "report": "success"}
    target = tmp_path / "results" / f"{run_id}.jsonl"
    assert len(target.read_text().splitlines()) == 40
    values = _return_values(dag_run)
    exported = values["export_results"]
    assert exported["destination"] == f"file://{target}"
    assert exported["record_count"] == 40
    assert exported["summary"]["state_counts"]["failed"] == states["failed"]
    # The downstream task read the file: its counts are the emulator's.
    assert values["report"] == dict(states)


@pytest.mark.usefixtures("airflow_db")
def test_a_write_failure_in_the_middle_leaves_nothing_and_pushes_no_return_value(
    emulator_connection: RunloopEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emulator = emulator_connection
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.advance(3600)
    original = JsonLinesWriter.write

    def write_until_the_disk_is_full(self: JsonLinesWriter, record: Any) -> None:
        if self.records_written == 20:
            raise OSError(28, "No space left on device")
        original(self, record)

    monkeypatch.setattr(JsonLinesWriter, "write", write_until_the_disk_is_full)
    dag = _load_example(monkeypatch, f"file://{tmp_path}/results").dag
    dag_run = dag.test(run_conf={"benchmark_run_id": run_id})

    assert _states(dag_run) == {
        "wait_for_run": "success",
        "export_results": "failed",
        "report": "upstream_failed",
    }
    assert set(_return_values(dag_run)) == {"wait_for_run"}  # the sensor's summary only
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def test_the_docs_show_the_example_code() -> None:
    # The page includes the example's sections by name (pymdownx.snippets), so it shows them verbatim.
    in_example = re.findall(r"^[ \t]*# --8<-- \[start:(\w+)\]$", EXAMPLE.read_text(), re.M)
    in_docs = re.findall(r'^--8<-- "example_dags/example_runloop_results.py:(\w+)"$', DOCS.read_text(), re.M)
    assert (
        sorted(in_docs)
        == sorted(in_example)
        == sorted(
            [
                "howto_operator_runloop_results_file",
                "howto_operator_runloop_results_read",
                "howto_operator_runloop_results_xcom",
                "howto_operator_runloop_results_s3",
            ]
        )
    )


def test_the_example_dags_parse_and_wire_the_s3_asset(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import Asset

    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "example_runloop_results",
        "example_runloop_results_xcom",
        "example_runloop_results_s3",
        "example_runloop_results_consumer",
    }
    module = _load_example(monkeypatch, "file:///tmp/runloop-results")
    (export,) = module.s3_dag.tasks
    nightly = Asset(uri=module.NIGHTLY_RESULTS)
    # The producer declares the asset it writes; the consumer is scheduled on it.
    assert export.outlets == [nightly]
    assert list(module.consumer_dag.timetable.asset_condition.objects) == [nightly]
