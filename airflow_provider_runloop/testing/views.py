"""Records → the API's JSON views, exactly the fields the OpenAPI spec declares.

The spec's views say ``additionalProperties: false``, so a view never carries a field the spec lacks (no
``remaining_count``, no ``pending_scenarios``). Optional fields without a value are left out; with
``emit_nulls`` they are written as ``null`` instead, but only where the spec allows it: fields the spec
does not mark ``nullable`` (``is_public``, ``attribution``, ...) are still left out, and so are fields
whose schema is a ``$ref`` (``scoring_contract_result``, ``validation_type``, ``environment``,
``job_spec``, ``job_source``, ``agent_config``, ``failure_reason`` of an outcome, ``agent_environment``):
OpenAPI 3.0 ignores ``nullable: true`` next to ``$ref``, so a ``null`` there would not validate. Request
structures echoed back (scoring contracts, agent configs) are returned as the client sent them, without
unknown keys or nulls.

Views are plain dicts encoded with :func:`json.dumps`; that is what keeps a 5,000-item page fast.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_runloop.testing.records import (
    LIFECYCLE_OVER,
    BenchmarkJobRecord,
    BenchmarkRecord,
    BenchmarkRunRecord,
    Page,
    ScenarioRecord,
    ScenarioRunRecord,
)
from airflow_provider_runloop.testing.state import EmulatorState, ScenarioOutcomeData

__all__ = [
    "benchmark_job_view",
    "benchmark_run_view",
    "benchmark_view",
    "encode",
    "list_view",
    "scenario_run_view",
    "scenario_view",
]

_JOB_AGENT_NULLABLE = ("agent_id", "model_name", "timeout_seconds", "kwargs", "agent_environment")


def _shaped(view: dict[str, Any], emit_nulls: bool, refs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Drop absent (None) optional fields, or keep them as null where the spec allows it.

    Builders put None only in optional fields; ``refs`` names those whose schema is a ``$ref`` and so
    can never be null.
    """
    if emit_nulls:
        return {key: value for key, value in view.items() if value is not None or key not in refs}
    return {key: value for key, value in view.items() if value is not None}


