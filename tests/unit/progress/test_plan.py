"""The count plan: a steady poll counts one state, and never decides anything but "not done"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.progress_runs import benchmark_run

from airflow_provider_runloop.models import ScenarioRunState
from airflow_provider_runloop.progress import CountsOutcome, ScenarioRunCounts, assess_counts
from airflow_provider_runloop.progress.plan import FULL_COUNT_EVERY, POLLED_STATES, CountPlan, full_counts

counts = st.builds(
    ScenarioRunCounts,
    total=st.integers(0, 50),
    running=st.integers(0, 50),
    scoring=st.integers(0, 50),
    scored=st.integers(0, 50),
)
RUN_STATES = ["running", "completed", "failed", "canceled"]


def test_the_first_poll_and_a_stale_count_count_every_state() -> None:
    plan = CountPlan()
    assert plan.probe(accept_scored=False, holding=False, now=0.0) is None
    plan.counted(ScenarioRunCounts(total=10, running=4, scoring=1, scored=0), now=0.0)
    assert plan.probe(accept_scored=False, holding=False, now=1.0) is ScenarioRunState.RUNNING
    assert plan.probe(accept_scored=False, holding=False, now=FULL_COUNT_EVERY) is None
    # A held failure needs every count to see that it still holds.
    assert plan.probe(accept_scored=False, holding=True, now=1.0) is None


def test_the_probe_is_the_busiest_active_state_and_scored_only_when_it_is_active() -> None:
    plan = CountPlan()
    plan.counted(ScenarioRunCounts(total=10, running=1, scoring=2, scored=5), now=0.0)
    assert plan.probe(accept_scored=False, holding=False, now=1.0) is ScenarioRunState.SCORED
    assert plan.probe(accept_scored=True, holding=False, now=1.0) is ScenarioRunState.SCORING
    plan.counted(ScenarioRunCounts(total=10, running=0, scoring=0, scored=5), now=0.0)
    assert plan.probe(accept_scored=True, holding=False, now=1.0) is None  # nothing active to probe


def test_a_probe_that_finds_nothing_or_a_closed_run_asks_for_the_rest() -> None:
    plan = CountPlan()
    plan.counted(ScenarioRunCounts(total=10, running=4, scoring=0, scored=0), now=0.0)
    running = ScenarioRunState.RUNNING
    assert plan.busy(benchmark_run("running"), running, 0) is None
    assert plan.busy(benchmark_run("running"), running, None) is None
    assert plan.busy(benchmark_run("completed"), running, 3) is None
    assert plan.busy(benchmark_run("failed"), running, 3) is None
    assert plan.busy(benchmark_run("running"), running, 3) == ScenarioRunCounts(
        total=10, running=3, scoring=0, scored=0
    )
    assert plan.remaining(running) == (None, ScenarioRunState.SCORING, ScenarioRunState.SCORED)
    assert plan.remaining(None) == POLLED_STATES


def test_full_counts_need_all_four_totals() -> None:
    totals: dict[ScenarioRunState | None, int | None] = dict.fromkeys(POLLED_STATES, 1)
    assert full_counts(totals) == ScenarioRunCounts(total=1, running=1, scoring=1, scored=1)
    totals[ScenarioRunState.SCORED] = None
    assert full_counts(totals) is None


@given(
    last=counts,
    probed=st.integers(-1, 50),
    run_state=st.sampled_from(RUN_STATES),
    accept_scored=st.booleans(),
    expected=st.one_of(st.none(), st.integers(1, 60)),
)
def test_a_busy_poll_only_ever_says_not_done(
    last: ScenarioRunCounts, probed: int, run_state: str, accept_scored: bool, expected: int | None
) -> None:
    plan = CountPlan()
    plan.counted(last, now=0.0)
    probe = plan.probe(accept_scored=accept_scored, holding=False, now=1.0)
    if probe is None:
        return
    busy = plan.busy(benchmark_run(run_state), probe, probed)
    if busy is None:
        return
    # The rule, on the counts the plan made up, agrees: one active run means not done.
    verdict = assess_counts(
        benchmark_run(run_state), busy, expected_count=expected, accept_scored=accept_scored
    )
    assert verdict.outcome is CountsOutcome.NOT_DONE
    assert not verdict.summary.done


@pytest.mark.parametrize("state", ["running", "scoring", "scored"])
def test_the_made_up_counts_carry_the_fresh_figure(state: str) -> None:
    plan = CountPlan()
    plan.counted(ScenarioRunCounts(total=9, running=3, scoring=3, scored=3), now=0.0)
    busy = plan.busy(benchmark_run("running"), ScenarioRunState(state), 7)
    assert busy is not None
    assert getattr(busy, state) == 7
