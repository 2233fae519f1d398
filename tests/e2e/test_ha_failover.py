"""Airflow's HA shape against the emulator: PostgreSQL, two schedulers, two triggerers (issue 16).

One DAG run holds ``SENSORS`` deferred ``RunloopBenchmarkRunSensor`` (scripted runs) and ``OPERATORS``
deferred ``RunloopStartBenchmarkRunOperator`` with ``cancel_on_kill=True`` (each starts a run and waits on
it); every run is held open by a scenario that stays ``scored`` until the test ends it. While they all
wait, in this order:

1. a user marks one operator's task failed through the REST API: its run, and only it, is canceled;
2. one triggerer stalls (SIGSTOP) past the health threshold, so the other takes over its operators'
   triggers, then it resumes (SIGCONT) and drops them. Airflow 3.3 calls ``on_kill`` on what it drops
   (apache/airflow#73454); the provider must see that the task is still deferred and cancel nothing;
3. the busier triggerer is SIGKILLed (its machine died) and started again, as a supervisor would; the
   delay from the kill to every moved trigger polling again is measured from the emulator's request log;
4. one scheduler is SIGKILLed;
5. the runs end with mixed outcomes.

Then every task has the verdict its run implies, on its first try, resumed from exactly one applied
event; the only writes to the API are the operators' starts and the user's one cancel.

``RUNLOOP_HA_SENSORS`` and ``RUNLOOP_HA_OPERATORS`` change the shape (``make soak``: the issue's 200 and 20).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest
from support.airflow_stack import AirflowStack, poll_until
from support.postgres import PostgresServer

from airflow_provider_runloop.testing import RunloopEmulator

DAG_ID = "runloop_ha_failover"
SENSORS = int(os.environ.get("RUNLOOP_HA_SENSORS", "12"))
OPERATORS = int(os.environ.get("RUNLOOP_HA_OPERATORS", "4"))
TOTAL = SENSORS + OPERATORS
# Scenario plans in emulated seconds (the emulator's clock runs fast): everything but the held
# scenario is over in a moment.
QUICK = {"start_interval": 0.5, "duration": [2, 6], "scoring": 1, "complete": 0.5}
HELD_OPEN = {
    "scenario_count": 3,
    "timing": QUICK,
    "outcomes": {"completed": 1.0},
    "scenarios": [{"outcome": "stays_scored"}],
}
# How each run ends once the failovers are over, and so the verdict its task must reach.
OUTCOMES = ("passes", "scenario_fails", "run_fails")
VERDICT = {"passes": "success", "scenario_fails": "failed", "run_fails": "failed", "user_kill": "failed"}
# 0.5 s apart: ten minutes at least for any one wait, longer for more tasks (each starts on a worker
# before it defers).
ATTEMPTS = max(1200, 12 * TOTAL)
# The operator task a user marks failed.
KILLED = ("start", 0)

TaskKey = tuple[str, int]


@pytest.fixture(scope="module")
def ha_capacity() -> int:
    """Room for three quarters of the triggers on one triggerer: both get work, after a stall or a kill
    the other takes what fits, and a restarted triggerer takes the rest."""
    return (3 * TOTAL) // 4


@dataclass
class Wait:
    """One task of the DAG run and the benchmark run it waits on."""

    key: TaskKey
    benchmark_run_id: str
    outcome: str

    @property
    def poll_path(self) -> str:
        return f"/v1/benchmark_runs/{self.benchmark_run_id}"


def _dag_run(api: httpx.Client, conf: dict[str, Any]) -> str:
    poll_until(
        f"{DAG_ID} to be parsed", lambda: api.get(f"/dags/{DAG_ID}").status_code == 200 or None, attempts=240
    )
    response = api.patch(f"/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    response = api.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    return str(response.json()["dag_run_id"])


def _task_instances(api: httpx.Client, dag_run: str) -> dict[TaskKey, dict[str, Any]]:
    """The mapped ``wait`` and ``start`` task instances, by (task_id, map_index): every page of each (the
    REST API caps a page at ``[api] maximum_page_limit``, 100 by default), in map index order."""
    found: dict[TaskKey, dict[str, Any]] = {}
    for task_id in ("wait", "start"):
        offset = 0
        while True:
            response = api.get(
                f"/dags/{DAG_ID}/dagRuns/{dag_run}/taskInstances",
                params={"task_id_pattern": task_id, "order_by": "map_index", "limit": 100, "offset": offset},
            )
            assert response.status_code == 200, response.text
            page = response.json()["task_instances"]
            found.update({(ti["task_id"], ti["map_index"]): ti for ti in page if ti["task_id"] == task_id})
            offset += len(page)
            if len(page) < 100:
                break
    return found


def _assignments(stack: AirflowStack, dag_run: str) -> dict[TaskKey, int | None]:
    """(task_id, map_index) -> the triggerer job running its trigger (None: unassigned)."""
    rows = stack.query(
        "SELECT ti.task_id, ti.map_index, t.triggerer_id FROM task_instance ti JOIN trigger t"
        " ON ti.trigger_id = t.id WHERE ti.dag_id = :dag_id AND ti.run_id = :run_id",
        dag_id=DAG_ID,
        run_id=dag_run,
    )
    return {(row.task_id, int(row.map_index)): row.triggerer_id for row in rows}


def _first_polls(emulator: RunloopEmulator, waits: Iterable[Wait], after_ms: int) -> dict[TaskKey, int]:
    """Each wait's first poll (GET of its run) after ``after_ms``, in emulated ms; one pass over the log."""
    by_path = {wait.poll_path: wait.key for wait in waits}
    first: dict[TaskKey, int] = {}
    for request in emulator.requests(method="GET"):
        key = by_path.get(request.path)
        if key is not None and key not in first and request.time_ms > after_ms:
            first[key] = request.time_ms
    return first


