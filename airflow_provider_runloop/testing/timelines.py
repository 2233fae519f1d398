"""Scenario-run timelines: planning them from scripts, creating them, and rewriting their future.

A scenario run is a timeline (see :mod:`~airflow_provider_runloop.testing.records`). :class:`Timelines`
plays scripts back into such timelines: it picks the plan of a scenario in a run, creates scenario runs
from an attempt's plan, lays out every scenario run of a scripted or job run up front (stagger,
concurrency slots, retries), and replaces the future part of a timeline when a client acts.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

from airflow_provider_runloop.testing.records import (
    INFINITE_MS,
    BenchmarkRunRecord,
    ScenarioRecord,
    ScenarioRunRecord,
)
from airflow_provider_runloop.testing.script import AttemptPlan, ScenarioPlan, Timing
from airflow_provider_runloop.testing.store import RecordStore

__all__ = ["RunProfile", "Timelines"]


@dataclass(frozen=True)
class RunProfile:
    """The parts of a ``runProfile`` the emulator reflects in its views."""

    purpose: str | None = None
    env_vars: dict[str, str] | None = None
    secrets: dict[str, str] | None = None


class Timelines:
    """Creates scenario runs from their scripts' plans and rewrites their timelines.

    :param store: the emulator's records.
    :param seed: the seed of scripts that do not set their own (a run may carry another).
    """

    def __init__(self, store: RecordStore, seed: int) -> None:
        self._store = store
        self._seed = seed

    def plan(self, run: BenchmarkRunRecord | None, scenario: ScenarioRecord) -> ScenarioPlan:
        """The plan of ``scenario`` in ``run`` (or standalone): the run's script, else the scenario's own.

        An interactive run keeps the plans it used, so every attempt at a scenario follows one plan.
        """
        if run is not None and scenario.id in run.plans:
            return run.plans[scenario.id]
        if run is not None and run.script is not None and scenario.id in run.scenario_ids:
            plan = run.script.plan(run.scenario_ids.index(scenario.id), seed=run.seed, variant=run.variant)
        else:
            seed = run.seed if run is not None else self._seed
            variant = run.variant if run is not None else 0
            plan = scenario.script.plan(scenario.script_position, seed=seed, variant=variant)
        if run is not None and run.kind == "interactive":
            run.plans[scenario.id] = plan
        return plan

    def schedule_autonomous_run(
        self, run: BenchmarkRunRecord, *, concurrency: int | None, max_attempts: int | None
    ) -> None:
        """Create every scenario run of a scripted or job run up front, each on its own timeline.

        Scenario ``i`` may start ``i * start_interval`` after the run (or at its ``start_at``), and with a
        concurrency limit only when one of the limited slots is free. ``max_attempts`` (jobs) retries
        failed and timed-out attempts; ``None`` (scripted runs) makes exactly the script's attempts.
        """
        timing: Timing = run.timing
        free_slots: list[int] = []
        created: list[ScenarioRunRecord] = []
        for position, scenario_id in enumerate(run.scenario_ids):
            scenario = self._store.scenario(scenario_id)
            plan = self.plan(run, scenario)
            offset = (
                plan.start_at_ms
                if plan.start_at_ms is not None
                else round(position * timing.start_interval * 1000)
            )
            start = run.created_ms + offset
            if concurrency is not None:
                slot_free = heapq.heappop(free_slots) if len(free_slots) >= concurrency else run.created_ms
                start = max(start, slot_free)
            finish = start
            if start >= INFINITE_MS:
                pass  # every slot is held by a run that never ends: this scenario never starts
            elif plan.setup_failed:
                finish = start + plan.setup_ms
                run.setup_failures[scenario_id] = (finish, plan.setup_ms)
            else:
                attempts = (
                    plan.scripted_attempts if max_attempts is None else self._job_attempts(plan, max_attempts)
                )
                for index in range(attempts):
                    attempt = plan.attempt(index)
                    record = self.new_scenario_run(run, scenario, attempt, start)
                    self._apply_autonomous_timeline(record, attempt)
                    created.append(record)
                    finish = record.end_ms
                    if finish >= INFINITE_MS:
                        break
                    start = finish + plan.retry_delay_ms
            if concurrency is not None:
                heapq.heappush(free_slots, min(finish, INFINITE_MS))
        run.runs.extend(created)
        self._store.scenario_runs.ordered.extend(created)
        for record in created:
            self._store.scenario_runs.by_id[record.id] = record
        run.counter.rebuild(run.runs.all())
        run.version += 1

    @staticmethod
    def _job_attempts(plan: ScenarioPlan, max_attempts: int) -> int:
        attempts = 1
        while attempts < max_attempts and plan.attempt(attempts - 1).retryable:
            attempts += 1
        return attempts

    def new_scenario_run(
        self,
        run: BenchmarkRunRecord | None,
        scenario: ScenarioRecord,
        attempt: AttemptPlan,
        created_ms: int,
        *,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        profile: RunProfile | None = None,
    ) -> ScenarioRunRecord:
        """A new scenario run of ``scenario`` following ``attempt``, counted as an attempt of ``run``.

        Its timeline is not set here; the caller adds the record to the store and the run's indexes.
        """
        record = ScenarioRunRecord(
            id=self._store.ids.new("scenario_run"),
            scenario_id=scenario.id,
            devbox_id=self._store.ids.new("devbox"),
            benchmark_run_id=run.id if run is not None else None,
            created_ms=created_ms,
            outcome=attempt.outcome,
            score=attempt.score,
            function_scores=attempt.function_scores,
            scoring_delay_ms=attempt.scoring_ms,
            name=name
            if name is not None
            else (scenario.name if run is not None and run.kind != "interactive" else None),
            metadata=dict(metadata) if metadata else None,
            purpose=profile.purpose if profile else None,
            environment_variables=profile.env_vars if profile else None,
            secrets_provided=profile.secrets if profile else None,
            scorer_timeout_ms=None
            if scenario.scorer_timeout_sec is None
            else scenario.scorer_timeout_sec * 1000,
        )
        if run is not None:
            run.attempt_counts[scenario.id] = run.attempt_counts.get(scenario.id, 0) + 1
        return record

    def _apply_autonomous_timeline(self, record: ScenarioRunRecord, attempt: AttemptPlan) -> None:
        agent_done = record.created_ms + attempt.duration_ms
        if attempt.outcome in ("failed", "timeout", "canceled"):
            record.end_ms, record.end_state = agent_done, attempt.outcome
        elif attempt.outcome in ("completed", "stays_scored"):
            self.set_scoring_timeline(record, agent_done, attempt.scoring_ms, scripted_outcome=False)
            if attempt.outcome == "completed" and record.scored_ms < INFINITE_MS:
                record.end_ms, record.end_state = record.scored_ms + attempt.complete_ms, "completed"
        # "stays_running": the timeline stays open until a client action or a test hook.

    def set_scoring_timeline(
        self, record: ScenarioRunRecord, start_ms: int, delay_ms: int, *, scripted_outcome: bool
    ) -> None:
        """Scoring from ``start_ms``: ``scored`` after ``delay_ms``, or the failure the script asks for."""
        record.scoring_ms = start_ms
        outcome = record.outcome
        if scripted_outcome and outcome in ("failed", "timeout"):
            record.end_ms, record.end_state = start_ms + delay_ms, outcome
        elif record.scorer_timeout_ms is not None and delay_ms > record.scorer_timeout_ms:
            record.end_ms, record.end_state = start_ms + record.scorer_timeout_ms, "timeout"
        else:
            record.scored_ms = start_ms + delay_ms

    def rewrite_future(
        self,
        record: ScenarioRunRecord,
        now_ms: int,
        *,
        scoring_ms: int | None = None,
        scoring_delay_ms: int | None = None,
        end_ms: int | None = None,
        end_state: str | None = None,
        scored_ms: int | None = None,
        recount: bool = True,
    ) -> None:
        """Replace the part of ``record``'s timeline after ``now_ms``; the past stays as it was."""
        run: BenchmarkRunRecord | None = (
            self._store.benchmark_runs.by_id.get(record.benchmark_run_id) if record.benchmark_run_id else None
        )
        if run is not None and recount:
            run.counter.remove(record)
        if record.scoring_ms > now_ms:
            record.scoring_ms = INFINITE_MS
        if record.scored_ms > now_ms:
            record.scored_ms = INFINITE_MS
        if record.end_ms > now_ms:
            record.end_ms = INFINITE_MS
        if scoring_ms is not None and scoring_delay_ms is not None:
            self.set_scoring_timeline(record, scoring_ms, scoring_delay_ms, scripted_outcome=True)
        if scored_ms is not None:
            record.scoring_ms = min(record.scoring_ms, scored_ms)
            record.scored_ms = scored_ms
        if end_ms is not None and end_state is not None:
            record.end_ms, record.end_state = end_ms, end_state
        if run is not None:
            if recount:
                run.counter.add(record)
            run.version += 1

    @staticmethod
    def attempt_of(record: ScenarioRunRecord) -> AttemptPlan:
        """The attempt plan ``record`` was made from, as far as a copy of its timeline needs it."""
        return AttemptPlan(
            outcome=record.outcome,
            duration_ms=0,
            scoring_ms=record.scoring_delay_ms,
            complete_ms=0,
            function_scores=record.function_scores,
            score=record.score,
        )
