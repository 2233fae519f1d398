"""The emulator server speaks HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port, on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from airflow_provider_runloop.testing import EmulatorServer, ManualClock, RunloopEmulator

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type 0x4, flags 0, stream 0


@dataclass
class Served:
    """An emulator on its own server, and the (HTTP version, client port) of every request it got."""

    emulator: RunloopEmulator
    server: EmulatorServer
    seen: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ports(self) -> set[int]:
        return {port for _, port in self.seen}


@pytest.fixture
def served() -> Iterator[Served]:
    emulator = RunloopEmulator(clock=ManualClock())
    app = emulator.app  # built here (FastAPI's first import can be slow), not in the first request
    seen: list[tuple[str, int]] = []

    async def counting(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http":
            seen.append((scope["http_version"], scope["client"][1]))
        await app(scope, receive, send)

    with EmulatorServer(counting) as server:
        yield Served(emulator, server, seen)


def _client(served: Served, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        base_url=served.server.base_url, headers=served.emulator.auth_headers, timeout=10, **kwargs
    )


def test_an_http2_prior_knowledge_client_lists_and_gets_benchmark_runs(served: Served) -> None:
    run_id = served.emulator.start_scripted_run(script={"scenario_count": 3, "timing": {"start_interval": 0}})
    with _client(served, http1=False, http2=True) as http:
        listing = http.get("/v1/benchmark_runs")
        run = http.get(f"/v1/benchmark_runs/{run_id}")
        scenario_runs = http.get(f"/v1/benchmark_runs/{run_id}/scenario_runs", params={"limit": 2})
    assert [r.http_version for r in (listing, run, scenario_runs)] == ["HTTP/2"] * 3
    assert listing.status_code == 200
    assert [item["id"] for item in listing.json()["runs"]] == [run_id]
    assert run.json()["id"] == run_id
    assert len(scenario_runs.json()["runs"]) == 2
    assert {version for version, _ in served.seen} == {"2"}
    assert len(served.ports) == 1


async def test_fifty_concurrent_http2_requests_share_one_connection(served: Served) -> None:
    run_id = served.emulator.start_scripted_run(script={"scenario_count": 5})
    async with httpx.AsyncClient(
        base_url=served.server.base_url,
        headers=served.emulator.auth_headers,
        http1=False,
        http2=True,
        timeout=10,
    ) as http:
        responses = await asyncio.gather(*(http.get(f"/v1/benchmark_runs/{run_id}") for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    assert {r.http_version for r in responses} == {"HTTP/2"}
    assert {r.json()["id"] for r in responses} == {run_id}
    assert len(served.seen) == 50
    assert len(served.ports) == 1  # one TCP connection, fifty streams


def test_http1_is_still_served_on_the_same_port(served: Served) -> None:
    with _client(served) as http:
        first = http.get("/v1/benchmark_runs")
        second = http.get("/v1/benchmarks")
    assert (first.status_code, second.status_code) == (200, 200)
    assert {first.http_version, second.http_version} == {"HTTP/1.1"}
    assert served.seen[0][0] == "1.1"
    assert len(served.ports) == 1  # kept alive
    assert "server" not in first.headers


def test_the_h2c_preface_is_answered_with_a_settings_frame(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as raw:
        raw.sendall(PREFACE + EMPTY_SETTINGS_FRAME)
        header = b""
        while len(header) < 9:
            chunk = raw.recv(9 - len(header))
            assert chunk, "the server closed the connection"
            header += chunk
    assert not header.startswith(b"HTTP/1.1")
    length, kind, flags, stream_id = struct.unpack(">IBBI", b"\x00" + header)
    assert kind == 0x4  # SETTINGS
    assert flags & 0x1 == 0  # the server's own settings, not an ACK
    assert stream_id == 0
    assert length % 6 == 0


def test_a_request_driven_by_the_h2_library(served: Served) -> None:
    connection = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    host = f"127.0.0.1:{served.server.port}"
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as raw:
        raw.sendall(connection.data_to_send())
        stream_id = connection.get_next_available_stream_id()
        headers = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", host),
            (":path", "/v1/benchmarks"),
            *served.emulator.auth_headers.items(),
        ]
        connection.send_headers(stream_id, headers, end_stream=True)
        raw.sendall(connection.data_to_send())
        status, body, ended = None, b"", False
        while not ended:
            data = raw.recv(65536)
            assert data, "the server closed the connection"
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            raw.sendall(connection.data_to_send())
    assert status == b"200"
    assert body == b'{"benchmarks":[],"has_more":false,"total_count":0}'


def test_a_dropped_connection_fault_over_http2(served: Served) -> None:
    served.emulator.add_fault("drop_connection", times=1)
    with _client(served, http1=False, http2=True) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get("/v1/benchmarks")
        again = http.get("/v1/benchmarks")  # a new connection
    assert (again.status_code, again.http_version) == (200, "HTTP/2")
    assert len(served.ports) == 2
    assert [e.fault for e in served.emulator.requests()] == ["drop_connection", None]


def test_stopping_with_an_idle_http2_connection_open_ends_the_thread() -> None:
    emulator = RunloopEmulator(clock=ManualClock())
    server = EmulatorServer(emulator.app)
    server.start()
    with httpx.Client(
        base_url=server.base_url, headers=emulator.auth_headers, http1=False, http2=True, timeout=10
    ) as http:
        assert http.get("/v1/benchmarks").http_version == "HTTP/2"  # the connection stays open, idle
        server.stop()
        assert not server.running
        with pytest.raises(httpx.TransportError):
            http.get("/v1/benchmarks")


def test_the_server_adds_no_logging_handler_and_no_access_log(caplog: pytest.LogCaptureFixture) -> None:
    watched = ["", "hypercorn.error", "hypercorn.access", "airflow_provider_runloop.testing.server"]
    before = {name: list(logging.getLogger(name).handlers) for name in watched}
    emulator = RunloopEmulator(clock=ManualClock())
    with (
        caplog.at_level(logging.DEBUG),
        EmulatorServer(emulator.app) as server,
        httpx.Client(base_url=server.base_url, headers=emulator.auth_headers) as http,
    ):
        assert http.get("/v1/benchmarks").status_code == 200
    assert {name: list(logging.getLogger(name).handlers) for name in watched} == before
    assert not [r for r in caplog.records if r.name.startswith("hypercorn") or "GET /v1" in r.getMessage()]
