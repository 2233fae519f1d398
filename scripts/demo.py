"""``make demo``: wait for a benchmark run with a deferrable sensor, export its results, print a summary.

Runs ``example_dags/example_runloop_wait_and_export.py`` with ``airflow dags test`` (SQLite metadata DB
and local files under ``.demo/``, nothing else on the machine is touched) against one of two targets:

* **the bundled emulator** (default, no API key): the emulator CLI is started on 127.0.0.1, on a free
  port the OS picks, with a seeded benchmark of 50 scenarios (``scripts/demo_benchmark.json``) that
  finish within about a minute, a few of them failing. It is stopped by its PID when the demo ends,
  also on Ctrl-C or an error.
* **the real Runloop API**, when ``RUNLOOP_API_KEY`` and ``RUNLOOP_BENCHMARK_RUN_ID`` are both set
  (``RUNLOOP_BASE_URL`` optionally overrides ``https://api.runloop.ai``). No emulator is started; the
  key reaches Airflow only through the ``AIRFLOW_CONN_RUNLOOP_DEFAULT`` environment variable of the
  ``airflow`` subprocess, never a command line or a file.

The DAG run is configured to accept failed scenarios (``RUNLOOP_FAIL_ON_SCENARIO_FAILURE=false``, which
the example DAG turns into the sensor's ``fail_on_scenario_failure=False``): the emulated benchmark fails
a few scenarios on purpose, and the demo's point is to export and report them, so it ends green. The
DAG's default (and the sensor's) is to fail the wait, naming the failed scenario runs.

While the sensor waits, its progress lines are shown; the full Airflow log is kept in
``.demo/dags-test.log``. At the end a summary of the exported results file is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / ".demo"
DAG_ID = "example_runloop_wait_and_export"
BENCHMARK_SCRIPT = REPO / "scripts" / "demo_benchmark.json"
DEFAULT_BASE_URL = "https://api.runloop.ai"
# The emulated clock runs 1.5 times as fast as real time: the demo benchmark's ~35 emulated seconds
# take about 23 s, from the emulator's start. Where Airflow starts quickly the sensor shows a handful of
# progress lines; on a busy machine the run can be over by its first poll.
EMULATOR_SPEED = 1.5
EMULATOR_POLL_SECONDS = 2.0
RUNLOOP_POLL_SECONDS = 30.0
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
# The emulated run is over within a minute; anything near this bound means something is stuck.
EMULATOR_RUN_TIMEOUT_SECONDS = 300.0
FAILURE_STATES = ("failed", "timeout", "canceled")
STATE_ORDER = ("completed", *FAILURE_STATES, "scored", "scoring", "running")
IDS_SHOWN = 10
_ID = re.compile(r"[A-Za-z0-9_-]+")


class DemoConfigError(ValueError):
    """The environment asks for something the demo cannot do; the message says what to change."""


class DemoInterrupted(Exception):
    """SIGTERM or SIGINT arrived: stop, clean up, exit non-zero."""


@dataclass(frozen=True)
class DemoTarget:
    """What the demo waits on: the emulator (started by the demo) or a real run on the Runloop API."""

    mode: str  # "emulator" or "runloop"
    benchmark_run_id: str | None = None
    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL

    @property
    def uses_emulator(self) -> bool:
        return self.mode == "emulator"

    def airflow_conn(self) -> str:
        """The ``runloop_default`` connection as Airflow's JSON form (real API only)."""
        if self.uses_emulator:
            raise ValueError("the emulator's connection comes from its ready file")
        return json.dumps({"conn_type": "runloop", "host": self.base_url, "password": self.api_key})


