"""TaskTag: the task instance's key, request ids, tagged names and metadata (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from support.lifecycle_operators import TaskInstanceStub as _TI

from airflow_provider_runloop.operators.runloop import TaskTag


def _tag(**identity: Any) -> TaskTag:
    return TaskTag.from_context({"ti": _TI(**identity)})  # type: ignore[arg-type]


def test_the_tag_is_the_same_on_every_try_and_differs_per_task_instance() -> None:
    first, retry = _tag(try_number=1), _tag(try_number=4)
    assert first.key == retry.key
    assert len(first.key) == 16
    others = [_tag(map_index=0), _tag(run_id="manual__2"), _tag(task_id="u"), _tag(dag_id="e")]
    assert len({first.key, *(other.key for other in others)}) == 5


def test_the_request_id_changes_with_the_try() -> None:
    assert _tag(try_number=1).request_id("start-run") != _tag(try_number=2).request_id("start-run")
    assert _tag().request_id("start-run") == f"airflow-runloop-start-run-{_tag().key}-1"


def test_names_and_metadata() -> None:
    tag = _tag(map_index=3)
    assert tag.label == "d.t[3]"
    assert tag.tagged_name() == f"d.t[3] [airflow {tag.key}]"
    assert tag.tagged_name("nightly") == f"nightly [airflow {tag.key}]"
    assert tag.metadata() == {
        "airflow_dag_id": "d",
        "airflow_run_id": "manual__1",
        "airflow_task_id": "t",
        "airflow_map_index": "3",
        "airflow_tag": tag.key,
    }


def test_a_context_without_a_task_instance_is_refused() -> None:
    with pytest.raises(ValueError, match="run it as an Airflow task"):
        TaskTag.from_context({})  # type: ignore[typeddict-item]