def _run_scenarios(emulator: RunloopEmulator, wait: Wait, scenario_ids: Iterable[str]) -> None:
    """Do what an agent harness does with an interactive run: start a run of each scenario, end them
    (the first failed if the outcome says so), then complete the benchmark run."""
    with httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as http:
        for i, scenario_id in enumerate(scenario_ids):
            body = {"scenario_id": scenario_id, "benchmark_run_id": wait.benchmark_run_id}
            response = http.post("/v1/scenarios/start_run", json=body)
            assert response.status_code == 200, response.text
            failed = wait.outcome == "scenario_fails" and i == 0
            emulator.force_scenario_run_state(response.json()["id"], "failed" if failed else "completed")
    emulator.force_benchmark_run_state(wait.benchmark_run_id, "completed")


def _verdicts_logged(stack: AirflowStack, wait: Wait) -> int:
    """How many times the task logged its wait's verdict: once each time a trigger event resumed it."""
    prefix = f"{wait.benchmark_run_id}: "
    return sum(
        1
        for entry in _task_log_entries(stack, *wait.key)
        if str(entry.get("event", "")).startswith(prefix)
        and (". Done" in entry["event"] or ". Failed: " in entry["event"])
    )


def _stable_owner(stack: AirflowStack, dag_run: str, key: TaskKey, *, seconds: float = 3.0) -> int:
    """The triggerer job running a task's trigger, once it has stayed on it ``seconds`` with a fresh
    heartbeat."""
    history: list[tuple[float, int | None]] = []

    def settled() -> int | None:
        rows = stack.query(
            "SELECT t.triggerer_id, extract(epoch FROM now() - j.latest_heartbeat) AS age"
            " FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id"
            " JOIN job j ON j.id = t.triggerer_id"
            " WHERE ti.dag_id = :dag_id AND ti.run_id = :run_id AND ti.task_id = :task_id"
            " AND ti.map_index = :map_index",
            dag_id=DAG_ID,
            run_id=dag_run,
            task_id=key[0],
            map_index=key[1],
        )
        job = int(rows[0].triggerer_id) if rows and float(rows[0].age) < 2 else None
        now = time.monotonic()
        history.append((now, job))
        recent = [owner for at, owner in history if at >= now - seconds]
        span = now - min(at for at, owner in history if at >= now - seconds)
        return job if job is not None and span >= seconds - 0.6 and set(recent) == {job} else None

    return poll_until(f"{key}'s trigger to stay on one live triggerer", settled, attempts=240)


def _latest_heartbeat(stack: AirflowStack, job: int) -> Any:
    rows = stack.query("SELECT latest_heartbeat FROM job WHERE id = :id", id=job)
    return rows[0].latest_heartbeat


def _started_runs(emulator: RunloopEmulator, benchmark_id: str) -> dict[str, str]:
    """Run name -> id of the benchmark's runs, as the API lists them (raw, not through the provider)."""
    with httpx.Client(base_url=emulator.base_url, headers=emulator.auth_headers) as http:
        response = http.get("/v1/benchmark_runs", params={"benchmark_id": benchmark_id, "limit": 1000})
    assert response.status_code == 200, response.text
    return {run["name"]: run["id"] for run in response.json()["runs"]}


