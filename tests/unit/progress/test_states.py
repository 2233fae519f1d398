"""Tests for ``progress.states``: the scenario-state table, and unknown states failing closed."""

from __future__ import annotations

import pytest
from support.progress_runs import benchmark_run, scenario_run

from airflow_provider_runloop.exceptions import RunloopUnknownStateError
from airflow_provider_runloop.progress import (
    ScenarioRunCounts,
    ScenarioRunTally,
    ScenarioStateClass,
    assess_counts,
    classify_scenario_state,
    judge,
)

ACTIVE = ScenarioStateClass.ACTIVE
SUCCESS = ScenarioStateClass.FINISHED_SUCCESS
FAILURE = ScenarioStateClass.FINISHED_FAILURE


@pytest.mark.parametrize(
    ("state", "accept_scored", "expected"),
    [
        ("running", False, ACTIVE),
        ("running", True, ACTIVE),
        ("scoring", False, ACTIVE),
        ("scoring", True, ACTIVE),
        ("scored", False, ACTIVE),
        ("scored", True, SUCCESS),
        ("completed", False, SUCCESS),
        ("completed", True, SUCCESS),
        ("failed", False, FAILURE),
        ("failed", True, FAILURE),
        ("timeout", False, FAILURE),
        ("timeout", True, FAILURE),
        ("canceled", False, FAILURE),
        ("canceled", True, FAILURE),
    ],
)
def test_state_table(state: str, accept_scored: bool, expected: ScenarioStateClass) -> None:
    parsed = scenario_run("scr_1", "scn_1", state).state
    assert classify_scenario_state(parsed, accept_scored=accept_scored) is expected
    assert classify_scenario_state(state, accept_scored=accept_scored) is expected


@pytest.mark.parametrize("state", ["paused", "RUNNING", "cancelled", ""])
def test_unknown_scenario_state_fails_closed_naming_state_and_run(state: str) -> None:
    with pytest.raises(RunloopUnknownStateError, match=rf"scr_odd.*{state!r}"):
        classify_scenario_state(state, scenario_run_id="scr_odd")
    tally = ScenarioRunTally()
    with pytest.raises(RunloopUnknownStateError, match=rf"Scenario run scr_odd is in state {state!r}"):
        tally.add(scenario_run("scr_odd", "scn_1", state))


@pytest.mark.parametrize("state", ["paused", "pending", "cancelled", "COMPLETED"])
def test_unknown_benchmark_run_state_fails_closed_naming_state_and_run(state: str) -> None:
    run = benchmark_run(state, run_id="bmr_weird")
    with pytest.raises(RunloopUnknownStateError, match=rf"Benchmark run bmr_weird is in state {state!r}"):
        judge(run, ScenarioRunTally())
    with pytest.raises(RunloopUnknownStateError, match=rf"bmr_weird.*{state!r}"):
        assess_counts(run, ScenarioRunCounts(total=0, running=0, scoring=0, scored=0))
