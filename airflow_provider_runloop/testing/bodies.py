"""Request parsing: query strings and JSON bodies → validated Python values, or a 400.

Like the real API as the SDK uses it: an action POST may send no body, ``{}`` or ``null`` alike; unknown
top-level keys are ignored (§13 #23); an optional key sent as ``null`` counts as absent. Values of the
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
    "VALIDATION_TYPES",
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
VALIDATION_TYPES = ("UNSPECIFIED", "FORWARD", "REVERSE", "EVALUATION")
_INTEGER = re.compile(r"^[+-]?\d+$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

# Keys of each built-in scorer (BuiltInScoringFunction variants) and the ones it requires.
_SCORER_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "ast_grep_scorer": (
        frozenset({"lang", "search_directory", "pattern"}),
        frozenset({"search_directory", "pattern"}),
    ),
    "bash_script_scorer": (frozenset({"bash_script"}), frozenset()),
    "command_scorer": (frozenset({"command"}), frozenset()),
    "custom_scorer": (frozenset({"custom_scorer_type", "scorer_params"}), frozenset({"custom_scorer_type"})),
    "python_script_scorer": (
        frozenset({"requirements_contents", "python_script", "python_version_constraint"}),
        frozenset({"python_script"}),
    ),
    "test_based_scorer": (frozenset({"test_files", "test_command"}), frozenset()),
}
_LAUNCH_PARAMETER_KEYS = frozenset(
    {
        "launch_commands",
        "resource_size_request",
        "available_ports",
        "keep_alive_time_seconds",
        "after_idle",
        "custom_cpu_cores",
        "custom_gb_memory",
        "custom_disk_size",
        "architecture",
        "user_parameters",
        "required_services",
        "network_policy_id",
        "lifecycle",
    }
)


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
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise ApiError.bad_request("input_context must be an object with a problem_statement")
    context = _without_nulls(value, frozenset({"problem_statement", "additional_context"}))
    if required and not isinstance(context.get("problem_statement"), str):
        raise ApiError.bad_request("input_context.problem_statement is required and must be a string")
    if "additional_context" in context and not isinstance(context["additional_context"], dict):
        raise ApiError.bad_request("input_context.additional_context must be an object")
    return context


def _scorer(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") not in _SCORER_KEYS:
        raise ApiError.bad_request(f"{where}.type must be one of {', '.join(sorted(_SCORER_KEYS))}")
    allowed, required = _SCORER_KEYS[value["type"]]
    scorer = {"type": value["type"], **_without_nulls(value, allowed)}
    missing = sorted(required - scorer.keys())
    if missing:
        raise ApiError.bad_request(f"{where} ({value['type']}) requires {', '.join(missing)}")
    if "test_files" in scorer:
        files = scorer["test_files"]
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise ApiError.bad_request(f"{where}.test_files must be a list of objects")
        scorer["test_files"] = [_without_nulls(f, frozenset({"file_path", "file_contents"})) for f in files]
    return scorer


def scoring_contract(value: Any, *, required: bool) -> dict[str, Any] | None:
    if value is None and not required:
        return None
    functions = value.get("scoring_function_parameters") if isinstance(value, dict) else None
    if functions is None and not required:  # ScoringContractUpdate: null keeps the current functions
        return None
    if not isinstance(functions, list):
        raise ApiError.bad_request("scoring_contract.scoring_function_parameters must be a list")
    parsed = []
    for index, function in enumerate(functions):
        where = f"scoring_contract.scoring_function_parameters[{index}]"
        if not isinstance(function, dict):
            raise ApiError.bad_request(f"{where} must be an object")
        name, weight = function.get("name"), function.get("weight")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise ApiError.bad_request(f"{where}.name is required and uses only [a-zA-Z0-9_-]")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ApiError.bad_request(f"{where}.weight is required and must be a number")
        parsed.append(
            {"name": name, "weight": weight, "scorer": _scorer(function.get("scorer"), f"{where}.scorer")}
        )
    return {"scoring_function_parameters": parsed}


def environment(value: Any) -> dict[str, Any] | None:
    """``environment_parameters`` of a scenario request (the view calls it ``environment``)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError.bad_request("environment_parameters must be an object")
    env = _without_nulls(
        value, frozenset({"blueprint_id", "snapshot_id", "launch_parameters", "working_directory"})
    )
    if "launch_parameters" in env:
        if not isinstance(env["launch_parameters"], dict):
            raise ApiError.bad_request("environment_parameters.launch_parameters must be an object")
        env["launch_parameters"] = _without_nulls(env["launch_parameters"], _LAUNCH_PARAMETER_KEYS)
    return env


