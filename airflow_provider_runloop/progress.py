"""When is a benchmark run done, and how did it go: the state table, the completion rule, the summary.

Pure domain logic, like h11: no I/O, no HTTP, no Airflow import, no clock. The caller (the sensor's
poke, the trigger in the triggerer, the operators) fetches from the API and feeds what it got in; this
module returns verdicts. Everything that waits on a benchmark run calls these functions, so there is
one state table, one completion rule and one summary shape.

One poll, as a caller does it (``docs/completion-rule.md`` explains the rule to users)::

    run = hook.get_benchmark_run(run_id)
    counts = ScenarioRunCounts(
        total=hook.count_scenario_runs(run_id),
        running=hook.count_scenario_runs(run_id, state="running"),
        scoring=hook.count_scenario_runs(run_id, state="scoring"),
        scored=hook.count_scenario_runs(run_id, state="scored"),
    )
    first = assess_counts(run, counts, expected_count=n)
    if first.outcome is CountsOutcome.LIST_TO_CONFIRM:
        tally = ScenarioRunTally()
        for scenario_run in hook.list_scenario_runs(run_id):  # streamed, page by page
            tally.add(scenario_run)
        verdict = judge(run, tally, expected_count=n)  # verdict.done, .success, .summary
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from airflow_provider_runloop.exceptions import RunloopUnknownStateError
from airflow_provider_runloop.models import (
    BenchmarkJobState,
    BenchmarkRunState,
    BenchmarkRunView,
    ScenarioRunState,
    ScenarioRunView,
)

__all__ = [
    "DEFAULT_FAILURE_SETTLE_SECONDS",
    "FINISHED_JOB_STATES",
    "MAX_LISTED_IDS",
    "MAX_SCORING_FUNCTIONS",
    "BenchmarkRunSummary",
    "BenchmarkRunVerdict",
    "CountsOutcome",
    "CountsVerdict",
    "FailureHold",
    "ScenarioRunCounts",
    "ScenarioRunTally",
    "ScenarioStateClass",
    "assess_counts",
    "classify_scenario_state",
    "expected_scenarios_matter",
    "format_progress",
    "judge",
    "known_benchmark_run_state",
    "normalise_job_state",
    "scored_is_final",
    "settle_failure",
]

MAX_LISTED_IDS: Final = 50
"""At most this many failed scenario-run ids and missing scenario ids are kept in a summary."""

MAX_SCORING_FUNCTIONS: Final = 50
"""At most this many per-scoring-function mean scores are kept in a summary."""

DEFAULT_FAILURE_SETTLE_SECONDS: Final = 60.0
"""How long a scenario failure seen while the benchmark run is still open must hold before it is final.

