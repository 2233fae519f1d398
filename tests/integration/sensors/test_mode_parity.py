"""The mode-parity table: the same faulty server, in poke, reschedule and deferrable mode, ends the same way.

Each row is one fault of the emulator; each cell runs the sensor in one mode under ``dag.test()`` against its
own emulator. The expected column is the rule (issue 12): one poll-failure budget
``max_consecutive_poll_failures`` (N, :data:`BUDGET` here). Transient errors (5xx/429, a dropped
connection, a time-out, and an invalid response: a malformed body, a page that does not parse, a cursor
that does not advance) count against it; the (N+1)-th failed poll in a row fails the task with the last
error's type, and a good poll resets the count. Fatal errors fail at once in every mode: 401/403, 404,
400, an unknown state. A deferrable task raises the same exception class as a poking one.

The client's own retries are off (connection extra ``max_retries: 0``), so a fault that fires fails the
poll it fires in and the sensor's budget is what is exercised. The emulator runs on a manual clock: the run
is mid-flight for the first poll (which is healthy unless the row says otherwise, so that in deferrable
mode the faults meet the trigger, not the check before deferring) and is moved to its end right after,
so the second poll could finish the wait (for a row of several bursts: after the healthy poll before the
last burst). Every cell also checks that its faults really fired.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.dag_files import load_dag_file

from airflow_provider_runloop.testing import Fault, RunloopEmulator
from airflow_provider_runloop.testing.faults import PAGE_MEMORY_KINDS

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "runloop_mode_parity.py"
DAGS = load_dag_file(DAG_FILE)
MODES: tuple[str, ...] = DAGS.MODES
BUDGET: int = DAGS.BUDGET
# Polls that fail before a budget-exhausting row fails the task, and before a fatal row does.
PAST_BUDGET = BUDGET + 1
AT_ONCE = 1

SMALL = 3
# The page faults act on a page asked for with a cursor: the paged rows' server caps pages at 2 items
# (emulator setting max_page_size), so the final listing of 5 scenario runs takes three pages.
PAGED_SCENARIOS = 5
PAGE_CAP = 2
# The first poll of a wait is the benchmark run and four state-filtered counts; the faults on the
# scenario-run listing let those four through.
COUNTS_PER_POLL = 4


@dataclass(frozen=True)
class Row:
    """One fault and the outcome the rule expects of it, whatever the mode."""

    target: str  # "run": GET /v1/benchmark_runs/<id>; "pages": GET /v1/benchmark_runs/<id>/scenario_runs
    fault: dict[str, Any]
    state: str  # the sensor task's final state
    error: str | None  # the exception class the task fails with
    failed_polls: int | None = None  # polls that failed, for a row that ends failed
    scenarios: int = SMALL
    max_page_size: int | None = None  # the emulator's page cap (None: the client's 5,000 a page)
    healthy_first_poll: bool = True
    client_timeout: float | None = None  # the connection's ``timeout`` extra (seconds), if set
    # Bursts of the fault, each after one healthy poll (run target only); the run ends after the last gap.
    bursts: int = 1


def succeeds(target: str, fault: dict[str, Any], *, times: int | None = None, **options: Any) -> Row:
    """A row the rule ends in success (``times``: how often the fault fires; always if ``None``)."""
    return Row(target, _fault(fault, times), "success", None, **options)


def fails(
    target: str,
    fault: dict[str, Any],
    error: str,
    failed_polls: int,
    *,
    times: int | None = None,
    **options: Any,
) -> Row:
    """A row the rule ends in failure with ``error``, after ``failed_polls`` failed polls."""
    return Row(target, _fault(fault, times), "failed", error, failed_polls, **options)


def _fault(fault: dict[str, Any], times: int | None) -> dict[str, Any]:
    return fault if times is None else {**fault, "times": times}


MALFORMED = {"kind": "malformed_body"}
REPEATED = {"kind": "repeat_page"}
SHIFTED = {"kind": "shift_page"}
STATUS_503 = {"kind": "status", "status": 503}
STATUS_401 = {"kind": "status", "status": 401}
STATUS_404 = {"kind": "status", "status": 404}
STATUS_400 = {"kind": "status", "status": 400}
DROPPED = {"kind": "drop_connection"}
SLOW = {"kind": "latency", "latency_seconds": 2.5}
UNKNOWN_STATE = {"kind": "unknown_state"}
INVALID = "RunloopInvalidResponseError"
SERVER = "RunloopServerError"
AUTH = "RunloopAuthenticationError"
NOT_FOUND = "RunloopNotFoundError"
BAD_REQUEST = "RunloopBadRequestError"
UNKNOWN = "RunloopUnknownStateError"
PAGED: dict[str, Any] = {"scenarios": PAGED_SCENARIOS, "max_page_size": PAGE_CAP}
FROM_FIRST: dict[str, Any] = {"healthy_first_poll": False}  # the fault acts from the very first poll

ROWS = [
    pytest.param(succeeds("pages", MALFORMED, times=BUDGET), id="malformed-page-within-budget"),
    pytest.param(fails("pages", MALFORMED, INVALID, PAST_BUDGET), id="malformed-page-always"),
    pytest.param(fails("run", MALFORMED, INVALID, PAST_BUDGET), id="malformed-run-body-always"),
    pytest.param(succeeds("pages", REPEATED, times=1, **PAGED), id="repeated-page-once"),
    pytest.param(succeeds("pages", SHIFTED, **PAGED), id="overlapping-page-deduplicated"),
    pytest.param(fails("pages", REPEATED, INVALID, PAST_BUDGET, **PAGED), id="non-advancing-cursor"),
    pytest.param(succeeds("run", STATUS_503, times=BUDGET), id="503-burst-within-budget"),
    pytest.param(fails("run", STATUS_503, SERVER, PAST_BUDGET), id="503-burst-past-budget"),
    pytest.param(fails("run", STATUS_503, SERVER, PAST_BUDGET, **FROM_FIRST), id="503-from-first-poll"),
    # A good poll between two bursts resets the count: four failures, never more than N in a row.
    pytest.param(succeeds("run", STATUS_503, times=BUDGET, bursts=2), id="good-poll-resets-the-count"),
    pytest.param(succeeds("run", DROPPED, times=BUDGET), id="dropped-connection-within-budget"),
    # One time-out, not a budget of them: on a busy machine a slow healthy answer may cost a poll too.
    pytest.param(succeeds("run", SLOW, times=1, client_timeout=1.0), id="timeout-within-budget"),
    pytest.param(fails("run", STATUS_401, AUTH, AT_ONCE), id="401-at-once"),
    pytest.param(fails("run", STATUS_404, NOT_FOUND, AT_ONCE), id="404-at-once"),
    pytest.param(fails("run", STATUS_400, BAD_REQUEST, AT_ONCE), id="400-at-once"),
    pytest.param(fails("run", UNKNOWN_STATE, UNKNOWN, AT_ONCE), id="unknown-run-state-at-once"),
    pytest.param(fails("pages", UNKNOWN_STATE, UNKNOWN, AT_ONCE), id="unknown-scenario-run-state-at-once"),
]


@dataclass(frozen=True)
class Cell:
    """What one (row, mode) run did: the task's end, and what the emulator saw."""

    state: str
    error: str | None
    message: str | None
    polls: int  # GET /v1/benchmark_runs/<id>: one per poll
    faults: tuple[Fault, ...] = field(repr=False)

    def failed_polls(self, row: Row) -> int:
        return self.polls - (1 if row.healthy_first_poll else 0)

    def verdict(self, row: Row) -> tuple[str, str | None, int | None]:
        """What the rule decides, in a form the three modes must share."""
        return self.state, self.error, self.failed_polls(row) if row.state == "failed" else None


