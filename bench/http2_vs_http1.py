"""What a small GET costs in CPU: HTTP/1.1 pooled, HTTP/2 prior knowledge, or a new HTTP/1.1 client each.

Run: ``.venv/bin/python bench/http2_vs_http1.py [--requests 1000] [--repeats 3]`` (not part of
``make test``). Writes ``bench/results/http2_vs_http1.json`` (not committed) and prints a table.

The emulator is served by a child process (this file with ``--serve``: an ``EmulatorServer``, so
HTTP/1.1 and h2c on one port, with a started scripted run of 10 scenarios on a manual clock) behind a
counting ASGI wrapper: distinct client ports (= TCP connections), requests and the child's own CPU time,
read and reset on ``/_bench/stats`` (not counted). This process runs, in one asyncio loop, N concurrent
GETs of each endpoint -- ``/v1/benchmark_runs/{id}`` and
``/v1/benchmark_runs/{id}/scenario_runs?limit=1&include_total_count=true`` -- three ways:

``http1_shared``
    one ``httpx.AsyncClient`` (HTTP/1.1, keep-alive, ``Limits(max_connections=100, keepalive_expiry=120)``)
    for all N: the baseline.
``http2``
    one ``httpx.AsyncClient(http1=False, http2=True)``: every request a stream of one connection (the
    server allows 100 concurrent streams; httpx queues the rest).
``http1_per_request``
    a new ``httpx.AsyncClient`` per request (the old way), at most 100 at a time. A client's set-up
    (its TLS context) dominates, so ``--per-request-requests`` can make these batches smaller.

Client CPU is ``time.process_time()`` of this process around the whole batch (client set-up and
close included), divided by N; server CPU is the child's, the same way. Each batch is repeated and the
median is reported, with its ratio to ``http1_shared``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results" / "http2_vs_http1.json"
STATS_PATH = "/_bench/stats"
VARIANTS = ("http1_shared", "http2", "http1_per_request")
POOL_LIMITS = httpx.Limits(max_connections=100, keepalive_expiry=120)
# A batch queues most of its requests behind 100 connections or streams: no limit on that wait.
TIMEOUT = httpx.Timeout(60, pool=None)


# ------------------------------------------------------------------------------------------- child


def serve() -> int:
    from airflow_provider_runloop.testing import EmulatorServer, ManualClock, RunloopEmulator

    emulator = RunloopEmulator(clock=ManualClock(), seed=1)
    run_id = emulator.start_scripted_run(script={"scenario_count": 10, "timing": {"start_interval": 0}})
    emulator.advance(5)
    ports: set[int] = set()
    counts = {"requests": 0}
    lock = threading.Lock()

    async def counting(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            with lock:
                stats: dict[str, float] = {"connections": len(ports), "requests": counts["requests"]}
                stats["cpu_seconds"] = time.process_time()
                ports.clear()
                counts["requests"] = 0
            body = json.dumps(stats).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http":
            with lock:
                ports.add(scope["client"][1])
                counts["requests"] += 1
        await emulator.app(scope, receive, send)

    with EmulatorServer(counting) as server:
        print(json.dumps({"base_url": server.base_url, "api_key": emulator.api_key, "run_id": run_id}))
        sys.stdout.flush()
        sys.stdin.read()  # serve until the parent closes our stdin
    return 0


# ------------------------------------------------------------------------------------------ parent


async def _batch(variant: str, base_url: str, headers: dict[str, str], path: str, n: int) -> None:
    if variant == "http1_shared":
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=POOL_LIMITS, timeout=TIMEOUT
        ) as c:
            responses = await asyncio.gather(*(c.get(path) for _ in range(n)))
    elif variant == "http2":
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, http1=False, http2=True, timeout=TIMEOUT
        ) as c:
            responses = await asyncio.gather(*(c.get(path) for _ in range(n)))
    else:
        gate = asyncio.Semaphore(100)

        async def one() -> httpx.Response:
            async with gate, httpx.AsyncClient(base_url=base_url, headers=headers, timeout=TIMEOUT) as c:
                return await c.get(path)

        responses = await asyncio.gather(*(one() for _ in range(n)))
    bad = [r.status_code for r in responses if r.status_code != 200]
    assert not bad, f"{variant} {path}: statuses {sorted(set(bad))}"
    want = "HTTP/2" if variant == "http2" else "HTTP/1.1"
    assert {r.http_version for r in responses} == {want}


def _stats(stats_client: httpx.Client) -> dict[str, Any]:
    result: dict[str, Any] = stats_client.get(STATS_PATH).json()
    return result


def measure(n: int, repeats: int, per_request_n: int) -> dict[str, Any]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        info = json.loads(child.stdout.readline())
        base_url, run_id = info["base_url"], info["run_id"]
        headers = {"Authorization": f"Bearer {info['api_key']}"}
        endpoints = {
            "get_run": f"/v1/benchmark_runs/{run_id}",
            "count_scenario_runs": (
                f"/v1/benchmark_runs/{run_id}/scenario_runs?limit=1&include_total_count=true"
            ),
        }
        samples: dict[str, dict[str, list[dict[str, float]]]] = {
            e: {v: [] for v in VARIANTS} for e in endpoints
        }
        with httpx.Client(base_url=base_url, headers=headers) as stats_client:
            loop = asyncio.new_event_loop()
            try:
                for variant in VARIANTS:  # warm-up: imports, code paths, the emulator's caches
                    loop.run_until_complete(_batch(variant, base_url, headers, endpoints["get_run"], 50))
                for _ in range(repeats):
                    for endpoint, path in endpoints.items():
                        for variant in VARIANTS:
                            count = per_request_n if variant == "http1_per_request" else n
                            before = _stats(stats_client)
                            wall, cpu = time.perf_counter(), time.process_time()
                            loop.run_until_complete(_batch(variant, base_url, headers, path, count))
                            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                            after = _stats(stats_client)
                            assert after["requests"] == count, after
                            server_cpu = after["cpu_seconds"] - before["cpu_seconds"]
                            samples[endpoint][variant].append(
                                {
                                    "requests": count,
                                    "client_cpu_us": 1e6 * cpu / count,
                                    "server_cpu_us": 1e6 * server_cpu / count,
                                    "wall_s": wall,
                                    "connections": after["connections"],
                                }
                            )
            finally:
                loop.close()
    finally:
        child.stdin.close()
        child.wait(30)
    results: dict[str, Any] = {
        "requests_per_batch": n,
        "per_request_requests_per_batch": per_request_n,
        "repeats": repeats,
        "endpoints": {},
    }
    for endpoint, by_variant in samples.items():
        rows: dict[str, Any] = {}
        for variant, runs in by_variant.items():
            rows[variant] = {
                key: statistics.median(run[key] for run in runs)
                for key in ("client_cpu_us", "server_cpu_us", "wall_s", "connections")
            }
            rows[variant]["samples"] = runs
        base = rows["http1_shared"]
        for row in rows.values():
            row["client_cpu_ratio"] = row["client_cpu_us"] / base["client_cpu_us"]
            row["server_cpu_ratio"] = row["server_cpu_us"] / base["server_cpu_us"]
        results["endpoints"][endpoint] = {"path": endpoints[endpoint], "variants": rows}
    return results


def print_table(results: dict[str, Any]) -> None:
    n, repeats = results["requests_per_batch"], results["repeats"]
    per_request_n = results["per_request_requests_per_batch"]
    print(
        f"{n} concurrent GETs per batch ({per_request_n} for http1_per_request), median of {repeats};"
        " CPU per request in microseconds"
    )
    header = f"{'endpoint':20} {'variant':18} {'client CPU':>10} {'ratio':>6} {'server CPU':>10} {'ratio':>6}"
    print(header + f" {'wall s':>7} {'TCP conns':>9}")
    for endpoint, data in results["endpoints"].items():
        for variant, row in data["variants"].items():
            print(
                f"{endpoint:20} {variant:18} {row['client_cpu_us']:10.0f} {row['client_cpu_ratio']:6.2f}"
                f" {row['server_cpu_us']:10.0f} {row['server_cpu_ratio']:6.2f} {row['wall_s']:7.2f}"
                f" {row['connections']:9.0f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=1000, help="GETs per batch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="batches per cell (default: %(default)s)")
    parser.add_argument(
        "--per-request-requests",
        type=int,
        help="GETs per http1_per_request batch (default: --requests; each costs a client's set-up)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    results = measure(args.requests, args.repeats, args.per_request_requests or args.requests)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    print(f"written: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
