"""The summary of a wait on a benchmark run: the XCom value and the trigger event's payload.

A small frozen record of JSON primitives, written by the completion rule
(:mod:`~airflow_provider_runloop.progress.rule`) and read back from XCom or an event with pydantic
(:meth:`BenchmarkRunSummary.from_dict`), plus the one progress line every waiter logs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Final

import pendulum
import pydantic

from airflow_provider_runloop.progress.states import SCENARIO_STATE_ORDER, classify_scenario_state

__all__ = ["BenchmarkRunSummary", "format_progress", "human_duration"]

# Strict JSON types: a bool is no count, a numeric string no number; scores are finite.
_Text = Annotated[str, pydantic.Strict()]
_Flag = Annotated[bool, pydantic.Strict()]
_Count = Annotated[int, pydantic.Strict(), pydantic.Field(ge=0)]
_Score = Annotated[float, pydantic.Strict(), pydantic.AllowInfNan(False)]
_Ms = Annotated[int, pydantic.Strict()]


@dataclass(frozen=True, kw_only=True)
class BenchmarkRunSummary:
    """What a wait on a benchmark run found: the XCom value and the trigger event payload.

    JSON primitives only (``to_dict`` / ``from_dict`` round-trip exactly) and small whatever the run's
    size: id lists are capped at ``MAX_LISTED_IDS``, with a count and a ``truncated`` flag.

    A summary is *exact* when built from a full listing (``judge``): scenario runs are then
    de-duplicated by scenario and counts are of each scenario's latest run. A summary built from counts
    only (``assess_counts``) has ``exact=False``: counts are of *runs*, so ``finished_scenarios`` is
    then an upper bound (finished runs, but no more than the expected scenarios less the active runs)
    and what counts cannot tell is ``None``.

    Two scores, told apart: ``benchmark_score`` is Runloop's own score of the run (what its dashboard
    shows: the sum of the scenario runs' scores over the number of scenario runs, once the run is
    completed); ``mean_score`` is the provider's mean over the scenarios whose latest run has a score.

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
    :param finished_scenarios: distinct scenarios whose latest run is finished (from counts: an upper
        bound, see above).
    :param total_scenario_runs: all scenario runs, retries included.
    :param retried_scenario_runs: runs that are not their scenario's latest (retried attempts); from
        counts: at least this many (the runs beyond the expected scenarios), ``None`` if unknown.
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
    :param failed_scenario_run_names: those listed runs' names (id -> name; runs without one left out).
    :param failed_scenario_run_ids_truncated: more failed runs exist than are listed.
    :param missing_scenario_count: expected scenarios with no run (yet).
    :param missing_scenario_ids: the first of them (in the expected order), when the ids are known.
    :param missing_scenario_ids_truncated: more missing ids exist than are listed.
    :param benchmark_score: the benchmark run's own ``score``, once Runloop has computed it.
    :param benchmark_run_start_time_ms: when the benchmark run started (ms since the Unix epoch).
    :param benchmark_run_duration_ms: how long it ran, once it has ended.
    """

    # Read back with pydantic (from_dict): strict types, finite scores, unknown keys ignored, and no
    # input value quoted in an error (a summary can carry names a user chose).
    __pydantic_config__ = pydantic.ConfigDict(hide_input_in_errors=True, extra="ignore")

    benchmark_run_id: _Text
    benchmark_run_state: _Text
    # Absent from summaries made before it was added (an event stored by an older version).
    benchmark_id: _Text | None = None
    done: _Flag
    success: _Flag
    message: _Text
    exact: _Flag
    accept_scored: _Flag
    expected_scenarios: _Count | None
    started_scenarios: _Count | None
    finished_scenarios: _Count
    total_scenario_runs: _Count
    state_counts: dict[_Text, _Count]
    mean_score: _Score | None
    scored_scenarios: _Count | None
    scoring_function_mean_scores: dict[_Text, _Score]
    scoring_function_mean_scores_truncated: _Flag
    failed_scenario_count: _Count | None
    failed_scenario_run_ids: tuple[_Text, ...]
    failed_scenario_run_ids_truncated: _Flag
    missing_scenario_count: _Count | None
    missing_scenario_ids: tuple[_Text, ...]
    missing_scenario_ids_truncated: _Flag
    benchmark_score: _Score | None
    # Added later, so with defaults: a summary stored by an older version still reads.
    retried_scenario_runs: _Count | None = None
    failed_scenario_run_names: dict[_Text, _Text] = dataclasses.field(default_factory=dict)
    benchmark_run_start_time_ms: _Ms | None = None
    benchmark_run_duration_ms: _Ms | None = None

    def to_dict(self) -> dict[str, Any]:
        """The summary as a dict of JSON primitives (for XCom and trigger events)."""
        data = dataclasses.asdict(self)
        data["state_counts"] = dict(self.state_counts)
        data["scoring_function_mean_scores"] = dict(self.scoring_function_mean_scores)
        data["failed_scenario_run_ids"] = list(self.failed_scenario_run_ids)
        data["failed_scenario_run_names"] = dict(self.failed_scenario_run_names)
        data["missing_scenario_ids"] = list(self.missing_scenario_ids)
        return data

    @classmethod
    def from_dict(cls, data: object) -> BenchmarkRunSummary:
        """Rebuild a summary from ``to_dict``'s output (after a JSON round trip, too).

        Keys this version does not know are ignored, so an event from a newer provider still reads.
        Types are strict (``1`` is no ``True``, ``"3"`` no count) and scores finite.

        :param data: the dict.
        :raises ValueError: naming the field, if one is missing or has the wrong type (never its value).
        """
        try:
            return _SUMMARY.validate_python(data)
        except pydantic.ValidationError as exc:
            raise ValueError(f"Not a benchmark run summary: {_first_problem(exc)}.") from None


def format_progress(summary: BenchmarkRunSummary) -> str:
    """One progress line, e.g. ``bmr_x: 37/120 scenarios finished (completed 30, failed 7; running 70)``.

    Scenarios are counted, not runs: a retried scenario counts once, by its latest run, and its earlier
    attempts are shown apart (``plus 2 retried attempts``). Finished states come first, then active
    ones after a ``;``; states with no runs are left out, and ``?`` stands for an unknown expected count.
    A counts-only summary knows only the active states (and ``scored``), e.g.
    ``bmr_x: 37/120 scenarios finished (running 70, scoring 13)``.

    :param summary: a summary from ``judge`` or ``assess_counts``.
    """
    finished_parts: list[str] = []
    active_parts: list[str] = []
    for state in SCENARIO_STATE_ORDER:
        count = summary.state_counts.get(state.value, 0)
        if not count:
            continue
        cls = classify_scenario_state(state, accept_scored=summary.accept_scored)
        (finished_parts if cls.is_finished else active_parts).append(f"{state.value} {count}")
    groups = "; ".join(", ".join(parts) for parts in (finished_parts, active_parts) if parts)
    if not groups:
        groups = "no scenario runs yet" if summary.total_scenario_runs == 0 else "no active runs"
    expected = "?" if summary.expected_scenarios is None else str(summary.expected_scenarios)
    line = (
        f"{summary.benchmark_run_id}: {summary.finished_scenarios}/{expected} scenarios finished ({groups})"
    )
    retried = summary.retried_scenario_runs
    if retried:
        line += f", plus {retried} retried attempt{'' if retried == 1 else 's'}"
    return line


def human_duration(seconds: float) -> str:
    """A duration as people say it: ``42 seconds``, ``3 minutes 5 seconds``, ``2 hours 10 minutes``.

    Whole seconds under an hour, whole minutes from an hour on (pendulum's words, in English).

    :param seconds: the duration; a negative one (clocks apart) reads as ``0 seconds``.
    """
    whole = max(0, round(seconds))
    if whole >= 3600:
        whole = round(whole / 60) * 60
    if whole == 0:
        return "0 seconds"
    return str(pendulum.duration(seconds=whole).in_words(locale="en"))


# --- from_dict field readers: a clear ValueError instead of a confusing failure later ---------------


_SUMMARY: Final = pydantic.TypeAdapter(BenchmarkRunSummary)


def _first_problem(exc: pydantic.ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"the field {field!r} is missing"
    return f"{field!r}: {error['msg']}"
