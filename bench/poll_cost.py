"""What one poll of a benchmark run costs: requests, bytes and CPU, steady and first, against floors.

Run: ``.venv/bin/python bench/poll_cost.py`` (not part of ``make test``; the request and byte targets
are asserted by ``tests/integration/hooks/test_poll_cost.py``). Writes ``bench/results/poll_cost.json``.

The emulator runs in a child process (``bench/_emulator_child.py``: requests, response-body bytes and
routes counted server-side) on a clock that never moves, every benchmark run caught mid-way (every
scenario run started, most still running). Three measurements:

1. **cheap vs naive** at 1,000 and 10,000 scenario runs: one ``RunloopHook.check_benchmark_run``
   (the run plus ``limit=1`` counts) against what a hand-written loop does (the run plus every
   scenario run, listed): requests, bytes, wall time.
2. **CPU per steady poll** (``time.process_time`` per poll, median of ``--polls``) on a 1,000-run
   benchmark run: ``await hook.acheck_benchmark_run(run_id, expected_count=K)`` with one hook, and the
   sync ``hook.check_benchmark_run``, each against a floor that sends the very requests the
   provider's poll made (recorded server-side) with one raw shared ``httpx`` client + ``json.loads``.
3. **first poll** at 10,000 and 100,000 scenario runs as a deferred sensor's trigger makes it:
   ``RunloopBenchmarkRunSensor(deferrable=True, poke_interval=5)`` without an expected count is
   executed until it defers (its requests and bytes, made once on the worker, are reported apart);
   the trigger is re-created from ``serialize()`` with ``deadline=time.time()``, so its ``run()``
   polls exactly once and emits its time-out event: that poll's requests, bytes and CPU (median of
   ``--first-repeat``; a triggerer restart makes it again), and the serialized kwargs' size. Twice:
   mid-way (most scenario runs active), and *late* (every scenario run finished, one scenario not
   started yet: the verdict then depends on the expected scenarios, the benchmark's ``scenarioIds``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _emulator_child import REPO, EmulatorChild, emulator_child, mid_way_script

RESULTS = REPO / "bench" / "results"
KIB = 1024


class _TaskInstance:
    """What the sensor's ``execute`` touches of ``context["ti"]`` (the extra link's XCom)."""

    dag_id, task_id, run_id, map_index, try_number, max_tries = "bench", "s", "bench_run", -1, 1, 0

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _traffic(child: EmulatorChild) -> dict[str, Any]:
    stats = child.stats()
    return {"requests": stats["requests"], "bytes": stats["body_bytes"], "routes": stats["routes"]}


# --- 1. cheap vs naive ------------------------------------------------------------------------------------


def cheap_vs_naive(child: EmulatorChild, run_id: str, size: int) -> dict[str, Any]:
    from airflow_provider_runloop.hooks.runloop import RunloopHook

    hook = RunloopHook()
    client = hook.get_conn()  # reading the connection is not part of a poll
    child.reset()
    started = time.perf_counter()
    verdict = hook.check_benchmark_run(run_id, expected_count=size)
    cheap_seconds = time.perf_counter() - started
    cheap = _traffic(child)
    assert not verdict.done, verdict.message

    child.reset()
    started = time.perf_counter()
    client.get_benchmark_run(run_id)
    listed = sum(1 for _ in client.list_scenario_runs(run_id))
    naive_seconds = time.perf_counter() - started
    naive = _traffic(child)
    assert listed == size, (listed, size)
    hook.close()
    return {
        "size": size,
        "cheap_requests": cheap["requests"],
        "cheap_bytes": cheap["bytes"],
        "cheap_seconds": cheap_seconds,
        "naive_requests": naive["requests"],
        "naive_bytes": naive["bytes"],
        "naive_seconds": naive_seconds,
    }


# --- 2. CPU per steady poll ---------------------------------------------------------------------------------


def _split(recent: list[str]) -> list[tuple[str, str]]:
    return [(line.split(" ", 1)[0], line.split(" ", 1)[1]) for line in recent]


async def _async_steady(child: EmulatorChild, run_id: str, size: int, polls: int) -> dict[str, Any]:
    import httpx

    from airflow_provider_runloop.hooks.runloop import RunloopHook

    hook = RunloopHook()
    for _ in range(3):  # warm: the client is created, the connection read, the pool filled
        await hook.acheck_benchmark_run(run_id, expected_count=size)
    child.reset()
    await hook.acheck_benchmark_run(run_id, expected_count=size)
    one_poll = child.stats()
    sent = _split(one_poll["recent"])
    provider_cpu = []
    for _ in range(polls):
        started = time.process_time()
        verdict = await hook.acheck_benchmark_run(run_id, expected_count=size)
        provider_cpu.append(time.process_time() - started)
    assert not verdict.done
    await hook.aclose()

    # The floor: the same requests (the first alone, the others concurrently, as the hook sends them).
    headers = {"Authorization": f"Bearer {child.api_key}"}
    floor_cpu = []
    async with httpx.AsyncClient(base_url=child.base_url, headers=headers, timeout=30) as client:

        async def get(target: str) -> Any:
            return json.loads((await client.get(target)).content)

        for _ in range(3):
            await get(sent[0][1])
        for _ in range(polls):
            started = time.process_time()
            await get(sent[0][1])
            await asyncio.gather(*(get(target) for _, target in sent[1:]))
            floor_cpu.append(time.process_time() - started)
    return {
        "requests_per_poll": one_poll["requests"],
        "bytes_per_poll": one_poll["body_bytes"],
        "requests": one_poll["recent"],
        "provider_cpu_ms_median": 1000 * statistics.median(provider_cpu),
        "provider_cpu_ms_p90": 1000 * statistics.quantiles(provider_cpu, n=10)[-1],
        "floor_cpu_ms_median": 1000 * statistics.median(floor_cpu),
        "floor_cpu_ms_p90": 1000 * statistics.quantiles(floor_cpu, n=10)[-1],
    }


def _sync_steady(child: EmulatorChild, run_id: str, size: int, polls: int) -> dict[str, Any]:
    import httpx

    from airflow_provider_runloop.hooks.runloop import RunloopHook

    hook = RunloopHook()
    for _ in range(3):
        hook.check_benchmark_run(run_id, expected_count=size)
    child.reset()
    hook.check_benchmark_run(run_id, expected_count=size)
    one_poll = child.stats()
    sent = _split(one_poll["recent"])
    provider_cpu = []
    for _ in range(polls):
        started = time.process_time()
        verdict = hook.check_benchmark_run(run_id, expected_count=size)
        provider_cpu.append(time.process_time() - started)
    assert not verdict.done
    hook.close()

    headers = {"Authorization": f"Bearer {child.api_key}"}
    floor_cpu = []
    with httpx.Client(base_url=child.base_url, headers=headers, timeout=30) as client:
        for _ in range(3):
            json.loads(client.get(sent[0][1]).content)
        for _ in range(polls):
            started = time.process_time()
            for _, target in sent:
                json.loads(client.get(target).content)
            floor_cpu.append(time.process_time() - started)
    return {
        "requests_per_poll": one_poll["requests"],
        "bytes_per_poll": one_poll["body_bytes"],
        "requests": one_poll["recent"],
        "provider_cpu_ms_median": 1000 * statistics.median(provider_cpu),
        "provider_cpu_ms_p90": 1000 * statistics.quantiles(provider_cpu, n=10)[-1],
        "floor_cpu_ms_median": 1000 * statistics.median(floor_cpu),
        "floor_cpu_ms_p90": 1000 * statistics.quantiles(floor_cpu, n=10)[-1],
    }


# --- 3. first poll, as a deferred sensor's trigger makes it ---------------------------------------------


def _defer(child: EmulatorChild, run_id: str) -> tuple[Any, dict[str, Any]]:
    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # older Airflow
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

    from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

    sensor = RunloopBenchmarkRunSensor(task_id="s", benchmark_run_id=run_id, deferrable=True, poke_interval=5)
    child.reset()
    try:
        sensor.execute({"ti": _TaskInstance()})  # type: ignore[typeddict-item]
    except TaskDeferred as deferred:
        return deferred.trigger, _traffic(child)
    raise RuntimeError(f"the sensor did not defer on {run_id}: the run is done already?")


async def _one_trigger_poll(trigger: Any) -> list[Any]:
    return [event.payload async for event in trigger.run()]


def first_poll(child: EmulatorChild, run_id: str, size: int, repeat: int) -> dict[str, Any]:
    from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger

    trigger, deferring = _defer(child, run_id)
    classpath, kwargs = trigger.serialize()
    polls = []
    for _ in range(repeat):
        fresh = RunloopBenchmarkRunTrigger(**{**kwargs, "deadline": time.time()})
        child.reset()
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        events = asyncio.run(_one_trigger_poll(fresh))
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
        traffic = _traffic(child)
        assert len(events) == 1, events
        assert events[0]["status"] == "timeout", events
        polls.append({**traffic, "cpu_s": cpu, "wall_s": wall})
    return {
        "size": size,
        "deferring_execute_requests": deferring["requests"],
        "deferring_execute_bytes": deferring["bytes"],
        "deferring_execute_routes": deferring["routes"],
        "trigger_classpath": classpath,
        "serialized_kwargs_bytes": len(json.dumps(kwargs)),
        "first_poll_requests": polls[0]["requests"],
        "first_poll_bytes": polls[0]["bytes"],
        "first_poll_routes": polls[0]["routes"],
        "first_poll_cpu_ms_median": 1000 * statistics.median(p["cpu_s"] for p in polls),
        "first_poll_cpu_ms_all": [1000 * p["cpu_s"] for p in polls],
        "first_poll_wall_ms_median": 1000 * statistics.median(p["wall_s"] for p in polls),
    }


def late_script(scenario_count: int) -> dict[str, Any]:
    """Near the end of a run, 20 s in: every scenario run finished but one scenario not started yet
    (its run is due much later), so the run is open and no run is active: the verdict depends on the
    expected scenarios, which, without an expected count, are the benchmark's ``scenarioIds``."""
    return {
        "scenario_count": scenario_count,
        "seed": 2,
        "timing": {"start_interval": 0, "duration": [1, 5], "scoring": 1, "complete": 1},
        "scenarios": [{"start_at": 1_000_000}],
    }


