"""Tests for ``progress.tally``: the streamed tally of scenario runs and the cheap counts."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from support.progress_runs import runs, scenario_run, tally_of

from airflow_provider_runloop.exceptions import RunloopUnknownStateError
from airflow_provider_runloop.progress import ScenarioRunCounts, ScenarioRunTally


def test_unknown_state_of_a_superseded_run_still_fails_closed() -> None:
    # Fail closed means never guess, even when a later retry of the same scenario exists.
    tally = tally_of([scenario_run("scr_new", "scn_1", "completed", start=2)])
    with pytest.raises(RunloopUnknownStateError, match="scr_old"):
        tally.add(scenario_run("scr_old", "scn_1", "exploded", start=1))


def test_tally_counts_retries_and_distinct_scenarios() -> None:
    tally = tally_of(runs(("scn_a", "failed", 1), ("scn_a", "failed", 2), ("scn_a", "completed", 3)))
    assert (tally.total_runs, tally.started_scenarios) == (3, 1)


def test_tally_does_not_keep_run_objects() -> None:
    # A streamed listing must not pile up: memory is per distinct scenario, not per run.
    scenario_runs = [
        scenario_run(f"r{i}", f"scn_{i % 10}", "completed", start=i, score=0.5, functions={"tests": 0.5})
        for i in range(200)
    ]
    refs = [weakref.ref(run) for run in scenario_runs]
    tally = tally_of(scenario_runs)
    del scenario_runs
    gc.collect()
    assert all(ref() is None for ref in refs)
    assert (tally.total_runs, tally.started_scenarios) == (200, 10)


@pytest.mark.parametrize(
    "counts",
    [
        {"total": -1, "running": 0, "scoring": 0, "scored": 0},
        {"total": 1, "running": -1, "scoring": 0, "scored": 0},
        {"total": 1, "running": 0, "scoring": 1.0, "scored": 0},
        {"total": 1, "running": 0, "scoring": 0, "scored": True},
        {"total": None, "running": 0, "scoring": 0, "scored": 0},
    ],
)
def test_scenario_run_counts_are_validated(counts: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="ScenarioRunCounts"):
        ScenarioRunCounts(**counts)


def test_retries_with_changing_scoring_functions_keep_the_latest_scores() -> None:
    # Superseded runs' function scores are dropped as retries pile up (the compaction path).
    tally = ScenarioRunTally()
    for i in range(3000):
        functions = {f"f{j}": j / 10 for j in range(i % 5)}
        tally.add(scenario_run(f"r{i}", f"scn_{i % 3}", "completed", start=i, score=0.5, functions=functions))
    assert [(sid, held.function_scores) for sid, held in tally.latest_runs()] == [
        ("scn_0", tuple((f"f{j}", j / 10) for j in range(2997 % 5))),
        ("scn_1", tuple((f"f{j}", j / 10) for j in range(2998 % 5))),
        ("scn_2", tuple((f"f{j}", j / 10) for j in range(2999 % 5))),
    ]
    assert len(list(tally.function_scores())) == 2 + 3 + 4
