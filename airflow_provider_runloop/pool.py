"""One HTTP connection pool per connection settings and event loop, shared by every async client.

A triggerer runs hundreds of waits on one event loop. Were each to build its own ``httpx.AsyncClient``,
each would hold its own pool and its own TLS context (hundreds of KiB, and tens of milliseconds of CPU
to build), and every poll would open new connections: over HTTPS, one TLS handshake per request. Here
every :class:`~airflow_provider_runloop.client.AsyncRunloopClient` of the same settings (base URL,
TLS verification, time-outs, protocol) on the same event loop borrows one ``httpx.AsyncClient``:

- **Borrowed, counted, closed by the last user.** :func:`borrow` hands out the loop's client and counts
  its borrowers; :func:`give_back` closes it when the last one returns it. One wait closing its client
  (a trigger that fired, or was canceled) never closes the pool under the others' requests.
- **No credentials in the pool.** The shared client carries no ``Authorization`` header: each request
  carries its own client's key, so two connections with different keys may share a pool safely.
- **Independent requests.** httpx/httpcore release a connection whose request was canceled (closing
  it if the response was not read): one trigger's cancellation or failure does not break the others'.
- **A gate in front of the pool.** At most :attr:`PoolSettings.in_flight` requests are handed to httpx
  at once; the others wait at the pool's :class:`asyncio.Semaphore` (as long as the pool time-out).
  httpcore scans its queue and every connection on each request in and out (and, for each idle
  connection, every connection again), so a pool of many HTTP/1.1 connections with a long queue costs
  CPU that grows with the square of both (measured on 2 cores, 100 requests at once: 8.7 ms of CPU per
  request with 32 connections, 1.9 ms with 4). HTTP/1.1 therefore keeps a small pool
  (:data:`MAX_CONNECTIONS`); HTTP/2 multiplexes up to :data:`MAX_STREAMS` requests over one connection
  (2.0 ms per request at any concurrency), which is why it is the default over TLS.
- **Keep-alive longer than a poll.** Idle connections are kept :data:`KEEPALIVE_EXPIRY` seconds (httpx's
  default, 5 s, is shorter than most poll intervals, so each poll reconnected); a connection the server
  closed while idle is noticed and replaced before reuse.

Pools are per event loop because an httpx client's connections belong to the loop that opened them. A
loop that is garbage collected takes its entries with it.

This module does not import Airflow.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Final

import httpx

__all__ = [
    "KEEPALIVE_EXPIRY",
    "MAX_CONNECTIONS",
    "MAX_STREAMS",
    "PoolSettings",
    "SharedPool",
    "borrow",
    "borrowers",
    "give_back",
]

KEEPALIVE_EXPIRY: Final = 120.0
"""Seconds an idle connection is kept for reuse: longer than any usual poll interval."""

MAX_CONNECTIONS: Final = 8
"""HTTP/1.1 connections one pool opens at most, and so requests in flight at once (all kept alive when
idle, so a thousand waits share a warm pool): at 50 ms a request, 160 requests a second."""

MAX_STREAMS: Final = 64
"""HTTP/2 requests one pool has in flight at once, multiplexed over one connection: at 50 ms a
request, 1,280 requests a second."""


@dataclass(frozen=True)
class PoolSettings:
    """What decides whether two clients may share a pool (everything but the key)."""

    base_url: str
    timeout: float
    connect_timeout: float
    verify: bool | str
    http2: bool
    user_agent: str

    def async_client(self, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        """A new ``httpx.AsyncClient`` with these settings and no credentials."""
        return httpx.AsyncClient(**self._client_options(), transport=transport)

    def sync_client(self, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        """A new ``httpx.Client`` with these settings and no credentials (not shared: one per client)."""
        return httpx.Client(**self._client_options(), transport=transport)

    def _client_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "timeout": self._timeout(),
            "headers": self._headers(),
            "follow_redirects": True,
            "limits": self._limits(),
            "verify": self.verify,
            "http1": self._http1(),
            "http2": self.http2,
        }

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=self.connect_timeout)

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": self.user_agent}

    @staticmethod
    def _limits() -> httpx.Limits:
        return httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )

    @property
    def in_flight(self) -> int:
        """How many requests the shared pool hands to httpx at once (its gate)."""
        return MAX_STREAMS if self.http2 else MAX_CONNECTIONS

    def _http1(self) -> bool:
        # HTTP/2 is negotiated over TLS (ALPN, falling back to HTTP/1.1); on a cleartext http:// URL it
        # can only be spoken from the first byte (prior knowledge, h2c), so HTTP/1.1 is then off.
        return not (self.http2 and self.base_url.startswith("http://"))


@dataclass
class SharedPool:
    """What :func:`borrow` hands out: the loop's shared client, and the gate every request passes."""

    http: httpx.AsyncClient
    gate: asyncio.Semaphore


@dataclass
class _Entry:
    pool: SharedPool
    borrowers: int


_lock = threading.Lock()
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PoolSettings, _Entry]] = (
    weakref.WeakKeyDictionary()
)


def borrow(settings: PoolSettings) -> SharedPool:
    """The running loop's shared pool for ``settings`` (made on first use); call :func:`give_back`.

    :raises RuntimeError: when no event loop is running.
    """
    loop = asyncio.get_running_loop()
    with _lock:
        entries = _pools.setdefault(loop, {})
        entry = entries.get(settings)
        if entry is None or entry.pool.http.is_closed:
            pool = SharedPool(settings.async_client(), asyncio.Semaphore(settings.in_flight))
            entry = entries[settings] = _Entry(pool, 0)
        entry.borrowers += 1
        return entry.pool


async def give_back(settings: PoolSettings, pool: SharedPool) -> None:
    """Return a pool :func:`borrow` gave; the last borrower's return closes it."""
    loop = asyncio.get_running_loop()
    with _lock:
        entries = _pools.get(loop, {})
        entry = entries.get(settings)
        if entry is None or entry.pool is not pool:
            # Borrowed on another loop (now gone) or already closed: nothing of this loop to return.
            last = False
        else:
            entry.borrowers -= 1
            last = entry.borrowers <= 0
            if last:
                del entries[settings]
    if last:
        await pool.http.aclose()


def borrowers(settings: PoolSettings) -> int:
    """How many clients on the running loop hold the shared client for ``settings`` (0: none open)."""
    loop = asyncio.get_running_loop()
    with _lock:
        entry = _pools.get(loop, {}).get(settings)
        return entry.borrowers if entry is not None else 0