def _with_present(view: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """Add the non-nullable optional fields that have a value (they are never written as null)."""
    view.update({key: value for key, value in optional.items() if value is not None})
    return view


def encode(view: Any) -> bytes:
    """Compact JSON bytes of a view."""
    return json.dumps(view, separators=(",", ":"), ensure_ascii=False).encode()


def benchmark_view(record: BenchmarkRecord, *, emit_nulls: bool) -> dict[str, Any]:
    # BenchmarkDefinitionView has no nullable field: absent values are always left out.
    return _with_present(
        {
            "id": record.id,
            "name": record.name,
            "scenarioIds": list(record.scenario_ids),
            "metadata": record.metadata,
            "status": "archived" if record.archived else "active",
        },
        required_environment_variables=record.required_environment_variables,
        required_secret_names=record.required_secret_names,
        is_public=record.is_public,
        attribution=record.attribution,
        description=record.description,
    )


def scenario_view(record: ScenarioRecord, *, emit_nulls: bool) -> dict[str, Any]:
    view = _shaped(
        {
            "id": record.id,
            "name": record.name,
            "environment": record.environment,
            "input_context": record.input_context,
            "scoring_contract": record.scoring_contract,
            "metadata": record.metadata,
            "reference_output": record.reference_output,
            "validation_type": record.validation_type,
            "scorer_timeout_sec": record.scorer_timeout_sec,
            "status": "archived" if record.archived else "active",
        },
        emit_nulls,
        refs=("environment", "validation_type"),
    )
    return _with_present(
        view,
        required_environment_variables=record.required_environment_variables,
        required_secret_names=record.required_secret_names,
        is_public=record.is_public,
    )


def scenario_run_view(record: ScenarioRunRecord, now_ms: int, *, emit_nulls: bool) -> dict[str, Any]:
    state = record.state_at(now_ms)
    return _shaped(
        {
            "id": record.id,
            "name": record.name,
            "scenario_id": record.scenario_id,
            "devbox_id": record.devbox_id,
            "benchmark_run_id": record.benchmark_run_id,
            "scoring_contract_result": (
                record.scoring_contract_result() if record.has_result_at(now_ms) else None
            ),
            "start_time_ms": record.created_ms,
            "duration_ms": record.end_ms - record.created_ms if state in LIFECYCLE_OVER else None,
            "state": state,
            "metadata": record.metadata or {},
            "purpose": record.purpose,
            "environment_variables": record.environment_variables,
            "secrets_provided": record.secrets_provided,
        },
        emit_nulls,
        refs=("scoring_contract_result",),
    )


def benchmark_run_view(
    run: BenchmarkRunRecord, now_ms: int, state: EmulatorState, *, emit_nulls: bool
) -> dict[str, Any]:
    run_state = state.benchmark_run_state(run, now_ms)
    end = state.benchmark_run_end(run)
    return _shaped(
        {
            "id": run.id,
            "benchmark_id": run.benchmark_id,
            "name": run.name,
            "start_time_ms": run.created_ms,
            "duration_ms": end[0] - run.created_ms if end is not None and run_state != "running" else None,
            "state": run_state,
            "score": state.benchmark_run_score(run, now_ms),
            "metadata": run.metadata,
            "purpose": run.purpose,
            "environment_variables": run.environment_variables,
            "secrets_provided": run.secrets_provided,
        },
        emit_nulls,
    )


def _agent_config_view(config: dict[str, Any] | None, *, emit_nulls: bool) -> dict[str, Any] | None:
    if config is None:
        return None
    view = dict(config)
    if emit_nulls:
        for key in _JOB_AGENT_NULLABLE:
            view.setdefault(key, None)
    return _shaped(view, emit_nulls, refs=("agent_environment",))


def _scenario_outcome_view(outcome: ScenarioOutcomeData, *, emit_nulls: bool) -> dict[str, Any]:
    return _shaped(
        {
            "scenario_run_id": outcome.scenario_run_id,
            "scenario_definition_id": outcome.scenario_id,
            "scenario_name": outcome.scenario_name,
            "state": outcome.state,
            "score": outcome.score,
            "duration_ms": outcome.duration_ms,
            "failure_reason": outcome.failure_reason,
        },
        emit_nulls,
        refs=("failure_reason",),
    )


def _benchmark_outcome_view(
    run: BenchmarkRunRecord, now_ms: int, state: EmulatorState, *, emit_nulls: bool
) -> dict[str, Any]:
    outcomes = state.job_outcomes(run, now_ms)
    completed_scores = [o.score for o in outcomes if o.state == "COMPLETED" and o.score is not None]
    end = state.benchmark_run_end(run)
    agent = run.agent_config or {}
    return _shaped(
        {
            "benchmark_run_id": run.id,
            "agent_name": str(agent.get("name", "")),
            "model_name": agent.get("model_name"),
            "n_completed": sum(1 for o in outcomes if o.state == "COMPLETED"),
            # CANCELED outcomes count as failures so that the three counts add up to the outcomes listed.
            "n_failed": sum(1 for o in outcomes if o.state in ("FAILED", "CANCELED")),
            "n_timeout": sum(1 for o in outcomes if o.state == "TIMEOUT"),
            "average_score": (
                round(sum(completed_scores) / len(completed_scores), 6) if completed_scores else None
            ),
            "duration_ms": end[0] - run.created_ms if end is not None and end[0] <= now_ms else None,
            "scenario_outcomes": [_scenario_outcome_view(o, emit_nulls=emit_nulls) for o in outcomes],
        },
        emit_nulls,
    )


def benchmark_job_view(
    job: BenchmarkJobRecord, now_ms: int, state: EmulatorState, *, emit_nulls: bool
) -> dict[str, Any]:
    job_state = state.job_state(job, now_ms)
    runs = state.job_runs(job, now_ms)
    started = now_ms >= job.start_ms
    in_progress = [
        _shaped(
            {
                "benchmark_run_id": run.id,
                "agent_config": _agent_config_view(run.agent_config, emit_nulls=emit_nulls),
                "state": "running",
                "start_time_ms": run.created_ms,
                "duration_ms": now_ms - run.created_ms,
            },
            emit_nulls,
            refs=("agent_config",),
        )
        for run in runs
        if state.benchmark_run_state(run, now_ms) == "running"
    ]
    job_source = dict(job.job_source)
    if emit_nulls and job_source.get("type") == "benchmark":
        job_source.setdefault("benchmark_name", None)
    job_spec = None
    if job.job_spec is not None:
        job_spec = {
            **job.job_spec,
            "agent_configs": [
                _agent_config_view(config, emit_nulls=emit_nulls) for config in job.job_spec["agent_configs"]
            ],
        }
    return _shaped(
        {
            "id": job.id,
            "name": job.name,
            "state": job_state,
            "job_source": job_source,
            "job_spec": job_spec,
            "failure_reason": state.job_failure_reason(job, now_ms),
            # While queued the job has no runs yet: both lists are absent (or null) rather than empty.
            "benchmark_outcomes": (
                [_benchmark_outcome_view(run, now_ms, state, emit_nulls=emit_nulls) for run in runs]
                if started
                else None
            ),
            "in_progress_runs": in_progress if started else None,
            "create_time_ms": job.created_ms,
        },
        emit_nulls,
        refs=("job_source", "job_spec"),
    )


def list_view(
    items_key: str, page: Page[Any], items: list[dict[str, Any]], *, emit_nulls: bool
) -> dict[str, Any]:
    """A list envelope: ``{<items_key>: [...], has_more, total_count?}`` (never ``remaining_count``)."""
    return _shaped({items_key: items, "has_more": page.has_more, "total_count": page.total_count}, emit_nulls)
