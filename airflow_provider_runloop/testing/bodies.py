"""Request parsing: query strings and JSON bodies → validated Python values, or a 400.

Like the real API as the SDK uses it: an action POST may send no body, ``{}`` or ``null`` alike; unknown
top-level keys are ignored (unverified choice 23 in
``docs/emulator.md#choices-where-the-real-api-is-unverified``); an optional key sent as ``null``
counts as absent. Values of the
wrong type are a 400 ``{"message": ...}`` naming the key, never FastAPI's 422. An API body reaches these
functions only after :mod:`.request_validation` has checked it against the spec's request schema, all
the way down; what they check on top is the emulator's own rules (non-blank names, ranges) and the
control API's bodies, which the spec does not describe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.state import JobSpecRequest, PageRequest, RunProfile

__all__ = [
    "MAX_PAGE_LIMIT",
    "agent_config",
    "environment",
    "input_context",
    "job_spec",
    "optional_bool",
    "optional_int",
    "optional_object",
    "optional_str",
    "optional_str_list",
    "optional_str_map",
    "page_request",
    "parse_json_body",
    "query_value",
    "required_str",
    "run_profile",
    "scoring_contract",
]

MAX_PAGE_LIMIT = 5000
DEFAULT_PAGE_LIMIT = 20
_INTEGER = re.compile(r"^[+-]?\d+$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a dict: empty, ``{}`` and ``null`` all give ``{}``."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise ApiError.bad_request(f"request body is not valid JSON: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError.bad_request("request body must be a JSON object")
    return data


def _without_nulls(data: Mapping[str, Any], keys: frozenset[str] | None = None) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and (keys is None or k in keys)}


def required_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError.bad_request(f"{key} is required and must be a non-empty string")
    return value


def optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError.bad_request(f"{key} must be a string")
    return value


def optional_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiError.bad_request(f"{key} must be an integer")
    return value


def optional_bool(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise ApiError.bad_request(f"{key} must be true or false")
    return value


def optional_object(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise ApiError.bad_request(f"{key} must be a JSON object")
    return value


def optional_str_map(body: Mapping[str, Any], key: str) -> dict[str, str] | None:
    value = optional_object(body, key)
    if value is not None and not all(isinstance(v, str) for v in value.values()):
        raise ApiError.bad_request(f"{key} must map strings to strings")
    return value


def optional_str_list(body: Mapping[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError.bad_request(f"{key} must be a list of strings")
    return value


def query_value(query: Mapping[str, str], key: str) -> str | None:
    """A query parameter; empty counts as absent (the spec allows empty values)."""
    value = query.get(key)
    return value if value else None


def page_request(query: Mapping[str, str], *, allow_total_count: bool = True) -> PageRequest:
    """``limit`` (1..5000, default 20), ``starting_after``, ``include_total_count`` (default true)."""
    limit = DEFAULT_PAGE_LIMIT
    raw_limit = query_value(query, "limit")
    if raw_limit is not None:
        if not _INTEGER.match(raw_limit):
            raise ApiError.bad_request(
                f"limit must be an integer between 1 and {MAX_PAGE_LIMIT}, got {raw_limit!r}"
            )
        limit = int(raw_limit)
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise ApiError.bad_request(f"limit must be between 1 and {MAX_PAGE_LIMIT}, got {limit}")
    include_total_count = True
    raw_total = query_value(query, "include_total_count")
    if allow_total_count and raw_total is not None:
        if raw_total.lower() not in ("true", "false"):
            raise ApiError.bad_request(f"include_total_count must be true or false, got {raw_total!r}")
        include_total_count = raw_total.lower() == "true"
    return PageRequest(limit, query_value(query, "starting_after"), include_total_count)


def run_profile(body: Mapping[str, Any]) -> RunProfile:
    """The ``runProfile`` (camelCase key); ``launchParameters`` and ``mounts`` are accepted and ignored."""
    profile = optional_object(body, "runProfile") or {}
    return RunProfile(
        purpose=optional_str(profile, "purpose"),
        env_vars=optional_str_map(profile, "envVars"),
        secrets=optional_str_map(profile, "secrets"),
    )


def input_context(value: Any, *, required: bool) -> dict[str, Any] | None:
    """``input_context`` (checked against InputContext / InputContextUpdate already), nulls dropped."""
    if value is None and not required:
        return None
    return _without_nulls(value)


def _scorer(value: Mapping[str, Any]) -> dict[str, Any]:
    scorer = _without_nulls(value)
    if "test_files" in scorer:
        scorer["test_files"] = [_without_nulls(test_file) for test_file in scorer["test_files"]]
    return scorer


def scoring_contract(value: Any, *, required: bool) -> dict[str, Any] | None:
    """``scoring_contract`` (checked against the spec already); function names keep ``[a-zA-Z0-9_-]``."""
    functions = value.get("scoring_function_parameters") if isinstance(value, dict) else None
    if functions is None and not required:  # ScoringContractUpdate: null keeps the current functions
        return None
    parsed = []
    for index, function in enumerate(functions or ()):
        # The spec says so only in the field's description: "Names must only contain [a-zA-Z0-9_-]."
        if not _FUNCTION_NAME.match(function["name"]):
            raise ApiError.bad_request(
                f"scoring_contract.scoring_function_parameters[{index}].name uses only [a-zA-Z0-9_-]"
            )
        parsed.append(
            {"name": function["name"], "weight": function["weight"], "scorer": _scorer(function["scorer"])}
        )
    return {"scoring_function_parameters": parsed}


def environment(value: Any) -> dict[str, Any] | None:
    """``environment_parameters`` of a scenario request (the view calls it ``environment``), nulls dropped."""
    if value is None:
        return None
    env = _without_nulls(value)
    if "launch_parameters" in env:
        env["launch_parameters"] = _without_nulls(env["launch_parameters"])
    return env


def agent_config(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A ``job_agent`` config (checked against JobAgentConfig already), nulls dropped."""
    config = _without_nulls(value)
    if not config["name"]:
        raise ApiError.bad_request(f"{where}.name must not be empty")
    if "agent_environment" in config:
        config["agent_environment"] = _without_nulls(config["agent_environment"])
    return config


