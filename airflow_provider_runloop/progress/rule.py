"""The completion rule: when is a benchmark run done, and how did it go.

Pure domain logic, like h11: no I/O, no HTTP, no Airflow import, no clock. The caller (the hook's one
poll, for the sensor, the trigger and the operators alike) fetches from the API and feeds what it got
in; this module returns verdicts (``docs/completion-rule.md`` explains the rule to users)::

    run = hook.get_benchmark_run(run_id)
    counts = ScenarioRunCounts(total=..., running=..., scoring=..., scored=...)  # limit=1 listings
    first = assess_counts(run, counts, expected_count=n)
    if first.outcome is CountsOutcome.LIST_TO_CONFIRM:
        tally = ScenarioRunTally()
        tally.extend(hook.list_scenario_runs(run_id))  # streamed, page by page
        verdict = judge(run, tally, expected_count=n)  # verdict.done, .success, .summary
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from airflow_provider_runloop.models import BenchmarkRunState, BenchmarkRunView
from airflow_provider_runloop.progress.states import (
    FAILED_RUN_STATES,
    SCENARIO_STATE_ORDER,
    ScenarioStateClass,
    active_count,
    classify_scenario_state,
    known_benchmark_run_state,
    scored_is_final,
)
from airflow_provider_runloop.progress.summary import BenchmarkRunSummary, format_progress, human_duration
from airflow_provider_runloop.progress.tally import (
    MAX_LISTED_IDS,
    ScenarioRunCounts,
    ScenarioRunTally,
)

__all__ = [
    "DEFAULT_FAILURE_SETTLE_SECONDS",
    "MAX_SCORING_FUNCTIONS",
    "BenchmarkRunVerdict",
    "CountsOutcome",
    "CountsVerdict",
    "FailureHold",
    "assess_counts",
    "expected_scenarios_matter",
    "judge",
    "score_line",
    "settle_failure",
]

MAX_SCORING_FUNCTIONS: Final = 50
"""At most this many scoring functions' mean scores are kept in a summary (the most used)."""

DEFAULT_FAILURE_SETTLE_SECONDS: Final = 60.0
"""How long a scenario failure seen while the benchmark run is still open must hold before it is final.

Runloop may retry a failed scenario (benchmark jobs with ``n_attempts > 0``, harnesses that re-run
scenarios); between the failed run and the retry's new run, the listing looks finished. See
``docs/completion-rule.md``."""

# The one-line message names fewer ids than the summary holds, so that it stays readable in a log line
# and the summary (which carries the message) stays small.
_IDS_IN_MESSAGE: Final = 10


@dataclass(frozen=True)
class _Expected:
    count: int | None
    ids: tuple[str, ...] | None  # set only when the count comes from the ids, so missing ones can be named


def _resolve_expected(expected_count: int | None, expected_scenario_ids: Iterable[str] | None) -> _Expected:
    # Precedence, decided here once: the user's explicit count, else the benchmark's scenario ids,
    # else unknown (then only the benchmark run's own `completed` ends the wait).
    if expected_count is not None:
        if isinstance(expected_count, bool) or not isinstance(expected_count, int) or expected_count < 1:
            raise ValueError(f"expected_count must be a positive integer, got {expected_count!r}.")
        return _Expected(expected_count, None)
    if expected_scenario_ids is not None:
        if isinstance(expected_scenario_ids, str):
            # A lone string would otherwise be read as a list of one-character ids.
            raise TypeError("expected_scenario_ids must be a list of scenario ids, not a single string.")
        ids = tuple(dict.fromkeys(expected_scenario_ids))  # de-duplicated, order kept for messages
        # A benchmark with no scenarios says nothing about this run (scenarios can be started into it
        # directly), so an empty list means "unknown", not "zero expected, done at once".
        if ids:
            return _Expected(len(ids), ids)
    return _Expected(None, None)


_LARGEST_SAFE_INT: Final = 2**53