Runloop may retry a failed scenario (benchmark jobs with ``n_attempts > 0``, harnesses that re-run
scenarios); between the failed run and the retry's new run, the listing looks finished. See
``docs/completion-rule.md``."""

# The one-line message names fewer ids than the summary holds, so that it stays readable in a log line
# and the summary (which carries the message) stays small.
_IDS_IN_MESSAGE: Final = 10


class ScenarioStateClass(enum.Enum):
    """What a scenario-run state means for the wait."""

    ACTIVE = "active"
    """Still moving: the wait goes on."""
    FINISHED_SUCCESS = "finished_success"
    """Ended well."""
    FINISHED_FAILURE = "finished_failure"
    """Ended badly (failed, timed out or canceled)."""

    @property
    def is_finished(self) -> bool:
        """``True`` for both finished classes."""
        return self is not ScenarioStateClass.ACTIVE


# The state table: the only place that says what a scenario-run state means.
_SCENARIO_STATE_TABLE: Final[Mapping[ScenarioRunState, ScenarioStateClass]] = {
    ScenarioRunState.RUNNING: ScenarioStateClass.ACTIVE,
    ScenarioRunState.SCORING: ScenarioStateClass.ACTIVE,
    # The score is final but the run is not closed: its devbox is still up and something must still
    # complete it. Waiting for that is the safe default; ``accept_scored=True`` opts in to treating it as
    # a success (see classify_scenario_state).
    ScenarioRunState.SCORED: ScenarioStateClass.ACTIVE,
    ScenarioRunState.COMPLETED: ScenarioStateClass.FINISHED_SUCCESS,
    ScenarioRunState.FAILED: ScenarioStateClass.FINISHED_FAILURE,
    ScenarioRunState.TIMEOUT: ScenarioStateClass.FINISHED_FAILURE,
    ScenarioRunState.CANCELED: ScenarioStateClass.FINISHED_FAILURE,
}

# The order states are listed in summaries and progress lines: the lifecycle, then the bad ends.
_SCENARIO_STATE_ORDER: Final[tuple[ScenarioRunState, ...]] = (
    ScenarioRunState.RUNNING,
    ScenarioRunState.SCORING,
    ScenarioRunState.SCORED,
    ScenarioRunState.COMPLETED,
    ScenarioRunState.FAILED,
    ScenarioRunState.TIMEOUT,
    ScenarioRunState.CANCELED,
)

# Benchmark-run states that end the wait at once, as a failure, whatever the scenario runs say.
_FAILED_RUN_STATES: Final = frozenset({BenchmarkRunState.FAILED, BenchmarkRunState.CANCELED})

_NEXT_STEP_FOR_UNKNOWN_STATE: Final = (
    "The provider stops rather than guess whether it is over: upgrade airflow-provider-runloop, "
    "or report the new state to its maintainers."
)


def classify_scenario_state(
    state: ScenarioRunState | str,
    *,
    accept_scored: bool = False,
    scenario_run_id: str | None = None,
) -> ScenarioStateClass:
    """Look a scenario-run state up in the state table.

    ``running`` and ``scoring`` are active; ``completed`` is a success; ``failed``, ``timeout`` and
    ``canceled`` are failures; ``scored`` is active unless ``accept_scored`` is set, then a success.

    :param state: the state as parsed by ``models`` (an enum member, or a plain ``str`` if unknown).
    :param accept_scored: treat ``scored`` (score final, run not yet completed) as finished.
    :param scenario_run_id: named in the error if the state is unknown.
    :raises RunloopUnknownStateError: for any other state (fail closed, never guess).
    """
    known = _known_scenario_state(state, scenario_run_id)
    if known is ScenarioRunState.SCORED and accept_scored:
        return ScenarioStateClass.FINISHED_SUCCESS
    return _SCENARIO_STATE_TABLE[known]


def _known_scenario_state(state: ScenarioRunState | str, scenario_run_id: str | None) -> ScenarioRunState:
    try:
        return ScenarioRunState(state)
    except ValueError:
        subject = f"Scenario run {scenario_run_id}" if scenario_run_id else "A scenario run"
        known = ", ".join(member.value for member in _SCENARIO_STATE_ORDER)
        raise RunloopUnknownStateError(
            f"{subject} is in state {state!r}, which this provider does not know (known: {known}). "
            + _NEXT_STEP_FOR_UNKNOWN_STATE
        ) from None


def known_benchmark_run_state(run: BenchmarkRunView) -> BenchmarkRunState:
    """The run's state as a known member; fails closed with ``RunloopUnknownStateError`` otherwise."""
    try:
        return BenchmarkRunState(run.state)
    except ValueError:
        known = ", ".join(member.value for member in BenchmarkRunState)
        raise RunloopUnknownStateError(
            f"Benchmark run {run.id} is in state {run.state!r}, which this provider does not know "
            f"(known: {known}). " + _NEXT_STEP_FOR_UNKNOWN_STATE
        ) from None


def scored_is_final(run_state: BenchmarkRunState, accept_scored: bool) -> bool:
    """Whether ``scored`` scenario runs count as finished: if accepted, or once the run is completed."""
    # Once the benchmark run is completed nothing will move a `scored` run on to `completed`, and its
    # score is final: waiting for it would wait forever.
    return accept_scored or run_state is BenchmarkRunState.COMPLETED


def _active_count(counts_by_state: Mapping[ScenarioRunState, int], *, accept_scored: bool) -> int:
    return sum(
        count
        for state, count in counts_by_state.items()
        if classify_scenario_state(state, accept_scored=accept_scored) is ScenarioStateClass.ACTIVE
    )


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


