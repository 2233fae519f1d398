"""RunloopBenchmarkResultsOperator against an in-memory hook: checks, XCom, staging, the completion rule.

The emulator-backed tests (tests/integration/results) cover the real HTTP path; these pin the
operator's own decisions with tables of inputs.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException, AirflowOptionalProviderFeatureException

from airflow_provider_runloop.exceptions import (
    RunloopBenchmarkRunFailedError,
    RunloopResultsNotReadyError,
    RunloopUnknownStateError,
)
from airflow_provider_runloop.models import BenchmarkRunView, ScenarioRunView
from airflow_provider_runloop.operators.results import EXPORT_PAGE_SIZE
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator

BASE_URL = "https://api.runloop.ai"


def _scenario_run(index: int, state: str = "completed", **extra: Any) -> ScenarioRunView:
    data: dict[str, Any] = {
        "id": f"scr_{index:05d}",
        "scenario_id": f"scn_{index:05d}",
        "devbox_id": f"dbx_{index}",
        "benchmark_run_id": "bmr_1",
        "state": state,
        "start_time_ms": 1_700_000_000_000 + index,
        "duration_ms": 1000 + index,
        **extra,
    }
    if state in ("completed", "scored"):
        data.setdefault(
            "scoring_contract_result",
            {
                "score": 0.5,
                "scoring_function_results": [
                    {"scoring_function_name": "tests", "score": 0.5, "state": "complete", "output": "log"}
                ],
            },
        )
    return ScenarioRunView.model_validate(data)


class FakeClient:
    base_url = BASE_URL


class FakeHook:
    """The slice of RunloopHook the operator uses, recording every call."""

    def __init__(
        self,
        runs: list[ScenarioRunView],
        *,
        run_state: str = "completed",
        benchmark_id: str | None = None,
        expected_ids: list[str] | None = None,
        fail_after: int | None = None,
    ) -> None:
        self.runs = runs
        self.run = BenchmarkRunView.model_validate(
            {"id": "bmr_1", "state": run_state, "benchmark_id": benchmark_id}
        )
        self.expected_ids = expected_ids
        self.fail_after = fail_after
        self.calls: list[str] = []
        self.yielded = 0
        self.closed = False

    def get_conn(self) -> FakeClient:
        return FakeClient()

    def get_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        self.calls.append(f"get_benchmark_run {benchmark_run_id}")
        return self.run

    def get_expected_scenario_ids(self, run: BenchmarkRunView) -> list[str] | None:
        self.calls.append("get_expected_scenario_ids")
        return self.expected_ids

    def list_scenario_runs(self, benchmark_run_id: str, *, page_size: int | None = None) -> Iterator[Any]:
        self.calls.append(f"list_scenario_runs {benchmark_run_id} page_size={page_size}")
        for run in self.runs:
            if self.fail_after is not None and self.yielded >= self.fail_after:
                raise ConnectionError("the connection dropped in the middle of the listing")
            self.yielded += 1
            yield run

    def close(self) -> None:
        self.closed = True


class FakeTI:
    dag_id = "results_dag"
    task_id = "export"
    run_id = "manual__1"
    map_index = -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _operator(hook: FakeHook | None = None, **kwargs: Any) -> RunloopBenchmarkResultsOperator:
    kwargs.setdefault("benchmark_run_id", "bmr_1")
    operator = RunloopBenchmarkResultsOperator(task_id="export", **kwargs)
    if hook is not None:
        operator.__dict__["hook"] = hook  # what the cached_property would hold
    return operator


def _execute(operator: RunloopBenchmarkResultsOperator) -> tuple[dict[str, Any], FakeTI]:
    ti = FakeTI()
    result = operator.execute({"ti": ti})  # type: ignore[arg-type]
    json.dumps(result)  # an XCom value must be JSON
    return result, ti


def _files(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


# --- construction ------------------------------------------------------------------------------------


def test_templated_fields_link_and_no_hook_at_construction() -> None:
    operator = _operator(runloop_conn_id="does_not_exist")
    assert set(operator.template_fields) == {
        "benchmark_run_id",
        "destination",
        "runloop_conn_id",
        "baseline_benchmark_run_id",
    }
    assert [link.name for link in operator.operator_extra_links] == [
        "Runloop benchmark run",
        "Runloop results report",
    ]
    assert "hook" not in operator.__dict__  # no connection lookup, no network, at parse time


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"format": "xml"}, ValueError, "format must be one of 'jsonl', 'json', 'csv', 'parquet'"),
        ({"benchmark_run_id": "bmr/../x"}, ValueError, "benchmark_run_id must be a Runloop id"),
        ({"destination": "/data/out.jsonl"}, ValueError, "must be a URL with a scheme"),
        ({"destination": "file://data/out.jsonl"}, ValueError, "three slashes"),
        ({"destination": "file:///data/out/"}, ValueError, "name a file"),
        ({"destination": "s3://bucket"}, ValueError, "must name an object inside a bucket"),
        ({"destination": "s3://bucket/"}, ValueError, "must name an object inside a bucket"),
        ({"destination": 42}, TypeError, "destination must be an ObjectStoragePath or a URL"),
        ({"storage_conn_id": "aws"}, ValueError, "storage_conn_id is set but destination is not"),
        (
            {"destination": "s3://aws_a@bucket/k.jsonl", "storage_conn_id": "aws_b"},
            ValueError,
            "give one of them",
        ),
        ({"expected_scenario_count": 0}, ValueError, "expected_scenario_count must be a whole number >= 1"),
        ({"expected_scenario_count": True}, ValueError, "expected_scenario_count"),
        ({"max_xcom_records_bytes": -1}, ValueError, "max_xcom_records_bytes"),
        ({"page_size": 5001}, ValueError, "page_size must be an integer from 1 to 5000"),
        ({"page_size": 0}, ValueError, "page_size must be a whole number >= 1"),
        ({"allow_partial": "yes"}, ValueError, "allow_partial must be True or False"),
        ({"include_scorer_output": None}, ValueError, "include_scorer_output must be True or False"),
        ({"runloop_conn_id": ""}, ValueError, "runloop_conn_id must be a non-empty string"),
    ],
)
def test_bad_arguments_are_rejected_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _operator(**kwargs)


def test_templated_values_are_checked_at_run_time_not_at_parse_time() -> None:
    operator = _operator(benchmark_run_id="{{ params.run }}", destination="{{ params.where }}")
    assert operator.outlets == []


@pytest.mark.parametrize(
    ("destination", "uri"),
    [
        ("file:///data/results/run.jsonl", "file:///data/results/run.jsonl"),
        ("s3://bucket/results/run.parquet", "s3://bucket/results/run.parquet"),
        # A connection id given as user info is not part of the data's name.
        ("s3://aws_results@bucket/results/run.csv", "s3://bucket/results/run.csv"),
    ],
)
def test_a_static_destination_is_declared_as_an_asset_outlet(destination: str, uri: str) -> None:
    operator = _operator(destination=destination)
    assert operator.outlets == [Asset(uri=uri)]


def test_an_object_storage_path_destination_is_an_asset_too() -> None:
    operator = _operator(destination=ObjectStoragePath("file:///data/results/run.json"))
    assert operator.outlets == [Asset(uri="file:///data/results/run.json")]


def test_user_outlets_are_kept_beside_the_destination() -> None:
    mine = Asset(uri="s3://elsewhere/marker")
    operator = _operator(destination="file:///data/r.jsonl", outlets=[mine])
    assert operator.outlets == [mine, Asset(uri="file:///data/r.jsonl")]


# --- to XCom ------------------------------------------------------------------------------------------


def test_without_a_destination_small_results_go_to_xcom_with_the_summary() -> None:
    runs = [_scenario_run(1), _scenario_run(2, "failed")]
    hook = FakeHook(runs)
    result, ti = _execute(_operator(hook))
    assert set(result) == {"summary", "record_count", "records"}
    assert result["record_count"] == 2
    assert [record["scenario_run_id"] for record in result["records"]] == ["scr_00001", "scr_00002"]
    summary = result["summary"]
    assert summary["done"] is True
    assert summary["state_counts"]["failed"] == 1
    assert summary["failed_scenario_run_ids"] == ["scr_00002"]
    assert summary["mean_score"] == 0.5
    assert summary["scoring_function_mean_scores"] == {"tests": 0.5}
    # The dashboard link is pushed under the link's key.
    assert ti.xcom == {
        "_link_RunloopBenchmarkRunLink": f"{BASE_URL.replace('api.', 'platform.')}"
        "/benchmarks/custom/single/runs/bmr_1"
    }
    assert hook.closed


def test_results_too_large_for_xcom_fail_early_and_ask_for_a_destination() -> None:
    runs = [_scenario_run(index) for index in range(1000)]
    hook = FakeHook(runs)
    with pytest.raises(AirflowFailException, match=r"too large for XCom.*Set destination="):
        _execute(_operator(hook, max_xcom_records_bytes=2000))
    # It stopped as soon as the limit was passed instead of listing everything first.
    assert hook.yielded < 10


# --- to a file -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_a_file_destination_gets_every_record_and_the_xcom_stays_small(tmp_path: Path, fmt: str) -> None:
    runs = [_scenario_run(index) for index in range(50)]
    target = tmp_path / "out" / f"results.{fmt}"
    result, _ = _execute(_operator(FakeHook(runs), destination=f"file://{target}", format=fmt))
    assert result["destination"] == f"file://{target}"
    assert result["format"] == fmt
    assert result["record_count"] == 50
    assert result["storage_conn_id"] is None
    assert "records" not in result
    assert len(json.dumps(result)) < 4096
    assert _files(tmp_path) == [f"out/results.{fmt}"]  # no temporary sibling left
    assert target.stat().st_size > 0


def test_the_asset_event_says_what_was_exported(tmp_path: Path) -> None:
    from collections import defaultdict
    from types import SimpleNamespace

    from airflow.sdk import Asset

    target = tmp_path / "results.jsonl"
    runs = [_scenario_run(index) for index in range(3)]
    events: defaultdict[Any, SimpleNamespace] = defaultdict(SimpleNamespace)
    operator = _operator(FakeHook(runs), destination=f"file://{target}")
    result = operator.execute({"ti": FakeTI(), "outlet_events": events})  # type: ignore[arg-type]
    extra = events[Asset(uri=f"file://{target}")].extra
    assert extra == {
        "benchmark_run_id": result["summary"]["benchmark_run_id"],
        "record_count": 3,
        "format": "jsonl",
        "runloop_score": result["summary"]["benchmark_score"],
        "failed_scenario_count": result["summary"]["failed_scenario_count"],
    }
    json.dumps(extra, allow_nan=False)


def test_a_retry_overwrites_the_same_file(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    first, _ = _execute(_operator(FakeHook([_scenario_run(1)]), destination=f"file://{target}"))
    content = target.read_bytes()
    second, _ = _execute(_operator(FakeHook([_scenario_run(1)]), destination=f"file://{target}"))
    assert target.read_bytes() == content
    assert first == second
    assert _files(tmp_path) == ["results.jsonl"]


def test_a_failure_in_the_middle_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_text("the previous, complete export\n")
    hook = FakeHook([_scenario_run(index) for index in range(100)], fail_after=60)
    with pytest.raises(ConnectionError):
        _execute(_operator(hook, destination=f"file://{target}"))
    # The old file is untouched and no partial or temporary file exists.
    assert target.read_text() == "the previous, complete export\n"
    assert _files(tmp_path) == ["results.jsonl"]
    assert hook.closed


def test_a_leftover_from_a_crashed_try_is_overwritten_by_the_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_runloop import storage

    target = tmp_path / "results.jsonl"
    # A crash (the worker killed mid-write) runs no cleanup: simulate it by disabling the cleanup.
    with monkeypatch.context() as patch:
        patch.setattr(storage.StagedFile, "discard", lambda self: None)
        with pytest.raises(ConnectionError):
            _execute(_operator(FakeHook([_scenario_run(1)], fail_after=0), destination=f"file://{target}"))
    leftovers = _files(tmp_path)
    assert len(leftovers) == 1
    assert leftovers[0].startswith(".results.jsonl.runloop-")
    assert leftovers[0].endswith(".partial")
    # The retry of the same task instance stages under the same name, so the leftover is reused.
    _execute(_operator(FakeHook([_scenario_run(1)]), destination=f"file://{target}"))
    assert _files(tmp_path) == ["results.jsonl"]


TOKEN = "0123456789abcdef"
DAY = 24 * 3600


@pytest.mark.parametrize(
    ("leftover", "age_seconds", "removed"),
    [
        pytest.param(f".results.jsonl.runloop-{TOKEN}.partial", DAY + 60, True, id="killed-a-day-ago"),
        pytest.param(f".results.jsonl.runloop-{TOKEN}.partial", 3600, False, id="young:-maybe-running"),
        pytest.param(f".results.jsonl.{TOKEN}.partial", 2 * DAY, True, id="old-naming-scheme"),
        pytest.param(f".other.jsonl.runloop-{TOKEN}.partial", 2 * DAY, False, id="another-destination"),
        pytest.param(f".results.jsonl.x.runloop-{TOKEN}.partial", 2 * DAY, False, id="a-longer-name"),
        pytest.param(".results.jsonl.notes.partial", 2 * DAY, False, id="not-a-staged-name"),
        pytest.param(f"results.jsonl.runloop-{TOKEN}.partial", 2 * DAY, False, id="not-hidden"),
    ],
)
def test_an_export_removes_stale_staged_copies_of_its_own_destination(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, leftover: str, age_seconds: float, removed: bool
) -> None:
    # A killed worker left a staged copy, and the next DAG run (another token) exports to the same file.
    stale = tmp_path / leftover
    stale.write_text("half an export")
    written = time.time() - age_seconds
    os.utime(stale, (written, written))
    caplog.set_level(logging.INFO)
    _execute(_operator(FakeHook([_scenario_run(1)]), destination=f"file://{tmp_path / 'results.jsonl'}"))

    expected = ["results.jsonl"] if removed else sorted(["results.jsonl", leftover])
    assert _files(tmp_path) == expected
    assert (
        f"Removed {stale}: a staged copy of file://{tmp_path / 'results.jsonl'}" in caplog.text
    ) is removed


def test_the_staged_name_says_what_it_is_and_whose_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_runloop import storage

    target = tmp_path / "results.jsonl"
    seen: list[str] = []
    monkeypatch.setattr(storage.StagedFile, "commit", lambda self: seen.append(self._temp))
    _execute(_operator(FakeHook([_scenario_run(1)]), destination=f"file://{target}"))
    (staged,) = seen
    assert re.fullmatch(
        rf"{re.escape(str(tmp_path))}/\.results\.jsonl\.runloop-[0-9a-f]{{16}}\.partial", staged
    )


# --- the completion rule ---------------------------------------------------------------------------------


# The Parquet writer must be closed on refusal too, or pyarrow closes it later into a closed file.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_active_scenario_runs_stop_the_export_and_are_named(tmp_path: Path, fmt: str) -> None:
    runs = [_scenario_run(1), _scenario_run(2, "running"), _scenario_run(3, "scoring")]
    hook = FakeHook(runs, run_state="running")
    with pytest.raises(RunloopResultsNotReadyError) as caught:
        _execute(_operator(hook, destination=f"file://{tmp_path}/results.{fmt}", format=fmt))
    message = str(caught.value)
    del caught  # its traceback holds the writer: let it go, so a writer left open would surface now
    gc.collect()
    assert "2 scenario runs are still active (running 1, scoring 1): scr_00002, scr_00003" in message
    assert "allow_partial=True" in message
    assert _files(tmp_path) == []


def test_missing_expected_scenarios_stop_the_export_and_are_named(tmp_path: Path) -> None:
    runs = [_scenario_run(1)]
    hook = FakeHook(runs, run_state="running", benchmark_id="bmd_1", expected_ids=["scn_00001", "scn_00002"])
    with pytest.raises(RunloopResultsNotReadyError, match="1 expected scenarios have not started: scn_00002"):
        _execute(_operator(hook, destination=f"file://{tmp_path}/results.jsonl"))
    assert _files(tmp_path) == []


def test_an_explicit_expected_count_is_used_instead_of_the_benchmark(tmp_path: Path) -> None:
    hook = FakeHook([_scenario_run(1)], run_state="running", benchmark_id="bmd_1", expected_ids=["a", "b"])
    result, _ = _execute(_operator(hook, expected_scenario_count=1))
    assert result["summary"]["done"] is True
    assert "get_expected_scenario_ids" not in hook.calls


def test_allow_partial_exports_what_is_there(tmp_path: Path) -> None:
    runs = [_scenario_run(1), _scenario_run(2, "running")]
    target = tmp_path / "results.jsonl"
    hook = FakeHook(runs, run_state="running")
    result, _ = _execute(_operator(hook, destination=f"file://{target}", allow_partial=True))
    assert result["summary"]["done"] is False
    assert len(target.read_text().splitlines()) == 2


def test_scored_runs_are_active_unless_accepted() -> None:
    runs = [_scenario_run(1), _scenario_run(2, "scored")]
    with pytest.raises(RunloopResultsNotReadyError, match="scored 1"):
        _execute(_operator(FakeHook(runs, run_state="running", expected_ids=None), expected_scenario_count=2))
    result, _ = _execute(
        _operator(FakeHook(runs, run_state="running"), expected_scenario_count=2, accept_scored=True)
    )
    assert result["summary"]["done"] is True


@pytest.mark.parametrize("run_state", ["failed", "canceled"])
def test_a_failed_or_canceled_run_is_exported_with_its_failures(tmp_path: Path, run_state: str) -> None:
    runs = [_scenario_run(1), _scenario_run(2, "canceled")]
    target = tmp_path / "results.jsonl"
    result, _ = _execute(_operator(FakeHook(runs, run_state=run_state), destination=f"file://{target}"))
    assert result["summary"]["success"] is False
    assert result["summary"]["benchmark_run_state"] == run_state
    assert result["summary"]["failed_scenario_run_ids"] == ["scr_00002"]
    assert len(target.read_text().splitlines()) == 2


def test_fail_on_scenario_failure_fails_after_writing(tmp_path: Path) -> None:
    runs = [_scenario_run(1), _scenario_run(2, "timeout")]
    target = tmp_path / "results.jsonl"
    operator = _operator(FakeHook(runs), destination=f"file://{target}", fail_on_scenario_failure=True)
    with pytest.raises(RunloopBenchmarkRunFailedError, match=f"scr_00002.*results are at file://{target}"):
        _execute(operator)
    assert len(target.read_text().splitlines()) == 2


# --- bad input found at run time, before any request -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"benchmark_run_id": "bad id"}, ValueError, "benchmark_run_id must be a Runloop id"),
        ({"destination": "gs://bucket/results.jsonl"}, ValueError, "No filesystem is registered for gs://"),
        ({"destination": "s3:/bucket/k"}, ValueError, "must name an object inside a bucket"),
    ],
)
def test_rendered_values_are_checked_before_any_request(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    hook = FakeHook([_scenario_run(1)])
    operator = _operator(hook, benchmark_run_id="{{ x }}", destination="{{ y }}")
    operator.benchmark_run_id = kwargs.get("benchmark_run_id", "bmr_1")  # as rendered
    operator.destination = kwargs.get("destination", "file:///tmp/never-written.jsonl")
    with pytest.raises(error, match=message):
        _execute(operator)
    assert hook.calls == []


def test_an_unwritable_destination_fails_before_any_request(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    hook = FakeHook([_scenario_run(1)])
    operator = _operator(hook, destination=f"file://{tmp_path}/a_file/results.jsonl")
    with pytest.raises(ValueError, match=r"Cannot write results to file://.*Nothing was fetched"):
        _execute(operator)
    assert hook.calls == []


def test_a_directory_destination_fails_before_any_request(tmp_path: Path) -> None:
    (tmp_path / "results.jsonl").mkdir()
    hook = FakeHook([_scenario_run(1)])
    with pytest.raises(ValueError, match="is a directory"):
        _execute(_operator(hook, destination=f"file://{tmp_path}/results.jsonl"))
    assert hook.calls == []
    assert _files(tmp_path) == []


def test_parquet_without_pyarrow_fails_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    hook = FakeHook([_scenario_run(1)])
    operator = _operator(hook, destination=f"file://{tmp_path}/results.parquet", format="parquet")
    with pytest.raises(AirflowOptionalProviderFeatureException, match=r"airflow-provider-runloop\[parquet\]"):
        _execute(operator)
    assert hook.calls == []
    assert _files(tmp_path) == []


def test_s3_without_s3fs_names_the_extra_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)
    hook = FakeHook([_scenario_run(1)])
    operator = _operator(hook, destination="s3://bucket/results.jsonl", storage_conn_id="aws_without_s3fs")
    with pytest.raises(AirflowOptionalProviderFeatureException, match=r"airflow-provider-runloop\[s3\]"):
        _execute(operator)
    assert hook.calls == []


def test_an_unknown_scenario_run_state_stops_the_export_and_leaves_nothing(tmp_path: Path) -> None:
    runs = [_scenario_run(1), _scenario_run(2, "hibernating")]
    with pytest.raises(RunloopUnknownStateError, match="scr_00002 is in state 'hibernating'"):
        _execute(
            _operator(FakeHook(runs), destination=f"file://{tmp_path}/results.parquet", format="parquet")
        )
    assert _files(tmp_path) == []


def test_page_size_is_passed_to_the_listing() -> None:
    hook = FakeHook([_scenario_run(1)])
    _execute(_operator(hook, page_size=100))
    assert "list_scenario_runs bmr_1 page_size=100" in hook.calls


def test_the_listing_is_paged_by_export_page_size_by_default() -> None:
    hook = FakeHook([_scenario_run(1)])
    _execute(_operator(hook))
    assert f"list_scenario_runs bmr_1 page_size={EXPORT_PAGE_SIZE}" in hook.calls