@dataclass(frozen=True)
class FailureHold:
    """A scenario failure seen while the benchmark run is still open, not yet final.

    A retry of the failed scenario adds a scenario run, so the hold lasts while the number of scenario
    runs stays the same and nothing is active; :func:`settle_failure` makes the failure final once it
    has held for the settle window. The waiter keeps the hold between its polls (in memory, or in the
    task state store between reschedule-mode pokes): ``to_dict`` / ``from_dict`` round-trip it.

    :param since: when the waiter first saw this failure, in seconds on its own clock (``time.time()``).
    :param total_scenario_runs: all scenario runs of the benchmark run at that moment, retries included.
    """

    since: float
    total_scenario_runs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives, for the task state store and trigger kwargs."""
        return {"since": self.since, "total_scenario_runs": self.total_scenario_runs}

    @classmethod
    def from_dict(cls, data: object) -> FailureHold | None:
        """The hold ``to_dict`` wrote, or ``None`` for anything else (then the window starts again)."""
        if not isinstance(data, Mapping):
            return None
        since, total = data.get("since"), data.get("total_scenario_runs")
        if (
            isinstance(since, bool)
            or not isinstance(since, (int, float))
            # An int past a float's range (10**400) is no time either; isfinite would raise on it.
            or (isinstance(since, int) and abs(since) > _LARGEST_SAFE_INT)
            or not math.isfinite(since)
            or isinstance(total, bool)
            or not isinstance(total, int)
            or total < 0
        ):
            return None
        return cls(float(since), total)

    def holds(self, run_state: BenchmarkRunState, total_scenario_runs: int, active: int) -> bool:
        """Whether nothing that could overturn the failure has happened: the run is still open, no run
        is active and no scenario run was added."""
        return (
            run_state is BenchmarkRunState.RUNNING
            and active == 0
            and total_scenario_runs == self.total_scenario_runs
        )

    def remaining(self, now: float, settle_seconds: float) -> float:
        """Seconds until the failure is final, if it keeps holding (0 once the window has passed)."""
        return max(0.0, self.since + settle_seconds - now)


@dataclass(frozen=True)
class BenchmarkRunVerdict:
    """``judge``'s answer: is the wait over, and did the run succeed. Details are in ``summary``.

    ``failure_hold`` is set when a scenario failure is waiting out the settle window
    (:func:`settle_failure`): pass it to the next poll.
    """

    summary: BenchmarkRunSummary
    failure_hold: FailureHold | None = None

    @property
    def done(self) -> bool:
        """The wait is over."""
        return self.summary.done

    @property
    def success(self) -> bool:
        """The wait is over and the run succeeded under the chosen failure policy."""
        return self.summary.success

    @property
    def failed(self) -> bool:
        """The wait is over and the run did not succeed: the caller should fail the task."""
        return self.summary.done and not self.summary.success

    @property
    def message(self) -> str:
        """One human line: progress while not done, else the verdict and why."""
        return self.summary.message


class CountsOutcome(enum.Enum):
    """What the counts of one cheap poll say."""

    NOT_DONE = "not_done"
    """Definitely not done: poll again later."""
    LIST_TO_CONFIRM = "list_to_confirm"
    """Maybe done: list the scenario runs once, feed them to a ``ScenarioRunTally`` and ``judge``."""
    FAILED = "failed"
    """The benchmark run failed or was canceled: the wait fails now, no listing needed (a caller that
    wants the failed scenarios named may still list once and ``judge``)."""


@dataclass(frozen=True)
class CountsVerdict:
    """``assess_counts``'s answer; ``summary`` is a counts-only snapshot (``exact=False``)."""

    outcome: CountsOutcome
    summary: BenchmarkRunSummary
    failure_hold: FailureHold | None = None
    """Set when the counts show that a held failure still holds (the outcome is then ``NOT_DONE``)."""

    @property
    def needs_listing(self) -> bool:
        """The caller must do the one full listing and ``judge`` to decide."""
        return self.outcome is CountsOutcome.LIST_TO_CONFIRM

    @property
    def message(self) -> str:
        """One human line: the progress line, or why the wait fails."""
        return self.summary.message


