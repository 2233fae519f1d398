"""The watcher's kwargs, and its watermark logic as pure functions (a simulated API, no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_runloop.exceptions import RunloopUnknownStateError
from airflow_provider_runloop.models import BenchmarkRunView
from airflow_provider_runloop.triggers.watch import (
    FINISHED_BENCHMARK_RUN_STATES,
    RunloopBenchmarkRunFinishedTrigger,
    WatchFilter,
    Watermark,
    advance,
    event_payload,
    start_watching,
    state_key,
)

OVERLAP_MS = 60_000
ALL = WatchFilter({}, frozenset(FINISHED_BENCHMARK_RUN_STATES))


def _run(run_id: str, start: int, state: str = "running", **fields: Any) -> BenchmarkRunView:
    return BenchmarkRunView.model_validate({"id": run_id, "start_time_ms": start, "state": state, **fields})


# -- kwargs -----------------------------------------------------------------------------------------


def test_serialize_round_trips_json_primitives() -> None:
    trigger = RunloopBenchmarkRunFinishedTrigger(
        benchmark_id="bmd_1", metadata={"team": "evals"}, poll_interval=5, states=["failed", "completed"]
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_runloop.triggers.watch.RunloopBenchmarkRunFinishedTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["states"] == ["completed", "failed"]  # one order, whatever was given: one hash
    again = RunloopBenchmarkRunFinishedTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)


def test_airflows_trigger_storage_and_hash_round_trip() -> None:
    import importlib

    from airflow.models.trigger import Trigger
    from airflow.triggers.base import BaseEventTrigger

    trigger = RunloopBenchmarkRunFinishedTrigger(benchmark_id="bmd_1", metadata={"team": "evals"})
    stored = Trigger.from_object(trigger)
    module, _, name = stored.classpath.rpartition(".")
    revived = getattr(importlib.import_module(module), name)(**stored.kwargs)
    assert revived.serialize() == trigger.serialize()
    # The watcher's identity (a new DAG file version with the same kwargs is the same watcher).
    assert BaseEventTrigger.hash(*revived.serialize()) == BaseEventTrigger.hash(*trigger.serialize())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "benchmark_id, metadata or both"),
        ({"benchmark_id": "../x"}, "benchmark_id"),
        ({"benchmark_id": "bmd_1", "metadata": {}}, "metadata"),
        ({"metadata": {"team": 1}}, "metadata"),
        ({"metadata": ["team"]}, "metadata"),
        ({"benchmark_id": "bmd_1", "poll_interval": 0}, "poll_interval"),
        ({"benchmark_id": "bmd_1", "poll_interval": "60"}, "poll_interval"),
        ({"benchmark_id": "bmd_1", "states": ["running"]}, "states"),
        ({"benchmark_id": "bmd_1", "states": "completed"}, "states"),
        ({"benchmark_id": "bmd_1", "states": []}, "states"),
        ({"benchmark_id": "bmd_1", "overlap_seconds": -1}, "overlap_seconds"),
        ({"benchmark_id": "bmd_1", "runloop_conn_id": ""}, "runloop_conn_id"),
    ],
)
def test_bad_kwargs_are_refused_naming_the_option(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunloopBenchmarkRunFinishedTrigger(**kwargs)


def test_the_state_key_depends_on_the_filter_only() -> None:
    assert state_key("bmd_1", {"a": "1", "b": "2"}) == state_key("bmd_1", {"b": "2", "a": "1"})
    assert state_key("bmd_1", {}) != state_key("bmd_2", {})
    assert state_key(None, {"a": "1"}) != state_key(None, {"a": "2"})


def test_the_payload_is_small_and_has_no_secrets() -> None:
    run = _run(
        "bmr_1",
        5,
        "completed",
        benchmark_id="bmd_1",
        score=0.5,
        duration_ms=7,
        secrets_provided={"DB": "SECRET_NAME"},
        environment_variables={"TOKEN": "hunter2"},
    )
    payload = event_payload(run)
    assert payload == {
        "benchmark_run_id": "bmr_1",
        "benchmark_id": "bmd_1",
        "state": "completed",
        "score": 0.5,
        "name": None,
        "start_time_ms": 5,
        "duration_ms": 7,
    }
    json.dumps(payload, allow_nan=False)


# -- the watermark ----------------------------------------------------------------------------------


def test_a_stored_watermark_round_trips_and_a_malformed_one_is_refused() -> None:
    mark = Watermark(10, {"bmr_1": 10}, {"bmr_0": 3})
    assert Watermark.from_dict(json.loads(json.dumps(mark.to_dict()))) == mark
    assert Watermark.from_dict(None) is None
    for bad in ({"version": 2}, [], {"version": 1, "newest_ms": "1", "window": {}, "running": {}}):
        with pytest.raises(ValueError, match="Delete the asset state store key"):
            Watermark.from_dict(bad)


def test_the_first_watermark_fires_nothing_and_watches_what_runs() -> None:
    listed = [_run("bmr_4", 100_000), _run("bmr_3", 90_000, "completed"), _run("bmr_2", 10_000)]
    old_running = [_run("bmr_1", 1_000)]
    mark = start_watching(listed, old_running, watch=ALL, overlap_ms=OVERLAP_MS)
    assert mark.newest_ms == 100_000
    assert set(mark.window) == {"bmr_4", "bmr_3"}
    assert set(mark.running) == {"bmr_4", "bmr_2", "bmr_1"}
    assert start_watching([], [], watch=ALL, overlap_ms=OVERLAP_MS) == Watermark(0)


def test_a_poll_fires_new_finished_runs_and_watched_ones_that_finished() -> None:
    mark = Watermark(100_000, {"bmr_2": 100_000, "bmr_x": 99_000}, {"bmr_1": 5_000, "bmr_2": 100_000})
    listed = [
        _run("bmr_3", 110_000, "failed"),
        _run("bmr_2", 100_000, "completed"),
        _run("bmr_x", 99_000, "completed"),
    ]
    fetched = [_run("bmr_1", 5_000, "canceled")]
    new, fired = advance(mark, listed, fetched, watch=ALL, overlap_ms=OVERLAP_MS)
    assert [run.id for run in fired] == ["bmr_3", "bmr_2", "bmr_1"]  # bmr_x was listed before
    assert new.running == {}
    assert new.newest_ms == 110_000
    assert set(new.window) == {"bmr_3", "bmr_2", "bmr_x"}
    again, fired_again = advance(new, listed, [], watch=ALL, overlap_ms=OVERLAP_MS)
    assert fired_again == []
    assert again == new


def test_a_run_below_the_window_is_never_new() -> None:
    mark = Watermark(100_000, {}, {})
    new, fired = advance(mark, [_run("bmr_old", 10_000, "completed")], [], watch=ALL, overlap_ms=OVERLAP_MS)
    assert fired == []
    assert new == mark


def test_an_unknown_state_fails_closed() -> None:
    with pytest.raises(RunloopUnknownStateError, match="paused"):
        advance(Watermark(0), [_run("bmr_1", 1, "paused")], [], watch=ALL, overlap_ms=OVERLAP_MS)


def test_gone_runs_are_no_longer_watched() -> None:
    new, fired = advance(
        Watermark(0, {}, {"bmr_1": 0}), [], [], watch=ALL, overlap_ms=OVERLAP_MS, gone=["bmr_1"]
    )
    assert (new.running, fired) == ({}, [])


# -- the property: each finished run fires exactly once, across restarts -------------------------------


@dataclass
class World:
    """A simulated API: runs with creation times, listed newest first (ties by id) with some disorder."""

    now: int = 1_000_000
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def create(self, lag: int, team: str) -> str:
        run_id = f"bmr_{len(self.runs):06d}"
        self.runs[run_id] = {"start": self.now - lag, "state": "running", "team": team}
        return run_id

    def view(self, run_id: str) -> BenchmarkRunView:
        run = self.runs[run_id]
        return _run(run_id, run["start"], run["state"], metadata={"team": run["team"]})

    def newest_first(self, swaps: list[int]) -> list[BenchmarkRunView]:
        ordered = sorted(self.runs, key=lambda rid: (self.runs[rid]["start"], rid), reverse=True)
        for i in swaps:  # "roughly" ordered: neighbours swapped
            if i + 1 < len(ordered):
                ordered[i], ordered[i + 1] = ordered[i + 1], ordered[i]
        return [self.view(rid) for rid in ordered]


def _poll(world: World, stored: Any, watch: WatchFilter, swaps: list[int]) -> tuple[Any, list[str]]:
    mark = Watermark.from_dict(stored)
    listing = world.newest_first(swaps)
    if mark is None:
        top = listing[0].start_time_ms if listing else None
        window = listing
        for index, run in enumerate(listing):  # the trigger stops at the first run below the window
            if top is not None and Watermark(top).below_window(run, OVERLAP_MS):
                window = listing[:index]
                break
        running = [r for r in listing if r.state == "running"]
        return start_watching(window, running, watch=watch, overlap_ms=OVERLAP_MS).to_dict(), []
    listed = []
    for run in listing:
        if mark.below_window(run, OVERLAP_MS):
            break
        listed.append(run)
    seen = {run.id for run in listed}
    fetched = [world.view(rid) for rid in mark.running if rid not in seen]
    new, fired = advance(mark, listed, fetched, watch=watch, overlap_ms=OVERLAP_MS)
    return json.loads(json.dumps(new.to_dict())), [run.id for run in fired]


STEP = st.one_of(
    st.tuples(st.just("create"), st.integers(0, OVERLAP_MS // 2), st.sampled_from(["a", "b"])),
    st.tuples(st.just("finish"), st.integers(0, 1000), st.sampled_from(FINISHED_BENCHMARK_RUN_STATES)),
    st.tuples(st.just("advance"), st.integers(0, 3 * OVERLAP_MS)),
    st.tuples(st.just("poll"), st.lists(st.integers(0, 8), max_size=3)),
)


@given(
    before=st.lists(st.tuples(st.integers(0, 5 * OVERLAP_MS), st.booleans()), max_size=8),
    steps=st.lists(STEP, max_size=40),
    metadata=st.booleans(),
)
def test_every_run_that_finishes_after_the_start_fires_exactly_once(
    before: list[tuple[int, bool]], steps: list[tuple[Any, ...]], metadata: bool
) -> None:
    world = World()
    watch = WatchFilter({"team": "a"} if metadata else {}, frozenset({"completed", "failed"}))
    for lag, finished in before:
        run_id = world.create(lag, "a")
        if finished:
            world.runs[run_id]["state"] = "completed"
    stored, _ = _poll(world, None, watch, [])  # the watcher starts
    fired: list[str] = []
    due: set[str] = set()  # runs that must fire: matching, finished in a watched state after the start
    for step in [*steps, ("poll", []), ("poll", [])]:
        if step[0] == "create":
            world.create(step[1], step[2])
        elif step[0] == "finish":
            running = sorted(rid for rid, run in world.runs.items() if run["state"] == "running")
            if running:
                run_id = running[step[1] % len(running)]
                world.runs[run_id]["state"] = step[2]
                if (world.runs[run_id]["team"] == "a" or not metadata) and step[2] in watch.states:
                    due.add(run_id)
        elif step[0] == "advance":
            world.now += step[1]
        else:
            stored, new = _poll(world, stored, watch, step[1])
            fired += new
    assert sorted(fired) == sorted(due)  # each once: no duplicate, none lost, none from before


# -- the state store Airflow injects ------------------------------------------------------------------


async def test_one_trigger_for_several_assets_is_refused() -> None:
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import AssetStateStoreAccessors

    trigger = RunloopBenchmarkRunFinishedTrigger(benchmark_id="bmd_1", poll_interval=0.01)
    # What the triggerer injects when two assets have identical watchers (one trigger serves both).
    trigger.asset_state_store = AssetStateStoreAccessors(inlets=[Asset(name="a"), Asset(name="b")])
    with pytest.raises(RuntimeError, match="several assets"):
        await trigger.run().__anext__()
    one = AssetStateStoreAccessors(inlets=[Asset(name="a")])
    trigger.asset_state_store = one
    assert trigger._store() is one  # one asset: its accessors are used as they are
