"""RunloopBenchmarkRunCheckOperator against the emulator over 127.0.0.1 (no mocks): a passing gate, a
planted regression (a score drop beyond its tolerance, a scenario that passed in the baseline and fails
now), the baseline by id, by metadata and from the previous XCom, and the same outcome whether the task
waits on the worker or defers to the run trigger (run in-process). Each run is listed once."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_runloop.exceptions import (
    RunloopBenchmarkRunFailedError,
    RunloopCheckFailedError,
    RunloopResultsNotReadyError,
)
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkRunCheckOperator
from airflow_provider_runloop.testing import RunloopEmulator
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger

TIMING = {"start_interval": 0, "duration": 1, "scoring": 1, "complete": 1}


def script(*scenarios: tuple[str, float]) -> dict[str, Any]:
    """One entry per scenario: ``(outcome, tests_pass score)``."""
    return {
        "seed": 3,
        "scenario_count": len(scenarios),
        "scoring_functions": ["tests_pass"],
        "timing": TIMING,
        "scenarios": [
            {
                "name": f"task-{i}",
                "outcome": outcome,
                "score": score,
                "function_scores": {"tests_pass": score},
            }
            for i, (outcome, score) in enumerate(scenarios)
        ],
    }


GOOD = script(("completed", 0.8), ("completed", 0.8), ("completed", 0.6), ("completed", 0.6))
# The same scores, a little lower: within a 0.05 tolerance.
FINE = script(("completed", 0.78), ("completed", 0.78), ("completed", 0.6), ("completed", 0.6))
# task-0 passed in GOOD and fails now; the run score drops from 0.7 to 0.5.
REGRESSED = script(("failed", 0.0), ("completed", 0.8), ("completed", 0.6), ("completed", 0.6))


class TaskInstanceStub:
    """The task instance as the check uses it: identity, XCom push (the link) and a prior-dates pull."""

    def __init__(self, previous: Any = None, task_id: str = "gate") -> None:
        self.task_id = task_id
        self.map_index = -1
        self.start_date = None
        self.previous = previous  # the return value of the task's last successful DAG run
        self.xcom: dict[str, Any] = {}
        self.pulls: list[dict[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = json.loads(json.dumps(value))

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **kwargs: Any) -> Any:
        self.pulls.append({"task_ids": task_ids, "key": key, **kwargs})
        assert kwargs.get("include_prior_dates") is True
        return self.previous


@pytest.fixture
def emulator(runloop_emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch) -> RunloopEmulator:
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", runloop_emulator.airflow_conn_json)
    return runloop_emulator


def start(emulator: RunloopEmulator, benchmark_id: str, plan: dict[str, Any], **metadata: str) -> str:
    """Start a scripted run; the clock moves on a minute after, so the next run starts later."""
    run_id = emulator.start_scripted_run(benchmark_id, script=plan, metadata=metadata)
    emulator.advance(60)
    return run_id


def finished(emulator: RunloopEmulator, *plans: dict[str, Any]) -> list[str]:
    benchmark = emulator.seed_benchmark(GOOD)
    ids = [start(emulator, benchmark.benchmark_id, plan) for plan in plans]
    emulator.advance(600)
    assert {emulator.benchmark_run_state(run_id) for run_id in ids} == {"completed"}
    return ids


def check(run_id: str, **options: Any) -> RunloopBenchmarkRunCheckOperator:
    options = {"deferrable": False, "check_interval": 0.05, "failure_settle_seconds": 0, **options}
    return RunloopBenchmarkRunCheckOperator(task_id="gate", benchmark_run_id=run_id, **options)


def listings(emulator: RunloopEmulator, run_id: str) -> int:
    """Full listings of a run's scenario runs (not the ``limit=1`` counts of a poll)."""
    return sum(
        1
        for request in emulator.requests(method="GET", path=f"/v1/benchmark_runs/{run_id}/scenario_runs")
        if "state" not in request.params and request.params.get("limit") != "1"
    )


def rows(outcome: dict[str, Any]) -> dict[str, str]:
    return {row["metric"]: row["verdict"] for row in outcome["rows"]}


