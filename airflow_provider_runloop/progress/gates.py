"""Score gates: thresholds on a finished benchmark run, and regressions against a baseline run.

No I/O and no Airflow import: the check operator fetches the runs and feeds in what it got; these
functions return an outcome (:class:`GateOutcome`) with one row per rule, a readable table and a strict-JSON
dict for XCom.

The metrics a gate knows, by the names the tolerances use:

- ``runloop_score``: Runloop's own score of the run (the summary's ``benchmark_score``);
- ``mean_score``: the provider's mean over the scenarios whose latest run has a score;
- ``scoring_function:<name>``: the mean score of one scoring function.

Higher is better for each. A regression is a drop from the baseline by more than the metric's tolerance:
absolute (``0.02``) or relative to the baseline's value (``"5%"``). A drop of exactly the tolerance passes
(numbers are compared with a slack of :data:`COMPARISON_SLACK` for floating-point rounding).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from airflow_provider_runloop.models import ScenarioRunState
from airflow_provider_runloop.progress.summary import BenchmarkRunSummary
from airflow_provider_runloop.progress.tally import ScenarioRunTally

__all__ = [
    "COMPARISON_SLACK",
    "MAX_REGRESSED_SCENARIOS",
    "METRIC_MEAN_SCORE",
    "METRIC_RUNLOOP_SCORE",
    "SCORING_FUNCTION_METRIC_PREFIX",
    "GateMetrics",
    "GateOutcome",
    "GateRow",
    "GateThresholds",
    "RegressedScenario",
    "Tolerance",
    "evaluate_gate",
    "find_regressed_scenarios",
    "parse_tolerances",
]

METRIC_RUNLOOP_SCORE: Final = "runloop_score"
"""The metric name of Runloop's own run score (the summary's ``benchmark_score``)."""

METRIC_MEAN_SCORE: Final = "mean_score"
"""The metric name of the provider's mean over the scored scenarios."""

SCORING_FUNCTION_METRIC_PREFIX: Final = "scoring_function:"
"""``scoring_function:<name>`` is the metric name of one scoring function's mean score."""

MAX_REGRESSED_SCENARIOS: Final = 20
"""At most this many regressed scenarios are named in a message and in the outcome (with a count)."""

COMPARISON_SLACK: Final = 1e-9
"""Slack of every comparison, so that a value exactly at a threshold or a tolerance passes even after
floating-point rounding (``0.68 - 0.70`` is ``-0.020000000000000018``)."""

_PASS: Final = "pass"
_FAIL: Final = "fail"
_SKIP: Final = "skip"
_MAX_KEY_CHARS: Final = 80


def _shown_key(key: object) -> str:
    text = repr(key)
    return text if len(text) <= _MAX_KEY_CHARS else text[: _MAX_KEY_CHARS - 1] + "…"


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and _fits(value)