@dataclass(frozen=True)
class ScenarioRunCounts:
    """Scenario-run counts for one benchmark run, from ``limit=1`` listings' ``total_count``.

    Counts are of runs, not of distinct scenarios (a retried scenario counts once per run), and each
    comes from its own request, so they need not add up exactly. If the API leaves ``total_count`` out,
    the caller cannot build this and must use a full listing (``ScenarioRunTally``) instead.

    :param total: all scenario runs of the benchmark run (no state filter).
    :param running: runs in state ``running``.
    :param scoring: runs in state ``scoring``.
    :param scored: runs in state ``scored``.
    """

    total: int
    running: int
    scoring: int
    scored: int

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ScenarioRunCounts.{field.name} must be an integer >= 0, got {value!r}.")

    def by_state(self) -> dict[ScenarioRunState, int]:
        """The per-state counts this object knows (running, scoring, scored)."""
        return {
            ScenarioRunState.RUNNING: self.running,
            ScenarioRunState.SCORING: self.scoring,
            ScenarioRunState.SCORED: self.scored,
        }


class _LatestRun(NamedTuple):
    # Only what the verdict and the summary need: the tally never holds whole run objects.
    order_key: tuple[bool, int, int]
    run_id: str
    state: ScenarioRunState
    score: float | None
    function_scores: tuple[tuple[str, float], ...]


class ScenarioRunTally:
    """Accumulates a benchmark run's scenario runs, fed one at a time from a streamed listing.

    Memory grows with the number of distinct scenarios, not with the number of runs: for each scenario
    only its latest run's id, state and scores are kept, plus a count of all runs per state. Use a fresh
    tally for each listing.

    **Which run is the latest.** A retried scenario has several runs; the one with the greatest
    ``start_time_ms`` counts. A run with a start time is later than one without. When start times are
    equal or both missing, the run listed *first* wins, because the API lists newest first.

    Every run, not only the latest, is checked for an active state: an older run of a retried scenario
    that is still running keeps the wait going (a stuck run cannot be told from a live one).

    :raises RunloopUnknownStateError: from ``add``, for a run in a state this provider does not know.
    """

    __slots__ = ("_all_runs_by_state", "_latest", "_runs_seen")

    def __init__(self) -> None:
        self._latest: dict[str, _LatestRun] = {}
        self._all_runs_by_state: Counter[ScenarioRunState] = Counter()
        self._runs_seen = 0

    def add(self, run: ScenarioRunView) -> None:
        """Count one scenario run.

        :param run: a scenario run of the benchmark run being judged.
        :raises RunloopUnknownStateError: if the run's state is unknown (naming the run and the state).
        """
        state = _known_scenario_state(run.state, run.id)
        position = self._runs_seen
        self._runs_seen += 1
        self._all_runs_by_state[state] += 1
        # Greater key = later run. `-position` makes the earlier-listed run win a tie.
        key = (run.start_time_ms is not None, run.start_time_ms or 0, -position)
        held = self._latest.get(run.scenario_id)
        if held is not None and held.order_key > key:
            return
        result = run.scoring_contract_result
        self._latest[run.scenario_id] = _LatestRun(
            order_key=key,
            run_id=run.id,
            state=state,
            score=result.score if result is not None else None,
            function_scores=(
                tuple(
                    (sys.intern(item.scoring_function_name), item.score)
                    for item in result.scoring_function_results
                )
                if result is not None
                else ()
            ),
        )

    def extend(self, runs: Iterable[ScenarioRunView]) -> None:
        """Count every run of an iterable (a lazy listing is consumed one run at a time).

        :param runs: scenario runs, in listing order.
        """
        for run in runs:
            self.add(run)

    @property
    def total_runs(self) -> int:
        """All runs counted, retries included."""
        return self._runs_seen

    @property
    def started_scenarios(self) -> int:
        """Distinct scenarios with at least one run."""
        return len(self._latest)


