"""Serve an ASGI app with Hypercorn on a background thread: start, stop, context manager.

One port speaks both HTTP/1.1 and HTTP/2 over cleartext TCP: Hypercorn reads the first bytes of each
connection and, when they are the HTTP/2 connection preface (``PRI * HTTP/2.0``), answers in HTTP/2
("h2c with prior knowledge", what ``httpx.Client(http1=False, http2=True)`` and the Runloop TypeScript
SDK send on ``http://``); anything else is served as HTTP/1.1. (The ``Upgrade: h2c`` dance of HTTP/1.1
works too, for requests without a body.)

It binds only the host it is given (``127.0.0.1`` by default) and, with port 0, a free port chosen by
the OS, so parallel test runs never collide. It installs no signal handlers and leaves the host
process's logging configuration alone: Hypercorn's errors go to this module's logger (whose level is
set from ``log_level``) and propagate as usual, no handler is added; there is no access log and no
``server`` header. An idle keep-alive connection is kept open for
:data:`KEEP_ALIVE_TIMEOUT` seconds (clients poll less often than uvicorn's 5 s default would allow), and
there is no cap on the number of requests per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from types import TracebackType
from typing import Any, cast

# The key, in an HTTP scope's ``extensions``, of a callable that ends the request's TCP connection
# (every HTTP/2 stream on it too): how the emulator's drop_connection and truncate_body faults cut one.
from airflow_provider_runloop.testing.gateway import CLOSE_CONNECTION_EXTENSION

__all__ = ["CLOSE_CONNECTION_EXTENSION", "KEEP_ALIVE_TIMEOUT", "EmulatorServer"]

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

#: Seconds an idle HTTP/1.1 or HTTP/2 connection is kept open.
KEEP_ALIVE_TIMEOUT = 600.0
#: Seconds in-flight requests get to finish once :meth:`EmulatorServer.stop` is called.
GRACEFUL_TIMEOUT = 2.0


def _transport_behind(send: Any) -> asyncio.Transport | None:
    """The TCP transport behind Hypercorn's ``send``: stream -> protocol -> TCP server -> writer.

    Hypercorn keeps no public handle on a request's connection; this walks its (0.18) objects and
    returns ``None`` if they ever change (the faults that need it then answer 500).
    """
    stream = getattr(send, "__self__", None)
    protocol = getattr(getattr(stream, "send", None), "__self__", None)
    tcp_server = getattr(getattr(protocol, "send", None), "__self__", None)
    writer = getattr(tcp_server, "writer", None)
    transport = getattr(writer, "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


def _end_connection(transport: asyncio.Transport) -> None:
    """Send FIN now, so the client reads the end of the stream ("server disconnected").

    Not an abort: closing the socket while the client's last frames (an HTTP/2 SETTINGS ack, a window
    update) are still unread would send a reset instead. Hypercorn closes the socket when the client
    has closed its end (or at :meth:`EmulatorServer.stop`); nothing more can be written on it.
    """
    if transport.can_write_eof():
        transport.write_eof()
    else:
        transport.abort()


class _ServedApp:
    """What Hypercorn runs: lifespan answered here (the app never sees it), no websockets, and the
    connection-closing extension added to each HTTP scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        kind = scope["type"]
        if kind == "http":
            transport = _transport_behind(send)
            if transport is not None:
                extensions = scope.setdefault("extensions", {})
                extensions[CLOSE_CONNECTION_EXTENSION] = partial(_end_connection, transport)
            await self.app(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class EmulatorServer:
    """A Hypercorn server running ``app`` in a daemon thread, HTTP/1.1 and h2c on one port.

    :param app: the ASGI app to serve.
    :param host: the address to bind; only this one is bound.
    :param port: the port; 0 picks a free one (read it back from :attr:`port`).
    :param log_level: the level of the logger Hypercorn reports errors to (this module's).

    Both protocols are served on the port by default: HTTP/1.1, and HTTP/2 over cleartext with prior
    knowledge (the client opens with the HTTP/2 preface). Idle connections of either stay open for
    :data:`KEEP_ALIVE_TIMEOUT` (600) seconds; :meth:`stop` closes them at once and gives requests in
    flight :data:`GRACEFUL_TIMEOUT` seconds.
    """

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _config(self) -> Any:
        from hypercorn.config import Config

        error_logger = logging.getLogger(__name__)
        error_logger.setLevel(self._log_level.upper())
        config = Config()
        config.accesslog = None
        config.errorlog = error_logger  # a Logger is used as it is: no handler is added to it
        config.include_server_header = False
        config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
        config.keep_alive_max_requests = sys.maxsize
        config.graceful_timeout = GRACEFUL_TIMEOUT
        return config

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and return once the socket is bound; raises ``RuntimeError`` if it cannot."""
        if self.running:
            return
        from hypercorn.asyncio.run import worker_serve
        from hypercorn.config import Sockets
        from hypercorn.utils import wrap_app

        config = self._config()
        try:
            sock = _bind(self.host, self._requested_port)
        except OSError as error:
            raise RuntimeError(
                f"the Runloop emulator could not start on {self.host}:{self._requested_port}: {error}"
            ) from error
        port: int = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        shutdown = asyncio.Event()
        serving = threading.Event()

        async def shutdown_trigger() -> None:
            # Hypercorn awaits this once every listener is accepting connections.
            serving.set()
            await shutdown.wait()

        async def serve() -> None:
            # Hypercorn's ASGI types are TypedDicts; the emulator's apps take plain mappings.
            app = wrap_app(cast(Any, _ServedApp(self.app)), config.wsgi_max_body_size, "asgi")
            sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
            await worker_serve(app, config, sockets=sockets, shutdown_trigger=shutdown_trigger)

        def run() -> None:
            try:
                loop.run_until_complete(serve())
            finally:
                sock.close()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=f"runloop-emulator-{self.host}", daemon=True)
        thread.start()
        if not serving.wait(timeout):
            if thread.is_alive():
                loop.call_soon_threadsafe(shutdown.set)
                thread.join(timeout)
                raise RuntimeError(f"the Runloop emulator did not start within {timeout} s")
            raise RuntimeError(f"the Runloop emulator could not start on {self.host}:{port}")
        self._thread, self._loop, self._shutdown, self._port = thread, loop, shutdown, port

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end (idempotent)."""
        if self._thread is None or self._loop is None or self._shutdown is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server ended by itself
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(timeout)
        self._thread = self._loop = self._shutdown = None
        self._port = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
