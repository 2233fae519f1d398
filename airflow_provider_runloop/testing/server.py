"""Serve an ASGI app with uvicorn on a background thread: start, stop, context manager.

It binds only the host it is given (``127.0.0.1`` by default) and, with port 0, a free port chosen by
the OS, so parallel test runs never collide. uvicorn installs no signal handlers off the main thread,
so the host process keeps its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["EmulatorServer"]

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class EmulatorServer:
    """A uvicorn server running ``app`` in a daemon thread.

    :param app: the ASGI app to serve.
    :param host: the address to bind; only this one is bound.
    :param port: the port; 0 picks a free one (read it back from :attr:`port`).
    :param log_level: uvicorn's log level.
    """

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
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

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and return once the socket is bound; raises ``RuntimeError`` if it cannot."""
        if self.running:
            return
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self._requested_port,
            log_level=self._log_level,
            log_config=None,  # leave the host process's logging configuration alone
            lifespan="off",
            ws="none",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"runloop-emulator-{self.host}", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(
                    f"the Runloop emulator could not start on {self.host}:{self._requested_port}"
                )
            if time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(f"the Runloop emulator did not start within {timeout} s")
            time.sleep(0.002)
        self._server, self._thread = server, thread
        self._port = server.servers[0].sockets[0].getsockname()[1]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end (idempotent)."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server = self._thread = None
        self._port = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
