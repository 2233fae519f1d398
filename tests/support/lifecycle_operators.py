"""Stand-ins and factories shared by the unit tests of the lifecycle and the job operators (no server)."""

from __future__ import annotations

from typing import Any

from airflow_provider_runloop.operators.runloop import RunloopCreateBenchmarkJobOperator

__all__ = ["AGENTS", "TaskInstanceStub", "job_operator"]


class TaskInstanceStub:
    """The slice of a task instance the operators read (identity, ``xcom_pull``); seed ``xcom``."""

    def __init__(self, **identity: Any) -> None:
        self.dag_id = identity.get("dag_id", "d")
        self.run_id = identity.get("run_id", "manual__1")
        self.task_id = identity.get("task_id", "t")
        self.map_index = identity.get("map_index", -1)
        self.try_number = identity.get("try_number", 1)
        self.xcom: dict[str, Any] = {}

    def xcom_pull(self, key: str = "return_value", **_: Any) -> Any:
        return self.xcom.get(key)


AGENTS = [{"name": "a", "agent_id": "agt_1", "model_name": "m", "timeout_seconds": 600, "kwargs": {"k": "v"}}]


def job_operator(**kwargs: Any) -> RunloopCreateBenchmarkJobOperator:
    options: dict[str, Any] = {"task_id": "job", "benchmark_id": "bmd_1", "agent_configs": AGENTS, **kwargs}
    return RunloopCreateBenchmarkJobOperator(**options)