def _trigger_logs(stack: AirflowStack, task_id: str, map_index: int, *, job: int) -> str:
    """What one triggerer job's copy of a task instance's trigger logged (Airflow writes a file per job)."""
    folder = stack.home / "logs" / f"dag_id={DAG_ID}"
    pattern = f"run_id=*/task_id={task_id}/map_index={map_index}/attempt=1.log.trigger.{job}.log"
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.glob(pattern)))


def _task_log_entries(stack: AirflowStack, task_id: str, map_index: int) -> list[dict[str, Any]]:
    """The entries of one task instance's own log of try 1 (workers write it; triggers write apart)."""
    folder = stack.home / "logs" / f"dag_id={DAG_ID}"
    paths = sorted(folder.glob(f"run_id=*/task_id={task_id}/map_index={map_index}/attempt=1.log"))
    return [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]


def test_every_component_and_postgres_listen_on_loopback_only(
    ha_stack: AirflowStack, postgres: PostgresServer
) -> None:
    listening = set()
    leaders = [process.pid for process in ha_stack.processes.values()]
    assert postgres.pid is not None
    for pid in [*leaders, postgres.pid]:
        leader = psutil.Process(pid)
        for member in [leader, *leader.children(recursive=True)]:
            for conn in member.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.add((conn.laddr.ip, conn.laddr.port))
    assert listening == {("127.0.0.1", ha_stack.port), ("127.0.0.1", postgres.port)}, listening
    assert ha_stack.named("scheduler") == ["scheduler", "scheduler-2"]
    assert ha_stack.named("triggerer") == ["triggerer", "triggerer-2"]
    assert len(set(ha_stack.job_ids.values())) == 4, ha_stack.job_ids