def assess_counts(
    run: BenchmarkRunView,
    counts: ScenarioRunCounts,
    *,
    expected_count: int | None = None,
    expected_scenario_ids: Iterable[str] | None = None,
    accept_scored: bool = False,
    failure_hold: FailureHold | None = None,
    now: float = 0.0,
    failure_settle_seconds: float = 0.0,
) -> CountsVerdict:
    """Decide from one cheap poll (the run plus four counts) whether a full listing is worth doing.

    Counts are not de-duplicated by scenario, so they can only say "maybe done": the verdict is then
    ``LIST_TO_CONFIRM`` and the full listing (``ScenarioRunTally`` + ``judge``) decides. That happens
    when no run is active and either the benchmark run is ``completed`` or the finished runs reach the
    expected count. Take the same ``expected_*`` and ``accept_scored`` arguments as the ``judge`` call.

    :param run: the benchmark run, freshly fetched.
    :param counts: the scenario-run counts, fetched in the same poll.
    :param expected_count: the number of scenarios the user expects; takes precedence over the ids.
    :param expected_scenario_ids: the benchmark's ``scenarioIds`` (used when no count is given).
    :param accept_scored: treat ``scored`` scenario runs as finished.
    :param failure_hold: the hold the previous poll's verdict carried, if any. While the counts show it
        still holds and its window has not passed, the outcome is ``NOT_DONE`` (no listing needed) and
        the verdict carries the hold on.
    :param now: the caller's clock (``time.time()``), for the hold.
    :param failure_settle_seconds: the settle window (see :func:`settle_failure`).
    :raises RunloopUnknownStateError: if the benchmark run's state is unknown.
    :raises ValueError: if ``expected_count`` is not a positive integer.
    """
    run_state = known_benchmark_run_state(run)
    expected = _resolve_expected(expected_count, expected_scenario_ids)
    by_state = counts.by_state()
    active = active_count(by_state, accept_scored=scored_is_final(run_state, accept_scored))
    # The counts come from separate requests; a run moving between them must not make this negative.
    finished_runs = max(0, counts.total - active)

    if run_state in FAILED_RUN_STATES:
        outcome = CountsOutcome.FAILED
    elif active > 0:
        outcome = CountsOutcome.NOT_DONE
    elif run_state is BenchmarkRunState.COMPLETED or (
        expected.count is not None and finished_runs >= expected.count
    ):
        outcome = CountsOutcome.LIST_TO_CONFIRM
    else:
        outcome = CountsOutcome.NOT_DONE
    holding = (
        outcome is CountsOutcome.LIST_TO_CONFIRM
        and failure_hold is not None
        and failure_hold.holds(run_state, counts.total, active)
        and failure_hold.remaining(now, failure_settle_seconds) > 0
    )
    if holding:
        outcome = CountsOutcome.NOT_DONE

    failed_now = outcome is CountsOutcome.FAILED
    # Counts are of runs. Each active run is a scenario not finished yet, so no more than
    # expected - active scenarios can be finished, and every run beyond the expected scenarios is a
    # retried attempt (the listing, at the end, counts both exactly).
    finished_scenarios = finished_runs
    retried_runs: int | None = None
    if expected.count is not None:
        finished_scenarios = max(0, min(finished_runs, expected.count - active))
        retried_runs = max(0, counts.total - expected.count)
    summary = BenchmarkRunSummary(
        benchmark_run_id=run.id,
        benchmark_run_state=run_state.value,
        benchmark_id=run.benchmark_id,
        done=failed_now,
        success=False,
        message="",
        exact=False,
        accept_scored=accept_scored,
        expected_scenarios=expected.count,
        started_scenarios=None,
        finished_scenarios=finished_scenarios,
        total_scenario_runs=counts.total,
        retried_scenario_runs=retried_runs,
        state_counts={state.value: count for state, count in by_state.items()},
        mean_score=None,
        scored_scenarios=None,
        scoring_function_mean_scores={},
        scoring_function_mean_scores_truncated=False,
        failed_scenario_count=None,
        failed_scenario_run_ids=(),
        failed_scenario_run_ids_truncated=False,
        missing_scenario_count=None,
        missing_scenario_ids=(),
        missing_scenario_ids_truncated=False,
        benchmark_score=run.score,
        benchmark_run_start_time_ms=run.start_time_ms,
        benchmark_run_duration_ms=run.duration_ms,
    )
    message = format_progress(summary)
    if failed_now:
        message += f". Failed: {_run_failure_reason(run_state)}."
    if holding:
        assert failure_hold is not None
        message += _holding_note(failure_hold.remaining(now, failure_settle_seconds))
        return CountsVerdict(outcome, dataclasses.replace(summary, message=message), failure_hold)
    return CountsVerdict(outcome, dataclasses.replace(summary, message=message))