def test_a_passing_check_against_a_baseline_by_id(emulator: RunloopEmulator) -> None:
    baseline, current = finished(emulator, GOOD, FINE)
    emulator.clear_requests()
    operator = check(
        current,
        baseline_benchmark_run_id=baseline,
        min_runloop_score=0.6,
        min_scoring_function_means={"tests_pass": 0.6},
        max_failed_scenarios=0,
        tolerances={"runloop_score": 0.05},
        default_tolerance="5%",
    )
    ti = TaskInstanceStub()
    outcome = operator.execute({"ti": ti})  # type: ignore[arg-type]

    assert outcome["passed"] is True
    assert outcome == operator.outcome
    assert (outcome["benchmark_run_id"], outcome["baseline_benchmark_run_id"]) == (current, baseline)
    assert outcome["baseline_source"] == "id"
    assert rows(outcome) == {
        "runloop_score": "pass",
        "scoring_function:tests_pass": "pass",
        "failed_scenarios": "pass",
        "mean_score": "pass",
        "regressed_scenarios": "pass",
    }
    regression = next(row for row in outcome["rows"] if row["kind"] == "regression")
    assert regression["baseline"] == pytest.approx(0.7)
    assert regression["current"] == pytest.approx(0.69)
    assert outcome["metrics"]["runloop_score"] == pytest.approx(0.69)
    json.dumps(outcome, allow_nan=False)
    assert ti.xcom["_link_RunloopBenchmarkRunLink"].endswith(current)
    # Each run listed once: the current run's summary and scenario states come from one listing.
    assert (listings(emulator, current), listings(emulator, baseline)) == (1, 1)


def test_a_planted_regression_fails_with_the_table(emulator: RunloopEmulator) -> None:
    baseline, current = finished(emulator, GOOD, REGRESSED)
    operator = check(current, baseline_benchmark_run_id=baseline, tolerances={"runloop_score": 0.1})

    with pytest.raises(RunloopCheckFailedError) as failed:
        operator.execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]

    assert isinstance(failed.value, AirflowFailException)  # Airflow does not retry it
    message = str(failed.value)
    assert f"Benchmark run {current} failed its checks against baseline {baseline}" in message
    assert "runloop_score" in message
    assert "metric" in message
    assert "baseline" in message
    assert "1 scenario passed in the baseline and fails now" in message
    assert "(task-0)" in message
    outcome = operator.outcome
    assert outcome is not None
    assert outcome["passed"] is False
    assert rows(outcome)["runloop_score"] == "fail"
    assert rows(outcome)["regressed_scenarios"] == "fail"
    (regressed,) = outcome["regressed_scenarios"]["scenarios"]
    assert regressed["name"] == "task-0"
    assert regressed["state"] == "failed"
    assert emulator.scenario_run_state(regressed["scenario_run_id"]) == "failed"
    assert outcome["regressed_scenarios"]["count"] == 1


def test_the_baseline_by_metadata_is_the_latest_earlier_run_with_the_same_values(
    emulator: RunloopEmulator,
) -> None:
    benchmark = emulator.seed_benchmark(GOOD)
    older = start(emulator, benchmark.benchmark_id, REGRESSED, agent="a")
    expected = start(emulator, benchmark.benchmark_id, GOOD, agent="a")
    start(emulator, benchmark.benchmark_id, FINE, agent="b")  # a later run of another agent
    current = start(emulator, benchmark.benchmark_id, REGRESSED, agent="a")
    emulator.advance(600)
    start(emulator, benchmark.benchmark_id, GOOD, agent="a")  # started after the current run
    emulator.advance(600)

    operator = check(current, baseline_from_metadata=["agent"], default_tolerance=0.5)
    with pytest.raises(RunloopCheckFailedError, match="1 scenario passed in the baseline"):
        operator.execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]
    assert operator.outcome is not None
    assert operator.outcome["baseline_benchmark_run_id"] == expected
    assert operator.outcome["baseline_source"] == "metadata"
    assert older != expected

    # No earlier run of this agent: passes on the thresholds, or fails when asked to.
    lonely = start(emulator, benchmark.benchmark_id, GOOD, agent="c")
    emulator.advance(600)
    first_night = check(lonely, baseline_from_metadata=["agent"], min_runloop_score=0.5)
    outcome = first_night.execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]
    assert outcome["passed"] is True
    assert rows(outcome) == {"runloop_score": "pass", "baseline": "skip"}
    assert "agent='c'" in outcome["baseline_note"]
    strict = check(lonely, baseline_from_metadata=["agent"], fail_without_baseline=True)
    with pytest.raises(RunloopCheckFailedError, match="No baseline"):
        strict.execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]