def _fits(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- tolerances --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may drop below its baseline: ``amount`` absolute, or percent of the baseline.

    :param amount: the allowed drop (absolute), or the allowed percentage when ``relative``.
    :param relative: ``amount`` is a percentage of the baseline's value.
    """

    amount: float = 0.0
    relative: bool = False

    @classmethod
    def parse(cls, name: str, value: object) -> Tolerance:
        """A tolerance from a number (absolute, ``0.02``) or a percentage string (``"5%"``).

        :param name: names the option in the error (``tolerances['mean_score']``).
        :raises ValueError: naming ``name``, for anything else (a negative or non-finite number, a
            percentage above 100, a bool, a string that is not ``N%``).
        """
        if isinstance(value, str):
            text = value.strip()
            if not text.endswith("%"):
                raise ValueError(
                    f"{name} must be a number >= 0 (an absolute drop, e.g. 0.02) or a percentage string "
                    f"such as '5%' (a drop relative to the baseline); got a string without '%'"
                )
            try:
                percent = float(text[:-1])
            except ValueError:
                raise ValueError(f"{name}: {text[:-1].strip()[:20]!r} before '%' is not a number") from None
            if not math.isfinite(percent) or not 0 <= percent <= 100:
                raise ValueError(f"{name} must be a percentage from 0% to 100%, got {percent}%")
            return cls(percent, relative=True)
        if not _finite(value) or value < 0:  # type: ignore[operator]
            raise ValueError(
                f"{name} must be a finite number >= 0 (an absolute drop) or a percentage string such as "
                f"'5%', got {type(value).__name__ if not _finite(value) else value!r}"
            )
        return cls(float(value), relative=False)  # type: ignore[arg-type]

    def allowed_drop(self, baseline: float) -> float:
        """The drop from ``baseline`` this tolerance allows."""
        return self.amount / 100 * abs(baseline) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.relative else f"{self.amount:g}"


def _check_metric_key(name: str, key: object) -> str:
    if not isinstance(key, str):
        raise ValueError(f"{name} keys must be metric names (strings), got {type(key).__name__}")
    if key in (METRIC_RUNLOOP_SCORE, METRIC_MEAN_SCORE):
        return key
    if key.startswith(SCORING_FUNCTION_METRIC_PREFIX) and key[len(SCORING_FUNCTION_METRIC_PREFIX) :].strip():
        return key
    raise ValueError(
        f"{name} has an unknown metric {_shown_key(key)}: use {METRIC_RUNLOOP_SCORE!r}, "
        f"{METRIC_MEAN_SCORE!r} or '{SCORING_FUNCTION_METRIC_PREFIX}<name>'"
    )


def parse_tolerances(
    tolerances: Mapping[str, object] | None, default: object = 0.0, *, name: str = "tolerances"
) -> tuple[dict[str, Tolerance], Tolerance]:
    """Check a gate's tolerances: ``({metric: tolerance}, default tolerance)``.

    :param tolerances: metric name -> a number (absolute) or ``"N%"`` (relative); ``None``: none.
    :param default: the tolerance of the metrics not named.
    :param name: the option's name, for errors.
    :raises ValueError: naming the option and the key, for an unknown metric or a bad value.
    """
    parsed_default = Tolerance.parse("default_tolerance", default)
    if tolerances is None:
        return {}, parsed_default
    if not isinstance(tolerances, Mapping):
        raise ValueError(
            f"{name} must be a dict of metric name -> tolerance, got {type(tolerances).__name__}"
        )
    parsed: dict[str, Tolerance] = {}
    for key, value in tolerances.items():
        metric = _check_metric_key(name, key)
        parsed[metric] = Tolerance.parse(f"{name}[{metric!r}]", value)
    return parsed, parsed_default


# --- thresholds --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateThresholds:
    """Absolute rules on the current run, each optional.

    :param min_runloop_score: the least Runloop run score; a run without one fails when this is set.
    :param min_scoring_function_means: scoring function name -> its least mean score; a function the run
        does not have fails, named.
    :param max_failed_scenarios: the most scenarios whose latest run failed, timed out or was canceled.
    :param max_failed_fraction: the most such scenarios as a fraction (0 to 1) of the run's scenarios
        (expected ones when known, else started ones).
    :raises ValueError: naming the option, for a value that cannot work.
    """

    min_runloop_score: float | None = None
    min_scoring_function_means: Mapping[str, float] = field(default_factory=dict)
    max_failed_scenarios: int | None = None
    max_failed_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.min_runloop_score is not None and not _finite(self.min_runloop_score):
            raise ValueError(
                "min_runloop_score must be a finite number or None, got "
                f"{type(self.min_runloop_score).__name__}"
            )
        means = self.min_scoring_function_means
        if means is None:
            means = {}
        if not isinstance(means, Mapping):
            raise ValueError(
                "min_scoring_function_means must be a dict of scoring function name -> minimum mean score"
            )
        for key, value in means.items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError(
                    f"min_scoring_function_means keys must be scoring function names, got {_shown_key(key)}"
                )
            if not _finite(value):
                raise ValueError(f"min_scoring_function_means[{key!r}] must be a finite number")
        object.__setattr__(self, "min_scoring_function_means", {k: float(v) for k, v in means.items()})
        count = self.max_failed_scenarios
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise ValueError(f"max_failed_scenarios must be a whole number >= 0 or None, got {count!r}")
        fraction = self.max_failed_fraction
        if fraction is not None and (not _finite(fraction) or not 0 <= fraction <= 1):
            raise ValueError(
                "max_failed_fraction must be a fraction from 0 to 1 (e.g. 0.1 for 10% of the scenarios) or "
                f"None, got {fraction!r}"
            )


# --- what a run is judged on -------------------------------------------------------------------------


@dataclass(frozen=True)
class GateMetrics:
    """What a gate reads of a run, and what a later run needs of it as its baseline (kept in XCom).

    :param benchmark_run_id: the run.
    :param runloop_score: Runloop's own run score, if it has one.
    :param mean_score: the mean over the scored scenarios, if any.
    :param scoring_function_means: scoring function name -> mean score.
    :param failed_scenarios: scenarios whose latest run failed, timed out or was canceled.
    :param scenarios: the run's scenarios (expected ones when known, else started ones).
    """

    benchmark_run_id: str
    runloop_score: float | None
    mean_score: float | None
    scoring_function_means: Mapping[str, float]
    failed_scenarios: int | None
    scenarios: int

    @classmethod
    def from_summary(cls, summary: BenchmarkRunSummary) -> GateMetrics:
        """The metrics of a finished run's summary."""
        scenarios = summary.expected_scenarios
        if scenarios is None:
            scenarios = summary.started_scenarios or 0
        return cls(
            benchmark_run_id=summary.benchmark_run_id,
            runloop_score=summary.benchmark_score,
            mean_score=summary.mean_score,
            scoring_function_means=dict(summary.scoring_function_mean_scores),
            failed_scenarios=summary.failed_scenario_count,
            scenarios=scenarios,
        )

    def metric(self, name: str) -> float | None:
        """One score metric by its gate name (``runloop_score``, ``mean_score``, ``scoring_function:x``)."""
        if name == METRIC_RUNLOOP_SCORE:
            return self.runloop_score
        if name == METRIC_MEAN_SCORE:
            return self.mean_score
        return self.scoring_function_means.get(name[len(SCORING_FUNCTION_METRIC_PREFIX) :])

    def score_metrics(self) -> list[str]:
        """The names of the score metrics this run has a value for, in a stable order."""
        names = [name for name in (METRIC_RUNLOOP_SCORE, METRIC_MEAN_SCORE) if self.metric(name) is not None]
        names += [SCORING_FUNCTION_METRIC_PREFIX + fn for fn in sorted(self.scoring_function_means)]
        return names

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives (for XCom)."""
        return {
            "benchmark_run_id": self.benchmark_run_id,
            "runloop_score": self.runloop_score,
            "mean_score": self.mean_score,
            "scoring_function_means": dict(self.scoring_function_means),
            "failed_scenarios": self.failed_scenarios,
            "scenarios": self.scenarios,
        }

    @classmethod
    def from_dict(cls, data: object) -> GateMetrics:
        """Read ``to_dict``'s output back (from an earlier run's XCom).

        :raises ValueError: naming the field that is missing or has the wrong type (never its value).
        """
        if not isinstance(data, Mapping):
            raise ValueError("the metrics are not a dict")
        run_id = data.get("benchmark_run_id")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError("the field 'benchmark_run_id' is missing or not a string")
        scores: dict[str, float | None] = {}
        for key in ("runloop_score", "mean_score"):
            value = data.get(key)
            if value is not None and not _finite(value):
                raise ValueError(f"the field {key!r} is not a finite number")
            scores[key] = None if value is None else float(value)
        means = data.get("scoring_function_means", {})
        if not isinstance(means, Mapping) or not all(
            isinstance(k, str) and _finite(v) for k, v in means.items()
        ):
            raise ValueError("the field 'scoring_function_means' is not a dict of names to finite numbers")
        counts: dict[str, int | None] = {}
        for key in ("failed_scenarios", "scenarios"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"the field {key!r} is not a count")
            counts[key] = value
        return cls(
            benchmark_run_id=run_id,
            runloop_score=scores["runloop_score"],
            mean_score=scores["mean_score"],
            scoring_function_means={k: float(v) for k, v in means.items()},
            failed_scenarios=counts["failed_scenarios"],
            scenarios=counts["scenarios"] or 0,
        )


class RegressedScenario(NamedTuple):
    """A scenario whose latest run completed in the baseline and did not complete now."""

    scenario_id: str
    scenario_run_id: str
    name: str | None
    state: str

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return self._asdict()


def find_regressed_scenarios(
    baseline: ScenarioRunTally, current: ScenarioRunTally, *, limit: int = MAX_REGRESSED_SCENARIOS
) -> tuple[tuple[RegressedScenario, ...], int]:
    """The scenarios that passed in the baseline (latest run ``completed``) and fail now (latest run
    ``failed``, ``timeout`` or ``canceled``): the first ``limit`` by scenario id, and how many in all.

    :param baseline: the baseline run's scenario runs.
    :param current: the current run's scenario runs (the same listing its summary was judged from).
    """
    found = [
        RegressedScenario(failed.scenario_id, failed.run_id, failed.name, failed.state.value)
        for failed in current.failed_latest_runs()
        if baseline.latest_state(failed.scenario_id) is ScenarioRunState.COMPLETED
    ]
    found.sort(key=lambda item: (item.scenario_id, item.scenario_run_id))
    return tuple(found[:limit]), len(found)


# --- the outcome -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRow:
    """One rule's result.

    :param metric: what was checked (``runloop_score``, ``scoring_function:x``, ``failed_scenarios``, ...).
    :param kind: ``threshold``, ``regression`` or ``baseline`` (no baseline was found).
    :param baseline: the baseline's value (regressions).
    :param current: the current run's value.
    :param delta: ``current - baseline`` (regressions).
    :param threshold: the rule, e.g. ``>= 0.7`` (thresholds).
    :param tolerance: the allowed drop, e.g. ``0.02`` or ``5%`` (regressions).
    :param verdict: ``pass``, ``fail`` or ``skip`` (not checked: no baseline value, or no baseline).
    :param note: why, when it is not plain.
    """

    metric: str
    kind: str
    current: float | None
    verdict: str
    baseline: float | None = None
    delta: float | None = None
    threshold: str | None = None
    tolerance: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives, finite numbers only."""
        return {
            "metric": self.metric,
            "kind": self.kind,
            "baseline": self.baseline,
            "current": self.current,
            "delta": self.delta,
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "verdict": self.verdict,
            "note": self.note,
        }


