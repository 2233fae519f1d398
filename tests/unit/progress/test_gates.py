"""Tests for ``progress.gates``: thresholds, tolerances, regressions against a baseline, the outcome."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.progress_runs import benchmark_run, scenario_run, tally_of

from airflow_provider_runloop.progress import (
    MAX_REGRESSED_SCENARIOS,
    GateMetrics,
    GateThresholds,
    RegressedScenario,
    Tolerance,
    evaluate_gate,
    find_regressed_scenarios,
    judge,
    parse_tolerances,
)


def metrics(
    run_id: str = "bmr_now",
    *,
    runloop: float | None = 0.5,
    mean: float | None = 0.5,
    functions: dict[str, float] | None = None,
    failed: int | None = 0,
    scenarios: int = 10,
) -> GateMetrics:
    return GateMetrics(run_id, runloop, mean, functions or {}, failed, scenarios)


def verdicts(outcome: Any) -> dict[str, str]:
    return {row.metric: row.verdict for row in outcome.rows}


# --- thresholds ------------------------------------------------------------------------------------


def test_thresholds_pass_at_exactly_the_limit_and_fail_below() -> None:
    thresholds = GateThresholds(
        min_runloop_score=0.5, min_scoring_function_means={"tests": 0.7}, max_failed_scenarios=2
    )
    at_limit = evaluate_gate(metrics(functions={"tests": 0.7}, failed=2), thresholds=thresholds)
    assert at_limit.passed, at_limit.table()
    below = evaluate_gate(metrics(runloop=0.4999, functions={"tests": 0.69}, failed=3), thresholds=thresholds)
    assert not below.passed
    assert verdicts(below) == {
        "runloop_score": "fail",
        "scoring_function:tests": "fail",
        "failed_scenarios": "fail",
    }


def test_counts_read_as_whole_numbers_in_the_table() -> None:
    outcome = evaluate_gate(metrics(failed=3), thresholds=GateThresholds(max_failed_scenarios=2))
    row = next(line for line in outcome.table().splitlines() if line.startswith("failed_scenarios"))
    assert row.split()[:3] == ["failed_scenarios", "-", "3"]


def test_a_missing_runloop_score_fails_a_minimum_and_says_so() -> None:
    outcome = evaluate_gate(metrics(runloop=None), thresholds=GateThresholds(min_runloop_score=0.1))
    assert not outcome.passed
    assert outcome.rows[0].note == "the run has no Runloop score"
    assert "no Runloop score" in outcome.message()


def test_a_scoring_function_absent_from_the_run_fails_named() -> None:
    outcome = evaluate_gate(
        metrics(functions={"lint": 1.0}), thresholds=GateThresholds(min_scoring_function_means={"tests": 0.1})
    )
    assert not outcome.passed
    assert outcome.failed_rows[0].metric == "scoring_function:tests"
    assert "failed its checks: scoring_function:tests" in outcome.message()


def test_failed_fraction_counts_against_the_scenarios() -> None:
    thresholds = GateThresholds(max_failed_fraction=0.2)
    assert evaluate_gate(metrics(failed=2, scenarios=10), thresholds=thresholds).passed
    over = evaluate_gate(metrics(failed=3, scenarios=10), thresholds=thresholds)
    assert not over.passed
    assert over.rows[0].note == "3 of 10 scenarios"


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"min_runloop_score": math.nan}, "min_runloop_score"),
        ({"min_runloop_score": "0.5"}, "min_runloop_score"),
        ({"min_scoring_function_means": {"tests": math.inf}}, "min_scoring_function_means"),
        ({"min_scoring_function_means": {"": 0.5}}, "min_scoring_function_means"),
        ({"max_failed_scenarios": -1}, "max_failed_scenarios"),
        ({"max_failed_scenarios": 0.5}, "max_failed_scenarios"),
        ({"max_failed_fraction": 1.5}, "max_failed_fraction"),
        ({"max_failed_fraction": True}, "max_failed_fraction"),
    ],
)
def test_bad_thresholds_are_refused_naming_the_option(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        GateThresholds(**options)


# --- tolerances ------------------------------------------------------------------------------------


def test_absolute_and_relative_tolerances_at_the_edge() -> None:
    tolerances, default = parse_tolerances({"runloop_score": 0.02, "scoring_function:tests": "50%"})
    baseline = metrics("bmr_base", runloop=0.70, functions={"tests": 0.5})
    # Exactly the tolerance: 0.70 -> 0.68 (float rounding makes it -0.020000000000000018) and 0.5 -> 0.25.
    edge = evaluate_gate(
        metrics(runloop=0.68, functions={"tests": 0.25}),
        baseline=baseline,
        tolerances=tolerances,
        default_tolerance=default,
    )
    assert edge.passed, edge.table()
    beyond = evaluate_gate(
        metrics(runloop=0.679, functions={"tests": 0.2499}),
        baseline=baseline,
        tolerances=tolerances,
        default_tolerance=default,
    )
    assert verdicts(beyond) == {
        "runloop_score": "fail",
        "mean_score": "pass",
        "scoring_function:tests": "fail",
    }
    assert beyond.rows[0].delta == pytest.approx(-0.021)


def test_the_default_tolerance_applies_to_metrics_not_named() -> None:
    tolerances, default = parse_tolerances({"runloop_score": 0.5}, default="10%")
    baseline = metrics("bmr_base", runloop=0.5, mean=0.5)
    outcome = evaluate_gate(
        metrics(runloop=0.1, mean=0.44), baseline=baseline, tolerances=tolerances, default_tolerance=default
    )
    assert verdicts(outcome) == {"runloop_score": "pass", "mean_score": "fail"}
    assert [row.tolerance for row in outcome.rows] == ["0.5", "10%"]


def test_a_metric_the_baseline_has_and_the_run_lacks_fails() -> None:
    outcome = evaluate_gate(metrics(runloop=None), baseline=metrics("bmr_base"))
    assert verdicts(outcome)["runloop_score"] == "fail"
    # A metric only the current run has is not compared.
    new = evaluate_gate(metrics(functions={"new": 0.1}), baseline=metrics("bmr_base"))
    assert new.passed


@pytest.mark.parametrize(
    ("tolerances", "default", "named"),
    [
        ({"runloop_score": -0.1}, 0.0, "tolerances['runloop_score']"),
        ({"mean_score": "five%"}, 0.0, "tolerances['mean_score']"),
        ({"mean_score": "0.05"}, 0.0, "tolerances['mean_score']"),
        ({"mean_score": "101%"}, 0.0, "tolerances['mean_score']"),
        ({"scoring_function:x": math.nan}, 0.0, "tolerances['scoring_function:x']"),
        ({"scoring_function:x": True}, 0.0, "tolerances['scoring_function:x']"),
        ({"score": 0.1}, 0.0, "tolerances has an unknown metric 'score'"),
        ({"scoring_function:": 0.1}, 0.0, "unknown metric 'scoring_function:'"),
        ({}, "-5%", "default_tolerance"),
    ],
)
def test_bad_tolerances_name_the_key(tolerances: dict[str, Any], default: Any, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        parse_tolerances(tolerances, default)


_KEYS = st.one_of(
    st.sampled_from(["runloop_score", "mean_score"]),
    st.text(min_size=1, max_size=8).map(lambda name: f"scoring_function:{name}"),
    st.text(max_size=12),
)
_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.floats(min_value=-200, max_value=200).map(lambda x: f"{x}%"),
)


@given(st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_tolerance_parsing_accepts_exactly_the_documented_values_or_names_the_key(
    given_tolerances: dict[str, Any],
) -> None:
    try:
        parsed, _ = parse_tolerances(given_tolerances)
    except ValueError as exc:
        error = str(exc)
    else:
        error = None
    if error is not None:
        # The bad entry is named: some key appears in the message (repr'd).
        assert any(repr(key)[:40] in error for key in given_tolerances), error
        return
    assert set(parsed) == set(given_tolerances)
    for key, value in given_tolerances.items():
        tolerance = parsed[key]
        assert key in ("runloop_score", "mean_score") or key.startswith("scoring_function:")
        assert math.isfinite(tolerance.amount)
        assert tolerance.amount >= 0
        if isinstance(value, str):
            assert tolerance.relative
            assert tolerance.amount <= 100
        else:
            assert not isinstance(value, bool)
            assert not tolerance.relative
            assert tolerance.amount == value


@given(
    st.floats(min_value=-1e6, max_value=1e6),
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0, max_value=100),
)
def test_a_drop_within_the_tolerance_always_passes(baseline: float, absolute: float, percent: float) -> None:
    for tolerance in (Tolerance(absolute), Tolerance(percent, relative=True)):
        current = baseline - tolerance.allowed_drop(baseline)
        outcome = evaluate_gate(
            metrics(runloop=current, mean=None),
            baseline=metrics("bmr_base", runloop=baseline, mean=None),
            default_tolerance=tolerance,
        )
        assert outcome.passed, outcome.table()


# --- regressed scenarios ---------------------------------------------------------------------------


def test_regressed_scenarios_passed_in_the_baseline_and_fail_now() -> None:
    baseline = tally_of(
        [
            scenario_run("b1", "scn_a", "completed", start=1),
            scenario_run("b2", "scn_b", "completed", start=1),
            scenario_run("b3", "scn_c", "failed", start=1),
            scenario_run("b4", "scn_d", "completed", start=1),
        ]
    )
    current = tally_of(
        [
            scenario_run("c1", "scn_a", "timeout", start=2, name="parse-json"),
            scenario_run("c2", "scn_b", "completed", start=2),
            scenario_run("c3", "scn_c", "failed", start=2),  # failed before too: no regression
            # A retried scenario: its latest run counts (failed after an earlier completed attempt).
            scenario_run("c4", "scn_d", "completed", start=1),
            scenario_run("c5", "scn_d", "canceled", start=3),
            scenario_run("c6", "scn_new", "failed", start=2),  # not in the baseline
        ]
    )
    found, count = find_regressed_scenarios(baseline, current)
    assert count == 2
    assert found == (
        RegressedScenario("scn_a", "c1", "parse-json", "timeout"),
        RegressedScenario("scn_d", "c5", None, "canceled"),
    )
    outcome = evaluate_gate(
        metrics(), baseline=metrics("bmr_base"), regressed_scenarios=found, regressed_scenario_count=count
    )
    assert verdicts(outcome)["regressed_scenarios"] == "fail"
    assert "2 scenarios passed in the baseline and fail now: c1 (parse-json), c5" in outcome.message()


def test_regressed_scenarios_are_capped_with_a_count() -> None:
    size = MAX_REGRESSED_SCENARIOS + 5
    baseline = tally_of([scenario_run(f"b{i}", f"scn_{i:03}", "completed", start=1) for i in range(size)])
    current = tally_of([scenario_run(f"c{i}", f"scn_{i:03}", "failed", start=2) for i in range(size)])
    found, count = find_regressed_scenarios(baseline, current)
    assert (len(found), count) == (MAX_REGRESSED_SCENARIOS, size)
    outcome = evaluate_gate(
        metrics(), baseline=metrics("bmr_base"), regressed_scenarios=found, regressed_scenario_count=count
    )
    data = outcome.to_dict()["regressed_scenarios"]
    assert (data["count"], len(data["scenarios"]), data["truncated"]) == (size, MAX_REGRESSED_SCENARIOS, True)
    assert outcome.message().endswith("and 5 more")


def test_the_tally_yields_failed_latest_runs_with_their_scenarios() -> None:
    tally = tally_of(
        [
            scenario_run("r1", "scn_a", "failed", start=1, name="a"),
            scenario_run("r2", "scn_a", "completed", start=2),  # the retry completed: not failed
            scenario_run("r3", "scn_b", "timeout", start=1),
            scenario_run("r4", "scn_c", "running", start=1),
        ]
    )
    assert [
        (run.scenario_id, run.run_id, run.name, run.state.value) for run in tally.failed_latest_runs()
    ] == [("scn_b", "r3", None, "timeout")]


# --- no baseline, the outcome ----------------------------------------------------------------------


def test_no_baseline_passes_or_fails_as_asked() -> None:
    note = "No earlier completed run of bm_x has agent='a'."
    lenient = evaluate_gate(metrics(), baseline_note=note)
    assert lenient.passed
    assert verdicts(lenient) == {"baseline": "skip"}
    assert note in lenient.message()
    strict = evaluate_gate(metrics(), baseline_note=note, fail_without_baseline=True)
    assert not strict.passed
    assert strict.to_dict()["baseline_note"] == note


def test_the_outcome_is_strict_json_and_carries_the_next_baseline() -> None:
    outcome = evaluate_gate(
        metrics(runloop=1e308, mean=0.5, functions={"tests": 0.9}),
        thresholds=GateThresholds(min_runloop_score=-1e308, max_failed_fraction=0.5),
        baseline=metrics("bmr_base", runloop=-1e308, mean=None),  # the delta overflows: no inf in XCom
        baseline_source="id",
    )
    data = outcome.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert data["baseline_benchmark_run_id"] == "bmr_base"
    assert data["rows"][-1]["delta"] is None
    assert GateMetrics.from_dict(json.loads(text)["metrics"]) == outcome.metrics
    assert set(data["rows"][0]) == {
        "metric", "kind", "baseline", "current", "delta", "threshold", "tolerance", "verdict", "note",
    }  # fmt: skip


@pytest.mark.parametrize(
    "broken",
    [
        None,
        [],
        {},
        {"benchmark_run_id": "bmr_x", "runloop_score": "0.5"},
        {"benchmark_run_id": "bmr_x", "scenarios": -1},
    ],
)
def test_metrics_from_an_unreadable_xcom_are_refused(broken: Any) -> None:
    with pytest.raises(ValueError, match=r"metrics|field"):
        GateMetrics.from_dict(broken)


def test_the_table_is_fixed_width() -> None:
    outcome = evaluate_gate(
        metrics(runloop=0.65, functions={"tests_pass": 0.8}),
        thresholds=GateThresholds(min_runloop_score=0.6),
        baseline=metrics("bmr_base", runloop=0.7, functions={"tests_pass": 0.8}),
        default_tolerance=Tolerance(0.02),
    )
    lines = outcome.table().splitlines()
    assert lines[0].split() == ["metric", "baseline", "current", "delta", "rule", "verdict"]
    assert set(lines[1]) == {"-", " "}
    # Every column starts at the same offset on every line.
    starts = [lines[0].index(word) for word in ("baseline", "current", "delta", "rule", "verdict")]
    for line in lines[1:]:
        assert all(line[start - 2 : start] == "  " for start in starts), line
    assert lines[2].split() == ["runloop_score", "-", "0.6500", "-", ">=", "0.6", "PASS"]
    regression = next(line for line in lines if line.startswith("runloop_score") and "0.7000" in line)
    assert regression.split()[2:] == [
        "0.6500",
        "-0.0500",
        "drop",
        "<=",
        "0.02",
        "FAIL",
        "(dropped",
        "by",
        "more",
        "than",
        "0.02)",
    ]


def test_metrics_from_a_judged_summary() -> None:
    run = benchmark_run("completed", score=0.25)
    tally = tally_of(
        [
            scenario_run("r1", "scn_a", "completed", start=1, score=0.5, functions={"tests": 0.5}),
            scenario_run("r2", "scn_b", "failed", start=1),
        ]
    )
    summary = judge(run, tally, expected_count=2, fail_on_scenario_failure=False).summary
    got = GateMetrics.from_summary(summary)
    assert got == GateMetrics("bmr_x", 0.25, 0.5, {"tests": 0.5}, 1, 2)