def expected_scenarios_matter(
    run: BenchmarkRunView, counts: ScenarioRunCounts | None, *, accept_scored: bool = False
) -> bool:
    """Whether this poll's verdict depends on the expected scenarios (so they are worth fetching now).

    They do not while a scenario run is active, before any has started, or once the benchmark run has
    failed or was canceled: the verdict is the same whatever they are. A waiter can therefore fetch the
    benchmark's ``scenarioIds`` (large for a large benchmark) only near the end of the wait.

    :param run: the benchmark run, freshly fetched.
    :param counts: this poll's counts, or ``None`` when the server gave none (the listing then decides).
    :param accept_scored: as in :func:`assess_counts`.
    """
    run_state = known_benchmark_run_state(run)
    if run_state in FAILED_RUN_STATES:
        return False
    if counts is None or run_state is BenchmarkRunState.COMPLETED:
        return True
    active = active_count(counts.by_state(), accept_scored=scored_is_final(run_state, accept_scored))
    return counts.total > 0 and active == 0


def settle_failure(
    verdict: BenchmarkRunVerdict,
    *,
    failure_hold: FailureHold | None,
    now: float,
    failure_settle_seconds: float,
) -> BenchmarkRunVerdict:
    """Keep a failure that a retry could still overturn from ending the wait until it has held.

    A verdict that names failed scenarios while the benchmark run is still ``running`` may be
    overturned: Runloop can retry a failed scenario, and between the failed run and the retry's new run
    the listing looks finished. Such a verdict is final only once the same failure has held (no scenario
    run added, none active, the run still open) for ``failure_settle_seconds`` on the caller's clock;
    until then this returns a not-done verdict carrying the :class:`FailureHold` to pass to the next
    poll. Everything else passes through unchanged: a success with no failed scenario (final at once),
    a run that is ``completed`` (closed: nothing more will start), ``failed`` or ``canceled``, and any
    verdict when ``failure_settle_seconds`` is ``0``.

    This applies whether the failures fail the task or are accepted (``fail_on_scenario_failure=False``):
    either way a retry would change what the summary and an export say.

    :param verdict: ``judge``'s verdict for this poll.
    :param failure_hold: the hold the previous poll's verdict carried, if any.
    :param now: the caller's clock (``time.time()``).
    :param failure_settle_seconds: the settle window, seconds ``>= 0``.
    """
    summary = verdict.summary
    open_failure = (
        summary.done
        and summary.benchmark_run_state == BenchmarkRunState.RUNNING.value
        and bool(summary.failed_scenario_count)
    )
    if not open_failure or failure_settle_seconds <= 0:
        return BenchmarkRunVerdict(summary)
    hold = failure_hold
    if hold is None or hold.total_scenario_runs != summary.total_scenario_runs:
        hold = FailureHold(since=now, total_scenario_runs=summary.total_scenario_runs)
    remaining = hold.remaining(now, failure_settle_seconds)
    if remaining <= 0:
        return BenchmarkRunVerdict(summary)
    held = dataclasses.replace(
        summary,
        done=False,
        success=False,
        message=format_progress(summary) + _holding_note(remaining),
    )
    return BenchmarkRunVerdict(held, hold)


def _holding_note(remaining: float) -> str:
    return (
        ". Scenarios failed while the benchmark run is still open: the verdict is final in "
        f"{math.ceil(remaining)} s unless a retry starts"
    )


