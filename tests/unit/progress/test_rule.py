"""Tests for ``progress.rule``: the completion rule, cheap polling on counts and the settle window."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.progress_runs import ABC, benchmark_run, judged, runs, scenario_run, tally_of

from airflow_provider_runloop.models import ScenarioRunView
from airflow_provider_runloop.progress import (
    MAX_LISTED_IDS,
    BenchmarkRunSummary,
    BenchmarkRunVerdict,
    CountsOutcome,
    FailureHold,
    ScenarioRunCounts,
    assess_counts,
    expected_scenarios_matter,
    judge,
    settle_failure,
)

# --- the completion rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_state", "scenario_runs", "options", "done", "success"),
    [
        # Empty list: never success.
        pytest.param("running", runs(), {}, False, False, id="empty-running-unknown"),
        pytest.param("running", runs(), {"expected_count": 3}, False, False, id="empty-running-count"),
        pytest.param("completed", runs(), {}, True, False, id="empty-completed"),
        pytest.param(
            "completed",
            runs(),
            {"fail_on_scenario_failure": False},
            True,
            False,
            id="empty-completed-lenient",
        ),
        # Partial list while running: not done.
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "completed")),
            {"expected_count": 3},
            False,
            False,
            id="partial-by-count",
        ),
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "completed")),
            {"expected_scenario_ids": ABC},
            False,
            False,
            id="partial-by-ids",
        ),
        # A scenario outside the expected ids does not stand in for a missing expected one.
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "completed"), ("scn_z", "completed")),
            {"expected_scenario_ids": ABC},
            False,
            False,
            id="unexpected-scenario-does-not-count",
        ),
        # Every expected scenario finished while the run is still open.
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "completed"), ("scn_c", "completed")),
            {"expected_count": 3},
            True,
            True,
            id="all-finished-by-count",
        ),
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "completed"), ("scn_c", "completed")),
            {"expected_scenario_ids": ABC},
            True,
            True,
            id="all-finished-by-ids",
        ),
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "completed"), ("scn_c", "completed")),
            {},
            False,
            False,
            id="expected-unknown-only-completed-ends",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "completed")),
            {},
            True,
            True,
            id="expected-unknown-run-completed",
        ),
        # The explicit count wins over the benchmark's ids.
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "completed")),
            {"expected_count": 2, "expected_scenario_ids": ABC},
            True,
            True,
            id="count-takes-precedence-over-ids",
        ),
        pytest.param(
            "running",
            runs(("scn_a", "completed")),
            {"expected_scenario_ids": ["scn_a", "scn_a"]},
            True,
            True,
            id="duplicate-expected-ids",
        ),
        pytest.param(
            "running",
            runs(("scn_a", "completed")),
            {"expected_scenario_ids": []},
            False,
            False,
            id="empty-ids-mean-unknown",
        ),
        # Rule 2: any active run keeps the wait going, even once the run is completed.
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "running")),
            {},
            False,
            False,
            id="completed-run-with-active-scenario",
        ),
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "scoring"), ("scn_c", "completed")),
            {"expected_count": 3},
            False,
            False,
            id="scoring-is-active",
        ),
        # An older run of a retried scenario that is still active blocks too.
        pytest.param(
            "completed",
            runs(("scn_a", "running", 1), ("scn_a", "completed", 2)),
            {},
            False,
            False,
            id="superseded-run-still-active",
        ),
        # scored: active by default, success with accept_scored.
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "scored")),
            {"expected_count": 2},
            False,
            False,
            id="scored-is-active-by-default",
        ),
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "scored")),
            {"expected_count": 2, "accept_scored": True},
            True,
            True,
            id="scored-accepted",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "scored")),
            {},
            True,
            True,
            id="scored-is-final-once-the-run-is-completed",
        ),
        # Retries: the latest run (by start time) counts, whatever the listing order.
        pytest.param(
            "completed",
            runs(("scn_a", "failed", 1), ("scn_a", "completed", 2)),
            {},
            True,
            True,
            id="retry-failed-then-completed",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed", 2), ("scn_a", "failed", 1)),
            {},
            True,
            True,
            id="retry-failed-then-completed-listed-newest-first",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed", 1), ("scn_a", "failed", 2)),
            {},
            True,
            False,
            id="retry-completed-then-failed",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "failed", 2), ("scn_a", "completed", 1)),
            {},
            True,
            False,
            id="retry-completed-then-failed-listed-newest-first",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed", 5), ("scn_a", "failed", 5)),
            {},
            True,
            True,
            id="tie-first-listed-wins",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "failed"), ("scn_a", "completed")),
            {},
            True,
            False,
            id="no-start-times-first-listed-wins",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "failed"), ("scn_a", "completed", 1)),
            {},
            True,
            True,
            id="a-start-time-beats-none",
        ),
        # Failure policy.
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "failed")),
            {},
            True,
            False,
            id="failed-scenario-fails-by-default",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "timeout")),
            {},
            True,
            False,
            id="timeout-scenario-fails-by-default",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "canceled")),
            {},
            True,
            False,
            id="canceled-scenario-fails-by-default",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "failed"), ("scn_c", "timeout")),
            {"fail_on_scenario_failure": False},
            True,
            True,
            id="failed-scenarios-accepted",
        ),
        pytest.param(
            "running",
            runs(("scn_a", "completed"), ("scn_b", "failed"), ("scn_c", "canceled")),
            {"expected_scenario_ids": ABC},
            True,
            False,
            id="all-expected-finished-some-failed",
        ),
        # A completed run whose expected scenario never started: done, and a failure by default.
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "completed")),
            {"expected_scenario_ids": ABC},
            True,
            False,
            id="never-started-by-ids",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "completed")),
            {"expected_count": 3},
            True,
            False,
            id="never-started-by-count",
        ),
        pytest.param(
            "completed",
            runs(("scn_a", "completed"), ("scn_b", "completed")),
            {"expected_scenario_ids": ABC, "fail_on_scenario_failure": False},
            True,
            True,
            id="never-started-accepted",
        ),
        # Rule 1: a failed or canceled benchmark run fails at once, whatever the scenarios say.
        pytest.param(
            "canceled",
            runs(("scn_a", "completed"), ("scn_b", "running")),
            {},
            True,
            False,
            id="canceled-run",
        ),
        pytest.param(
            "failed", runs(("scn_a", "completed")), {"expected_count": 1}, True, False, id="failed-run"
        ),
        pytest.param(
            "canceled",
            runs(("scn_a", "completed")),
            {"fail_on_scenario_failure": False},
            True,
            False,
            id="canceled-run-lenient-policy-still-fails",
        ),
    ],
)
def test_completion_rule(
    run_state: str, scenario_runs: list[ScenarioRunView], options: dict[str, Any], done: bool, success: bool
) -> None:
    verdict = judged(run_state, scenario_runs, **options)
    assert (verdict.done, verdict.success) == (done, success)
    assert verdict.failed is (done and not success)
    assert (verdict.summary.done, verdict.summary.success) == (done, success)
    assert verdict.summary.exact is True


@pytest.mark.parametrize(
    ("options", "missing_count", "missing_ids"),
    [
        ({"expected_scenario_ids": ABC}, 1, ("scn_c",)),
        ({"expected_count": 3}, 1, ()),
        ({}, None, ()),
    ],
)
def test_never_started_scenarios_are_reported(
    options: dict[str, Any], missing_count: int | None, missing_ids: tuple[str, ...]
) -> None:
    verdict = judged("completed", runs(("scn_a", "completed"), ("scn_b", "completed")), **options)
    assert verdict.summary.missing_scenario_count == missing_count
    assert verdict.summary.missing_scenario_ids == missing_ids
    if missing_count:
        assert "1 expected scenario never started" in verdict.message
        for scenario_id in missing_ids:
            assert scenario_id in verdict.message


@pytest.mark.parametrize(
    ("run_state", "reason"),
    [("canceled", "the benchmark run was canceled"), ("failed", "the benchmark run failed")],
)
def test_failed_benchmark_run_message_and_summary(run_state: str, reason: str) -> None:
    verdict = judged(run_state, runs(("scn_a", "completed"), ("scn_b", "canceled")))
    assert verdict.message.endswith(f"Failed: {reason}.")
    assert verdict.summary.benchmark_run_state == run_state
    assert verdict.summary.failed_scenario_run_ids == ("r1",)


@pytest.mark.parametrize(
    ("failures", "listed", "truncated", "in_message"),
    [
        (1, 1, False, "(failed, timed out or canceled; latest runs: scr_0000)."),
        (MAX_LISTED_IDS, MAX_LISTED_IDS, False, "scr_0009 and 40 more)"),
        (MAX_LISTED_IDS + 1, MAX_LISTED_IDS, True, "scr_0009 and 41 more)"),
        (120, MAX_LISTED_IDS, True, "scr_0009 and 110 more)"),
    ],
)
def test_failed_ids_are_capped_with_flag(
    failures: int, listed: int, truncated: bool, in_message: str
) -> None:
    # Listed in reverse, so the test also shows the ids named do not depend on the listing's order.
    scenario_runs = [
        scenario_run(f"scr_{i:04d}", f"scn_{i:04d}", "failed") for i in reversed(range(failures))
    ]
    scenario_runs.append(scenario_run("scr_ok", "scn_ok", "completed"))
    summary = judged("completed", scenario_runs).summary
    assert summary.success is False
    assert summary.failed_scenario_count == failures
    assert summary.failed_scenario_run_ids == tuple(f"scr_{i:04d}" for i in range(listed))
    assert summary.failed_scenario_run_ids_truncated is truncated
    assert in_message in summary.message
    assert "fail_on_scenario_failure=False" in summary.message


@pytest.mark.parametrize(("missing", "truncated"), [(MAX_LISTED_IDS, False), (MAX_LISTED_IDS + 10, True)])
def test_missing_ids_are_capped_with_flag(missing: int, truncated: bool) -> None:
    expected_ids = ["scn_started", *(f"scn_{i:04d}" for i in range(missing))]
    summary = judged(
        "completed", runs(("scn_started", "completed")), expected_scenario_ids=expected_ids
    ).summary
    assert summary.missing_scenario_count == missing
    assert summary.missing_scenario_ids == tuple(expected_ids[1 : MAX_LISTED_IDS + 1])
    assert summary.missing_scenario_ids_truncated is truncated


def test_lenient_policy_reports_what_it_accepted() -> None:
    verdict = judged(
        "completed",
        runs(("scn_a", "completed"), ("scn_b", "failed")),
        expected_scenario_ids=ABC,
        fail_on_scenario_failure=False,
    )
    assert verdict.success is True
    assert verdict.summary.failed_scenario_run_ids == ("r1",)
    assert verdict.summary.missing_scenario_ids == ("scn_c",)
    assert "accepted 1 failed scenario and 1 never-started scenario" in verdict.message


def test_summary_counts_latest_runs_and_scores() -> None:
    scenario_runs = [
        scenario_run("r1", "scn_a", "failed", start=1),
        scenario_run("r2", "scn_a", "completed", start=2, score=1.0, functions={"tests": 1.0, "lint": 1.0}),
        scenario_run("r3", "scn_b", "completed", start=1, score=0.5, functions={"tests": 0.0}),
        scenario_run("r4", "scn_c", "timeout", start=1),
        scenario_run("r5", "scn_d", "failed", start=1, score=0.0, functions={"tests": 0.5}),
    ]
    run = benchmark_run("completed", score=0.42)
    summary = judge(run, tally_of(scenario_runs), fail_on_scenario_failure=False).summary
    assert summary.total_scenario_runs == 5
    assert summary.started_scenarios == 4
    assert summary.finished_scenarios == 4
    assert summary.state_counts == {
        "running": 0,
        "scoring": 0,
        "scored": 0,
        "completed": 2,
        "failed": 1,
        "timeout": 1,
        "canceled": 0,
    }
    assert summary.scored_scenarios == 3
    assert summary.mean_score == pytest.approx(0.5)
    assert summary.scoring_function_mean_scores == {"lint": 1.0, "tests": pytest.approx(0.5)}
    assert summary.scoring_function_mean_scores_truncated is False
    assert summary.failed_scenario_run_ids == ("r4", "r5")
    assert summary.benchmark_score == 0.42
    assert summary.benchmark_run_id == "bmr_x"
    assert summary.retried_scenario_runs == 1
    assert summary.message.startswith(
        "bmr_x: 4/? scenarios finished (completed 2, failed 1, timeout 1), plus 1 retried attempt. Done"
    )
    # Runloop's own score is the headline; the provider's mean comes second, named for what it is.
    assert summary.message.endswith("; Runloop run score 0.420; mean over 3 scored scenarios 0.500.")


def test_failed_runs_are_named_beside_their_ids() -> None:
    scenario_runs = [
        scenario_run("r1", "scn_a", "failed", start=1, name="old attempt"),
        scenario_run("r2", "scn_a", "failed", start=2, name="fix the parser"),
        scenario_run("r3", "scn_b", "timeout", start=1),
        scenario_run("r4", "scn_c", "canceled", start=1, name="x" * 200),
        scenario_run("r5", "scn_d", "completed", start=1, name="fine"),
    ]
    summary = judge(benchmark_run("completed"), tally_of(scenario_runs)).summary
    assert summary.failed_scenario_run_ids == ("r2", "r3", "r4")
    # Only the listed runs, only those with a name; a long name is cut.
    assert summary.failed_scenario_run_names == {"r2": "fix the parser", "r4": "x" * 79 + "…"}
    assert "latest runs: r2 (fix the parser), r3, r4 (xxx" in summary.message
    assert BenchmarkRunSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary


def test_without_a_runloop_score_the_message_says_so_and_tells_how_long_the_run_took() -> None:
    verdict = judge(
        benchmark_run("running", duration_ms=185_000),
        tally_of([scenario_run("r1", "scn_a", "completed", start=1, score=0.25)]),
        expected_count=1,
    )
    assert verdict.done
    assert verdict.message.endswith(
        "; no Runloop run score yet (Runloop scores a run once it is completed)"
        "; mean over 1 scored scenario 0.250; the run took 3 minutes 5 seconds."
    )


def test_counts_count_scenarios_not_runs_and_show_retried_attempts() -> None:
    # 50 scenarios, 51 runs: 50 finished runs, one of them the retried attempt of the scenario whose
    # retry is still running. That is 49 of 50 scenarios, not "50/50 finished".
    verdict = assess_counts(
        benchmark_run("running"),
        ScenarioRunCounts(total=51, running=1, scoring=0, scored=0),
        expected_count=50,
    )
    assert verdict.outcome is CountsOutcome.NOT_DONE
    assert verdict.summary.finished_scenarios == 49
    assert verdict.summary.retried_scenario_runs == 1
    assert verdict.message == "bmr_x: 49/50 scenarios finished (running 1), plus 1 retried attempt"


def test_scoring_function_means_are_capped() -> None:
    scenario_runs = [
        scenario_run(
            f"r{i}", f"scn_{i}", "completed", score=1.0, functions={"common": 1.0, f"own_{i:03d}": 0.5}
        )
        for i in range(80)
    ]
    summary = judged("completed", scenario_runs).summary
    assert len(summary.scoring_function_mean_scores) == 50
    assert summary.scoring_function_mean_scores["common"] == 1.0  # the most used name is kept
    assert summary.scoring_function_mean_scores_truncated is True


@pytest.mark.parametrize(
    ("options", "expected_scenarios"),
    [
        ({"expected_count": 7}, 7),
        ({"expected_count": 7, "expected_scenario_ids": ABC}, 7),
        ({"expected_scenario_ids": ABC}, 3),
        ({"expected_scenario_ids": ["scn_a", "scn_b", "scn_a"]}, 2),
        ({"expected_scenario_ids": []}, None),
        ({}, None),
    ],
)
def test_expected_scenarios_in_summary(options: dict[str, Any], expected_scenarios: int | None) -> None:
    assert judged("running", runs()).summary.expected_scenarios is None
    assert judged("running", runs(), **options).summary.expected_scenarios == expected_scenarios


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"expected_count": 0}, ValueError),
        ({"expected_count": -3}, ValueError),
        ({"expected_count": True}, ValueError),
        ({"expected_scenario_ids": "scn_a"}, TypeError),
    ],
)
def test_bad_expected_arguments_are_rejected(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="expected_"):
        judged("running", runs(), **options)
    with pytest.raises(error, match="expected_"):
        assess_counts(
            benchmark_run("running"), ScenarioRunCounts(total=0, running=0, scoring=0, scored=0), **options
        )


@pytest.mark.parametrize(
    ("scenario_runs", "options", "message"),
    [
        (
            [
                scenario_run("r0", "scn_a", "completed", score=1.0),
                scenario_run("r1", "scn_b", "completed", score=0.25),
            ],
            {},
            "bmr_x: 2/? scenarios finished (completed 2). Done; no Runloop run score; "
            "mean over 2 scored scenarios 0.625.",
        ),
        (
            runs(("scn_a", "completed"), ("scn_b", "failed")),
            {"expected_scenario_ids": ABC},
            "bmr_x: 2/3 scenarios finished (completed 1, failed 1). Failed: 1 scenario did not complete "
            "(failed, timed out or canceled; latest runs: r1); 1 expected scenario never started (scn_c). "
            "Set fail_on_scenario_failure=False to accept scenario failures.",
        ),
        (
            runs(),
            {},
            "bmr_x: 0/? scenarios finished (no scenario runs yet). "
            "Failed: the benchmark run is completed but no scenario run ever started.",
        ),
    ],
)
def test_done_messages(scenario_runs: list[ScenarioRunView], options: dict[str, Any], message: str) -> None:
    assert judged("completed", scenario_runs, **options).message == message


# --- cheap polling ------------------------------------------------------------------------------------

NOT_DONE = CountsOutcome.NOT_DONE
LIST = CountsOutcome.LIST_TO_CONFIRM
FAILED = CountsOutcome.FAILED


@pytest.mark.parametrize(
    ("run_state", "counts", "options", "outcome", "finished"),
    [
        pytest.param("running", (0, 0, 0, 0), {}, NOT_DONE, 0, id="nothing-started"),
        pytest.param("running", (0, 0, 0, 0), {"expected_count": 3}, NOT_DONE, 0, id="nothing-started-count"),
        pytest.param("running", (10, 3, 0, 0), {"expected_count": 10}, NOT_DONE, 7, id="some-running"),
        pytest.param("running", (10, 0, 2, 0), {"expected_count": 10}, NOT_DONE, 8, id="some-scoring"),
        pytest.param("running", (10, 0, 0, 0), {"expected_count": 10}, LIST, 10, id="all-finished"),
        pytest.param("running", (9, 0, 0, 0), {"expected_count": 10}, NOT_DONE, 9, id="too-few"),
        # 12 finished runs of 10 scenarios: 2 are retried attempts, and at most 10 scenarios finished.
        pytest.param("running", (12, 0, 0, 0), {"expected_count": 10}, LIST, 10, id="retries-inflate"),
        pytest.param("running", (12, 1, 0, 0), {"expected_count": 10}, NOT_DONE, 9, id="retry-running"),
        pytest.param(
            "running", (3, 0, 0, 0), {"expected_scenario_ids": ABC}, LIST, 3, id="expected-from-ids"
        ),
        pytest.param("running", (2, 0, 0, 0), {"expected_scenario_ids": ABC}, NOT_DONE, 2, id="ids-too-few"),
        pytest.param(
            "running",
            (1, 0, 0, 0),
            {"expected_scenario_ids": ["scn_a", "scn_a"]},
            LIST,
            1,
            id="ids-deduplicated",
        ),
        pytest.param("running", (10, 0, 0, 0), {}, NOT_DONE, 10, id="expected-unknown"),
        pytest.param("completed", (10, 0, 0, 0), {}, LIST, 10, id="run-completed"),
        pytest.param("completed", (0, 0, 0, 0), {}, LIST, 0, id="run-completed-empty"),
        pytest.param("completed", (10, 1, 0, 0), {}, NOT_DONE, 9, id="run-completed-one-running"),
        pytest.param("running", (10, 0, 0, 2), {"expected_count": 10}, NOT_DONE, 8, id="scored-active"),
        pytest.param(
            "running",
            (10, 0, 0, 2),
            {"expected_count": 10, "accept_scored": True},
            LIST,
            10,
            id="scored-accepted",
        ),
        pytest.param("completed", (10, 0, 0, 2), {}, LIST, 10, id="completed-run-scored-final"),
        pytest.param("completed", (10, 1, 0, 2), {}, NOT_DONE, 9, id="completed-run-still-running"),
        pytest.param("canceled", (10, 5, 0, 0), {}, FAILED, 5, id="run-canceled"),
        pytest.param("failed", (10, 0, 0, 0), {"expected_count": 10}, FAILED, 10, id="run-failed"),
        # Counts come from separate requests and may not add up; never negative.
        pytest.param("running", (5, 3, 3, 0), {"expected_count": 5}, NOT_DONE, 0, id="counts-race"),
    ],
)
def test_assess_counts(
    run_state: str,
    counts: tuple[int, int, int, int],
    options: dict[str, Any],
    outcome: CountsOutcome,
    finished: int,
) -> None:
    total, running, scoring, scored = counts
    run_counts = ScenarioRunCounts(total=total, running=running, scoring=scoring, scored=scored)
    verdict = assess_counts(benchmark_run(run_state), run_counts, **options)
    assert verdict.outcome is outcome
    assert verdict.needs_listing is (outcome is LIST)
    summary = verdict.summary
    assert (summary.done, summary.success) == (outcome is FAILED, False)
    assert summary.exact is False
    assert summary.finished_scenarios == finished
    assert summary.total_scenario_runs == total
    assert summary.state_counts == {"running": running, "scoring": scoring, "scored": scored}
    # What counts cannot tell is unknown, not zero.
    assert summary.started_scenarios is None
    assert summary.failed_scenario_count is None
    assert summary.missing_scenario_count is None


def test_assess_counts_failure_message() -> None:
    counts = ScenarioRunCounts(total=10, running=0, scoring=0, scored=0)
    verdict = assess_counts(benchmark_run("canceled"), counts, expected_count=10)
    assert (
        verdict.message
        == "bmr_x: 10/10 scenarios finished (no active runs). Failed: the benchmark run was canceled."
    )


# --- the settle window: a failure in an open run holds before it is final -----------------------------

FAILED_ONE = (("s1", "completed"), ("s2", "failed"))


def settled(
    run_state: str, specs: tuple[tuple[Any, ...], ...], hold: FailureHold | None, now: float, **options: Any
) -> BenchmarkRunVerdict:
    verdict = judged(run_state, runs(*specs), expected_count=2, **options)
    return settle_failure(verdict, failure_hold=hold, now=now, failure_settle_seconds=60)


@pytest.mark.parametrize(
    ("run_state", "specs", "hold", "now", "done", "holding"),
    [
        pytest.param("running", FAILED_ONE, None, 100.0, False, True, id="first-sight-holds"),
        pytest.param("running", FAILED_ONE, FailureHold(100.0, 2), 159.0, False, True, id="within-window"),
        pytest.param("running", FAILED_ONE, FailureHold(100.0, 2), 160.0, True, False, id="window-passed"),
        pytest.param("running", FAILED_ONE, FailureHold(100.0, 1), 500.0, False, True, id="runs-changed"),
        pytest.param("completed", FAILED_ONE, None, 100.0, True, False, id="closed-run-final-at-once"),
        pytest.param("canceled", FAILED_ONE, None, 100.0, True, False, id="canceled-final-at-once"),
        pytest.param(
            "running", (("s1", "completed"), ("s2", "completed")), None, 1.0, True, False, id="success"
        ),
        pytest.param(
            "running", (("s1", "completed"), ("s2", "running")), None, 1.0, False, False, id="active"
        ),
    ],
)
def test_settle_failure(
    run_state: str, specs: Any, hold: FailureHold | None, now: float, done: bool, holding: bool
) -> None:
    verdict = settled(run_state, specs, hold, now)
    assert verdict.done is done
    assert (verdict.failure_hold is not None) is holding
    if holding:
        assert "final in" in verdict.message
        assert verdict.failure_hold is not None
        assert verdict.failure_hold.total_scenario_runs == len(specs)


def test_a_hold_keeps_its_start_and_a_new_run_restarts_it() -> None:
    first = settled("running", FAILED_ONE, None, 100.0)
    assert first.failure_hold == FailureHold(100.0, 2)
    again = settled("running", FAILED_ONE, first.failure_hold, 130.0)
    assert again.failure_hold == FailureHold(100.0, 2)
    # A retry that failed again between two polls: one more run, a new window.
    retried = settled("running", (*FAILED_ONE, ("s2", "failed", 5)), first.failure_hold, 170.0)
    assert retried.failure_hold == FailureHold(170.0, 3)


def test_accepted_failures_hold_too_and_zero_restores_the_old_rule() -> None:
    # A retry would change what the summary says even when failures do not fail the task.
    accepted = settled("running", FAILED_ONE, None, 1.0, fail_on_scenario_failure=False)
    assert accepted.done is False
    assert accepted.failure_hold is not None
    verdict = judged("running", runs(*FAILED_ONE), expected_count=2)
    immediate = settle_failure(verdict, failure_hold=None, now=1.0, failure_settle_seconds=0)
    assert immediate.failed
    assert immediate.failure_hold is None


@pytest.mark.parametrize(
    ("hold", "total", "active", "now", "outcome"),
    [
        pytest.param(None, 2, 0, 1.0, CountsOutcome.LIST_TO_CONFIRM, id="no-hold-lists"),
        pytest.param(FailureHold(0.0, 2), 2, 0, 30.0, CountsOutcome.NOT_DONE, id="holds-without-listing"),
        pytest.param(FailureHold(0.0, 2), 2, 0, 60.0, CountsOutcome.LIST_TO_CONFIRM, id="window-over-lists"),
        pytest.param(FailureHold(0.0, 2), 3, 0, 30.0, CountsOutcome.LIST_TO_CONFIRM, id="new-run-lists"),
        pytest.param(FailureHold(0.0, 2), 3, 1, 30.0, CountsOutcome.NOT_DONE, id="retry-active"),
    ],
)
def test_assess_counts_with_a_hold(
    hold: FailureHold | None, total: int, active: int, now: float, outcome: CountsOutcome
) -> None:
    counts = ScenarioRunCounts(total=total, running=active, scoring=0, scored=0)
    verdict = assess_counts(
        benchmark_run("running"),
        counts,
        expected_count=2,
        failure_hold=hold,
        now=now,
        failure_settle_seconds=60,
    )
    assert verdict.outcome is outcome
    assert (verdict.failure_hold is not None) is (outcome is CountsOutcome.NOT_DONE and active == 0)


@pytest.mark.parametrize(
    ("run_state", "counts", "matter"),
    [
        pytest.param("running", (10, 3), False, id="active"),
        pytest.param("running", (0, 0), False, id="nothing-started"),
        pytest.param("running", (10, 0), True, id="maybe-done"),
        pytest.param("completed", (10, 3), True, id="closed"),
        pytest.param("failed", (10, 0), False, id="failed"),
        pytest.param("running", None, True, id="no-counts"),
    ],
)
def test_expected_scenarios_matter(run_state: str, counts: tuple[int, int] | None, matter: bool) -> None:
    given = (
        None if counts is None else ScenarioRunCounts(total=counts[0], running=counts[1], scoring=0, scored=0)
    )
    assert expected_scenarios_matter(benchmark_run(run_state), given) is matter


@pytest.mark.parametrize(
    "data",
    [
        None,
        "x",
        {},
        {"since": "1", "total_scenario_runs": 1},
        {"since": 1.0, "total_scenario_runs": -1},
        {"since": True, "total_scenario_runs": 1},
        {"since": 1.0, "total_scenario_runs": 1.5},
        {"since": float("nan"), "total_scenario_runs": 1},
    ],
)
def test_an_unreadable_hold_is_dropped(data: Any) -> None:
    assert FailureHold.from_dict(data) is None


def test_a_hold_round_trips_through_json() -> None:
    hold = FailureHold(1_900_000_000.25, 7)
    assert FailureHold.from_dict(json.loads(json.dumps(hold.to_dict()))) == hold
