"""Benchmark: exporting a large benchmark run's results, streamed vs. a naive in-memory baseline.

The emulator serves a finished benchmark run of ``--runs`` scenario runs (10,000 then 100,000 by
default) on 127.0.0.1. Each variant then runs in its own fresh Python process, so that their memory
cannot mix:

* ``naive``: list every scenario run into memory, then ``json.dump`` the whole list to a file;
* ``operator-<format>``: ``RunloopBenchmarkResultsOperator.execute`` to a ``file://`` destination.

Each variant runs ``--repeat`` times plain, for the wall time and the peak RSS growth (``VmHWM`` minus the
RSS before the export, after imports, Airflow's filesystem registry included; medians are reported),
then once under ``tracemalloc`` for the peak of Python allocations. Variants alternate within each
repetition, so drift hits them alike. The ratios
are against the naive baseline measured in the same run. Not part of ``make test``::

    .venv/bin/python bench/results_export.py      # 10,000 and 100,000 runs, jsonl and parquet, growth row
    .venv/bin/python bench/results_export.py --runs 20000 --formats jsonl,json,csv,parquet

The tables, the growth from the smallest to the largest run, and the export issue's goals (RSS growth
under 40 MiB at the largest run, under 10 MiB more from the smallest to the largest, rows/s at least
the naive baseline's) are printed and written to ``bench/results/results_export.json``.
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
    from airflow.sdk.io import has_fs

    from airflow_provider_runloop.hooks.runloop import RunloopHook
    from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator

    hook = RunloopHook()
    hook.get_conn()
    # The first destination check loads every installed provider's filesystems (the Amazon provider's
    # s3fs, boto3, botocore: ~7 s and ~13 MiB): an import, once per worker process, not the export's.
    has_fs("file")
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


def _measure(args: argparse.Namespace, runs: int, variants: list[str]) -> list[dict[str, Any]]:
    """One table: every variant exported from a finished benchmark run of ``runs`` scenario runs."""
    from airflow_provider_runloop.testing import ManualClock, RunloopEmulator

    with RunloopEmulator(clock=ManualClock(), seed=1) as emulator, tempfile.TemporaryDirectory() as tmp:
        script = {
            "scenario_count": runs,
            "outcomes": {"completed": 0.8, "failed": 0.1, "timeout": 0.1},
            "timing": {"start_interval": 0, "duration": 1, "scoring": 1, "complete": 1},
        }
        started = time.perf_counter()
        benchmark = emulator.seed_benchmark(script)
        run_id = emulator.start_scripted_run(benchmark.benchmark_id)
        emulator.advance(3600)
        state = emulator.benchmark_run_state(run_id)
        print(
            f"emulator: {runs} scenario runs of {run_id} ({state}) ready in "
            f"{time.perf_counter() - started:.1f} s at {emulator.base_url}",
            flush=True,
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
            row["rows_per_s"] = row["records"] / row["wall_s"]
            row["py_peak_mib"] = (
                _run_child(variant, run_id, env, Path(tmp), traced=True)["py_peak_mib"]
                if args.traced
                else None
            )
            rows.append(row)
    return rows


def _mib(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.1f}"


def _print_table(runs: int, rows: list[dict[str, Any]], repeat: int) -> None:
    base = rows[0]
    print()
    print(
        f"python {sys.version.split()[0]}, {runs} scenario runs, emulator over 127.0.0.1, "
        f"median of {repeat} (py peak: one traced run)"
    )
    header = (
        f"{'variant':<18}{'records':>9}{'wall s':>9}{'rows/s':>9}{'RSS growth MiB':>16}{'max RSS MiB':>13}"
        f"{'py peak MiB':>13}{'file MiB':>10}{'time x':>8}{'RSS growth x':>14}{'py peak x':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        peak_x = (
            "-"
            if row["py_peak_mib"] is None or not base["py_peak_mib"]
            else f"{row['py_peak_mib'] / base['py_peak_mib']:.3f}"
        )
        print(
            f"{row['variant']:<18}{row['records']:>9}{row['wall_s']:>9.2f}{row['rows_per_s']:>9.0f}"
            f"{row['rss_growth_mib']:>16.1f}{row['max_rss_mib']:>13.1f}{_mib(row['py_peak_mib'], 13)}"
            f"{row['file_mib']:>10.1f}{row['wall_s'] / base['wall_s']:>8.2f}"
            f"{row['rss_growth_mib'] / max(base['rss_growth_mib'], 1e-9):>14.3f}{peak_x:>11}"
        )
    print("(x: the variant's value divided by the naive baseline's; below 1 is better)")


def _growth(tables: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per variant, how much the peaks grow from the smallest run to the largest."""
    small, large = min(tables), max(tables)
    rows = []
    for before, after in zip(tables[small], tables[large], strict=True):
        rows.append(
            {
                "variant": before["variant"],
                "from_runs": small,
                "to_runs": large,
                "rss_growth_mib": after["rss_growth_mib"] - before["rss_growth_mib"],
                "py_peak_mib": (
                    None
                    if before["py_peak_mib"] is None or after["py_peak_mib"] is None
                    else after["py_peak_mib"] - before["py_peak_mib"]
                ),
            }
        )
    return rows


