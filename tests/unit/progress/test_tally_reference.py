"""The compact ``ScenarioRunTally`` against a straightforward reference: a dict of full records.

The reference keeps, per scenario, the whole latest run (as the tally did before it was made compact)
and derives the verdict's numbers from it the plain way. Random listings with retries, equal and missing
start times, every state and varying scoring functions must give the same tally and the same verdict.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.progress_runs import benchmark_run

from airflow_provider_runloop.models import ScenarioRunState, ScenarioRunView
from airflow_provider_runloop.progress import (
    MAX_LISTED_IDS,
    ScenarioRunTally,
    ScenarioStateClass,
    classify_scenario_state,
    judge,
)
from airflow_provider_runloop.progress import tally as tally_module

STATES = [state.value for state in ScenarioRunState]
FUNCTION_NAMES = ["tests", "lint", "style", "perf"]
SCENARIOS = [f"scn_{i}" for i in range(6)]


@dataclass(frozen=True)
class _Record:
    order_key: tuple[bool, int, int]
    run: ScenarioRunView


class ReferenceTally:
    """The latest run of each scenario, whole, in a dict (first-listed order)."""

    def __init__(self) -> None:
        self.latest: dict[str, _Record] = {}
        self.by_state: Counter[ScenarioRunState] = Counter()
        self.total = 0

    def add(self, run: ScenarioRunView) -> None:
        key = (run.start_time_ms is not None, run.start_time_ms or 0, -self.total)
        self.total += 1
        self.by_state[ScenarioRunState(run.state)] += 1
        held = self.latest.get(run.scenario_id)
        if held is None or key > held.order_key:
            self.latest[run.scenario_id] = _Record(key, run)

    def runs(self) -> Iterator[tuple[str, ScenarioRunView]]:
        for scenario_id, record in self.latest.items():
            yield scenario_id, record.run


def _score(run: ScenarioRunView) -> float | None:
    result = run.scoring_contract_result
    return None if result is None else result.score


def _functions(run: ScenarioRunView) -> tuple[tuple[str, float], ...]:
    result = run.scoring_contract_result
    if result is None:
        return ()
    return tuple((item.scoring_function_name, item.score) for item in result.scoring_function_results)


def _failed(run: ScenarioRunView) -> bool:
    return classify_scenario_state(run.state) is ScenarioStateClass.FINISHED_FAILURE


@st.composite
def listings(draw: st.DrawFn) -> list[ScenarioRunView]:
    count = draw(st.integers(min_value=0, max_value=30))
    # Unique run ids whose sort order has nothing to do with the listing order.
    keys = draw(st.lists(st.integers(0, 10_000), min_size=count, max_size=count, unique=True))
    listed = []
    for key in keys:
        data: dict[str, Any] = {
            "id": f"scr_{key:05d}",
            "scenario_id": draw(st.sampled_from(SCENARIOS)),
            "state": draw(st.sampled_from(STATES)),
            "metadata": {},
        }
        if draw(st.booleans()):
            data["name"] = f"scenario {key}"
        start = draw(st.one_of(st.none(), st.integers(0, 3)))  # few values: many ties
        if start is not None:
            data["start_time_ms"] = start
        if draw(st.booleans()):
            names = draw(st.lists(st.sampled_from(FUNCTION_NAMES), max_size=4, unique=True))
            data["scoring_contract_result"] = {
                "score": draw(st.sampled_from([0.0, 0.1, 0.2, 1 / 3, 0.7, 1.0])),
                "scoring_function_results": [
                    {
                        "scoring_function_name": name,
                        "score": draw(st.sampled_from([0.0, 0.3, 0.5, 1.0])),
                        "state": "complete",
                        "output": "",
                    }
                    for name in names
                ],
            }
        listed.append(ScenarioRunView.model_validate(data))
    return listed


def _reference_summary(
    reference: ReferenceTally, accept_scored: bool, expected: list[str] | None
) -> dict[str, Any]:
    """The verdict's numbers from whole records, computed as ``judge`` did before the tally was compact."""
    latest = dict(reference.runs())
    classes = {
        sid: classify_scenario_state(run.state, accept_scored=accept_scored) for sid, run in latest.items()
    }
    failed_ids = [
        latest[sid].id for sid, cls in classes.items() if cls is ScenarioStateClass.FINISHED_FAILURE
    ]
    scored = [run for run in latest.values() if _score(run) is not None]
    totals: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for run in scored:
        for name, score in _functions(run):
            totals[name] = totals.get(name, 0.0) + score
            counts[name] += 1
    state_counter = Counter(ScenarioRunState(run.state) for run in latest.values())
    missing = [sid for sid in dict.fromkeys(expected or ()) if sid not in latest]
    return {
        "started_scenarios": len(latest),
        "finished_scenarios": sum(1 for cls in classes.values() if cls.is_finished),
        "total_scenario_runs": reference.total,
        "state_counts": {state.value: state_counter[state] for state in ScenarioRunState},
        "mean_score": (sum(_score(run) or 0.0 for run in scored) / len(scored)) if scored else None,
        "scored_scenarios": len(scored),
        "scoring_function_mean_scores": {name: totals[name] / counts[name] for name in sorted(counts)},
        "failed_scenario_count": len(failed_ids),
        "failed_scenario_run_ids": heapq.nsmallest(MAX_LISTED_IDS, failed_ids),
        "failed_scenario_run_names": {
            run.id: run.name
            for run in latest.values()
            if run.id in heapq.nsmallest(MAX_LISTED_IDS, failed_ids) and run.name is not None
        },
        "retried_scenario_runs": reference.total - len(latest),
        "missing_scenario_count": len(missing) if expected else None,
        "missing_scenario_ids": missing[:MAX_LISTED_IDS] if expected else [],
        "failed_scenario_run_ids_truncated": len(failed_ids) > MAX_LISTED_IDS,
        "missing_scenario_ids_truncated": len(missing) > MAX_LISTED_IDS,
    }