def target_from_env(env: Mapping[str, str]) -> DemoTarget:
    """Choose the target from ``RUNLOOP_API_KEY``, ``RUNLOOP_BENCHMARK_RUN_ID`` and ``RUNLOOP_BASE_URL``.

    Neither of the first two set: the emulator. Both set: the real API. One without the other is an
    error rather than a silent fallback to the emulator.
    """
    api_key = env.get("RUNLOOP_API_KEY", "").strip()
    run_id = env.get("RUNLOOP_BENCHMARK_RUN_ID", "").strip()
    base_url = env.get("RUNLOOP_BASE_URL", "").strip()
    if not api_key and not run_id:
        if base_url:
            raise DemoConfigError(
                "RUNLOOP_BASE_URL is set but RUNLOOP_API_KEY and RUNLOOP_BENCHMARK_RUN_ID are not: set both "
                "to run against that API, or unset RUNLOOP_BASE_URL to use the bundled emulator."
            )
        return DemoTarget(mode="emulator")
    if not api_key:
        raise DemoConfigError(
            "RUNLOOP_BENCHMARK_RUN_ID is set but RUNLOOP_API_KEY is not: set your Runloop API key too, "
            "or unset RUNLOOP_BENCHMARK_RUN_ID to use the bundled emulator."
        )
    if not run_id:
        raise DemoConfigError(
            "RUNLOOP_API_KEY is set but RUNLOOP_BENCHMARK_RUN_ID is not: name the benchmark run to wait "
            "for (bmr_...), or unset RUNLOOP_API_KEY to use the bundled emulator."
        )
    if not _ID.fullmatch(run_id):
        raise DemoConfigError(
            f"RUNLOOP_BENCHMARK_RUN_ID must be a Runloop id (letters, digits, '_' and '-'), got {run_id!r}"
        )
    if base_url and not base_url.startswith(("https://", "http://")):
        raise DemoConfigError(f"RUNLOOP_BASE_URL must start with https:// or http://, got {base_url!r}")
    return DemoTarget(
        mode="runloop",
        benchmark_run_id=run_id,
        api_key=api_key,
        base_url=base_url.rstrip("/") or DEFAULT_BASE_URL,
    )