def test_failovers_cancel_nothing_lose_nothing_and_every_verdict_holds(
    ha_stack: AirflowStack,
    ha_api: httpx.Client,
    ha_runloop_connection: dict[str, Any],
    emulator: RunloopEmulator,
) -> None:
    api, stack = ha_api, ha_stack
    emulator.configure(request_log_limit=5_000_000)
    threshold = float(stack.env["AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"])
    speed = emulator.clock.speed
    benchmark = emulator.seed_benchmark(HELD_OPEN)
    sensor_runs = [emulator.start_scripted_run(script={**HELD_OPEN, "seed": seed}) for seed in range(SENSORS)]
    dag_run = _dag_run(
        api, {"run_ids": sensor_runs, "benchmark_id": benchmark.benchmark_id, "operators": OPERATORS}
    )
    waits = {
        ("wait", i): Wait(("wait", i), run_id, OUTCOMES[i % len(OUTCOMES)])
        for i, run_id in enumerate(sensor_runs)
    }

    # Every task deferred, every trigger on a triggerer, both triggerers with work, every run polled.
    def spread() -> dict[TaskKey, int] | None:
        tis = _task_instances(api, dag_run)
        if len(tis) < TOTAL or any(ti["state"] != "deferred" for ti in tis.values()):
            return None
        assigned = _assignments(stack, dag_run)
        if len(assigned) < TOTAL or None in assigned.values():
            return None
        names = _started_runs(emulator, benchmark.benchmark_id)
        for i in range(OPERATORS):
            waits[("start", i)] = Wait(("start", i), names[f"ha-start-{i}"], OUTCOMES[i % len(OUTCOMES)])
        if len(_first_polls(emulator, waits.values(), 0)) < TOTAL:
            return None
        return {key: int(job) for key, job in assigned.items()}

    assigned = poll_until("every task deferred and its trigger polling", spread, attempts=ATTEMPTS)
    triggerers = {stack.job_ids[name]: name for name in stack.named("triggerer")}
    print(
        f"\ntriggers per triggerer job before the failovers: {dict(Counter(assigned.values()))}, "
        f"jobs {triggerers}"
    )
    assert set(assigned.values()) == set(triggerers), "both triggerers should have work"

    # 1. A user marks one operator's task failed: Airflow calls its trigger's on_kill, which cancels the
    # run (the task is no longer deferred).
    killed = waits[KILLED]
    killed.outcome = "user_kill"
    # Airflow calls on_kill only on a triggerer running the trigger at that moment: a kill during a
    # hand-over (a starved host's heartbeat lapsing) reaches no copy, and nothing cancels the run. So
    # the kill waits for its trigger to stay on one live triggerer for a few seconds.
    owner = _stable_owner(stack, dag_run, KILLED)
    print(f"user kill: {KILLED} through the REST API, its trigger on triggerer job {owner}")
    response = api.patch(
        f"/dags/{DAG_ID}/dagRuns/{dag_run}/taskInstances/{KILLED[0]}/{KILLED[1]}",
        json={"new_state": "failed"},
    )
    assert response.status_code == 200, response.text
    poll_until(
        "the user's kill to cancel its run",
        lambda: emulator.benchmark_run_state(killed.benchmark_run_id) == "canceled" or None,
        attempts=240,
    )

    # 2. A triggerer stalls past the health threshold (SIGSTOP: a long pause, a starved host). The other
    # takes over what fits, the operators first (their priority weight); when it resumes, Airflow calls
    # on_kill on each trigger it drops.
    live_operators = [key for key in assigned if key[0] == "start" and key != KILLED]
    by_operators = Counter(assigned[key] for key in live_operators)
    stalled_job = by_operators.most_common(1)[0][0]
    stalled, other_job = triggerers[stalled_job], next(job for job in triggerers if job != stalled_job)
    held_by_stalled = [key for key in live_operators if assigned[key] == stalled_job]
    stall_monotonic = time.monotonic()
    stack.signal_tree(stalled, signal.SIGSTOP)
    try:

        def taken_over() -> list[TaskKey]:
            now = _assignments(stack, dag_run)
            return [key for key in held_by_stalled if now.get(key) == other_job]

        poll_until(f"triggers of the stalled {stalled} to move", lambda: taken_over() or None, attempts=240)
        taken_after = time.monotonic() - stall_monotonic
        time.sleep(2)  # the other's next loop or two: it takes what fits in one go
        taken = taken_over()
        last_beat = _latest_heartbeat(stack, stalled_job)
    finally:
        stack.signal_tree(stalled, signal.SIGCONT)
    # Back: it heartbeats again (so it counts as alive) and drops, through on_kill, what it lost; the
    # guard must keep every one of those runs going.
    poll_until(
        f"the resumed {stalled} to heartbeat again",
        lambda: _latest_heartbeat(stack, stalled_job) > last_beat or None,
        attempts=240,
    )
    poll_until(
        f"the resumed {stalled} to drop the triggers it lost (on_kill)",
        lambda: (
            all(
                "anceling Benchmark run" in _trigger_logs(stack, *key, job=stalled_job) for key in taken
            )  # "Not canceling ..." or "Canceling ...": on_kill decided
            or None
        ),
        attempts=240,
    )
    for key in taken:
        text = _trigger_logs(stack, *key, job=stalled_job)
        assert "Not canceling Benchmark run" in text, key
        assert "the task is still deferred, so its trigger moved to another triggerer" in text, key
    assert {emulator.benchmark_run_state(waits[k].benchmark_run_id) for k in taken} == {"running"}
    print(
        f"stall: SIGSTOP of {stalled} (job {stalled_job}) -> the first of its operator triggers taken over "
        f"by job {other_job} after {taken_after:.1f} s, {len(taken)} of {len(held_by_stalled)} in all; "
        "after SIGCONT it dropped each through on_kill, which canceled nothing"
    )

    # 3. The triggerer holding the most triggers dies (SIGKILL) and is started again.
    assigned = {k: int(v) for k, v in _assignments(stack, dag_run).items() if v is not None}
    victim_job = Counter(assigned.values()).most_common(1)[0][0]
    victim, survivor_job = triggerers[victim_job], next(job for job in triggerers if job != victim_job)
    moved = [key for key, job in assigned.items() if job == victim_job]
    kill_monotonic = time.monotonic()
    stack.kill(victim)
    # Every process of it is gone. A poll it sent just before may still be read (and logged) by the
    # emulator a moment later; a moved trigger polls no sooner than the health threshold less a
    # heartbeat. So polls in the first second after the kill are not counted as repolls.
    kill_ms = emulator.now_ms()
    counted_from_ms = kill_ms + int(1000 * speed)
    stack.restart(victim)
    live = {survivor_job, stack.job_ids[victim]}
    takers: Counter[int] = Counter()

    def repolled() -> dict[TaskKey, int] | None:
        now = _assignments(stack, dag_run)
        if any(now.get(key) not in live for key in moved):
            return None
        first = _first_polls(emulator, (waits[key] for key in moved), counted_from_ms)
        if len(first) < len(moved):
            return None
        takers.clear()
        takers.update(int(now[key] or 0) for key in moved)
        return first

    first_polls = poll_until("the moved triggers to poll again", repolled, attempts=ATTEMPTS)
    delays = sorted((t - kill_ms) / 1000 / speed for t in first_polls.values())
    print(
        f"triggerer failover: SIGKILL of {victim} (job {victim_job}, {len(moved)} of {TOTAL - 1} "
        "triggers) -> "
        f"moved triggers ({takers[survivor_job]} to the survivor, {takers[stack.job_ids[victim]]} to the "
        f"restarted triggerer) polling again after {delays[0]:.1f} s (first), "
        f"{delays[len(delays) // 2]:.1f} s (median), {delays[-1]:.1f} s (last); "
        f"triggerer_health_check_threshold = {threshold:g} s, job_heartbeat_sec = 1 s "
        f"(all seen {time.monotonic() - kill_monotonic:.1f} s after the kill)"
    )
    # A dead triggerer's triggers move once its heartbeat is older than the threshold, not before.
    assert delays[0] >= threshold - 2, delays

    # 4. A scheduler dies during the same wait: the other one must resume every task on its own.
    stack.kill("scheduler")
    release_monotonic = time.monotonic()

    # 5. End the runs: held scenario completed or failed, or the whole run failed.
    def held(benchmark_run_id: str) -> str | None:
        states = emulator.scenario_run_states(benchmark_run_id)
        return next((sid for sid, state in states.items() if state == "scored"), None)

    for wait in waits.values():
        if wait.outcome == "user_kill":
            continue
        if wait.outcome == "run_fails":
            emulator.force_benchmark_run_state(wait.benchmark_run_id, "failed")
        elif wait.key[0] == "start":
            # A run the operator started is interactive: the agent harness (here, this test) runs its
            # scenarios, then Runloop completes it.
            _run_scenarios(emulator, wait, benchmark.scenario_ids)
        else:
            scenario = poll_until(
                f"{wait.benchmark_run_id}'s held scenario",
                lambda w=wait: held(w.benchmark_run_id),
                attempts=60,
            )
            emulator.force_scenario_run_state(scenario, "completed" if wait.outcome == "passes" else "failed")

    def finished() -> dict[TaskKey, dict[str, Any]] | None:
        tis = _task_instances(api, dag_run)
        done = all(ti["state"] in {"success", "failed", "upstream_failed", "skipped"} for ti in tis.values())
        return tis if done and len(tis) == TOTAL else None

    tis = poll_until("every task to finish", finished, attempts=ATTEMPTS)
    print(
        f"scheduler failover: SIGKILL of scheduler, then every run ended; all {TOTAL} tasks finished "
        f"{time.monotonic() - release_monotonic:.1f} s after the kill (scheduler-2 alone)"
    )

    verdicts = {key: ti["state"] for key, ti in tis.items()}
    expected = {key: VERDICT[wait.outcome] for key, wait in waits.items()}
    wrong = {key: (verdicts[key], expected[key]) for key in expected if verdicts.get(key) != expected[key]}
    canceled = [
        w.key for w in waits.values() if emulator.benchmark_run_state(w.benchmark_run_id) == "canceled"
    ]
    print(
        f"verdicts: tasks {len(verdicts)} ({SENSORS} sensors, {OPERATORS} operators), right "
        f"{len(verdicts) - len(wrong)}, wrong {len(wrong)}, canceled by a user 1, canceled by failover "
        f"{len([k for k in canceled if k != KILLED])}"
    )
    assert not wrong, wrong
    assert canceled == [KILLED], canceled
    # Nothing lost or applied twice: each task ran one try, and each waiting task was resumed by exactly
    # one trigger event (the killed one by none: a user ended it).
    assert {ti["try_number"] for ti in tis.values()} == {1}, {k: ti["try_number"] for k, ti in tis.items()}
    applied = {key: _verdicts_logged(stack, wait) for key, wait in waits.items()}
    assert applied == {key: 0 if key == KILLED else 1 for key in waits}, applied
    # The only writes: each operator's start, and the user's kill's cancel (one from each copy of its
    # trigger that was running then: two triggerers may run one trigger for a moment).
    writes = Counter(
        (r.method, r.path)
        for r in emulator.requests()
        if r.method != "GET" and not r.path.startswith("/v1/scenarios/")  # this test's agent harness
    )
    cancels = writes.pop(("POST", f"{killed.poll_path}/cancel"), 0)
    assert writes == Counter({("POST", "/v1/benchmarks/start_run"): OPERATORS}), writes
    assert 1 <= cancels <= 2, cancels