def judge(
    run: BenchmarkRunView,
    tally: ScenarioRunTally,
    *,
    expected_count: int | None = None,
    expected_scenario_ids: Iterable[str] | None = None,
    accept_scored: bool = False,
    fail_on_scenario_failure: bool = True,
) -> BenchmarkRunVerdict:
    """Apply the completion rule to a benchmark run and all of its scenario runs.

    The run is done when 1) it is not ``failed`` or ``canceled`` (those fail at once), 2) no scenario
    run is active, and 3) either the run is ``completed`` or every expected scenario has a finished
    run. Expected is ``expected_count`` if given, else ``expected_scenario_ids``, else unknown (then
    only ``completed`` ends the wait).

    Once done, it is a failure if no scenario ever started (an empty list is never success), or if
    ``fail_on_scenario_failure`` is set and any scenario's latest run failed, timed out or was
    canceled, or an expected scenario never started (possible once the run is ``completed``). With
    ``fail_on_scenario_failure=False`` those are reported in the summary and the run is a success.

    :param run: the benchmark run, fetched *before* the listing began (so that if it says ``completed``,
        the listing cannot have missed a scenario run that started later). The one from the counts poll
        will do.
    :param tally: all of the run's scenario runs, fed in.
    :param expected_count: the number of scenarios the user expects; takes precedence over the ids.
    :param expected_scenario_ids: the benchmark's ``scenarioIds`` (used when no count is given); lets
        the summary name scenarios that never started.
    :param accept_scored: treat ``scored`` scenario runs (score final, run not closed) as finished.
    :param fail_on_scenario_failure: make failed, timed-out, canceled or never-started scenarios fail
        the verdict (the default) instead of only reporting them.
    :raises RunloopUnknownStateError: if the benchmark run's state is unknown.
    :raises ValueError: if ``expected_count`` is not a positive integer.
    """
    run_state = known_benchmark_run_state(run)
    expected = _resolve_expected(expected_count, expected_scenario_ids)
    scored_final = scored_is_final(run_state, accept_scored)
    # Read from the tally's compact arrays: no object per scenario is built here.
    latest_states = tally.latest_state_counts()
    classes = {state: classify_scenario_state(state, accept_scored=scored_final) for state in latest_states}
    finished = sum(count for state, count in latest_states.items() if classes[state].is_finished)
    failed_count = sum(
        count
        for state, count in latest_states.items()
        if classes[state] is ScenarioStateClass.FINISHED_FAILURE
    )
    # Sorted, so the ids named do not depend on the listing's order; each with its run's name.
    failed_runs = heapq.nsmallest(MAX_LISTED_IDS, tally.failed_runs(), key=lambda pair: pair[0])
    failed_run_ids = [run_id for run_id, _ in failed_runs]
    failed_run_names = {run_id: _short(name) for run_id, name in failed_runs if name is not None}
    missing_ids: list[str] = []
    if expected.ids is not None:
        # Looked up in the tally one by one: no set of either side's ids is built.
        missing = 0
        all_expected_finished = True
        for scenario_id in expected.ids:
            state = tally.latest_state(scenario_id)
            if state is None:
                missing += 1
                if len(missing_ids) < MAX_LISTED_IDS:
                    missing_ids.append(scenario_id)
                all_expected_finished = False
            elif not classes[state].is_finished:
                all_expected_finished = False
        missing_count: int | None = missing
    elif expected.count is not None:
        missing_count = max(0, expected.count - tally.started_scenarios)
        all_expected_finished = finished >= expected.count
    else:
        missing_count = None
        all_expected_finished = False

    # Rule 2 looks at every listed run, not only the latest per scenario.
    active_runs = active_count(tally.runs_by_state(), accept_scored=scored_final)
    if run_state in FAILED_RUN_STATES:
        done, failure_reason = True, _run_failure_reason(run_state)
    elif active_runs > 0 or not (run_state is BenchmarkRunState.COMPLETED or all_expected_finished):
        done, failure_reason = False, None
    elif not tally.started_scenarios:
        done, failure_reason = True, "the benchmark run is completed but no scenario run ever started"
    elif fail_on_scenario_failure and (failed_count or missing_count):
        done, failure_reason = (
            True,
            _scenario_failure_reason(
                failed_run_ids, failed_run_names, failed_count, missing_ids, missing_count or 0
            ),
        )
    else:
        done, failure_reason = True, None

    # sum() as before (the same order, the same float): Python 3.12's sum compensates, 3.11's does not.
    scored = sum(1 for _ in tally.scores())
    score_sum = sum(tally.scores())
    function_means, functions_truncated = _function_means(tally.function_scores())
    summary = BenchmarkRunSummary(
        benchmark_run_id=run.id,
        benchmark_run_state=run_state.value,
        benchmark_id=run.benchmark_id,
        done=done,
        success=done and failure_reason is None,
        message="",
        exact=True,
        accept_scored=accept_scored,
        expected_scenarios=expected.count,
        started_scenarios=tally.started_scenarios,
        finished_scenarios=finished,
        total_scenario_runs=tally.total_runs,
        retried_scenario_runs=tally.total_runs - tally.started_scenarios,
        # Every state is present, zeros included, so consumers of the XCom can index without .get().
        state_counts={state.value: latest_states[state] for state in SCENARIO_STATE_ORDER},
        mean_score=score_sum / scored if scored else None,
        scored_scenarios=scored,
        scoring_function_mean_scores=function_means,
        scoring_function_mean_scores_truncated=functions_truncated,
        failed_scenario_count=failed_count,
        failed_scenario_run_ids=tuple(failed_run_ids),
        failed_scenario_run_names=failed_run_names,
        failed_scenario_run_ids_truncated=failed_count > MAX_LISTED_IDS,
        missing_scenario_count=missing_count,
        missing_scenario_ids=tuple(missing_ids),
        # Only ids can be truncated: a count alone names none.
        missing_scenario_ids_truncated=expected.ids is not None and (missing_count or 0) > MAX_LISTED_IDS,
        benchmark_score=run.score,
        benchmark_run_start_time_ms=run.start_time_ms,
        benchmark_run_duration_ms=run.duration_ms,
    )
    return BenchmarkRunVerdict(
        dataclasses.replace(summary, message=_verdict_message(summary, failure_reason))
    )


