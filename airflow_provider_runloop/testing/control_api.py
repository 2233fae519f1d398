"""The control API: drive a running emulator over HTTP (for scripts, demos and other processes).

All routes take and return JSON and need the same ``Authorization: Bearer <api key>`` as the API, except
``GET /_emulator/health``. They are neither logged nor subject to faults.

Routes (method, path, what it does):

* ``GET /_emulator/health``: ``{"status": "ok"}``; no auth, for readiness probes.
* ``GET /_emulator/clock``: ``{"now_ms", "clock"}``.
* ``POST /_emulator/clock/advance``: body ``{"seconds": 30}``; returns ``{"now_ms"}``.
* ``GET /_emulator/settings``, ``POST /_emulator/settings``: read or change settings
  (body e.g. ``{"emit_nulls": true, "scoring_delay_seconds": 0}``).
* ``GET /_emulator/faults``: ``{"faults": [...]}`` with their ``matched``/``fired`` counts.
* ``POST /_emulator/faults``: body a fault, e.g. ``{"kind": "status", "status": 429, "retry_after": 1,
  "times": 2, "path": "/v1/benchmark_runs/*"}``; returns it with its ``id``.
* ``DELETE /_emulator/faults``, ``DELETE /_emulator/faults/{id}``: remove all faults, or one.
* ``GET /_emulator/requests``: ``{"requests": [...]}``; query ``method`` and ``path`` (a glob) filter.
* ``DELETE /_emulator/requests``: clear the request log.
* ``POST /_emulator/benchmarks``: body ``{"script"?, "name"?, "public"?}``; seeds scenarios and a benchmark,
  returns ``{"benchmark_id", "name", "scenario_ids"}``.
* ``POST /_emulator/scripted_runs``: body ``{"benchmark_id"?, "script"?, "name"?, "metadata"?,
  "auto_complete"?, "seed"?}``; returns ``{"benchmark_run_id", "benchmark_id"}``.
* ``POST /_emulator/benchmark_runs/{id}/force_state``: body ``{"state": "failed"}``; the BenchmarkRunView.
* ``POST /_emulator/scenario_runs/{id}/force_state``: body ``{"state": "timeout"}``; the ScenarioRunView.
* ``POST /_emulator/benchmark_jobs/{id}/force_state``: body ``{"state", "failure_reason"?}``; the job view.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from airflow_provider_runloop.testing import bodies, views
from airflow_provider_runloop.testing.app import json_response
from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.faults import Fault
from airflow_provider_runloop.testing.script import ScriptError, load_script

if TYPE_CHECKING:
    from airflow_provider_runloop.testing.emulator import RunloopEmulator

__all__ = ["control_routes"]

Handler = Callable[[Request], Awaitable[Response]]


def _script_of(body: dict[str, Any]) -> Any:
    script = bodies.optional_object(body, "script")
    if script is None:
        return None
    try:
        return load_script(script)
    except ScriptError as error:
        raise ApiError.bad_request(f"invalid script: {error}") from error


def control_routes(emulator: RunloopEmulator) -> list[tuple[str, str, Handler]]:
    """The ``/_emulator`` routes of ``emulator``, as ``(method, path, handler)``."""

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def get_clock(request: Request) -> Response:
        return json_response({"now_ms": emulator.now_ms(), "clock": type(emulator.clock).__name__})

    async def advance_clock(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ApiError.bad_request("seconds must be a non-negative number")
        return json_response({"now_ms": emulator.advance(seconds)})

    async def get_settings(request: Request) -> Response:
        return json_response(emulator.settings.as_dict())

    async def update_settings(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        try:
            emulator.configure(**body)
        except ValueError as error:
            raise ApiError.bad_request(str(error)) from error
        return json_response(emulator.settings.as_dict())

    async def list_faults(request: Request) -> Response:
        return json_response({"faults": [fault.as_dict() for fault in emulator.faults.list()]})

    async def add_fault(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        try:
            fault = emulator.faults.add(Fault.from_mapping(body))
        except ValueError as error:
            raise ApiError.bad_request(str(error)) from error
        return json_response(fault.as_dict())

    async def clear_faults(request: Request) -> Response:
        emulator.faults.clear()
        return json_response({"faults": []})

    async def remove_fault(request: Request) -> Response:
        fault_id = request.path_params["id"]
        if not emulator.faults.remove(fault_id):
            raise ApiError.not_found("Fault", fault_id)
        return json_response({"deleted": fault_id})

    async def list_requests(request: Request) -> Response:
        entries = emulator.requests(
            method=bodies.query_value(request.query_params, "method"),
            path=bodies.query_value(request.query_params, "path"),
        )
        return json_response({"requests": [entry.as_dict() for entry in entries]})

    async def clear_requests(request: Request) -> Response:
        emulator.clear_requests()
        return json_response({"requests": []})

    async def seed_benchmark(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        seeded = emulator.seed_benchmark(
            _script_of(body),
            name=bodies.optional_str(body, "name"),
            public=bool(bodies.optional_bool(body, "public")),
        )
        return json_response(
            {
                "benchmark_id": seeded.benchmark_id,
                "name": seeded.name,
                "scenario_ids": list(seeded.scenario_ids),
            }
        )

    async def start_scripted_run(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        auto_complete = bodies.optional_bool(body, "auto_complete")
        run_id = emulator.start_scripted_run(
            bodies.optional_str(body, "benchmark_id"),
            script=_script_of(body),
            name=bodies.optional_str(body, "name"),
            metadata=bodies.optional_str_map(body, "metadata"),
            auto_complete=True if auto_complete is None else auto_complete,
            seed=bodies.optional_int(body, "seed"),
        )
        with emulator.state.lock:
            run = emulator.state.benchmark_run(run_id, emulator.now_ms())
            return json_response({"benchmark_run_id": run.id, "benchmark_id": run.benchmark_id})

    async def force_benchmark_run(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        run_id = request.path_params["id"]
        emulator.force_benchmark_run_state(run_id, bodies.required_str(body, "state"))
        with emulator.state.lock:
            now = emulator.now_ms()
            run = emulator.state.benchmark_run(run_id, now)
            return json_response(
                views.benchmark_run_view(run, now, emulator.state, emit_nulls=emulator.settings.emit_nulls)
            )

    async def force_scenario_run(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        run_id = request.path_params["id"]
        emulator.force_scenario_run_state(run_id, bodies.required_str(body, "state"))
        with emulator.state.lock:
            now = emulator.now_ms()
            record = emulator.state.scenario_run(run_id, now)
            return json_response(
                views.scenario_run_view(record, now, emit_nulls=emulator.settings.emit_nulls)
            )

    async def force_job(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        job_id = request.path_params["id"]
        emulator.force_job_state(
            job_id,
            bodies.required_str(body, "state"),
            failure_reason=bodies.optional_str(body, "failure_reason"),
        )
        with emulator.state.lock:
            now = emulator.now_ms()
            job = emulator.state.job(job_id)
            return json_response(
                views.benchmark_job_view(job, now, emulator.state, emit_nulls=emulator.settings.emit_nulls)
            )

    return [
        ("GET", "/_emulator/health", health),
        ("GET", "/_emulator/clock", get_clock),
        ("POST", "/_emulator/clock/advance", advance_clock),
        ("GET", "/_emulator/settings", get_settings),
        ("POST", "/_emulator/settings", update_settings),
        ("GET", "/_emulator/faults", list_faults),
        ("POST", "/_emulator/faults", add_fault),
        ("DELETE", "/_emulator/faults", clear_faults),
        ("DELETE", "/_emulator/faults/{id}", remove_fault),
        ("GET", "/_emulator/requests", list_requests),
        ("DELETE", "/_emulator/requests", clear_requests),
        ("POST", "/_emulator/benchmarks", seed_benchmark),
        ("POST", "/_emulator/scripted_runs", start_scripted_run),
        ("POST", "/_emulator/benchmark_runs/{id}/force_state", force_benchmark_run),
        ("POST", "/_emulator/scenario_runs/{id}/force_state", force_scenario_run),
        ("POST", "/_emulator/benchmark_jobs/{id}/force_state", force_job),
    ]
