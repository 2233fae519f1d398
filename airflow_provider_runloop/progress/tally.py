"""What a poll saw of a benchmark run's scenario runs: cheap counts, or a streamed tally of the listing.

No rule here: :mod:`~airflow_provider_runloop.progress.rule` decides from these. The tally keeps, per
scenario, only its latest run (id, state, scores) and per state a count of every run, plus the first ids
of the runs in each active state so a verdict can name them: memory grows with the number of scenarios,
never with the size of the scenario runs.
"""

from __future__ import annotations

import dataclasses
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from airflow_provider_runloop.models import ScenarioRunState, ScenarioRunView, ScoringFunctionResult
from airflow_provider_runloop.progress.states import (
    ACTIVE_SCENARIO_STATES,
    ScenarioStateClass,
    classify_scenario_state,
    known_scenario_state,
)

__all__ = [
    "MAX_LISTED_IDS",
    "ActiveRuns",
    "FailedLatestRun",
    "LatestRun",
    "ScenarioRunCounts",
    "ScenarioRunTally",
]

MAX_LISTED_IDS: Final = 50
"""At most this many ids of one kind (failed, missing, active) are kept in a summary or a message."""


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


class LatestRun(NamedTuple):
    """A scenario's latest run, as the tally reports it: only what the verdict and the summary need.

    Built on demand from the tally's compact arrays (the tally keeps no object per scenario).
    ``run_id`` is the run's id for a failed, timed-out or canceled run (the only ones a verdict names),
    and ``None`` for any other state.
    """

    order_key: tuple[bool, int, int]
    run_id: str | None
    state: ScenarioRunState
    score: float | None
    function_scores: tuple[tuple[str, float], ...]


class FailedLatestRun(NamedTuple):
    """A scenario whose latest run failed, timed out or was canceled, with that run's id and name."""

    scenario_id: str
    run_id: str
    name: str | None
    state: ScenarioRunState


# One byte per scenario: the latest run's state code, and whether it has a start time and a score.
_STATES: Final[tuple[ScenarioRunState, ...]] = tuple(ScenarioRunState)
_STATE_CODE: Final[Mapping[ScenarioRunState, int]] = {state: code for code, state in enumerate(_STATES)}
_HAS_START: Final = 0x40
_HAS_SCORE: Final = 0x80
_STATE_MASK: Final = 0x3F
# The latest runs whose ids a verdict names (their class does not depend on accept_scored).
_NAMED_STATES: Final = frozenset(
    state
    for state in _STATES
    if classify_scenario_state(state, accept_scored=False) is ScenarioStateClass.FINISHED_FAILURE
)
_NO_SLOT: Final = -1
# Superseded runs' function scores are dropped once there are this many and they are half the arrays.
_COMPACT_AFTER = 1024
_STATE_OF_FLAGS: Final = bytes(flags & _STATE_MASK for flags in range(256))