def agent_config(value: Any, where: str) -> dict[str, Any]:
    """A ``job_agent`` config, keeping only the keys JobAgentConfig declares."""
    if not isinstance(value, dict):
        raise ApiError.bad_request(f"{where} must be an object")
    if value.get("type", "job_agent") != "job_agent":
        raise ApiError.bad_request(f"{where}.type must be 'job_agent'")
    config = _without_nulls(
        value, frozenset({"agent_id", "name", "model_name", "timeout_seconds", "kwargs", "agent_environment"})
    )
    required_str(config, "name")
    for key in ("agent_id", "model_name"):
        optional_str(config, key)
    if "timeout_seconds" in config and (
        isinstance(config["timeout_seconds"], bool) or not isinstance(config["timeout_seconds"], (int, float))
    ):
        raise ApiError.bad_request(f"{where}.timeout_seconds must be a number")
    optional_str_map(config, "kwargs")
    if "agent_environment" in config:
        env = optional_object(config, "agent_environment") or {}
        optional_str_map(env, "environment_variables")
        optional_str_map(env, "secrets")
        config["agent_environment"] = _without_nulls(env, frozenset({"environment_variables", "secrets"}))
    return {"type": "job_agent", **config}


def _orchestrator_config(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError.bad_request("spec.orchestrator_config must be an object")
    config = _without_nulls(
        value, frozenset({"n_attempts", "n_concurrent_trials", "timeout_multiplier", "quiet"})
    )
    for key in ("n_attempts", "n_concurrent_trials"):
        number = optional_int(config, key)
        if number is not None and number < (1 if key == "n_concurrent_trials" else 0):
            raise ApiError.bad_request(f"spec.orchestrator_config.{key} is out of range: {number}")
    multiplier = config.get("timeout_multiplier")
    if multiplier is not None and (isinstance(multiplier, bool) or not isinstance(multiplier, (int, float))):
        raise ApiError.bad_request("spec.orchestrator_config.timeout_multiplier must be a number")
    optional_bool(config, "quiet")
    return config


def job_spec(body: Mapping[str, Any]) -> JobSpecRequest:
    """The job ``spec``: exactly one of the ``harbor``, ``benchmark`` and ``scenarios`` variants."""
    spec = optional_object(body, "spec")
    if spec is None:
        raise ApiError.bad_request("spec is required: one of type 'harbor', 'benchmark' or 'scenarios'")
    kind = spec.get("type")
    if kind == "harbor":
        return JobSpecRequest(type="harbor", inline_yaml=required_str(spec, "inline_yaml"))
    if kind not in ("benchmark", "scenarios"):
        raise ApiError.bad_request(f"spec.type must be 'harbor', 'benchmark' or 'scenarios', got {kind!r}")
    configs = spec.get("agent_configs")
    if not isinstance(configs, list) or not configs:
        raise ApiError.bad_request("spec.agent_configs must list at least one agent config")
    agents = tuple(agent_config(config, f"spec.agent_configs[{i}]") for i, config in enumerate(configs))
    orchestrator = _orchestrator_config(spec.get("orchestrator_config"))
    if kind == "benchmark":
        return JobSpecRequest(
            type="benchmark",
            benchmark_id=required_str(spec, "benchmark_id"),
            agent_configs=agents,
            orchestrator_config=orchestrator,
        )
    scenario_ids = spec.get("scenario_ids")
    if not isinstance(scenario_ids, list) or not all(isinstance(s, str) for s in scenario_ids):
        raise ApiError.bad_request("spec.scenario_ids is required and must be a list of strings")
    return JobSpecRequest(
        type="scenarios",
        scenario_ids=tuple(scenario_ids),
        agent_configs=agents,
        orchestrator_config=orchestrator,
    )