def airflow_env(
    base: Mapping[str, str],
    *,
    airflow_home: Path,
    results_url: str,
    runloop_conn: str | None,
    poll_seconds: float,
) -> dict[str, str]:
    """The environment of every ``airflow`` subprocess: the demo's own home, DB, DAGs and connection.

    ``AIRFLOW__*`` and ``AIRFLOW_CONN_*`` variables of the calling shell are dropped, so a developer's
    own Airflow settings cannot change (or be changed by) the demo.
    """
    env = {
        key: value
        for key, value in base.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and key != "AIRFLOW_HOME"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "RUNLOOP_RESULTS_URL": results_url,
            "RUNLOOP_POLL_SECONDS": f"{poll_seconds:g}",
            # The demo benchmark fails a few scenarios on purpose: export and report them, end green.
            "RUNLOOP_FAIL_ON_SCENARIO_FAILURE": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if runloop_conn is not None:
        env["AIRFLOW_CONN_RUNLOOP_DEFAULT"] = runloop_conn
    return env


# --- following `airflow dags test` --------------------------------------------------------------------

_STRUCTURED = re.compile(
    r"^\d{4}-\d\d-\d\dT(?P<time>\d\d:\d\d:\d\d)[.\d]*Z? \[(?P<level>\w+)\s*\] (?P<message>.*?)"
    r"(?: \[(?P<logger>[\w.]+)\](?P<fields>.*))?$"
)
_PROVIDER_LOGGERS = (
    "RunloopBenchmarkRunSensor",
    "RunloopBenchmarkRunTrigger",
    "RunloopBenchmarkResultsOperator",
)


class ProgressFilter:
    """Turns ``airflow dags test`` output into the few lines worth watching.

    Shown: which task starts, the provider's own log lines (the sensor's and the trigger's progress
    lines, the export), the deferral, errors, the DAG run's end, and what tasks print. Dropped: the rest
    of Airflow's bookkeeping (it stays in the log file).
    """

    def __init__(self) -> None:
        self._task: str | None = None

    def feed(self, line: str) -> str | None:
        """The line to show for one line of output, or ``None`` to hide it."""
        line = line.rstrip("\n")
        match = _STRUCTURED.match(line)
        if match is None:
            # Plain output: what a running task prints (the report), or a traceback inside one.
            return f"    {line}" if self._task is not None and line.strip() else None
        message, logger, level = match["message"], match["logger"] or "", match["level"].lower()
        clock = match["time"]
        if message.startswith("[DAG TEST] starting task_id="):
            self._task = message.split("task_id=", 1)[1].split()[0]
            return f"{clock}  ▶ {self._task}"
        if message.startswith("[DAG TEST] end task"):
            self._task = None
            return None
        if message.startswith("Pausing task as DEFERRED"):
            return f"{clock}    deferred: the trigger polls now, no worker slot held"
        if message.startswith("DagRun Finished"):
            state = re.search(r"state=(\w+)", message)
            return f"{clock}  DAG run finished: {state[1] if state else message}"
        if logger.endswith(_PROVIDER_LOGGERS) or level in ("error", "critical", "exception"):
            return f"{clock}    {message}"
        return None


# --- the results file -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultsSummary:
    """What the exported JSON Lines file says, scenario by scenario (the latest run of each counts).

    ``failed_runs`` are ``(scenario run id, name)`` pairs, sorted by id (``name`` may be ``None``).
    """

    records: int
    scenarios: int
    state_counts: dict[str, int]
    mean_score: float | None
    scored_scenarios: int
    scorer_means: dict[str, float]
    failed_runs: list[tuple[str, str | None]]

    @property
    def retried_attempts(self) -> int:
        """Scenario runs that are not their scenario's latest."""
        return self.records - self.scenarios


def summarize_records(lines: Iterable[bytes | str]) -> ResultsSummary:
    """Summarize JSON Lines records the way the completion rule counts: one latest run per scenario.

    The latest run of a scenario is the one with the greatest ``start_time_ms``; on a tie the one listed
    first (the API lists newest first).
    """
    latest: dict[str, tuple[tuple[bool, int, int], dict[str, Any]]] = {}
    records = 0
    for position, line in enumerate(lines):
        if not line.strip():
            continue
        record = json.loads(line)
        records += 1
        start = record.get("start_time_ms")
        key = (start is not None, start or 0, -position)
        held = latest.get(record["scenario_id"])
        if held is None or key > held[0]:
            latest[record["scenario_id"]] = (key, record)
    runs = [record for _, record in latest.values()]
    scored = [run for run in runs if run.get("score") is not None]
    per_scorer: dict[str, list[float]] = {}
    for run in scored:
        for result in run.get("scoring_function_results") or []:
            per_scorer.setdefault(result["name"], []).append(result["score"])
    return ResultsSummary(
        records=records,
        scenarios=len(runs),
        state_counts=dict(Counter(run["state"] for run in runs)),
        mean_score=sum(run["score"] for run in scored) / len(scored) if scored else None,
        scored_scenarios=len(scored),
        scorer_means={name: sum(values) / len(values) for name, values in sorted(per_scorer.items())},
        failed_runs=sorted(
            (run["scenario_run_id"], run.get("name")) for run in runs if run["state"] in FAILURE_STATES
        ),
    )


def format_summary(
    benchmark_run_id: str, summary: ResultsSummary, results_file: Path, runloop_score: float | None
) -> str:
    """The table printed at the end of the demo.

    The headline is Runloop's own score of the run (``runloop_score``, what its dashboard shows); the
    mean this demo computes over the scenarios' latest scored runs comes second, named for what it is.
    """
    rows = [f"Benchmark run {benchmark_run_id}"]
    if runloop_score is not None:
        rows.append(
            f"  {'Runloop run score':<22}{runloop_score:>7.3f}   (the run's score, as on the dashboard)"
        )
    else:
        rows.append(f"  {'Runloop run score':<22}{'none':>7}   (Runloop has not scored the run)")
    retried = summary.retried_attempts
    runs = f"{summary.records} scenario runs: {retried} retried attempt{'' if retried == 1 else 's'}"
    rows.append(
        f"  {'scenarios':<22}{summary.scenarios:>7}   ({runs}; each scenario counts by its latest run)"
    )
    states = [state for state in STATE_ORDER if state in summary.state_counts]
    states += sorted(set(summary.state_counts) - set(STATE_ORDER))
    for state in states:
        rows.append(f"    {state:<20}{summary.state_counts[state]:>7}")
    if summary.mean_score is not None:
        rows.append(
            f"  {'mean, scored scenarios':<22}{summary.mean_score:>7.3f}   "
            f"(over the {summary.scored_scenarios} scenarios whose latest run has a score)"
        )
    for name, mean in summary.scorer_means.items():
        rows.append(f"    {name:<20}{mean:>7.3f}")
    failed = [f"{run_id} ({name})" if name else run_id for run_id, name in summary.failed_runs]
    if failed:
        shown = ", ".join(failed[:IDS_SHOWN]) + (
            f" and {len(failed) - IDS_SHOWN} more" if len(failed) > IDS_SHOWN else ""
        )
        rows.append(f"  failed, timed out or canceled ({len(failed)}): {shown}")
    else:
        rows.append("  no failed scenarios")
    rows.append(f"Results file: {results_file}")
    return "\n".join(rows)


# --- processes --------------------------------------------------------------------------------------------


def shown_path(path: Path) -> Path:
    """A path as the demo prints it: relative to the repository when inside it."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def stop_process(process: subprocess.Popen[Any], *, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stop a process group this script started, by its leader's PID: SIGTERM, wait, then SIGKILL."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)  # started with start_new_session: its PID is its group id
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def start_emulator(
    python: str, ready_file: Path, log: IO[bytes], *, speed: float = EMULATOR_SPEED
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the emulator CLI on 127.0.0.1 (a free port) and wait for its ready file."""
    ready_file.unlink(missing_ok=True)
    command = [
        python, "-m", "airflow_provider_runloop.testing",
        "--host", "127.0.0.1", "--port", "0",
        "--script", str(BENCHMARK_SCRIPT), "--speed", f"{speed:g}",
        "--ready-file", str(ready_file),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited with status {process.returncode} before it was ready")
        try:
            return process, json.loads(ready_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"the emulator was not ready within {READY_TIMEOUT_SECONDS:g} s")


def follow(lines: Iterable[str], log: IO[str]) -> Iterator[str]:
    """Yield the lines worth showing of ``airflow dags test`` output, copying every line to ``log``."""
    progress = ProgressFilter()
    for line in lines:
        log.write(line)
        shown = progress.feed(line)
        if shown is not None:
            yield shown


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise DemoInterrupted(signal.Signals(signum).name)


def _time_out(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("airflow dags test did not finish in time (see --timeout)")


class DemoRun:
    """One ``make demo``: its files in ``.demo/`` and the processes it started (:meth:`close` stops them)."""

    def __init__(self, target: DemoTarget, *, speed: float = EMULATOR_SPEED) -> None:
        self.target = target
        self.speed = speed
        # The API the run is on (base URL, key): the real one, or the emulator once it has started.
        self.api = (target.base_url, target.api_key or "")
        self.python = sys.executable
        self.airflow = str(Path(self.python).with_name("airflow"))
        self.airflow_home = DEMO_DIR / "airflow"
        self.results_dir = DEMO_DIR / "results"
        self.results_url = f"file://{self.results_dir}"
        self.dags_log_path = DEMO_DIR / "dags-test.log"
        self.started: list[subprocess.Popen[Any]] = []
        self._files = contextlib.ExitStack()
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)

    def _env(self, runloop_conn: str | None, poll_seconds: float) -> dict[str, str]:
        return airflow_env(
            os.environ,
            airflow_home=self.airflow_home,
            results_url=self.results_url,
            runloop_conn=runloop_conn,
            poll_seconds=poll_seconds,
        )

    def _log(self, name: str, mode: str = "wb") -> IO[Any]:
        return self._files.enter_context((DEMO_DIR / name).open(mode))

    def migrate(self) -> None:
        """Create or upgrade the demo's SQLite metadata DB."""
        print(
            f"Preparing the demo's Airflow metadata DB (SQLite in {shown_path(self.airflow_home)})...",
            flush=True,
        )
        subprocess.run(
            [self.airflow, "db", "migrate"],
            env=self._env(None, 0),
            stdout=self._log("db-migrate.log"),
            stderr=subprocess.STDOUT,
            check=True,
        )

    def start_target(self) -> tuple[str, str, float]:
        """The benchmark run to wait for, the connection to it, and the poll interval."""
        if not self.target.uses_emulator:
            run_id, base_url = self.target.benchmark_run_id, self.target.base_url
            assert run_id is not None
            print(f"Runloop API at {base_url}: waiting for benchmark run {run_id}", flush=True)
            poll = float(os.environ.get("RUNLOOP_POLL_SECONDS") or RUNLOOP_POLL_SECONDS)
            return run_id, self.target.airflow_conn(), poll
        emulator, ready = start_emulator(
            self.python, DEMO_DIR / "emulator.ready.json", self._log("emulator.log"), speed=self.speed
        )
        self.started.append(emulator)
        self.api = (str(ready["base_url"]), str(ready["api_key"]))
        run_id = str(ready["benchmark_run_id"])
        print(
            f"Runloop emulator (PID {emulator.pid}) at {ready['base_url']}: benchmark "
            f"{ready['benchmark_id']} with {len(ready['scenario_ids'])} scenarios, run {run_id}",
            flush=True,
        )
        return run_id, str(ready["airflow_conn"]), EMULATOR_POLL_SECONDS

    def run_dag(self, run_id: str, conn: str, poll: float, timeout: float | None) -> int:
        """``airflow dags test`` of the example DAG, showing its progress; its exit status."""
        conf = json.dumps({"benchmark_run_id": run_id, "results_url": self.results_url})
        print(f"airflow dags test {DAG_ID} (full log: {shown_path(self.dags_log_path)})", flush=True)
        dags_log = self._log(self.dags_log_path.name, "w")
        dags_test = subprocess.Popen(
            [self.airflow, "dags", "test", DAG_ID, "--conf", conf],
            env=self._env(conn, poll),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.started.append(dags_test)
        if timeout is not None:
            signal.signal(signal.SIGALRM, _time_out)
            signal.alarm(math.ceil(timeout))
        assert dags_test.stdout is not None
        for shown in follow(dags_test.stdout, dags_log):
            print(shown, flush=True)
        status = dags_test.wait()
        dags_test.stdout.close()
        signal.alarm(0)
        dags_log.flush()
        if status != 0:
            tail = "".join(self.dags_log_path.read_text().splitlines(keepends=True)[-40:])
            print(
                f"\nairflow dags test failed (exit status {status}); the end of its log:\n{tail}",
                file=sys.stderr,
            )
        return status

    def runloop_score(self, run_id: str) -> float | None:
        """Runloop's own score of the benchmark run (``None`` until Runloop has scored it), read from
        the API with the provider's client: the number the dashboard shows."""
        from airflow_provider_runloop.client import RunloopClient

        base_url, api_key = self.api
        with RunloopClient(api_key, base_url=base_url) as client:
            return client.get_benchmark_run(run_id).score

    def close(self) -> None:
        """Stop everything this run started, by PID, newest first; close its log files."""
        signal.alarm(0)
        for process in reversed(self.started):
            stop_process(process)
        if self.target.uses_emulator and self.started:
            print(f"Runloop emulator (PID {self.started[0].pid}) stopped.", flush=True)
        self._files.close()


def run(target: DemoTarget, *, timeout: float | None, speed: float = EMULATOR_SPEED) -> int:
    """Prepare ``.demo/``, start the emulator if needed, run the DAG, print the summary; clean up always."""
    demo_run = DemoRun(target, speed=speed)
    try:
        demo_run.migrate()
        run_id, conn, poll = demo_run.start_target()
        results_file = demo_run.results_dir / f"{run_id}.jsonl"
        results_file.unlink(missing_ok=True)
        status = demo_run.run_dag(run_id, conn, poll, timeout)
        if status != 0:
            return status
        with results_file.open("rb") as file:
            summary = summarize_records(file)
        print()
        print(format_summary(run_id, summary, results_file, demo_run.runloop_score(run_id)))
        return 0
    finally:
        demo_run.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"seconds allowed for airflow dags test (default: {EMULATOR_RUN_TIMEOUT_SECONDS:g} with the "
        "emulator; none against the real API, where the sensor's own timeout applies)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=EMULATOR_SPEED,
        help=f"how many times as fast as real time the emulated clock runs (default {EMULATOR_SPEED:g})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parse_args(argv)
    try:
        target = target_from_env(os.environ if env is None else env)
    except DemoConfigError as error:
        print(f"make demo: {error}", file=sys.stderr)
        return 2
    timeout = (
        args.timeout
        if args.timeout is not None
        else (EMULATOR_RUN_TIMEOUT_SECONDS if target.uses_emulator else None)
    )
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run(target, timeout=timeout, speed=args.speed)
    except DemoInterrupted as interrupted:
        print(f"\nmake demo: interrupted ({interrupted}); everything it started is stopped.", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError, OSError) as error:
        print(f"make demo: {error}. Logs are in {shown_path(DEMO_DIR)}/.", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
