"""The start and the job operators' waiting options: one name and one default for both (dbt Cloud's
``wait_for_termination``, ``check_interval``, ``timeout``), and the deprecated old names still working.
No server: construction only."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk import DAG
from support.lifecycle_operators import AGENTS

from airflow_provider_runloop.operators.runloop import (
    RunloopCreateBenchmarkJobOperator,
    RunloopStartBenchmarkRunOperator,
)

OPERATORS = [
    pytest.param(RunloopStartBenchmarkRunOperator, {"benchmark_id": "bmd_1"}, id="start"),
    pytest.param(
        RunloopCreateBenchmarkJobOperator, {"benchmark_id": "bmd_1", "agent_configs": AGENTS}, id="job"
    ),
]

# old name, new name, a value given under the old name, the new attribute it must set
RENAMES = [
    pytest.param("wait_for_completion", "wait_for_termination", True, True, id="wait_for_completion"),
    pytest.param("poll_interval", "check_interval", 5, 5.0, id="poll_interval"),
    pytest.param("wait_timeout", "timeout", timedelta(minutes=2), 120.0, id="wait_timeout"),
]

Factory = Callable[..., Any]


@pytest.mark.parametrize(("operator", "required"), OPERATORS)
@pytest.mark.parametrize(("old", "new", "value", "expected"), RENAMES)
def test_an_old_name_still_works_and_warns(
    operator: Factory, required: dict[str, Any], old: str, new: str, value: object, expected: object
) -> None:
    with pytest.warns(AirflowProviderDeprecationWarning, match=f"^{old} is deprecated; use {new}$"):
        built = operator(task_id="t", **required, **{old: value})
    assert getattr(built, new) == expected


@pytest.mark.parametrize(("operator", "required"), OPERATORS)
@pytest.mark.parametrize(("old", "new", "value", "expected"), RENAMES)
def test_an_old_name_in_default_args_still_works_and_the_call_beats_it(
    operator: Factory, required: dict[str, Any], old: str, new: str, value: object, expected: object
) -> None:
    with pytest.warns(AirflowProviderDeprecationWarning, match=f"^{old} is deprecated; use {new}$"):
        built = operator(task_id="t", **required, default_args={old: value})
    assert getattr(built, new) == expected
    # The new name in the call wins over the old one in default_args (which may be meant for others).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = operator(task_id="u", **required, default_args={old: value}, **{new: value})
    assert getattr(chosen, new) == expected


@pytest.mark.parametrize(("operator", "required"), OPERATORS)
@pytest.mark.parametrize(("old", "new", "value", "expected"), RENAMES)
def test_an_old_and_its_new_name_together_are_refused_before_the_task_exists(
    operator: Factory, required: dict[str, Any], old: str, new: str, value: object, expected: object
) -> None:
    with DAG("d", schedule=None) as dag, pytest.raises(ValueError, match=f"{old} and {new} are both given"):
        operator(task_id="t", **required, **{old: value, new: value})
    assert "t" not in dag.task_dict  # refused at parse time, before the task joined the DAG


def test_both_operators_have_the_same_names_and_defaults() -> None:
    expected = {"wait_for_termination": False, "check_interval": 30.0, "timeout": timedelta(days=7)}
    signatures = [
        inspect.signature(operator.__init__).parameters
        for operator in (RunloopStartBenchmarkRunOperator, RunloopCreateBenchmarkJobOperator)
    ]
    for parameters in signatures:
        assert {name: parameters[name].default for name in expected} == expected
        # The old names are accepted (partial/expand check the signature) but default to nothing.
        assert [
            parameters[old].default for old in ("wait_for_completion", "poll_interval", "wait_timeout")
        ] == [
            None,
            None,
            None,
        ]
    start = RunloopStartBenchmarkRunOperator(task_id="start", benchmark_id="bmd_1")
    job = RunloopCreateBenchmarkJobOperator(task_id="job", benchmark_id="bmd_1", agent_configs=AGENTS)
    for built in (start, job):
        assert (built.wait_for_termination, built.check_interval, built.timeout) == (False, 30.0, 7 * 86400.0)


@pytest.mark.parametrize(("operator", "required"), OPERATORS)
def test_the_deferrable_warning_names_wait_for_termination(
    operator: Factory, required: dict[str, Any]
) -> None:
    with pytest.warns(UserWarning, match="deferrable=True has no effect with wait_for_termination=False"):
        operator(task_id="t", **required, deferrable=True)
    with (
        pytest.warns(AirflowProviderDeprecationWarning),
        pytest.warns(UserWarning, match="deferrable=True has no effect with wait_for_termination=False"),
    ):
        operator(task_id="u", **required, deferrable=True, wait_for_completion=False)


@pytest.mark.parametrize(("operator", "required"), OPERATORS)
def test_an_old_name_works_in_partial(operator: Factory, required: dict[str, Any]) -> None:
    with DAG("d", schedule=None):
        mapped = operator.partial(task_id="t", wait_timeout=60, **required).expand(  # type: ignore[attr-defined]
            runloop_conn_id=["a", "b"]
        )
    with pytest.warns(AirflowProviderDeprecationWarning, match="^wait_timeout is deprecated; use timeout$"):
        built = mapped.unmap({"runloop_conn_id": "a", "params": {}})
    assert built.timeout == 60.0
