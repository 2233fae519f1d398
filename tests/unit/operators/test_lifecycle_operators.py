"""The lifecycle operators (start, complete, cancel) without a server: every argument checked at
construction (templated values at run time), template fields and links, and reading trigger events.
The job operator: test_jobs_operator.py; the task tag: test_tagging.py."""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout
from support.lifecycle_operators import TaskInstanceStub as _TI
from support.lifecycle_operators import job_operator as _job
from support.summaries import make_summary

from airflow_provider_runloop.exceptions import (
    RunloopBenchmarkRunFailedError,
    RunloopError,
    RunloopInvalidResponseError,
)
from airflow_provider_runloop.operators.runloop import (
    DEFAULT_WAIT_TIMEOUT,
    RunloopCancelBenchmarkRunOperator,
    RunloopCompleteBenchmarkRunOperator,
    RunloopStartBenchmarkRunOperator,
)

# --- RunloopStartBenchmarkRunOperator -----------------------------------------------------------------


def _start(**kwargs: Any) -> RunloopStartBenchmarkRunOperator:
    return RunloopStartBenchmarkRunOperator(**{"task_id": "start", "benchmark_id": "bmd_1", **kwargs})


def test_start_defaults_fields_and_link() -> None:
    operator = _start()
    assert set(operator.template_fields) == {
        "benchmark_id",
        "run_name",
        "metadata",
        "run_profile",
        "runloop_conn_id",
    }
    assert [link.name for link in operator.operator_extra_links] == ["Runloop benchmark run"]
    assert (operator.reattach, operator.cancel_on_kill, operator.wait_for_termination) == (True, True, False)
    assert operator.timeout == DEFAULT_WAIT_TIMEOUT.total_seconds()
    assert _start(timeout=timedelta(minutes=2)).timeout == 120.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"benchmark_id": "../bmd"}, "benchmark_id must be a Runloop id"),
        ({"run_name": ""}, "run_name must be a non-empty string"),
        ({"run_name": 5}, "run_name must be a non-empty string"),
        ({"metadata": {"a": 1}}, "metadata must be a dict of strings to strings"),
        ({"metadata": ["a"]}, "metadata must be a dict of strings to strings"),
        ({"metadata": {"airflow_tag": "x"}}, "metadata must not set airflow_tag"),
        ({"run_profile": "env"}, "run_profile must be a dict"),
        (
            {"run_profile": {"env_vars": {}}},
            r"run_profile\['env_vars'\] is not a key the API knows \(known: envVars",
        ),
        (
            {"run_profile": {"envVars": {"A": 1}}},
            r"run_profile\['envVars'\]\['A'\]: Input should be a valid string",
        ),
        (
            {"run_profile": {"secrets": ["TOKEN"]}},
            r"run_profile\['secrets'\]: Input should be a valid dictionary",
        ),
        ({"runloop_conn_id": ""}, "runloop_conn_id must be a non-empty string"),
        ({"reattach": "no"}, "reattach must be True or False"),
        ({"cancel_on_kill": 0}, "cancel_on_kill must be True or False"),
        ({"wait_for_termination": "yes"}, "wait_for_termination must be True or False"),
        ({"deferrable": None}, "deferrable must be True or False"),
        ({"check_interval": 0}, "check_interval must be >= 0.01"),
        ({"check_interval": 1e-9}, "check_interval must be >= 0.01"),
        ({"check_interval": float("nan")}, "check_interval must be a finite number"),
        ({"check_interval": float("inf")}, "check_interval must be a finite number"),
        ({"timeout": -5}, "timeout must be > 0"),
        ({"timeout": timedelta(0)}, "timeout must be > 0"),
        ({"expected_scenario_count": 0}, "expected_scenario_count must be a whole number >= 1"),
        ({"accept_scored": "true"}, "accept_scored must be True or False"),
        ({"fail_on_scenario_failure": 1}, "fail_on_scenario_failure must be True or False"),
        ({"max_consecutive_poll_failures": -1}, "max_consecutive_poll_failures must be a whole number"),
    ],
)
def test_start_rejects_bad_arguments_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _start(**kwargs)


def test_templated_values_are_checked_when_rendered() -> None:
    operator = _start(benchmark_id="{{ params.benchmark }}", run_name="{{ ds }}", metadata="{{ params.m }}")
    operator.benchmark_id = "not/an/id"  # what the template rendered to
    with pytest.raises(ValueError, match="benchmark_id must be a Runloop id"):
        operator.execute({"ti": _TI()})  # type: ignore[arg-type]


