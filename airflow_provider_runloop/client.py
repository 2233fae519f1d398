"""HTTP clients for the Runloop benchmark API: ``RunloopClient`` (sync) and ``AsyncRunloopClient``.

Both are thin twins over one request/response core (:class:`_ClientCore`), in the way httpx's own
``Client`` and ``AsyncClient`` share ``BaseClient``: building requests, validating ids, deciding
whether and how long to wait before a retry, turning responses into typed errors or models, and
walking cursor pages all live in the core and in :class:`_Pager`. The twins only send and sleep.

The API key never leaves this module except in the ``Authorization`` header: it is checked once
(:func:`check_api_key`), and every text the server or the transport provides (a body, a header, an
error message) is redacted (:func:`~airflow_provider_runloop.redaction.redact_credentials`) before an
exception or a log line holds it.

This module does not import Airflow: it is usable (and tested) on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gc
import json
import logging
import math
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Generic, NoReturn, TypeVar

import httpx
import pydantic
from pydantic_core import SchemaValidator
from pydantic_core import core_schema as cs
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from airflow_provider_runloop import __version__
from airflow_provider_runloop.exceptions import (
    RunloopAPIError,
    RunloopAuthenticationError,
    RunloopBadRequestError,
    RunloopConflictError,
    RunloopError,
    RunloopInvalidRequestError,
    RunloopInvalidResponseError,
    RunloopNotFoundError,
    RunloopRateLimitError,
    RunloopRedirectError,
    RunloopServerError,
    RunloopTimeoutError,
    RunloopTransportError,
)
from airflow_provider_runloop.models import (
    ApiView,
    BenchmarkJobList,
    BenchmarkJobView,
    BenchmarkRunList,
    BenchmarkRunState,
    BenchmarkRunView,
    BenchmarkView,
    ListView,
    ScenarioRunList,
    ScenarioRunState,
    ScenarioRunView,
)
from airflow_provider_runloop.pool import PoolSettings, SharedPool, borrow, give_back
from airflow_provider_runloop.redaction import redact_credentials

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_PAGE_SIZE",
    "AsyncRunloopClient",
    "RetryPolicy",
    "RunloopClient",
    "check_api_key",
    "validate_id",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.runloop.ai"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
MAX_PAGE_SIZE = 5000

_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_HEADER_TOKEN = re.compile(r"[!-~]+")  # printable ASCII, no spaces
_RETRYABLE_STATUS = frozenset({408, 409, 429})

# What httpx's ``send`` raises: HTTPError covers the transport, decoding and redirect errors; an
# invalid URL and a misused stream are not HTTPErrors.
_SEND_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)
_SendError = httpx.HTTPError | httpx.InvalidURL | httpx.StreamError
_MAX_PORT = 65535
# A host as httpx holds it (IDNA-encoded): a DNS name (with '_', which some internal names have), an
# IPv4 address, or an IPv6 address without its brackets.
_HOST_PATTERN = re.compile(rb"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")
_SHOWN_ID_CHARS = 80
# Bodiless GET requests kept built, per client (a wait asks the same few again and again).
_REQUESTS_KEPT = 64

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)
ItemT = TypeVar("ItemT", bound=ApiView)


class _GcPause:
    """Keep the cyclic garbage collector from running while a response body is validated.

    Validating a 5,000-item page allocates tens of thousands of container objects; every 700 of them
    run a young collection, and now and then an older generation's collection re-walks the whole heap,
    which in a worker holds Airflow (a profile of the hook in a worker showed the collector doubling a
    listing's cost). Nothing a page allocates is cyclic garbage, so collecting during it finds nothing.

    Re-entrant and thread-safe: nested or concurrent pauses (two listings at once) share one count,
    and the collector is re-enabled when the last one ends, and only if it was enabled when the
    first one began. A collector disabled by the process stays disabled.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()


_gc_paused = _GcPause()


def check_api_key(api_key: object, *, source: str = "the api_key argument") -> str:
    """Return a Runloop API key without the whitespace around it, or raise ``ValueError``.

    Surrounding whitespace (the trailing newline of a secrets file) is removed: that is what users
    mean. A key with whitespace inside it, or with a character that is not printable ASCII, is
    refused, since no HTTP header can carry it. The error names the problem and where the key came
    from, never the key.

    :param api_key: the key.
    :param source: where the key came from, for the error message (an argument, a connection).
    """
    if not isinstance(api_key, str):
        raise ValueError(f"The Runloop API key from {source} must be a string, not {type(api_key).__name__}.")
    key = api_key.strip()
    if not key:
        raise ValueError(f"A Runloop API key is required, but {source} is empty.")
    for position, char in enumerate(key, start=1):
        if char.isspace():
            problem = "whitespace (a space, tab or line break)"
        elif not char.isascii():
            problem = "a non-ASCII character"
        elif not char.isprintable():
            problem = "a non-printable control character"
        else:
            continue
        raise ValueError(
            f"The Runloop API key from {source} contains {problem} at character {position}: a key is "
            "printable ASCII without spaces. Copy the key again from the Runloop dashboard "
            "(the key is not shown here)."
        )
    return key


def validate_id(name: str, value: object) -> str:
    """Return ``value`` if it is a safe Runloop id (letters, digits, ``_``, ``-``), else raise.

    Ids are interpolated into URL paths, so anything else (``../x``, ``a/b``, ``a?b``, blanks) is
    refused before a request is built.

    :param name: the argument's name, for the error message.
    :param value: the id to check.
    """
    if not isinstance(value, str):
        raise ValueError(
            f"{name} must be a Runloop id made of letters, digits, '_' and '-', got a {type(value).__name__}"
        )
    if not _ID_PATTERN.fullmatch(value):
        # Cut the repr, not the value: escapes (a \U0001f600 is 10 characters) make a repr grow.
        shown = repr(value)
        if len(shown) > _SHOWN_ID_CHARS:
            shown = shown[:_SHOWN_ID_CHARS] + "…"
        raise ValueError(f"{name} must be a Runloop id made of letters, digits, '_' and '-', got {shown}")
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long the clients wait before retrying a request.

    Retried: transport errors and time-outs, 408, 409, 429 and 5xx (never 400, 401, 403, 404, 422).
    A response header ``x-should-retry: false`` turns a retry off. The wait is exponential backoff
    with jitter, ``min(backoff_initial * 2**n, backoff_max) * uniform(0.75, 1.0)``, unless the
    server sends ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date): that is honoured up
    to ``retry_after_max``; a longer request fails at once with a message saying so.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param backoff_initial: the first backoff, in seconds.
    :param backoff_max: the cap on one backoff, in seconds.
    :param retry_after_max: the longest server-requested wait honoured, in seconds.
    """

    max_retries: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 60.0

    def __post_init__(self) -> None:
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"max_retries must be a whole number >= 0, got {self.max_retries!r}")
        for name in ("backoff_initial", "backoff_max", "retry_after_max"):
            value = getattr(self, name)
            # NaN compares false with everything: it would pass "< 0" and then sleep NaN seconds.
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not _finite_at_least_zero(value):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def backoff(self, retries_taken: int) -> float:
        """Seconds to wait before retry number ``retries_taken + 1`` when the server gave no hint."""
        base = min(self.backoff_initial * 2.0**retries_taken, self.backoff_max)
        return base * random.uniform(0.75, 1.0)


def _finite_at_least_zero(value: float) -> bool:
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:  # an int past a float's range
        return False


@dataclass(frozen=True)
class _Call:
    """One logical API call: what to send and which model the body parses into."""

    method: str
    path: str
    model: type[pydantic.BaseModel]
    params: Mapping[str, str | int | bool] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    # Also retry a 200 whose body is invalid (and the check the caller runs on it): only for reads
    # that are safe to repeat and where one odd answer is worth asking again, the pages of a listing.
    retry_invalid_response: bool = False


class _Pager(Generic[ItemT]):
    """Cursor pagination without I/O: a listing is whole, or it is an error.

    The caller asks :meth:`next_call` for the next page request, sends it, and hands the parsed page
    to :meth:`accept`, which returns the page's new items, or raises
    :class:`~airflow_provider_runloop.exceptions.RunloopInvalidResponseError` for a page that cannot
    be the next one. The listing ends on ``has_more: false``.

    A page is refused when its last item was already listed (a proxy or cache answering the previous
    cursor again: the cursor would not advance), or when it says ``has_more: true`` but gives nothing
    to continue from (no items, or a last item without an id). A page that does advance has its
    already-listed items dropped (items are de-duplicated by id), so a page that overlaps the previous
    one (a shifted window) costs nothing. The pages' calls ask the client to retry a refused or
    malformed page, with the same cursor, within its retry policy: a page GET is idempotent, and one
    odd answer should not abort a listing. :meth:`accept` changes nothing when it refuses a page.

    ``has_more`` is required: the published spec marks it required in every list view, so a page
    without it is malformed (the model refuses it). The SDK tolerates its absence by paging until a
    short or empty page; this client does not guess where a listing ends.
    """

    def __init__(self, call: _Call, limit: int, redact: Callable[[str], str]) -> None:
        self._call = call
        self._limit = limit
        self._redact = redact
        self._cursor: str | None = None
        self._seen: set[str] = set()
        self._done = False

    def next_call(self) -> _Call | None:
        """The request for the next page, or ``None`` when the listing is over."""
        if self._done:
            return None
        return self._call_after(self._cursor)

    def _call_after(self, cursor: str | None) -> _Call:
        params = {**self._call.params, "limit": self._limit}
        if cursor is not None:
            params["starting_after"] = cursor
        return _Call(
            self._call.method, self._call.path, self._call.model, params, retry_invalid_response=True
        )

    def call_after(self, body: bytes) -> _Call | None:
        """The call for the page after ``body`` (the page being read, not yet accepted), if it is sure.

        A cheap look at the body (its ``has_more`` and its last item's id, nothing else validated),
        so the next page can be asked for while this one is validated. ``None`` when this page ends
        the listing, or would be refused, or cannot be read that way: then nothing is asked ahead.
        The guess binds nothing: the caller uses the answer only if :meth:`next_call`, after
        :meth:`accept`, is the same call.
        """
        if self._done:
            return None
        peek = _peek_page(self._call.model, body)
        if peek is None:
            return None
        last_id, has_more = peek
        if not has_more or last_id is None or last_id == self._cursor or last_id in self._seen:
            return None
        return self._call_after(last_id)

    def accept(self, page: ListView[ItemT]) -> list[ItemT]:
        """The page's items not listed before; raises (changing nothing) for a page that cannot be next."""
        items = page.items
        last_id = _item_id(items[-1]) if items else None
        if last_id is not None and (last_id == self._cursor or last_id in self._seen):
            self._refuse(f"ends at {last_id!r}, which was already listed: the cursor does not advance")
        if page.has_more and last_id is None:
            what = "no items" if not items else "a last item without an id"
            self._refuse(f"says has_more but has {what} to continue from")
        fresh = [item for item in items if _item_id(item) not in self._seen]
        self._seen.update(item_id for item in fresh if (item_id := _item_id(item)) is not None)
        self._cursor = last_id
        self._done = not page.has_more
        return fresh

    def _refuse(self, problem: str) -> NoReturn:
        where = f"after {self._cursor!r}" if self._cursor is not None else "first"
        raise RunloopInvalidResponseError(
            self._redact(
                f"Runloop API {self._call.method} {self._call.path} returned a page ({where}) that "
                f"{problem}. A partial listing is never returned; if this persists, retry the task later."
            )
        )


class _ClientCore:
    """Everything the sync and async clients share: no I/O happens here."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        http2: bool | None = None,
    ) -> None:
        self._api_key = check_api_key(api_key, source="the api_key argument (the connection's password)")
        self.base_url = _normalise_base_url(base_url)
        self.retry = retry or RetryPolicy()
        if http2 is None:
            # Negotiated over TLS (with HTTP/1.1 as the fallback); cleartext cannot negotiate.
            http2 = self.base_url.startswith("https://")
        self._requests: dict[tuple[int, str, tuple[tuple[str, str | int | bool], ...]], httpx.Request] = {}
        self._settings = PoolSettings(
            base_url=self.base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            verify=verify,
            http2=bool(http2),
            user_agent=f"airflow-provider-runloop/{__version__} httpx/{httpx.__version__}",
        )

    def __repr__(self) -> str:
        # Never the key.
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _redact(self, text: str) -> str:
        """``text`` without the API key or any other credential: apply to all the server says."""
        return redact_credentials(text, (self._api_key,))

    # -- building calls ---------------------------------------------------------------------------

    @staticmethod
    def _page_size(page_size: int | None) -> int:
        if page_size is None:
            return MAX_PAGE_SIZE
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= MAX_PAGE_SIZE
        ):
            raise ValueError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
        return page_size

    @staticmethod
    def _post(
        path: str,
        model: type[pydantic.BaseModel],
        body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> _Call:
        if idempotency_key is not None and not _HEADER_TOKEN.fullmatch(idempotency_key):
            # It is sent as a header: refuse what no header can carry before any request.
            raise ValueError(
                "idempotency_key must be printable ASCII without spaces (it is sent as a header), "
                f"got {idempotency_key!r}"
            )
        key = idempotency_key or f"airflow-runloop-{uuid.uuid4()}"
        return _Call("POST", path, model, body=body, idempotency_key=key)

    def _build_request(self, http: httpx.Client | httpx.AsyncClient, call: _Call) -> httpx.Request:
        if call.method != "GET" or call.idempotency_key is not None or "starting_after" in call.params:
            return self._new_request(http, call)  # a POST, or a page of a listing: asked for once
        # A poll asks the same few GETs again and again; building a request (URL parsing, header
        # merging) is a quarter of httpx's cost per request, and a bodiless GET can be sent again.
        key = (id(http), call.path, tuple(call.params.items()))
        request = self._requests.get(key)
        if request is None:
            if len(self._requests) >= _REQUESTS_KEPT:
                self._requests.clear()
            request = self._requests[key] = self._new_request(http, call)
        return request

    def _new_request(self, http: httpx.Client | httpx.AsyncClient, call: _Call) -> httpx.Request:
        # The key goes on each request, not on the (possibly shared) httpx client.
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if call.idempotency_key is not None:
            # The same key on every retry of this call, so the server can de-duplicate it.
            headers["x-request-id"] = call.idempotency_key
        params = {k: _query_value(v) for k, v in call.params.items()}
        if call.method == "GET":
            return http.build_request("GET", call.path, params=params, headers=headers)
        content = b"" if call.body is None else json.dumps(call.body).encode()
        if content:
            headers["Content-Type"] = "application/json"
        return http.build_request(call.method, call.path, params=params, headers=headers, content=content)

    # -- responses ----------------------------------------------------------------------------------

    def _raise_for_status(self, request: httpx.Request, response: httpx.Response) -> None:
        if response.is_success:
            return
        status = response.status_code
        # Both come from the server, and a gateway that echoes the request may echo its key.
        request_id = response.headers.get("x-request-id") or request.headers.get("x-request-id")
        if request_id is not None:
            request_id = self._redact(request_id)
        body = self._redact(response.text)
        retry_after = _retry_after_seconds(response.headers)
        kwargs: dict[str, Any] = {"request_id": request_id, "body": body, "retry_after": retry_after}
        method, path = request.method, request.url.path
        error: RunloopAPIError
        if status in (401, 403):
            error = RunloopAuthenticationError(
                status,
                method,
                path,
                hint="Authentication failed: check the API key in the Runloop connection's password field",
                **kwargs,
            )
        elif status == 404:
            error = RunloopNotFoundError(
                status, method, path, hint="Check the id and the connection's base URL", **kwargs
            )
        elif status in (400, 422):
            error = RunloopBadRequestError(status, method, path, **kwargs)
        elif status == 409:
            error = RunloopConflictError(status, method, path, **kwargs)
        elif status == 429:
            error = RunloopRateLimitError(status, method, path, **kwargs)
        elif status >= 500 or status in _RETRYABLE_STATUS:
            error = RunloopServerError(status, method, path, **kwargs)
        else:
            error = RunloopAPIError(status, method, path, **kwargs)
        should_retry = response.headers.get("x-should-retry", "").lower()
        if should_retry == "false":
            error.retryable = False
        if error.retryable and retry_after is not None and retry_after > self.retry.retry_after_max:
            error.retryable = False
            error.args = (
                f"{error.args[0]}. The server asked to retry after {retry_after:g} s, longer than "
                f"the {self.retry.retry_after_max:g} s this client waits at most; "
                "try again later or raise retry_after_max",
            )
        raise error

    def _read(self, call: _Call, request: httpx.Request, response: httpx.Response) -> Any:
        """The response as ``call.model``, or the typed error it amounts to."""
        self._raise_for_status(request, response)
        return self._parse(call, request, response.content)

    def _parse(self, call: _Call, request: httpx.Request, body: bytes) -> Any:
        """``body`` as ``call.model``, or :class:`RunloopInvalidResponseError` (redacted)."""
        try:
            with _gc_paused:
                return call.model.model_validate_json(body)
        except pydantic.ValidationError as exc:
            detail = self._redact(_first_error(exc))
        # Raised outside the except block, so the error carries no context of pydantic's.
        raise RunloopInvalidResponseError(
            f"Runloop API {request.method} {request.url.path} returned a body that is not a valid "
            f"{call.model.__name__}: {detail}"
        )

    def _transport_error(
        self, request: httpx.Request, exc: _SendError
    ) -> RunloopTransportError | RunloopInvalidRequestError:
        """Our error for httpx's; the twins raise it outside their ``except`` block (no context).

        Every way ``send`` can fail maps to one of ours, so no httpx exception reaches a task or a
        trigger: a body that cannot be decoded (a broken ``Content-Encoding``) is a transport error,
        retried like a dropped connection; a redirect loop is not retried; a request httpx cannot
        build or write is not sent at all.
        """
        # h11 quotes a refused header value (the key's, too) in its message.
        reason = self._redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        method, path = request.method, request.url.path
        if isinstance(exc, (httpx.LocalProtocolError, httpx.InvalidURL, httpx.StreamError)):
            # httpx refused to write the request: it fails the same way every time.
            return RunloopInvalidRequestError(method, path, reason)
        if isinstance(exc, httpx.TooManyRedirects):
            return RunloopRedirectError(
                method, path, f"{reason}; check the connection's base URL (a redirect loop)"
            )
        if isinstance(exc, httpx.DecodingError):
            # The response arrived garbled (a proxy mangling gzip): the next answer may be whole.
            return RunloopTransportError(method, path, f"the response body could not be decoded ({reason})")
        if isinstance(exc, httpx.TimeoutException):
            return RunloopTimeoutError(method, path, reason)
        return RunloopTransportError(method, path, reason)

    # -- retrying -----------------------------------------------------------------------------------

    def _retry_options(self, call: _Call) -> dict[str, Any]:
        def worth_retrying(exc: BaseException) -> bool:
            if isinstance(exc, RunloopInvalidResponseError):
                return call.retry_invalid_response
            return isinstance(exc, RunloopError) and exc.retryable

        return {
            "retry": retry_if_exception(worth_retrying),
            "stop": stop_after_attempt(self.retry.max_retries + 1),
            "wait": self._wait_seconds,
            "before_sleep": self._log_retry,
            "reraise": True,
        }

    def _wait_seconds(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, RunloopAPIError) else None
        if retry_after is not None:
            return max(0.0, retry_after)
        return self.retry.backoff(state.attempt_number - 1)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "Runloop request failed (%s); retry %d of %d in %.1f s",
            self._redact(str(exc)),
            state.attempt_number,
            self.retry.max_retries,
            wait,
        )

    # -- endpoints (what to send; the twins send it) -----------------------------------------------

    @staticmethod
    def _get_benchmark_run(benchmark_run_id: str) -> _Call:
        rid = validate_id("benchmark_run_id", benchmark_run_id)
        return _Call("GET", f"/v1/benchmark_runs/{rid}", BenchmarkRunView)

    @staticmethod
    def _list_benchmark_runs(
        benchmark_id: str | None,
        name: str | None,
        state: BenchmarkRunState | str | None,
        search: str | None = None,
    ) -> _Call:
        params: dict[str, str | int | bool] = {}
        if benchmark_id is not None:
            params["benchmark_id"] = validate_id("benchmark_id", benchmark_id)
        if name is not None:
            params["name"] = name
        if search is not None:
            params["search"] = search
        if state is not None:
            params["state"] = BenchmarkRunState(state).value
        return _Call("GET", "/v1/benchmark_runs", BenchmarkRunList, params)

    @staticmethod
    def _list_scenario_runs(benchmark_run_id: str, state: ScenarioRunState | str | None) -> _Call:
        rid = validate_id("benchmark_run_id", benchmark_run_id)
        params: dict[str, str | int | bool] = {}
        if state is not None:
            params["state"] = ScenarioRunState(state).value
        return _Call("GET", f"/v1/benchmark_runs/{rid}/scenario_runs", ScenarioRunList, params)

    @classmethod
    def _count_scenario_runs(cls, benchmark_run_id: str, state: ScenarioRunState | str | None) -> _Call:
        listing = cls._list_scenario_runs(benchmark_run_id, state)
        params = {**listing.params, "limit": 1, "include_total_count": True}
        return _Call("GET", listing.path, ScenarioRunList, params, retry_invalid_response=True)

    @staticmethod
    def _verify_credentials() -> _Call:
        params: dict[str, str | int | bool] = {"limit": 1, "include_total_count": False}
        return _Call("GET", "/v1/benchmark_runs", BenchmarkRunList, params)

    @staticmethod
    def _get_scenario_run(scenario_run_id: str) -> _Call:
        sid = validate_id("scenario_run_id", scenario_run_id)
        return _Call("GET", f"/v1/scenarios/runs/{sid}", ScenarioRunView)

    @staticmethod
    def _get_benchmark(benchmark_id: str) -> _Call:
        bid = validate_id("benchmark_id", benchmark_id)
        return _Call("GET", f"/v1/benchmarks/{bid}", BenchmarkView)

    @classmethod
    def _start_benchmark_run(
        cls,
        benchmark_id: str,
        run_name: str | None,
        metadata: Mapping[str, str] | None,
        run_profile: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> _Call:
        body: dict[str, Any] = {"benchmark_id": validate_id("benchmark_id", benchmark_id)}
        if run_name is not None:
            body["run_name"] = run_name
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if run_profile is not None:
            body["runProfile"] = dict(run_profile)  # camelCase on the wire
        return cls._post("/v1/benchmarks/start_run", BenchmarkRunView, body, idempotency_key)

    @classmethod
    def _benchmark_run_action(cls, benchmark_run_id: str, action: str) -> _Call:
        rid = validate_id("benchmark_run_id", benchmark_run_id)
        return cls._post(f"/v1/benchmark_runs/{rid}/{action}", BenchmarkRunView)

    @classmethod
    def _start_scenario_run(
        cls,
        scenario_id: str,
        benchmark_run_id: str | None,
        run_name: str | None,
        metadata: Mapping[str, str] | None,
        run_profile: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> _Call:
        body: dict[str, Any] = {"scenario_id": validate_id("scenario_id", scenario_id)}
        if benchmark_run_id is not None:
            body["benchmark_run_id"] = validate_id("benchmark_run_id", benchmark_run_id)
        if run_name is not None:
            body["run_name"] = run_name
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if run_profile is not None:
            body["runProfile"] = dict(run_profile)
        return cls._post("/v1/scenarios/start_run", ScenarioRunView, body, idempotency_key)

    @classmethod
    def _scenario_run_action(cls, scenario_run_id: str, action: str) -> _Call:
        sid = validate_id("scenario_run_id", scenario_run_id)
        return cls._post(f"/v1/scenarios/runs/{sid}/{action}", ScenarioRunView)

    @classmethod
    def _create_benchmark_job(
        cls, spec: Mapping[str, Any], name: str | None, idempotency_key: str | None
    ) -> _Call:
        if not isinstance(spec, Mapping) or spec.get("type") not in ("benchmark", "scenarios", "harbor"):
            raise ValueError("spec must be a mapping whose 'type' is 'benchmark', 'scenarios' or 'harbor'")
        body: dict[str, Any] = {"spec": dict(spec)}
        if name is not None:
            body["name"] = name
        return cls._post("/v1/benchmark_jobs", BenchmarkJobView, body, idempotency_key)

    @staticmethod
    def _get_benchmark_job(benchmark_job_id: str) -> _Call:
        jid = validate_id("benchmark_job_id", benchmark_job_id)
        return _Call("GET", f"/v1/benchmark_jobs/{jid}", BenchmarkJobView)

    @staticmethod
    def _list_benchmark_jobs(name: str | None, search: str | None = None) -> _Call:
        params: dict[str, str | int | bool] = {}
        if name is not None:
            params["name"] = name
        if search is not None:
            params["search"] = search
        return _Call("GET", "/v1/benchmark_jobs", BenchmarkJobList, params)


class RunloopClient(_ClientCore):
    """Synchronous client for the Runloop benchmark API.

    Use it as a context manager (or call :meth:`close`) so its connection pool is released::

        with RunloopClient(api_key) as client:
            run = client.get_benchmark_run("bmr_123")

    :param api_key: the Runloop API key, sent as a Bearer token.
    :param base_url: the API's base URL.
    :param timeout: read, write and pool time-out in seconds.
    :param connect_timeout: connect time-out in seconds.
    :param retry: the retry policy (see :class:`RetryPolicy`).
    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path.
    :param http2: ``None`` (default): HTTP/2 over ``https://``, negotiated (ALPN), so a server that
        offers only HTTP/1.1 gets HTTP/1.1; HTTP/1.1 over ``http://``. ``True``: also HTTP/2 over
        ``http://``, spoken from the first byte (h2c prior knowledge: the server must speak it, as the
        bundled emulator does). ``False``: HTTP/1.1 always.
    :param transport: an httpx transport to send through (tests use a mock transport).
    :param sleep: the function used to wait between retries (tests pass a recorder).

    Idle connections are kept for :data:`~airflow_provider_runloop.pool.KEEPALIVE_EXPIRY` seconds, so
    a task that polls reuses its connection instead of opening one per poll.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        http2: bool | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry,
            verify=verify,
            http2=http2,
        )
        self._http = self._settings.sync_client(transport)
        self._sleep = sleep

    def __enter__(self) -> RunloopClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _execute(
        self,
        call: _Call,
        accept: Callable[[Any], Any] | None = None,
        *,
        prefetched: _Prefetch[Future[httpx.Response]] | None = None,
        on_body: Callable[[bytes], None] | None = None,
    ) -> Any:
        """Send ``call`` (retrying per the policy); ``accept`` checks the result inside each attempt.

        ``prefetched``: the call's request, already sent in the background; its answer is the first
        attempt's (a retry sends the same request again). ``on_body``: called with a successful
        answer's body before it is validated (a listing asks for its next page there).
        """
        request = prefetched.request if prefetched is not None else self._build_request(self._http, call)
        first = prefetched.pending if prefetched is not None else None
        result: Any = None
        for attempt in Retrying(sleep=self._sleep, **self._retry_options(call)):
            with attempt:
                if first is not None:
                    pending, first = first, None
                    response = pending.result()
                else:
                    response = self._send(request)
                self._raise_for_status(request, response)
                if on_body is not None:
                    on_body(response.content)
                result = self._parse(call, request, response.content)
                if accept is not None:
                    result = accept(result)
        return result

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._http.send(request)
        except _SEND_ERRORS as exc:
            error = self._transport_error(request, exc)
        raise error

    def _paginate(self, call: _Call, page_size: int | None) -> Iterator[Any]:
        # Built before the generator starts, so a bad page size fails at the call, not later.
        pager: _Pager[Any] = _Pager(call, self._page_size(page_size), self._redact)
        return self._walk(pager)

    def _walk(self, pager: _Pager[Any]) -> Iterator[Any]:
        # One page ahead at most: page k+1 is asked for (in one background thread) as soon as page k's
        # body shows its cursor, and is waited for once page k's items have all been taken.
        ahead = _SyncAhead(self)

        def ask_ahead(body: bytes) -> None:
            if (next_call := pager.call_after(body)) is not None:
                ahead.start(next_call)

        try:
            page_call = pager.next_call()
            while page_call is not None:
                items = self._execute(
                    page_call, pager.accept, prefetched=ahead.take(page_call), on_body=ask_ahead
                )
                page_call = pager.next_call()
                if page_call is None or not ahead.holds(page_call):
                    ahead.discard()
                yield from items
                del items
        finally:
            ahead.close()

    # -- endpoints ----------------------------------------------------------------------------------

    def verify_credentials(self) -> None:
        """Make one cheap authenticated request; raise if the key or the base URL is wrong."""
        self._execute(self._verify_credentials())

    def get_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Fetch a benchmark run."""
        result: BenchmarkRunView = self._execute(self._get_benchmark_run(benchmark_run_id))
        return result

    def list_benchmark_runs(
        self,
        *,
        benchmark_id: str | None = None,
        name: str | None = None,
        state: BenchmarkRunState | str | None = None,
        search: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[BenchmarkRunView]:
        """Lazily iterate over benchmark runs, one page in memory at a time.

        Filters: ``benchmark_id``, ``name`` (exact), ``state`` and ``search`` (an id or part of a name).
        """
        call = self._list_benchmark_runs(benchmark_id, name, state, search)
        return self._paginate(call, page_size)

    def list_scenario_runs(
        self,
        benchmark_run_id: str,
        *,
        state: ScenarioRunState | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[ScenarioRunView]:
        """Lazily iterate over the (started) scenario runs of a benchmark run, one page at a time."""
        call = self._list_scenario_runs(benchmark_run_id, state)
        return self._paginate(call, page_size)

    def count_scenario_runs(
        self, benchmark_run_id: str, *, state: ScenarioRunState | str | None = None
    ) -> int:
        """Count a benchmark run's scenario runs (optionally in one state) with one small request.

        Uses ``limit=1`` and the response's ``total_count``; when the server leaves the count out,
        falls back to listing them all.
        """
        total = self.scenario_run_total(benchmark_run_id, state=state)
        if total is not None:
            return total
        return sum(1 for _ in self.list_scenario_runs(benchmark_run_id, state=state))

    def scenario_run_total(
        self, benchmark_run_id: str, *, state: ScenarioRunState | str | None = None
    ) -> int | None:
        """The server's ``total_count`` of a benchmark run's scenario runs, or ``None`` if it sent none.

        One request with ``limit=1``; unlike :meth:`count_scenario_runs` it never lists.
        """
        page: ScenarioRunList = self._execute(self._count_scenario_runs(benchmark_run_id, state))
        return page.total_count

    def get_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Fetch a scenario run."""
        result: ScenarioRunView = self._execute(self._get_scenario_run(scenario_run_id))
        return result

    def get_benchmark(self, benchmark_id: str) -> BenchmarkView:
        """Fetch a benchmark definition (its ``scenario_ids`` come from the API's ``scenarioIds``)."""
        result: BenchmarkView = self._execute(self._get_benchmark(benchmark_id))
        return result

    def start_benchmark_run(
        self,
        benchmark_id: str,
        *,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        run_profile: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> BenchmarkRunView:
        """Start an (interactive) benchmark run of a benchmark definition."""
        call = self._start_benchmark_run(benchmark_id, run_name, metadata, run_profile, idempotency_key)
        result: BenchmarkRunView = self._execute(call)
        return result

    def complete_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Mark a running benchmark run completed (after all its scenario runs have finished)."""
        result: BenchmarkRunView = self._execute(self._benchmark_run_action(benchmark_run_id, "complete"))
        return result

    def cancel_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Cancel a benchmark run and its running scenario runs."""
        result: BenchmarkRunView = self._execute(self._benchmark_run_action(benchmark_run_id, "cancel"))
        return result

    def start_scenario_run(
        self,
        scenario_id: str,
        *,
        benchmark_run_id: str | None = None,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        run_profile: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ScenarioRunView:
        """Start a run of one scenario, attached to ``benchmark_run_id`` when given."""
        call = self._start_scenario_run(
            scenario_id, benchmark_run_id, run_name, metadata, run_profile, idempotency_key
        )
        result: ScenarioRunView = self._execute(call)
        return result

    def score_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Ask Runloop to score a running scenario run."""
        result: ScenarioRunView = self._execute(self._scenario_run_action(scenario_run_id, "score"))
        return result

    def complete_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Complete a scored scenario run (shuts its devbox down)."""
        result: ScenarioRunView = self._execute(self._scenario_run_action(scenario_run_id, "complete"))
        return result

    def cancel_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Cancel a scenario run (shuts its devbox down)."""
        result: ScenarioRunView = self._execute(self._scenario_run_action(scenario_run_id, "cancel"))
        return result

    def create_benchmark_job(
        self, spec: Mapping[str, Any], *, name: str | None = None, idempotency_key: str | None = None
    ) -> BenchmarkJobView:
        """Create a benchmark job; ``spec`` is one of the API's job spec variants."""
        result: BenchmarkJobView = self._execute(self._create_benchmark_job(spec, name, idempotency_key))
        return result

    def get_benchmark_job(self, benchmark_job_id: str) -> BenchmarkJobView:
        """Fetch a benchmark job."""
        result: BenchmarkJobView = self._execute(self._get_benchmark_job(benchmark_job_id))
        return result

    def list_benchmark_jobs(
        self, *, name: str | None = None, search: str | None = None, page_size: int | None = None
    ) -> Iterator[BenchmarkJobView]:
        """Lazily iterate over benchmark jobs; filters: ``name`` (exact) and ``search`` (id or name)."""
        return self._paginate(self._list_benchmark_jobs(name, search), page_size)


class AsyncRunloopClient(_ClientCore):
    """Asynchronous twin of :class:`RunloopClient`, for the triggerer's event loop.

    Same arguments and methods, awaited; listings are async iterators. ``sleep`` must be a coroutine
    function (default :func:`asyncio.sleep`), so waiting for a retry never blocks the loop.

    **One pool per event loop.** Every async client of the same settings (base URL, TLS, time-outs,
    protocol) on one event loop sends through one shared ``httpx.AsyncClient``
    (:mod:`~airflow_provider_runloop.pool`): a triggerer's thousand waits share one warm pool instead of
    a thousand. Its API key goes on each of its own requests, never on the shared client. It is
    borrowed at the first request and given back by :meth:`aclose` (the last client to close it closes
    the pool). A client given a ``transport`` has its own ``httpx.AsyncClient`` instead.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        http2: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry,
            verify=verify,
            http2=http2,
        )
        self._own: httpx.AsyncClient | None = None
        if transport is not None:
            self._own = self._settings.async_client(transport)
        self._borrowed: SharedPool | None = None
        self._borrowed_on: asyncio.AbstractEventLoop | None = None
        self._sleep = sleep

    @property
    def _http(self) -> httpx.AsyncClient:
        """The httpx client to send through: this client's own, or the running loop's shared one."""
        if self._own is not None:
            return self._own
        loop = asyncio.get_running_loop()
        return self._shared(loop).http

    def _shared(self, loop: asyncio.AbstractEventLoop) -> SharedPool:
        if self._borrowed is None or self._borrowed_on is not loop:
            # First request, or a new loop (asyncio.run twice): a pool's connections are its loop's.
            self._borrowed, self._borrowed_on = borrow(self._settings), loop
        return self._borrowed

    async def __aenter__(self) -> AsyncRunloopClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close this client: its own pool, or its share of the loop's shared pool."""
        if self._own is not None:
            await self._own.aclose()
            return
        borrowed, self._borrowed = self._borrowed, None
        if borrowed is not None and self._borrowed_on is asyncio.get_running_loop():
            await give_back(self._settings, borrowed)
        self._borrowed_on = None

    async def _execute(
        self,
        call: _Call,
        accept: Callable[[Any], Any] | None = None,
        *,
        prefetched: _Prefetch[asyncio.Task[httpx.Response]] | None = None,
        on_body: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> Any:
        """Send ``call`` (retrying per the policy); ``accept`` checks the result inside each attempt.

        ``prefetched`` and ``on_body``: as in the sync twin (the request runs in a task).
        """
        request = prefetched.request if prefetched is not None else self._build_request(self._http, call)
        first = prefetched.pending if prefetched is not None else None
        result: Any = None
        options = self._retry_options(call)
        if self._sleep is not None:
            options["sleep"] = self._sleep
        async for attempt in AsyncRetrying(**options):
            with attempt:
                if first is not None:
                    pending, first = first, None
                    response = await pending
                else:
                    response = await self._send(request)
                self._raise_for_status(request, response)
                if on_body is not None:
                    await on_body(response.content)
                result = self._parse(call, request, response.content)
                if accept is not None:
                    result = accept(result)
        return result

    async def _send(self, request: httpx.Request) -> httpx.Response:
        # The pool is looked up once a request: its client and its gate.
        if self._own is not None:
            http, gate = self._own, None
        else:
            shared = self._shared(asyncio.get_running_loop())
            http, gate = shared.http, shared.gate
        acquired = False
        error: RunloopError
        try:
            if gate is not None:
                # Waiting for a free slot is the pool time-out's job (httpx's own never starts).
                await _acquire(gate, self._settings.timeout)
                acquired = True
            return await http.send(request)
        except _SEND_ERRORS as exc:
            error = self._transport_error(request, exc)
        except asyncio.TimeoutError:
            error = RunloopTimeoutError(
                request.method,
                request.url.path,
                f"no connection of the shared pool was free within {self._settings.timeout:g} s",
            )
        finally:
            if acquired and gate is not None:
                gate.release()
        raise error

    def _paginate(self, call: _Call, page_size: int | None) -> AsyncIterator[Any]:
        pager: _Pager[Any] = _Pager(call, self._page_size(page_size), self._redact)
        return self._walk(pager)

    async def _walk(self, pager: _Pager[Any]) -> AsyncIterator[Any]:
        # As the sync twin, with a task for the page ahead.
        ahead = _AsyncAhead(self)

        async def ask_ahead(body: bytes) -> None:
            if (next_call := pager.call_after(body)) is not None:
                await ahead.start(next_call)

        try:
            page_call = pager.next_call()
            while page_call is not None:
                prefetched = await ahead.take(page_call)
                items = await self._execute(page_call, pager.accept, prefetched=prefetched, on_body=ask_ahead)
                page_call = pager.next_call()
                if page_call is None or not ahead.holds(page_call):
                    await ahead.discard()
                for item in items:
                    yield item
                del items
        finally:
            await ahead.close()

    # -- endpoints ----------------------------------------------------------------------------------

    async def verify_credentials(self) -> None:
        """Make one cheap authenticated request; raise if the key or the base URL is wrong."""
        await self._execute(self._verify_credentials())

    async def get_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Fetch a benchmark run."""
        result: BenchmarkRunView = await self._execute(self._get_benchmark_run(benchmark_run_id))
        return result

    def list_benchmark_runs(
        self,
        *,
        benchmark_id: str | None = None,
        name: str | None = None,
        state: BenchmarkRunState | str | None = None,
        search: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[BenchmarkRunView]:
        """Lazily iterate over benchmark runs (``async for``), one page in memory at a time."""
        call = self._list_benchmark_runs(benchmark_id, name, state, search)
        return self._paginate(call, page_size)

    def list_scenario_runs(
        self,
        benchmark_run_id: str,
        *,
        state: ScenarioRunState | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[ScenarioRunView]:
        """Lazily iterate over the (started) scenario runs of a benchmark run (``async for``)."""
        call = self._list_scenario_runs(benchmark_run_id, state)
        return self._paginate(call, page_size)

    async def count_scenario_runs(
        self, benchmark_run_id: str, *, state: ScenarioRunState | str | None = None
    ) -> int:
        """Count a benchmark run's scenario runs with one small request (see the sync twin)."""
        total = await self.scenario_run_total(benchmark_run_id, state=state)
        if total is not None:
            return total
        count = 0
        async for _ in self.list_scenario_runs(benchmark_run_id, state=state):
            count += 1
        return count

    async def scenario_run_total(
        self, benchmark_run_id: str, *, state: ScenarioRunState | str | None = None
    ) -> int | None:
        """The server's ``total_count`` of scenario runs, or ``None`` if it sent none (never lists)."""
        page: ScenarioRunList = await self._execute(self._count_scenario_runs(benchmark_run_id, state))
        return page.total_count

    async def get_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Fetch a scenario run."""
        result: ScenarioRunView = await self._execute(self._get_scenario_run(scenario_run_id))
        return result

    async def get_benchmark(self, benchmark_id: str) -> BenchmarkView:
        """Fetch a benchmark definition."""
        result: BenchmarkView = await self._execute(self._get_benchmark(benchmark_id))
        return result

    async def start_benchmark_run(
        self,
        benchmark_id: str,
        *,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        run_profile: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> BenchmarkRunView:
        """Start an (interactive) benchmark run of a benchmark definition."""
        call = self._start_benchmark_run(benchmark_id, run_name, metadata, run_profile, idempotency_key)
        result: BenchmarkRunView = await self._execute(call)
        return result

    async def complete_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Mark a running benchmark run completed."""
        call = self._benchmark_run_action(benchmark_run_id, "complete")
        result: BenchmarkRunView = await self._execute(call)
        return result

    async def cancel_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Cancel a benchmark run and its running scenario runs."""
        call = self._benchmark_run_action(benchmark_run_id, "cancel")
        result: BenchmarkRunView = await self._execute(call)
        return result

    async def start_scenario_run(
        self,
        scenario_id: str,
        *,
        benchmark_run_id: str | None = None,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        run_profile: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ScenarioRunView:
        """Start a run of one scenario, attached to ``benchmark_run_id`` when given."""
        call = self._start_scenario_run(
            scenario_id, benchmark_run_id, run_name, metadata, run_profile, idempotency_key
        )
        result: ScenarioRunView = await self._execute(call)
        return result

    async def score_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Ask Runloop to score a running scenario run."""
        result: ScenarioRunView = await self._execute(self._scenario_run_action(scenario_run_id, "score"))
        return result

    async def complete_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Complete a scored scenario run."""
        call = self._scenario_run_action(scenario_run_id, "complete")
        result: ScenarioRunView = await self._execute(call)
        return result

    async def cancel_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Cancel a scenario run."""
        result: ScenarioRunView = await self._execute(self._scenario_run_action(scenario_run_id, "cancel"))
        return result

    async def create_benchmark_job(
        self, spec: Mapping[str, Any], *, name: str | None = None, idempotency_key: str | None = None
    ) -> BenchmarkJobView:
        """Create a benchmark job."""
        call = self._create_benchmark_job(spec, name, idempotency_key)
        result: BenchmarkJobView = await self._execute(call)
        return result

    async def get_benchmark_job(self, benchmark_job_id: str) -> BenchmarkJobView:
        """Fetch a benchmark job."""
        result: BenchmarkJobView = await self._execute(self._get_benchmark_job(benchmark_job_id))
        return result

    def list_benchmark_jobs(
        self, *, name: str | None = None, search: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[BenchmarkJobView]:
        """Lazily iterate over benchmark jobs (``async for``)."""
        return self._paginate(self._list_benchmark_jobs(name, search), page_size)


PendingT = TypeVar("PendingT")

# How long a listing waits for the page it asks ahead to be sent before it goes on validating the
# current one (validation holds the GIL, and the event loop, so the request would wait for it).
_SENT_WAIT_SECONDS = 1.0
_SENT_WAIT_TICKS = 200
_SENT_EVENT = "send_request_body.complete"


@dataclass(frozen=True)
class _Prefetch(Generic[PendingT]):
    """A page's call, its request and the pending answer (a future or a task) of its first attempt."""

    call: _Call
    request: httpx.Request
    pending: PendingT


class _SyncAhead:
    """The sync listing's one page ahead: at most one request, in one thread of the listing's own."""

    def __init__(self, client: RunloopClient) -> None:
        self._client = client
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: _Prefetch[Future[httpx.Response]] | None = None

    def holds(self, call: _Call) -> bool:
        return self._ahead is not None and self._ahead.call == call

    def start(self, call: _Call) -> None:
        if self.holds(call):
            return
        self.discard()
        client = self._client
        request = client._build_request(client._http, call)
        sent = threading.Event()

        def trace(event: str, info: object) -> None:
            if event.endswith(_SENT_EVENT):
                sent.set()

        request.extensions["trace"] = trace
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runloop-listing")
        pending = self._pool.submit(client._send, request)
        pending.add_done_callback(lambda _: sent.set())
        self._ahead = _Prefetch(call, request, pending)
        # Until it is on the wire: validating the current page holds the GIL for a while.
        sent.wait(_SENT_WAIT_SECONDS)

    def take(self, call: _Call) -> _Prefetch[Future[httpx.Response]] | None:
        """The request ahead if it is ``call``'s (it is then the caller's), else ``None``."""
        if not self.holds(call):
            self.discard()
            return None
        taken, self._ahead = self._ahead, None
        return taken

    def discard(self) -> None:
        """Forget the request ahead, after it has ended (a sent request cannot be withdrawn)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead.pending.cancel():
            return
        with contextlib.suppress(Exception):  # its answer, or its error, is no one's
            ahead.pending.result().close()

    def close(self) -> None:
        """No request and no thread left behind."""
        try:
            self.discard()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


class _AsyncAhead:
    """The async listing's one page ahead: at most one request, in a task."""

    def __init__(self, client: AsyncRunloopClient) -> None:
        self._client = client
        self._ahead: _Prefetch[asyncio.Task[httpx.Response]] | None = None

    def holds(self, call: _Call) -> bool:
        return self._ahead is not None and self._ahead.call == call

    async def start(self, call: _Call) -> None:
        if self.holds(call):
            return
        await self.discard()
        client = self._client
        request = client._build_request(client._http, call)
        sent = asyncio.Event()

        async def trace(event: str, info: object) -> None:
            if event.endswith(_SENT_EVENT):
                sent.set()

        request.extensions["trace"] = trace
        pending = asyncio.get_running_loop().create_task(client._send(request))
        self._ahead = _Prefetch(call, request, pending)
        # Let the task put the request on the wire before validating the current page blocks the loop.
        for _ in range(_SENT_WAIT_TICKS):
            if sent.is_set() or pending.done():
                break
            await asyncio.sleep(0)

    async def take(self, call: _Call) -> _Prefetch[asyncio.Task[httpx.Response]] | None:
        if not self.holds(call):
            await self.discard()
            return None
        taken, self._ahead = self._ahead, None
        return taken

    async def discard(self) -> None:
        """Cancel the request ahead and wait until it has ended."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        pending = ahead.pending
        pending.cancel()
        await asyncio.wait({pending})
        if not pending.cancelled() and pending.exception() is None:
            await pending.result().aclose()

    async def close(self) -> None:
        if self._ahead is not None:
            await self.discard()


def _peek_validator(items_key: str) -> SchemaValidator:
    if (validator := _PEEK_VALIDATORS.get(items_key)) is None:
        item = cs.typed_dict_schema(
            {"id": cs.typed_dict_field(cs.any_schema(), required=False)}, extra_behavior="ignore"
        )
        page = cs.typed_dict_schema(
            {
                items_key: cs.typed_dict_field(cs.list_schema(item)),
                "has_more": cs.typed_dict_field(cs.bool_schema(strict=True)),
            },
            extra_behavior="ignore",
        )
        validator = _PEEK_VALIDATORS[items_key] = SchemaValidator(page)
    return validator


_PEEK_VALIDATORS: dict[str, SchemaValidator] = {}


def _peek_page(model: type[pydantic.BaseModel], body: bytes) -> tuple[str | None, bool] | None:
    """A page body's last item id and ``has_more``, read without building the models; else ``None``."""
    items_key = getattr(model, "items_key", None)
    if not isinstance(items_key, str):
        return None
    try:
        with _gc_paused:
            page = _peek_validator(items_key).validate_json(body)
    except pydantic.ValidationError:
        return None
    items = page[items_key]
    last_id = items[-1].get("id") if items else None
    return (last_id if isinstance(last_id, str) else None), page["has_more"]


async def _acquire(gate: asyncio.Semaphore, timeout: float) -> None:
    """Take a slot of ``gate`` within ``timeout`` seconds (``asyncio.TimeoutError`` if none frees up)."""
    if not gate.locked():
        await gate.acquire()  # a free slot is taken at once, without suspending
        return
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            await gate.acquire()
    else:  # pragma: no cover - Python 3.10
        # wait_for, unlike asyncio.timeout, can swallow a cancellation that arrives as the slot frees up.
        await asyncio.wait_for(gate.acquire(), timeout)


def _normalise_base_url(base_url: str) -> str:
    url = (base_url or "").strip()
    if not url:
        return DEFAULT_BASE_URL
    if "://" not in url:
        url = f"https://{url}"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = httpx.URL()
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"The Runloop base URL must be an http(s) URL with a host, got {base_url!r}")
    if not _HOST_PATTERN.fullmatch(parsed.raw_host):
        # httpx percent-encodes a space in a host ("h h" becomes "h%20h"); only DNS, after every retry,
        # would say that no such host exists.
        raise ValueError(
            "The Runloop base URL's host must be a host name or an IP address (letters, digits, '.', '-'), "
            f"got {parsed.host!r}"
        )
    if parsed.port is not None and not 0 < parsed.port <= _MAX_PORT:
        # httpx parses any number; the socket layer would fail only at the first request, and (async)
        # with an OverflowError inside an ExceptionGroup.
        raise ValueError(f"The Runloop base URL's port must be from 1 to {_MAX_PORT}, got {parsed.port}")
    if parsed.query or parsed.userinfo:
        raise ValueError("The Runloop base URL must not carry a query string or credentials")
    return url.rstrip("/")


def _item_id(item: ApiView) -> str | None:
    item_id = getattr(item, "id", None)
    return item_id if isinstance(item_id, str) else None


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds from ``retry-after-ms``, else ``Retry-After`` as seconds or an HTTP date.

    A value that is no finite number of seconds (``inf``, ``nan``, ``1e400``, a date no calendar has)
    is ignored, as if the header were absent: the client's own backoff applies.
    """
    if (ms := _finite(headers.get("retry-after-ms"))) is not None:
        return max(0.0, ms / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _finite(value)) is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError, OverflowError, IndexError):
        # parsedate_to_datetime raises any of these for text that only looks like a date.
        return None


def _finite(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _first_error(exc: pydantic.ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"