def _goals(tables: dict[int, list[dict[str, Any]]], growth: list[dict[str, Any]]) -> dict[str, Any]:
    """The export issue's goals, per operator variant, at the largest run measured."""
    large = tables[max(tables)]
    naive = large[0]
    goals: dict[str, Any] = {}
    for index, row in enumerate(large[1:], start=1):
        goals[row["variant"]] = {
            "rss_growth_below_40_mib": row["rss_growth_mib"] < 40,
            "growth_across_sizes_below_10_mib": None
            if len(tables) < 2
            else growth[index]["rss_growth_mib"] < 10,
            "rows_per_s_at_least_naive": row["rows_per_s"] >= naive["rows_per_s"],
        }
    return goals


def _main(args: argparse.Namespace) -> None:
    variants = ["naive", *(f"operator-{fmt}" for fmt in args.formats.split(","))]
    sizes = sorted({int(value) for value in args.runs.split(",")})
    started = time.perf_counter()
    tables = {runs: _measure(args, runs, variants) for runs in sizes}
    for runs, rows in tables.items():
        _print_table(runs, rows, args.repeat)
    growth = _growth(tables) if len(sizes) > 1 else []
    if growth:
        print()
        print(
            f"growth from {sizes[0]} to {sizes[-1]} scenario runs (the larger run's peak minus the smaller's)"
        )
        header = f"{'variant':<18}{'RSS growth MiB':>16}{'py peak MiB':>13}"
        print(header)
        print("-" * len(header))
        for row in growth:
            print(f"{row['variant']:<18}{row['rss_growth_mib']:>16.1f}{_mib(row['py_peak_mib'], 13)}")
    goals = _goals(tables, growth)
    print()
    print(f"goals at {sizes[-1]} scenario runs: {json.dumps(goals)}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "formats": args.formats.split(","),
            "tables": {str(runs): rows for runs, rows in tables.items()},
            "growth": growth,
            "goals": goals,
            "bench_seconds": round(time.perf_counter() - started, 1),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs",
        default="10000,100000",
        help="scenario runs in the benchmark run; several, comma-separated, add a growth row",
    )
    parser.add_argument(
        "--formats", default="jsonl,parquet", help="operator formats (jsonl,json,csv,parquet)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="plain runs per variant (median reported)")
    parser.add_argument(
        "--no-traced", dest="traced", action="store_false", help="skip the tracemalloc run (py peak)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=REPO / "bench" / "results" / "results_export.json",
        help="where to write the tables as JSON ('-': nowhere)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json is not None and str(args.json) == "-":
        args.json = None
    if args.child:
        print(json.dumps(_child(args.child, args.run_id, args.out, args.traced)))
    else:
        _main(args)


if __name__ == "__main__":
    main()