def test_start_accepts_a_run_profile_with_secret_names() -> None:
    profile = {"envVars": {"MODE": "eval"}, "secrets": {"API_TOKEN": "my-token-secret"}, "purpose": "eval"}
    assert _start(run_profile=profile, metadata={"git_sha": "abc"}).run_profile == profile


def _event(status: str, **fields: Any) -> dict[str, Any]:
    return {"status": status, "benchmark_run_id": "bmr_1", "message": "m", "summary": None, **fields}


def test_start_and_wait_reads_trigger_events() -> None:
    operator = _start(wait_for_termination=True)
    with pytest.raises(RunloopInvalidResponseError, match="cannot read"):
        operator.execute_complete({"ti": _TI()}, event={"status": "maybe"})  # type: ignore[arg-type]
    with pytest.raises(RunloopError, match="boom"):
        operator.execute_complete({"ti": _TI()}, event=_event("error", message="boom"))  # type: ignore[arg-type]
    # Running out of time is not the sensor's no-retry time-out: a retry reattaches and waits again.
    with pytest.raises(RunloopError, match="a retry of this task reattaches") as timed_out:
        operator.execute_complete({"ti": _TI()}, event=_event("timeout"))  # type: ignore[arg-type]
    assert not isinstance(timed_out.value, AirflowSensorTimeout)


def test_start_and_wait_returns_the_start_xcom_and_the_summary_or_fails(
    sensor_summary: dict[str, Any],
) -> None:
    ti = _TI()
    ti.xcom["runloop_resume"] = {"benchmark_run_id": "bmr_1", "scenario_ids": ["scn_1", "scn_2"]}
    result = _start().execute_complete({"ti": ti}, event=_event("success", summary=sensor_summary))  # type: ignore[arg-type]
    assert result == {
        "benchmark_run_id": "bmr_1",
        "scenario_ids": ["scn_1", "scn_2"],
        "summary": sensor_summary,
    }

    failed = {**sensor_summary, "success": False, "message": "2 scenarios did not complete"}
    with pytest.raises(RunloopBenchmarkRunFailedError, match="2 scenarios did not complete"):
        _start().execute_complete({"ti": ti}, event=_event("failure", summary=failed))  # type: ignore[arg-type]


@pytest.fixture
def sensor_summary() -> dict[str, Any]:
    return make_summary(
        benchmark_run_state="running", mean_score=1.0, scoring_function_mean_scores={}, benchmark_score=None
    )


# --- complete and cancel ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operator_class", [RunloopCompleteBenchmarkRunOperator, RunloopCancelBenchmarkRunOperator]
)
def test_complete_and_cancel_check_their_arguments(operator_class: type[Any]) -> None:
    operator = operator_class(task_id="t", benchmark_run_id="bmr_1")
    assert set(operator.template_fields) == {"benchmark_run_id", "runloop_conn_id"}
    assert [link.name for link in operator.operator_extra_links] == ["Runloop benchmark run"]
    operator_class(task_id="t", benchmark_run_id="{{ ti.xcom_pull('start')['benchmark_run_id'] }}")
    with pytest.raises(ValueError, match="benchmark_run_id must be a Runloop id"):
        operator_class(task_id="t", benchmark_run_id="bmr 1")
    with pytest.raises(ValueError, match="runloop_conn_id must be a non-empty string"):
        operator_class(task_id="t", benchmark_run_id="bmr_1", runloop_conn_id="")


def test_complete_checks_allow_active_scenario_runs() -> None:
    with pytest.raises(ValueError, match="allow_active_scenario_runs must be True or False"):
        RunloopCompleteBenchmarkRunOperator(
            task_id="t", benchmark_run_id="bmr_1", allow_active_scenario_runs="no"
        )


# --- argument errors name keys, never values ----------------------------------------------------------


def test_argument_errors_name_keys_never_values() -> None:
    with pytest.raises(ValueError, match=r"\['TOKEN'\]: Input should be a valid string") as bad_env:
        _start(run_profile={"envVars": {"TOKEN": 987654321}})
    assert "987654321" not in str(bad_env.value)
    environment = {"environment_variables": {"KEY": 13572468}}
    with pytest.raises(ValueError, match=r"\['KEY'\]: Input should be a valid string") as bad_agent:
        _job(agent_configs=[{"name": "a", "agent_environment": environment}])
    assert "13572468" not in str(bad_agent.value)


def test_deferrable_without_waiting_warns_that_it_does_nothing() -> None:
    with pytest.warns(UserWarning, match="deferrable=True has no effect with wait_for_termination=False"):
        _start(deferrable=True, wait_for_termination=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _start(deferrable=True, wait_for_termination=True)
        _start(deferrable=False, wait_for_termination=False)