@dataclass(frozen=True)
class GateOutcome:
    """A gate's result: the XCom value (:meth:`to_dict`) and the table (:meth:`table`).

    :param passed: every rule passed.
    :param metrics: the current run's metrics (a later run's baseline).
    :param baseline_benchmark_run_id: the baseline run, if one was used.
    :param baseline_source: how it was named: ``id``, ``metadata``, ``previous_xcom``; ``None`` if none.
    :param baseline_note: why there is no baseline, when one was asked for and not found.
    :param rows: one per rule.
    :param regressed_scenarios: the first regressed scenarios (see :func:`find_regressed_scenarios`).
    :param regressed_scenario_count: how many there are in all.
    """

    passed: bool
    metrics: GateMetrics
    rows: tuple[GateRow, ...]
    baseline_benchmark_run_id: str | None = None
    baseline_source: str | None = None
    baseline_note: str | None = None
    regressed_scenarios: tuple[RegressedScenario, ...] = ()
    regressed_scenario_count: int = 0

    @property
    def benchmark_run_id(self) -> str:
        """The run checked."""
        return self.metrics.benchmark_run_id

    @property
    def failed_rows(self) -> tuple[GateRow, ...]:
        """The rows that failed."""
        return tuple(row for row in self.rows if row.verdict == _FAIL)

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON primitives (``json.dumps(..., allow_nan=False)`` works), small whatever the run."""
        return {
            "passed": self.passed,
            "benchmark_run_id": self.benchmark_run_id,
            "baseline_benchmark_run_id": self.baseline_benchmark_run_id,
            "baseline_source": self.baseline_source,
            "baseline_note": self.baseline_note,
            "rows": [row.to_dict() for row in self.rows],
            "regressed_scenarios": {
                "count": self.regressed_scenario_count,
                "scenarios": [item.to_dict() for item in self.regressed_scenarios],
                "truncated": self.regressed_scenario_count > len(self.regressed_scenarios),
            },
            "metrics": self.metrics.to_dict(),
        }

    def table(self) -> str:
        """The rows as a fixed-width table, for the log and the failure message."""
        header = ("metric", "baseline", "current", "delta", "rule", "verdict")
        lines = [
            (
                row.metric,
                _number(row.baseline, whole=row.metric in _COUNT_METRICS),
                _number(row.current, whole=row.metric in _COUNT_METRICS),
                _number(row.delta, signed=True, whole=row.metric in _COUNT_METRICS),
                row.threshold or (f"drop <= {row.tolerance}" if row.tolerance else "-"),
                row.verdict.upper() + (f" ({row.note})" if row.note else ""),
            )
            for row in self.rows
        ]
        widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header) - 1)]
        rendered = []
        for cells in [header, *lines]:
            rendered.append(
                "  ".join(cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=True))
                + "  "
                + cells[-1]
            )
        rendered.insert(1, "  ".join("-" * width for width in widths) + "  " + "-" * len(header[-1]))
        return "\n".join(line.rstrip() for line in rendered)

    def message(self) -> str:
        """One paragraph and the table: what was checked, what failed, the regressed scenarios."""
        against = (
            f" against baseline {self.baseline_benchmark_run_id} ({self.baseline_source})"
            if self.baseline_benchmark_run_id
            else ""
        )
        if self.passed:
            head = f"Benchmark run {self.benchmark_run_id} passed its checks{against}"
        else:
            failed = ", ".join(dict.fromkeys(row.metric for row in self.failed_rows))
            head = f"Benchmark run {self.benchmark_run_id} failed its checks{against}: {failed}"
        parts = [head + ".", self.table()]
        if self.baseline_note:
            parts.insert(1, self.baseline_note)
        if self.regressed_scenario_count:
            named = ", ".join(
                f"{item.scenario_run_id} ({item.name})" if item.name else item.scenario_run_id
                for item in self.regressed_scenarios
            )
            hidden = self.regressed_scenario_count - len(self.regressed_scenarios)
            count = self.regressed_scenario_count
            parts.append(
                f"{count} scenario{' passed' if count == 1 else 's passed'} in the baseline and "
                f"fail{'s' if count == 1 else ''} now: {named}" + (f" and {hidden} more" if hidden else "")
            )
        return "\n".join(parts)


# Rows whose values are counts: shown as whole numbers in the table.
_COUNT_METRICS: Final = frozenset({"failed_scenarios", "regressed_scenarios"})


def _number(value: float | None, *, signed: bool = False, whole: bool = False) -> str:
    if value is None:
        return "-"
    if whole:
        return f"{value:+.0f}" if signed else f"{value:.0f}"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _at_least(value: float, minimum: float) -> bool:
    return value >= minimum - COMPARISON_SLACK


def _threshold_rows(current: GateMetrics, thresholds: GateThresholds) -> list[GateRow]:
    rows = []
    if thresholds.min_runloop_score is not None:
        minimum = float(thresholds.min_runloop_score)
        score = current.runloop_score
        rows.append(
            GateRow(
                METRIC_RUNLOOP_SCORE,
                "threshold",
                score,
                _FAIL if score is None or not _at_least(score, minimum) else _PASS,
                threshold=f">= {minimum:g}",
                note="the run has no Runloop score" if score is None else None,
            )
        )
    for name, minimum in sorted(thresholds.min_scoring_function_means.items()):
        value = current.scoring_function_means.get(name)
        rows.append(
            GateRow(
                SCORING_FUNCTION_METRIC_PREFIX + name,
                "threshold",
                value,
                _FAIL if value is None or not _at_least(value, minimum) else _PASS,
                threshold=f">= {minimum:g}",
                note="the run has no such scoring function" if value is None else None,
            )
        )
    failed = current.failed_scenarios
    if thresholds.max_failed_scenarios is not None:
        limit = thresholds.max_failed_scenarios
        rows.append(
            GateRow(
                "failed_scenarios",
                "threshold",
                None if failed is None else float(failed),
                _FAIL if failed is None or failed > limit else _PASS,
                threshold=f"<= {limit}",
                note="the count is unknown" if failed is None else None,
            )
        )
    if thresholds.max_failed_fraction is not None:
        limit_fraction = float(thresholds.max_failed_fraction)
        fraction = None if failed is None else (failed / current.scenarios if current.scenarios else 0.0)
        rows.append(
            GateRow(
                "failed_fraction",
                "threshold",
                fraction,
                _FAIL if fraction is None or fraction > limit_fraction + COMPARISON_SLACK else _PASS,
                threshold=f"<= {limit_fraction:g}",
                note=(
                    "the count is unknown" if failed is None else f"{failed} of {current.scenarios} scenarios"
                ),
            )
        )
    return rows


def _regression_rows(
    current: GateMetrics,
    baseline: GateMetrics,
    tolerances: Mapping[str, Tolerance],
    default_tolerance: Tolerance,
) -> list[GateRow]:
    rows = []
    for name in baseline.score_metrics():
        before = baseline.metric(name)
        assert before is not None
        tolerance = tolerances.get(name, default_tolerance)
        now = current.metric(name)
        if now is None:
            rows.append(
                GateRow(
                    name,
                    "regression",
                    None,
                    _FAIL,
                    baseline=before,
                    tolerance=str(tolerance),
                    note="the baseline has it and this run does not",
                )
            )
            continue
        delta = _or_none(now - before)
        allowed = tolerance.allowed_drop(before)
        ok = delta is not None and delta >= -allowed - COMPARISON_SLACK
        rows.append(
            GateRow(
                name,
                "regression",
                now,
                _PASS if ok else _FAIL,
                baseline=before,
                delta=delta,
                tolerance=str(tolerance),
                note=None if ok else f"dropped by more than {allowed:.4g}",
            )
        )
    return rows


def evaluate_gate(
    current: GateMetrics,
    *,
    thresholds: GateThresholds | None = None,
    baseline: GateMetrics | None = None,
    baseline_source: str | None = None,
    baseline_note: str | None = None,
    fail_without_baseline: bool = False,
    tolerances: Mapping[str, Tolerance] | None = None,
    default_tolerance: Tolerance | None = None,
    regressed_scenarios: Sequence[RegressedScenario] = (),
    regressed_scenario_count: int | None = None,
) -> GateOutcome:
    """Apply a gate's rules to a finished run.

    :param current: the run checked.
    :param thresholds: the absolute rules (none: no threshold rows).
    :param baseline: the baseline's metrics; each score metric it has is compared (its tolerance: from
        ``tolerances`` by name, else ``default_tolerance``, else none).
    :param baseline_source: how the baseline was named (recorded in the outcome).
    :param baseline_note: when a baseline was asked for and none was found: why. Adds a ``baseline`` row,
        ``fail`` if ``fail_without_baseline``, else ``skip``.
    :param fail_without_baseline: whether a missing baseline fails the gate.
    :param tolerances: per metric, from :func:`parse_tolerances`.
    :param default_tolerance: the tolerance of the metrics not named.
    :param regressed_scenarios: from :func:`find_regressed_scenarios` (the first ones).
    :param regressed_scenario_count: how many in all; more than zero fails. ``None`` (and none given):
        scenarios were not compared, and there is no ``regressed_scenarios`` row.
    """
    rows = _threshold_rows(current, thresholds or GateThresholds())
    if baseline is not None:
        rows += _regression_rows(current, baseline, tolerances or {}, default_tolerance or Tolerance())
        count = len(regressed_scenarios) if regressed_scenario_count is None else regressed_scenario_count
        if regressed_scenario_count is not None or regressed_scenarios:
            rows.append(
                GateRow(
                    "regressed_scenarios",
                    "regression",
                    float(count),
                    _FAIL if count else _PASS,
                    threshold="= 0",
                    note="passed in the baseline, fail now" if count else None,
                )
            )
    else:
        count = 0
        if baseline_note is not None:
            rows.append(
                GateRow(
                    "baseline",
                    "baseline",
                    None,
                    _FAIL if fail_without_baseline else _SKIP,
                    note="no baseline found",
                )
            )
    return GateOutcome(
        passed=all(row.verdict != _FAIL for row in rows),
        metrics=current,
        rows=tuple(rows),
        baseline_benchmark_run_id=baseline.benchmark_run_id if baseline is not None else None,
        baseline_source=baseline_source if baseline is not None else None,
        baseline_note=baseline_note if baseline is None else None,
        regressed_scenarios=tuple(regressed_scenarios)[:MAX_REGRESSED_SCENARIOS],
        regressed_scenario_count=count,
    )
