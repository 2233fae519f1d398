"""Tests for ``progress.summary``: the progress line, and the summary as XCom value and trigger event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.progress_runs import benchmark_run, judged, mixed_runs, runs, sample_summaries, scenario_run

from airflow_provider_runloop.models import ScenarioRunView
from airflow_provider_runloop.progress import (
    BenchmarkRunSummary,
    ScenarioRunCounts,
    ScenarioRunTally,
    assess_counts,
    format_progress,
    judge,
)

# --- progress lines -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario_runs", "options", "line"),
    [
        (
            mixed_runs(),
            {"expected_count": 120},
            "bmr_x: 33/120 scenarios finished (completed 30, failed 2, timeout 1; running 70, scoring 13)",
        ),
        (
            mixed_runs(),
            {},
            "bmr_x: 33/? scenarios finished (completed 30, failed 2, timeout 1; running 70, scoring 13)",
        ),
        (runs(), {}, "bmr_x: 0/? scenarios finished (no scenario runs yet)"),
        (runs(("scn_a", "running")), {"expected_count": 2}, "bmr_x: 0/2 scenarios finished (running 1)"),
        (
            runs(("scn_a", "scored"), ("scn_b", "completed")),
            {"expected_count": 3},
            "bmr_x: 1/3 scenarios finished (completed 1; scored 1)",
        ),
        (
            runs(("scn_a", "scored"), ("scn_b", "completed"), ("scn_c", "running")),
            {"expected_count": 3, "accept_scored": True},
            "bmr_x: 2/3 scenarios finished (scored 1, completed 1; running 1)",
        ),
    ],
)
def test_progress_line_from_a_full_tally(
    scenario_runs: list[ScenarioRunView], options: dict[str, Any], line: str
) -> None:
    verdict = judged("running", scenario_runs, **options)
    assert format_progress(verdict.summary) == line
    assert verdict.message == line  # while not done, the message is the progress line


@pytest.mark.parametrize(
    ("counts", "options", "line"),
    [
        (
            (120, 70, 13, 0),
            {"expected_count": 120},
            "bmr_x: 37/120 scenarios finished (running 70, scoring 13)",
        ),
        ((120, 70, 13, 0), {}, "bmr_x: 37/? scenarios finished (running 70, scoring 13)"),
        (
            (6, 1, 2, 3),
            {"expected_count": 6},
            "bmr_x: 0/6 scenarios finished (running 1, scoring 2, scored 3)",
        ),
        (
            (6, 1, 2, 3),
            {"expected_count": 6, "accept_scored": True},
            "bmr_x: 3/6 scenarios finished (scored 3; running 1, scoring 2)",
        ),
        ((0, 0, 0, 0), {"expected_count": 6}, "bmr_x: 0/6 scenarios finished (no scenario runs yet)"),
        ((4, 0, 0, 0), {"expected_count": 6}, "bmr_x: 4/6 scenarios finished (no active runs)"),
    ],
)
def test_progress_line_from_counts(
    counts: tuple[int, int, int, int], options: dict[str, Any], line: str
) -> None:
    total, running, scoring, scored = counts
    run_counts = ScenarioRunCounts(total=total, running=running, scoring=scoring, scored=scored)
    verdict = assess_counts(benchmark_run("running"), run_counts, **options)
    assert format_progress(verdict.summary) == line
    assert verdict.message == line


# --- the summary as XCom value and trigger event ------------------------------------------------------


@pytest.mark.parametrize("summary", sample_summaries())
def test_summary_round_trips_through_json(summary: BenchmarkRunSummary) -> None:
    wire = json.dumps(summary.to_dict(), allow_nan=False)
    assert BenchmarkRunSummary.from_dict(json.loads(wire)) == summary
    assert BenchmarkRunSummary.from_dict(summary.to_dict()) == summary


def test_summary_to_dict_holds_json_primitives_only() -> None:
    def primitive(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(key, str) and primitive(item) for key, item in value.items())
        if isinstance(value, list):
            return all(primitive(item) for item in value)
        return value is None or isinstance(value, (str, int, float, bool))

    for summary in sample_summaries():
        assert primitive(summary.to_dict())


def test_summary_stays_small_for_a_huge_run() -> None:
    # 10,000 runs: 5,000 failures, realistic 25-character ids, three scoring functions each, and
    # 100 expected scenarios that never started.
    scenario_runs = (
        scenario_run(
            f"scr_{i:021d}",
            f"scn_{i:021d}",
            "failed" if i % 2 else "completed",
            start=i,
            score=(i % 100) / 100,
            functions={"unit_tests": 0.5, "lint": 1.0, "similarity": 0.25},
        )
        for i in range(10_000)
    )
    tally = ScenarioRunTally()
    tally.extend(scenario_runs)
    expected_ids = [f"scn_{i:021d}" for i in range(10_100)]
    summary = judge(benchmark_run("completed"), tally, expected_scenario_ids=expected_ids).summary
    wire = json.dumps(summary.to_dict())
    assert len(wire.encode()) < 8 * 1024
    assert summary.failed_scenario_count == 5_000
    assert summary.failed_scenario_run_ids_truncated is True
    assert summary.missing_scenario_count == 100
    assert summary.missing_scenario_ids_truncated is True
    assert BenchmarkRunSummary.from_dict(json.loads(wire)) == summary


def test_from_dict_ignores_unknown_keys() -> None:
    summary = sample_summaries()[0]
    assert BenchmarkRunSummary.from_dict({**summary.to_dict(), "added_in_a_later_version": 1}) == summary


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("done", "yes"),
        ("done", 1),
        ("finished_scenarios", True),
        ("finished_scenarios", "3"),
        ("expected_scenarios", 2.5),
        ("mean_score", "0.5"),
        ("state_counts", [1, 2]),
        ("state_counts", {"completed": "1"}),
        ("failed_scenario_run_ids", "scr_1"),
        ("missing_scenario_ids", [1]),
        ("mean_score", float("nan")),
        ("mean_score", float("inf")),
        ("mean_score", 10**400),
        ("benchmark_score", float("-inf")),
        ("scoring_function_mean_scores", {"f": float("nan")}),
    ],
)
def test_from_dict_rejects_wrong_types(key: str, value: object) -> None:
    data = sample_summaries()[0].to_dict()
    data[key] = value
    with pytest.raises(ValueError, match=key):
        BenchmarkRunSummary.from_dict(data)


def test_from_dict_rejects_missing_fields() -> None:
    data = sample_summaries()[0].to_dict()
    del data["success"]
    with pytest.raises(ValueError, match="'success' is missing"):
        BenchmarkRunSummary.from_dict(data)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (0.4, "0 seconds"),
        (-3, "0 seconds"),  # clocks apart: never a negative duration
        (1, "1 second"),
        (59.6, "1 minute"),
        (185, "3 minutes 5 seconds"),
        (3600 + 29, "1 hour"),  # from an hour on, whole minutes
        (3600 + 31, "1 hour 1 minute"),
        (2 * 86400 + 7200, "2 days 2 hours"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, words: str) -> None:
    from airflow_provider_runloop.progress import human_duration

    assert human_duration(seconds) == words
