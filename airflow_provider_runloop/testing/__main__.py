"""Command line: ``python -m airflow_provider_runloop.testing [options]``.

Starts an emulator on ``--host`` (default 127.0.0.1; nothing else is bound) and ``--port`` (default 8765;
0 picks a free port), speaking HTTP/1.1 and HTTP/2 cleartext with prior knowledge (h2c) on that one port,
seeds a benchmark from ``--script FILE`` (JSON or YAML) or ``--scenarios N``, starts
one scripted benchmark run of it (unless ``--no-run``), prints the base URL and the Airflow connection
to use, optionally writes a JSON "ready" file, and serves until SIGTERM or SIGINT (exit status 0; the
ready file is removed).

The ready file (written atomically once the server accepts connections) holds ``base_url``, ``host``,
``port``, ``pid``, ``api_key``, ``airflow_conn_env`` and ``airflow_conn`` (the JSON connection),
``benchmark_id``, ``scenario_ids`` and ``benchmark_run_id`` (``null`` with ``--no-run``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from airflow_provider_runloop.testing.clock import RealClock
from airflow_provider_runloop.testing.emulator import AIRFLOW_CONN_ENV, DEFAULT_API_KEY, RunloopEmulator
from airflow_provider_runloop.testing.script import ScenarioScript, ScriptError, load_script, quick_script

__all__ = ["main", "parse_args"]

DEFAULT_PORT = 8765


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_runloop.testing",
        description=(
            "Run a local Runloop API emulator (benchmarks, runs, jobs, scenarios). One port serves"
            " HTTP/1.1 and HTTP/2 cleartext with prior knowledge (h2c)."
        ),
        # A wheel has no docs/ folder: point at what is installed, and at the repository's guide.
        epilog=(
            "scenario scripts (--script): python -m pydoc airflow_provider_runloop.testing.script\n"
            "the OpenAPI spec it follows, installed with it: airflow_provider_runloop/testing/openapi/"
            "runloop-benchmarks.yml\n"
            "the whole guide: docs/emulator.md in the provider's repository"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port; 0 = a free one (default: %(default)s)"
    )
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="bearer key clients must send")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--script", type=Path, help="scenario script, JSON or YAML (format: see below)")
    source.add_argument(
        "--scenarios", type=int, help="quick preset: N scenarios, 80/10/10 completed/failed/timeout"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of ids and outcomes (default: %(default)s)")
    parser.add_argument("--speed", type=float, default=1.0, help="emulated seconds per real second")
    parser.add_argument("--no-run", action="store_true", help="seed the benchmark but start no scripted run")
    parser.add_argument("--emit-nulls", action="store_true", help="write null for absent optional fields")
    parser.add_argument(
        "--scoring-delay", type=float, help="seconds from POST score to scored, for every run"
    )
    parser.add_argument("--job-concurrency", type=int, default=10, help="default n_concurrent_trials of jobs")
    parser.add_argument("--ready-file", type=Path, help="write a JSON file with the URL and ids once serving")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if args.scenarios is not None and args.scenarios < 0:
        parser.error("--scenarios must not be negative")
    if args.speed <= 0:
        parser.error("--speed must be positive")
    return args


def _script(args: argparse.Namespace) -> ScenarioScript:
    if args.script is not None:
        return load_script(args.script)
    if args.scenarios is not None:
        return quick_script(args.scenarios)
    return quick_script(10)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        script = _script(args)
        emulator = RunloopEmulator(
            api_key=args.api_key,
            clock=RealClock(speed=args.speed),
            seed=args.seed,
            script=script,
            emit_nulls=args.emit_nulls,
            scoring_delay_seconds=args.scoring_delay,
            job_concurrency=args.job_concurrency,
        )
    except (ScriptError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seeded = emulator.seed_benchmark(script)
    run_id = None if args.no_run else emulator.start_scripted_run(seeded.benchmark_id, name="emulated-run")

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        emulator.start(host=args.host, port=args.port)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        print(
            f"Runloop emulator serving at {emulator.base_url} (HTTP/1.1 and HTTP/2 h2c prior knowledge;"
            f" API key: {emulator.api_key})"
        )
        print(
            f"benchmark {seeded.benchmark_id} ({len(seeded.scenario_ids)} scenarios); scripted run {run_id}"
        )
        print(f"export {AIRFLOW_CONN_ENV}='{emulator.airflow_conn_json}'", flush=True)
        if args.ready_file is not None:
            _write_atomically(
                args.ready_file,
                {
                    "base_url": emulator.base_url,
                    "host": args.host,
                    "port": int(emulator.base_url.rsplit(":", 1)[1]),
                    "pid": os.getpid(),
                    "api_key": emulator.api_key,
                    "airflow_conn_env": AIRFLOW_CONN_ENV,
                    "airflow_conn": emulator.airflow_conn_json,
                    "benchmark_id": seeded.benchmark_id,
                    "scenario_ids": list(seeded.scenario_ids),
                    "benchmark_run_id": run_id,
                },
            )
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    print("Runloop emulator stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
