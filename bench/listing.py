"""Benchmark: listing a large benchmark run's scenario runs, against the raw wire and the official SDK.

A child Python process builds the emulator (a ``ManualClock``, a finished scripted run of ``--runs``
scenario runs, 50,000 by default), serves it on 127.0.0.1 and prints its base URL, key and run id.
This process first imports Airflow and the provider (so its heap is the size of a worker's), then
times listing every scenario run at ``--page-size`` (5,000), each variant ``--repeat`` times
(median reported), the variants alternated within each repetition:

* ``raw``: ``httpx.Client`` GETs following ``starting_after`` + ``json.loads`` (the floor);
* ``client``: ``RunloopClient.list_scenario_runs``; ``hook``: ``RunloopHook.list_scenario_runs``;
* ``raw-async``, ``client-async``, ``hook-async``: the async twins (``httpx.AsyncClient``,
  ``AsyncRunloopClient``, ``RunloopHook.alist_scenario_runs``);
* ``sdk``: the official SDK, ``runloop-api-client==1.32.0`` (the ``bench`` dependency group, which
  ``make env`` does not install: this script installs it on first use).

Ratios: ``x raw`` is the raw floor's time divided by the variant's (of the same twin; 1 is the wire's
speed, higher is faster); ``x sdk`` is the SDK's time divided by the variant's. Writes
``bench/results/listing.json``. Not part of ``make test``::

    .venv/bin/python bench/listing.py
    .venv/bin/python bench/listing.py --runs 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "listing.json"


# --- child process: the emulator ---------------------------------------------------------------------


def _serve(runs: int) -> None:
    from airflow_provider_runloop.testing import ManualClock, RunloopEmulator

    with RunloopEmulator(clock=ManualClock(), seed=1) as emulator:
        script = {
            "scenario_count": runs,
            "outcomes": {"completed": 0.8, "failed": 0.1, "timeout": 0.1},
            "timing": {"start_interval": 0, "duration": 1, "scoring": 1, "complete": 1},
        }
        benchmark = emulator.seed_benchmark(script)
        run_id = emulator.start_scripted_run(benchmark.benchmark_id)
        emulator.advance(3600)
        state = emulator.benchmark_run_state(run_id)
        ready = {"base_url": emulator.base_url, "key": emulator.api_key, "run_id": run_id, "state": state}
        print(json.dumps(ready), flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin


# --- the variants --------------------------------------------------------------------------------------


def _raw(base_url: str, key: str, run_id: str, page_size: int) -> int:
    import httpx

    count, cursor = 0, None
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor is not None:
                params["starting_after"] = cursor
            response = http.get(f"/v1/benchmark_runs/{run_id}/scenario_runs", params=params)
            response.raise_for_status()
            page = json.loads(response.content)
            count += len(page["runs"])
            if not page["has_more"] or not page["runs"]:
                return count
            cursor = page["runs"][-1]["id"]


async def _raw_async(base_url: str, key: str, run_id: str, page_size: int) -> int:
    import httpx

    count, cursor = 0, None
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor is not None:
                params["starting_after"] = cursor
            response = await http.get(f"/v1/benchmark_runs/{run_id}/scenario_runs", params=params)
            response.raise_for_status()
            page = json.loads(response.content)
            count += len(page["runs"])
            if not page["has_more"] or not page["runs"]:
                return count
            cursor = page["runs"][-1]["id"]


def _client(base_url: str, key: str, run_id: str, page_size: int) -> int:
    from airflow_provider_runloop.client import RunloopClient

    with RunloopClient(key, base_url=base_url) as client:
        return sum(1 for _ in client.list_scenario_runs(run_id, page_size=page_size))


async def _client_async(base_url: str, key: str, run_id: str, page_size: int) -> int:
    from airflow_provider_runloop.client import AsyncRunloopClient

    count = 0
    async with AsyncRunloopClient(key, base_url=base_url) as client:
        async for _ in client.list_scenario_runs(run_id, page_size=page_size):
            count += 1
    return count


def _hook(base_url: str, key: str, run_id: str, page_size: int) -> int:
    from airflow_provider_runloop.hooks.runloop import RunloopHook

    hook = RunloopHook()
    try:
        return sum(1 for _ in hook.list_scenario_runs(run_id, page_size=page_size))
    finally:
        hook.close()


async def _hook_async(base_url: str, key: str, run_id: str, page_size: int) -> int:
    from airflow_provider_runloop.hooks.runloop import RunloopHook

    hook = RunloopHook()
    count = 0
    try:
        async for _ in hook.alist_scenario_runs(run_id, page_size=page_size):
            count += 1
    finally:
        await hook.aclose()
    return count


def _sdk(base_url: str, key: str, run_id: str, page_size: int) -> int:
    from runloop_api_client import Runloop

    with Runloop(bearer_token=key, base_url=base_url) as sdk:
        # Iterating the first page follows has_more/starting_after through every page.
        return sum(1 for _ in sdk.benchmark_runs.list_scenario_runs(run_id, limit=page_size))


Variant = Callable[[str, str, str, int], Any]
VARIANTS: dict[str, tuple[str, Variant]] = {
    "raw": ("sync", _raw),
    "client": ("sync", _client),
    "hook": ("sync", _hook),
    "raw-async": ("async", _raw_async),
    "client-async": ("async", _client_async),
    "hook-async": ("async", _hook_async),
    "sdk": ("sync", _sdk),
}


def _time(variant: Variant, *args: Any) -> tuple[float, int]:
    started = time.perf_counter()
    result = variant(*args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return time.perf_counter() - started, int(result)


# --- the measuring process -----------------------------------------------------------------------------


def _ensure_sdk() -> None:
    try:
        import runloop_api_client  # noqa: F401
    except ImportError:
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(REPO / ".venv"), "UV_PYTHON_DOWNLOADS": "never"}
        command = [str(REPO / ".tools/bin/uv"), "sync", "--frozen", "--all-extras", "--group", "bench"]
        print("installing the bench group (the official SDK):", " ".join(command), flush=True)
        subprocess.run(command, cwd=REPO, env=env, check=True)


def _main(args: argparse.Namespace) -> None:
    _ensure_sdk()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--runs", str(args.runs)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise SystemExit("the emulator process exited before serving")
        ready = json.loads(line)
        base_url, key, run_id = ready["base_url"], ready["key"], ready["run_id"]
        print(f"emulator (pid {server.pid}): {args.runs} scenario runs of {run_id} ({ready['state']})")
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["AIRFLOW_HOME"] = str(Path(tmp) / "airflow")
            os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
            os.environ["AIRFLOW_CONN_RUNLOOP_DEFAULT"] = json.dumps(
                {"conn_type": "runloop", "host": base_url, "password": key}
            )
            # A worker's heap: Airflow, the provider, the hook and the SDK imported before measuring.
            import airflow.sdk  # noqa: F401
            import runloop_api_client  # noqa: F401

            import airflow_provider_runloop.client
            import airflow_provider_runloop.hooks.runloop  # noqa: F401

            rows = _measure(args, base_url, key, run_id)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    _report(args, rows)


def _measure(args: argparse.Namespace, base_url: str, key: str, run_id: str) -> dict[str, list[float]]:
    import gc

    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    ballast = [(i,) for i in range(args.ballast)]  # a bigger heap, as a worker that parsed DAGs has
    gc.collect()
    print(f"heap: {len(gc.get_objects()):,} gc-tracked objects", flush=True)
    for repetition in range(args.repeat):
        for name, (_, variant) in VARIANTS.items():
            seconds, count = _time(variant, base_url, key, run_id, args.page_size)
            if count != args.runs:
                raise SystemExit(f"{name} listed {count} scenario runs, not {args.runs}")
            times[name].append(seconds)
        print(f"  repetition {repetition + 1} of {args.repeat} done", flush=True)
    del ballast
    return times


def _report(args: argparse.Namespace, times: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    rows = []
    for name, (twin, _) in VARIANTS.items():
        floor = medians["raw" if twin == "sync" else "raw-async"]
        rows.append(
            {
                "variant": name,
                "median_s": medians[name],
                "items_per_s": args.runs / medians[name],
                "x_raw": floor / medians[name],
                "x_sdk": medians["sdk"] / medians[name],
                "times_s": times[name],
            }
        )
    print()
    print(
        f"python {sys.version.split()[0]}, {args.runs} scenario runs, page size {args.page_size}, "
        f"emulator in another process over 127.0.0.1, median of {args.repeat}, ballast {args.ballast:,}"
    )
    header = f"{'variant':<14}{'median s':>10}{'items/s':>11}{'x raw':>8}{'x sdk':>8}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['variant']:<14}{row['median_s']:>10.3f}{row['items_per_s']:>11,.0f}"
            f"{row['x_raw']:>8.2f}{row['x_sdk']:>8.2f}"
        )
    print("(x raw: the raw floor's time (same twin) / the variant's; x sdk: the SDK's / the variant's)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "python": sys.version.split()[0],
        "runs": args.runs,
        "page_size": args.page_size,
        "repeat": args.repeat,
        "ballast": args.ballast,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(REPO)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50_000, help="scenario runs in the benchmark run")
    parser.add_argument("--page-size", type=int, default=5000, help="items per page, every variant")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per variant (median reported)")
    parser.add_argument(
        "--ballast", type=int, default=0, help="extra small gc-tracked objects to allocate before measuring"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.runs)
    else:
        _main(args)


if __name__ == "__main__":
    main()
