"""RunloopHook: connection parsing, clients, connection test, and keeping the key secret."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_runloop.client import AsyncRunloopClient, RunloopClient
from airflow_provider_runloop.exceptions import RunloopServerError
from airflow_provider_runloop.hooks.connection import client_options
from airflow_provider_runloop.hooks.runloop import RunloopHook

KEY = "rl_sk_hook_secret_456"
RUN = {"id": "bmr_1", "state": "completed", "metadata": {}, "start_time_ms": 1}


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str = "runloop_default", **fields: Any) -> None:
    value = {"conn_type": "runloop", "password": KEY, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


@pytest.fixture
def api() -> Iterator[respx.Router]:
    with respx.mock(base_url="https://api.runloop.ai", assert_all_called=False) as router:
        yield router


def test_public_names() -> None:
    assert RunloopHook.conn_type == "runloop"
    assert RunloopHook.default_conn_name == "runloop_default"
    assert RunloopHook.conn_name_attr == "runloop_conn_id"
    assert RunloopHook.hook_name == "Runloop"
    assert RunloopHook(runloop_conn_id="other").runloop_conn_id == "other"


@pytest.mark.parametrize(
    ("fields", "base_url"),
    [
        ({}, "https://api.runloop.ai"),
        ({"host": "https://api.runloop.ai"}, "https://api.runloop.ai"),
        ({"host": "http://127.0.0.1:8765"}, "http://127.0.0.1:8765"),
        ({"host": "http://127.0.0.1", "port": 8765}, "http://127.0.0.1:8765"),
        ({"host": "runloop.internal"}, "https://runloop.internal"),
    ],
)
def test_base_url_from_host(monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], base_url: str) -> None:
    _set_conn(monkeypatch, **fields)
    client = RunloopHook().get_conn()
    assert isinstance(client, RunloopClient)
    assert client.base_url == base_url


def test_extras_configure_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"timeout": "12", "connect_timeout": 2, "max_retries": "1", "verify_ssl": "false"}
    _set_conn(monkeypatch, extra=extra)
    conn = RunloopHook.get_connection("runloop_default")
    options = client_options("runloop_default", conn, extra)
    assert options["timeout"] == 12.0
    assert options["connect_timeout"] == 2.0
    assert options["retry"].max_retries == 1
    assert options["verify"] is False
    assert RunloopHook().get_conn().retry.max_retries == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": "soon"}, "extra 'timeout' must be a finite number of seconds > 0"),
        ({"timeout": 0}, "extra 'timeout'"),
        ({"max_retries": -1}, "extra 'max_retries' must be a whole number >= 0"),
        ({"max_retries": "2.5"}, "extra 'max_retries'"),
        ({"verify_ssl": "maybe"}, "extra 'verify_ssl' must be true or false"),
        ({"timeout": "nan"}, "extra 'timeout' must be a finite number of seconds > 0"),
        ({"timeout": float("nan")}, "extra 'timeout' must be a finite number"),
        ({"timeout": float("inf")}, "extra 'timeout' must be a finite number"),
        ({"timeout": "Infinity"}, "extra 'timeout' must be a finite number"),
        ({"connect_timeout": "-inf"}, "extra 'connect_timeout' must be a finite number"),
        ({"timeout": True}, "extra 'timeout' must be a finite number"),
        ({"max_retries": 2.5}, "extra 'max_retries' must be a whole number >= 0, got 2.5"),
        ({"max_retries": "nan"}, "extra 'max_retries' must be a whole number"),
        ({"max_retries": True}, "extra 'max_retries' must be a whole number"),
    ],
)
def test_bad_extras_are_named(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], message: str) -> None:
    _set_conn(monkeypatch, extra=extra)
    with pytest.raises(ValueError, match=message):
        RunloopHook().get_conn()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"host": "h h"}, "its host name is not a valid DNS name or IP address"),
        ({"host": "http://h h:8080"}, "its host name is not a valid DNS name or IP address"),
        ({"host": "https://api..runloop.ai"}, "its host name is not a valid DNS name or IP address"),
        ({"host": "https://-api.runloop.ai"}, "its host name is not a valid DNS name or IP address"),
        ({"host": "http://127.0.0.1:99999"}, "its port is not a number from 1 to 65535"),
        ({"host": "http://127.0.0.1:0"}, "its port is not a number from 1 to 65535"),
        ({"host": "http://127.0.0.1", "port": 70000}, "its port is not a number from 1 to 65535"),
        ({"host": "ftp://api.runloop.ai"}, "it must be an http:// or https:// URL"),
    ],
)
def test_a_malformed_host_is_named_before_any_request(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], problem: str
) -> None:
    _set_conn(monkeypatch, **fields)
    with pytest.raises(ValueError, match=f"connection 'runloop_default' host .* {problem}") as raised:
        RunloopHook().get_conn()
    assert KEY not in str(raised.value)


@pytest.mark.parametrize(
    ("extra", "retries"), [({"max_retries": 3.0}, 3), ({"max_retries": "2"}, 2), ({"max_retries": 0}, 0)]
)
def test_whole_retry_counts_are_kept(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], retries: int
) -> None:
    _set_conn(monkeypatch, extra=extra)
    assert RunloopHook().get_conn().retry.max_retries == retries


def test_missing_api_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps({"conn_type": "runloop"}))
    with pytest.raises(ValueError, match="'runloop_default' has no API key: put it in the password field"):
        RunloopHook().get_conn()


@pytest.mark.parametrize("password", [f"{KEY}\n", f" {KEY} ", f"\t{KEY}\r\n"])
def test_whitespace_around_the_key_is_stripped_when_the_connection_is_read(
    monkeypatch: pytest.MonkeyPatch, api: respx.Router, password: str
) -> None:
    _set_conn(monkeypatch, password=password)
    route = api.get("/v1/benchmark_runs/bmr_1").respond(json=RUN)
    RunloopHook().get_benchmark_run("bmr_1")
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"

    async def read_async() -> str:
        hook = RunloopHook()
        try:
            return (await hook.aget_conn())._api_key
        finally:
            await hook.aclose()

    assert asyncio.run(read_async()) == KEY


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        pytest.param("rl_sk_hook secret_456", "whitespace", id="space"),
        pytest.param("rl_sk_hook\nsecret_456", "whitespace", id="newline"),
        pytest.param("rl_sk_hook\u00a0secret_456", "whitespace", id="no-break-space"),
        pytest.param("rl_sk_hook\u00e9secret_456", "non-ASCII", id="accent"),
        pytest.param("rl_sk_hook\x00secret_456", "non-printable", id="nul"),
    ],
)
def test_a_key_no_header_can_carry_names_the_connection_not_the_key(
    monkeypatch: pytest.MonkeyPatch, api: respx.Router, password: str, problem: str
) -> None:
    _set_conn(monkeypatch, conn_id="runloop_prod", password=password)
    with pytest.raises(ValueError, match=problem) as info:
        RunloopHook(runloop_conn_id="runloop_prod").get_conn()
    message = str(info.value)
    assert "'runloop_prod'" in message
    assert "rl_sk_hook" not in message
    assert "secret_456" not in message
    ok, tested = RunloopHook(runloop_conn_id="runloop_prod").test_connection()
    assert not ok
    assert problem in tested
    assert "secret_456" not in tested
    assert len(api.calls) == 0


def test_sync_methods_use_the_connection(monkeypatch: pytest.MonkeyPatch, api: respx.Router) -> None:
    _set_conn(monkeypatch)
    route = api.get("/v1/benchmark_runs/bmr_1").respond(json=RUN)
    hook = RunloopHook()
    assert hook.get_benchmark_run("bmr_1").id == "bmr_1"
    assert hook.get_conn() is hook.get_conn()
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


def test_async_methods_read_the_connection_asynchronously(
    monkeypatch: pytest.MonkeyPatch, api: respx.Router
) -> None:
    _set_conn(monkeypatch)
    api.get("/v1/benchmark_runs/bmr_1").respond(json=RUN)
    api.get("/v1/benchmark_runs/bmr_1/scenario_runs").respond(
        json={
            "runs": [{"id": "scr_1", "scenario_id": "scn_1", "state": "completed"}],
            "has_more": False,
            "total_count": 1,
        }
    )
    hook = RunloopHook()

    def no_sync_access(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the sync connection API must not be used inside the event loop")

    monkeypatch.setattr(RunloopHook, "get_connection", no_sync_access)

    async def main() -> tuple[str, int, list[str]]:
        try:
            client = await hook.aget_conn()
            assert isinstance(client, AsyncRunloopClient)
            run = await hook.aget_benchmark_run("bmr_1")
            count = await hook.acount_scenario_runs("bmr_1")
            ids = [r.id async for r in hook.alist_scenario_runs("bmr_1")]
            return run.id, count, ids
        finally:
            await hook.aclose()

    assert asyncio.run(main()) == ("bmr_1", 1, ["scr_1"])
    assert hook._async_client is None


def test_test_connection_success(monkeypatch: pytest.MonkeyPatch, api: respx.Router) -> None:
    _set_conn(monkeypatch)
    route = api.get("/v1/benchmark_runs").respond(json={"runs": [], "has_more": False})
    ok, message = RunloopHook().test_connection()
    assert ok, message
    assert "https://api.runloop.ai" in message
    assert route.call_count == 1
    assert route.calls.last.request.url.params["limit"] == "1"


@pytest.mark.parametrize("status", [401, 403])
def test_test_connection_says_authentication_failed(
    monkeypatch: pytest.MonkeyPatch, api: respx.Router, status: int
) -> None:
    _set_conn(monkeypatch)
    api.get("/v1/benchmark_runs").respond(status, json={"message": "invalid key"})
    ok, message = RunloopHook().test_connection()
    assert not ok
    assert "authentication failed" in message
    assert KEY not in message


def test_test_connection_never_raises(monkeypatch: pytest.MonkeyPatch, api: respx.Router) -> None:
    _set_conn(monkeypatch, extra={"max_retries": 0})
    api.get("/v1/benchmark_runs").mock(side_effect=httpx.ConnectError("refused"))
    ok, message = RunloopHook().test_connection()
    assert not ok
    assert "ConnectError" in message
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps({"conn_type": "runloop"}))
    ok, message = RunloopHook().test_connection()
    assert not ok
    assert "no API key" in message


def test_test_connection_redacts_an_unexpected_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch)

    def explode(self: RunloopClient) -> None:
        raise RuntimeError(f"proxy refused: Authorization: Bearer {KEY}")

    monkeypatch.setattr(RunloopClient, "verify_credentials", explode)
    ok, message = RunloopHook().test_connection()
    assert not ok
    assert message == "Runloop connection test failed: RuntimeError: proxy refused: Authorization: ***"


def test_key_absent_from_logs_and_repr(
    monkeypatch: pytest.MonkeyPatch, api: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _set_conn(monkeypatch, extra={"max_retries": 1})
    api.get("/v1/benchmark_runs/bmr_1").respond(500, json={"message": "boom"})
    hook = RunloopHook()
    with pytest.raises(RunloopServerError) as info:
        hook.get_benchmark_run("bmr_1")
    assert caplog.records
    assert KEY not in caplog.text
    assert KEY not in str(info.value)
    assert KEY not in repr(hook)
    assert KEY not in repr(hook.get_conn())
