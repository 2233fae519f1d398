"""Airflow's HA shape against the emulator: PostgreSQL, two schedulers, two triggerers (issue 16).

A DAG run maps one deferred ``RunloopBenchmarkRunSensor`` over each of ``SENSORS`` scripted benchmark runs,
every run held open by a scenario that stays ``scored`` until the test ends it. Once the triggers are
spread over both triggerers and each run has been polled, one triggerer is SIGKILLed (its machine
died). The test then waits until every trigger it ran is polled again by the other one, measures that
delay from the emulator's request log, SIGKILLs one scheduler too, ends the runs with mixed outcomes and
checks that each task ends with the verdict its run implies, on its first try, and that nothing was
canceled.

``RUNLOOP_HA_SENSORS`` changes the number of sensors (``make soak`` runs the issue's 200).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import httpx
import psutil
import pytest
from support.airflow_stack import AirflowStack, poll_until
from support.postgres import PostgresServer

from airflow_provider_runloop.testing import RunloopEmulator

DAG_ID = "runloop_ha_failover"
SENSORS = int(os.environ.get("RUNLOOP_HA_SENSORS", "20"))
# Scenario plans in emulated seconds (the emulator's clock runs fast): everything but the held
# scenario is over in a moment.
QUICK = {"start_interval": 0.5, "duration": [2, 6], "scoring": 1, "complete": 0.5}
# How each run ends once the failover is over, and so the verdict its sensor must reach.
OUTCOMES = ("passes", "scenario_fails", "run_fails")
VERDICT = {"passes": "success", "scenario_fails": "failed", "run_fails": "failed"}
# 0.5 s apart: six minutes at most for any one wait at 20 sensors, longer for more (each sensor starts
# on a worker before it defers).
ATTEMPTS = max(720, 36 * SENSORS)


@pytest.fixture(scope="module")
def ha_capacity() -> int:
    """Room for three quarters of the triggers on one triggerer: both get work, and after the kill the
    survivor takes what fits while the restarted triggerer takes the rest."""
    return (3 * SENSORS) // 4


def _held_open(seed: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "scenario_count": 3,
        "timing": QUICK,
        "outcomes": {"completed": 1.0},
        "scenarios": [{"outcome": "stays_scored"}],
    }


def _dag_run(api: httpx.Client, run_ids: list[str]) -> str:
    poll_until(
        f"{DAG_ID} to be parsed", lambda: api.get(f"/dags/{DAG_ID}").status_code == 200 or None, attempts=240
    )
    response = api.patch(f"/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    response = api.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"run_ids": run_ids}})
    assert response.status_code == 200, response.text
    return str(response.json()["dag_run_id"])


def _wait_tis(api: httpx.Client, run_id: str) -> dict[int, dict[str, Any]]:
    response = api.get(
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"task_id_pattern": "wait", "limit": 1000}
    )
    assert response.status_code == 200, response.text
    return {ti["map_index"]: ti for ti in response.json()["task_instances"] if ti["task_id"] == "wait"}


def _assignments(stack: AirflowStack, run_id: str) -> dict[int, int | None]:
    """map_index -> the triggerer job running its trigger (None: unassigned), for the deferred sensors."""
    rows = stack.query(
        "SELECT ti.map_index, t.triggerer_id FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id"
        " WHERE ti.dag_id = :dag_id AND ti.run_id = :run_id AND ti.task_id = 'wait'",
        dag_id=DAG_ID,
        run_id=run_id,
    )
    return {int(row.map_index): row.triggerer_id for row in rows}


def _polls(emulator: RunloopEmulator, benchmark_run_id: str) -> list[int]:
    """Emulated times (ms) of the GETs of one benchmark run (the trigger's polls)."""
    return [r.time_ms for r in emulator.requests(method="GET", path=f"/v1/benchmark_runs/{benchmark_run_id}")]


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


def test_triggerer_sigkill_moves_its_triggers_and_every_verdict_holds(
    ha_stack: AirflowStack,
    ha_api: httpx.Client,
    ha_runloop_connection: dict[str, Any],
    emulator: RunloopEmulator,
) -> None:
    api, stack = ha_api, ha_stack
    run_ids = [emulator.start_scripted_run(script=_held_open(seed)) for seed in range(SENSORS)]
    outcome = {i: OUTCOMES[i % len(OUTCOMES)] for i in range(SENSORS)}
    dag_run = _dag_run(api, run_ids)

    # Every sensor deferred, every trigger on a triggerer, both triggerers with work, every run polled
    # by its trigger.
    def spread() -> dict[int, int] | None:
        tis = _wait_tis(api, dag_run)
        if len(tis) < SENSORS or any(ti["state"] != "deferred" for ti in tis.values()):
            return None
        assigned = _assignments(stack, dag_run)
        if len(assigned) < SENSORS or None in assigned.values():
            return None
        if not all(_polls(emulator, run_ids[i]) for i in range(SENSORS)):
            return None
        return {i: int(job) for i, job in assigned.items()}

    assigned = poll_until("every sensor deferred and its trigger polling", spread, attempts=ATTEMPTS)
    triggerers = {stack.job_ids[name]: name for name in stack.named("triggerer")}
    per_triggerer = Counter(assigned.values())
    print(f"\ntriggers per triggerer job before the kill: {dict(per_triggerer)} (jobs {triggerers})")
    assert set(per_triggerer) == set(triggerers), f"both triggerers should have work: {per_triggerer}"

    # SIGKILL the triggerer holding the most triggers.
    victim_job = per_triggerer.most_common(1)[0][0]
    victim = triggerers[victim_job]
    survivor_job = next(job for job in triggerers if job != victim_job)
    moved = sorted(i for i, job in assigned.items() if job == victim_job)
    kill_ms = emulator.now_ms()
    kill_monotonic = time.monotonic()
    stack.kill(victim)
    # A supervisor (systemd, Kubernetes) starts a new triggerer in its place: its new job takes what
    # does not fit on the survivor.
    stack.restart(victim)
    live = {survivor_job, stack.job_ids[victim]}

    # Every moved trigger is taken over by a live triggerer and polls its run again.
    takers: Counter[int] = Counter()

    def repolled() -> dict[int, int] | None:
        now = _assignments(stack, dag_run)
        if any(now.get(i) not in live for i in moved):
            return None
        takers.clear()
        takers.update(int(now[i] or 0) for i in moved)
        first = {}
        for i in moved:
            after = [t for t in _polls(emulator, run_ids[i]) if t > kill_ms]
            if not after:
                return None
            first[i] = after[0]
        return first

    first_polls = poll_until("the moved triggers to poll again", repolled, attempts=ATTEMPTS)
    speed = emulator.clock.speed
    threshold = float(stack.env["AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"])
    delays = sorted((t - kill_ms) / 1000 / speed for t in first_polls.values())
    wall = time.monotonic() - kill_monotonic
    print(
        f"triggerer failover: SIGKILL of {victim} (job {victim_job}, {len(moved)} of {SENSORS} triggers) -> "
        f"moved triggers ({takers[survivor_job]} to the survivor, {takers[stack.job_ids[victim]]} to the "
        f"restarted triggerer) polling again after {delays[0]:.1f} s (first), "
        f"{delays[len(delays) // 2]:.1f} s (median), {delays[-1]:.1f} s (last); "
        f"[triggerer] triggerer_health_check_threshold = {threshold:g} s, job_heartbeat_sec = 1 s "
        f"(all moved seen {wall:.1f} s after the kill)"
    )
    # A dead triggerer's triggers move once its heartbeat is older than the threshold, not before.
    assert delays[0] >= threshold - 2, delays

    # A scheduler dies during the same wait: the other one must resume every task on its own.
    stack.kill("scheduler")
    release_monotonic = time.monotonic()

    # Now end the runs: held scenario completed, failed, or the whole run failed.
    def held(benchmark_run_id: str) -> str | None:
        states = emulator.scenario_run_states(benchmark_run_id)
        return next((sid for sid, state in states.items() if state == "scored"), None)

    for i, benchmark_run_id in enumerate(run_ids):
        if outcome[i] == "run_fails":
            emulator.force_benchmark_run_state(benchmark_run_id, "failed")
            continue
        scenario = poll_until(
            f"{benchmark_run_id}'s held scenario", lambda b=benchmark_run_id: held(b), attempts=60
        )
        emulator.force_scenario_run_state(scenario, "completed" if outcome[i] == "passes" else "failed")

    def finished() -> dict[int, dict[str, Any]] | None:
        tis = _wait_tis(api, dag_run)
        done = all(ti["state"] in {"success", "failed", "upstream_failed", "skipped"} for ti in tis.values())
        return tis if done and len(tis) == SENSORS else None

    tis = poll_until("every sensor to finish", finished, attempts=ATTEMPTS)
    print(
        f"scheduler failover: SIGKILL of scheduler, then every run ended; all {SENSORS} sensors finished "
        f"{time.monotonic() - release_monotonic:.1f} s after the kill (scheduler-2 alone)"
    )
    verdicts = {i: ti["state"] for i, ti in tis.items()}
    assert verdicts == {i: VERDICT[outcome[i]] for i in range(SENSORS)}
    # No event lost or applied twice: each task resumed once, on its first try.
    assert {ti["try_number"] for ti in tis.values()} == {1}, {i: ti["try_number"] for i, ti in tis.items()}
    # The failover canceled nothing: the sensors only read, and no run ended canceled.
    assert not [r for r in emulator.requests() if r.method != "GET"], "a sensor wrote to the API"
    assert {emulator.benchmark_run_state(r) for r in run_ids} <= {"completed", "failed"}