class ScenarioRunTally:
    """Accumulates a benchmark run's scenario runs, fed one at a time from a streamed listing.

    Memory grows with the number of distinct scenarios, not with the number of runs, and stays close
    to the unavoidable: one dict slot per scenario id (mapping it to a small index) and a few dozen
    bytes in flat arrays (the latest run's state, start time, listing position, score and scoring
    functions' scores, names interned once). A run id is kept only while it is the id of a scenario's
    latest run and that run failed, timed out or was canceled (with its name): the verdict names
    those. Plus a count of all runs per state, and the first ids of the runs in each active state so a
    verdict can name them. Use a fresh tally for each listing.

    **Which run is the latest.** A retried scenario has several runs; the one with the greatest
    ``start_time_ms`` counts. A run with a start time is later than one without. When start times are
    equal or both missing, the run listed *first* wins, because the API lists newest first.

    Every run, not only the latest, is checked for an active state: an older run of a retried scenario
    that is still running keeps the wait going (a stuck run cannot be told from a live one).

    :raises RunloopUnknownStateError: from ``add``, for a run in a state this provider does not know.
    """

    __slots__ = (
        "_active_ids",
        "_all_runs_by_state",
        "_flags",
        "_fn_at",
        "_fn_count",
        "_fn_garbage",
        "_fn_name",
        "_fn_score",
        "_id_names",
        "_id_slot",
        "_ids",
        "_index",
        "_name_index",
        "_names",
        "_position",
        "_runs_seen",
        "_score",
        "_start",
    )

    def __init__(self) -> None:
        # scenario id -> index into the parallel arrays below (first-listed order).
        self._index: dict[str, int] = {}
        self._flags = bytearray()
        self._start = array("q")
        self._position = array("I")  # 4 bytes: a listing of 4 billion runs overflows loudly
        self._score = array("d")
        # Each scenario's scoring-function scores: _fn_count[i] entries from _fn_at[i] in the flat
        # _fn_name (an index into _names) and _fn_score arrays.
        self._fn_at = array("I")
        self._fn_count = array("I")
        self._fn_name = array("I")
        self._fn_score = array("d")
        self._fn_garbage = 0
        self._names: list[str] = []
        self._name_index: dict[str, int] = {}
        # A scenario's slot in _ids, given the first time its latest run is a named one and reused.
        self._id_slot = array("i")
        self._ids: list[str | None] = []
        self._id_names: list[str | None] = []  # the named run's name, beside its id
        self._all_runs_by_state: Counter[ScenarioRunState] = Counter()
        self._active_ids: dict[ScenarioRunState, list[str]] = {state: [] for state in ACTIVE_SCENARIO_STATES}
        self._runs_seen = 0

    def add(self, run: ScenarioRunView) -> None:
        """Count one scenario run.

        :param run: a scenario run of the benchmark run being judged.
        :raises RunloopUnknownStateError: if the run's state is unknown (naming the run and the state).
        """
        state = known_scenario_state(run.state, run.id)
        position = self._runs_seen
        self._runs_seen += 1
        self._all_runs_by_state[state] += 1
        named = self._active_ids.get(state)
        if named is not None and len(named) < MAX_LISTED_IDS:
            named.append(run.id)
        start = run.start_time_ms
        index = self._index.get(run.scenario_id)
        if index is None:
            index = len(self._flags)
            self._index[run.scenario_id] = index
            self._flags.append(0)
            self._start.append(0)
            self._position.append(0)
            self._score.append(0.0)
            self._fn_at.append(0)
            self._fn_count.append(0)
            self._id_slot.append(_NO_SLOT)
        elif (start is not None, start or 0) <= (
            bool(self._flags[index] & _HAS_START),
            self._start[index],
        ):
            # Not later than the held run (an equal key: the held one was listed first, and wins).
            return
        result = run.scoring_contract_result
        flags = _STATE_CODE[state]
        if start is not None:
            flags |= _HAS_START
        if result is not None:
            flags |= _HAS_SCORE
        self._flags[index] = flags
        self._start[index] = start or 0
        self._position[index] = position
        self._score[index] = result.score if result is not None else 0.0
        self._set_function_scores(index, result.scoring_function_results if result is not None else ())
        slot = self._id_slot[index]
        if state in _NAMED_STATES:
            if slot == _NO_SLOT:
                self._id_slot[index] = len(self._ids)
                self._ids.append(run.id)
                self._id_names.append(run.name)
            else:
                self._ids[slot] = run.id
                self._id_names[slot] = run.name
        elif slot != _NO_SLOT:
            self._ids[slot] = None
            self._id_names[slot] = None

    def _set_function_scores(self, index: int, results: Sequence[ScoringFunctionResult]) -> None:
        count = len(results)
        held = self._fn_count[index]
        if count <= held:
            at = self._fn_at[index]  # fits where the held run's scores were
            self._fn_garbage += held - count
        else:
            at = len(self._fn_name)
            self._fn_garbage += held
            self._fn_name.extend((0,) * count)
            self._fn_score.extend((0.0,) * count)
        for offset, item in enumerate(results):
            self._fn_name[at + offset] = self._name_code(item.scoring_function_name)
            self._fn_score[at + offset] = item.score
        self._fn_at[index] = at
        self._fn_count[index] = count
        if self._fn_garbage > _COMPACT_AFTER and self._fn_garbage > len(self._fn_name) // 2:
            self._compact_function_scores()

    def _name_code(self, name: str) -> int:
        code = self._name_index.get(name)
        if code is None:
            code = self._name_index[name] = len(self._names)
            self._names.append(sys.intern(name))
        return code

    def _compact_function_scores(self) -> None:
        # Superseded runs' scores are dropped, so the arrays grow with scenarios, not with retries.
        names, scores = array("I"), array("d")
        for index, (at, count) in enumerate(zip(self._fn_at, self._fn_count, strict=True)):
            self._fn_at[index] = len(names)
            names.extend(self._fn_name[at : at + count])
            scores.extend(self._fn_score[at : at + count])
        self._fn_name, self._fn_score, self._fn_garbage = names, scores, 0

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
        return len(self._index)

    def latest_runs(self) -> Iterator[tuple[str, LatestRun]]:
        """``(scenario_id, latest run)`` for every scenario with a run, in first-listed order."""
        for scenario_id, index in self._index.items():
            yield scenario_id, self._latest_at(index)

    def latest_run(self, scenario_id: str) -> LatestRun | None:
        """The latest run of one scenario, or ``None`` if it has none."""
        index = self._index.get(scenario_id)
        return None if index is None else self._latest_at(index)

    def latest_state(self, scenario_id: str) -> ScenarioRunState | None:
        """The state of one scenario's latest run, or ``None`` if it has none (cheaper than latest_run)."""
        index = self._index.get(scenario_id)
        return None if index is None else _STATES[self._flags[index] & _STATE_MASK]

    def latest_state_counts(self) -> dict[ScenarioRunState, int]:
        """How many scenarios' latest runs are in each state (every state, zeros included)."""
        codes = self._flags.translate(_STATE_OF_FLAGS)
        return {state: codes.count(code) for code, state in enumerate(_STATES)}

    def failed_run_ids(self) -> Iterator[str]:
        """The ids of the latest runs that failed, timed out or were canceled, in no particular order."""
        return (run_id for run_id in self._ids if run_id is not None)

    def failed_runs(self) -> Iterator[tuple[str, str | None]]:
        """``(id, name)`` of the latest runs that failed, timed out or were canceled, in no particular
        order (``name`` is ``None`` for a run without one)."""
        return (
            (run_id, name)
            for run_id, name in zip(self._ids, self._id_names, strict=True)
            if run_id is not None
        )

    def failed_latest_runs(self) -> Iterator[FailedLatestRun]:
        """The scenarios whose latest run failed, timed out or was canceled, with that run's id, name and
        state, in first-listed order of the scenarios."""
        for scenario_id, index in self._index.items():
            slot = self._id_slot[index]
            if slot == _NO_SLOT:
                continue
            run_id = self._ids[slot]
            if run_id is not None:
                state = _STATES[self._flags[index] & _STATE_MASK]
                yield FailedLatestRun(scenario_id, run_id, self._id_names[slot], state)

    def scores(self) -> Iterator[float]:
        """The latest runs' scores, for those that have one, in first-listed order."""
        return (score for flags, score in zip(self._flags, self._score, strict=True) if flags & _HAS_SCORE)

    def function_scores(self) -> Iterator[tuple[str, float]]:
        """``(scoring function, score)`` of every latest run that has a score: first-listed order, and
        each run's functions in the order it gives them."""
        names, fn_name, fn_score = self._names, self._fn_name, self._fn_score
        for flags, at, count in zip(self._flags, self._fn_at, self._fn_count, strict=True):
            if flags & _HAS_SCORE:
                for offset in range(at, at + count):
                    yield names[fn_name[offset]], fn_score[offset]

    def _latest_at(self, index: int) -> LatestRun:
        flags = self._flags[index]
        at, count = self._fn_at[index], self._fn_count[index]
        slot = self._id_slot[index]
        return LatestRun(
            order_key=(bool(flags & _HAS_START), self._start[index], -self._position[index]),
            run_id=None if slot == _NO_SLOT else self._ids[slot],
            state=_STATES[flags & _STATE_MASK],
            score=self._score[index] if flags & _HAS_SCORE else None,
            function_scores=tuple(
                (self._names[self._fn_name[offset]], self._fn_score[offset])
                for offset in range(at, at + count)
            ),
        )

    def runs_by_state(self) -> Mapping[ScenarioRunState, int]:
        """Every run counted (retries included) per state."""
        return dict(self._all_runs_by_state)

    def active_runs(self, *, scored_is_final: bool) -> ActiveRuns:
        """The runs (any run, not only the latest) that keep the wait going, by state, with the first ids.

        :param scored_is_final: whether ``scored`` counts as finished
            (:func:`~airflow_provider_runloop.progress.states.scored_is_final`).
        """
        by_state = {
            state: count
            for state, count in self._all_runs_by_state.items()
            if count
            and classify_scenario_state(state, accept_scored=scored_is_final) is ScenarioStateClass.ACTIVE
        }
        ids = [run_id for state in by_state for run_id in self._active_ids.get(state, ())]
        return ActiveRuns(by_state, tuple(ids[:MAX_LISTED_IDS]))


@dataclass(frozen=True)
class ActiveRuns:
    """:meth:`ScenarioRunTally.active_runs`: the active runs per state and the first of their ids."""

    by_state: Mapping[ScenarioRunState, int]
    ids: tuple[str, ...]

    @property
    def count(self) -> int:
        """All active runs."""
        return sum(self.by_state.values())
