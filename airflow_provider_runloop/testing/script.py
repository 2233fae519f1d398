"""Declarative, seeded scenario scripts: what the emulated scenarios do, and when.

A script is a mapping (Python dict, JSON or YAML file). Every key is optional::

    seed: 7                        # planning seed (the emulator's seed when absent)
    benchmark_name: nightly-evals  # name of a benchmark seeded from this script
    scenario_count: 12             # how many scenarios (default: the number of `scenarios` entries, or 10)
    scenario_name_prefix: scenario # generated names: scenario-001, scenario-002, ...
    scoring_functions:             # names, or {name, weight}; weights are normalised
      - tests_pass
      - {name: lint_clean, weight: 0.25}
    timing:                        # seconds; a number or a [min, max] range sampled under the seed
      start_interval: 1.0          # stagger: scenario i starts i * start_interval after the run
      concurrency: null            # at most N scenarios at once (null: no limit)
      duration: [5, 15]            # running phase of a scenario run (autonomous runs)
      scoring: [1, 3]              # scoring -> scored (also the delay after POST score)
      complete: [0.5, 1]           # scored -> completed (autonomous runs)
      setup: [1, 2]                # time until a setup failure shows
      retry_delay: 1.0             # gap between a failed attempt and its retry
    outcomes: {completed: 0.8, failed: 0.1, timeout: 0.1}   # the mix for scenarios without an entry
    scores: [0.5, 1.0]             # range of each scoring function's score
    scenarios:                     # explicit entries, by position; every key optional
      - name: flaky-fix
        attempts: [failed, completed]   # a retried scenario: two runs for one scenario_id
      - outcome: setup_failed           # fails during setup: never gets a scenario run
      - {outcome: stays_scored, score: 0.5, duration: 30, start_at: 120}
    agents:                        # a benchmark job's runs, by agent config name: what that agent does
      my-agent-v2:                 # replaces outcomes, scores and scenarios for runs of this agent
        scores: [0.2, 0.6]
        scenarios: [{outcome: failed}]

Outcomes of one attempt:

``completed``
    runs for ``duration``, then ``scoring`` → ``scored`` (with its result) → ``completed``.
``stays_scored``
    like ``completed`` but stays ``scored`` until a client completes it (the "scored is not done" case).
``stays_running``
    never moves on its own; only client actions (or test hooks) end it.
``failed``, ``timeout``, ``canceled``
    end in that state after ``duration``, without a scoring result.
``setup_failed`` (``outcome`` only, not in ``attempts``)
    the scenario fails during setup: no scenario run is ever created; a job reports it as a ``FAILED``
    outcome without ``scenario_run_id``.

In an interactive run (the client starts and scores each scenario) the outcome decides only how scoring
ends: ``failed`` and ``timeout`` end the scoring in that state, ``setup_failed`` fails the new run after
``setup`` seconds, everything else becomes ``scored`` with the planned result.

Reproducibility: every random draw for scenario ``i``, attempt ``k`` comes from its own generator seeded
with ``(seed, variant, i, k)``, and all values are drawn in a fixed order whether an entry overrides them
or not. The same script and seed therefore give the same plan for a scenario, whatever the others do.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

__all__ = [
    "ATTEMPT_OUTCOMES",
    "DEFAULT_SCRIPT",
    "RETRYABLE_OUTCOMES",
    "SCENARIO_OUTCOMES",
    "AttemptPlan",
    "ScenarioEntry",
    "ScenarioPlan",
    "ScenarioScript",
    "ScoringFunctionSpec",
    "ScriptError",
    "ScriptSource",
    "SecondsRange",
    "Timing",
    "failure_reason",
    "load_script",
    "quick_script",
    "scoring_contract_result",
]

#: Outcomes a single attempt (one scenario run) can have.
ATTEMPT_OUTCOMES = ("completed", "stays_scored", "stays_running", "failed", "timeout", "canceled")
#: Outcomes a scenario can have: an attempt outcome, or failing during setup without any run.
SCENARIO_OUTCOMES = (*ATTEMPT_OUTCOMES, "setup_failed")
#: Outcomes that a job's orchestrator retries when ``n_attempts`` allows.
RETRYABLE_OUTCOMES = frozenset({"failed", "timeout"})

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_SCRIPT_KEYS = {
    "seed",
    "benchmark_name",
    "scenario_count",
    "scenario_name_prefix",
    "scoring_functions",
    "timing",
    "outcomes",
    "scores",
    "scenarios",
    "agents",
}
# What an agent's entry may replace: what the agent does, not how the benchmark is laid out or timed.
_AGENT_KEYS = {"outcomes", "scores", "scenarios"}
_TIMING_KEYS = {"start_interval", "concurrency", "duration", "scoring", "complete", "setup", "retry_delay"}
_ENTRY_KEYS = {
    "name",
    "outcome",
    "attempts",
    "score",
    "function_scores",
    "duration",
    "scoring",
    "complete",
    "start_at",
}

#: What :func:`load_script` accepts: a parsed script, a mapping, or the path of a JSON/YAML file.
ScriptSource = Union["ScenarioScript", Mapping[str, Any], str, "os.PathLike[str]"]


class ScriptError(ValueError):
    """A scenario script is invalid; the message names the offending key."""


@dataclass(frozen=True)
class SecondsRange:
    """A closed range ``[low, high]`` sampled uniformly (a single number means ``low == high``)."""

    low: float
    high: float

    def sample_ms(self, unit: float) -> int:
        """The value at ``unit`` (a draw in ``[0, 1)``) of the range, in milliseconds."""
        return round((self.low + (self.high - self.low) * unit) * 1000)


@dataclass(frozen=True)
class ScoringFunctionSpec:
    """A scoring function of the emulated scenarios: its name and relative weight."""

    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class Timing:
    """Timing rules of a script (seconds)."""

    start_interval: float = 1.0
    concurrency: int | None = None
    duration: SecondsRange = SecondsRange(5.0, 15.0)
    scoring: SecondsRange = SecondsRange(1.0, 3.0)
    complete: SecondsRange = SecondsRange(0.5, 1.0)
    setup: SecondsRange = SecondsRange(1.0, 2.0)
    retry_delay: float = 1.0


@dataclass(frozen=True)
class ScenarioEntry:
    """Explicit settings for the scenario at one position; ``None`` means "use the script's rules"."""

    name: str | None = None
    attempts: tuple[str, ...] | None = None
    setup_failed: bool = False
    score: float | None = None
    function_scores: Mapping[str, float] | None = None
    duration: SecondsRange | None = None
    scoring: SecondsRange | None = None
    complete: SecondsRange | None = None
    start_at: float | None = None


_NO_ENTRY = ScenarioEntry()


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    """What one scenario run (one attempt at a scenario) does. Durations in milliseconds."""

    outcome: str
    duration_ms: int
    scoring_ms: int
    complete_ms: int
    function_scores: tuple[tuple[str, float], ...]
    score: float

    @property
    def retryable(self) -> bool:
        """Whether a job orchestrator would retry this attempt (it ended ``failed`` or ``timeout``)."""
        return self.outcome in RETRYABLE_OUTCOMES

    def scoring_contract_result(self) -> dict[str, Any]:
        """The ``scoring_contract_result`` this attempt gets once scored."""
        return scoring_contract_result(self.score, self.function_scores)


def scoring_contract_result(score: float, function_scores: tuple[tuple[str, float], ...]) -> dict[str, Any]:
    """A ``scoring_contract_result`` view; built on demand, never stored, to keep 100k runs small."""
    return {
        "score": score,
        "scoring_function_results": [
            {
                "scoring_function_name": name,
                "score": value,
                "state": "complete",
                "output": f"[emulated] {name}: score={value:.4f}\n",
            }
            for name, value in function_scores
        ],
    }


def failure_reason(outcome: str) -> dict[str, str] | None:
    """A job outcome's ``failure_reason`` for an attempt planned to fail or time out."""
    if outcome == "timeout":
        return {"exception_type": "AgentTimeoutError", "exception_message": "[emulated] agent timed out"}
    if outcome == "failed":
        return {"exception_type": "AgentError", "exception_message": "[emulated] agent run failed"}
    return None