@dataclass(frozen=True)
class BenchmarkRunSummary:
    """What a wait on a benchmark run found: the XCom value and the trigger event payload.

    JSON primitives only (``to_dict`` / ``from_dict`` round-trip exactly) and small whatever the run's
    size: id lists are capped at ``MAX_LISTED_IDS``, with a count and a ``truncated`` flag.

    A summary is *exact* when built from a full listing (``judge``): scenario runs are then
    de-duplicated by scenario and counts are of each scenario's latest run. A summary built from counts
    only (``assess_counts``) has ``exact=False``: ``finished_scenarios`` is then a number of *runs*
    (retries can inflate it) and what counts cannot tell is ``None``.

    :param benchmark_run_id: the benchmark run.
    :param benchmark_run_state: its state, as the API reported it.
    :param benchmark_id: the benchmark it is a run of (``None`` for a run without one).
    :param done: the wait is over (successfully or not).
    :param success: the wait is over and the run is a success under the chosen policy.
    :param message: one human line: progress, or the verdict and why.
    :param exact: ``True`` if built from a full listing, ``False`` if from counts only.
    :param accept_scored: whether ``scored`` counted as finished.
    :param expected_scenarios: how many scenarios are expected, or ``None`` if unknown.
    :param started_scenarios: distinct scenarios with a run (``None`` from counts).
    :param finished_scenarios: distinct scenarios whose latest run is finished (runs, from counts).
    :param total_scenario_runs: all scenario runs, retries included.
    :param state_counts: scenario state -> number of scenarios whose latest run is in it (from counts:
        only ``running``, ``scoring`` and ``scored``, counting runs).
    :param mean_score: mean ``scoring_contract_result.score`` over latest runs that have one.
    :param scored_scenarios: how many latest runs have a score (the mean's denominator).
    :param scoring_function_mean_scores: scoring function name -> mean score over the same runs (every
        result counts, whatever its scorer state).
    :param scoring_function_mean_scores_truncated: more functions existed than were kept (the most
        used are kept).
    :param failed_scenario_count: scenarios whose latest run failed, timed out or was canceled.
    :param failed_scenario_run_ids: the first of those runs' ids, sorted.
    :param failed_scenario_run_ids_truncated: more failed runs exist than are listed.
    :param missing_scenario_count: expected scenarios with no run (yet).
    :param missing_scenario_ids: the first of them (in the expected order), when the ids are known.
    :param missing_scenario_ids_truncated: more missing ids exist than are listed.
    :param benchmark_score: the benchmark run's own ``score``, once Runloop has computed it.
    """

    benchmark_run_id: str
    benchmark_run_state: str
    benchmark_id: str | None
    done: bool
    success: bool
    message: str
    exact: bool
    accept_scored: bool
    expected_scenarios: int | None
    started_scenarios: int | None
    finished_scenarios: int
    total_scenario_runs: int
    state_counts: dict[str, int]
    mean_score: float | None
    scored_scenarios: int | None
    scoring_function_mean_scores: dict[str, float]
    scoring_function_mean_scores_truncated: bool
    failed_scenario_count: int | None
    failed_scenario_run_ids: tuple[str, ...]
    failed_scenario_run_ids_truncated: bool
    missing_scenario_count: int | None
    missing_scenario_ids: tuple[str, ...]
    missing_scenario_ids_truncated: bool
    benchmark_score: float | None

    def to_dict(self) -> dict[str, Any]:
        """The summary as a dict of JSON primitives (for XCom and trigger events)."""
        data = dataclasses.asdict(self)
        data["state_counts"] = dict(self.state_counts)
        data["scoring_function_mean_scores"] = dict(self.scoring_function_mean_scores)
        data["failed_scenario_run_ids"] = list(self.failed_scenario_run_ids)
        data["missing_scenario_ids"] = list(self.missing_scenario_ids)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BenchmarkRunSummary:
        """Rebuild a summary from ``to_dict``'s output (after a JSON round trip, too).

        Keys this version does not know are ignored, so an event from a newer provider still reads.

        :param data: the dict.
        :raises ValueError: if a field is missing or has the wrong type.
        """
        return cls(
            benchmark_run_id=_read(data, "benchmark_run_id", str),
            benchmark_run_state=_read(data, "benchmark_run_state", str),
            # Absent from summaries made before it was added (an event stored by an older version).
            benchmark_id=None if data.get("benchmark_id") is None else _read(data, "benchmark_id", str),
            done=_read(data, "done", bool),
            success=_read(data, "success", bool),
            message=_read(data, "message", str),
            exact=_read(data, "exact", bool),
            accept_scored=_read(data, "accept_scored", bool),
            expected_scenarios=_read_optional_int(data, "expected_scenarios"),
            started_scenarios=_read_optional_int(data, "started_scenarios"),
            finished_scenarios=_read(data, "finished_scenarios", int),
            total_scenario_runs=_read(data, "total_scenario_runs", int),
            state_counts=_read_mapping(data, "state_counts", int),
            mean_score=_read_optional_float(data, "mean_score"),
            scored_scenarios=_read_optional_int(data, "scored_scenarios"),
            scoring_function_mean_scores=_read_mapping(data, "scoring_function_mean_scores", float),
            scoring_function_mean_scores_truncated=_read(
                data, "scoring_function_mean_scores_truncated", bool
            ),
            failed_scenario_count=_read_optional_int(data, "failed_scenario_count"),
            failed_scenario_run_ids=_read_ids(data, "failed_scenario_run_ids"),
            failed_scenario_run_ids_truncated=_read(data, "failed_scenario_run_ids_truncated", bool),
            missing_scenario_count=_read_optional_int(data, "missing_scenario_count"),
            missing_scenario_ids=_read_ids(data, "missing_scenario_ids"),
            missing_scenario_ids_truncated=_read(data, "missing_scenario_ids_truncated", bool),
            benchmark_score=_read_optional_float(data, "benchmark_score"),
        )