def _run_failure_reason(run_state: BenchmarkRunState) -> str:
    return (
        "the benchmark run failed"
        if run_state is BenchmarkRunState.FAILED
        else "the benchmark run was canceled"
    )


def _scenario_failure_reason(
    failed_run_ids: list[str],
    failed_run_names: Mapping[str, str],
    failed_count: int,
    missing_ids: list[str],
    missing_count: int,
) -> str:
    # failed_run_ids: the smallest of the failed latest runs' ids, sorted; missing_ids: the first missing.
    parts = []
    if failed_count:
        named_runs = [_with_name(run_id, failed_run_names) for run_id in failed_run_ids]
        parts.append(
            f"{_plural(failed_count, 'scenario')} did not complete (failed, timed out or canceled; "
            f"latest runs: {_name_some(named_runs, failed_count)})"
        )
    if missing_count:
        named = f" ({_name_some(missing_ids, missing_count)})" if missing_ids else ""
        parts.append(f"{_plural(missing_count, 'expected scenario')} never started{named}")
    return "; ".join(parts) + ". Set fail_on_scenario_failure=False to accept scenario failures"


def _verdict_message(summary: BenchmarkRunSummary, failure_reason: str | None) -> str:
    line = format_progress(summary)
    if not summary.done:
        return line
    if failure_reason is not None:
        return f"{line}. Failed: {failure_reason}."
    message = f"{line}. Done"
    accepted = [
        _plural(count, noun)
        for count, noun in (
            (summary.failed_scenario_count or 0, "failed scenario"),
            (summary.missing_scenario_count or 0, "never-started scenario"),
        )
        if count
    ]
    if accepted:
        message += f"; accepted {' and '.join(accepted)} (fail_on_scenario_failure=False)"
    return f"{message}; {score_line(summary)}{_took(summary)}."


def score_line(summary: BenchmarkRunSummary) -> str:
    """The scores, Runloop's first: ``Runloop run score 0.650; mean over 46 scored scenarios 0.721``.

    Runloop's own score of the benchmark run is the headline (it is what the dashboard shows); the
    provider's mean over the scenarios whose latest run has a score comes second, named for what it is.
    """
    if summary.benchmark_score is not None:
        line = f"Runloop run score {summary.benchmark_score:.3f}"
    elif summary.benchmark_run_state == BenchmarkRunState.RUNNING.value:
        line = "no Runloop run score yet (Runloop scores a run once it is completed)"
    else:
        line = "no Runloop run score"
    if summary.mean_score is not None and summary.scored_scenarios:
        line += f"; mean over {_plural(summary.scored_scenarios, 'scored scenario')} {summary.mean_score:.3f}"
    return line


def _took(summary: BenchmarkRunSummary) -> str:
    if summary.benchmark_run_duration_ms is None:
        return ""
    return f"; the run took {human_duration(summary.benchmark_run_duration_ms / 1000)}"


# Scenario run names are the user's: long ones are cut in messages and summaries.
_NAME_CHARS: Final = 80


def _short(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else name[: _NAME_CHARS - 1] + "…"


def _with_name(run_id: str, names: Mapping[str, str]) -> str:
    name = names.get(run_id)
    return f"{run_id} ({name})" if name else run_id


def _name_some(ids: Sequence[str], total: int) -> str:
    shown = ", ".join(ids[:_IDS_IN_MESSAGE])
    hidden = total - min(len(ids), _IDS_IN_MESSAGE)
    return f"{shown} and {hidden} more" if hidden else shown


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _function_means(function_scores: Iterable[tuple[str, float]]) -> tuple[dict[str, float], bool]:
    # function_scores: every scored latest run's (name, score) pairs, in first-listed order.
    totals: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for name, score in function_scores:
        totals[name] = totals.get(name, 0.0) + score
        counts[name] += 1
    # Scenarios can name their scoring functions freely, so the number of names is unbounded; keep the
    # most used (ties by name) to keep the summary small.
    kept = sorted(counts, key=lambda name: (-counts[name], name))[:MAX_SCORING_FUNCTIONS]
    return {name: totals[name] / counts[name] for name in sorted(kept)}, len(counts) > len(kept)
