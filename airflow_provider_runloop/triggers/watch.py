"""Event-driven scheduling: an asset watcher that fires once per benchmark run that finishes.

:class:`RunloopBenchmarkRunFinishedTrigger` is a :class:`~airflow.triggers.base.BaseEventTrigger`: put it
in an ``AssetWatcher`` and every benchmark run of a benchmark (or with given metadata) that reaches a
terminal state becomes one asset event, so a DAG scheduled on the asset runs once per finished run,
whoever started it (CI, a notebook, the CLI).

It keeps no state a triggerer restart loses. What it has seen is a :class:`Watermark` in the watched
asset's state store (Airflow's persistent per-asset store, ``self.asset_state_store``, injected by the
triggerer): the newest creation time listed, the ids listed within an overlap window below it, and
the matching runs seen still running. A poll lists newest first (the API's order, unverified choice 3
of the emulator's docs) and stops below the window, then fetches only the runs it knows to be still
running. ``docs/event-driven.md`` gives the design, its assumptions and the exactly-once argument.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_runloop.arguments import check_number, check_poll_interval, check_text
from airflow_provider_runloop.client import AsyncRunloopClient, validate_id
from airflow_provider_runloop.exceptions import RunloopNotFoundError
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.models import BenchmarkRunState, BenchmarkRunView
from airflow_provider_runloop.progress.states import known_benchmark_run_state
from airflow_provider_runloop.waiting import is_transient

__all__ = ["FINISHED_BENCHMARK_RUN_STATES", "RunloopBenchmarkRunFinishedTrigger", "Watermark"]

FINISHED_BENCHMARK_RUN_STATES: Final[tuple[str, ...]] = ("completed", "failed", "canceled")
"""The terminal benchmark-run states, the ones the watcher fires on (all three by default)."""

_PAGE_SIZE = 100  # runs per listing page; a quiet benchmark's poll is one page
_FETCH_CONCURRENCY = 10  # still-running runs fetched at once
# Seconds after a poll's events before its watermark is saved: the triggerer stores events from its
# own loop (about once a second), so by then they are in the database (see _commit_delay).
_COMMIT_DELAY = 5.0
_MAX_BACKOFF = 600.0  # the longest wait after failed polls in a row, seconds
_STATE_VERSION = 1


class _StateStore(Protocol):
    """The part of Airflow's asset state store accessor the watcher uses (``aget`` and ``aset``)."""

    async def aget(self, key: str, default: Any = None) -> Any: ...

    async def aset(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class Watermark:
    """What the watcher has seen, as stored in the asset state store (pure: no I/O here).

    :param newest_ms: the newest ``start_time_ms`` (the run's creation) listed so far.
    :param window: every run listed whose creation is within ``overlap_ms`` of ``newest_ms``, by id
        (its ``start_time_ms``): a listing re-reads that window, and these ids are not new.
    :param running: the matching runs seen in a non-terminal state, by id (``start_time_ms``): each
        poll fetches these, and fires for each that has finished.
    """

    newest_ms: int
    window: Mapping[str, int] = field(default_factory=dict)
    running: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON the asset state store keeps."""
        return {
            "version": _STATE_VERSION,
            "newest_ms": self.newest_ms,
            "window": dict(sorted(self.window.items())),
            "running": dict(sorted(self.running.items())),
        }

    @classmethod
    def from_dict(cls, value: object) -> Watermark | None:
        """The stored watermark; ``None`` when nothing is stored. Raises ``ValueError`` if malformed."""
        if value is None:
            return None
        problem = _malformed(value)
        if problem is not None:
            raise ValueError(
                f"The stored watermark is not one this provider wrote ({problem}). Delete the asset "
                "state store key of this watcher (REST API or UI) to start watching from now again."
            )
        assert isinstance(value, dict)
        return cls(int(value["newest_ms"]), dict(value["window"]), dict(value["running"]))

    def below_window(self, run: BenchmarkRunView, overlap_ms: int) -> bool:
        """The run was created before the window: a newest-first listing can stop at it."""
        return run.start_time_ms is not None and run.start_time_ms < self.newest_ms - overlap_ms

    def knows(self, run_id: str) -> bool:
        """The run was listed before (in the window) or is watched as running."""
        return run_id in self.window or run_id in self.running


def _malformed(value: object) -> str | None:
    if not isinstance(value, dict):
        return f"a {type(value).__name__}, not an object"
    if value.get("version") != _STATE_VERSION:
        return f"version {value.get('version')!r}, expected {_STATE_VERSION}"
    newest = value.get("newest_ms")
    if isinstance(newest, bool) or not isinstance(newest, int):
        return "newest_ms is not an integer"
    for name in ("window", "running"):
        ids = value.get(name)
        if not isinstance(ids, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in ids.items()
        ):
            return f"{name} is not an object of id to integer"
    return None


@dataclass(frozen=True)
class WatchFilter:
    """Which runs a watcher fires for: a run the listing returned matches, or not (pure)."""

    metadata: Mapping[str, str]
    states: frozenset[str]

    def matches(self, run: BenchmarkRunView) -> bool:
        return all(run.metadata.get(key) == value for key, value in self.metadata.items())


def start_watching(
    listed: Iterable[BenchmarkRunView],
    running: Iterable[BenchmarkRunView],
    *,
    watch: WatchFilter,
    overlap_ms: int,
) -> Watermark:
    """The first watermark (nothing stored): fires nothing; runs finished before it never fire.

    With nothing listed at all the watermark is 0 (this provider does not know the API's clock): every
    run listed later is new.

    :param listed: the newest runs, newest first, down to ``overlap_ms`` below the newest.
    :param running: every run listed as ``running`` (of any age): these are watched.
    """
    listed = list(listed)
    known = [run.start_time_ms for run in listed if run.start_time_ms is not None]
    newest = max(known, default=0)
    window = {run.id: _start(run, newest) for run in listed if _start(run, newest) >= newest - overlap_ms}
    watched = {
        run.id: _start(run, newest)
        for run in [*listed, *running]
        if watch.matches(run) and not _finished(run)
    }
    return Watermark(newest, window, watched)


def advance(
    mark: Watermark,
    listed: Iterable[BenchmarkRunView],
    fetched: Iterable[BenchmarkRunView],
    *,
    watch: WatchFilter,
    overlap_ms: int,
    gone: Iterable[str] = (),
) -> tuple[Watermark, list[BenchmarkRunView]]:
    """One poll, pure: the next watermark and the runs to fire for, in the order found.

    :param listed: the runs a newest-first listing returned before the first one below the window
        (:meth:`Watermark.below_window`); any below the window are ignored here too.
    :param fetched: the watched running runs the listing did not show, fetched one by one.
    :param gone: watched runs the API no longer knows (404): no longer watched, never fired.
    :raises RunloopUnknownStateError: for a state this provider does not know (fail closed).
    """
    window = dict(mark.window)
    running = dict(mark.running)
    newest = mark.newest_ms
    fired: list[BenchmarkRunView] = []
    fired_ids: set[str] = set()

    def resolve(run: BenchmarkRunView) -> None:
        running.pop(run.id, None)
        if known_benchmark_run_state(run).value in watch.states and run.id not in fired_ids:
            fired.append(run)
            fired_ids.add(run.id)

    for run in listed:
        if mark.below_window(run, overlap_ms):
            continue
        if run.id in running:
            if _finished(run):
                resolve(run)
            continue
        if mark.knows(run.id) or run.id in window:
            continue
        # New: listed for the first time.
        window[run.id] = _start(run, newest)
        if run.start_time_ms is not None:
            newest = max(newest, run.start_time_ms)
        if not watch.matches(run):
            continue
        if _finished(run):
            resolve(run)
        else:
            running[run.id] = _start(run, newest)
    for run in fetched:
        if run.id in running and _finished(run):
            resolve(run)
    for run_id in gone:
        running.pop(run_id, None)
    window = {run_id: start for run_id, start in window.items() if start >= newest - overlap_ms}
    return Watermark(newest, window, running), fired


def _start(run: BenchmarkRunView, default: int) -> int:
    # start_time_ms is required by the spec; a run without one is placed at the watermark.
    return run.start_time_ms if run.start_time_ms is not None else default


def _finished(run: BenchmarkRunView) -> bool:
    return known_benchmark_run_state(run) is not BenchmarkRunState.RUNNING


def event_payload(run: BenchmarkRunView) -> dict[str, Any]:
    """The asset event's payload: small, strict JSON; never results, never a secret."""
    return {
        "benchmark_run_id": run.id,
        "benchmark_id": run.benchmark_id,
        "state": str(known_benchmark_run_state(run).value),
        "score": run.score,
        "name": run.name,
        "start_time_ms": run.start_time_ms,
        "duration_ms": run.duration_ms,
    }


def state_key(benchmark_id: str | None, metadata: Mapping[str, str]) -> str:
    """The watcher's key in the asset state store: one per filter, so two watchers of one asset (or a
    changed filter) never share a watermark."""
    scope = json.dumps({"benchmark_id": benchmark_id, "metadata": dict(metadata)}, sort_keys=True)
    return f"runloop_finished_runs:{hashlib.sha256(scope.encode()).hexdigest()[:16]}"


class RunloopBenchmarkRunFinishedTrigger(BaseEventTrigger):
    """Fire one event per benchmark run that reaches a terminal state (for an ``AssetWatcher``).

    Watches the runs of ``benchmark_id``, or the runs whose ``metadata`` has the given keys and
    values, or both. Each run fires once, when the watcher first sees it ``completed``, ``failed`` or
    ``canceled`` (``states`` narrows that); runs that finished before the watcher first started never
    fire. The event's payload (the asset event's ``extra["payload"]``): ``benchmark_run_id``,
    ``benchmark_id``, ``state``, ``score``, ``name``, ``start_time_ms`` and ``duration_ms``.

    A poll lists the newest runs down to ``overlap_seconds`` below the newest run seen (one page,
    usually), then fetches each run it watches as still running; what it has seen is kept in the
    asset's state store, so a restarted triggerer fires neither twice nor never (``docs/event-driven.md``).
    Transient API errors are logged and the next poll comes later (doubling up to 10 minutes);
    authentication errors, an unknown benchmark and an unknown run state end the watcher: it raises,
    after one more ``poll_interval``, since Airflow's triggerer starts a failed watcher again at once.

    :param benchmark_id: the benchmark whose runs to watch (the listing is filtered by it).
    :param metadata: a run fires only if its metadata has all these keys with these values.
    :param runloop_conn_id: the Runloop connection.
    :param poll_interval: seconds between polls.
    :param states: the terminal states that fire (default all three); a run ending in another is
        forgotten without an event.
    :param overlap_seconds: how far below the newest run's creation a poll lists again, seconds: runs
        the API lists that much out of creation order (or that late) are still seen.
    """

    def __init__(
        self,
        benchmark_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        poll_interval: float = 60.0,
        states: Sequence[str] | None = None,
        overlap_seconds: float = 300.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseEventTrigger.__init__ is unannotated
        self.benchmark_id = None if benchmark_id is None else validate_id("benchmark_id", benchmark_id)
        self.metadata = _check_metadata(metadata)
        if self.benchmark_id is None and not self.metadata:
            raise ValueError(
                "RunloopBenchmarkRunFinishedTrigger needs benchmark_id, metadata or both: "
                "watching every run of the account is not supported"
            )
        self.runloop_conn_id = check_text("runloop_conn_id", runloop_conn_id)
        self.poll_interval = check_poll_interval("poll_interval", poll_interval)
        self.states = _check_states(states)
        self.overlap_seconds = check_number("overlap_seconds", overlap_seconds, minimum=0)
        self._watch = WatchFilter(self.metadata, frozenset(self.states))

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "benchmark_id": self.benchmark_id,
                "metadata": dict(self.metadata),
                "runloop_conn_id": self.runloop_conn_id,
                "poll_interval": self.poll_interval,
                "states": list(self.states),
                "overlap_seconds": self.overlap_seconds,
            },
        )

    @property
    def _overlap_ms(self) -> int:
        return int(self.overlap_seconds * 1000)

    @property
    def _commit_delay(self) -> float:
        return min(_COMMIT_DELAY, self.poll_interval)

    def _store(self) -> _StateStore:
        store = self.asset_state_store
        if store is None:
            raise RuntimeError(
                "RunloopBenchmarkRunFinishedTrigger keeps its watermark in the watched asset's state "
                "store, which the triggerer gives only to an AssetWatcher's trigger: use it in "
                "Asset(..., watchers=[AssetWatcher(name=..., trigger=...)])"
            )
        try:
            store._single_accessor()  # raises ValueError when one trigger serves several assets
        except AttributeError:
            pass  # not Airflow's accessors (a test's stand-in): used as is
        except ValueError as exc:
            raise RuntimeError(
                "This trigger watches several assets with the same kwargs (Airflow then runs one "
                "trigger for all of them); give each asset's watcher its own kwargs "
                f"(e.g. another poll_interval). {exc}"
            ) from None
        return store

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            store = self._store()
        except RuntimeError:
            await asyncio.sleep(self.poll_interval)  # not restarted in a loop (see below)
            raise
        key = state_key(self.benchmark_id, self.metadata)
        hook = RunloopHook(runloop_conn_id=self.runloop_conn_id)
        try:
            checked = self.benchmark_id is None
            failures = 0
            while True:
                try:
                    client = await hook.aget_conn()  # read once, then cached by the hook
                    if not checked:
                        # Once: an unknown benchmark raises (404) rather than being watched in silence.
                        await client.get_benchmark(str(self.benchmark_id))
                        checked = True
                    mark, fired = await self._poll(client, store, key)
                except Exception as exc:
                    if not is_transient(exc):
                        self.log.error("Watching benchmark runs (%s) stops: %s", self._subject, exc)
                        # Airflow's triggerer starts a failed watcher again within a second or two: wait
                        # a poll interval first, so a lasting error is retried that often, not in a loop.
                        await asyncio.sleep(self.poll_interval)
                        raise
                    failures += 1
                    delay = min(
                        self.poll_interval * 2 ** (failures - 1), max(self.poll_interval, _MAX_BACKOFF)
                    )
                    self.log.warning(
                        "Watching benchmark runs (%s): poll %d in a row failed, next in %g s: %s",
                        self._subject,
                        failures,
                        delay,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                for run in fired:
                    self.log.info("Benchmark run %s is %s: firing", run.id, event_payload(run)["state"])
                    yield TriggerEvent(event_payload(run))
                if fired:
                    # Saved once the events are stored: a crash before this repeats them, never loses them.
                    await asyncio.sleep(self._commit_delay)
                    await store.aset(key, mark.to_dict())
                    await asyncio.sleep(self.poll_interval - self._commit_delay)
                else:
                    await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()

    async def _poll(
        self, client: AsyncRunloopClient, store: _StateStore, key: str
    ) -> tuple[Watermark, list[BenchmarkRunView]]:
        """One poll: the next watermark and the runs to fire for (saved here when nothing fires)."""
        stored = await store.aget(key, None)
        mark = Watermark.from_dict(stored)
        if mark is None:
            mark = await self._start(client)
            await store.aset(key, mark.to_dict())
            self.log.info(
                "Watching benchmark runs (%s) from now: %d running",
                self._subject,
                len(mark.running),
            )
            return mark, []
        listed = await self._list_down_to(client, mark)
        seen = {run.id for run in listed}
        fetched, gone = await self._fetch(client, [rid for rid in mark.running if rid not in seen])
        new_mark, fired = advance(
            mark, listed, fetched, watch=self._watch, overlap_ms=self._overlap_ms, gone=gone
        )
        if not fired and new_mark.to_dict() != stored:
            await store.aset(key, new_mark.to_dict())  # nothing fired: nothing to wait for
        return new_mark, fired

    async def _start(self, client: AsyncRunloopClient) -> Watermark:
        def below(run: BenchmarkRunView, listed: list[BenchmarkRunView]) -> bool:
            top = listed[0].start_time_ms if listed else None
            return top is not None and Watermark(top).below_window(run, self._overlap_ms)

        listed = await self._newest_first(client, below)
        running = [
            run
            async for run in client.list_benchmark_runs(
                benchmark_id=self.benchmark_id, state=BenchmarkRunState.RUNNING, page_size=_PAGE_SIZE
            )
        ]
        return start_watching(listed, running, watch=self._watch, overlap_ms=self._overlap_ms)

    async def _list_down_to(self, client: AsyncRunloopClient, mark: Watermark) -> list[BenchmarkRunView]:
        return await self._newest_first(client, lambda run, _: mark.below_window(run, self._overlap_ms))

    async def _newest_first(
        self,
        client: AsyncRunloopClient,
        stop: Callable[[BenchmarkRunView, list[BenchmarkRunView]], bool],
    ) -> list[BenchmarkRunView]:
        """The newest runs, newest first, up to the first one ``stop`` says is past the window."""
        listing = client.list_benchmark_runs(benchmark_id=self.benchmark_id, page_size=_PAGE_SIZE)
        listed: list[BenchmarkRunView] = []
        try:
            async for run in listing:
                if stop(run, listed):
                    break
                listed.append(run)
        finally:
            close = getattr(listing, "aclose", None)
            if close is not None:
                await close()  # the page asked for ahead is cancelled, not left running
        return listed

    async def _fetch(
        self, client: AsyncRunloopClient, run_ids: Sequence[str]
    ) -> tuple[list[BenchmarkRunView], list[str]]:
        fetched: list[BenchmarkRunView] = []
        gone: list[str] = []
        for start in range(0, len(run_ids), _FETCH_CONCURRENCY):
            chunk = run_ids[start : start + _FETCH_CONCURRENCY]
            answers = await asyncio.gather(
                *(client.get_benchmark_run(run_id) for run_id in chunk), return_exceptions=True
            )
            for run_id, answer in zip(chunk, answers, strict=True):
                if isinstance(answer, RunloopNotFoundError):
                    self.log.warning("Benchmark run %s is gone (404): no longer watched", run_id)
                    gone.append(run_id)
                elif isinstance(answer, BaseException):
                    raise answer
                else:
                    fetched.append(answer)
        return fetched, gone

    @property
    def _subject(self) -> str:
        parts = []
        if self.benchmark_id is not None:
            parts.append(f"benchmark {self.benchmark_id}")
        if self.metadata:
            parts.append(f"metadata {dict(self.metadata)}")
        return ", ".join(parts)


def _check_metadata(metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not metadata:
        raise ValueError(f"metadata must be a non-empty dict of str to str, or None; got {metadata!r}")
    for name, value in metadata.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ValueError(f"metadata must map non-empty str keys to str values; got {name!r}: {value!r}")
    return dict(sorted(metadata.items()))


def _check_states(states: object) -> list[str]:
    if states is None:
        return list(FINISHED_BENCHMARK_RUN_STATES)
    if isinstance(states, str) or not isinstance(states, Sequence) or not states:
        raise ValueError(
            f"states must be a non-empty list of {', '.join(FINISHED_BENCHMARK_RUN_STATES)}; got {states!r}"
        )
    unknown = [state for state in states if state not in FINISHED_BENCHMARK_RUN_STATES]
    if unknown:
        raise ValueError(
            f"states may hold only {', '.join(FINISHED_BENCHMARK_RUN_STATES)} (terminal benchmark-run "
            f"states); got {unknown!r}"
        )
    return [state for state in FINISHED_BENCHMARK_RUN_STATES if state in states]
