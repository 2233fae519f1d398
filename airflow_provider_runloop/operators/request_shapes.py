"""The request shapes the lifecycle operators send, checked before any request.

Each shape is a pydantic model (``extra="forbid"``: a misspelt key is an error, not silently dropped;
strict types: ``"1"`` is no number, ``1`` no flag). Errors name the field, e.g.
``agent_configs[0]['timeout_seconds']``, and never a value (``hide_input_in_errors``: these dicts can
hold environment variables), so a bad DAG fails at parse time when the value is known then, and before
the first request once rendered. What is sent is what the user gave, checked (unset keys stay unset).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

import pydantic

from airflow_provider_runloop.arguments import check_number, check_text
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.operators.tagging import TAG_METADATA_KEYS

__all__ = [
    "AgentConfig",
    "OrchestratorConfig",
    "RunProfile",
    "check_agent_configs",
    "check_optional_text",
    "check_orchestrator_config",
    "check_run_metadata",
    "check_run_profile",
    "check_scenario_ids",
    "check_seconds",
]

_Text = Annotated[str, pydantic.StringConstraints(min_length=1)]
_Strings = dict[str, str]
_Positive = Annotated[float, pydantic.Field(gt=0), pydantic.AllowInfNan(False)]


class _Shape(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True, frozen=True)


class RunProfile(_Shape):
    """A benchmark run's ``run_profile``: camelCase, as the API names it. Secrets by *name* only."""

    envVars: _Strings | None = None
    secrets: _Strings | None = None
    launchParameters: dict[str, Any] | None = None
    mounts: list[Any] | None = None
    purpose: str | None = None


class AgentEnvironment(_Shape):
    """An agent config's ``agent_environment``: variables, and secrets (variable to secret id)."""

    environment_variables: _Strings | None = None
    secrets: _Strings | None = None


class AgentConfig(_Shape):
    """One entry of a benchmark job's ``agent_configs``: one benchmark run per agent config.

    ``name`` is required and unique within the job; ``type`` is ``job_agent`` (the default).
    """

    type: Literal["job_agent"] = "job_agent"
    name: _Text
    agent_id: _Text | None = None
    model_name: _Text | None = None
    timeout_seconds: _Positive | None = None
    kwargs: _Strings | None = None
    agent_environment: AgentEnvironment | None = None


class OrchestratorConfig(_Shape):
    """A benchmark job's ``orchestrator_config``: how Runloop schedules it."""

    n_attempts: Annotated[int, pydantic.Field(ge=0)] | None = None
    n_concurrent_trials: Annotated[int, pydantic.Field(ge=1)] | None = None
    timeout_multiplier: _Positive | None = None
    quiet: bool | None = None


_METADATA: Final = pydantic.TypeAdapter(
    _Strings, config=pydantic.ConfigDict(strict=True, hide_input_in_errors=True)
)


def _checked(name: str, model: type[_Shape], value: object) -> dict[str, Any]:
    """``value`` checked against ``model``: the keys the user gave, or a ``ValueError`` naming the field."""
    if isinstance(value, _Shape):
        return value.model_dump(exclude_unset=True)
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict, got a {type(value).__name__}")
    try:
        return model.model_validate(dict(value)).model_dump(exclude_unset=True)
    except pydantic.ValidationError as exc:
        raise ValueError(_problem(name, exc, model)) from None


def _problem(name: str, exc: pydantic.ValidationError, model: type[_Shape] | None = None) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = name + "".join(f"[{part!r}]" for part in error["loc"])
    if error["type"] == "extra_forbidden" and model is not None and len(error["loc"]) == 1:
        known = ", ".join(sorted(model.model_fields))
        return f"{where} is not a key the API knows (known: {known})"
    if error["type"] == "extra_forbidden":
        return f"{where} is not a key the API knows"
    return f"{where}: {error['msg']}"


def check_seconds(name: str, value: float | timedelta) -> float:
    """A duration (seconds or a ``timedelta``) that is finite and ``> 0``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return check_number(name, seconds, minimum=0, inclusive=False)


def check_optional_text(name: str, value: object) -> str | None:
    """``None``, or a non-empty string."""
    return None if value is None else check_text(name, value)


def check_run_metadata(value: object) -> dict[str, str]:
    """A run's extra ``metadata``: strings to strings, without the provider's own ``airflow_*`` keys."""
    if value is None:
        return {}
    try:
        metadata = _METADATA.validate_python(value)
    except pydantic.ValidationError as exc:
        raise ValueError(
            f"metadata must be a dict of strings to strings; {_problem('metadata', exc)}"
        ) from None
    reserved = sorted(set(metadata) & set(TAG_METADATA_KEYS))
    if reserved:
        raise ValueError(
            f"metadata must not set {', '.join(reserved)}: the provider tags the run with them to find it "
            "again on a retry"
        )
    return metadata


def check_run_profile(value: object) -> dict[str, Any] | None:
    """A run's ``run_profile`` (see :class:`RunProfile`), or ``None``."""
    return None if value is None else _checked("run_profile", RunProfile, value)


def check_scenario_ids(value: object) -> list[str]:
    """A non-empty list of scenario ids."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        shown = "a string" if isinstance(value, str) else f"a {type(value).__name__}"
        raise ValueError(f"scenario_ids must be a non-empty list of scenario ids, got {shown}")
    return [validate_id(f"scenario_ids[{position}]", item) for position, item in enumerate(value)]


def check_agent_configs(value: object) -> list[dict[str, Any]]:
    """A job's ``agent_configs``: at least one (see :class:`AgentConfig`), each with its own name."""
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence) or not value:
        shown = "an empty list" if isinstance(value, Sequence) and not value else f"a {type(value).__name__}"
        raise ValueError(f"agent_configs must be a non-empty list of agent configs (dicts), got {shown}")
    configs = [
        _checked(f"agent_configs[{position}]", AgentConfig, config) for position, config in enumerate(value)
    ]
    seen: set[str] = set()
    for position, config in enumerate(configs):
        if config["name"] in seen:
            raise ValueError(
                f"agent_configs[{position}]['name'] {config['name']!r} is used twice: each agent config "
                "needs its own name"
            )
        seen.add(config["name"])
    return configs


def check_orchestrator_config(value: object) -> dict[str, Any]:
    """A job's ``orchestrator_config`` (see :class:`OrchestratorConfig`); ``None`` is ``{}``."""
    if value is None:
        return {}
    return _checked("orchestrator_config", OrchestratorConfig, value)
