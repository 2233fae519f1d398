"""A thousand waits on one triggerer: N ``RunloopBenchmarkRunTrigger``s in one event loop.

Two variants, each with its own emulator child process (``bench/_emulator_child.py``: counted
requests, bytes and client connections) and its own measuring process (so memory cannot mix), floor
first:

* ``floor``: the minimal hand-written wait: one shared ``httpx.AsyncClient`` (keep-alive, a pool of
  10 connections with at most 10 requests in flight), and per wait per poll only
  ``GET /v1/benchmark_runs/{id}`` + ``json.loads``;
* ``provider``: N ``RunloopBenchmarkRunTrigger(benchmark_run_id, deadline=now+duration+60,
  poll_interval, expected_scenario_count=K)``, their ``run()`` generators as tasks in one loop, as a
  triggerer runs them (Airflow and the provider imported first; the triggers' per-poll INFO log lines
  are written as Airflow configures logging, to ``bench/results/trigger_fanout.<variant>.log``).

The N waits spread over ``--runs`` benchmark runs of ``--scenarios`` scenario runs each, caught mid-way
on a clock that never moves (every poll is a steady poll), and start staggered over the first poll
interval. Measured over ``--duration`` seconds from the first start:

* event-loop lag: a ticker sleeps 0.1 s and records how late it woke (p50, p99, max);
* CPU of the measuring process, ``time.process_time()`` delta / wall, in % of one core;
* RSS growth: ``VmRSS`` at the end minus before the waits were created (and ``VmHWM``);
* connections opened (distinct client (host, port) pairs the server saw: a lower bound), requests;
* polls done (server-side ``GET /v1/benchmark_runs/{id}`` count) vs scheduled (N x window / interval;
  the window is the wall time the loop actually took, which a blocked loop stretches past --duration).

Ratios are provider / floor, measured in the same run. Writes ``bench/results/trigger_fanout.json``.
Not part of ``make test``::

    .venv/bin/python bench/trigger_fanout.py                 # 1,000 waits, 60 s each variant
    .venv/bin/python bench/trigger_fanout.py --duration 180  # the issue's 3 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _emulator_child import REPO, emulator_child, mid_way_script

RESULTS = REPO / "bench" / "results"
POLL_ROUTE = "GET /v1/benchmark_runs/{id}"
VARIANTS = ("floor", "provider")
CONNECTIONS_GOAL = 200  # "about the pool size": httpx's default pool holds at most 100
FLOOR_POOL = 10  # the floor's connections (and requests in flight)


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- measuring process ---------------------------------------------------------------------------------


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.1)
        lags.append(time.perf_counter() - started - 0.1)


async def _floor_wait(
    client: Any, gate: asyncio.Semaphore, run_id: str, interval: float, delay: float, errors: list[str]
) -> None:
    import httpx

    await asyncio.sleep(delay)
    while True:
        try:
            async with gate:
                response = await client.get(f"/v1/benchmark_runs/{run_id}")
            json.loads(response.content)
        except httpx.TransportError as exc:  # a failed poll is tried again at the next one
            errors.append(repr(exc))
        await asyncio.sleep(interval)


async def _trigger_wait(trigger: Any, delay: float, events: list[Any]) -> None:
    await asyncio.sleep(delay)
    async for event in trigger.run():
        events.append(event.payload)


async def _measure(args: argparse.Namespace, ready: dict[str, Any]) -> dict[str, Any]:
    import httpx

    from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger

    run_ids = [run_id for ids in ready["runs"] for run_id in ids]
    n, interval = args.triggers, args.poll_interval
    rss_before = _status_kib("VmRSS")
    events: list[Any] = []
    floor_errors: list[str] = []
    client = None
    if args.variant == "floor":
        # A small pool, and a gate of the same size in front of it: httpcore scans its whole queue on
        # every request in and out, so hundreds of requests queued inside it cost quadratic CPU (1,000
        # waits on one default client never got past their first poll). Idle connections are dropped
        # before uvicorn's 5 s keep-alive time-out can close them under a request.
        client = httpx.AsyncClient(
            base_url=ready["base_url"],
            headers={"Authorization": f"Bearer {ready['api_key']}"},
            timeout=30,
            limits=httpx.Limits(
                max_connections=FLOOR_POOL, max_keepalive_connections=FLOOR_POOL, keepalive_expiry=4
            ),
        )
        gate = asyncio.Semaphore(FLOOR_POOL)
        waits = [
            _floor_wait(client, gate, run_ids[i % len(run_ids)], interval, i * interval / n, floor_errors)
            for i in range(n)
        ]
    else:
        deadline = time.time() + args.duration + 60
        triggers = [
            RunloopBenchmarkRunTrigger(
                benchmark_run_id=run_ids[i % len(run_ids)],
                deadline=deadline,
                poll_interval=interval,
                expected_scenario_count=args.scenarios,
            )
            for i in range(n)
        ]
        waits = [_trigger_wait(trigger, i * interval / n, events) for i, trigger in enumerate(triggers)]
    await asyncio.to_thread(httpx.post, ready["base_url"] + "/__bench__/reset", timeout=30)

    lags: list[float] = []
    stop = asyncio.Event()
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    ticker = asyncio.create_task(_ticker(lags, stop))
    tasks = [asyncio.create_task(wait) for wait in waits]
    await asyncio.sleep(args.duration)
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    stats = (await asyncio.to_thread(httpx.get, ready["base_url"] + "/__bench__/stats", timeout=30)).json()
    rss_after, hwm = _status_kib("VmRSS"), _status_kib("VmHWM")
    stop.set()
    await ticker

    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = [
        repr(outcome)
        for outcome in outcomes
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError)
    ]
    if client is not None:
        await client.aclose()

    polls = stats["routes"].get(POLL_ROUTE, 0)
    # Over the window as it was: the loop can oversleep its end (a blocked loop wakes late).
    scheduled = n * wall / interval
    return {
        "variant": args.variant,
        "waits": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_pct_of_core": 100 * cpu / wall,
        "lag_p50_ms": 1000 * _percentile(lags, 0.50),
        "lag_p99_ms": 1000 * _percentile(lags, 0.99),
        "lag_max_ms": 1000 * max(lags, default=float("nan")),
        "lag_samples": len(lags),
        "rss_before_mib": rss_before / 1024,
        "rss_growth_mib": (rss_after - rss_before) / 1024,
        "vmhwm_mib": hwm / 1024,
        "connections": stats["connections"],
        "requests": stats["requests"],
        "body_bytes": stats["body_bytes"],
        "routes": stats["routes"],
        "polls_done": polls,
        "polls_scheduled": scheduled,
        "polls_done_pct": 100 * polls / scheduled,
        "requests_per_poll": stats["requests"] / polls if polls else float("nan"),
        "cpu_ms_per_poll": 1000 * cpu / polls if polls else float("nan"),
        "events": events[:5],
        "event_count": len(events),
        "crashed_tasks": crashed[:5],
        "crashed_count": len(crashed),
        "floor_poll_errors": floor_errors[:5],
        "floor_poll_error_count": len(floor_errors),
    }


def _measuring_main(args: argparse.Namespace) -> None:
    # As a triggerer: Airflow and the provider are imported before anything is measured.
    import airflow  # noqa: F401
    import httpx  # noqa: F401

    import airflow_provider_runloop.triggers.runloop  # noqa: F401

    ready = json.loads(args.ready)
    # The provider speaks HTTP/2 over https by default; to the emulator's http:// URL only when the
    # connection says so (h2c), which --protocol h2 does.
    extra = {"http2": args.protocol == "h2"}
    os.environ["AIRFLOW_CONN_RUNLOOP_DEFAULT"] = json.dumps(
        {"conn_type": "runloop", "host": ready["base_url"], "password": ready["api_key"], "extra": extra}
    )
    result = asyncio.run(_measure(args, ready))
    Path(args.result_file).write_text(json.dumps(result), encoding="utf-8")


# --- parent --------------------------------------------------------------------------------------------


def _run_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    benchmarks = [{"script": mid_way_script(args.scenarios, seed=1), "runs": args.runs}]
    with emulator_child(benchmarks) as child:
        ready = {"base_url": child.base_url, "api_key": child.api_key, "runs": child.runs}
        result_file = RESULTS / f".trigger_fanout.{variant}.json"
        log_file = RESULTS / f"trigger_fanout.{variant}.log"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--measure",
            variant,
            "--ready",
            json.dumps(ready),
            "--result-file",
            str(result_file),
            "--triggers",
            str(args.triggers),
            "--scenarios",
            str(args.scenarios),
            "--duration",
            str(args.duration),
            "--poll-interval",
            str(args.poll_interval),
            "--protocol",
            args.protocol,
        ]
        print(f"  {variant}: {args.triggers} waits for {args.duration:g} s ...", flush=True)
        with open(log_file, "w", encoding="utf-8") as log:
            completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if completed.returncode != 0:
            tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(f"{variant} failed (exit {completed.returncode}); end of {log_file}:\n{tail}")
        result: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
        result_file.unlink()
        result["scenario_run_states"] = child.scenario_run_states
        return result


def _figures(floor: dict[str, Any], provider: dict[str, Any]) -> list[dict[str, Any]]:
    def figure(name: str, key: str, unit: str, goal: str, met: bool | None) -> dict[str, Any]:
        value, base = provider[key], floor[key]
        return {
            "row": "trigger fan-out",
            "figure": name,
            "unit": unit,
            "value": value,
            "baseline": base,
            "ratio": value / base if base else None,
            "goal": goal,
            "met": met,
        }

    return [
        figure("event-loop lag p50", "lag_p50_ms", "ms", "", None),
        figure("event-loop lag p99", "lag_p99_ms", "ms", "< 100 ms", provider["lag_p99_ms"] < 100),
        figure("event-loop lag max", "lag_max_ms", "ms", "", None),
        figure(
            "CPU of the loop's process",
            "cpu_pct_of_core",
            "% of a core",
            "< 25 %",
            provider["cpu_pct_of_core"] < 25,
        ),
        figure("CPU per poll", "cpu_ms_per_poll", "ms", "", None),
        figure("RSS growth", "rss_growth_mib", "MiB", "< 150 MiB", provider["rss_growth_mib"] < 150),
        figure("VmHWM", "vmhwm_mib", "MiB", "", None),
        figure(
            "TCP connections opened",
            "connections",
            "",
            f"<= {CONNECTIONS_GOAL} (a pool, not per poll)",
            provider["connections"] <= CONNECTIONS_GOAL,
        ),
        figure("requests", "requests", "", "", None),
        figure("requests per poll", "requests_per_poll", "", "", None),
        figure(
            "polls done / scheduled",
            "polls_done_pct",
            "%",
            ">= 98 % (every scheduled poll)",
            provider["polls_done_pct"] >= 98,
        ),
    ]


def _print_table(figures: list[dict[str, Any]]) -> None:
    header = f"{'figure':<28}{'provider':>12}{'floor':>12}{'ratio':>9}  {'goal':<32}{'met':>4}"
    print(header)
    print("-" * len(header))
    for f in figures:
        ratio = "" if f["ratio"] is None else f"{f['ratio']:.2f}x"
        met = {True: "yes", False: "NO", None: ""}[f["met"]]
        print(
            f"{f['figure']:<28}{f['value']:>12,.1f}{f['baseline']:>12,.1f}{ratio:>9}  {f['goal']:<32}{met:>4}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--triggers", type=int, default=1000, help="waits in the one event loop")
    parser.add_argument("--runs", type=int, default=20, help="distinct benchmark runs waited on")
    parser.add_argument("--scenarios", type=int, default=50, help="scenario runs per benchmark run")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per variant")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds between polls of a wait")
    parser.add_argument(
        "--protocol",
        choices=("h2", "h1"),
        default="h2",
        help="the provider's protocol: h2 (HTTP/2, as over https by default; h2c to the emulator) or h1",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "trigger_fanout.json")
    parser.add_argument("--measure", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--ready", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        args.variant = args.measure
        _measuring_main(args)
        return

    RESULTS.mkdir(parents=True, exist_ok=True)
    print(
        f"trigger fan-out: {args.triggers} waits over {args.runs} benchmark runs of {args.scenarios} "
        f"scenario runs, poll every {args.poll_interval:g} s, {args.duration:g} s per variant",
        flush=True,
    )
    results = {variant: _run_variant(variant, args) for variant in VARIANTS}
    floor, provider = results["floor"], results["provider"]
    figures = _figures(floor, provider)
    print()
    _print_table(figures)
    for variant, result in results.items():
        if result["floor_poll_error_count"]:
            errors = result["floor_poll_errors"][:1]
            print(f"note: floor: {result['floor_poll_error_count']} polls failed: {errors}")
        if result["crashed_count"] or result["event_count"]:
            print(
                f"note: {variant}: {result['event_count']} events fired, {result['crashed_count']} tasks "
                f"crashed during the window: {result['events'][:1]} {result['crashed_tasks'][:1]}"
            )
    print("(ratio: provider / floor, both measured in this run; connections: distinct client ports seen)")
    summary = {
        "bench": "trigger_fanout",
        "config": {
            key: getattr(args, key)
            for key in ("triggers", "runs", "scenarios", "duration", "poll_interval", "protocol")
        },
        "variants": results,
        "figures": figures,
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
