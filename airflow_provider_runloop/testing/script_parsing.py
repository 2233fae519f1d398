"""Parsing and validating scenario scripts: from a mapping or a JSON/YAML file to a :class:`ScenarioScript`.

The format itself is described in :mod:`~airflow_provider_runloop.testing.script`, which owns the parsed
types and plays scripts back into plans; this module only turns the mapping (or file) a user wrote into
those types, raising :class:`ScriptError` with a message that names the offending key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_runloop.testing.script import (
    ATTEMPT_OUTCOMES,
    SCENARIO_OUTCOMES,
    ScenarioEntry,
    ScenarioScript,
    ScoringFunctionSpec,
    ScriptError,
    SecondsRange,
    Timing,
)

__all__ = ["parse_script", "read_script_file"]

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
}
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


def parse_script(data: Mapping[str, Any]) -> ScenarioScript:
    """Parse and validate a script mapping; raises :class:`ScriptError` naming the bad key."""
    data = _mapping(data, "a scenario script")
    _check_keys(data, _SCRIPT_KEYS, "the scenario script")
    default = ScenarioScript()
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
    return ScenarioScript(
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


def read_script_file(path: Path) -> ScenarioScript:
    """Parse the script file at ``path``: YAML if it ends in ``.yaml``/``.yml``, else JSON."""
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
    return parse_script(data if data is not None else {})