def _orchestrator_config(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    config = _without_nulls(value)
    # Ranges the spec gives only in words ("Number of concurrent trials", "retry attempts").
    for key, least in (("n_attempts", 0), ("n_concurrent_trials", 1)):
        if config.get(key, least) < least:
            raise ApiError.bad_request(f"spec.orchestrator_config.{key} is out of range: {config[key]}")
    return config


def job_spec(body: Mapping[str, Any]) -> JobSpecRequest:
    """The job ``spec``, checked against BenchmarkJobSpec already: harbor, benchmark or scenarios."""
    spec = body.get("spec")
    if spec is None:  # optional in the schema, but "Exactly one spec type must be set"
        raise ApiError.bad_request("spec is required: one of type 'harbor', 'benchmark' or 'scenarios'")
    kind = spec["type"]
    if kind == "harbor":
        return JobSpecRequest(type="harbor", inline_yaml=required_str(spec, "inline_yaml"))
    if not spec.get("agent_configs"):  # "Must specify at least one agent"
        raise ApiError.bad_request("spec.agent_configs must list at least one agent config")
    agents = tuple(
        agent_config(config, f"spec.agent_configs[{i}]") for i, config in enumerate(spec["agent_configs"])
    )
    orchestrator = _orchestrator_config(spec.get("orchestrator_config"))
    if kind == "benchmark":
        return JobSpecRequest(
            type="benchmark",
            benchmark_id=required_str(spec, "benchmark_id"),
            agent_configs=agents,
            orchestrator_config=orchestrator,
        )
    return JobSpecRequest(
        type="scenarios",
        scenario_ids=tuple(spec["scenario_ids"]),
        agent_configs=agents,
        orchestrator_config=orchestrator,
    )
