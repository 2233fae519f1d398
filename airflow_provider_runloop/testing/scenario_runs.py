"""Scenario runs: the client's actions on them (start, score, complete, cancel) and their listings.

:class:`ScenarioRuns` owns what the ``/v1/scenarios/...`` run endpoints do: a started run waits for the
client; ``score`` moves it to ``scoring`` and, after the scoring delay, to ``scored`` (or to the ending
its plan asks for); ``complete`` needs ``scored``; ``cancel`` ends any run that is not lifecycle-over.
Each action rewrites the future of the run's timeline through :class:`~.timelines.Timelines`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from airflow_provider_runloop.testing.benchmark_runs import BenchmarkRuns
from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.records import (
    INFINITE_MS,
    LIFECYCLE_OVER,
    SCENARIO_RUN_STATES,
    BenchmarkRunRecord,
    Page,
    ScenarioRunRecord,
)
from airflow_provider_runloop.testing.settings import EmulatorSettings
from airflow_provider_runloop.testing.store import PageRequest, RecordStore, search_matches
from airflow_provider_runloop.testing.timelines import RunProfile, Timelines

__all__ = ["ScenarioRuns"]


class ScenarioRuns:
    """The scenario runs of one emulator, and the client actions that move them.

    :param store: the emulator's records.
    :param timelines: creates the runs and rewrites their timelines.
    :param benchmark_runs: the benchmark runs a scenario run may belong to.
    :param settings: the emulator's live settings.
    """

    def __init__(
        self,
        store: RecordStore,
        timelines: Timelines,
        benchmark_runs: BenchmarkRuns,
        *,
        settings: EmulatorSettings,
    ) -> None:
        self._store = store
        self._timelines = timelines
        self._runs = benchmark_runs
        self._settings = settings
        #: How many runs of each scenario were started outside a benchmark run (their attempt numbers).
        self._standalone_attempts: dict[str, int] = {}

    def start_scenario_run(
        self,
        now_ms: int,
        *,
        scenario_id: str,
        benchmark_run_id: str | None = None,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        profile: RunProfile | None = None,
    ) -> ScenarioRunRecord:
        """``POST /v1/scenarios/start_run``: a ``running`` run that moves only when the client acts.

        Its scoring outcome comes from the scenario's plan (attempt ``n`` for the ``n``-th run of that
        scenario in the benchmark run); a ``setup_failed`` scenario's run fails after the setup time.
        """
        scenario = self._store.scenario(scenario_id)
        if scenario.archived:
            raise ApiError.bad_request(f"Scenario {scenario_id!r} is archived and cannot be run")
        run = None
        if benchmark_run_id is not None:
            run = self._store.benchmark_run(benchmark_run_id, now_ms)
            run_state = self._runs.benchmark_run_state(run, now_ms)
            if run_state != "running":
                raise ApiError.bad_request(
                    f"BenchmarkRun {benchmark_run_id!r} is {run_state}; scenario runs cannot be added to it"
                )
        plan = self._timelines.plan(run, scenario)
        if run is not None:
            attempt_index = run.attempt_counts.get(scenario_id, 0)
        else:
            attempt_index = self._standalone_attempts.get(scenario_id, 0)
            self._standalone_attempts[scenario_id] = attempt_index + 1
        record = self._timelines.new_scenario_run(
            run,
            scenario,
            plan.attempt(attempt_index),
            now_ms,
            name=run_name,
            metadata=metadata,
            profile=profile,
        )
        if plan.setup_failed and attempt_index == 0:
            record.end_ms, record.end_state = now_ms + plan.setup_ms, "failed"
        self._store.scenario_runs.add(record)
        if run is not None:
            run.runs.add(record)
            run.counter.add(record)
            run.version += 1
        return record

    def score_scenario_run(self, now_ms: int, run_id: str) -> ScenarioRunRecord:
        record = self._store.scenario_run(run_id, now_ms)
        state = record.state_at(now_ms)
        if state in ("scoring", "scored"):
            return record
        if state != "running":
            raise ApiError.bad_request(f"ScenarioRun {run_id!r} is {state} and cannot be scored")
        delay_seconds = self._settings.scoring_delay_seconds
        delay_ms = record.scoring_delay_ms if delay_seconds is None else round(delay_seconds * 1000)
        self._timelines.rewrite_future(record, now_ms, scoring_ms=now_ms, scoring_delay_ms=delay_ms)
        return record

    def complete_scenario_run(self, now_ms: int, run_id: str) -> ScenarioRunRecord:
        record = self._store.scenario_run(run_id, now_ms)
        state = record.state_at(now_ms)
        if state == "completed":
            return record
        if state != "scored":
            raise ApiError.bad_request(
                f"ScenarioRun {run_id!r} is {state}; only a scored run can be completed (score it first)"
            )
        self._timelines.rewrite_future(record, now_ms, end_ms=now_ms, end_state="completed")
        return record

    def cancel_scenario_run(self, now_ms: int, run_id: str) -> ScenarioRunRecord:
        record = self._store.scenario_run(run_id, now_ms)
        state = record.state_at(now_ms)
        if state == "canceled":
            return record
        if state in LIFECYCLE_OVER:
            raise ApiError.bad_request(f"ScenarioRun {run_id!r} is {state} and cannot be canceled")
        self._timelines.rewrite_future(record, now_ms, end_ms=now_ms, end_state="canceled")
        return record

    def force_scenario_run_state(self, now_ms: int, run_id: str, state: str) -> ScenarioRunRecord:
        """Test hook: move a scenario run that is not lifecycle-over to ``state`` now.

        ``scored`` gives it its planned result; ``completed``, ``failed``, ``timeout``, ``canceled`` end it.
        """
        record = self._store.scenario_run(run_id, now_ms)
        current = record.state_at(now_ms)
        if current in LIFECYCLE_OVER:
            raise ApiError.bad_request(f"ScenarioRun {run_id!r} is already {current}")
        if state == current:
            return record
        if state == "scored":
            self._timelines.rewrite_future(record, now_ms, scored_ms=now_ms)
        elif state in LIFECYCLE_OVER:
            scored = now_ms if state == "completed" and current != "scored" else None
            self._timelines.rewrite_future(record, now_ms, scored_ms=scored, end_ms=now_ms, end_state=state)
        else:
            raise ApiError.bad_request(
                f"a scenario run can be forced to scored, {', '.join(sorted(LIFECYCLE_OVER))}, not {state!r}"
            )
        return record

    def list_scenario_runs(
        self,
        now_ms: int,
        page: PageRequest,
        *,
        benchmark_run_id: str | None = None,
        scenario_id: str | None = None,
        name: str | None = None,
        search: str | None = None,
        state: str | None = None,
    ) -> Page[ScenarioRunRecord]:
        """Scenario runs, globally or of one benchmark run; the per-run index makes the latter fast."""
        run = None
        if benchmark_run_id:
            run = self._store.benchmark_runs.by_id.get(benchmark_run_id)
            if run is None or run.created_ms > now_ms:  # unverified choice 5: an unknown filter lists nothing
                return Page([], False, 0 if page.include_total_count else None)
        predicates: list[Callable[[ScenarioRunRecord], bool]] = []
        if scenario_id:
            predicates.append(lambda r: r.scenario_id == scenario_id)
        if name:
            predicates.append(lambda r: r.name == name)
        if search:
            predicates.append(lambda r: search_matches(search, r.id, r.name))
        count_matches = None
        if state:
            predicates.append(lambda r: r.state_at(now_ms) == state)
            if run is not None and len(predicates) == 1:
                count_matches = lambda: run.counter.count(state, now_ms)  # noqa: E731
        return self._store.page(
            self._store.scenario_runs,
            now_ms,
            page,
            predicates,
            index=run.runs if run is not None else None,
            count_matches=count_matches,
        )

    def list_benchmark_run_scenario_runs(
        self,
        now_ms: int,
        run_id: str,
        page: PageRequest,
        *,
        state: str | None = None,
        search: str | None = None,
    ) -> Page[ScenarioRunRecord]:
        self._store.benchmark_run(run_id, now_ms)
        if state is not None and state not in SCENARIO_RUN_STATES:
            raise ApiError.bad_request(
                f"state must be one of {', '.join(SCENARIO_RUN_STATES)}; got {state!r}"
            )
        return self.list_scenario_runs(now_ms, page, benchmark_run_id=run_id, state=state, search=search)

    def insert_scenario_run_before(self, now_ms: int, cursor_id: str) -> ScenarioRunRecord | None:
        """Fault helper: add a run that sorts just after the cursor, so the next page shows a newcomer.

        It is a copy of the cursor run's timeline (same scenario, as if retried) created 1 ms earlier, so
        it never changes when the benchmark run completes.
        """
        cursor: ScenarioRunRecord | None = self._store.scenario_runs.by_id.get(cursor_id)
        if cursor is None or cursor.benchmark_run_id is None:
            return None
        run: BenchmarkRunRecord = self._store.benchmark_runs.by_id[cursor.benchmark_run_id]
        scenario = self._store.scenario(cursor.scenario_id)

        def shifted(time_ms: int) -> int:
            return time_ms - 1 if time_ms < INFINITE_MS else time_ms

        record = self._timelines.new_scenario_run(
            run, scenario, self._timelines.attempt_of(cursor), cursor.created_ms - 1, name=cursor.name
        )
        record.scoring_ms, record.scored_ms = shifted(cursor.scoring_ms), shifted(cursor.scored_ms)
        record.end_ms, record.end_state = shifted(cursor.end_ms), cursor.end_state
        self._store.scenario_runs.add(record)
        run.runs.add(record)
        run.counter.add(record)
        run.version += 1
        return record