@pytest.fixture(autouse=True)
def _compact_often(monkeypatch: pytest.MonkeyPatch) -> None:
    # Superseded function scores are compacted away at once, so every listing exercises compaction.
    monkeypatch.setattr(tally_module, "_COMPACT_AFTER", 0)


@given(
    listed=listings(),
    accept_scored=st.booleans(),
    expected=st.one_of(st.none(), st.lists(st.sampled_from([*SCENARIOS, "scn_never"]), max_size=8)),
    run_state=st.sampled_from(["running", "completed"]),
)
def test_the_compact_tally_agrees_with_whole_records(
    listed: list[ScenarioRunView], accept_scored: bool, expected: list[str] | None, run_state: str
) -> None:
    tally, reference = ScenarioRunTally(), ReferenceTally()
    for run in listed:
        tally.add(run)
        reference.add(run)

    assert (tally.total_runs, tally.started_scenarios) == (reference.total, len(reference.latest))
    assert tally.runs_by_state() == dict(reference.by_state)
    got = list(tally.latest_runs())
    assert [sid for sid, _ in got] == list(reference.latest)
    for (scenario_id, held), (_, record) in zip(got, reference.latest.items(), strict=True):
        run = record.run
        assert held.order_key == record.order_key
        assert held.state is ScenarioRunState(run.state)
        assert held.run_id == (run.id if _failed(run) else None)
        assert held.score == _score(run)
        assert held.function_scores == _functions(run)
        assert tally.latest_run(scenario_id) == held
        assert tally.latest_state(scenario_id) is held.state
    assert tally.latest_run("scn_never") is None
    assert sorted(tally.failed_run_ids()) == sorted(run.id for _, run in reference.runs() if _failed(run))
    assert sorted(tally.failed_runs(), key=str) == sorted(
        ((run.id, run.name) for _, run in reference.runs() if _failed(run)), key=str
    )

    summary = judge(
        benchmark_run(run_state), tally, expected_scenario_ids=expected, accept_scored=accept_scored
    ).summary.to_dict()
    scored_final = accept_scored or run_state == "completed"  # as progress.scored_is_final
    want = _reference_summary(reference, scored_final, expected)
    assert {key: summary[key] for key in want} == want