# --- the report -----------------------------------------------------------------------------------------


def _figure(
    name: str, value: float, baseline: float | None, unit: str, goal: str, met: bool | None
) -> dict[str, Any]:
    return {
        "row": "poll cost",
        "figure": name,
        "unit": unit,
        "value": value,
        "baseline": baseline,
        "ratio": value / baseline if baseline else None,
        "goal": goal,
        "met": met,
    }


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for m in result["cheap_vs_naive"]:
        size = f"{m['size']:,}"
        out.append(
            _figure(
                f"steady poll requests @{size} (vs naive)",
                m["cheap_requests"],
                m["naive_requests"],
                "",
                "<= 5",
                m["cheap_requests"] <= 5,
            )
        )
        out.append(
            _figure(
                f"steady poll KiB @{size} (vs naive)",
                m["cheap_bytes"] / KIB,
                m["naive_bytes"] / KIB,
                "KiB",
                "<= 20 KiB",
                m["cheap_bytes"] <= 20 * KIB,
            )
        )
    for mode in ("async", "sync"):
        m = result["steady_cpu"][mode]
        out.append(
            _figure(
                f"CPU per steady poll, {mode} (vs floor)",
                m["provider_cpu_ms_median"],
                m["floor_cpu_ms_median"],
                "ms",
                "<= 1.2 ms",
                m["provider_cpu_ms_median"] <= 1.2,
            )
        )
    for phase, key in (("", "first_poll"), (" late", "first_poll_late")):
        out += _first_figures(result[key], phase)
    return out


