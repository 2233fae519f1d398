"""Which counts a poll fetches: one while the run is visibly busy, all four when they can decide.

A full poll is the benchmark run plus four ``limit=1`` counts (all scenario runs, then ``running``,
``scoring``, ``scored``). Most polls of a long wait find the run busy, and for that one count is
enough: a single active state with runs in it means "not done" under the completion rule, whatever the
other counts are. :class:`CountPlan` remembers the last full count of one wait and names that one
count (the *probe*: the active state that had the most runs), so a steady poll is two requests. The
other counts are fetched in the same poll when the probe finds nothing (then they may decide), and at
least every :data:`FULL_COUNT_EVERY` seconds so the progress line stays current. A poll that finds the
run busy never needs the expected scenarios, so neither it nor a full count of a busy run reads them.

Pure: no I/O, no clock (the caller passes ``now``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from airflow_provider_runloop.models import BenchmarkRunState, BenchmarkRunView, ScenarioRunState
from airflow_provider_runloop.progress.states import ACTIVE_SCENARIO_STATES, known_benchmark_run_state
from airflow_provider_runloop.progress.tally import ScenarioRunCounts

__all__ = ["FULL_COUNT_EVERY", "POLLED_STATES", "CountPlan"]

FULL_COUNT_EVERY: Final = 60.0
"""Seconds after which a poll counts every state again, even while the probe finds the run busy."""

POLLED_STATES: Final[tuple[ScenarioRunState | None, ...]] = (
    None,
    ScenarioRunState.RUNNING,
    ScenarioRunState.SCORING,
    ScenarioRunState.SCORED,
)
"""The four counts of a full poll (``None``: all scenario runs); everything else is derived."""


@dataclass
class CountPlan:
    """The counts one wait's polls fetch, from what its last full poll counted.

    :param last: the last full count, or ``None`` before the first.
    :param counted_at: when it was taken, on the caller's clock.
    """

    last: ScenarioRunCounts | None = None
    counted_at: float = float("-inf")

    def probe(self, *, accept_scored: bool, holding: bool, now: float) -> ScenarioRunState | None:
        """The one state to count first, or ``None``: count all four now.

        :param accept_scored: as in the completion rule (``scored`` is then not active).
        :param holding: a scenario failure is being held: every count is needed to see it still holds.
        :param now: the caller's clock.
        """
        if self.last is None or holding or now - self.counted_at >= FULL_COUNT_EVERY:
            return None
        by_state = self.last.by_state()
        active = [
            state
            for state in ACTIVE_SCENARIO_STATES
            if by_state.get(state, 0) > 0 and not (accept_scored and state is ScenarioRunState.SCORED)
        ]
        if not active:
            return None
        # The busiest active state is the likeliest to still have runs in it at the next poll.
        return max(active, key=lambda state: by_state[state])

    def busy(
        self, run: BenchmarkRunView, state: ScenarioRunState, count: int | None
    ) -> ScenarioRunCounts | None:
        """This poll's counts when the probe alone shows the run busy, else ``None`` (count all four).

        The probe decides only while the benchmark run is ``running``: a run that failed, was canceled
        or completed needs the full count (and, then, the listing). The counts returned are the last
        full count with the probe's fresh figure in its state: a progress snapshot, and "not done" is
        exact, since one active run is enough for it.
        """
        if count is None or count <= 0 or self.last is None:
            return None
        if known_benchmark_run_state(run) is not BenchmarkRunState.RUNNING:
            return None
        return dataclasses.replace(self.last, **{state.value: count})

    def remaining(self, probed: ScenarioRunState | None) -> tuple[ScenarioRunState | None, ...]:
        """The counts a full poll still needs after the probe's (each state is counted once a poll)."""
        return tuple(state for state in POLLED_STATES if probed is None or state is not probed)

    def counted(self, counts: ScenarioRunCounts | None, now: float) -> None:
        """Record a full count (``None``: the server gave none; the next poll counts everything)."""
        self.last, self.counted_at = counts, now


def full_counts(
    totals: dict[ScenarioRunState | None, int | None],
) -> ScenarioRunCounts | None:
    """The four counts of a full poll, or ``None`` if the server left any ``total_count`` out."""
    values = [totals.get(state) for state in POLLED_STATES]
    if any(value is None for value in values):
        return None
    total, running, scoring, scored = (value or 0 for value in values)
    return ScenarioRunCounts(total=total, running=running, scoring=scoring, scored=scored)
