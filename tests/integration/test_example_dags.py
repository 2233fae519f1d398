"""Every example DAG parses, with no import errors, and keeps the shape the docs and demos rely on."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_dags"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.py"))


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_dags_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(EXAMPLES))


def test_the_example_folder_parses_without_import_errors(bag: Any) -> None:
    assert bag.import_errors == {}
    assert {
        "example_runloop_wait_and_export",
        "example_runloop_results_asset_producer",
        "example_runloop_results_asset_consumer",
    } <= set(bag.dag_ids)
    assert len(bag.dag_ids) == len(set(bag.dag_ids))
    # One file per DAG id: no two example files define the same DAG.
    assert len(bag.dag_ids) == sum(
        len(re.findall(r"^\s*dag_id=", path.read_text(), re.M)) for path in EXAMPLE_FILES
    )


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[path.name for path in EXAMPLE_FILES])
def test_doc_markers_are_paired(path: Path) -> None:
    text = path.read_text()
    starts = re.findall(r"^\s*# --8<-- \[start:(\w+)\]$", text, re.M)
    ends = re.findall(r"^\s*# --8<-- \[end:(\w+)\]$", text, re.M)
    assert starts == ends
    assert len(starts) == len(set(starts))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[path.name for path in EXAMPLE_FILES])
def test_examples_import_only_public_names(path: Path) -> None:
    imports = re.findall(r"^\s*from (\S+) import ([^\n(]+|\([^)]*\))", path.read_text(), re.M)
    for module, names in imports:
        if module == "__future__":
            continue
        assert not any(part.startswith("_") for part in module.split(".")), module
        assert not any(name.strip().startswith("_") for name in names.strip("()").split(",")), names


def test_wait_and_export_uses_the_deferrable_sensor_and_templated_destination(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNLOOP_POLL_SECONDS", "2")
    monkeypatch.setenv("RUNLOOP_FAIL_ON_SCENARIO_FAILURE", "false")
    monkeypatch.setenv("RUNLOOP_RESULTS_URL", "file:///data/results/")
    dag = _load("example_runloop_wait_and_export").dag
    wait, export = dag.get_task("wait_for_run"), dag.get_task("export_results")
    assert wait.deferrable is True
    assert wait.poke_interval == 2
    assert wait.fail_on_scenario_failure is False
    assert dag.params["results_url"] == "file:///data/results"
    assert export.destination == "{{ params.results_url.rstrip('/') }}/{{ params.benchmark_run_id }}.jsonl"
    assert export.outlets == []  # templated: only known at run time
    assert [t.task_id for t in dag.topological_sort()] == ["wait_for_run", "export_results", "report"]


def test_wait_and_export_fails_on_scenario_failures_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNLOOP_FAIL_ON_SCENARIO_FAILURE", raising=False)
    monkeypatch.delenv("RUNLOOP_POLL_SECONDS", raising=False)
    dag = _load("example_runloop_wait_and_export").dag
    assert dag.get_task("wait_for_run").fail_on_scenario_failure is True
    assert dag.get_task("wait_for_run").poke_interval == 60


@pytest.mark.parametrize(
    ("results_url", "asset_uri"),
    [
        ("file:///tmp/runloop-results", "file:///tmp/runloop-results/latest.jsonl"),
        ("s3://aws_results@bucket/runloop", "s3://bucket/runloop/latest.jsonl"),
    ],
)
def test_the_asset_consumer_is_scheduled_on_what_the_producer_writes(
    monkeypatch: pytest.MonkeyPatch, results_url: str, asset_uri: str
) -> None:
    from airflow.sdk import Asset

    monkeypatch.setenv("RUNLOOP_RESULTS_URL", results_url)
    module = _load("example_runloop_results_asset")
    export = module.producer_dag.get_task("export_latest")
    assert export.outlets == [Asset(uri=asset_uri)]
    assert list(module.consumer_dag.timetable.asset_condition.objects) == [Asset(uri=asset_uri)]


def test_run_and_benchmark_ids_are_required_params(bag: Any) -> None:
    # A placeholder default ("bmr_replace_me") let a trigger without conf run, and fail on a 404. With
    # no default, the trigger form asks for the id and a trigger without it is refused up front.
    from airflow.sdk.exceptions import ParamValidationError

    checked = []
    for dag_id, dag in sorted(bag.dags.items()):
        for name in ("benchmark_run_id", "benchmark_id"):
            if name not in dag.params:
                continue
            checked.append(dag_id)
            with pytest.raises(ParamValidationError, match=f"param {name}: No value passed"):
                copy.deepcopy(dag.params).validate()
            given = copy.deepcopy(dag.params)
            given.update({name: "bmx_0001"})
            assert given.validate()[name] == "bmx_0001"
            with pytest.raises(ParamValidationError, match=name):
                given.update({name: "../etc"})
    assert {"example_runloop_wait_and_export", "example_runloop_results_asset_producer"} <= set(checked)