def _first_figures(measured: list[dict[str, Any]], phase: str) -> list[dict[str, Any]]:
    out = []
    first = {m["size"]: m for m in measured}
    for size, m in first.items():
        label = f"@{size:,}{phase}"
        out.append(
            _figure(
                f"first poll requests {label}",
                m["first_poll_requests"],
                None,
                "",
                "<= 5",
                m["first_poll_requests"] <= 5,
            )
        )
        out.append(
            _figure(
                f"first poll KiB {label}",
                m["first_poll_bytes"] / KIB,
                None,
                "KiB",
                "<= 20 KiB",
                m["first_poll_bytes"] <= 20 * KIB,
            )
        )
        out.append(_figure(f"first poll CPU {label}", m["first_poll_cpu_ms_median"], None, "ms", "", None))
        out.append(
            _figure(
                f"deferring execute requests {label}",
                m["deferring_execute_requests"],
                None,
                "",
                "<= 5",
                m["deferring_execute_requests"] <= 5,
            )
        )
        out.append(
            _figure(
                f"deferring execute KiB {label}",
                m["deferring_execute_bytes"] / KIB,
                None,
                "KiB",
                "<= 20 KiB",
                m["deferring_execute_bytes"] <= 20 * KIB,
            )
        )
        out.append(
            _figure(f"serialized trigger kwargs {label}", m["serialized_kwargs_bytes"], None, "B", "", None)
        )
    sizes = sorted(first)
    if len(sizes) >= 2:
        small, large = first[sizes[0]], first[sizes[-1]]
        out.append(
            _figure(
                f"first poll CPU @{sizes[-1]:,} vs @{sizes[0]:,}{phase} (flat in N)",
                large["first_poll_cpu_ms_median"],
                small["first_poll_cpu_ms_median"],
                "ms",
                "ratio <= 1.5",
                large["first_poll_cpu_ms_median"] <= 1.5 * small["first_poll_cpu_ms_median"],
            )
        )
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'figure':<54}{'value':>11}{'baseline':>12} {'ratio':>9}  {'goal':<14}{'met':>4}"
    print(header)
    print("-" * len(header))
    for f in rows:
        base = "" if f["baseline"] is None else f"{f['baseline']:,.2f}"
        ratio = "" if f["ratio"] is None else f"{f['ratio']:.3g}x"
        met = {True: "yes", False: "NO", None: ""}[f["met"]]
        print(f"{f['figure']:<54}{f['value']:>11,.2f}{base:>12} {ratio:>9}  {f['goal']:<14}{met:>4}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000", help="cheap vs naive: scenario runs per run")
    parser.add_argument("--first-sizes", default="10000,100000", help="first poll: scenario runs per run")
    parser.add_argument("--polls", type=int, default=200, help="steady polls timed per variant")
    parser.add_argument("--first-repeat", type=int, default=3, help="first polls timed per size (median)")
    parser.add_argument("--out", type=Path, default=RESULTS / "poll_cost.json")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    first_sizes = [int(size) for size in args.first_sizes.split(",")]

    # Airflow and the provider first, as a worker or triggerer has them.
    import airflow  # noqa: F401

    import airflow_provider_runloop.sensors.runloop  # noqa: F401

    all_sizes = sorted(set(sizes) | set(first_sizes))
    benchmarks = [{"script": mid_way_script(size, seed=1), "runs": 1} for size in all_sizes]
    benchmarks += [{"script": late_script(size), "runs": 1} for size in first_sizes]
    started = time.perf_counter()
    print(f"poll cost: seeding {', '.join(f'{s:,}' for s in all_sizes)} scenario runs ...", flush=True)
    with emulator_child(benchmarks) as child:
        print(f"  emulator ready in {time.perf_counter() - started:.0f} s", flush=True)
        os.environ["AIRFLOW_CONN_RUNLOOP_DEFAULT"] = child.airflow_conn_json
        run_of = {size: ids[0] for size, ids in zip(all_sizes, child.runs[: len(all_sizes)], strict=True)}
        late_of = {size: ids[0] for size, ids in zip(first_sizes, child.runs[len(all_sizes) :], strict=True)}
        result: dict[str, Any] = {"bench": "poll_cost", "scenario_run_states": child.scenario_run_states}
        result["cheap_vs_naive"] = [cheap_vs_naive(child, run_of[size], size) for size in sizes]
        steady_size = min(sizes)
        result["steady_cpu"] = {
            "size": steady_size,
            "polls": args.polls,
            "async": asyncio.run(_async_steady(child, run_of[steady_size], steady_size, args.polls)),
            "sync": _sync_steady(child, run_of[steady_size], steady_size, args.polls),
        }
        result["first_poll"] = [
            first_poll(child, run_of[size], size, args.first_repeat) for size in first_sizes
        ]
        result["first_poll_late"] = [
            first_poll(child, late_of[size], size, args.first_repeat) for size in first_sizes
        ]
    result["figures"] = figures(result)
    print()
    print_table(result["figures"])
    print("(baseline: the naive listing, the raw-httpx floor of the same requests, or the smaller N)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