@dataclass(frozen=True, slots=True)
class ScenarioPlan:
    """The plan for the scenario at ``position`` under one script, seed and variant."""

    script: ScenarioScript
    seed: int
    variant: int
    position: int
    name: str
    setup_failed: bool
    setup_ms: int
    start_at_ms: int | None
    scripted_attempts: int

    @property
    def retry_delay_ms(self) -> int:
        return round(self.script.timing.retry_delay * 1000)

    def attempt(self, index: int) -> AttemptPlan:
        """The plan of attempt ``index`` (0-based); attempts past the script's list repeat the last one."""
        return self.script.plan_attempt(self.position, index, seed=self.seed, variant=self.variant)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScriptError(f"{where} must be a number, got {value!r}")
    return float(value)


def _seconds_range(value: Any, where: str, *, upper: float | None = None) -> SecondsRange:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ScriptError(f"{where} must be a number or a [min, max] pair, got {value!r}")
        low, high = _number(value[0], where), _number(value[1], where)
    else:
        low = high = _number(value, where)
    if low < 0 or high < low:
        raise ScriptError(f"{where} must satisfy 0 <= min <= max, got {value!r}")
    if upper is not None and high > upper:
        raise ScriptError(f"{where} must not exceed {upper}, got {value!r}")
    return SecondsRange(low, high)


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScriptError(
            f"unknown key(s) in {where}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScriptError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _parse_timing(data: Any) -> Timing:
    data = _mapping(data, "timing")
    _check_keys(data, _TIMING_KEYS, "timing")
    default = Timing()
    concurrency = data.get("concurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise ScriptError(f"timing.concurrency must be a positive integer or null, got {concurrency!r}")
    start_interval = _number(data.get("start_interval", default.start_interval), "timing.start_interval")
    retry_delay = _number(data.get("retry_delay", default.retry_delay), "timing.retry_delay")
    if start_interval < 0 or retry_delay < 0:
        raise ScriptError("timing.start_interval and timing.retry_delay must not be negative")
    ranges = {
        key: _seconds_range(data[key], f"timing.{key}") if key in data else getattr(default, key)
        for key in ("duration", "scoring", "complete", "setup")
    }
    return Timing(start_interval=start_interval, concurrency=concurrency, retry_delay=retry_delay, **ranges)


def _parse_outcome(value: Any, where: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ScriptError(f"{where} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _parse_entry(data: Any, position: int, function_names: set[str]) -> ScenarioEntry:
    where = f"scenarios[{position}]"
    data = _mapping(data, where)
    _check_keys(data, _ENTRY_KEYS, where)
    if "outcome" in data and "attempts" in data:
        raise ScriptError(f"{where}: give either 'outcome' or 'attempts', not both")
    attempts: tuple[str, ...] | None = None
    setup_failed = False
    if "outcome" in data:
        outcome = _parse_outcome(data["outcome"], f"{where}.outcome", SCENARIO_OUTCOMES)
        setup_failed = outcome == "setup_failed"
        attempts = None if setup_failed else (outcome,)
    elif "attempts" in data:
        raw = data["attempts"]
        if isinstance(raw, str) or not isinstance(raw, Sequence) or not raw:
            raise ScriptError(f"{where}.attempts must be a non-empty list of outcomes")
        attempts = tuple(
            _parse_outcome(item, f"{where}.attempts[{i}]", ATTEMPT_OUTCOMES) for i, item in enumerate(raw)
        )
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ScriptError(f"{where}.name must be a non-empty string")
    score = None
    if data.get("score") is not None:
        score = _number(data["score"], f"{where}.score")
        if not 0 <= score <= 1:
            raise ScriptError(f"{where}.score must be between 0 and 1, got {score}")
    function_scores = None
    if data.get("function_scores") is not None:
        raw_scores = _mapping(data["function_scores"], f"{where}.function_scores")
        unknown = sorted(set(raw_scores) - function_names)
        if unknown:
            raise ScriptError(
                f"{where}.function_scores names unknown scoring functions: {', '.join(unknown)}"
            )
        function_scores = {k: _number(v, f"{where}.function_scores.{k}") for k, v in raw_scores.items()}
        if any(not 0 <= v <= 1 for v in function_scores.values()):
            raise ScriptError(f"{where}.function_scores values must be between 0 and 1")
    start_at = None
    if data.get("start_at") is not None:
        start_at = _number(data["start_at"], f"{where}.start_at")
        if start_at < 0:
            raise ScriptError(f"{where}.start_at must not be negative")
    return ScenarioEntry(
        name=name,
        attempts=attempts,
        setup_failed=setup_failed,
        score=score,
        function_scores=function_scores,
        duration=_seconds_range(data["duration"], f"{where}.duration") if "duration" in data else None,
        scoring=_seconds_range(data["scoring"], f"{where}.scoring") if "scoring" in data else None,
        complete=_seconds_range(data["complete"], f"{where}.complete") if "complete" in data else None,
        start_at=start_at,
    )


def _parse_scoring_functions(data: Any) -> tuple[ScoringFunctionSpec, ...]:
    if isinstance(data, str) or not isinstance(data, Sequence) or not data:
        raise ScriptError("scoring_functions must be a non-empty list of names or {name, weight} mappings")
    functions = []
    for i, item in enumerate(data):
        where = f"scoring_functions[{i}]"
        name: Any = item
        weight = 1.0
        if not isinstance(item, str):
            item = _mapping(item, where)
            _check_keys(item, {"name", "weight"}, where)
            name, weight = item.get("name"), _number(item.get("weight", 1.0), f"{where}.weight")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise ScriptError(f"{where}: a scoring function name uses only [A-Za-z0-9_-], got {name!r}")
        if weight <= 0:
            raise ScriptError(f"{where}.weight must be positive, got {weight}")
        functions.append(ScoringFunctionSpec(name, weight))
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise ScriptError(f"scoring_functions has duplicate names: {names}")
    return tuple(functions)


def _parse_outcome_mix(data: Any) -> tuple[tuple[str, float], ...]:
    data = _mapping(data, "outcomes")
    mix = []
    for key, weight in data.items():
        _parse_outcome(key, "an outcomes key", SCENARIO_OUTCOMES)
        value = _number(weight, f"outcomes.{key}")
        if value < 0:
            raise ScriptError(f"outcomes.{key} must not be negative")
        mix.append((str(key), value))
    if sum(w for _, w in mix) <= 0:
        raise ScriptError("outcomes must give at least one outcome a positive weight")
    return tuple(mix)


_TWO_TO_MINUS_64 = 2.0**-64


def _unit_draws(key: str, count: int) -> list[float]:
    """``count`` reproducible draws in ``[0, 1)`` for ``key``: a hash, not a seeded ``random.Random``.

    Seeding a ``random.Random`` from a string costs microseconds; planning 100,000 scenarios needs
    several draws each, so they come from BLAKE2b digests of the key instead (stable across processes,
    platforms and Python versions).
    """
    draws: list[float] = []
    block = 0
    while len(draws) < count:
        size = min(count - len(draws), 8)
        digest = hashlib.blake2b(f"{key}#{block}".encode(), digest_size=8 * size).digest()
        draws.extend(value * _TWO_TO_MINUS_64 for value in struct.unpack(f"<{size}Q", digest))
        block += 1
    return draws


def _weighted_choice(mix: Sequence[tuple[str, float]], draw: float) -> str:
    threshold = draw * sum(weight for _, weight in mix)
    cumulative = 0.0
    for outcome, weight in mix:
        cumulative += weight
        if threshold < cumulative:
            return outcome
    return next(outcome for outcome, weight in reversed(mix) if weight > 0)


def _parse_agents(data: Mapping[str, Any]) -> tuple[tuple[str, ScenarioScript], ...]:
    raw = data.get("agents")
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ScriptError("agents must map agent config names to what those agents do")
    base = {key: value for key, value in data.items() if key != "agents"}
    agents = []
    for name, override in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise ScriptError("agents must be keyed by agent config names (non-empty strings)")
        override = _mapping(override, f"agents[{name!r}]")
        _check_keys(override, _AGENT_KEYS, f"agents[{name!r}]")
        agents.append((name, ScenarioScript.from_mapping({**base, **override})))
    return tuple(agents)


@dataclass(frozen=True)
class ScenarioScript:
    """A parsed scenario script; build one with :meth:`from_mapping` or :func:`load_script`."""

    seed: int | None = None
    benchmark_name: str = "emulated-benchmark"
    scenario_count: int = 10
    scenario_name_prefix: str = "scenario"
    scoring_functions: tuple[ScoringFunctionSpec, ...] = (
        ScoringFunctionSpec("tests_pass", 0.75),
        ScoringFunctionSpec("lint_clean", 0.25),
    )
    timing: Timing = field(default_factory=Timing)
    outcomes: tuple[tuple[str, float], ...] = (("completed", 1.0),)
    scores: SecondsRange = SecondsRange(0.5, 1.0)
    scenarios: tuple[ScenarioEntry, ...] = ()
    agents: tuple[tuple[str, ScenarioScript], ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ScenarioScript:
        """Parse and validate a script mapping; raises :class:`ScriptError` naming the bad key."""
        data = _mapping(data, "a scenario script")
        _check_keys(data, _SCRIPT_KEYS, "the scenario script")
        default = cls()
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ScriptError(f"seed must be an integer, got {seed!r}")
        functions = (
            _parse_scoring_functions(data["scoring_functions"])
            if "scoring_functions" in data
            else default.scoring_functions
        )
        raw_entries = data.get("scenarios") or []
        if isinstance(raw_entries, str) or not isinstance(raw_entries, Sequence):
            raise ScriptError("scenarios must be a list of scenario entries")
        names = {f.name for f in functions}
        entries = tuple(_parse_entry(item, i, names) for i, item in enumerate(raw_entries))
        count = data.get("scenario_count")
        if count is None:
            count = len(entries) or default.scenario_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ScriptError(f"scenario_count must be a non-negative integer, got {count!r}")
        if count < len(entries):
            raise ScriptError(f"scenario_count ({count}) is smaller than the number of scenarios entries")
        for key in ("benchmark_name", "scenario_name_prefix"):
            if key in data and (not isinstance(data[key], str) or not data[key].strip()):
                raise ScriptError(f"{key} must be a non-empty string")
        scores = default.scores
        if "scores" in data:
            scores = _seconds_range(data["scores"], "scores", upper=1.0)
        agents = _parse_agents(data)
        return cls(
            agents=agents,
            seed=seed,
            benchmark_name=data.get("benchmark_name", default.benchmark_name),
            scenario_count=count,
            scenario_name_prefix=data.get("scenario_name_prefix", default.scenario_name_prefix),
            scoring_functions=functions,
            timing=_parse_timing(data["timing"]) if "timing" in data else default.timing,
            outcomes=_parse_outcome_mix(data["outcomes"]) if "outcomes" in data else default.outcomes,
            scores=scores,
            scenarios=entries,
        )

    @property
    def _mix_has_setup_failures(self) -> bool:
        return any(outcome == "setup_failed" and weight > 0 for outcome, weight in self.outcomes)

    def for_agent(self, name: object) -> ScenarioScript | None:
        """The script of a benchmark job's runs for the agent config named ``name`` (``agents``), or
        ``None`` when the script says nothing of that agent."""
        return next((script for agent, script in self.agents if agent == name), None)

    def with_seed(self, seed: int | None) -> ScenarioScript:
        """A copy with another planning seed (``None`` keeps this one)."""
        return self if seed is None else replace(self, seed=seed)

    def entry(self, position: int) -> ScenarioEntry:
        return self.scenarios[position] if position < len(self.scenarios) else _NO_ENTRY

    def scenario_name(self, position: int) -> str:
        """The name of the scenario at ``position`` (its entry's ``name``, else a generated one)."""
        explicit = self.entry(position).name
        if explicit:
            return explicit
        width = max(3, len(str(self.scenario_count)))
        return f"{self.scenario_name_prefix}-{position + 1:0{width}d}"

    def plan(self, position: int, *, seed: int, variant: int = 0) -> ScenarioPlan:
        """The plan of the scenario at ``position`` (0-based).

        :param seed: the seed to use when the script has none.
        :param variant: varies the draws between otherwise identical runs (a job's agent configs).
        """
        effective_seed = self.seed if self.seed is not None else seed
        entry = self.entry(position)
        (setup_draw,) = _unit_draws(f"runloop-emulator-setup:{effective_seed}:{variant}:{position}", 1)
        setup_ms = self.timing.setup.sample_ms(setup_draw)
        setup_failed = entry.setup_failed or (
            entry.attempts is None
            and self._mix_has_setup_failures
            and self._draw_outcome(position, 0, seed=effective_seed, variant=variant) == "setup_failed"
        )
        return ScenarioPlan(
            script=self,
            seed=effective_seed,
            variant=variant,
            position=position,
            name=self.scenario_name(position),
            setup_failed=setup_failed,
            setup_ms=setup_ms,
            start_at_ms=None if entry.start_at is None else round(entry.start_at * 1000),
            scripted_attempts=0 if setup_failed else len(entry.attempts or ("",)),
        )

    def _draw_outcome(self, position: int, index: int, *, seed: int, variant: int) -> str:
        (draw,) = _unit_draws(f"runloop-emulator-outcome:{seed}:{variant}:{position}:{index}", 1)
        mix = self.outcomes if index == 0 else tuple(o for o in self.outcomes if o[0] != "setup_failed")
        if not any(weight > 0 for _, weight in mix):
            mix = (("completed", 1.0),)
        return _weighted_choice(mix, draw)

    def plan_attempt(self, position: int, index: int, *, seed: int, variant: int = 0) -> AttemptPlan:
        """The plan of attempt ``index`` of the scenario at ``position``; see :meth:`ScenarioPlan.attempt`.

        ``seed`` must already be the effective seed (as in :attr:`ScenarioPlan.seed`).
        """
        entry = self.entry(position)
        if entry.attempts is not None:
            outcome = entry.attempts[min(index, len(entry.attempts) - 1)]
        else:
            outcome = self._draw_outcome(position, index, seed=seed, variant=variant)
            if outcome == "setup_failed":  # a setup failure has no runs; a run of one is a plain failure
                outcome = "failed"
        # All values are drawn whether an entry overrides them or not, so draws never shift.
        draws = _unit_draws(
            f"runloop-emulator-attempt:{seed}:{variant}:{position}:{index}", 3 + len(self.scoring_functions)
        )
        duration_ms = (entry.duration or self.timing.duration).sample_ms(draws[0])
        scoring_ms = (entry.scoring or self.timing.scoring).sample_ms(draws[1])
        complete_ms = (entry.complete or self.timing.complete).sample_ms(draws[2])
        low, high = self.scores.low, self.scores.high
        drawn = [round(low + (high - low) * unit, 4) for unit in draws[3:]]
        function_scores = []
        for spec, value in zip(self.scoring_functions, drawn, strict=True):
            if entry.function_scores is not None and spec.name in entry.function_scores:
                value = entry.function_scores[spec.name]
            elif entry.score is not None:
                value = entry.score
            function_scores.append((spec.name, value))
        total_weight = sum(spec.weight for spec in self.scoring_functions)
        weighted = sum(
            spec.weight * value
            for spec, (_, value) in zip(self.scoring_functions, function_scores, strict=True)
        )
        return AttemptPlan(
            outcome=outcome,
            duration_ms=duration_ms,
            scoring_ms=scoring_ms,
            complete_ms=complete_ms,
            function_scores=tuple(function_scores),
            score=round(weighted / total_weight, 6),
        )


#: The script used when none is given: ten scenarios, two scoring functions, all completing.
DEFAULT_SCRIPT = ScenarioScript()


def quick_script(scenarios: int, *, seed: int | None = None) -> ScenarioScript:
    """The CLI's ``--scenarios N`` preset: ``N`` scenarios with an 80/10/10 completed/failed/timeout mix."""
    return ScenarioScript(
        seed=seed,
        scenario_count=scenarios,
        outcomes=(("completed", 0.8), ("failed", 0.1), ("timeout", 0.1)),
    )


def load_script(source: ScriptSource) -> ScenarioScript:
    """Parse a script from a :class:`ScenarioScript`, a mapping, or a ``.json``/``.yaml``/``.yml`` path."""
    if isinstance(source, ScenarioScript):
        return source
    if isinstance(source, Mapping):
        return ScenarioScript.from_mapping(source)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScriptError(f"cannot read scenario script {path}: {error}") from error
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml  # a dependency (it also reads the packaged OpenAPI spec); loaded only when needed

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ScriptError(f"{path} is not valid YAML: {error}") from error
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ScriptError(f"{path} is not valid JSON: {error}") from error
    return ScenarioScript.from_mapping(data if data is not None else {})
