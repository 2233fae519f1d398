"""A local Runloop API emulator for demos, tests and DAG authors' own tests (no API key needed).

It serves the benchmark, benchmark-run, benchmark-job, scenario and scenario-run API described by the
OpenAPI spec it ships (``airflow_provider_runloop/testing/openapi/runloop-benchmarks.yml``, installed with
the package) with the lifecycle rules of the real service, progresses runs on a clock you control,
injects faults on demand and logs every request. The guide is ``docs/emulator.md`` in the provider's
repository. Start it as:

* ``python -m airflow_provider_runloop.testing`` (CLI; prints the Airflow connection to use),
* the pytest fixture ``runloop_emulator`` (registered automatically when the provider is installed),
* ``RunloopEmulator()`` in Python: ``.app`` for ``httpx.ASGITransport``, or ``with RunloopEmulator() as e``
  to serve it on 127.0.0.1.

Names are imported lazily so that ``import airflow_provider_runloop.testing`` (which pytest does for the
plugin in every test session) stays cheap; FastAPI and Hypercorn load only when an emulator serves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_runloop.testing.clock import Clock, ManualClock, RealClock
    from airflow_provider_runloop.testing.emulator import (
        AIRFLOW_CONN_ENV,
        DEFAULT_API_KEY,
        RunloopEmulator,
        SeededBenchmark,
    )
    from airflow_provider_runloop.testing.faults import FAULT_KINDS, Fault
    from airflow_provider_runloop.testing.request_log import LoggedRequest
    from airflow_provider_runloop.testing.script import (
        DEFAULT_SCRIPT,
        ScenarioScript,
        ScriptError,
        load_script,
        quick_script,
    )
    from airflow_provider_runloop.testing.server import EmulatorServer
    from airflow_provider_runloop.testing.settings import EmulatorSettings

__all__ = [
    "AIRFLOW_CONN_ENV",
    "DEFAULT_API_KEY",
    "DEFAULT_SCRIPT",
    "FAULT_KINDS",
    "Clock",
    "EmulatorServer",
    "EmulatorSettings",
    "Fault",
    "LoggedRequest",
    "ManualClock",
    "RealClock",
    "RunloopEmulator",
    "ScenarioScript",
    "ScriptError",
    "SeededBenchmark",
    "load_script",
    "quick_script",
]

_HOMES = {
    "Clock": "clock",
    "ManualClock": "clock",
    "RealClock": "clock",
    "AIRFLOW_CONN_ENV": "emulator",
    "DEFAULT_API_KEY": "emulator",
    "RunloopEmulator": "emulator",
    "SeededBenchmark": "emulator",
    "FAULT_KINDS": "faults",
    "Fault": "faults",
    "LoggedRequest": "request_log",
    "DEFAULT_SCRIPT": "script",
    "ScenarioScript": "script",
    "ScriptError": "script",
    "load_script": "script",
    "quick_script": "script",
    "EmulatorServer": "server",
    "EmulatorSettings": "settings",
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
