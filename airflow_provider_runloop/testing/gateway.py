"""The emulator's front door, an ASGI wrapper around the API app: auth, faults, de-duplication, logging.

Order per request: bearer auth (401 ``{"message": ...}``; only ``GET /_emulator/health`` is open), then
for ``/v1`` requests the faults that fire (:mod:`.faults`), the optional ``x-request-id`` replay
(unverified choice 15 in ``docs/emulator.md``), the app itself, and finally the request log. Every
response carries ``x-request-id`` (the request's own, or a generated one).

A dropped or cut connection needs a way to end the TCP connection, which the emulator's server
(:mod:`.server`) puts in the scope's ``extensions`` (:data:`CLOSE_CONNECTION_EXTENSION`; over HTTP/2 that
ends every stream of the connection, as a real dropped connection would). In-process
(``httpx.ASGITransport``) there is no connection to cut, so those faults raise
:class:`httpx.RemoteProtocolError` inside the client instead, which is what the client would see over a
real socket.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from airflow_provider_runloop.testing.clock import Clock
from airflow_provider_runloop.testing.faults import PAGE_MEMORY_KINDS, Fault, FaultInjector
from airflow_provider_runloop.testing.request_log import LoggedRequest, RequestLog
from airflow_provider_runloop.testing.settings import EmulatorSettings
from airflow_provider_runloop.testing.state import EmulatorState

__all__ = ["CLOSE_CONNECTION_EXTENSION", "CONTROL_PREFIX", "HEALTH_PATH", "EmulatorGateway"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The key, in an HTTP scope's ``extensions``, of a callable that ends the request's TCP connection.
CLOSE_CONNECTION_EXTENSION = "runloop_emulator.close_connection"
CONTROL_PREFIX = "/_emulator/"
HEALTH_PATH = "/_emulator/health"
_SCENARIO_RUN_LIST_SUFFIX = "/scenario_runs"
_DEDUPE_MEMORY = 10_000


@dataclass
class _Exchange:
    """What the request log records about one request: the status sent and the fault that fired."""

    status: int | None = None
    fault: str | None = None


@dataclass
class _Captured:
    status: int = 500
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


def _json_error(status: int, message: str, extra_headers: Sequence[tuple[bytes, bytes]] = ()) -> _Captured:
    body = json.dumps({"message": message}).encode()
    headers = [(b"content-type", b"application/json"), *extra_headers]
    return _Captured(status, headers, body)


def _closer_of(scope: Scope) -> Callable[[], None] | None:
    """The server's "end this connection" callable, or ``None`` (in-process ASGI)."""
    close = (scope.get("extensions") or {}).get(CLOSE_CONNECTION_EXTENSION)
    return close if callable(close) else None


