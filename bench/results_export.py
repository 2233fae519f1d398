"""Benchmark: exporting a large benchmark run's results, streamed vs. a naive in-memory baseline.

The emulator serves a finished benchmark run of ``--runs`` scenario runs (100,000 by default) on
127.0.0.1. Each variant then runs in its own fresh Python process, so that their memory cannot mix:

* ``naive``: list every scenario run into memory, then ``json.dump`` the whole list to a file;
* ``operator-<format>``: ``RunloopBenchmarkResultsOperator.execute`` to a ``file://`` destination.

Each variant runs ``--repeat`` times plain, for the wall time and the peak RSS growth (``VmHWM`` minus the
RSS before the export, after imports; medians are reported), then once under ``tracemalloc`` for the peak
of Python allocations. Variants alternate within each repetition, so drift hits them alike. The ratios
are against the naive baseline measured in the same run. Not part of ``make test``::

    .venv/bin/python bench/results_export.py                  # 100,000 runs, every format
    .venv/bin/python bench/results_export.py --runs 20000 --formats jsonl,parquet
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


# --- child process: one export, measured -------------------------------------------------------------


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class _TaskInstance:
    dag_id, task_id, run_id, map_index = "bench", "export", "bench_run", -1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _child(variant: str, run_id: str, out: Path, traced: bool) -> dict[str, Any]:
    # Imports first, so the RSS baseline includes them and the growth is the export's own.
    from airflow_provider_runloop.hooks.runloop import RunloopHook
    from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator

    hook = RunloopHook()
    hook.get_conn()
    if variant != "naive":
        import pyarrow.parquet  # noqa: F401  (imported by the Parquet writer; part of the baseline)
    rss_before = _proc_status_kib("VmRSS")
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    if variant == "naive":
        runs = [run.model_dump(mode="json") for run in hook.list_scenario_runs(run_id)]
        with open(out, "w", encoding="utf-8") as file:
            json.dump(runs, file)
        records = len(runs)
    else:
        fmt = variant.removeprefix("operator-")
        operator = RunloopBenchmarkResultsOperator(
            task_id="export", benchmark_run_id=run_id, destination=f"file://{out}", format=fmt
        )
        result = operator.execute({"ti": _TaskInstance()})  # type: ignore[arg-type]
        records = result["record_count"]
    wall = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] if traced else None
    return {
        "variant": variant,
        "records": records,
        "wall_s": wall,
        "rss_growth_mib": (_proc_status_kib("VmHWM") - rss_before) / 1024,
        "max_rss_mib": _proc_status_kib("VmHWM") / 1024,
        "py_peak_mib": None if traced_peak is None else traced_peak / 2**20,
        "file_mib": out.stat().st_size / 2**20,
    }


# --- parent: the emulator and the table ---------------------------------------------------------------


def _run_child(variant: str, run_id: str, env: dict[str, str], workdir: Path, traced: bool) -> dict[str, Any]:
    out = workdir / f"{variant}{'-traced' if traced else ''}.out"
    command = [sys.executable, __file__, "--child", variant, "--run-id", run_id, "--out", str(out)]
    if traced:
        command.append("--traced")
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    out.unlink()
    return result


def _main(args: argparse.Namespace) -> None:
    from airflow_provider_runloop.testing import ManualClock, RunloopEmulator

    variants = ["naive", *(f"operator-{fmt}" for fmt in args.formats.split(","))]
    with RunloopEmulator(clock=ManualClock(), seed=1) as emulator, tempfile.TemporaryDirectory() as tmp:
        script = {
            "scenario_count": args.runs,
            "outcomes": {"completed": 0.8, "failed": 0.1, "timeout": 0.1},
            "timing": {"start_interval": 0, "duration": 1, "scoring": 1, "complete": 1},
        }
        started = time.perf_counter()
        benchmark = emulator.seed_benchmark(script)
        run_id = emulator.start_scripted_run(benchmark.benchmark_id)
        emulator.advance(3600)
        state = emulator.benchmark_run_state(run_id)
        print(
            f"emulator: {args.runs} scenario runs of {run_id} ({state}) ready in "
            f"{time.perf_counter() - started:.1f} s at {emulator.base_url}"
        )
        env = {
            **os.environ,
            **emulator.airflow_env(),
            "AIRFLOW_HOME": str(Path(tmp) / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(REPO),
        }
        plain: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
        for repetition in range(args.repeat):
            for variant in variants:
                plain[variant].append(_run_child(variant, run_id, env, Path(tmp), traced=False))
            print(f"  repetition {repetition + 1} of {args.repeat} done", flush=True)
        rows = []
        for variant in variants:
            row = dict(plain[variant][0])
            for key in ("wall_s", "rss_growth_mib", "max_rss_mib"):
                row[key] = statistics.median(result[key] for result in plain[variant])
            row["py_peak_mib"] = _run_child(variant, run_id, env, Path(tmp), traced=True)["py_peak_mib"]
            rows.append(row)

    base = rows[0]
    print()
    print(
        f"python {sys.version.split()[0]}, {args.runs} scenario runs, emulator over 127.0.0.1, "
        f"median of {args.repeat} (py peak: one traced run)"
    )
    header = (
        f"{'variant':<18}{'records':>9}{'wall s':>9}{'RSS growth MiB':>16}{'max RSS MiB':>13}"
        f"{'py peak MiB':>13}{'file MiB':>10}{'time x':>8}{'RSS growth x':>14}{'py peak x':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['variant']:<18}{row['records']:>9}{row['wall_s']:>9.2f}{row['rss_growth_mib']:>16.1f}"
            f"{row['max_rss_mib']:>13.1f}{row['py_peak_mib']:>13.1f}{row['file_mib']:>10.1f}"
            f"{row['wall_s'] / base['wall_s']:>8.2f}"
            f"{row['rss_growth_mib'] / max(base['rss_growth_mib'], 1e-9):>14.3f}"
            f"{row['py_peak_mib'] / base['py_peak_mib']:>11.3f}"
        )
    print("(x: the variant's value divided by the naive baseline's; below 1 is better)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000, help="scenario runs in the benchmark run")
    parser.add_argument("--formats", default="jsonl,json,csv,parquet", help="operator formats to measure")
    parser.add_argument("--repeat", type=int, default=3, help="plain runs per variant (median reported)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.run_id, args.out, args.traced)))
    else:
        _main(args)


if __name__ == "__main__":
    main()
