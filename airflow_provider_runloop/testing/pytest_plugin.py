"""pytest plugin (entry point ``runloop_emulator``): fixtures that serve a Runloop emulator on loopback.

``runloop_emulator``
    A fresh :class:`~airflow_provider_runloop.testing.RunloopEmulator` per test with a
    :class:`~airflow_provider_runloop.testing.ManualClock` (time moves only on ``advance()``), served on
    ``127.0.0.1`` at ``base_url``. Starting it is cheap: one server per session serves whichever
    emulator the current test owns, so a test pays for building its emulator, not for a server. Options
    go in a marker: ``@pytest.mark.runloop_emulator(seed=3, emit_nulls=True, script={...})`` (any
    ``RunloopEmulator`` keyword argument).
``runloop_emulator_factory``
    ``factory(**kwargs) -> RunloopEmulator`` for tests that need several emulators, or other options
    (e.g. ``clock=RealClock(speed=50)``): each gets its own server, stopped after the test.
``runloop_emulator_options``
    the keyword arguments both of them start from (none by default). Override it in a ``conftest.py``
    to give every emulator of a folder the same options, e.g. its own ``api_key``; a marker's options
    and the factory's arguments win over it.

Example::

    def test_sensor_waits_for_the_run(runloop_emulator, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", runloop_emulator.airflow_conn_json)
        run_id = runloop_emulator.start_scripted_run()
        runloop_emulator.advance(60)
        ...

The plugin imports nothing heavy at collection time: FastAPI and Hypercorn load on first use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_runloop.testing.emulator import RunloopEmulator
    from airflow_provider_runloop.testing.server import EmulatorServer

__all__ = ["runloop_emulator", "runloop_emulator_factory", "runloop_emulator_options"]

_MARKER = "runloop_emulator"
Scope = MutableMapping[str, Any]


class _CurrentEmulatorApp:
    """The session server's app: it forwards to the emulator of the test that is running now."""

    def __init__(self) -> None:
        self.target: Callable[[Scope, Any, Any], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        target = self.target
        if target is None:
            if scope["type"] != "http":
                return
            body = b'{"message": "no Runloop emulator is active (the test using it has finished)"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await target(scope, receive, send)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): options for the runloop_emulator fixture (RunloopEmulator keyword arguments)",
    )


@pytest.fixture(scope="session")
def _runloop_emulator_server() -> Iterator[tuple[EmulatorServer, _CurrentEmulatorApp]]:
    from airflow_provider_runloop.testing.server import EmulatorServer

    app = _CurrentEmulatorApp()
    server = EmulatorServer(app)
    server.start()
    try:
        yield server, app
    finally:
        server.stop()


@pytest.fixture
def runloop_emulator_options() -> dict[str, Any]:
    """``RunloopEmulator`` keyword arguments every emulator of the fixtures starts from; override it."""
    return {}


@pytest.fixture
def runloop_emulator(
    request: pytest.FixtureRequest,
    _runloop_emulator_server: tuple[EmulatorServer, _CurrentEmulatorApp],
    runloop_emulator_options: dict[str, Any],
) -> Iterator[RunloopEmulator]:
    """A Runloop emulator on 127.0.0.1 with a manual clock; see the module docstring."""
    from airflow_provider_runloop.testing.clock import ManualClock
    from airflow_provider_runloop.testing.emulator import RunloopEmulator

    marker = request.node.get_closest_marker(_MARKER)
    options: dict[str, Any] = {**runloop_emulator_options, **(marker.kwargs if marker is not None else {})}
    options.setdefault("clock", ManualClock())
    emulator = RunloopEmulator(**options)
    server, app = _runloop_emulator_server
    app.target = emulator.app
    emulator._bind(server.base_url)
    try:
        yield emulator
    finally:
        app.target = None
        emulator._bind(None)


@pytest.fixture
def runloop_emulator_factory(
    runloop_emulator_options: dict[str, Any],
) -> Iterator[Callable[..., RunloopEmulator]]:
    """``factory(**kwargs)``: start another emulator (manual clock unless given) on its own server."""
    from airflow_provider_runloop.testing.clock import ManualClock
    from airflow_provider_runloop.testing.emulator import RunloopEmulator

    started: list[RunloopEmulator] = []

    def factory(**kwargs: Any) -> RunloopEmulator:
        kwargs = {**runloop_emulator_options, **kwargs}
        kwargs.setdefault("clock", ManualClock())
        emulator = RunloopEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    try:
        yield factory
    finally:
        for emulator in started:
            emulator.stop()