# The largest int a float holds exactly: past it, a number read from JSON is no time or score.
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
    active = _active_count(by_state, accept_scored=scored_is_final(run_state, accept_scored))
    # The counts come from separate requests; a run moving between them must not make this negative.
    finished_runs = max(0, counts.total - active)

    if run_state in _FAILED_RUN_STATES:
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
        finished_scenarios=finished_runs,
        total_scenario_runs=counts.total,
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
    if run_state in _FAILED_RUN_STATES:
        return False
    if counts is None or run_state is BenchmarkRunState.COMPLETED:
        return True
    active = _active_count(counts.by_state(), accept_scored=scored_is_final(run_state, accept_scored))
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
    # The tally is this module's own accumulator; reading its internals here keeps its public face small.
    latest = tally._latest

    classes = {
        scenario_id: classify_scenario_state(held.state, accept_scored=scored_final)
        for scenario_id, held in latest.items()
    }
    finished = sum(1 for cls in classes.values() if cls.is_finished)
    failed_run_ids = [
        latest[scenario_id].run_id
        for scenario_id, cls in classes.items()
        if cls is ScenarioStateClass.FINISHED_FAILURE
    ]
    if expected.ids is not None:
        missing_ids = [scenario_id for scenario_id in expected.ids if scenario_id not in latest]
        missing_count: int | None = len(missing_ids)
        all_expected_finished = all(
            scenario_id in classes and classes[scenario_id].is_finished for scenario_id in expected.ids
        )
    elif expected.count is not None:
        missing_ids = []
        missing_count = max(0, expected.count - len(latest))
        all_expected_finished = finished >= expected.count
    else:
        missing_ids = []
        missing_count = None
        all_expected_finished = False

    # Rule 2 looks at every listed run, not only the latest per scenario.
    active_runs = _active_count(tally._all_runs_by_state, accept_scored=scored_final)
    if run_state in _FAILED_RUN_STATES:
        done, failure_reason = True, _run_failure_reason(run_state)
    elif active_runs > 0 or not (run_state is BenchmarkRunState.COMPLETED or all_expected_finished):
        done, failure_reason = False, None
    elif not latest:
        done, failure_reason = True, "the benchmark run is completed but no scenario run ever started"
    elif fail_on_scenario_failure and (failed_run_ids or missing_count):
        done, failure_reason = True, _scenario_failure_reason(failed_run_ids, missing_ids, missing_count or 0)
    else:
        done, failure_reason = True, None

    scored = [held for held in latest.values() if held.score is not None]
    function_means, functions_truncated = _function_means(scored)
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
        started_scenarios=len(latest),
        finished_scenarios=finished,
        total_scenario_runs=tally.total_runs,
        state_counts=_latest_state_counts(latest.values()),
        mean_score=(sum(held.score or 0.0 for held in scored) / len(scored)) if scored else None,
        scored_scenarios=len(scored),
        scoring_function_mean_scores=function_means,
        scoring_function_mean_scores_truncated=functions_truncated,
        failed_scenario_count=len(failed_run_ids),
        # Sorted, so the ids named do not depend on the listing's order.
        failed_scenario_run_ids=tuple(heapq.nsmallest(MAX_LISTED_IDS, failed_run_ids)),
        failed_scenario_run_ids_truncated=len(failed_run_ids) > MAX_LISTED_IDS,
        missing_scenario_count=missing_count,
        missing_scenario_ids=tuple(missing_ids[:MAX_LISTED_IDS]),
        missing_scenario_ids_truncated=len(missing_ids) > MAX_LISTED_IDS,
        benchmark_score=run.score,
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


