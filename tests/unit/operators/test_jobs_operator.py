"""RunloopCreateBenchmarkJobOperator without a server: every argument checked at construction (templated
values and upstream results at run time), the job spec sent, template fields and link, and reading
trigger events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk import DAG, XComArg, task
from support.lifecycle_operators import AGENTS
from support.lifecycle_operators import TaskInstanceStub as _TI
from support.lifecycle_operators import job_operator as _job

from airflow_provider_runloop.exceptions import RunloopError, RunloopInvalidResponseError


def test_job_defaults_fields_and_link() -> None:
    operator = _job()
    assert set(operator.template_fields) == {
        "agent_configs",
        "benchmark_id",
        "scenario_ids",
        "orchestrator_config",
        "job_name",
        "runloop_conn_id",
    }
    assert [link.name for link in operator.operator_extra_links] == ["Runloop benchmark job"]
    assert (operator.reattach, operator.cancel_on_kill, operator.wait_for_termination) == (True, True, False)
    assert operator.fail_on_job_failure is True


def test_the_job_spec_sent() -> None:
    operator = _job(orchestrator_config={"n_attempts": 1, "n_concurrent_trials": 4})
    assert operator._spec() == {
        "type": "benchmark",
        "benchmark_id": "bmd_1",
        "agent_configs": [{"type": "job_agent", **AGENTS[0]}],
        "orchestrator_config": {"n_attempts": 1, "n_concurrent_trials": 4},
    }
    scenarios = _job(benchmark_id=None, scenario_ids=["scn_1", "scn_2"])
    assert scenarios._spec()["type"] == "scenarios"
    assert scenarios._spec()["scenario_ids"] == ["scn_1", "scn_2"]
    assert "orchestrator_config" not in scenarios._spec()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"benchmark_id": None}, "Give exactly one of benchmark_id"),
        ({"scenario_ids": ["scn_1"]}, "Give exactly one of benchmark_id"),
        ({"benchmark_id": "bmd 1"}, "benchmark_id must be a Runloop id"),
        ({"benchmark_id": None, "scenario_ids": []}, "scenario_ids must be a non-empty list"),
        ({"benchmark_id": None, "scenario_ids": "scn_1"}, "scenario_ids must be a non-empty list"),
        ({"benchmark_id": None, "scenario_ids": ["scn/1"]}, r"scenario_ids\[0\] must be a Runloop id"),
        ({"agent_configs": []}, "agent_configs must be a non-empty list"),
        ({"agent_configs": {"name": "a"}}, "agent_configs must be a non-empty list"),
        ({"agent_configs": ["a"]}, r"agent_configs\[0\] must be a dict"),
        ({"agent_configs": [{}]}, r"agent_configs\[0\]\['name'\]: Field required"),
        ({"agent_configs": [{"name": "a"}, {"name": "a"}]}, "'a' is used twice"),
        (
            {"agent_configs": [{"name": "a", "modelName": "m"}]},
            r"agent_configs\[0\]\['modelName'\] is not a key the API knows \(known: agent_environment",
        ),
        (
            {"agent_configs": [{"name": "a", "type": "external_api"}]},
            r"\['type'\]: Input should be 'job_agent'",
        ),
        (
            {"agent_configs": [{"name": "a", "model_name": ""}]},
            r"\['model_name'\]: String should have at least 1 character",
        ),
        (
            {"agent_configs": [{"name": "a", "agent_id": 3}]},
            r"\['agent_id'\]: Input should be a valid string",
        ),
        (
            {"agent_configs": [{"name": "a", "timeout_seconds": 0}]},
            r"\['timeout_seconds'\]: Input should be greater than 0",
        ),
        (
            {"agent_configs": [{"name": "a", "kwargs": {"n": 1}}]},
            r"\['kwargs'\]\['n'\]: Input should be a valid string",
        ),
        (
            {"agent_configs": [{"name": "a", "agent_environment": {"env": {}}}]},
            r"\['agent_environment'\]\['env'\] is not a key the API knows",
        ),
        (
            {"agent_configs": [{"name": "a", "agent_environment": {"secrets": {"TOKEN": 1}}}]},
            r"\['secrets'\]\['TOKEN'\]: Input should be a valid string",
        ),
        ({"orchestrator_config": []}, "orchestrator_config must be a dict"),
        (
            {"orchestrator_config": {"retries": 1}},
            r"orchestrator_config\['retries'\] is not a key the API knows \(known: n_attempts",
        ),
        (
            {"orchestrator_config": {"n_attempts": -1}},
            r"\['n_attempts'\]: Input should be greater than or equal to 0",
        ),
        (
            {"orchestrator_config": {"n_concurrent_trials": 0}},
            r"\['n_concurrent_trials'\]: Input should be greater than or equal to 1",
        ),
        (
            {"orchestrator_config": {"timeout_multiplier": 0}},
            r"\['timeout_multiplier'\]: Input should be greater than 0",
        ),
        ({"orchestrator_config": {"quiet": "yes"}}, r"\['quiet'\]: Input should be a valid boolean"),
        ({"job_name": ""}, "job_name must be a non-empty string"),
        ({"runloop_conn_id": ""}, "runloop_conn_id must be a non-empty string"),
        ({"reattach": 1}, "reattach must be True or False"),
        ({"cancel_on_kill": "yes"}, "cancel_on_kill must be True or False"),
        ({"wait_for_termination": None}, "wait_for_termination must be True or False"),
        ({"deferrable": "no"}, "deferrable must be True or False"),
        ({"check_interval": -1}, "check_interval must be >= 0.01"),
        ({"check_interval": 0.001}, "check_interval must be >= 0.01"),
        ({"check_interval": float("nan")}, "check_interval must be a finite number"),
        ({"check_interval": timedelta(0)}, "check_interval must be >= 0.01"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"max_consecutive_poll_failures": -1}, "max_consecutive_poll_failures must be a whole number"),
        ({"fail_on_job_failure": "no"}, "fail_on_job_failure must be True or False"),
    ],
)
def test_job_rejects_bad_arguments_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _job(**kwargs)


def test_job_arguments_from_templates_or_upstream_tasks_are_checked_at_run_time() -> None:
    with DAG(dag_id="lifecycle_unit", schedule=None):

        @task
        def agents() -> list[dict[str, str]]:
            return [{"name": "a"}]

        upstream = agents()
        assert isinstance(upstream, XComArg)
        operator = _job(
            benchmark_id="{{ params.benchmark_id }}",
            agent_configs=upstream,
            orchestrator_config="{{ params.orchestrator }}",
            job_name="{{ ds }}",
        )
    operator.agent_configs = [{"name": ""}]  # what it resolved to
    with pytest.raises(ValueError, match=r"agent_configs\[0\]\['name'\]"):
        operator._spec()


def test_job_reads_trigger_events() -> None:
    operator = _job()
    with pytest.raises(RunloopInvalidResponseError, match="cannot read"):
        operator.execute_complete({"ti": _TI()}, event=None)  # type: ignore[arg-type]
    with pytest.raises(RunloopError, match="boom"):
        operator.execute_complete({"ti": _TI()}, event={"status": "error", "message": "boom"})  # type: ignore[arg-type]
    with pytest.raises(RunloopError, match="The job goes on: a retry of this task reattaches"):
        operator.execute_complete({"ti": _TI()}, event={"status": "timeout", "message": "late"})  # type: ignore[arg-type]
    with pytest.raises(RunloopInvalidResponseError, match="event has no job"):
        operator.execute_complete({"ti": _TI()}, event={"status": "success", "message": "", "job": None})  # type: ignore[arg-type]