# One run per (row, mode) in a session: the cells fill it, the row's parity test reads it.
_CELLS: dict[tuple[str, str], Cell] = {}


def _advance_after_healthy_polls(
    emulator: RunloopEmulator, run_id: str, polls: int, stop: threading.Event
) -> None:
    """Move the run to its end after ``polls`` healthy polls (before the poll that should see the end).

    The first poll of a wait counts every state, so after one healthy poll the move waits for its four
    counts. A later healthy poll may count only one state (the hook's count plan), so after several
    the move waits for the next poll to begin: its run fetch is the next burst's, which fails anyway.
    """
    counts = f"/v1/benchmark_runs/{run_id}/scenario_runs"
    run = f"/v1/benchmark_runs/{run_id}"
    while not stop.is_set():
        if polls == 1:
            ready = len(emulator.requests(method="GET", path=counts)) >= COUNTS_PER_POLL
        else:
            fetches = emulator.requests(method="GET", path=run)
            healthy = [i for i, entry in enumerate(fetches) if entry.status == 200]
            ready = len(healthy) >= polls and len(fetches) > healthy[polls - 1] + 1
        if ready:
            emulator.advance(3600)
            return
        stop.wait(0.002)


def _first_poll_requests(row: Row) -> int:
    """How many requests the row's fault must let through so that the first poll is healthy."""
    if not row.healthy_first_poll or row.fault["kind"] in PAGE_MEMORY_KINDS:
        return 0  # a page-memory fault only acts on a page with a cursor: never in the first poll
    return COUNTS_PER_POLL if row.target == "pages" else 1