def test_the_baseline_from_the_previous_xcom(emulator: RunloopEmulator) -> None:
    night_1, night_2 = finished(emulator, GOOD, REGRESSED)
    first = check(night_1, baseline_from_previous_xcom=True)
    ti = TaskInstanceStub(previous=None)
    first_outcome = first.execute({"ti": ti})  # type: ignore[arg-type]
    assert first_outcome["passed"] is True
    assert ti.pulls == [{"task_ids": "gate", "key": "return_value", "include_prior_dates": True,
                         "map_indexes": -1, "default": None}]  # fmt: skip

    emulator.clear_requests()
    second = check(night_2, baseline_from_previous_xcom=True, check_scenario_regressions=False)
    outcome_or_error: Any
    with pytest.raises(RunloopCheckFailedError) as failed:
        second.execute({"ti": TaskInstanceStub(previous=json.loads(json.dumps(first_outcome)))})  # type: ignore[arg-type]
    outcome_or_error = second.outcome
    assert outcome_or_error["baseline_benchmark_run_id"] == night_1
    assert rows(outcome_or_error)["runloop_score"] == "fail"
    assert "regressed_scenarios" not in rows(outcome_or_error)
    assert "previous_xcom" in str(failed.value)
    # The baseline's numbers came from the XCom: the baseline run was not read at all.
    assert emulator.requests(path=f"/v1/benchmark_runs/{night_1}*") == []


