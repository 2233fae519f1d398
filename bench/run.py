"""``make bench``: every bench script, each in its own process, then one combined table.

Runs ``bench/trigger_fanout.py``, ``bench/poll_cost.py``, ``bench/listing.py`` and
``bench/results_export.py`` one after the other (a script not in this checkout is skipped with a "not
found" line), each sized so that the whole run stays under 15 minutes on 2 cores. Every script starts
its own emulator in a separate process and measures each figure against a baseline taken in the same
run. The options below are passed only when the script's ``--help`` lists them, so a script whose
options changed still runs, with its defaults.

Each script writes ``bench/results/<name>.json`` (removed before it runs, so nothing stale is read).
Scripts that put a ``figures`` list there (``row``, ``figure``, ``value``, ``baseline``, ``ratio``,
``goal``, ``met``) have those in the table; of any other JSON, the top-level numbers are shown. The
combined result, with the machine, is ``bench/results/bench.json``::

    .venv/bin/python bench/run.py                       # everything
    .venv/bin/python bench/run.py --only poll_cost      # one script
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"

# name, row label, options (passed when the script's --help lists the option), time-out in seconds.
SCRIPTS: list[tuple[str, str, dict[str, str], float]] = [
    ("trigger_fanout", "trigger fan-out", {"--duration": "60"}, 600),
    ("poll_cost", "poll cost", {}, 600),
    ("listing", "listing", {}, 600),
    ("results_export", "results export", {"--repeat": "1"}, 900),
]


def machine() -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _options(script: Path, wanted: dict[str, str]) -> list[str]:
    if not wanted:
        return []
    shown = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False, timeout=120
    )
    args: list[str] = []
    for option, value in wanted.items():
        if option in shown.stdout:
            args += [option, value]
        else:
            print(f"  ({script.name} has no {option}: its default is used)")
    return args


def _generic_figures(row: str, data: Any) -> list[dict[str, Any]]:
    """The top-level numbers of a JSON without a ``figures`` list."""
    if not isinstance(data, dict):
        return []
    return [
        {
            "row": row,
            "figure": key,
            "unit": "",
            "value": value,
            "baseline": None,
            "ratio": None,
            "goal": "",
            "met": None,
        }
        for key, value in data.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


def run_script(name: str, row: str, wanted: dict[str, str], timeout: float) -> dict[str, Any]:
    script = BENCH / f"{name}.py"
    if not script.exists():
        print(f"== {row}: not found: bench/{name}.py is not in this checkout (skipped)", flush=True)
        return {"name": name, "row": row, "status": "not found", "figures": []}
    result_file = RESULTS / f"{name}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, str(script), *_options(script, wanted)]
    print(f"== {row}: {' '.join(Path(c).name if c == sys.executable else c for c in command)}", flush=True)
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, cwd=REPO, check=False, timeout=timeout)
        status = "ok" if completed.returncode == 0 else f"failed (exit {completed.returncode})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - started
    entry: dict[str, Any] = {"name": name, "row": row, "status": status, "seconds": seconds, "figures": []}
    if result_file.exists():
        data = json.loads(result_file.read_text(encoding="utf-8"))
        entry["result"] = data
        figures = data.get("figures") if isinstance(data, dict) else None
        entry["figures"] = figures if isinstance(figures, list) else _generic_figures(row, data)
    elif status == "ok":
        entry["status"] = f"ok, but wrote no {result_file.relative_to(REPO)}"
    print(f"== {row}: {entry['status']} in {seconds:.0f} s", flush=True)
    return entry


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(entries: list[dict[str, Any]]) -> None:
    header = (
        f"{'row':<16}{'figure':<54}{'value':>12} {'unit':<12}{'baseline':>12} {'ratio':>9}  "
        f"{'goal':<32}{'met?':>5}"
    )
    print(header)
    print("-" * len(header))
    for entry in entries:
        if not entry["figures"]:
            print(f"{entry['row']:<16}({entry['status']})")
        for f in entry["figures"]:
            unit = str(f.get("unit") or "")[:11]
            ratio = "" if f.get("ratio") is None else f"{f['ratio']:.3g}x"
            met = {True: "yes", False: "NO", None: ""}[f.get("met")]
            print(
                f"{f.get('row', entry['row']):<16}{f['figure'][:53]:<54}{_cell(f['value']):>12} {unit:<12}"
                f"{_cell(f.get('baseline')):>12} {ratio:>9}  {str(f.get('goal') or '')[:31]:<32}{met:>5}"
            )
    print("(ratio: value / baseline, both measured in this run)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated script names (default: all)")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    host = machine()
    print(
        f"make bench: {host['cpu_count']} x {host['cpu_model']}, python {host['python']}, {host['date']}",
        flush=True,
    )
    started = time.perf_counter()
    entries = [
        run_script(name, row, wanted, timeout)
        for name, row, wanted, timeout in SCRIPTS
        if only is None or name in only
    ]
    total = time.perf_counter() - started
    print()
    print_table(entries)
    print(f"total {total / 60:.1f} min")
    combined = {
        "machine": host,
        "total_seconds": total,
        "scripts": [{k: v for k, v in e.items() if k != "result"} for e in entries],
        "figures": [f for e in entries for f in e["figures"]],
    }
    (RESULTS / "bench.json").write_text(json.dumps(combined, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {(RESULTS / 'bench.json').relative_to(REPO)}")
    failed = [e["name"] for e in entries if not e["status"].startswith(("ok", "not found"))]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