@pytest.fixture
def run_cell(
    runloop_emulator_factory: Callable[..., RunloopEmulator], airflow_db: None, tmp_path: Path
) -> Callable[[str, Row, str], Cell]:
    def run(row_id: str, row: Row, mode: str) -> Cell:
        if (row_id, mode) in _CELLS:
            return _CELLS[(row_id, mode)]
        emulator = runloop_emulator_factory()  # a manual clock: the run moves only when told
        if row.max_page_size is not None:
            emulator.configure(max_page_size=row.max_page_size)
        script = {"scenario_count": row.scenarios, "timing": {"start_interval": 0, "duration": 1}}
        run_id = emulator.start_scripted_run(script=script)
        path = f"/v1/benchmark_runs/{run_id}" + ("/scenario_runs" if row.target == "pages" else "")
        # A later burst's fault also lets through the healthy polls after the earlier bursts (the first
        # fault that fires wins, so the others do not count the requests it took).
        faults = tuple(
            emulator.faults.add(
                Fault(method="GET", path=path, skip=_first_poll_requests(row) + i, **row.fault)
            )
            for i in range(row.bursts)
        )
        extra: dict[str, Any] = {"max_retries": 0}
        if row.client_timeout is not None:
            extra["timeout"] = row.client_timeout
        conn = {**json.loads(emulator.airflow_conn_json), "extra": extra}
        out = tmp_path / f"{row_id}-{mode}.json"
        stop = threading.Event()
        mover = threading.Thread(
            target=_advance_after_healthy_polls, args=(emulator, run_id, row.bursts, stop), daemon=True
        )
        dag = getattr(load_dag_file(DAG_FILE), f"dag_{mode}")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AIRFLOW_CONN_RUNLOOP_DEFAULT", json.dumps(conn))
            if row.healthy_first_poll:
                mover.start()
            try:
                dag_run = dag.test(run_conf={"run_id": run_id, "out": str(out)})
            finally:
                stop.set()
                if mover.is_alive():
                    mover.join()
        (ti,) = dag_run.get_task_instances()
        recorded = json.loads(out.read_text())
        assert recorded["state"] == str(ti.state), (recorded, ti.state)
        polls = len(emulator.requests(method="GET", path=f"/v1/benchmark_runs/{run_id}"))
        cell = Cell(str(ti.state), recorded["exception"], recorded["message"], polls, faults)
        _CELLS[(row_id, mode)] = cell
        return cell

    return run


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("row", ROWS)
def test_mode_meets_the_rule(row: Row, mode: str, run_cell: Callable[[str, Row, str], Cell]) -> None:
    cell = run_cell(_row_id(row), row, mode)
    # The harness: the fault really fired, so the cell judges the provider's answer to it.
    assert all(fault.fired >= 1 for fault in cell.faults), cell.faults
    assert (cell.state, cell.error) == (row.state, row.error), cell.message
    if row.failed_polls is not None:
        assert cell.failed_polls(row) == row.failed_polls, cell
    if row.state == "success" and row.fault.get("times") is not None:
        # The success came after every burst, whole.
        assert [fault.fired for fault in cell.faults] == [row.fault["times"]] * row.bursts, cell.faults


@pytest.mark.parametrize("row", ROWS)
def test_every_mode_agrees(row: Row, run_cell: Callable[[str, Row, str], Cell]) -> None:
    verdicts = {mode: run_cell(_row_id(row), row, mode).verdict(row) for mode in MODES}
    assert len(set(verdicts.values())) == 1, verdicts


def _row_id(row: Row) -> str:
    """The row's id in the table (the cells and the parity test share their runs by it)."""
    (row_id,) = (param.id for param in ROWS if param.values[0] is row)
    assert row_id is not None
    return row_id
