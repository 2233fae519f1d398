"""``RunloopEmulator``: one emulated Runloop API, with its Python control API and (optionally) a server.

Use it three ways::

    # 1. in-process, no socket: hand the ASGI app to httpx
    emulator = RunloopEmulator(clock=ManualClock())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator.app), base_url="http://emulator")

    # 2. over loopback, in a background thread
    with RunloopEmulator(clock=ManualClock()) as emulator:      # 127.0.0.1, free port
        httpx.get(f"{emulator.base_url}/v1/benchmarks", headers=emulator.auth_headers)

    # 3. as the pytest fixture ``runloop_emulator`` (see ``pytest_plugin``), or the CLI (``__main__``)

Drive it from the test: ``seed_benchmark()``, ``start_scripted_run()``, ``advance(seconds)``,
``add_fault(...)``, ``requests()``, ``force_*_state()``; read state with ``benchmark_run_state()`` and
``scenario_run_states()``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_provider_runloop.testing.clock import Clock, RealClock
from airflow_provider_runloop.testing.faults import Fault, FaultInjector
from airflow_provider_runloop.testing.request_log import LoggedRequest, RequestLog
from airflow_provider_runloop.testing.script import DEFAULT_SCRIPT, ScriptSource, load_script
from airflow_provider_runloop.testing.settings import EmulatorSettings
from airflow_provider_runloop.testing.state import EmulatorState

if TYPE_CHECKING:
    from airflow_provider_runloop.testing.server import ASGIApp, EmulatorServer

__all__ = ["AIRFLOW_CONN_ENV", "DEFAULT_API_KEY", "RunloopEmulator", "SeededBenchmark"]

#: The API key an emulator accepts unless told otherwise (it only ever listens on loopback by default).
DEFAULT_API_KEY = "runloop-emulator-key"
#: The environment variable that defines Airflow's default Runloop connection.
AIRFLOW_CONN_ENV = "AIRFLOW_CONN_RUNLOOP_DEFAULT"


@dataclass(frozen=True)
class SeededBenchmark:
    """A benchmark created by :meth:`RunloopEmulator.seed_benchmark`."""

    benchmark_id: str
    name: str
    scenario_ids: tuple[str, ...]


class RunloopEmulator:
    """An emulated Runloop API with a Python control API.

    :param api_key: the bearer key every request must carry.
    :param clock: drives progression; :class:`~.clock.RealClock` by default, use
        :class:`~.clock.ManualClock` in tests and move it with :meth:`advance`.
    :param seed: seeds ids, fault probabilities and scripts that set no seed of their own.
    :param script: the default scenario script (mapping, file path or :class:`~.script.ScenarioScript`); it
        plans scenarios created over the API and benchmarks seeded without a script.
    :param emit_nulls: write ``null`` for optional fields without a value instead of omitting them.
    :param scoring_delay_seconds: fixed delay from ``POST .../score`` to the end of scoring (default: the
        script's ``timing.scoring`` per scenario).
    :param job_concurrency: default ``n_concurrent_trials`` of benchmark jobs.
    :param job_queue_seconds: how long a new job stays ``queued``.
    :param dedupe_request_ids: replay the first response for a repeated ``x-request-id`` on non-GETs.
    :param refuse_repeated_actions: answer 400 to completing a completed run or canceling a canceled one.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        clock: Clock | None = None,
        seed: int = 0,
        script: ScriptSource | None = None,
        emit_nulls: bool = False,
        scoring_delay_seconds: float | None = None,
        job_concurrency: int = 10,
        job_queue_seconds: float = 1.0,
        dedupe_request_ids: bool = False,
        refuse_repeated_actions: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.api_key = api_key
        self.clock: Clock = clock if clock is not None else RealClock()
        self.seed = seed
        self.settings = EmulatorSettings()
        self.settings.update(
            {
                "emit_nulls": emit_nulls,
                "scoring_delay_seconds": scoring_delay_seconds,
                "job_concurrency": job_concurrency,
                "job_queue_seconds": job_queue_seconds,
                "dedupe_request_ids": dedupe_request_ids,
                "refuse_repeated_actions": refuse_repeated_actions,
            }
        )
        self.default_script = load_script(script) if script is not None else DEFAULT_SCRIPT
        self.state = EmulatorState(settings=self.settings, seed=seed, default_script=self.default_script)
        self.faults = FaultInjector(seed)
        self.request_log = RequestLog(self.settings.request_log_limit)
        self._server: EmulatorServer | None = None
        self._base_url: str | None = None

    def __repr__(self) -> str:
        where = self._base_url or "not serving"
        return f"RunloopEmulator({where}, clock={self.clock!r}, seed={self.seed})"

    # ------------------------------------------------------------------------------------------ app

    @cached_property
    def app(self) -> ASGIApp:
        """The ASGI app (built on first use): the ``/v1`` API and ``/_emulator`` control routes."""
        # Imported here: FastAPI costs half a second to import, and most users of this module only
        # need it once they serve requests.
        from airflow_provider_runloop.testing.app import create_api_app
        from airflow_provider_runloop.testing.control_api import control_routes
        from airflow_provider_runloop.testing.gateway import EmulatorGateway

        api = create_api_app(self.state, self.clock, extra_routes=control_routes(self))
        return EmulatorGateway(
            api,
            api_key=self.api_key,
            state=self.state,
            clock=self.clock,
            faults=self.faults,
            request_log=self.request_log,
            settings=self.settings,
        )

    # --------------------------------------------------------------------------------------- server

    def start(self, *, host: str = "127.0.0.1", port: int = 0) -> RunloopEmulator:
        """Serve on ``host:port`` (port 0: a free one) in a background thread; returns ``self``."""
        from airflow_provider_runloop.testing.server import EmulatorServer

        if self._base_url is not None:
            raise RuntimeError(f"this emulator is already serving at {self._base_url}")
        server = EmulatorServer(self.app, host=host, port=port)
        server.start()
        self._server, self._base_url = server, server.base_url
        return self

    def stop(self) -> None:
        """Stop the server started by :meth:`start` (idempotent)."""
        if self._server is not None:
            self._server.stop()
        self._server = None
        self._base_url = None

    def _bind(self, base_url: str | None) -> None:
        # Used by the pytest plugin, which serves many emulators from one shared server.
        self._base_url = base_url

    def __enter__(self) -> RunloopEmulator:
        if self._base_url is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once serving."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not serving; use start(), a with-block or the pytest fixture")
        return self._base_url

    @property
    def airflow_conn_json(self) -> str:
        """The Airflow connection for this emulator, as the JSON value of ``AIRFLOW_CONN_RUNLOOP_DEFAULT``."""
        return json.dumps({"conn_type": "runloop", "host": self.base_url, "password": self.api_key})

    def airflow_env(self, conn_id: str = "runloop_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": <json>}``, ready for ``monkeypatch.setenv`` or a subprocess env."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.airflow_conn_json}

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    # ---------------------------------------------------------------------------------------- clock

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def advance(self, seconds: float) -> int:
        """Move the clock forward by ``seconds``; returns the new time (Unix ms)."""
        with self.state.lock:
            return self.clock.advance(seconds)

    # -------------------------------------------------------------------------------------- control

    def configure(self, **changes: Any) -> None:
        """Change settings while running, e.g. ``configure(emit_nulls=True, scoring_delay_seconds=0)``."""
        with self.state.lock:
            self.settings.update(changes)
            if "request_log_limit" in changes:
                self.request_log.resize(self.settings.request_log_limit)

    def seed_benchmark(
        self, script: ScriptSource | None = None, *, name: str | None = None, public: bool = False
    ) -> SeededBenchmark:
        """Create the script's scenarios (default script if ``None``) and a benchmark holding them."""
        parsed = load_script(script) if script is not None else self.default_script
        with self.state.lock:
            record = self.state.seed_benchmark(
                self.clock.now_ms(), script=parsed, name=name, is_public=True if public else None
            )
            return SeededBenchmark(record.id, record.name, tuple(record.scenario_ids))

    def start_scripted_run(
        self,
        benchmark_id: str | None = None,
        *,
        script: ScriptSource | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        auto_complete: bool = True,
        seed: int | None = None,
    ) -> str:
        """Start an autonomous benchmark run; returns its id.

        Its scenario runs start and progress on the clock as planned by ``script`` (default: the script
        each scenario was seeded with). Without ``benchmark_id`` a benchmark is seeded from ``script``
        first. With ``auto_complete`` the run completes itself once every scenario run is
        lifecycle-over; without it, it stays ``running`` until completed or canceled.
        """
        with self.state.lock:
            now = self.clock.now_ms()
            override = load_script(script) if script is not None else None
            if benchmark_id is None:
                seeded = self.state.seed_benchmark(now, script=override or self.default_script)
                benchmark_id, override = seeded.id, None
            run = self.state.start_scripted_run(
                now,
                benchmark_id=benchmark_id,
                script=override,
                name=name,
                metadata=metadata,
                auto_complete=auto_complete,
                seed=seed,
            )
            return run.id

    def force_benchmark_run_state(self, benchmark_run_id: str, state: str) -> None:
        """End a running benchmark run now as ``failed``, ``canceled`` or ``completed`` (test hook)."""
        with self.state.lock:
            self.state.force_benchmark_run_state(self.clock.now_ms(), benchmark_run_id, state)

    def force_scenario_run_state(self, scenario_run_id: str, state: str) -> None:
        """Move a scenario run now to ``scored``, ``completed``, ``failed``, ``timeout`` or ``canceled``."""
        with self.state.lock:
            self.state.force_scenario_run_state(self.clock.now_ms(), scenario_run_id, state)

    def force_job_state(self, job_id: str, state: str, *, failure_reason: str | None = None) -> None:
        """End a job now as ``failed``, ``cancelled``, ``timeout`` or ``completed`` (test hook)."""
        with self.state.lock:
            self.state.force_job_state(self.clock.now_ms(), job_id, state, failure_reason)

    # --------------------------------------------------------------------------------------- faults

    def add_fault(
        self,
        kind: str,
        *,
        method: str = "*",
        path: str = "*",
        times: int | None = None,
        probability: float | None = None,
        skip: int = 0,
        status: int = 503,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        latency_seconds: float = 0.0,
        message: str | None = None,
        shift: int | None = None,
    ) -> Fault:
        """Add a fault (kinds: see :mod:`.faults`); returns it, with live ``matched``/``fired`` counts."""
        return self.faults.add(
            Fault(
                kind=kind,
                method=method,
                path=path,
                times=times,
                probability=probability,
                skip=skip,
                status=status,
                retry_after=retry_after,
                should_retry=should_retry,
                latency_seconds=latency_seconds,
                message=message,
                shift=shift,
            )
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    # ---------------------------------------------------------------------------------- inspection

    def requests(self, *, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """The API requests seen so far, oldest first; ``path`` is a glob (``*`` spans ``/``)."""
        return self.request_log.entries(method=method, path=path)

    def clear_requests(self) -> None:
        self.request_log.clear()

    def benchmark_run_state(self, benchmark_run_id: str) -> str:
        with self.state.lock:
            now = self.clock.now_ms()
            return self.state.benchmark_run_state(self.state.benchmark_run(benchmark_run_id, now), now)

    def scenario_run_state(self, scenario_run_id: str) -> str:
        with self.state.lock:
            now = self.clock.now_ms()
            return self.state.scenario_run(scenario_run_id, now).state_at(now)

    def scenario_run_states(self, benchmark_run_id: str) -> dict[str, str]:
        """``{scenario_run_id: state}`` for the started scenario runs of a benchmark run."""
        with self.state.lock:
            now = self.clock.now_ms()
            return {r.id: r.state_at(now) for r in self.state.scenario_runs_of(benchmark_run_id, now)}

    def job_state(self, job_id: str) -> str:
        with self.state.lock:
            return self.state.job_state(self.state.job(job_id), self.clock.now_ms())

    def job_benchmark_run_ids(self, job_id: str) -> list[str]:
        """The ids of the benchmark runs a job created (one per agent config), started or not."""
        with self.state.lock:
            return list(self.state.job(job_id).run_ids)
