"""Checks shared by every task: the same bad id fails the same way at parse time, whichever task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_runloop.arguments import MIN_POLL_INTERVAL, check_poll_interval, rendered_later
from airflow_provider_runloop.operators.runloop import (
    RunloopBenchmarkResultsOperator,
    RunloopBenchmarkRunCheckOperator,
    RunloopCancelBenchmarkRunOperator,
    RunloopCompleteBenchmarkRunOperator,
    RunloopCreateBenchmarkJobOperator,
    RunloopStartBenchmarkRunOperator,
)
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

AGENTS = [{"name": "a"}]
# Each task, built with one id argument set to the value under test.
TASKS: list[Any] = [
    pytest.param(lambda v: RunloopBenchmarkRunSensor(task_id="t", benchmark_run_id=v), id="sensor"),
    pytest.param(lambda v: RunloopBenchmarkResultsOperator(task_id="t", benchmark_run_id=v), id="results"),
    pytest.param(
        lambda v: RunloopCompleteBenchmarkRunOperator(task_id="t", benchmark_run_id=v), id="complete"
    ),
    pytest.param(lambda v: RunloopCancelBenchmarkRunOperator(task_id="t", benchmark_run_id=v), id="cancel"),
    pytest.param(lambda v: RunloopBenchmarkRunCheckOperator(task_id="t", benchmark_run_id=v), id="check"),
    pytest.param(
        lambda v: RunloopBenchmarkRunCheckOperator(
            task_id="t", benchmark_run_id="bmr_1", baseline_benchmark_run_id=v
        ),
        id="check-baseline",
    ),
    pytest.param(lambda v: RunloopStartBenchmarkRunOperator(task_id="t", benchmark_id=v), id="start"),
    pytest.param(
        lambda v: RunloopCreateBenchmarkJobOperator(task_id="t", benchmark_id=v, agent_configs=AGENTS),
        id="job",
    ),
]


@pytest.mark.parametrize("build", TASKS)
@pytest.mark.parametrize("bad", ["bad id", "../bmr", "bmr/1", "bmr?x=1", "", " "])
def test_every_task_rejects_a_bad_literal_id_at_parse_time(build: Callable[[str], Any], bad: str) -> None:
    with pytest.raises(ValueError, match="must be a Runloop id"):
        build(bad)


@pytest.mark.parametrize("build", TASKS)
def test_every_task_leaves_a_templated_id_for_after_rendering(build: Callable[[str], Any]) -> None:
    build("{{ ti.xcom_pull('start') }}")


@pytest.mark.parametrize(
    ("value", "later"),
    [("{{ ds }}", True), ("{% if x %}a{% endif %}", True), ("bmr_1", False), (None, False), (5, False)],
)
def test_rendered_later(value: object, later: bool) -> None:
    assert rendered_later(value) is later


@pytest.mark.parametrize("value", [0, -1, 0.001, float("nan"), float("inf"), "30", None, True])
def test_poll_intervals_that_cannot_work_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"^interval must be"):
        check_poll_interval("interval", value)


def test_the_minimum_poll_interval_is_accepted() -> None:
    assert check_poll_interval("interval", MIN_POLL_INTERVAL) == MIN_POLL_INTERVAL
