"""What one poll of a benchmark run costs: requests and bytes, cheap poll vs a naive list-everything poll.

Run: ``.venv/bin/python bench/poll_cost.py`` (not part of ``make test``; the targets it checks are
asserted by ``tests/integration/hooks/test_poll_cost.py``).

The emulator serves over 127.0.0.1 behind a counting ASGI wrapper (requests, response body bytes).
For each size, the benchmark run is caught mid-way (most scenario runs still active), and one poll is
made two ways: ``RunloopHook.check_benchmark_run`` (the benchmark run plus four ``limit=1`` counts)
and the baseline a hand-written PythonOperator loop does (the run plus every scenario run, listed).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.counting import CountingApp

from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.testing import EmulatorServer, ManualClock, RunloopEmulator


def measure(size: int) -> dict[str, float]:
    emulator = RunloopEmulator(clock=ManualClock(), seed=1)
    counting = CountingApp(emulator.app)
    server = EmulatorServer(counting)
    server.start()
    try:
        os.environ["AIRFLOW_CONN_RUNLOOP_DEFAULT"] = json.dumps(
            {"conn_type": "runloop", "host": server.base_url, "password": emulator.api_key}
        )
        script = {"scenario_count": size, "seed": 1, "timing": {"start_interval": 0, "duration": [30, 60]}}
        run_id = emulator.start_scripted_run(script=script)
        emulator.advance(20)  # every scenario run started, most still running
        hook = RunloopHook()

        counting.reset()
        started = time.perf_counter()
        verdict = hook.check_benchmark_run(run_id, expected_count=size)
        cheap_seconds = time.perf_counter() - started
        assert not verdict.done
        cheap = counting.snapshot()

        counting.reset()
        started = time.perf_counter()
        client = hook.get_conn()
        client.get_benchmark_run(run_id)
        listed = sum(1 for _ in client.list_scenario_runs(run_id))
        naive_seconds = time.perf_counter() - started
        naive = counting.snapshot()
        assert listed == size
        hook.close()
    finally:
        server.stop()
    return {
        "size": size,
        "cheap_requests": cheap.requests,
        "cheap_bytes": cheap.body_bytes,
        "cheap_seconds": cheap_seconds,
        "naive_requests": naive.requests,
        "naive_bytes": naive.body_bytes,
        "naive_seconds": naive_seconds,
    }


def main() -> None:
    header = ("runs", "cheap req", "cheap KB", "naive req", "naive KB", "bytes ratio", "time ratio")
    print("  ".join(f"{h:>11}" for h in header))
    for size in (1_000, 10_000):
        m = measure(size)
        row = (
            f"{m['size']:,}",
            str(m["cheap_requests"]),
            f"{m['cheap_bytes'] / 1024:.1f}",
            str(m["naive_requests"]),
            f"{m['naive_bytes'] / 1024:.1f}",
            f"{m['naive_bytes'] / m['cheap_bytes']:.0f}x",
            f"{m['naive_seconds'] / m['cheap_seconds']:.1f}x",
        )
        print("  ".join(f"{cell:>11}" for cell in row))


if __name__ == "__main__":
    main()
