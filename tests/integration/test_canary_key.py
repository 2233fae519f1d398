"""The canary API key against a server that echoes it back, over 127.0.0.1.

The emulator's ``echo_authorization`` fault answers 401, 403 or 503 with a body that quotes the
request's ``Authorization`` header (a header line, a headers mapping, the bare token). Driven through
the clients, the hook, a trigger run to its event and the sensor in every mode under ``dag.test()``,
the session's canary key (``support/canary.py``) must be in no exception text or repr, log line,
trigger event, serialized trigger, XCom value or file. The results export has its own test
(``results/test_results_export_canary.py``); the session's end scan searches the Airflow home (the
metadata DB) and every temporary folder, and ``tests/conftest.py`` every test's captured output.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from support.canary import CANARY_API_KEY, assert_no_canary, scan_paths
from support.dag_files import load_dag_file

from airflow_provider_runloop.client import AsyncRunloopClient, RetryPolicy, RunloopClient
from airflow_provider_runloop.exceptions import (
    RunloopAuthenticationError,
    RunloopInvalidRequestError,
    RunloopServerError,
)
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.testing import RealClock, RunloopEmulator
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger

SENSOR_DAG = Path(__file__).resolve().parents[1] / "dags" / "runloop_sensor_modes.py"
MODES = ("poke", "reschedule", "deferrable")
FAST = RetryPolicy(max_retries=2, backoff_initial=0.01, backoff_max=0.02)
SCRIPT = {"scenario_count": 4, "seed": 8, "timing": {"start_interval": 0.5, "duration": [2, 4]}}
ERRORS = {401: RunloopAuthenticationError, 403: RunloopAuthenticationError, 503: RunloopServerError}
ECHOED = "Authorization: ***"  # what is left of the echoed header line once redacted


def _connect(monkeypatch: pytest.MonkeyPatch, emulator: RunloopEmulator, password: str, **extra: Any) -> None:
    conn = {"conn_type": "runloop", "host": emulator.base_url, "password": password, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps(conn))


def _texts(error: BaseException) -> list[str]:
    return [str(error), repr(error), repr(vars(error))]


@pytest.fixture
def emulator(runloop_emulator: RunloopEmulator) -> RunloopEmulator:
    assert runloop_emulator.api_key == CANARY_API_KEY
    return runloop_emulator


@pytest.mark.parametrize("status", sorted(ERRORS))
async def test_the_clients_keep_nothing_of_an_echoed_key(
    emulator: RunloopEmulator,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    run_id = emulator.start_scripted_run(script=SCRIPT)
    fault = emulator.add_fault("echo_authorization", status=status, path="/v1/benchmark_runs/*")
    seen: list[Any] = []
    with RunloopClient(emulator.api_key, base_url=emulator.base_url, retry=FAST) as client:
        with pytest.raises(ERRORS[status]) as caught:
            client.get_benchmark_run(run_id)
        seen += _texts(caught.value)
        with pytest.raises(ERRORS[status]) as caught:
            list(client.list_scenario_runs(run_id))
        seen += _texts(caught.value)
    async with AsyncRunloopClient(emulator.api_key, base_url=emulator.base_url, retry=FAST) as aclient:
        with pytest.raises(ERRORS[status]) as acaught:
            await aclient.count_scenario_runs(run_id)
        seen += _texts(acaught.value)
    assert fault.fired == 3 * (FAST.max_retries + 1 if status == 503 else 1)  # the server did echo
    assert ECHOED in str(acaught.value)
    assert ("retry 2 of 2" in caplog.text) is (status == 503)
    assert_no_canary(*seen, caplog.text, *capsys.readouterr())


def test_a_key_with_a_trailing_newline_is_sent_stripped_over_a_real_socket(
    emulator: RunloopEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run_id = emulator.start_scripted_run(script=SCRIPT)
    _connect(monkeypatch, emulator, f"{CANARY_API_KEY}\n", max_retries=3)
    hook = RunloopHook()
    assert hook.get_benchmark_run(run_id).id == run_id
    hook.close()
    assert [entry.status for entry in emulator.requests()] == [200]
    assert_no_canary(caplog.text)


def test_a_header_h11_refuses_is_not_retried_and_not_quoted(
    emulator: RunloopEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Not httpcore's own DEBUG trace: it prints the refused header's repr, which this test forces on
    # purpose (our headers are checked before they are built, so no real key ever gets there).
    caplog.set_level(logging.INFO, logger="httpcore")
    with RunloopClient(emulator.api_key, base_url=emulator.base_url, retry=FAST) as client:
        # What every request carried before keys were checked: h11 refuses the line break.
        client._api_key = f"{CANARY_API_KEY}\n"
        with pytest.raises(RunloopInvalidRequestError, match=r"Bearer \*\*\*") as caught:
            client.get_benchmark_run("bmr_1")
    assert emulator.requests() == []  # never sent, never retried
    assert "retry" not in caplog.text
    assert caught.value.__context__ is None
    assert_no_canary(*_texts(caught.value), caplog.text)


@pytest.mark.parametrize("status", sorted(ERRORS))
async def test_the_hook_keeps_nothing_of_an_echoed_key(
    emulator: RunloopEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    _connect(monkeypatch, emulator, emulator.api_key, max_retries=1)
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.add_fault("echo_authorization", status=status, path="/v1/benchmark_runs*")
    hook = RunloopHook()
    ok, message = hook.test_connection()
    assert not ok
    with pytest.raises(ERRORS[status]) as caught:
        hook.check_benchmark_run(run_id)
    with pytest.raises(ERRORS[status]) as acaught:
        await hook.acheck_benchmark_run(run_id)
    await hook.aclose()
    hook.close()
    assert ECHOED in str(caught.value)
    seen = [message, *_texts(caught.value), *_texts(acaught.value)]
    assert_no_canary(*seen, caplog.text, *capsys.readouterr())


@pytest.mark.parametrize("status", sorted(ERRORS))
async def test_a_trigger_event_keeps_nothing_of_an_echoed_key(
    emulator: RunloopEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    _connect(monkeypatch, emulator, emulator.api_key, max_retries=0)
    run_id = emulator.start_scripted_run(script=SCRIPT)
    emulator.add_fault("echo_authorization", status=status, path="/v1/benchmark_runs/*")
    trigger = RunloopBenchmarkRunTrigger(
        benchmark_run_id=run_id,
        deadline=time.time() + 30,
        poll_interval=0.01,
        max_consecutive_poll_failures=2,
    )
    events = [event.payload async for event in trigger.run()]
    (event,) = events
    assert event["status"] == "error"
    assert ECHOED in event["message"]
    logged = caplog.text + "".join(capsys.readouterr())  # the trigger logs through Airflow's logging
    assert ("Poll 2 in a row failed" in logged) is (status == 503)
    assert_no_canary(event, trigger.serialize(), logged)


def _airflow_db() -> Path:
    from airflow.configuration import conf

    url = conf.get("database", "sql_alchemy_conn")
    assert url.startswith("sqlite:///"), url
    return Path(url.removeprefix("sqlite:///"))


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    ("status", "times", "outcome"),
    [
        pytest.param(503, 3, "success", id="503-then-recovers"),
        pytest.param(503, None, "failed", id="503-until-the-poll-budget-is-spent"),
        pytest.param(403, None, "failed", id="403"),
    ],
)
def test_the_sensor_in_every_mode_keeps_nothing_of_an_echoed_key(
    runloop_emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    status: int,
    times: int | None,
    outcome: str,
) -> None:
    caplog.set_level(logging.INFO)
    emulator = runloop_emulator_factory(clock=RealClock(speed=20))
    _connect(monkeypatch, emulator, emulator.api_key, max_retries=0)
    benchmark = emulator.seed_benchmark(SCRIPT)
    run_ids = {mode: emulator.start_scripted_run(benchmark.benchmark_id, seed=2) for mode in MODES}
    fault = emulator.add_fault("echo_authorization", status=status, path="/v1/benchmark_runs/*", times=times)
    out = tmp_path / "xcoms.json"
    dag_run = load_dag_file(SENSOR_DAG).dag.test(run_conf={"run_ids": run_ids, "out": str(out)})

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert all(states[f"wait_{mode}"] == outcome for mode in MODES), states
    assert fault.fired >= (times or 3)
    xcoms = json.loads(out.read_text())
    assert all((xcoms[mode] is None) is (outcome == "failed") for mode in MODES)
    captured = capsys.readouterr()
    assert ECHOED in captured.out + captured.err + caplog.text  # the errors were logged, redacted
    assert_no_canary(xcoms, captured.out, captured.err, caplog.text)
    # XCom rows, task instances and the deferred task's trigger event, as the metadata DB holds them.
    scan = scan_paths([_airflow_db()])
    assert scan.databases == 1
    assert not scan.hits, scan.describe()
