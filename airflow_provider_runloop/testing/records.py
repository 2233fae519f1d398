"""The emulator's in-memory records and the indexes that keep big listings fast.

Records hold a *timeline*, not a current state: a scenario run knows when it was created, when it
entered ``scoring`` and ``scored`` and when (and how) it ended. Its state at any moment is read off that
timeline against the clock (:meth:`ScenarioRunRecord.state_at`), so a scripted benchmark run with 100,000
scenario runs progresses without any background thread: nothing moves until someone looks. A client
action rewrites the future part of a timeline, never the past.

Two indexes serve the list endpoints:

* :class:`TimeOrdered` keeps records sorted by ``(created_ms, id)``; a record is visible once the clock
  reaches ``created_ms``, so a page is a slice (newest first) found by bisection.
* :class:`StateCounter` keeps, per state, the sorted times runs entered and left it, so "how many runs
  are ``scoring`` now" is two bisections, not a scan.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from airflow_provider_runloop.testing.script import (
    ScenarioPlan,
    ScenarioScript,
    Timing,
    failure_reason,
    scoring_contract_result,
)

__all__ = [
    "BENCHMARK_RUN_STATES",
    "INFINITE_MS",
    "JOB_STATES",
    "LIFECYCLE_OVER",
    "SCENARIO_RUN_STATES",
    "BenchmarkJobRecord",
    "BenchmarkRecord",
    "BenchmarkRunRecord",
    "Page",
    "ScenarioRecord",
    "ScenarioRunRecord",
    "StateCounter",
    "TimeOrdered",
]

#: "Never": a timeline time that the clock does not reach.
INFINITE_MS = 1 << 62
# Sorts after every real id, so (now, _AFTER_ANY_ID) bounds "created at or before now".
_AFTER_ANY_ID = "\U0010ffff"

SCENARIO_RUN_STATES = ("running", "scoring", "scored", "completed", "canceled", "timeout", "failed")
#: Scenario-run states after which nothing more happens (``scored`` is not one: the devbox is still up).
LIFECYCLE_OVER = frozenset({"completed", "canceled", "timeout", "failed"})
BENCHMARK_RUN_STATES = ("running", "canceled", "completed", "failed")
JOB_STATES = ("initializing", "queued", "running", "completed", "failed", "cancelled", "timeout")


class _Timed(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created_ms(self) -> int: ...


RecordT = TypeVar("RecordT", bound=_Timed)


@dataclass
class Page(Generic[RecordT]):
    """One page of a listing, before serialisation."""

    items: list[RecordT]
    has_more: bool
    total_count: int | None


class TimeOrdered(Generic[RecordT]):
    """Records sorted by ``(created_ms, id)``, listed newest first with cursor pagination.

    Records created "in the future" (scripted scenario runs that have not started yet) are stored but
    invisible until the clock reaches their ``created_ms``.
    """

    def __init__(self) -> None:
        self._keys: list[tuple[int, str]] = []
        self._items: list[RecordT] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, record: RecordT) -> None:
        key = (record.created_ms, record.id)
        if not self._keys or key > self._keys[-1]:  # the common case: created now, after all others
            self._keys.append(key)
            self._items.append(record)
            return
        position = bisect.bisect_left(self._keys, key)
        self._keys.insert(position, key)
        self._items.insert(position, record)

    def extend(self, records: Iterable[RecordT]) -> None:
        pairs = sorted(
            [*zip(self._keys, self._items, strict=True), *(((r.created_ms, r.id), r) for r in records)],
            key=lambda pair: pair[0],
        )
        self._keys = [key for key, _ in pairs]
        self._items = [record for _, record in pairs]

    def remove_where(self, predicate: Callable[[RecordT], bool]) -> list[RecordT]:
        """Remove and return the records matching ``predicate``."""
        removed = [record for record in self._items if predicate(record)]
        if removed:
            kept = [(k, r) for k, r in zip(self._keys, self._items, strict=True) if not predicate(r)]
            self._keys = [key for key, _ in kept]
            self._items = [record for _, record in kept]
        return removed

    def all(self) -> list[RecordT]:
        """Every record, visible or not, oldest first."""
        return self._items

    def visible_count(self, now_ms: int) -> int:
        return bisect.bisect_right(self._keys, (now_ms, _AFTER_ANY_ID))

    def visible(self, now_ms: int) -> list[RecordT]:
        """Visible records, oldest first."""
        return self._items[: self.visible_count(now_ms)]

    def page(
        self,
        now_ms: int,
        *,
        limit: int,
        after: tuple[int, str] | None,
        predicate: Callable[[RecordT], bool] | None = None,
        include_total_count: bool = True,
        count_matches: Callable[[], int] | None = None,
    ) -> Page[RecordT]:
        """A page of visible records, newest first, strictly after the cursor key ``after``.

        ``total_count`` counts the whole filtered set, ignoring the cursor; ``count_matches`` may give it
        faster than a scan.
        """
        visible = self.visible_count(now_ms)
        end = visible if after is None else min(visible, bisect.bisect_left(self._keys, after))
        items = self._items
        total: int | None = None
        if predicate is None:
            start = max(0, end - limit)
            page_items = items[start:end]
            page_items.reverse()
            if include_total_count:
                total = visible
            return Page(page_items, start > 0, total)
        # A fast count (the state index) bounds the scan: with no cursor, the scan can stop once it has
        # found them all, and "has more" is a subtraction instead of a scan of the rest.
        known = count_matches() if count_matches is not None else None
        wanted = limit if known is None or after is not None else min(limit, known)
        found: list[RecordT] = []
        index = end - 1
        while index >= 0 and len(found) < wanted:
            record = items[index]
            if predicate(record):
                found.append(record)
            index -= 1
        if known is not None and after is None:
            has_more = known > len(found)
        else:
            has_more = any(predicate(items[i]) for i in range(index, -1, -1))
        if include_total_count:
            total = known if known is not None else sum(1 for i in range(visible) if predicate(items[i]))
        return Page(found, has_more, total)


class StateCounter:
    """Counts scenario runs per state at any time, in O(log n).

    For each state it keeps the sorted times at which runs entered it and left it; the number of runs in a
    state at ``t`` is ``#entered <= t`` minus ``#left <= t``. A run that was never in a state contributes
    nothing, and an interval of length zero cancels out.
    """

    def __init__(self) -> None:
        self._entered: dict[str, list[int]] = {state: [] for state in SCENARIO_RUN_STATES}
        self._left: dict[str, list[int]] = {state: [] for state in SCENARIO_RUN_STATES}

    def add(self, run: ScenarioRunRecord) -> None:
        for state, entered, left in run.intervals():
            bisect.insort(self._entered[state], entered)
            bisect.insort(self._left[state], left)

    def remove(self, run: ScenarioRunRecord) -> None:
        for state, entered, left in run.intervals():
            for times, value in ((self._entered[state], entered), (self._left[state], left)):
                del times[bisect.bisect_left(times, value)]

    def rebuild(self, runs: Iterable[ScenarioRunRecord]) -> None:
        entered: dict[str, list[int]] = {state: [] for state in SCENARIO_RUN_STATES}
        left: dict[str, list[int]] = {state: [] for state in SCENARIO_RUN_STATES}
        for run in runs:
            for state, enter_ms, leave_ms in run.intervals():
                entered[state].append(enter_ms)
                left[state].append(leave_ms)
        for times in (*entered.values(), *left.values()):
            times.sort()
        self._entered, self._left = entered, left

    def count(self, state: str, now_ms: int) -> int:
        entered = self._entered.get(state)
        if entered is None:
            return 0
        return bisect.bisect_right(entered, now_ms) - bisect.bisect_right(self._left[state], now_ms)


@dataclass(eq=False, slots=True)
class ScenarioRunRecord:
    """A scenario run as a timeline: ``created → scoring → scored → end`` (``INFINITE_MS`` = never).

    Invariant: ``created_ms <= scoring_ms <= scored_ms <= end_ms`` wherever they are finite; a run that
    ends before scoring has ``scoring_ms == scored_ms == INFINITE_MS``. ``outcome``, ``score``,
    ``function_scores`` and ``scoring_delay_ms`` come from its attempt plan; they are copied as plain
    values (not a reference to the plan) so that each run is a single object for the garbage collector.
    """

    id: str
    scenario_id: str
    devbox_id: str
    benchmark_run_id: str | None
    created_ms: int
    outcome: str
    score: float
    function_scores: tuple[tuple[str, float], ...]
    scoring_delay_ms: int
    name: str | None = None
    metadata: dict[str, str] | None = None
    purpose: str | None = None
    environment_variables: dict[str, str] | None = None
    secrets_provided: dict[str, str] | None = None
    scorer_timeout_ms: int | None = None
    scoring_ms: int = INFINITE_MS
    scored_ms: int = INFINITE_MS
    end_ms: int = INFINITE_MS
    end_state: str = "completed"

    def state_at(self, now_ms: int) -> str:
        if now_ms >= self.end_ms:
            return self.end_state
        if now_ms >= self.scored_ms:
            return "scored"
        if now_ms >= self.scoring_ms:
            return "scoring"
        return "running"

    def scoring_contract_result(self) -> dict[str, Any]:
        return scoring_contract_result(self.score, self.function_scores)

    def failure_reason(self) -> dict[str, str] | None:
        return failure_reason(self.outcome)

    def has_result_at(self, now_ms: int) -> bool:
        """Whether ``scoring_contract_result`` is set at ``now_ms`` (it stays set after a cancel)."""
        return self.scored_ms <= now_ms

    def intervals(self) -> list[tuple[str, int, int]]:
        """``(state, entered_ms, left_ms)`` for each state on the timeline."""
        intervals = [("running", self.created_ms, min(self.scoring_ms, self.scored_ms, self.end_ms))]
        if self.scoring_ms < INFINITE_MS:
            intervals.append(("scoring", self.scoring_ms, min(self.scored_ms, self.end_ms)))
        if self.scored_ms < INFINITE_MS:
            intervals.append(("scored", self.scored_ms, self.end_ms))
        if self.end_ms < INFINITE_MS:
            intervals.append((self.end_state, self.end_ms, INFINITE_MS))
        return intervals


@dataclass(eq=False)
class ScenarioRecord:
    """A scenario definition.

    ``script`` and ``script_position`` say which script entry plans its runs when no benchmark run
    overrides it: a scenario seeded from a script keeps its entry; one created over the API uses the
    emulator's default script at its creation index.
    """

    id: str
    name: str
    created_ms: int
    script: ScenarioScript
    script_position: int
    input_context: dict[str, Any]
    scoring_contract: dict[str, Any]
    metadata: dict[str, str]
    environment: dict[str, Any] | None = None
    reference_output: str | None = None
    required_environment_variables: list[str] | None = None
    required_secret_names: list[str] | None = None
    is_public: bool | None = None
    validation_type: str | None = None
    scorer_timeout_sec: int | None = None
    archived: bool = False


@dataclass(eq=False)
class BenchmarkRecord:
    """A benchmark definition; ``script`` gives the timing of scripted runs of it."""

    id: str
    name: str
    created_ms: int
    scenario_ids: list[str]
    metadata: dict[str, str]
    script: ScenarioScript
    attribution: str | None = None
    description: str | None = None
    required_environment_variables: list[str] | None = None
    required_secret_names: list[str] | None = None
    is_public: bool | None = None
    archived: bool = False


@dataclass(eq=False)
class BenchmarkRunRecord:
    """A benchmark run and its scenario runs.

    ``kind`` is ``interactive`` (``POST /v1/benchmarks/start_run``: nothing happens unless the client acts),
    ``scripted`` (started by the control API: scenario runs appear and progress on the clock) or ``job``
    (created by a benchmark job; like ``scripted``, always completing itself). ``script`` overrides the
    scenarios' own scripts for this run only; ``variant`` varies the draws per agent config of a job.
    """

    id: str
    kind: str
    created_ms: int
    script: ScenarioScript | None
    timing: Timing
    seed: int
    variant: int
    scenario_ids: tuple[str, ...]
    auto_complete: bool
    benchmark_id: str | None = None
    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    purpose: str | None = None
    environment_variables: dict[str, str] | None = None
    secrets_provided: dict[str, str] | None = None
    job_id: str | None = None
    agent_config: dict[str, Any] | None = None
    end_ms: int = INFINITE_MS
    end_state: str = "completed"
    runs: TimeOrdered[ScenarioRunRecord] = field(default_factory=TimeOrdered)
    counter: StateCounter = field(default_factory=StateCounter)
    #: scenario id -> (when its setup failure shows, setup duration), for scenarios of scripted and job
    #: runs that fail during setup and so never get a scenario run.
    setup_failures: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Plans of the scenarios an interactive run has started (autonomous runs keep no plans: at 100,000
    #: scenario runs every extra object per run slows Python's garbage collector).
    plans: dict[str, ScenarioPlan] = field(default_factory=dict)
    #: scenario id -> how many runs of it this benchmark run has (a retried scenario has several).
    attempt_counts: dict[str, int] = field(default_factory=dict)
    #: Bumped on every change to this run or its scenario runs; keys the caches below.
    version: int = 0
    cached_auto_complete: tuple[int, int | None] | None = None
    cached_score: tuple[int, int, float | None] | None = None


@dataclass(eq=False)
class BenchmarkJobRecord:
    """A benchmark job: one benchmark run per agent config, orchestrated by the emulator."""

    id: str
    name: str
    created_ms: int
    start_ms: int
    job_source: dict[str, Any]
    job_spec: dict[str, Any] | None
    run_ids: list[str]
    forced_end_ms: int = INFINITE_MS
    forced_state: str = "failed"
    failure_reason: str | None = None
    #: Harbor jobs are not emulated: they fail at this time (``INFINITE_MS`` for the other kinds).
    harbor_failure_ms: int = INFINITE_MS
