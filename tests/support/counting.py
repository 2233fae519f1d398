"""An ASGI wrapper that counts requests, response body bytes and connections, to measure what a poll costs."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class Traffic:
    requests: int
    body_bytes: int
    connections: int  # distinct client (address, port) pairs: the TCP connections requests came on


class CountingApp:
    """Wraps an ASGI app; ``snapshot()`` tells how many HTTP requests it served and body bytes it sent."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._requests = 0
        self._bytes = 0
        self._clients: set[tuple[str, int]] = set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        with self._lock:
            self._requests += 1
            client = scope.get("client")
            if client is not None:
                self._clients.add((client[0], client[1]))

        async def counting_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body":
                with self._lock:
                    self._bytes += len(message.get("body", b""))
            await send(message)

        await self._app(scope, receive, counting_send)

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
            self._bytes = 0
            self._clients.clear()

    def snapshot(self) -> Traffic:
        with self._lock:
            return Traffic(self._requests, self._bytes, len(self._clients))
