"""Fixtures of the lifecycle integration tests: the emulator as ``runloop_default``, and a stand-in for
the task instance (its identity, which the operators tag what they start with, and its XCom)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_runloop.testing import RunloopEmulator

Connect = Callable[..., RunloopEmulator]


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Connect:
    """``connect(emulator, **extras)``: point ``runloop_default`` at ``emulator``."""

    def point_at(emulator: RunloopEmulator, **extra: Any) -> RunloopEmulator:
        conn = json.loads(emulator.airflow_conn_json)
        if extra:
            conn["extra"] = extra
        monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps(conn))
        return emulator

    return point_at


@pytest.fixture
def emulator(runloop_emulator: RunloopEmulator, connect: Connect) -> RunloopEmulator:
    """The per-test emulator (manual clock), as ``runloop_default``."""
    return connect(runloop_emulator)


@pytest.fixture
def ti() -> TaskInstanceStub:
    """A task instance (try 1); ``ti.retry()`` is the same one on its next try."""
    return TaskInstanceStub()


class TaskInstanceStub:
    """The task instance as the operators use it: identity, try number, XCom push and pull."""

    def __init__(
        self,
        *,
        dag_id: str = "lifecycle",
        task_id: str = "start",
        run_id: str = "manual__2026-01-01",
        map_index: int = -1,
        try_number: int = 1,
    ) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.run_id = run_id
        self.map_index = map_index
        self.try_number = try_number
        self.start_date = None
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = json.loads(json.dumps(value))  # XCom holds JSON

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        assert task_ids in (None, self.task_id)
        return self.xcom.get(key)

    def retry(self) -> TaskInstanceStub:
        """The same task instance on its next try (after a worker crash): same identity, XCom cleared."""
        return TaskInstanceStub(
            dag_id=self.dag_id,
            task_id=self.task_id,
            run_id=self.run_id,
            map_index=self.map_index,
            try_number=self.try_number + 1,
        )