def _plain(operator: RunloopBenchmarkRunCheckOperator, advance: Callable[[], None]) -> Any:
    """Run the task on the worker (polling) while ``advance`` moves the emulator on."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = operator.execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)  # a few polls of a run still going
    advance()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return result.get("value", result.get("error"))


def _defer(build: Callable[[], RunloopBenchmarkRunCheckOperator]) -> RunloopBenchmarkRunTrigger:
    """Start the task deferrable: it checks once and defers to the run trigger."""
    with pytest.raises(TaskDeferred) as deferred:
        build().execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, RunloopBenchmarkRunTrigger)
    assert trigger.serialize()[1]["fail_on_scenario_failure"] is False
    return trigger


def _resume(
    build: Callable[[], RunloopBenchmarkRunCheckOperator], trigger: RunloopBenchmarkRunTrigger
) -> Any:
    """Run the trigger in-process, then resume in a new operator (as Airflow does)."""

    async def first_event() -> Any:
        (event,) = [event.payload async for event in trigger.run()]
        return event

    event = json.loads(json.dumps(asyncio.run(first_event())))
    resumed = build()
    try:
        return resumed.execute_complete({"ti": TaskInstanceStub()}, event=event)  # type: ignore[arg-type]
    except RunloopCheckFailedError as exc:
        return exc, resumed.outcome


@pytest.mark.parametrize("plan", [FINE, REGRESSED], ids=["passing", "regressed"])
def test_deferrable_and_plain_give_the_same_outcome(emulator: RunloopEmulator, plan: dict[str, Any]) -> None:
    benchmark = emulator.seed_benchmark(GOOD)
    baseline = start(emulator, benchmark.benchmark_id, GOOD)
    emulator.advance(600)
    # Two runs of the same plan, both still going when their tasks start.
    plain_run = emulator.start_scripted_run(benchmark.benchmark_id, script=plan)
    deferred_run = emulator.start_scripted_run(benchmark.benchmark_id, script=plan)
    options: dict[str, Any] = {
        "baseline_benchmark_run_id": baseline,
        "tolerances": {"runloop_score": 0.05},
        "default_tolerance": "5%",
        "min_runloop_score": 0.4,
    }

    def build_deferred() -> RunloopBenchmarkRunCheckOperator:
        return check(deferred_run, deferrable=True, **options)

    trigger = _defer(build_deferred)
    plain = check(plain_run, **options)
    plain_result = _plain(plain, lambda: emulator.advance(600))
    deferred_result = _resume(build_deferred, trigger)

    def comparable(outcome: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(outcome).replace(plain_run, "<run>").replace(deferred_run, "<run>")
        data = json.loads(text)
        for item in data["regressed_scenarios"]["scenarios"]:
            item["scenario_run_id"] = "<scenario run>"
        return dict(data)

    if plan is FINE:
        assert plain_result["passed"] is True
        assert comparable(plain_result) == comparable(deferred_result)
    else:
        assert isinstance(plain_result, RunloopCheckFailedError)
        error, deferred_outcome = deferred_result
        assert isinstance(error, RunloopCheckFailedError)
        assert plain.outcome is not None
        assert comparable(plain.outcome) == comparable(deferred_outcome)
        assert rows(deferred_outcome)["regressed_scenarios"] == "fail"
    # The deferred task's run was listed by the trigger's final poll and once more for its scenarios;
    # the baseline once per task.
    assert listings(emulator, baseline) == 2


def test_bad_options_fail_at_parse_time_naming_them() -> None:
    with pytest.raises(ValueError, match="tolerances\\['scoring_function:tests_pass'\\]"):
        check("bmr_x", tolerances={"scoring_function:tests_pass": "5"})
    with pytest.raises(ValueError, match="baseline_benchmark_run_id and baseline_from_previous_xcom"):
        check("bmr_x", baseline_benchmark_run_id="bmr_y", baseline_from_previous_xcom=True)
    with pytest.raises(ValueError, match="baseline_from_metadata"):
        check("bmr_x", baseline_from_metadata="agent")
    with pytest.raises(ValueError, match="max_failed_fraction"):
        check("bmr_x", max_failed_fraction=2)
    templated = check("{{ params.run }}", baseline_benchmark_run_id="{{ params.baseline }}")
    assert templated.template_fields == ("benchmark_run_id", "baseline_benchmark_run_id", "runloop_conn_id")


def test_the_docs_example(emulator: RunloopEmulator) -> None:
    benchmark = emulator.seed_benchmark(GOOD)
    start(emulator, benchmark.benchmark_id, GOOD, agent="claude")
    run_id = start(emulator, benchmark.benchmark_id, FINE, agent="claude")
    emulator.advance(600)

    # --8<-- [start:howto_operator_runloop_check]
    from airflow_provider_runloop.operators.runloop import RunloopBenchmarkRunCheckOperator

    score_gate = RunloopBenchmarkRunCheckOperator(
        task_id="score_gate",
        benchmark_run_id=run_id,  # in a DAG, e.g. "{{ params.benchmark_run_id }}" (templated)
        # Thresholds on this run.
        min_runloop_score=0.6,
        min_scoring_function_means={"tests_pass": 0.5},
        max_failed_fraction=0.1,
        # Regression against the last completed run of the same agent.
        baseline_from_metadata=["agent"],
        tolerances={"runloop_score": 0.02, "scoring_function:tests_pass": "5%"},
        default_tolerance="10%",
        deferrable=True,  # wait in the triggerer if the run is not done yet
    )
    # --8<-- [end:howto_operator_runloop_check]
    outcome = score_gate.execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]
    assert outcome["passed"] is True
    assert outcome["baseline_source"] == "metadata"


def test_a_canceled_run_is_not_gated_and_a_run_not_done_in_time_is_not_checked(
    emulator: RunloopEmulator,
) -> None:
    benchmark = emulator.seed_benchmark(GOOD)
    canceled = emulator.start_scripted_run(benchmark.benchmark_id, script=GOOD)
    emulator.force_benchmark_run_state(canceled, "canceled")
    with pytest.raises(RunloopBenchmarkRunFailedError, match="canceled"):
        check(canceled, min_runloop_score=0.1).execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]

    running = emulator.start_scripted_run(benchmark.benchmark_id, script=GOOD)
    operator = check(running, baseline_benchmark_run_id=canceled, timeout=0.2)
    with pytest.raises(RunloopResultsNotReadyError, match="not done within the check's timeout"):
        operator.execute({"ti": TaskInstanceStub()})  # type: ignore[arg-type]
    assert operator.outcome is None
    assert listings(emulator, canceled) == 1  # by the first check only: the second never got that far