class EmulatorGateway:
    """Wraps the API app (``app``) with auth, faults, de-duplication and the request log."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str,
        state: EmulatorState,
        clock: Clock,
        faults: FaultInjector,
        request_log: RequestLog,
        settings: EmulatorSettings,
    ) -> None:
        self.app = app
        self._expected_authorization = f"Bearer {api_key}".encode()
        self.state = state
        self.clock = clock
        self.faults = faults
        self.request_log = request_log
        self.settings = settings
        self._last_pages: dict[tuple[str, str, tuple[tuple[str, str], ...]], _Captured] = {}
        self._replies: OrderedDict[str, _Captured] = OrderedDict()

    def _authorized(self, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        scheme, _, key = value.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(f"Bearer {key.strip()}".encode(), self._expected_authorization)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"].upper()
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await _read_body(receive)
        seq = self.request_log.next_seq()
        request_id = headers.get("x-request-id")
        response_request_id = (request_id or f"emu-req-{seq}").encode("latin-1")
        is_control = path.startswith(CONTROL_PREFIX)

        exchange = _Exchange()
        logged = False

        def log(status: int | None) -> None:
            nonlocal logged
            if logged or is_control:
                return
            logged = True
            self.request_log.append(
                LoggedRequest(
                    seq=seq,
                    time_ms=self.clock.now_ms(),
                    method=method,
                    path=path,
                    query=query,
                    status=status,
                    request_id=request_id,
                    fault=exchange.fault,
                    headers={k: v for k, v in headers.items() if k != "authorization"},
                    body=_parsed(body),
                )
            )

        started_status: int | None = None

        async def send_logged(message: Message) -> None:
            # Logged before the last byte of the answer leaves: once a client has its response, the
            # request is in the log (a server may still be busy with the connection after that send).
            nonlocal started_status
            if message["type"] == "http.response.start":
                started_status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                log(started_status)
            await send(message)

        try:
            if not self._authorized(headers):
                captured = _json_error(
                    401, "Missing or invalid API key: send 'Authorization: Bearer <api key>'."
                )
                exchange.status = await self._send(send_logged, captured, response_request_id)
            elif is_control:
                captured = await self._call_app(scope, body)
                exchange.status = await self._send(send_logged, captured, response_request_id)
            else:
                await self._serve_api(
                    exchange, scope, send_logged, method, path, query, headers, body, response_request_id
                )
        finally:
            # Logged even when a fault cut the connection (in-process, that raises into the client).
            log(exchange.status)

    async def _serve_api(
        self,
        exchange: _Exchange,
        scope: Scope,
        send: Send,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        response_request_id: bytes,
    ) -> None:
        params = dict(parse_qsl(query, keep_blank_values=True))
        page_key = (method, path, tuple(sorted((k, v) for k, v in params.items() if k != "starting_after")))
        cursor = params.get("starting_after") or None

        def applicable(fault: Fault) -> bool:
            if fault.needs_previous_page:
                return method == "GET" and cursor is not None and page_key in self._last_pages
            if fault.kind == "insert_item":
                is_scenario_run_list = (
                    path.endswith(_SCENARIO_RUN_LIST_SUFFIX) or path == "/v1/scenarios/runs"
                )
                return method == "GET" and cursor is not None and is_scenario_run_list
            return True

        latency, fault = self.faults.select(method, path, applicable)
        if latency:
            await asyncio.sleep(latency)
        kind = exchange.fault = fault.kind if fault is not None else None

        if fault is not None and fault.answers_with_status:
            extra: list[tuple[bytes, bytes]] = []
            if fault.retry_after is not None:
                retry_after = fault.retry_after
                text = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
                extra.append((b"retry-after", text.encode()))
            if fault.should_retry is not None:
                extra.append((b"x-should-retry", b"true" if fault.should_retry else b"false"))
            message = fault.error_message(headers)
            exchange.status = await self._send(
                send, _json_error(fault.status, message, extra), response_request_id
            )
            return
        if kind == "drop_connection":
            await _cut_connection(scope, send, None)
            return
        if kind == "repeat_page":
            exchange.status = await self._send(send, self._last_pages[page_key], response_request_id)
            return
        if fault is not None and kind == "shift_page":
            shifted = fault.shifted_query(query, self._last_pages[page_key].body)
            scope = {**scope, "query_string": shifted.encode("latin-1")}
        if kind == "insert_item" and cursor is not None:
            with self.state.lock:
                self.state.insert_scenario_run_before(self.clock.now_ms(), cursor)

        request_id = headers.get("x-request-id")
        if (
            self.settings.dedupe_request_ids
            and method != "GET"
            and request_id
            and request_id in self._replies
        ):
            exchange.fault = "replayed"
            exchange.status = await self._send(send, self._replies[request_id], response_request_id)
            return

        captured = await self._call_app(scope, body)

        if (
            method == "GET"
            and captured.status == 200
            and self.faults.has_active(PAGE_MEMORY_KINDS, method, path)
        ):
            self._last_pages[page_key] = captured
        if self.settings.dedupe_request_ids and method != "GET" and request_id:
            self._replies[request_id] = captured
            while len(self._replies) > _DEDUPE_MEMORY:
                self._replies.popitem(last=False)

        if kind == "truncate_body":
            await _cut_connection(scope, send, (captured, response_request_id))
            return
        if fault is not None and kind == "delay_answer":
            await asyncio.sleep(fault.latency_seconds)
        if fault is not None and kind == "unknown_state" and captured.status == 200:
            captured = _Captured(captured.status, captured.headers, fault.restated_body(captured.body))
        if kind == "malformed_body":
            captured = _Captured(
                captured.status,
                [(k, v) for k, v in captured.headers if k.lower() != b"content-length"],
                captured.body[: max(1, len(captured.body) // 2)],
            )
        exchange.status = await self._send(send, captured, response_request_id)

    async def _call_app(self, scope: Scope, body: bytes) -> _Captured:
        captured = _Captured()
        chunks: list[bytes] = []
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured.status = message["status"]
                captured.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        captured.body = b"".join(chunks)
        return captured

    @staticmethod
    async def _send(send: Send, captured: _Captured, request_id: bytes) -> int:
        await send(
            {
                "type": "http.response.start",
                "status": captured.status,
                "headers": _headers(captured, request_id),
            }
        )
        await send({"type": "http.response.body", "body": captured.body, "more_body": False})
        return captured.status


def _headers(captured: _Captured, request_id: bytes) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in captured.headers if k.lower() not in (b"content-length", b"x-request-id")]
    headers.append((b"content-length", str(len(captured.body)).encode()))
    headers.append((b"x-request-id", request_id))
    return headers


async def _cut_connection(scope: Scope, send: Send, partial: tuple[_Captured, bytes] | None) -> None:
    """Close the connection, after the headers and half the body of ``partial`` if given."""
    close = _closer_of(scope)
    if close is None:
        message = (
            "Server disconnected without sending a response."
            if partial is None
            else "peer closed connection without sending complete message body (emulated)"
        )
        raise httpx.RemoteProtocolError(message)
    if partial is not None:
        captured, request_id = partial
        await send(
            {
                "type": "http.response.start",
                "status": captured.status,
                "headers": _headers(captured, request_id),
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": captured.body[: len(captured.body) // 2],
                "more_body": True,
            }
        )
    close()
    # Let the server notice the closed connection before the app returns, so it does not try to
    # answer with its own 500 on a dead socket.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _parsed(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
