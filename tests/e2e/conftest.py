"""Fixtures of the end-to-end tests: one real Airflow deployment per module, the emulator, the REST API.

The Airflow processes (api-server, scheduler with the LocalExecutor, dag-processor, triggerer) run from
``tests/support/airflow_stack.py`` in a temporary AIRFLOW_HOME with SQLite; the DAG folder is
``example_dags``. The HA stack (``ha_stack``, tests/e2e/test_ha_failover.py) runs two schedulers and two
triggerers on a PostgreSQL server of its own (``tests/support/postgres.py``), parsing ``tests/dags``.

The Runloop emulator serves in this test process, on 127.0.0.1, with a real clock running fast.
When a test fails, the end of every component's log is added to its report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.airflow_stack import AirflowStack
from support.canary import CANARY_API_KEY
from support.moto_s3 import moto_s3_server
from support.postgres import PostgresServer

from airflow_provider_runloop.testing import RealClock, RunloopEmulator

REPO = Path(__file__).resolve().parents[2]
# Emulated seconds per real second: the scripted scenarios (seconds each) are over in a moment.
EMULATOR_SPEED = 20.0
_STACK_KEY = pytest.StashKey[AirflowStack]()
# The HA stack's failover settings: triggerers heartbeat every second and count as dead after
# TRIGGERER_HEALTH_SECONDS without one (then the live triggerer takes their triggers over); each picks
# at most a few new triggers per loop, so both get work.
TRIGGERER_HEALTH_SECONDS = 20
HA_ENV = {
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_SECONDS),
    "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": "4",
    # Everything runs on one 2-core host: while hundreds of task processes start, a scheduler's loop
    # starves for up to a minute (measured: heartbeats 38-61 s late at 220 tasks). Below that, the
    # schedulers declare each other dead and reset each other's queued tasks, which then run as new
    # tries. Deferred tasks need no adoption, so the scheduler failover costs no more with 120 s.
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "120",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    "AIRFLOW__CORE__PARALLELISM": "8",
    # Hundreds of tasks talk to the api-server's execution API at once: room in its DB pool, so none
    # waits out the pool's time-out (PostgreSQL allows 300 connections).
    "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "16",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "32",
    # Every wait polls every second (make soak: 2 s, for 220 waits on one in-process emulator).
    "RUNLOOP_HA_POLL_SECONDS": os.environ.get("RUNLOOP_HA_POLL_SECONDS", "1"),
}


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the example DAG writes results files by default (``RUNLOOP_RESULTS_URL``)."""
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def airflow_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    results_dir: Path,
) -> Iterator[AirflowStack]:
    """api-server, scheduler, dag-processor and triggerer on 127.0.0.1, stopped by PID afterwards."""
    stack = AirflowStack(
        home=tmp_path_factory.mktemp("airflow-home"),
        dags_folder=REPO / "example_dags",
        extra_env={
            # Read by the example DAG when it is parsed: poll every second, write under results_dir.
            "RUNLOOP_POLL_SECONDS": "1",
            "RUNLOOP_RESULTS_URL": f"file://{results_dir}",
            # example_runloop_on_finished_run's asset watcher fires only for runs with this metadata
            # (it runs while that DAG is unpaused: in its own test, and after it).
            "RUNLOOP_WATCH_METADATA": json.dumps({"e2e": "event-driven"}),
        },
    )
    request.node.stash[_STACK_KEY] = stack
    with stack:
        yield stack


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 (a free port, a temp data dir), stopped by its PID afterwards."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def ha_capacity() -> int:
    """``[triggerer] capacity`` of the HA stack's triggerers (a module may override it)."""
    return 1000


@pytest.fixture(scope="module")
def ha_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    ha_capacity: int,
) -> Iterator[AirflowStack]:
    """The HA shape on PostgreSQL: api-server, two schedulers, dag-processor, two triggerers."""
    stack = AirflowStack(
        home=tmp_path_factory.mktemp("airflow-ha-home"),
        dags_folder=REPO / "tests" / "dags",
        database_url=postgres.url,
        schedulers=2,
        triggerers=2,
        triggerer_capacity=ha_capacity,
        extra_env=HA_ENV,
    )
    request.node.stash[_STACK_KEY] = stack
    with stack:
        yield stack


@pytest.fixture(scope="module")
def ha_api(ha_stack: AirflowStack) -> Iterator[httpx.Client]:
    """The HA stack's REST API (``/api/v2``)."""
    with ha_stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def ha_runloop_connection(ha_api: httpx.Client, emulator: RunloopEmulator) -> dict[str, Any]:
    """``runloop_default`` on the HA stack, pointing at the emulator."""
    return _create_connection(ha_api, emulator)


@pytest.fixture(scope="module")
def api(airflow_stack: AirflowStack) -> Iterator[httpx.Client]:
    """The REST API (``/api/v2``), with a JWT from ``POST /auth/token``."""
    with airflow_stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunloopEmulator]:
    """A Runloop emulator serving on 127.0.0.1 from this process, its clock running fast; its key (so
    the connection's password) is the session's canary."""
    emulator = RunloopEmulator(api_key=CANARY_API_KEY, clock=RealClock(speed=EMULATOR_SPEED)).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def runloop_connection(api: httpx.Client, emulator: RunloopEmulator) -> dict[str, Any]:
    """``runloop_default``, created through the REST API and pointing at the emulator."""
    return _create_connection(api, emulator)


def _create_connection(api: httpx.Client, emulator: RunloopEmulator) -> dict[str, Any]:
    body = {
        "connection_id": "runloop_default",
        "conn_type": "runloop",
        "host": emulator.base_url,
        "password": emulator.api_key,
        "extra": json.dumps({"timeout": 10, "max_retries": 2}),
    }
    response = api.post("/connections", json=body)
    assert response.status_code == 201, response.text
    return body


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server on a free loopback port, stopped by its PID."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed:
        module = item.getparent(pytest.Module)
        stack = module.stash.get(_STACK_KEY, None) if module is not None else None
        if stack is not None:
            report.sections.append(("Airflow component logs (tails)", stack.log_tails()))
    return report
