"""The state tables: what each scenario-run, benchmark-run and benchmark-job state means for a wait.

The only place that classifies a state. Everything else (the completion rule, the tally, the lifecycle
operators, the triggers) asks these functions and sets; an unknown state fails closed with
:class:`~airflow_provider_runloop.exceptions.RunloopUnknownStateError`, naming it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from airflow_provider_runloop.exceptions import RunloopUnknownStateError
from airflow_provider_runloop.models import (
    BenchmarkJobState,
    BenchmarkRunState,
    BenchmarkRunView,
    ScenarioRunState,
)

__all__ = [
    "ACTIVE_SCENARIO_STATES",
    "ALIVE_JOB_STATES",
    "FAILED_RUN_STATES",
    "FINISHED_JOB_STATES",
    "SCENARIO_STATE_ORDER",
    "ScenarioStateClass",
    "active_count",
    "classify_scenario_state",
    "known_benchmark_run_state",
    "known_scenario_state",
    "normalise_job_state",
    "scored_is_final",
    "state_name",
]


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
SCENARIO_STATE_ORDER: Final[tuple[ScenarioRunState, ...]] = (
    ScenarioRunState.RUNNING,
    ScenarioRunState.SCORING,
    ScenarioRunState.SCORED,
    ScenarioRunState.COMPLETED,
    ScenarioRunState.FAILED,
    ScenarioRunState.TIMEOUT,
    ScenarioRunState.CANCELED,
)

# Benchmark-run states that end the wait at once, as a failure, whatever the scenario runs say.
FAILED_RUN_STATES: Final = frozenset({BenchmarkRunState.FAILED, BenchmarkRunState.CANCELED})

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
    known = known_scenario_state(state, scenario_run_id)
    if known is ScenarioRunState.SCORED and accept_scored:
        return ScenarioStateClass.FINISHED_SUCCESS
    return _SCENARIO_STATE_TABLE[known]


def known_scenario_state(state: ScenarioRunState | str, scenario_run_id: str | None) -> ScenarioRunState:
    try:
        return ScenarioRunState(state)
    except ValueError:
        subject = f"Scenario run {scenario_run_id}" if scenario_run_id else "A scenario run"
        known = ", ".join(member.value for member in SCENARIO_STATE_ORDER)
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


def active_count(counts_by_state: Mapping[ScenarioRunState, int], *, accept_scored: bool) -> int:
    return sum(
        count
        for state, count in counts_by_state.items()
        if classify_scenario_state(state, accept_scored=accept_scored) is ScenarioStateClass.ACTIVE
    )


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


#: Scenario-run states that are active unless ``scored`` is accepted: what a complete must wait for.
ACTIVE_SCENARIO_STATES: Final = (ScenarioRunState.RUNNING, ScenarioRunState.SCORING, ScenarioRunState.SCORED)

#: Job states in which a job may still change (a retry reattaches to such a job).
ALIVE_JOB_STATES: Final = frozenset(
    {BenchmarkJobState.INITIALIZING, BenchmarkJobState.QUEUED, BenchmarkJobState.RUNNING}
)


def state_name(state: object) -> str:
    """A state as its API string, whether parsed into an enum member or kept as an unknown ``str``."""
    return str(getattr(state, "value", state))
