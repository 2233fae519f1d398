"""The operators, by their original import path: ``airflow_provider_runloop.operators.runloop``.

They live by job: the results export in ``operators/results.py``, the score gate in
``operators/checks.py``, the run lifecycle in
``operators/lifecycle.py``, benchmark jobs in ``operators/jobs.py``, the task tag in
``operators/tagging.py``. This module re-exports them so DAGs written against earlier versions keep working.
"""

from airflow_provider_runloop.operators.checks import RunloopBenchmarkRunCheckOperator
from airflow_provider_runloop.operators.jobs import RunloopCreateBenchmarkJobOperator
from airflow_provider_runloop.operators.lifecycle import (
    DEFAULT_WAIT_TIMEOUT,
    RunloopCancelBenchmarkRunOperator,
    RunloopCompleteBenchmarkRunOperator,
    RunloopStartBenchmarkRunOperator,
)
from airflow_provider_runloop.operators.results import (
    DEFAULT_MAX_XCOM_RECORDS_BYTES,
    RunloopBenchmarkResultsOperator,
)
from airflow_provider_runloop.operators.tagging import TAG_METADATA_KEY, TaskTag
from airflow_provider_runloop.storage import STALE_STAGING_AGE

__all__ = [
    "DEFAULT_MAX_XCOM_RECORDS_BYTES",
    "DEFAULT_WAIT_TIMEOUT",
    "STALE_STAGING_AGE",
    "TAG_METADATA_KEY",
    "RunloopBenchmarkResultsOperator",
    "RunloopBenchmarkRunCheckOperator",
    "RunloopCancelBenchmarkRunOperator",
    "RunloopCompleteBenchmarkRunOperator",
    "RunloopCreateBenchmarkJobOperator",
    "RunloopStartBenchmarkRunOperator",
    "TaskTag",
]
