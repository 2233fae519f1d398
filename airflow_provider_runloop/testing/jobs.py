"""Benchmark jobs: queueing them, their benchmark runs (one per agent config), state and outcomes.

:class:`BenchmarkJobs` owns ``/v1/benchmark_jobs``: a job is ``queued`` for ``job_queue_seconds``, then
``running`` with one benchmark run per agent config, each planned up front by
:class:`~.timelines.Timelines` under the job's orchestrator config (concurrency, retries); the job is
``completed`` when all those runs are (``failed`` if one of them failed). Harbor jobs are accepted but not
emulated: they fail one second after starting, with a ``failure_reason``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_runloop.testing.benchmark_runs import BenchmarkRuns
from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.records import (
    BenchmarkJobRecord,
    BenchmarkRecord,
    BenchmarkRunRecord,
    Page,
    ScenarioRunRecord,
)
from airflow_provider_runloop.testing.script import ScenarioScript
from airflow_provider_runloop.testing.settings import EmulatorSettings
from airflow_provider_runloop.testing.store import PageRequest, RecordStore, search_matches
from airflow_provider_runloop.testing.timelines import Timelines

__all__ = ["BenchmarkJobs", "JobSpecRequest", "ScenarioOutcomeData"]


_HARBOR_FAILURE = "The Runloop emulator does not run Harbor jobs; use a 'benchmark' or 'scenarios' spec."
_SETUP_FAILURE = {"exception_type": "SetupError", "exception_message": "[emulated] scenario setup failed"}
_OUTCOME_STATES = {"completed": "COMPLETED", "failed": "FAILED", "timeout": "TIMEOUT", "canceled": "CANCELED"}


@dataclass(frozen=True)
class JobSpecRequest:
    """A validated benchmark-job ``spec``."""

    type: str
    benchmark_id: str | None = None
    scenario_ids: tuple[str, ...] = ()
    agent_configs: tuple[dict[str, Any], ...] = ()
    orchestrator_config: dict[str, Any] | None = None
    inline_yaml: str | None = None


@dataclass
class ScenarioOutcomeData:
    """One scenario's final outcome in a job's benchmark run (serialised by ``views``)."""

    scenario_id: str
    scenario_name: str
    state: str
    scenario_run_id: str | None = None
    score: float | None = None
    duration_ms: int | None = None
    failure_reason: dict[str, str] | None = None


class BenchmarkJobs:
    """The benchmark jobs of one emulator: their runs, state, failure reason and scenario outcomes.

    :param store: the emulator's records.
    :param timelines: plans the scenario runs of the jobs' benchmark runs.
    :param benchmark_runs: reads when and how the jobs' benchmark runs end.
    :param settings: the emulator's live settings.
    :param seed: the seed of the jobs' benchmark runs.
    :param default_script: the timing of jobs over scenarios (a benchmark job uses its benchmark's).
    """

    def __init__(
        self,
        store: RecordStore,
        timelines: Timelines,
        benchmark_runs: BenchmarkRuns,
        *,
        settings: EmulatorSettings,
        seed: int,
        default_script: ScenarioScript,
    ) -> None:
        self._store = store
        self._timelines = timelines
        self._runs = benchmark_runs
        self._settings = settings
        self._seed = seed
        self._default_script = default_script

    def create_job(self, now_ms: int, *, name: str | None, spec: JobSpecRequest) -> BenchmarkJobRecord:
        """``POST /v1/benchmark_jobs``: queue a job; its runs and their scenario runs are planned now."""
        start_ms = now_ms + round(self._settings.job_queue_seconds * 1000)
        job_id = self._store.ids.new("benchmark_job")
        benchmark: BenchmarkRecord | None = None
        if spec.type == "harbor":
            job = BenchmarkJobRecord(
                id=job_id,
                name=name or "harbor-job",
                created_ms=now_ms,
                start_ms=start_ms,
                job_source={"type": "harbor", "inline_yaml": spec.inline_yaml or ""},
                job_spec=None,
                run_ids=[],
                failure_reason=_HARBOR_FAILURE,
                harbor_failure_ms=start_ms + 1000,
            )
            self._store.jobs.add(job)
            return job
        if spec.type == "benchmark":
            assert spec.benchmark_id is not None  # checked by the request parser
            benchmark = self._store.benchmark(spec.benchmark_id)
            if benchmark.archived:
                raise ApiError.bad_request(f"Benchmark {spec.benchmark_id!r} is archived and cannot be run")
            scenario_ids = tuple(benchmark.scenario_ids)
            job_source: dict[str, Any] = {
                "type": "benchmark",
                "benchmark_id": benchmark.id,
                "benchmark_name": benchmark.name,
            }
            default_name = f"{benchmark.name} job"
        else:
            scenario_ids = tuple(dict.fromkeys(spec.scenario_ids))
            for scenario_id in scenario_ids:
                self._store.scenario(scenario_id)
            job_source = {"type": "scenarios", "scenario_ids": list(spec.scenario_ids)}
            default_name = f"{len(scenario_ids)} scenarios job"
        given = spec.orchestrator_config or {}
        orchestrator: dict[str, Any] = {
            "n_attempts": given.get("n_attempts") if given.get("n_attempts") is not None else 0,
            "n_concurrent_trials": given.get("n_concurrent_trials") or self._settings.job_concurrency,
            "timeout_multiplier": (
                given.get("timeout_multiplier") if given.get("timeout_multiplier") is not None else 1.0
            ),
            "quiet": bool(given.get("quiet") or False),
        }
        job = BenchmarkJobRecord(
            id=job_id,
            name=name or default_name,
            created_ms=now_ms,
            start_ms=start_ms,
            job_source=job_source,
            job_spec={
                "scenario_ids": list(scenario_ids),
                "agent_configs": [dict(config) for config in spec.agent_configs],
                "orchestrator_config": orchestrator,
            },
            run_ids=[],
        )
        script = benchmark.script if benchmark is not None else self._default_script
        timing = script.timing
        for variant, agent_config in enumerate(spec.agent_configs):
            run = BenchmarkRunRecord(
                id=self._store.ids.new("benchmark_run"),
                kind="job",
                created_ms=start_ms,
                # What this agent does, when the benchmark's script says (`agents`); else each scenario's
                # own script, drawn per agent config.
                script=script.for_agent(agent_config.get("name")) if benchmark is not None else None,
                timing=timing,
                seed=self._seed,
                variant=variant,
                scenario_ids=scenario_ids,
                auto_complete=True,
                benchmark_id=benchmark.id if benchmark is not None else None,
                name=f"{job.name} / {agent_config['name']}",
                job_id=job.id,
                agent_config=dict(agent_config),
            )
            self._store.benchmark_runs.add(run)
            job.run_ids.append(run.id)
            self._timelines.schedule_autonomous_run(
                run,
                concurrency=int(orchestrator["n_concurrent_trials"]),
                max_attempts=1 + int(orchestrator["n_attempts"]),
            )
        self._store.jobs.add(job)
        return job

    def job_runs(self, job: BenchmarkJobRecord, now_ms: int) -> list[BenchmarkRunRecord]:
        """The job's benchmark runs that exist at ``now_ms`` (none while the job is queued)."""
        runs = [self._store.benchmark_runs.by_id[run_id] for run_id in job.run_ids]
        return [run for run in runs if run.created_ms <= now_ms]

    def job_state(self, job: BenchmarkJobRecord, now_ms: int) -> str:
        if job.forced_end_ms <= now_ms:
            return job.forced_state
        if now_ms < job.start_ms:
            return "queued"
        if job.harbor_failure_ms <= now_ms:
            return "failed"
        ends = [
            self._runs.benchmark_run_end(self._store.benchmark_runs.by_id[run_id]) for run_id in job.run_ids
        ]
        if ends and all(end is not None and end[0] <= now_ms for end in ends):
            return "failed" if any(end is not None and end[1] == "failed" for end in ends) else "completed"
        return "running"

    def job_failure_reason(self, job: BenchmarkJobRecord, now_ms: int) -> str | None:
        if self.job_state(job, now_ms) != "failed":
            return None
        if job.failure_reason:
            return job.failure_reason
        failed = [
            r.id for r in self.job_runs(job, now_ms) if self._runs.benchmark_run_state(r, now_ms) == "failed"
        ]
        return f"benchmark run(s) failed: {', '.join(failed)}" if failed else None

    def force_job_state(
        self, now_ms: int, job_id: str, state: str, failure_reason: str | None = None
    ) -> BenchmarkJobRecord:
        """Test hook: end a job now as ``failed``, ``cancelled``, ``timeout`` or ``completed``."""
        job = self._store.job(job_id)
        if state not in ("failed", "cancelled", "timeout", "completed"):
            raise ApiError.bad_request(
                f"a job can be forced to failed, cancelled, timeout or completed, not {state!r}"
            )
        current = self.job_state(job, now_ms)
        if current not in ("queued", "running", "initializing"):
            raise ApiError.bad_request(f"BenchmarkJob {job_id!r} is already {current}")
        job.forced_end_ms, job.forced_state = now_ms, state
        if failure_reason is not None:
            job.failure_reason = failure_reason
        return job

    def job_outcomes(self, run: BenchmarkRunRecord, now_ms: int) -> list[ScenarioOutcomeData]:
        """Outcomes of the run's scenarios that are final at ``now_ms`` (in the job's scenario order)."""
        latest: dict[str, ScenarioRunRecord] = {}
        for record in run.runs.all():  # oldest first, planned future attempts included
            latest[record.scenario_id] = record
        outcomes = []
        for scenario_id in run.scenario_ids:
            scenario = self._store.scenario(scenario_id)
            setup_failure = run.setup_failures.get(scenario_id)
            if setup_failure is not None:
                failed_at, setup_ms = setup_failure
                if failed_at <= now_ms:
                    outcomes.append(
                        ScenarioOutcomeData(
                            scenario_id,
                            scenario.name,
                            "FAILED",
                            duration_ms=setup_ms,
                            failure_reason=dict(_SETUP_FAILURE),
                        )
                    )
                continue
            last = latest.get(scenario_id)
            if last is None or last.end_ms > now_ms:  # not final yet (or a retry is still to come)
                continue
            state = _OUTCOME_STATES[last.end_state]
            failure = None
            if state in ("FAILED", "TIMEOUT"):
                failure = last.failure_reason() or {
                    "exception_type": "ScenarioRunError",
                    "exception_message": f"[emulated] scenario run ended {last.end_state}",
                }
            outcomes.append(
                ScenarioOutcomeData(
                    scenario_id,
                    scenario.name,
                    state,
                    scenario_run_id=last.id,
                    score=last.score if state == "COMPLETED" and last.has_result_at(now_ms) else None,
                    duration_ms=last.end_ms - last.created_ms,
                    failure_reason=failure,
                )
            )
        return outcomes

    def list_jobs(
        self, now_ms: int, page: PageRequest, *, name: str | None = None, search: str | None = None
    ) -> Page[BenchmarkJobRecord]:
        predicates: list[Callable[[BenchmarkJobRecord], bool]] = []
        if name:
            predicates.append(lambda j: j.name == name)
        if search:
            predicates.append(lambda j: search_matches(search, j.id, j.name))
        return self._store.page(self._store.jobs, now_ms, page, predicates)