def _scenario_failure_reason(failed_run_ids: list[str], missing_ids: list[str], missing_count: int) -> str:
    parts = []
    if failed_run_ids:
        parts.append(
            f"{_plural(len(failed_run_ids), 'scenario')} did not complete (failed, timed out or canceled; "
            f"latest runs: {_name_some(sorted(failed_run_ids), len(failed_run_ids))})"
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
    if summary.mean_score is not None:
        message += f"; mean score {summary.mean_score:.3f}"
    return message + "."


def _name_some(ids: Sequence[str], total: int) -> str:
    shown = ", ".join(ids[:_IDS_IN_MESSAGE])
    hidden = total - min(len(ids), _IDS_IN_MESSAGE)
    return f"{shown} and {hidden} more" if hidden else shown


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _latest_state_counts(latest: Iterable[_LatestRun]) -> dict[str, int]:
    counter = Counter(held.state for held in latest)
    # Every state is present, zeros included, so consumers of the XCom can index without .get().
    return {state.value: counter[state] for state in _SCENARIO_STATE_ORDER}


def _function_means(scored: Sequence[_LatestRun]) -> tuple[dict[str, float], bool]:
    totals: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for held in scored:
        for name, score in held.function_scores:
            totals[name] = totals.get(name, 0.0) + score
            counts[name] += 1
    # Scenarios can name their scoring functions freely, so the number of names is unbounded; keep the
    # most used (ties by name) to keep the summary small.
    kept = sorted(counts, key=lambda name: (-counts[name], name))[:MAX_SCORING_FUNCTIONS]
    return {name: totals[name] / counts[name] for name in sorted(kept)}, len(counts) > len(kept)


def format_progress(summary: BenchmarkRunSummary) -> str:
    """One progress line, e.g. ``bmr_x: 37/120 finished (completed 30, failed 7; running 70, scoring 13)``.

    Finished states come first, then active ones after a ``;``; states with no runs are left out, and
    ``?`` stands for an unknown expected count. A counts-only summary knows only the active states (and
    ``scored``), e.g. ``bmr_x: 37/120 finished (running 70, scoring 13)``, where "finished" counts runs.

    :param summary: a summary from ``judge`` or ``assess_counts``.
    """
    finished_parts: list[str] = []
    active_parts: list[str] = []
    for state in _SCENARIO_STATE_ORDER:
        count = summary.state_counts.get(state.value, 0)
        if not count:
            continue
        cls = classify_scenario_state(state, accept_scored=summary.accept_scored)
        (finished_parts if cls.is_finished else active_parts).append(f"{state.value} {count}")
    groups = "; ".join(", ".join(parts) for parts in (finished_parts, active_parts) if parts)
    if not groups:
        groups = "no scenario runs yet" if summary.total_scenario_runs == 0 else "no active runs"
    expected = "?" if summary.expected_scenarios is None else str(summary.expected_scenarios)
    return f"{summary.benchmark_run_id}: {summary.finished_scenarios}/{expected} finished ({groups})"


# --- from_dict field readers: a clear ValueError instead of a confusing failure later ---------------


def _read_any(data: Mapping[str, object], key: str) -> object:
    try:
        return data[key]
    except KeyError:
        raise ValueError(f"Not a benchmark run summary: the field {key!r} is missing.") from None


def _wrong_type(key: str, wanted: str, value: object) -> ValueError:
    return ValueError(f"Not a benchmark run summary: {key!r} must be {wanted}, got {value!r}.")


def _read(data: Mapping[str, object], key: str, kind: type[Any]) -> Any:
    value = _read_any(data, key)
    return _coerce(key, kind, value)


def _coerce(key: str, kind: type[Any], value: object) -> Any:
    # bool is an int in Python; JSON keeps them apart, and so does this.
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        # Summaries are strict JSON: no NaN or infinity, and no int past a float's range.
        if isinstance(value, int) and abs(value) > _LARGEST_SAFE_INT:
            raise ValueError(f"Not a benchmark run summary: {key!r} must be a finite number.")
        if not math.isfinite(value):
            raise _wrong_type(key, "a finite number", value)
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise _wrong_type(key, kind.__name__, value)


def _read_optional_int(data: Mapping[str, object], key: str) -> int | None:
    value = _read_any(data, key)
    return None if value is None else int(_coerce(key, int, value))


def _read_optional_float(data: Mapping[str, object], key: str) -> float | None:
    value = _read_any(data, key)
    return None if value is None else float(_coerce(key, float, value))


def _read_mapping(data: Mapping[str, object], key: str, kind: type[Any]) -> dict[str, Any]:
    value = _read_any(data, key)
    if not isinstance(value, Mapping) or not all(isinstance(name, str) for name in value):
        raise _wrong_type(key, "an object", value)
    return {name: _coerce(f"{key}.{name}", kind, item) for name, item in value.items()}


def _read_ids(data: Mapping[str, object], key: str) -> tuple[str, ...]:
    value = _read_any(data, key)
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise _wrong_type(key, "a list of strings", value)
    return tuple(value)


# --- benchmark jobs: the one place their state spellings are normalised -------------------------------

FINISHED_JOB_STATES: Final = frozenset(
    {
        BenchmarkJobState.COMPLETED,
        BenchmarkJobState.FAILED,
        BenchmarkJobState.CANCELLED,
        BenchmarkJobState.TIMEOUT,
    }
)
"""Job states that end a wait: ``completed`` is the only success, the others are failures."""

# Runs say `canceled`, jobs `cancelled`, scenario outcomes `CANCELED`; the Runloop CLI accepts both for
# jobs, and so does this.
_JOB_STATE_SPELLINGS: Final[Mapping[str, BenchmarkJobState]] = {
    **{member.value: member for member in BenchmarkJobState},
    "canceled": BenchmarkJobState.CANCELLED,
}


def normalise_job_state(
    state: BenchmarkJobState | str, *, benchmark_job_id: str | None = None
) -> BenchmarkJobState:
    """A benchmark job's state as a :class:`BenchmarkJobState`, whatever its spelling or case.

    ``canceled`` and ``cancelled`` (any case) are both :attr:`BenchmarkJobState.CANCELLED`. Finished
    states are in :data:`FINISHED_JOB_STATES`; of those only ``completed`` is a success.

    :param state: the state as parsed by ``models`` (an enum member, or a plain ``str`` if unknown).
    :param benchmark_job_id: named in the error if the state is unknown.
    :raises RunloopUnknownStateError: for a state this provider does not know (fail closed).
    """
    if isinstance(state, BenchmarkJobState):
        return state
    known = _JOB_STATE_SPELLINGS.get(str(state).strip().lower())
    if known is None:
        subject = f"Benchmark job {benchmark_job_id}" if benchmark_job_id else "A benchmark job"
        names = ", ".join(member.value for member in BenchmarkJobState)
        raise RunloopUnknownStateError(
            f"{subject} is in state {state!r}, which this provider does not know (known: {names}). "
            + _NEXT_STEP_FOR_UNKNOWN_STATE
        )
    return known
