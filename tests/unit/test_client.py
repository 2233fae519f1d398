"""Unit tests of the HTTP layer (respx): every rule runs against the sync and the async client."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import inspect
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_runloop.client import (
    MAX_PAGE_SIZE,
    AsyncRunloopClient,
    RetryPolicy,
    RunloopClient,
    check_api_key,
    validate_id,
)
from airflow_provider_runloop.exceptions import (
    RunloopAPIError,
    RunloopAuthenticationError,
    RunloopBadRequestError,
    RunloopConflictError,
    RunloopInvalidRequestError,
    RunloopInvalidResponseError,
    RunloopNotFoundError,
    RunloopRateLimitError,
    RunloopRedirectError,
    RunloopServerError,
    RunloopTimeoutError,
    RunloopTransportError,
)
from airflow_provider_runloop.models import BenchmarkRunState, ScenarioRunList, ScenarioRunState

BASE = "https://api.test.runloop"
KEY = "rl_sk_super_secret_key_123"
RUN = {"id": "bmr_1", "state": "running", "metadata": {}, "start_time_ms": 1}


class Driver:
    """Runs the same call on the sync or the async client and returns a plain result.

    Listings come back as lists; sleeps between retries are recorded, never slept.
    """

    def __init__(
        self, kind: str, router: respx.Router, retry: RetryPolicy | None = None, key: str = KEY
    ) -> None:
        self.kind = kind
        self.sleeps: list[float] = []
        if kind == "sync":
            self.client: RunloopClient | AsyncRunloopClient = RunloopClient(
                key,
                base_url=BASE,
                retry=retry,
                transport=httpx.MockTransport(router.handler),
                sleep=self.sleeps.append,
            )
        else:

            async def record(seconds: float) -> None:
                self.sleeps.append(seconds)

            self.client = AsyncRunloopClient(
                key,
                base_url=BASE,
                retry=retry,
                transport=httpx.MockTransport(router.async_handler),
                sleep=record,
            )

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        if self.kind == "sync":
            return list(result) if isinstance(result, Iterator) else result

        async def resolve() -> Any:
            if inspect.isawaitable(result):
                return await result
            return [item async for item in result]

        return asyncio.run(resolve())


@pytest.fixture
def router() -> Iterator[respx.Router]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture(params=["sync", "async"])
def make_api(request: pytest.FixtureRequest, router: respx.Router) -> Callable[..., Driver]:
    def make(retry: RetryPolicy | None = None, key: str = KEY) -> Driver:
        return Driver(request.param, router, retry, key)

    return make


@pytest.fixture
def api(make_api: Callable[..., Driver]) -> Driver:
    return make_api()


def _scenario_run(i: int, state: str = "completed") -> dict[str, Any]:
    return {
        "id": f"scr_{i:05d}",
        "scenario_id": f"scn_{i:05d}",
        "state": state,
        "devbox_id": "dbx",
        "metadata": {},
    }


# -- requests ------------------------------------------------------------------------------------


def test_a_repeated_get_is_built_once_and_a_post_every_time(api: Driver, router: respx.Router) -> None:
    # A poll asks the same GETs again and again: the built request is sent again (as a retry is).
    get = router.get("/v1/benchmark_runs/bmr_1").respond(json=RUN)
    post = router.post("/v1/benchmarks/start_run").respond(json=RUN)
    for _ in range(2):
        api("get_benchmark_run", "bmr_1")
        api("start_benchmark_run", "bmd_1")
    assert get.calls[0].request is get.calls[1].request
    assert get.calls[1].request.headers["authorization"] == f"Bearer {KEY}"
    first, second = (call.request.headers["x-request-id"] for call in post.calls)
    assert first != second  # a new idempotency key, so a new request, for every call


def test_get_sends_auth_accept_and_user_agent(api: Driver, router: respx.Router) -> None:
    route = router.get("/v1/benchmark_runs/bmr_1").respond(json={**RUN, "unknown_field": 1})
    run = api("get_benchmark_run", "bmr_1")
    assert run.id == "bmr_1"
    assert run.state is BenchmarkRunState.RUNNING
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("airflow-provider-runloop/")
    assert "content-type" not in request.headers
    assert "x-request-id" not in request.headers


def test_start_run_sends_camel_case_run_profile_and_idempotency_key(
    api: Driver, router: respx.Router
) -> None:
    route = router.post("/v1/benchmarks/start_run").respond(json=RUN)
    api("start_benchmark_run", "bmd_1", run_name="nightly", metadata={"a": "b"}, run_profile={"envVars": {}})
    request = route.calls.last.request
    assert json.loads(request.content) == {
        "benchmark_id": "bmd_1",
        "run_name": "nightly",
        "metadata": {"a": "b"},
        "runProfile": {"envVars": {}},
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-request-id"].startswith("airflow-runloop-")


@pytest.mark.parametrize("action", ["complete", "cancel"])
def test_action_posts_send_no_body(api: Driver, router: respx.Router, action: str) -> None:
    route = router.post(f"/v1/benchmark_runs/bmr_1/{action}").respond(json={**RUN, "state": "canceled"})
    api(f"{action}_benchmark_run", "bmr_1")
    assert route.calls.last.request.content == b""


def test_benchmark_scenario_ids_come_from_camel_case(api: Driver, router: respx.Router) -> None:
    router.get("/v1/benchmarks/bmd_1").respond(
        json={
            "id": "bmd_1",
            "name": "b",
            "scenarioIds": ["scn_a", "scn_b"],
            "metadata": {},
            "status": "active",
        }
    )
    assert api("get_benchmark", "bmd_1").scenario_ids == ["scn_a", "scn_b"]


def test_unknown_state_is_kept_as_a_string(api: Driver, router: respx.Router) -> None:
    router.get("/v1/scenarios/runs/scr_1").respond(json={**_scenario_run(1), "state": "paused"})
    assert api("get_scenario_run", "scr_1").state == "paused"


# -- id validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "a?b", "", " ", "a b", "bmr_1\n", None, 5, "a#b", "a%2Fb"])
def test_bad_ids_raise_before_sending(api: Driver, router: respx.Router, bad_id: Any) -> None:
    with pytest.raises(ValueError, match="benchmark_run_id must be a Runloop id"):
        api("get_benchmark_run", bad_id)
    with pytest.raises(ValueError, match="benchmark_run_id"):
        api("list_scenario_runs", bad_id)
    with pytest.raises(ValueError, match="benchmark_run_id"):
        api("cancel_benchmark_run", bad_id)
    assert len(router.calls) == 0


def test_validate_id_accepts_real_ids() -> None:
    assert validate_id("x", "bmd_2zmp3Mu3LhWu7yDVIfq3m") == "bmd_2zmp3Mu3LhWu7yDVIfq3m"
    assert validate_id("x", "scn-xxx") == "scn-xxx"


# -- errors and retries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, RunloopBadRequestError),
        (401, RunloopAuthenticationError),
        (403, RunloopAuthenticationError),
        (404, RunloopNotFoundError),
        (422, RunloopBadRequestError),
    ],
)
def test_client_errors_are_typed_and_never_retried(
    api: Driver, router: respx.Router, status: int, error: type[Exception]
) -> None:
    route = router.get("/v1/benchmark_runs/bmr_1").respond(status, json={"message": "nope"})
    with pytest.raises(error) as info:
        api("get_benchmark_run", "bmr_1")
    assert route.call_count == 1
    assert api.sleeps == []
    assert isinstance(info.value, RunloopAPIError)
    assert info.value.status_code == status
    assert info.value.method == "GET"
    assert info.value.path == "/v1/benchmark_runs/bmr_1"
    assert "nope" in str(info.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (408, RunloopServerError),
        (409, RunloopConflictError),
        (429, RunloopRateLimitError),
        (500, RunloopServerError),
        (502, RunloopServerError),
        (503, RunloopServerError),
    ],
)
def test_retryable_statuses_are_retried_then_succeed(
    api: Driver, router: respx.Router, status: int, error: type[Exception]
) -> None:
    route = router.get("/v1/benchmark_runs/bmr_1")
    route.side_effect = [httpx.Response(status), httpx.Response(status), httpx.Response(200, json=RUN)]
    assert api("get_benchmark_run", "bmr_1").id == "bmr_1"
    assert route.call_count == 3
    assert len(api.sleeps) == 2


def test_retries_stop_and_raise_the_last_typed_error(
    make_api: Callable[..., Driver], router: respx.Router
) -> None:
    api = make_api(RetryPolicy(max_retries=3, backoff_initial=1.0, backoff_max=3.0))
    route = router.get("/v1/benchmark_runs/bmr_1").respond(503, json={"message": "down"})
    with pytest.raises(RunloopServerError, match="503"):
        api("get_benchmark_run", "bmr_1")
    assert route.call_count == 4
    # Exponential with jitter in [0.75, 1.0], capped at backoff_max.
    assert len(api.sleeps) == 3
    for sleep, base in zip(api.sleeps, [1.0, 2.0, 3.0], strict=True):
        assert 0.75 * base <= sleep <= base


def test_zero_retries_sends_once(make_api: Callable[..., Driver], router: respx.Router) -> None:
    api = make_api(RetryPolicy(max_retries=0))
    route = router.get("/v1/benchmark_runs/bmr_1").respond(500)
    with pytest.raises(RunloopServerError):
        api("get_benchmark_run", "bmr_1")
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        (httpx.ConnectError("refused"), RunloopTransportError),
        (httpx.ReadTimeout("slow"), RunloopTimeoutError),
        (httpx.RemoteProtocolError("dropped"), RunloopTransportError),
    ],
)
def test_transport_errors_are_retried_and_typed(
    make_api: Callable[..., Driver], router: respx.Router, exception: Exception, error: type[Exception]
) -> None:
    api = make_api(RetryPolicy(max_retries=2))
    route = router.get("/v1/benchmark_runs/bmr_1")
    route.side_effect = exception
    with pytest.raises(error, match="GET /v1/benchmark_runs/bmr_1 failed"):
        api("get_benchmark_run", "bmr_1")
    assert route.call_count == 3
    route.side_effect = [exception, httpx.Response(200, json=RUN)]
    assert api("get_benchmark_run", "bmr_1").id == "bmr_1"


def test_post_retries_reuse_one_idempotency_key(api: Driver, router: respx.Router) -> None:
    route = router.post("/v1/benchmarks/start_run")
    route.side_effect = [httpx.Response(503), httpx.ConnectError("x"), httpx.Response(200, json=RUN)]
    api("start_benchmark_run", "bmd_1")
    keys = {call.request.headers["x-request-id"] for call in route.calls}
    assert route.call_count == 3
    assert len(keys) == 1
    # A second logical call gets a new key; a caller's key is used as given.
    route.side_effect = None
    route.respond(json=RUN)
    api("start_benchmark_run", "bmd_1")
    assert route.calls.last.request.headers["x-request-id"] not in keys
    api("start_benchmark_run", "bmd_1", idempotency_key="my-key")
    assert route.calls.last.request.headers["x-request-id"] == "my-key"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ],
)
def test_retry_after_is_honoured(
    api: Driver, router: respx.Router, headers: dict[str, str], expected: float
) -> None:
    route = router.get("/v1/benchmark_runs/bmr_1")
    route.side_effect = [httpx.Response(429, headers=headers), httpx.Response(200, json=RUN)]
    api("get_benchmark_run", "bmr_1")
    assert api.sleeps == [expected]


def test_retry_after_http_date_is_honoured(api: Driver, router: respx.Router) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    route = router.get("/v1/benchmark_runs/bmr_1")
    date = email.utils.format_datetime(when, usegmt=True)
    route.side_effect = [httpx.Response(503, headers={"retry-after": date}), httpx.Response(200, json=RUN)]
    api("get_benchmark_run", "bmr_1")
    assert len(api.sleeps) == 1
    assert 17 <= api.sleeps[0] <= 20


def test_retry_after_longer_than_the_cap_fails_fast(
    make_api: Callable[..., Driver], router: respx.Router
) -> None:
    api = make_api(RetryPolicy(retry_after_max=10))
    route = router.get("/v1/benchmark_runs/bmr_1").respond(429, headers={"retry-after": "3600"})
    with pytest.raises(RunloopRateLimitError, match="retry after 3600 s, longer than the 10 s") as info:
        api("get_benchmark_run", "bmr_1")
    assert info.value.retry_after == 3600
    assert route.call_count == 1
    assert api.sleeps == []


def test_x_should_retry_false_stops_retrying(api: Driver, router: respx.Router) -> None:
    route = router.get("/v1/benchmark_runs/bmr_1").respond(503, headers={"x-should-retry": "false"})
    with pytest.raises(RunloopServerError):
        api("get_benchmark_run", "bmr_1")
    assert route.call_count == 1


@pytest.mark.parametrize(
    "body", [b'{"id": "bmr_1", "state": "runn', b"<html>oops</html>", b'{"state": "running"}', b"[]"]
)
def test_malformed_bodies_raise_a_clear_typed_error(api: Driver, router: respx.Router, body: bytes) -> None:
    router.get("/v1/benchmark_runs/bmr_1").respond(200, content=body)
    with pytest.raises(RunloopInvalidResponseError, match="not a valid BenchmarkRunView"):
        api("get_benchmark_run", "bmr_1")


def test_error_excerpt_is_short(api: Driver, router: respx.Router) -> None:
    router.get("/v1/benchmark_runs/bmr_1").respond(400, text="x" * 10_000)
    with pytest.raises(RunloopBadRequestError) as info:
        api("get_benchmark_run", "bmr_1")
    assert len(str(info.value)) < 500


# -- pagination ------------------------------------------------------------------------------------

PAGE_PATH = "/v1/benchmark_runs/bmr_1/scenario_runs"


def _pages(router: respx.Router, total: int, page_key: str = "runs") -> respx.Route:
    runs = [_scenario_run(i) for i in range(total)]

    def respond(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        after = request.url.params.get("starting_after")
        start = 0 if after is None else next(i for i, r in enumerate(runs) if r["id"] == after) + 1
        chunk = runs[start : start + limit]
        body = {page_key: chunk, "has_more": start + limit < total, "total_count": total}
        return httpx.Response(200, json=body)

    route = router.get(PAGE_PATH)
    route.side_effect = respond
    return route


@pytest.mark.parametrize(
    ("total", "page_size", "requests"),
    [(0, 10, 1), (1, 10, 1), (10, 10, 1), (11, 10, 2), (25, 10, 3), (7, 1, 7), (12_001, None, 3)],
)
def test_pagination_walks_every_page(
    api: Driver, router: respx.Router, total: int, page_size: int | None, requests: int
) -> None:
    route = _pages(router, total)
    runs = api("list_scenario_runs", "bmr_1", page_size=page_size)
    assert [r.id for r in runs] == [f"scr_{i:05d}" for i in range(total)]
    assert route.call_count == requests
    first = route.calls[0].request.url.params
    assert first["limit"] == str(page_size or MAX_PAGE_SIZE)
    assert "starting_after" not in first
    if requests > 1:
        second = route.calls[1].request.url.params
        assert second["starting_after"] == runs[int(first["limit"]) - 1].id


@pytest.mark.parametrize(
    ("method", "path", "body", "missing"),
    [
        pytest.param(
            "list_scenario_runs", PAGE_PATH, {"has_more": False, "total_count": 10}, "runs", id="runs"
        ),
        pytest.param(
            "list_scenario_runs", PAGE_PATH, {"runs": [], "total_count": 0}, "has_more", id="has_more"
        ),
        pytest.param(
            "list_scenario_runs", PAGE_PATH, {"runs": None, "has_more": False}, "runs", id="null-runs"
        ),
        pytest.param(
            "count_scenario_runs", PAGE_PATH, {"total_count": 3, "has_more": True}, "runs", id="count"
        ),
        pytest.param(
            "list_benchmark_runs", "/v1/benchmark_runs", {"has_more": False}, "runs", id="benchmark-runs"
        ),
        pytest.param("list_benchmark_jobs", "/v1/benchmark_jobs", {"has_more": False}, "jobs", id="jobs"),
    ],
)
def test_a_page_without_its_items_or_has_more_is_an_error_not_an_empty_page(
    make_api: Callable[..., Driver],
    router: respx.Router,
    method: str,
    path: str,
    body: dict[str, Any],
    missing: str,
) -> None:
    api = make_api(RetryPolicy(max_retries=0))
    router.get(path).respond(json=body)
    args = ("bmr_1",) if "scenario_runs" in method else ()
    with pytest.raises(RunloopInvalidResponseError, match=f"not a valid .*List: {missing}"):
        api(method, *args)


def test_a_page_that_says_has_more_but_has_no_items_is_an_error(
    make_api: Callable[..., Driver], router: respx.Router
) -> None:
    api = make_api(RetryPolicy(max_retries=0))
    route = router.get(PAGE_PATH)
    route.side_effect = [
        httpx.Response(200, json={"runs": [_scenario_run(0)], "has_more": True}),
        httpx.Response(200, json={"runs": [], "has_more": True}),
    ]
    with pytest.raises(RunloopInvalidResponseError, match="says has_more but has no items"):
        api("list_scenario_runs", "bmr_1", page_size=1)


def test_pagination_keeps_filters_and_sends_state(api: Driver, router: respx.Router) -> None:
    route = _pages(router, 3)
    api("list_scenario_runs", "bmr_1", state=ScenarioRunState.SCORED, page_size=2)
    assert [c.request.url.params["state"] for c in route.calls] == ["scored", "scored"]


def test_pagination_error_page_raises_not_ends(api: Driver, router: respx.Router) -> None:
    route = router.get(PAGE_PATH)
    route.side_effect = [
        httpx.Response(200, json={"runs": [_scenario_run(0)], "has_more": True}),
        httpx.Response(404, json={"message": "gone"}),
    ]
    with pytest.raises(RunloopNotFoundError):
        api("list_scenario_runs", "bmr_1", page_size=1)


FIVE = [_scenario_run(i) for i in range(5)]
FIVE_IDS = [run["id"] for run in FIVE]


def _five(start: int) -> dict[str, Any]:
    """The page of two of FIVE that starts at ``start``."""
    return {"runs": FIVE[start : start + 2], "has_more": start + 2 < len(FIVE)}


# What a proxy, a cache or a flaky server may answer for the second page (the one after scr_00001).
REPEATED = httpx.Response(200, json=_five(0))  # the first page again: the cursor would not advance
SHIFTED = httpx.Response(200, json=_five(1))  # a window one item early: scr_00001 again, then scr_00002
MALFORMED = httpx.Response(200, content=b'{"runs": [{"id": "scr_0000')  # cut in half
NO_HAS_MORE = httpx.Response(200, json={"runs": FIVE[2:4]})
EMPTY_BUT_MORE = httpx.Response(200, json={"runs": [], "has_more": True})
DOWN = httpx.Response(503, json={"message": "down"})


@pytest.mark.parametrize(
    ("answers", "second_page_requests", "error"),
    [
        pytest.param([], 1, None, id="clean"),
        pytest.param([REPEATED], 2, None, id="repeated-once"),
        pytest.param([SHIFTED], 1, None, id="shifted-window"),
        pytest.param([MALFORMED], 2, None, id="malformed-once"),
        pytest.param([NO_HAS_MORE], 2, None, id="no-has-more-once"),
        pytest.param([EMPTY_BUT_MORE], 2, None, id="empty-but-has-more-once"),
        pytest.param([REPEATED, DOWN, MALFORMED], 4, None, id="mixed-within-the-budget"),
        pytest.param([REPEATED] * 4, 4, "the cursor does not advance", id="repeated-past-the-budget"),
        pytest.param([MALFORMED] * 4, 4, "not a valid ScenarioRunList", id="malformed-past-the-budget"),
        pytest.param([REPEATED, REPEATED, DOWN, DOWN], 4, "returned 503", id="last-error-is-raised"),
    ],
)
def test_a_page_is_asked_again_within_the_retry_budget_and_each_item_listed_once(
    make_api: Callable[..., Driver],
    router: respx.Router,
    caplog: pytest.LogCaptureFixture,
    answers: list[httpx.Response],
    second_page_requests: int,
    error: str | None,
) -> None:
    api = make_api(RetryPolicy(max_retries=3))
    queue = list(answers)

    def serve(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("starting_after")
        if cursor == "scr_00001" and queue:
            return queue.pop(0)
        start = 0 if cursor is None else FIVE_IDS.index(cursor) + 1
        return httpx.Response(200, json=_five(start))

    route = router.get(PAGE_PATH)
    route.side_effect = serve
    if error is None:
        assert [run.id for run in api("list_scenario_runs", "bmr_1", page_size=2)] == FIVE_IDS
    else:
        with pytest.raises((RunloopInvalidResponseError, RunloopServerError), match=error):
            api("list_scenario_runs", "bmr_1", page_size=2)
    cursors = [call.request.url.params.get("starting_after") for call in route.calls]
    # Every retry asks for the same page again: the same cursor, never a skip ahead.
    assert cursors.count("scr_00001") == second_page_requests
    assert len(api.sleeps) == second_page_requests - 1
    assert len(re.findall(r"; retry \d of 3 in", caplog.text)) == second_page_requests - 1


def test_without_retries_a_repeated_page_fails_at_once(
    make_api: Callable[..., Driver], router: respx.Router
) -> None:
    api = make_api(RetryPolicy(max_retries=0))
    route = router.get(PAGE_PATH).respond(json=_five(0))
    with pytest.raises(RunloopInvalidResponseError, match="the cursor does not advance"):
        api("list_scenario_runs", "bmr_1", page_size=2)
    assert route.call_count == 2


def test_a_malformed_count_is_asked_again_but_a_malformed_object_is_not(
    make_api: Callable[..., Driver], router: respx.Router
) -> None:
    api = make_api(RetryPolicy(max_retries=3))
    counts = router.get(PAGE_PATH)
    counts.side_effect = [
        MALFORMED,
        httpx.Response(200, json={"runs": [], "has_more": True, "total_count": 7}),
    ]
    assert api("count_scenario_runs", "bmr_1") == 7
    run = router.get("/v1/benchmark_runs/bmr_1").respond(200, content=b'{"id": "bmr_1", "st')
    with pytest.raises(RunloopInvalidResponseError, match="not a valid BenchmarkRunView"):
        api("get_benchmark_run", "bmr_1")
    assert (counts.call_count, run.call_count) == (2, 1)


def test_pagination_deduplicates_items_by_id(api: Driver, router: respx.Router) -> None:
    route = router.get(PAGE_PATH)
    route.side_effect = [
        httpx.Response(200, json={"runs": [_scenario_run(0), _scenario_run(1)], "has_more": True}),
        httpx.Response(200, json={"runs": [_scenario_run(1), _scenario_run(2)], "has_more": False}),
    ]
    assert [r.id for r in api("list_scenario_runs", "bmr_1", page_size=2)] == [
        "scr_00000",
        "scr_00001",
        "scr_00002",
    ]


@pytest.mark.parametrize("page_size", [0, -1, MAX_PAGE_SIZE + 1, 2.5, True])
def test_bad_page_size_is_rejected_before_sending(api: Driver, router: respx.Router, page_size: Any) -> None:
    with pytest.raises(ValueError, match="page_size must be an integer from 1 to 5000"):
        api("list_scenario_runs", "bmr_1", page_size=page_size)
    assert len(router.calls) == 0


def _listing_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("runloop-listing")]


def _other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


def test_listing_is_lazy_and_asks_at_most_one_page_ahead(router: respx.Router) -> None:
    route = _pages(router, 30)
    with RunloopClient(KEY, base_url=BASE, transport=httpx.MockTransport(router.handler)) as client:
        iterator = client.list_scenario_runs("bmr_1", page_size=10)
        assert route.call_count == 0
        next(iterator)
        # The first page, and the second already asked for while the first is consumed: not a third.
        assert route.call_count == 2
        for _ in range(9):
            next(iterator)
        assert route.call_count == 2
        next(iterator)  # the second page's first item
        assert route.call_count == 3
        assert len(list(iterator)) == 19
        assert route.call_count == 3
        assert _listing_threads() == []


async def test_async_listing_is_lazy_and_asks_at_most_one_page_ahead(router: respx.Router) -> None:
    route = _pages(router, 30)
    async with AsyncRunloopClient(
        KEY, base_url=BASE, transport=httpx.MockTransport(router.async_handler)
    ) as client:
        iterator = client.list_scenario_runs("bmr_1", page_size=10)
        assert route.call_count == 0
        await anext(iterator)
        assert route.call_count == 2
        for _ in range(9):
            await anext(iterator)
        await asyncio.sleep(0.01)  # time for a (wrong) third request to be made
        assert route.call_count == 2
        await anext(iterator)
        assert route.call_count == 3
        assert len([run async for run in iterator]) == 19
        assert route.call_count == 3
        assert _other_tasks() == set()


def test_stopping_early_leaves_no_request_and_no_thread(router: respx.Router) -> None:
    route = _pages(router, 30)
    threads_before = threading.active_count()
    with RunloopClient(KEY, base_url=BASE, transport=httpx.MockTransport(router.handler)) as client:
        for _ in client.list_scenario_runs("bmr_1", page_size=10):
            assert _listing_threads() != []  # the page ahead is being asked for in it
            break
        # The generator is closed when the loop drops it: its thread is joined.
        assert _listing_threads() == []
        iterator = client.list_scenario_runs("bmr_1", page_size=10)
        next(iterator)
        iterator.close()
        assert _listing_threads() == []
        assert route.call_count == 4
    assert threading.active_count() == threads_before


async def test_async_stopping_early_leaves_no_task(router: respx.Router) -> None:
    asked_ahead, never = asyncio.Event(), asyncio.Event()
    pages = _pages(router, 30)
    serve = pages.side_effect

    async def slow(request: httpx.Request) -> httpx.Response:
        if "starting_after" in request.url.params:
            asked_ahead.set()
            await never.wait()  # the page ahead never arrives
        return serve(request)  # type: ignore[operator,no-any-return]

    pages.side_effect = slow
    transport = httpx.MockTransport(router.async_handler)
    async with AsyncRunloopClient(KEY, base_url=BASE, transport=transport) as client:
        iterator = client.list_scenario_runs("bmr_1", page_size=10)
        await anext(iterator)
        assert len(_other_tasks()) == 1  # the page ahead, pending
        await iterator.aclose()
        assert _other_tasks() == set()

        async def consume() -> None:
            async for _ in client.list_scenario_runs("bmr_1", page_size=10):
                pass

        asked_ahead.clear()
        task = asyncio.create_task(consume())
        await asked_ahead.wait()
        for _ in range(20):  # the consumer reaches the page ahead and waits for it
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _other_tasks() == set()


def test_an_error_on_the_page_ahead_comes_after_every_item_of_the_page_before(
    api: Driver, router: respx.Router
) -> None:
    route = router.get(PAGE_PATH)
    route.side_effect = [
        httpx.Response(200, json={"runs": [_scenario_run(i) for i in range(3)], "has_more": True}),
        httpx.Response(404, json={"message": "gone"}),
    ]
    taken: list[str] = []

    async def take_async(iterator: Any) -> None:
        async for run in iterator:
            taken.append(run.id)

    def take_sync(iterator: Any) -> None:
        for run in iterator:
            assert route.call_count == 2  # asked ahead before the first item
            taken.append(run.id)

    listing = api.client.list_scenario_runs("bmr_1", page_size=3)
    with pytest.raises(RunloopNotFoundError):
        take_sync(listing) if api.kind == "sync" else asyncio.run(take_async(listing))
    assert taken == ["scr_00000", "scr_00001", "scr_00002"]


@pytest.fixture
def gc_state() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("gc_state")
@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("fails", [False, True], ids=["whole", "error"])
def test_the_garbage_collector_is_paused_only_while_a_page_is_validated(
    make_api: Callable[..., Driver],
    router: respx.Router,
    monkeypatch: pytest.MonkeyPatch,
    enabled: bool,
    fails: bool,
) -> None:
    api = make_api(RetryPolicy(max_retries=0))
    route = _pages(router, 5)
    if fails:
        route.side_effect = [
            httpx.Response(200, json={"runs": [_scenario_run(0)], "has_more": True}),
            httpx.Response(200, json={"runs": [{"id": "scr_x", "state": "running"}], "has_more": False}),
        ]
    during: list[bool] = []
    validate = ScenarioRunList.model_validate_json

    def spy(*args: Any, **kwargs: Any) -> Any:
        during.append(gc.isenabled())
        return validate(*args, **kwargs)

    monkeypatch.setattr(ScenarioRunList, "model_validate_json", spy)
    if enabled:
        gc.enable()
    else:
        gc.disable()
    if fails:
        with pytest.raises(RunloopInvalidResponseError, match="scenario_id"):
            api("list_scenario_runs", "bmr_1", page_size=1)
    else:
        assert len(api("list_scenario_runs", "bmr_1", page_size=2)) == 5
    assert during
    assert not any(during)
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("gc_state")
def test_overlapping_pauses_re_enable_the_collector_when_the_last_one_ends() -> None:
    from airflow_provider_runloop.client import _gc_paused

    gc.enable()
    first_in, second_out = threading.Event(), threading.Event()

    def other_listing() -> None:
        with _gc_paused:
            first_in.set()
            second_out.wait(5)

    thread = threading.Thread(target=other_listing)
    thread.start()
    assert first_in.wait(5)
    with _gc_paused, _gc_paused:
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other one is still validating
    second_out.set()
    thread.join(5)
    assert gc.isenabled()


# -- counting --------------------------------------------------------------------------------------


def test_count_uses_one_small_request(api: Driver, router: respx.Router) -> None:
    route = router.get(PAGE_PATH).respond(
        json={"runs": [_scenario_run(0)], "has_more": True, "total_count": 9876}
    )
    assert api("count_scenario_runs", "bmr_1", state="running") == 9876
    assert route.call_count == 1
    params = route.calls.last.request.url.params
    assert (params["limit"], params["include_total_count"], params["state"]) == ("1", "true", "running")


def test_count_falls_back_to_listing_without_total_count(api: Driver, router: respx.Router) -> None:
    route = _pages(router, 12)
    # The first (limit=1) answer has no total_count: the client lists instead.
    original = route.side_effect

    def without_total(request: httpx.Request) -> httpx.Response:
        response: httpx.Response = original(request)  # type: ignore[operator]
        body = json.loads(response.content)
        body.pop("total_count")
        return httpx.Response(200, json=body)

    route.side_effect = without_total
    assert api("count_scenario_runs", "bmr_1") == 12
    assert route.call_count == 2


def test_unknown_state_filter_is_rejected(api: Driver) -> None:
    with pytest.raises(ValueError, match="paused"):
        api("count_scenario_runs", "bmr_1", state="paused")


# -- secrets ---------------------------------------------------------------------------------------


def test_api_key_never_in_logs_errors_or_repr(
    make_api: Callable[..., Driver], router: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = make_api(RetryPolicy(max_retries=2))
    router.get("/v1/benchmark_runs/bmr_1").respond(503, json={"message": "down"})
    router.post("/v1/benchmark_runs/bmr_1/cancel").respond(401, json={"message": "bad key"})
    errors = []
    for method in ("get_benchmark_run", "cancel_benchmark_run"):
        with pytest.raises(RunloopAPIError) as info:
            api(method, "bmr_1")
        errors.append(info.value)
    assert caplog.records, "the retries should have been logged"
    assert KEY not in caplog.text
    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in repr(error.__dict__)
    assert KEY not in repr(api.client)


def test_blank_api_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="API key is required"):
        RunloopClient(" ")


# How servers and gateways echo the request's Authorization header back: one line per form.
ECHO_BODIES = [
    pytest.param('{{"message": "denied", "headers": {{"authorization": "Bearer {key}"}}}}', id="json"),
    pytest.param("401 Unauthorized\nAuthorization: Bearer {key}\nAccept: */*", id="header-dump"),
    pytest.param("<html><pre>authorization: Bearer {key}</pre></html>", id="html"),
    pytest.param('{{"message": "invalid key {key}"}}', id="bare-key"),
]


@pytest.mark.parametrize("status", [401, 403, 503])
@pytest.mark.parametrize("body", ECHO_BODIES)
def test_a_key_the_server_echoes_never_reaches_errors_or_logs(
    make_api: Callable[..., Driver],
    router: respx.Router,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    api = make_api(RetryPolicy(max_retries=2))
    router.get("/v1/benchmark_runs/bmr_1").respond(
        status, text=body.format(key=KEY), headers={"x-request-id": f"req-1 (Bearer {KEY})"}
    )
    with pytest.raises(RunloopAPIError) as info:
        api("get_benchmark_run", "bmr_1")
    error = info.value
    assert len(api.sleeps) == (2 if status == 503 else 0)
    assert caplog.records if status == 503 else True  # the retries were logged
    for text in (str(error), repr(error), repr(vars(error)), caplog.text):
        assert KEY not in text
    assert "***" in str(error)  # the rest of the body is kept
    assert error.request_id is not None
    assert error.request_id.startswith("req-1")


@pytest.mark.parametrize(
    ("exception", "error", "attempts"),
    [
        pytest.param(
            httpx.LocalProtocolError(f"Illegal header value b'Bearer {KEY}\\n'"),
            RunloopInvalidRequestError,
            1,
            id="h11-refuses-a-header",
        ),
        pytest.param(
            httpx.RemoteProtocolError(f"proxy closed: Authorization: Bearer {KEY}"),
            RunloopTransportError,
            3,
            id="remote-protocol",
        ),
        pytest.param(
            httpx.ReadTimeout(f"read of Bearer {KEY} timed out"), RunloopTimeoutError, 3, id="timeout"
        ),
    ],
)
def test_transport_error_text_is_redacted_and_building_errors_are_not_retried(
    make_api: Callable[..., Driver],
    router: respx.Router,
    caplog: pytest.LogCaptureFixture,
    exception: Exception,
    error: type[Exception],
    attempts: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    api = make_api(RetryPolicy(max_retries=2))
    route = router.get("/v1/benchmark_runs/bmr_1")
    route.side_effect = exception
    with pytest.raises(error) as info:
        api("get_benchmark_run", "bmr_1")
    assert route.call_count == attempts
    assert len(api.sleeps) == attempts - 1
    for text in (str(info.value), repr(info.value), repr(vars(info.value)), caplog.text):
        assert KEY not in text
    # Nothing of httpx's own exception (which quotes the header) travels along.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert "***" in str(info.value)


def test_a_request_httpx_refuses_to_build_is_a_value_error_that_is_not_retryable(
    api: Driver, router: respx.Router
) -> None:
    router.get("/v1/benchmark_runs/bmr_1").mock(side_effect=httpx.LocalProtocolError("Illegal header value"))
    with pytest.raises(ValueError, match="was not sent") as info:
        api("get_benchmark_run", "bmr_1")
    assert isinstance(info.value, RunloopInvalidRequestError)
    assert info.value.retryable is False
    assert api.sleeps == []


@pytest.mark.parametrize("raw", [f"{KEY}\n", f"  {KEY}\t", f"\r\n{KEY}\r\n"])
def test_whitespace_around_the_key_is_not_sent(
    make_api: Callable[..., Driver], router: respx.Router, raw: str
) -> None:
    route = router.get("/v1/benchmark_runs/bmr_1").respond(json=RUN)
    make_api(key=raw)("get_benchmark_run", "bmr_1")
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        pytest.param("rl-abc def-123456789", "whitespace", id="space"),
        pytest.param("rl-abc\ndef-123456789", "whitespace", id="newline"),
        pytest.param("rl-abc\u00e9def-12345678", "non-ASCII", id="accent"),
        pytest.param("rl-abc\u200bdef-12345678", "non-ASCII", id="zero-width-space"),
        pytest.param("rl-abc\x07def-123456789", "non-printable", id="control"),
    ],
)
def test_a_key_no_header_can_carry_is_refused_without_showing_it(key: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        RunloopClient(key)
    assert "character 7" in str(info.value)
    for part in key.split():
        assert part not in str(info.value)


# Keys as the client accepts them (long enough that the message cannot hold one by chance), and what
# may come around or inside them.
valid_keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=20, max_size=60)
surrounding = st.text(st.sampled_from(" \t\r\n\x0b\x0c\u00a0"), max_size=4)
unsendable = st.characters(codec="utf-8").filter(lambda c: not ("!" <= c <= "~"))


@given(key=valid_keys, before=surrounding, after=surrounding)
def test_check_api_key_strips_what_surrounds_a_valid_key(key: str, before: str, after: str) -> None:
    assert check_api_key(before + key + after) == key


@given(key=valid_keys, bad=unsendable, at=st.integers(min_value=1, max_value=19))
def test_check_api_key_refuses_any_unsendable_character_inside(key: str, bad: str, at: int) -> None:
    with pytest.raises(ValueError, match=f"at character {at + 1}:") as info:
        check_api_key(key[:at] + bad + key[at:], source="the connection 'c'")
    message = str(info.value)
    assert "the connection 'c'" in message
    # Neither the key nor its longer half (10 characters at least) is shown.
    assert max(key[:at], key[at:], key=len) not in message


def test_an_idempotency_key_no_header_can_carry_is_refused_before_sending(
    api: Driver, router: respx.Router
) -> None:
    with pytest.raises(ValueError, match="idempotency_key must be printable ASCII"):
        api("start_benchmark_run", "bmd_1", idempotency_key="key with\nnewline")
    assert len(router.calls) == 0


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("", "https://api.runloop.ai"),
        ("api.runloop.ai", "https://api.runloop.ai"),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765"),
    ],
)
def test_base_url_is_normalised(base_url: str, expected: str) -> None:
    assert RunloopClient(KEY, base_url=base_url).base_url == expected


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://x",
        "http://",
        "https://h?x=1",
        "https://u:p@h",
        "http://h:99999",
        "http://h:0",
        "http://h:-1",
        "h h",
    ],
)
def test_bad_base_url_is_rejected(base_url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        RunloopClient(KEY, base_url=base_url)


def test_job_spec_is_checked_before_sending(api: Driver, router: respx.Router) -> None:
    with pytest.raises(ValueError, match="spec must be a mapping"):
        api("create_benchmark_job", {"type": "nope"})
    assert len(router.calls) == 0


# What a server (or a proxy before it) can answer that is no HTTP status: each is one of our errors,
# retried where the next answer may differ.
@pytest.mark.parametrize(
    ("answer", "error", "attempts", "message"),
    [
        pytest.param(
            lambda request: httpx.Response(
                200, headers={"content-encoding": "gzip"}, content=b"this is not gzip at all"
            ),
            RunloopTransportError,
            3,
            "could not be decoded",
            id="gzip-garbage",
        ),
        pytest.param(
            lambda request: httpx.Response(302, headers={"location": str(request.url)}),
            RunloopRedirectError,
            1,
            "redirect loop",
            id="redirect-loop",
        ),
        pytest.param(
            lambda request: httpx.Response(200, headers={"content-encoding": "deflate"}, content=b"\xff\xfe"),
            RunloopTransportError,
            3,
            "could not be decoded",
            id="deflate-garbage",
        ),
    ],
)
def test_an_answer_httpx_cannot_read_is_a_typed_error_with_a_retry_decision(
    make_api: Callable[..., Driver],
    router: respx.Router,
    answer: Callable[[httpx.Request], httpx.Response],
    error: type[Exception],
    attempts: int,
    message: str,
) -> None:
    api = make_api(RetryPolicy(max_retries=2))
    route = router.get("/v1/benchmark_runs/bmr_1").mock(side_effect=answer)
    with pytest.raises(error, match=message) as info:
        api("get_benchmark_run", "bmr_1")
    assert type(info.value) is error
    assert len(api.sleeps) == attempts - 1
    assert info.value.__context__ is None
    assert route.call_count >= attempts


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        pytest.param(httpx.InvalidURL("bad"), RunloopInvalidRequestError, id="invalid-url"),
        pytest.param(httpx.StreamConsumed(), RunloopInvalidRequestError, id="stream"),
        pytest.param(httpx.TooManyRedirects("loop"), RunloopRedirectError, id="too-many-redirects"),
        pytest.param(httpx.DecodingError("bad gzip"), RunloopTransportError, id="decoding"),
    ],
)
def test_every_httpx_error_send_raises_becomes_ours(
    api: Driver, router: respx.Router, exception: Exception, error: type[Exception]
) -> None:
    router.get("/v1/benchmark_runs/bmr_1").mock(side_effect=exception)
    with pytest.raises(error):
        api("get_benchmark_run", "bmr_1")


SCR = b'{"id": "scr_1", "scenario_id": "scn_1", "state": "completed"'
BMR = b'{"id": "bmr_1", "state": "running"'


# A number no score, count or time can be (docs/results.md, "Scores and numbers"): the body is an
# invalid response naming the field, never a NaN that is averaged and exported.
@pytest.mark.parametrize(
    ("path", "call", "body", "field"),
    [
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "scoring_contract_result": {"score": NaN}}',
            "scoring_contract_result.score",
            id="nan",
        ),
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "scoring_contract_result": {"score": Infinity}}',
            "scoring_contract_result.score",
            id="inf",
        ),
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "scoring_contract_result": {"score": -Infinity}}',
            "scoring_contract_result.score",
            id="minus-inf",
        ),
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "scoring_contract_result": {"score": 1.5}}',
            "scoring_contract_result.score",
            id="above-one",
        ),
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "scoring_contract_result": {"score": -0.1}}',
            "scoring_contract_result.score",
            id="below-zero",
        ),
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "scoring_contract_result": {"score": 0.5, "scoring_function_results": '
            b'[{"scoring_function_name": "f", "score": NaN}]}}',
            "scoring_function_results.0.score",
            id="function-nan",
        ),
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "start_time_ms": 9223372036854775808}',
            "start_time_ms",
            id="start-2-63",
        ),
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "start_time_ms": -1}',
            "start_time_ms",
            id="start-negative",
        ),
        pytest.param(
            "/v1/scenarios/runs/scr_1",
            "get_scenario_run",
            SCR + b', "duration_ms": 1.5}',
            "duration_ms",
            id="duration-fraction",
        ),
        pytest.param(
            "/v1/benchmark_runs/bmr_1",
            "get_benchmark_run",
            BMR + b', "score": NaN}',
            "score",
            id="run-score-nan",
        ),
        pytest.param(
            "/v1/benchmark_runs/bmr_1",
            "get_benchmark_run",
            BMR + b', "start_time_ms": 1e400}',
            "start_time_ms",
            id="run-start-huge",
        ),
    ],
)
def test_a_number_out_of_its_range_is_an_invalid_response_naming_the_field(
    api: Driver, router: respx.Router, path: str, call: str, body: bytes, field: str
) -> None:
    route = router.get(path).respond(200, content=body, headers={"content-type": "application/json"})
    with pytest.raises(RunloopInvalidResponseError, match=re.escape(field)):
        api(call, path.rsplit("/", 1)[1])
    assert route.call_count == 1


@pytest.mark.parametrize("total", ["-1", "2.5", "2.0", '"3"', "true", "NaN", "1e400"])
def test_a_total_count_that_is_no_count_is_an_invalid_response_naming_it(
    api: Driver, router: respx.Router, total: str
) -> None:
    body = f'{{"runs": [], "has_more": false, "total_count": {total}}}'.encode()
    router.get(PAGE_PATH).respond(200, content=body, headers={"content-type": "application/json"})
    with pytest.raises(RunloopInvalidResponseError, match="total_count"):
        api("count_scenario_runs", "bmr_1", state="running")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_retries", -1),
        ("max_retries", 2.5),
        ("max_retries", True),
        ("backoff_initial", -1.0),
        ("backoff_initial", float("nan")),
        ("backoff_max", float("inf")),
        ("retry_after_max", 10**400),
        ("retry_after_max", "60"),
    ],
)
def test_a_retry_policy_that_cannot_work_is_refused_naming_the_option(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^{option} must be"):
        RetryPolicy(**{option: value})
