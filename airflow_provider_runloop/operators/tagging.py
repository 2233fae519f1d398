"""TaskTag: what ties a run or job to the task instance that started it, whatever the try.

Idempotency (``docs/lifecycle.md``): what a task starts is tagged with its task instance. A new try looks
for a live run or job with its tag and reattaches to it instead of starting another; each POST carries a
request id fixed for the try, so the client's own retries of that POST (after a 503, a dropped
connection) can be de-duplicated by the server.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["TAG_METADATA_KEY", "TAG_METADATA_KEYS", "TaskTag"]

TAG_METADATA_KEY: Final = "airflow_tag"
"""Metadata key of the tag that ties a benchmark run to the task instance that started it."""

TAG_METADATA_KEYS: Final = (
    "airflow_dag_id",
    "airflow_run_id",
    "airflow_task_id",
    "airflow_map_index",
    TAG_METADATA_KEY,
)
"""Every metadata key the provider sets on a run it starts (users' metadata may not set them)."""


@dataclass(frozen=True)
class TaskTag:
    """The task instance that starts a run or job: the same on every try, so a retry can find its work.

    :param dag_id: the DAG.
    :param run_id: the DAG run.
    :param task_id: the task.
    :param map_index: the mapped task's index (``-1`` when not mapped).
    :param try_number: the try (only in request ids, never in the tag).
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int

    @classmethod
    def from_context(cls, context: Context) -> TaskTag:
        """The tag of the running task instance.

        :raises ValueError: when the context has no task instance (the operator runs outside Airflow).
        """
        ti = context.get("ti")
        parts = [getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id")]
        if not all(isinstance(part, str) and part for part in parts):
            raise ValueError(
                "This operator tags what it starts with its task instance (dag_id, run_id, task_id), "
                "but the context has no task instance: run it as an Airflow task."
            )
        map_index = getattr(ti, "map_index", -1)
        try_number = getattr(ti, "try_number", 1)
        return cls(
            dag_id=str(parts[0]),
            run_id=str(parts[1]),
            task_id=str(parts[2]),
            map_index=map_index if isinstance(map_index, int) else -1,
            try_number=try_number if isinstance(try_number, int) else 1,
        )

    @property
    def key(self) -> str:
        """16 hex digits identifying the task instance (not the try)."""
        identity = "\0".join((self.dag_id, self.run_id, self.task_id, str(self.map_index)))
        return hashlib.sha256(identity.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """``dag_id.task_id`` (with ``[map_index]`` when mapped), for names people read."""
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{mapped}"

    def tagged_name(self, base: str | None = None) -> str:
        """``<base> [airflow <key>]``: a name only this task instance gives (base: its label)."""
        return f"{base or self.label} [airflow {self.key}]"

    def metadata(self) -> dict[str, str]:
        """The metadata a benchmark run started by this task instance carries."""
        values = (self.dag_id, self.run_id, self.task_id, str(self.map_index), self.key)
        return dict(zip(TAG_METADATA_KEYS, values, strict=True))

    def request_id(self, action: str) -> str:
        """The ``x-request-id`` of one POST of this try: the same on the client's retries of it.

        The try is part of it: a new try (a retry, or a clear to start over) must reach the server as a
        new request, or a server that de-duplicates would hand back the first try's (maybe finished) run.
        """
        return f"airflow-runloop-{action}-{self.key}-{self.try_number}"
