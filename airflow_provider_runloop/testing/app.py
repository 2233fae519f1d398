"""The emulated Runloop REST API (``/v1/...``) as a FastAPI app.

Routes are those of the spec the package ships (``openapi/runloop-benchmarks.yml``; the list is in
``docs/emulator.md#what-it-serves``); literal paths (``start_run``, ``list_public``, ``metadata``, ``runs``)
are registered before the ``{id}`` paths they share a level with. A route whose request body the spec
describes checks the body against it first (:mod:`.request_validation`), so a handler only ever sees a
body the spec allows; handlers then parse requests themselves (:mod:`.bodies`) and write pre-encoded
JSON (:mod:`.views`), skipping FastAPI's response-model path, which would be far too slow for
5,000-item pages. Authentication, faults and the request log live in
the gateway in front of this app (:mod:`.gateway`).

Not served: the deprecated ``/v1/benchmarks/runs/...`` family (gone from the SDK), scorer CRUD, and
``GET /v1/scenarios/{id}/runs`` (the spec declares its response as a single ScenarioDefinitionView,
which cannot be right; use ``GET /v1/scenarios/runs?scenario_id=``).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_runloop.testing import bodies, request_validation, views
from airflow_provider_runloop.testing.clock import Clock
from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.records import Page
from airflow_provider_runloop.testing.state import EmulatorState

__all__ = ["create_api_app", "error_response", "json_response"]

Handler = Callable[[Request], Awaitable[Response]]


def json_response(view: Any, status_code: int = 200) -> Response:
    return Response(content=views.encode(view), status_code=status_code, media_type="application/json")


def error_response(status_code: int, message: str) -> Response:
    """The error body shape the emulator always uses.

    Unverified choice 16 in ``docs/emulator.md#choices-where-the-real-api-is-unverified``.
    """
    return json_response({"message": message}, status_code)


def _zip_response(filename: str, text: str) -> Response:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("logs.txt", text)
    return Response(
        content=buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


class _RunloopApi:
    """The route handlers; each holds the state lock while it acts and serialises."""

    def __init__(self, state: EmulatorState, clock: Clock) -> None:
        self.state = state
        self.clock = clock

    @property
    def emit_nulls(self) -> bool:
        return self.state.settings.emit_nulls

    def _list(self, key: str, page: Page[Any], render: Callable[[Any], dict[str, Any]]) -> Response:
        items = [render(item) for item in page.items]
        return json_response(views.list_view(key, page, items, emit_nulls=self.emit_nulls))

    # ------------------------------------------------------------------------------------ benchmarks

    async def create_benchmark(self, request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        name = bodies.required_str(body, "name")
        scenario_ids = bodies.optional_str_list(body, "scenario_ids")
        metadata = bodies.optional_str_map(body, "metadata")
        attribution = bodies.optional_str(body, "attribution")
        description = bodies.optional_str(body, "description")
        required_env = bodies.optional_str_list(body, "required_environment_variables")
        required_secrets = bodies.optional_str_list(body, "required_secret_names")
        with self.state.lock:
            record = self.state.create_benchmark(
                self.clock.now_ms(),
                name=name,
                scenario_ids=scenario_ids,
                metadata=metadata,
                attribution=attribution,
                description=description,
                required_environment_variables=required_env,
                required_secret_names=required_secrets,
            )
            return json_response(views.benchmark_view(record, emit_nulls=self.emit_nulls))

    async def get_benchmark(self, request: Request) -> Response:
        with self.state.lock:
            record = self.state.benchmark(request.path_params["id"])
            return json_response(views.benchmark_view(record, emit_nulls=self.emit_nulls))

    async def update_benchmark(self, request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        changes: dict[str, Any] = {
            "name": bodies.optional_str(body, "name"),
            "scenario_ids": bodies.optional_str_list(body, "scenario_ids"),
            "metadata": bodies.optional_str_map(body, "metadata"),
            "required_environment_variables": bodies.optional_str_list(
                body, "required_environment_variables"
            ),
            "required_secret_names": bodies.optional_str_list(body, "required_secret_names"),
            "attribution": bodies.optional_str(body, "attribution"),
            "description": bodies.optional_str(body, "description"),
        }
        changes = {key: value for key, value in changes.items() if value is not None}
        for key in ("attribution", "description"):  # "Pass in empty string to clear"
            if changes.get(key) == "":
                changes[key] = None
        with self.state.lock:
            record = self.state.update_benchmark(request.path_params["id"], changes)
            return json_response(views.benchmark_view(record, emit_nulls=self.emit_nulls))

    async def update_benchmark_scenarios(self, request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        add = bodies.optional_str_list(body, "scenarios_to_add") or []
        remove = bodies.optional_str_list(body, "scenarios_to_remove") or []
        with self.state.lock:
            record = self.state.update_benchmark_scenarios(request.path_params["id"], add=add, remove=remove)
            return json_response(views.benchmark_view(record, emit_nulls=self.emit_nulls))

    async def archive_benchmark(self, request: Request) -> Response:
        return await self._set_benchmark_archived(request, archived=True)

    async def unarchive_benchmark(self, request: Request) -> Response:
        return await self._set_benchmark_archived(request, archived=False)

    async def _set_benchmark_archived(self, request: Request, *, archived: bool) -> Response:
        with self.state.lock:
            record = self.state.set_benchmark_archived(request.path_params["id"], archived)
            return json_response(views.benchmark_view(record, emit_nulls=self.emit_nulls))

    async def list_benchmarks(self, request: Request) -> Response:
        return self._list_benchmarks(request, public_only=False)

    async def list_public_benchmarks(self, request: Request) -> Response:
        return self._list_benchmarks(request, public_only=True)

    def _list_benchmarks(self, request: Request, *, public_only: bool) -> Response:
        query = request.query_params
        page = bodies.page_request(query)
        with self.state.lock:
            result = self.state.list_benchmarks(
                self.clock.now_ms(),
                page,
                name=bodies.query_value(query, "name"),
                search=bodies.query_value(query, "search"),
                public_only=public_only,
            )
            return self._list(
                "benchmarks", result, lambda b: views.benchmark_view(b, emit_nulls=self.emit_nulls)
            )

    async def benchmark_definitions(self, request: Request) -> Response:
        # `definitions` takes no include_total_count: the count is always included.
        page = bodies.page_request(request.query_params, allow_total_count=False)
        with self.state.lock:
            result = self.state.benchmark_definitions(self.clock.now_ms(), request.path_params["id"], page)
            return self._list(
                "scenarios", result, lambda s: views.scenario_view(s, emit_nulls=self.emit_nulls)
            )

    async def benchmark_runs_of_benchmark(self, request: Request) -> Response:
        page = bodies.page_request(request.query_params)
        with self.state.lock:
            benchmark = self.state.benchmark(request.path_params["id"])
            now = self.clock.now_ms()
            result = self.state.list_benchmark_runs(now, page, benchmark_id=benchmark.id)
            return self._list("runs", result, lambda r: self._benchmark_run_view(r, now))

    async def start_benchmark_run(self, request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        benchmark_id = bodies.required_str(body, "benchmark_id")
        run_name = bodies.optional_str(body, "run_name")
        metadata = bodies.optional_str_map(body, "metadata")
        profile = bodies.run_profile(body)
        with self.state.lock:
            now = self.clock.now_ms()
            run = self.state.start_benchmark_run(
                now, benchmark_id=benchmark_id, run_name=run_name, metadata=metadata, profile=profile
            )
            return json_response(self._benchmark_run_view(run, now))

    async def benchmark_metadata_keys(self, request: Request) -> Response:
        with self.state.lock:
            return json_response({"keys": self.state.metadata_keys("benchmarks")})

    async def benchmark_metadata_values(self, request: Request) -> Response:
        key = request.path_params["key"]
        with self.state.lock:
            return json_response({"key": key, "values": self.state.metadata_values("benchmarks", key)})

    # -------------------------------------------------------------------------------- benchmark runs

    def _benchmark_run_view(self, run: Any, now: int) -> dict[str, Any]:
        return views.benchmark_run_view(run, now, self.state, emit_nulls=self.emit_nulls)

    async def get_benchmark_run(self, request: Request) -> Response:
        with self.state.lock:
            now = self.clock.now_ms()
            run = self.state.benchmark_run(request.path_params["id"], now)
            return json_response(self._benchmark_run_view(run, now))

    async def list_benchmark_runs(self, request: Request) -> Response:
        query = request.query_params
        page = bodies.page_request(query)
        with self.state.lock:
            now = self.clock.now_ms()
            result = self.state.list_benchmark_runs(
                now,
                page,
                benchmark_id=bodies.query_value(query, "benchmark_id"),
                name=bodies.query_value(query, "name"),
                search=bodies.query_value(query, "search"),
                state=bodies.query_value(query, "state"),
            )
            return self._list("runs", result, lambda r: self._benchmark_run_view(r, now))

    async def cancel_benchmark_run(self, request: Request) -> Response:
        return await self._benchmark_run_action(request, self.state.cancel_benchmark_run)

    async def complete_benchmark_run(self, request: Request) -> Response:
        return await self._benchmark_run_action(request, self.state.complete_benchmark_run)

    async def _benchmark_run_action(self, request: Request, action: Callable[[int, str], Any]) -> Response:
        bodies.parse_json_body(await request.body())  # no body, {} and null are all fine
        with self.state.lock:
            now = self.clock.now_ms()
            run = action(now, request.path_params["id"])
            return json_response(self._benchmark_run_view(run, now))

    async def benchmark_run_scenario_runs(self, request: Request) -> Response:
        query = request.query_params
        page = bodies.page_request(query)
        with self.state.lock:
            now = self.clock.now_ms()
            result = self.state.list_benchmark_run_scenario_runs(
                now,
                request.path_params["id"],
                page,
                state=bodies.query_value(query, "state"),
                search=bodies.query_value(query, "search"),
            )
            return self._scenario_run_list(result, now)

    def _scenario_run_list(self, result: Page[Any], now: int) -> Response:
        emit_nulls = self.emit_nulls
        return self._list("runs", result, lambda r: views.scenario_run_view(r, now, emit_nulls=emit_nulls))

    async def download_benchmark_run_logs(self, request: Request) -> Response:
        with self.state.lock:
            run = self.state.benchmark_run(request.path_params["id"], self.clock.now_ms())
        return _zip_response("benchmark_run_logs.zip", f"[emulated] logs of benchmark run {run.id}\n")

    # ---------------------------------------------------------------------------------------- jobs

    async def create_job(self, request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        name = bodies.optional_str(body, "name")
        spec = bodies.job_spec(body)
        with self.state.lock:
            now = self.clock.now_ms()
            job = self.state.create_job(now, name=name, spec=spec)
            return json_response(views.benchmark_job_view(job, now, self.state, emit_nulls=self.emit_nulls))

    async def get_job(self, request: Request) -> Response:
        with self.state.lock:
            now = self.clock.now_ms()
            job = self.state.job(request.path_params["id"])
            return json_response(views.benchmark_job_view(job, now, self.state, emit_nulls=self.emit_nulls))

    async def list_jobs(self, request: Request) -> Response:
        query = request.query_params
        page = bodies.page_request(query)
        with self.state.lock:
            now = self.clock.now_ms()
            result = self.state.list_jobs(
                now, page, name=bodies.query_value(query, "name"), search=bodies.query_value(query, "search")
            )
            return self._list(
                "jobs",
                result,
                lambda j: views.benchmark_job_view(j, now, self.state, emit_nulls=self.emit_nulls),
            )

    # ------------------------------------------------------------------------------------ scenarios

    def _scenario_args(self, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        validation_type = bodies.optional_str(body, "validation_type")
        scorer_timeout = bodies.optional_int(body, "scorer_timeout_sec")
        if scorer_timeout is not None and scorer_timeout <= 0:
            raise ApiError.bad_request("scorer_timeout_sec must be positive")
        return {
            "name": bodies.required_str(body, "name") if creating else bodies.optional_str(body, "name"),
            "input_context": bodies.input_context(body.get("input_context"), required=creating),
            "scoring_contract": bodies.scoring_contract(body.get("scoring_contract"), required=creating),
            "environment": bodies.environment(body.get("environment_parameters")),
            "metadata": bodies.optional_str_map(body, "metadata"),
            "reference_output": bodies.optional_str(body, "reference_output"),
            "required_environment_variables": bodies.optional_str_list(
                body, "required_environment_variables"
            ),
            "required_secret_names": bodies.optional_str_list(body, "required_secret_names"),
            "validation_type": validation_type,
            "scorer_timeout_sec": scorer_timeout,
        }

    async def create_scenario(self, request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        args = self._scenario_args(body, creating=True)
        args["validation_type"] = args["validation_type"] or None
        with self.state.lock:
            record = self.state.create_scenario(self.clock.now_ms(), **args)
            return json_response(views.scenario_view(record, emit_nulls=self.emit_nulls))

    async def update_scenario(self, request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        changes = {
            key: value
            for key, value in self._scenario_args(body, creating=False).items()
            if value is not None
        }
        for key in ("reference_output", "validation_type"):  # "Pass in empty string to clear"
            if changes.get(key) == "":
                changes[key] = None
        with self.state.lock:
            scenario = self.state.scenario(request.path_params["id"])
            if "input_context" in changes:  # a partial update keeps the required problem_statement
                changes["input_context"] = {**scenario.input_context, **changes["input_context"]}
            record = self.state.update_scenario(scenario.id, changes)
            return json_response(views.scenario_view(record, emit_nulls=self.emit_nulls))

    async def get_scenario(self, request: Request) -> Response:
        with self.state.lock:
            record = self.state.scenario(request.path_params["id"])
            return json_response(views.scenario_view(record, emit_nulls=self.emit_nulls))

    async def archive_scenario(self, request: Request) -> Response:
        return await self._set_scenario_archived(request, archived=True)

    async def unarchive_scenario(self, request: Request) -> Response:
        return await self._set_scenario_archived(request, archived=False)

    async def _set_scenario_archived(self, request: Request, *, archived: bool) -> Response:
        with self.state.lock:
            record = self.state.set_scenario_archived(request.path_params["id"], archived)
            return json_response(views.scenario_view(record, emit_nulls=self.emit_nulls))

    async def list_scenarios(self, request: Request) -> Response:
        return self._list_scenarios(request, public_only=False)

    async def list_public_scenarios(self, request: Request) -> Response:
        return self._list_scenarios(request, public_only=True)

    def _list_scenarios(self, request: Request, *, public_only: bool) -> Response:
        query = request.query_params
        page = bodies.page_request(query)
        with self.state.lock:
            result = self.state.list_scenarios(
                self.clock.now_ms(),
                page,
                benchmark_id=None if public_only else bodies.query_value(query, "benchmark_id"),
                name=bodies.query_value(query, "name"),
                search=bodies.query_value(query, "search"),
                validation_type=None if public_only else bodies.query_value(query, "validation_type"),
                public_only=public_only,
            )
            return self._list(
                "scenarios", result, lambda s: views.scenario_view(s, emit_nulls=self.emit_nulls)
            )

    async def scenario_metadata_keys(self, request: Request) -> Response:
        with self.state.lock:
            return json_response({"keys": self.state.metadata_keys("scenarios")})

    async def scenario_metadata_values(self, request: Request) -> Response:
        key = request.path_params["key"]
        with self.state.lock:
            return json_response({"key": key, "values": self.state.metadata_values("scenarios", key)})

    # -------------------------------------------------------------------------------- scenario runs

    async def start_scenario_run(self, request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())
        scenario_id = bodies.required_str(body, "scenario_id")
        benchmark_run_id = bodies.optional_str(body, "benchmark_run_id")
        run_name = bodies.optional_str(body, "run_name")
        metadata = bodies.optional_str_map(body, "metadata")
        profile = bodies.run_profile(body)
        with self.state.lock:
            now = self.clock.now_ms()
            record = self.state.start_scenario_run(
                now,
                scenario_id=scenario_id,
                benchmark_run_id=benchmark_run_id,
                run_name=run_name,
                metadata=metadata,
                profile=profile,
            )
            return json_response(views.scenario_run_view(record, now, emit_nulls=self.emit_nulls))

    async def get_scenario_run(self, request: Request) -> Response:
        with self.state.lock:
            now = self.clock.now_ms()
            record = self.state.scenario_run(request.path_params["id"], now)
            return json_response(views.scenario_run_view(record, now, emit_nulls=self.emit_nulls))

    async def list_scenario_runs(self, request: Request) -> Response:
        query = request.query_params
        page = bodies.page_request(query)
        with self.state.lock:
            now = self.clock.now_ms()
            result = self.state.list_scenario_runs(
                now,
                page,
                benchmark_run_id=bodies.query_value(query, "benchmark_run_id"),
                scenario_id=bodies.query_value(query, "scenario_id"),
                name=bodies.query_value(query, "name"),
                search=bodies.query_value(query, "search"),
                state=bodies.query_value(query, "state"),
            )
            return self._scenario_run_list(result, now)

    async def score_scenario_run(self, request: Request) -> Response:
        return await self._scenario_run_action(request, self.state.score_scenario_run)

    async def complete_scenario_run(self, request: Request) -> Response:
        return await self._scenario_run_action(request, self.state.complete_scenario_run)

    async def cancel_scenario_run(self, request: Request) -> Response:
        return await self._scenario_run_action(request, self.state.cancel_scenario_run)

    async def _scenario_run_action(self, request: Request, action: Callable[[int, str], Any]) -> Response:
        bodies.parse_json_body(await request.body())
        with self.state.lock:
            now = self.clock.now_ms()
            record = action(now, request.path_params["id"])
            return json_response(views.scenario_run_view(record, now, emit_nulls=self.emit_nulls))

    async def download_scenario_run_logs(self, request: Request) -> Response:
        with self.state.lock:
            record = self.state.scenario_run(request.path_params["id"], self.clock.now_ms())
        return _zip_response("scenario_run_logs.zip", f"[emulated] devbox {record.devbox_id} logs\n")

    # --------------------------------------------------------------------------------------- routes

    def routes(self) -> list[tuple[str, str, Handler]]:
        """``(method, path, handler)`` in matching order: literal segments before ``{id}``."""
        return [
            ("POST", "/v1/benchmarks", self.create_benchmark),
            ("GET", "/v1/benchmarks", self.list_benchmarks),
            ("GET", "/v1/benchmarks/list_public", self.list_public_benchmarks),
            ("POST", "/v1/benchmarks/start_run", self.start_benchmark_run),
            ("GET", "/v1/benchmarks/metadata/keys", self.benchmark_metadata_keys),
            ("GET", "/v1/benchmarks/metadata/keys/{key}/values", self.benchmark_metadata_values),
            ("GET", "/v1/benchmarks/{id}", self.get_benchmark),
            ("POST", "/v1/benchmarks/{id}", self.update_benchmark),
            ("GET", "/v1/benchmarks/{id}/definitions", self.benchmark_definitions),
            ("GET", "/v1/benchmarks/{id}/runs", self.benchmark_runs_of_benchmark),
            ("POST", "/v1/benchmarks/{id}/scenarios", self.update_benchmark_scenarios),
            ("POST", "/v1/benchmarks/{id}/archive", self.archive_benchmark),
            ("POST", "/v1/benchmarks/{id}/unarchive", self.unarchive_benchmark),
            ("GET", "/v1/benchmark_runs", self.list_benchmark_runs),
            ("GET", "/v1/benchmark_runs/{id}", self.get_benchmark_run),
            ("POST", "/v1/benchmark_runs/{id}/cancel", self.cancel_benchmark_run),
            ("POST", "/v1/benchmark_runs/{id}/complete", self.complete_benchmark_run),
            ("GET", "/v1/benchmark_runs/{id}/scenario_runs", self.benchmark_run_scenario_runs),
            ("POST", "/v1/benchmark_runs/{id}/download_logs", self.download_benchmark_run_logs),
            ("POST", "/v1/benchmark_jobs", self.create_job),
            ("GET", "/v1/benchmark_jobs", self.list_jobs),
            ("GET", "/v1/benchmark_jobs/{id}", self.get_job),
            ("POST", "/v1/scenarios", self.create_scenario),
            ("GET", "/v1/scenarios", self.list_scenarios),
            ("GET", "/v1/scenarios/list_public", self.list_public_scenarios),
            ("POST", "/v1/scenarios/start_run", self.start_scenario_run),
            ("GET", "/v1/scenarios/metadata/keys", self.scenario_metadata_keys),
            ("GET", "/v1/scenarios/metadata/keys/{key}/values", self.scenario_metadata_values),
            ("GET", "/v1/scenarios/runs", self.list_scenario_runs),
            ("GET", "/v1/scenarios/runs/{id}", self.get_scenario_run),
            ("POST", "/v1/scenarios/runs/{id}/score", self.score_scenario_run),
            ("POST", "/v1/scenarios/runs/{id}/complete", self.complete_scenario_run),
            ("POST", "/v1/scenarios/runs/{id}/cancel", self.cancel_scenario_run),
            ("POST", "/v1/scenarios/runs/{id}/download_logs", self.download_scenario_run_logs),
            ("GET", "/v1/scenarios/{id}", self.get_scenario),
            ("POST", "/v1/scenarios/{id}", self.update_scenario),
            ("POST", "/v1/scenarios/{id}/archive", self.archive_scenario),
            ("POST", "/v1/scenarios/{id}/unarchive", self.unarchive_scenario),
        ]


async def _api_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error.status_code, error.message)


async def _http_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    return error_response(error.status_code, f"{error.detail}: {request.method} {request.url.path}")


def _checking_body(method: str, path: str, handler: Handler) -> Handler:
    """``handler``, behind a check of the request body against the spec (400 before any state change)."""

    async def checked(request: Request) -> Response:
        body = bodies.parse_json_body(await request.body())  # Starlette keeps the bytes for the handler
        request_validation.validate_request_body(method, path, body)
        return await handler(request)

    return checked


def create_api_app(
    state: EmulatorState, clock: Clock, *, extra_routes: Sequence[tuple[str, str, Handler]] = ()
) -> FastAPI:
    """A FastAPI app serving the ``/v1`` API over ``state`` (plus ``extra_routes``, e.g. the control API)."""
    app = FastAPI(title="Runloop emulator", openapi_url=None, docs_url=None, redoc_url=None)
    api = _RunloopApi(state, clock)
    checked = request_validation.request_body_routes()
    api_routes = [
        (method, path, _checking_body(method, path, handler) if (method, path) in checked else handler)
        for method, path, handler in api.routes()
    ]
    for method, path, handler in [*extra_routes, *api_routes]:
        app.add_api_route(path, handler, methods=[method], include_in_schema=False)
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    return app
