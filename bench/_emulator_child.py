"""Shared by the bench scripts: the emulator in a child process, behind a counting ASGI wrapper.

The parent calls :func:`emulator_child` with the scripted runs it wants; the child (this file run as a
script, the spec as its one JSON argument) builds ``RunloopEmulator(clock=ManualClock())``, seeds one
benchmark per entry and starts its scripted runs, advances the clock once by ``advance`` seconds (so
the runs are mid-way: most scenario runs running) and never again, so every poll during a measurement
is a steady poll. It serves ``EmulatorServer(CountingApp(emulator.app))`` on 127.0.0.1, port 0, prints
one JSON line (``base_url``, ``api_key``, ``runs``: one list of run ids per entry) and serves until
SIGTERM.

The wrapper counts requests, response-body bytes, requests per route (ids replaced by ``{id}``, query
string dropped: ``GET /v1/benchmark_runs/{id}`` is one per poll) and distinct client connections, and
answers two paths itself, uncounted: ``GET /__bench__/stats`` (the counters, JSON) and
``POST /__bench__/reset``; the stats also hold the last 50 requests as sent (``recent``: method,
path and query), for a floor to replay. *Connections* are the distinct ``scope["client"]`` (host,
port) pairs seen since the last reset: an approximation, since a client port reused by a later
connection counts once (a lower bound; exact while fewer connections are opened than there are
ephemeral ports).

The emulator runs in its own process so that its CPU, memory and GIL are not the measured process's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
STATS_PATH = "/__bench__/stats"
RESET_PATH = "/__bench__/reset"
RECENT = 50

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

# An emulator id: prefix, underscore, 21 base-62 characters (airflow_provider_runloop/testing/ids.py).
_ID_SEGMENT = re.compile(r"/[a-z]{3}_[0-9A-Za-z]{21}(?=/|$)")


def route_of(method: str, path: str) -> str:
    """``GET /v1/benchmark_runs/{id}`` for ``GET /v1/benchmark_runs/bmr_...``."""
    return f"{method} {_ID_SEGMENT.sub('/{id}', path)}"


def mid_way_script(scenario_count: int, seed: int = 1) -> dict[str, Any]:
    """A script whose run, 20 s after its start (``advance=20``), has every scenario run started and
    most of them still running (durations 10 to 300 s; about 3 % finished or scoring)."""
    return {
        "scenario_count": scenario_count,
        "seed": seed,
        "timing": {"start_interval": 0, "duration": [10, 300], "scoring": 1, "complete": 1},
    }


# --- child ---------------------------------------------------------------------------------------------


class CountingApp:
    """Counts what it serves; answers the ``/__bench__/`` paths itself (not counted)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.requests = 0
        self.body_bytes = 0
        self.routes: Counter[str] = Counter()
        self.clients: set[tuple[str, int]] = set()
        self.recent: list[str] = []  # the last RECENT requests, "METHOD /path?query"

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "body_bytes": self.body_bytes,
                "connections": len(self.clients),
                "routes": dict(self.routes),
                "recent": list(self.recent),
            }

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        if path in (STATS_PATH, RESET_PATH):
            if path == RESET_PATH:
                with self._lock:
                    self._reset()
            body = json.dumps(self.stats()).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        client = scope.get("client")
        with self._lock:
            self.requests += 1
            self.routes[route_of(scope["method"], path)] += 1
            query = scope.get("query_string", b"").decode("latin-1")
            self.recent.append(f"{scope['method']} {path}{'?' + query if query else ''}")
            del self.recent[:-RECENT]
            if client:
                self.clients.add((client[0], client[1]))

        async def counting_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body":
                size = len(message.get("body", b""))
                with self._lock:
                    self.body_bytes += size
            await send(message)

        await self._app(scope, receive, counting_send)


def _child_main(spec: dict[str, Any]) -> None:
    from airflow_provider_runloop.testing import EmulatorServer, ManualClock, RunloopEmulator

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())

    emulator = RunloopEmulator(clock=ManualClock(), seed=spec.get("seed", 1))
    runs: list[list[str]] = []
    for entry in spec["benchmarks"]:
        benchmark = emulator.seed_benchmark(entry["script"])
        runs.append(
            [emulator.start_scripted_run(benchmark.benchmark_id) for _ in range(entry.get("runs", 1))]
        )
    emulator.advance(spec.get("advance", 20))  # the only time the clock moves
    states = Counter(
        state for ids in runs for run_id in ids for state in emulator.scenario_run_states(run_id).values()
    )
    server = EmulatorServer(CountingApp(emulator.app))
    server.start()
    try:
        ready = {
            "base_url": server.base_url,
            "api_key": emulator.api_key,
            "runs": runs,
            "scenario_run_states": dict(states),
            "pid": os.getpid(),
        }
        print(json.dumps(ready), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()


# --- parent --------------------------------------------------------------------------------------------


@dataclass
class EmulatorChild:
    """The running child: where it serves, its runs, and its counters."""

    base_url: str
    api_key: str
    runs: list[list[str]]
    scenario_run_states: dict[str, int]
    process: subprocess.Popen[str]

    @property
    def run_ids(self) -> list[str]:
        return [run_id for ids in self.runs for run_id in ids]

    @property
    def airflow_conn_json(self) -> str:
        return json.dumps({"conn_type": "runloop", "host": self.base_url, "password": self.api_key})

    def set_airflow_conn(self, conn_id: str = "runloop_default") -> None:
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = self.airflow_conn_json

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(self.base_url + STATS_PATH, timeout=30).json()
        return result

    def reset(self) -> dict[str, Any]:
        """Zero the counters (returns the zeroed counters)."""
        result: dict[str, Any] = httpx.post(self.base_url + RESET_PATH, timeout=30).json()
        return result


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def emulator_child(
    benchmarks: list[dict[str, Any]], *, advance: float = 20, seed: int = 1, timeout: float = 600
) -> Iterator[EmulatorChild]:
    """Start the child; ``benchmarks``: ``[{"script": {...}, "runs": 1}, ...]``. Stopped on exit.

    ``timeout``: how long seeding may take before the child is given up on.
    """
    spec = {"benchmarks": benchmarks, "advance": advance, "seed": seed}
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = _readline(process, timeout)
        ready = json.loads(line)
        yield EmulatorChild(
            ready["base_url"], ready["api_key"], ready["runs"], ready["scenario_run_states"], process
        )
    finally:
        _stop(process)


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not result or not result[0].strip():
        status = process.poll()
        raise RuntimeError(f"the emulator child gave no ready line within {timeout} s (exit {status})")
    return result[0]


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
