"""The results export against a server that echoes the canary API key back (emulator fault
``echo_authorization``, over 127.0.0.1): the key is in no exported file, XCom value, exception or log.

A 503 that echoes the key once is retried and the export completes; a 401 or 403 that echoes it fails
the export, leaving nothing at the destination.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.canary import CANARY_API_KEY, assert_no_canary

from airflow_provider_runloop.exceptions import RunloopAuthenticationError
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.testing import RunloopEmulator

TaskInstanceStub = Any  # defined in conftest.py, which test modules do not import
SCRIPT = {"scenario_count": 30, "seed": 6, "timing": {"start_interval": 0}}
LISTING = "/v1/benchmark_runs/*/scenario_runs"


@pytest.mark.parametrize(
    ("status", "times", "exported"),
    [
        pytest.param(503, 1, True, id="503-retried"),
        pytest.param(401, None, False, id="401"),
        pytest.param(403, None, False, id="403"),
    ],
)
def test_an_export_keeps_nothing_of_an_echoed_key(
    emulator_connection: RunloopEmulator,
    new_task_instance: Callable[[], TaskInstanceStub],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    status: int,
    times: int | None,
    exported: bool,
) -> None:
    emulator = emulator_connection
    assert emulator.api_key == CANARY_API_KEY
    caplog.set_level(logging.DEBUG)
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.advance(3600)
    fault = emulator.add_fault("echo_authorization", status=status, path=LISTING, times=times)
    ti = new_task_instance()
    operator = RunloopBenchmarkResultsOperator(
        task_id="export", benchmark_run_id=run_id, destination=f"file://{tmp_path}/results.jsonl"
    )
    seen: list[Any] = []
    if exported:
        seen.append(json.dumps(operator.execute({"ti": ti})))  # type: ignore[arg-type]
        lines = (tmp_path / "results.jsonl").read_text().splitlines()
        assert len(lines) == 30
        seen.extend(lines)
        assert "retry 1 of" in caplog.text
    else:
        with pytest.raises(RunloopAuthenticationError) as caught:
            operator.execute({"ti": ti})  # type: ignore[arg-type]
        seen.extend([str(caught.value), repr(caught.value), repr(vars(caught.value))])
        assert "Authorization: ***" in str(caught.value)
        assert [path for path in tmp_path.rglob("*") if path.is_file()] == []
    assert fault.fired >= 1
    assert_no_canary(*seen, ti.xcom, caplog.text, *capsys.readouterr())
