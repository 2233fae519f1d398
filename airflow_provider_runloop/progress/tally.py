"""What a poll saw of a benchmark run's scenario runs: cheap counts, or a streamed tally of the listing.

No rule here: :mod:`~airflow_provider_runloop.progress.rule` decides from these. The tally keeps, per
scenario, only its latest run (id, state, scores) and per state a count of every run, plus the first ids
of the runs in each active state so a verdict can name them: memory grows with the number of scenarios,
never with the size of the scenario runs.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from airflow_provider_runloop.models import ScenarioRunState, ScenarioRunView
from airflow_provider_runloop.progress.states import (
    ACTIVE_SCENARIO_STATES,
    ScenarioStateClass,
    classify_scenario_state,
    known_scenario_state,
)

__all__ = ["MAX_LISTED_IDS", "ActiveRuns", "LatestRun", "ScenarioRunCounts", "ScenarioRunTally"]

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
    """A scenario's latest run, as the tally keeps it: only what the verdict and the summary need."""

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

    __slots__ = ("_active_ids", "_all_runs_by_state", "_latest", "_runs_seen")

    def __init__(self) -> None:
        self._latest: dict[str, LatestRun] = {}
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
        # Greater key = later run. `-position` makes the earlier-listed run win a tie.
        key = (run.start_time_ms is not None, run.start_time_ms or 0, -position)
        held = self._latest.get(run.scenario_id)
        if held is not None and held.order_key > key:
            return
        result = run.scoring_contract_result
        self._latest[run.scenario_id] = LatestRun(
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

    def latest_runs(self) -> Iterator[tuple[str, LatestRun]]:
        """``(scenario_id, latest run)`` for every scenario with a run, in first-listed order."""
        return iter(self._latest.items())

    def latest_run(self, scenario_id: str) -> LatestRun | None:
        """The latest run of one scenario, or ``None`` if it has none."""
        return self._latest.get(scenario_id)

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
