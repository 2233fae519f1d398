"""Benchmark runs: starting them, their state, end and score as read off their timelines, and ending them.

:class:`BenchmarkRuns` starts interactive runs (the client starts and scores each scenario run) and
scripted runs (every scenario run planned up front by :class:`~.timelines.Timelines`), lists them, works
out when and how a run ends (a client action, or auto-completion once every scenario run is
lifecycle-over) and its score, and completes, cancels or forces runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.records import (
    INFINITE_MS,
    LIFECYCLE_OVER,
    BenchmarkRecord,
    BenchmarkRunRecord,
    Page,
    ScenarioRunRecord,
)
from airflow_provider_runloop.testing.script import ScenarioScript
from airflow_provider_runloop.testing.settings import EmulatorSettings
from airflow_provider_runloop.testing.store import PageRequest, RecordStore, search_matches
from airflow_provider_runloop.testing.timelines import RunProfile, Timelines

__all__ = ["BenchmarkRuns"]


class BenchmarkRuns:
    """The benchmark runs of one emulator, and the rules that start, end and score them.

    :param store: the emulator's records.
    :param timelines: plans and rewrites the scenario runs' timelines.
    :param settings: the emulator's live settings.
    :param seed: the seed of runs that are not given their own.
    """

    def __init__(
        self, store: RecordStore, timelines: Timelines, *, settings: EmulatorSettings, seed: int
    ) -> None:
        self._store = store
        self._timelines = timelines
        self._settings = settings
        self._seed = seed

    def start_benchmark_run(
        self,
        now_ms: int,
        *,
        benchmark_id: str,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        profile: RunProfile | None = None,
    ) -> BenchmarkRunRecord:
        """``POST /v1/benchmarks/start_run``: an interactive run that waits for the client."""
        benchmark = self._runnable_benchmark(benchmark_id, profile or RunProfile())
        profile = profile or RunProfile()
        run = BenchmarkRunRecord(
            id=self._store.ids.new("benchmark_run"),
            kind="interactive",
            created_ms=now_ms,
            script=None,
            timing=benchmark.script.timing,
            seed=self._seed,
            variant=0,
            scenario_ids=tuple(benchmark.scenario_ids),
            auto_complete=False,
            benchmark_id=benchmark.id,
            name=run_name,
            metadata=dict(metadata or {}),
            purpose=profile.purpose,
            environment_variables=profile.env_vars,
            secrets_provided=profile.secrets,
        )
        self._store.benchmark_runs.add(run)
        return run

    def _runnable_benchmark(self, benchmark_id: str, profile: RunProfile) -> BenchmarkRecord:
        benchmark = self._store.benchmark(benchmark_id)
        if benchmark.archived:
            raise ApiError.bad_request(f"Benchmark {benchmark_id!r} is archived and cannot be run")
        env_vars = profile.env_vars or {}
        missing = [v for v in benchmark.required_environment_variables or () if v not in env_vars]
        secrets = profile.secrets or {}
        missing += [
            s for s in benchmark.required_secret_names or () if s not in secrets and s not in secrets.values()
        ]
        if missing:
            raise ApiError.bad_request(
                f"Benchmark {benchmark_id!r} requires environment variables or secrets that the runProfile "
                f"does not provide: {', '.join(missing)}"
            )
        return benchmark

    def start_scripted_run(
        self,
        now_ms: int,
        *,
        benchmark_id: str,
        script: ScenarioScript | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        auto_complete: bool = True,
        seed: int | None = None,
    ) -> BenchmarkRunRecord:
        """A benchmark run whose scenario runs start and progress by themselves on the clock.

        ``script`` (default: each scenario's own script) plans the runs; ``auto_complete`` makes the
        benchmark run complete itself once every scenario run is lifecycle-over.
        """
        benchmark = self._store.benchmark(benchmark_id)
        if benchmark.archived:
            raise ApiError.bad_request(f"Benchmark {benchmark_id!r} is archived and cannot be run")
        run = BenchmarkRunRecord(
            id=self._store.ids.new("benchmark_run"),
            kind="scripted",
            created_ms=now_ms,
            script=script,
            timing=(script or benchmark.script).timing,
            seed=self._seed if seed is None else seed,
            variant=0,
            scenario_ids=tuple(benchmark.scenario_ids),
            auto_complete=auto_complete,
            benchmark_id=benchmark.id,
            name=name,
            metadata=dict(metadata or {}),
        )
        self._store.benchmark_runs.add(run)
        self._timelines.schedule_autonomous_run(run, concurrency=run.timing.concurrency, max_attempts=None)
        return run

    def list_benchmark_runs(
        self,
        now_ms: int,
        page: PageRequest,
        *,
        benchmark_id: str | None = None,
        name: str | None = None,
        search: str | None = None,
        state: str | None = None,
    ) -> Page[BenchmarkRunRecord]:
        predicates: list[Callable[[BenchmarkRunRecord], bool]] = []
        if benchmark_id:
            predicates.append(lambda r: r.benchmark_id == benchmark_id)
        if name:
            predicates.append(lambda r: r.name == name)
        if search:
            predicates.append(lambda r: search_matches(search, r.id, r.name))
        if state:
            predicates.append(lambda r: self.benchmark_run_state(r, now_ms) == state)
        return self._store.page(self._store.benchmark_runs, now_ms, page, predicates)

    def benchmark_run_end(self, run: BenchmarkRunRecord) -> tuple[int, str] | None:
        """When and how the run ends as planned so far (possibly in the future), or ``None``."""
        auto = self._auto_complete_at(run)
        if auto is not None and auto < run.end_ms:
            return auto, "completed"
        if run.end_ms < INFINITE_MS:
            return run.end_ms, run.end_state
        return None

    def benchmark_run_state(self, run: BenchmarkRunRecord, now_ms: int) -> str:
        end = self.benchmark_run_end(run)
        return end[1] if end is not None and end[0] <= now_ms else "running"

    def _auto_complete_at(self, run: BenchmarkRunRecord) -> int | None:
        if not run.auto_complete:
            return None
        if run.cached_auto_complete is not None and run.cached_auto_complete[0] == run.version:
            return run.cached_auto_complete[1]
        latest: int | None = max([run.created_ms, *(at for at, _ in run.setup_failures.values())])
        for record in run.runs.all():
            if record.end_ms >= INFINITE_MS:
                latest = None
                break
            latest = max(latest or 0, record.end_ms)
        run.cached_auto_complete = (run.version, latest)
        return latest

    def benchmark_run_score(self, run: BenchmarkRunRecord, now_ms: int) -> float | None:
        """Σ result scores ÷ number of scenario runs, once the run is ``completed`` or ``canceled``."""
        end = self.benchmark_run_end(run)
        if end is None or end[0] > now_ms or end[1] not in ("completed", "canceled"):
            return None
        end_ms = end[0]
        if run.cached_score is not None and run.cached_score[:2] == (run.version, end_ms):
            return run.cached_score[2]
        attached = [record for record in run.runs.all() if record.created_ms <= end_ms]
        score = None
        if attached:
            total = sum(record.score for record in attached if record.has_result_at(end_ms))
            score = round(total / len(attached), 6)
        run.cached_score = (run.version, end_ms, score)
        return score

    def complete_benchmark_run(self, now_ms: int, run_id: str) -> BenchmarkRunRecord:
        run = self._store.benchmark_run(run_id, now_ms)
        state = self.benchmark_run_state(run, now_ms)
        if state == "completed" and not self._settings.refuse_repeated_actions:
            return run
        if state != "running":
            raise ApiError.bad_request(
                f"BenchmarkRun {run_id!r} is not running ({state}): cannot be completed"
            )
        self._end_benchmark_run(run, now_ms, "completed")
        return run

    def cancel_benchmark_run(self, now_ms: int, run_id: str) -> BenchmarkRunRecord:
        run = self._store.benchmark_run(run_id, now_ms)
        state = self.benchmark_run_state(run, now_ms)
        if state == "canceled" and not self._settings.refuse_repeated_actions:
            return run
        if state != "running":
            raise ApiError.bad_request(
                f"BenchmarkRun {run_id!r} is not running ({state}): cannot be canceled"
            )
        for record in run.runs.visible(now_ms):
            if record.state_at(now_ms) not in LIFECYCLE_OVER:
                self._timelines.rewrite_future(
                    record, now_ms, end_ms=now_ms, end_state="canceled", recount=False
                )
        self._end_benchmark_run(run, now_ms, "canceled")
        return run

    def _end_benchmark_run(self, run: BenchmarkRunRecord, now_ms: int, state: str) -> None:
        """End ``run`` now: scenario runs and setup failures still in its future never happen."""
        removed = run.runs.remove_where(lambda record: record.created_ms > now_ms)
        if removed:
            removed_ids = {record.id for record in removed}
            self._store.scenario_runs.ordered.remove_where(lambda record: record.id in removed_ids)
            for record in removed:
                del self._store.scenario_runs.by_id[record.id]
                run.attempt_counts[record.scenario_id] -= 1
        run.setup_failures = {sid: f for sid, f in run.setup_failures.items() if f[0] <= now_ms}
        run.counter.rebuild(run.runs.all())
        run.end_ms, run.end_state = now_ms, state
        run.version += 1

    def force_benchmark_run_state(self, now_ms: int, run_id: str, state: str) -> BenchmarkRunRecord:
        """Test hook: end a running benchmark run as ``failed``, ``canceled`` or ``completed`` now."""
        if state == "canceled":
            return self.cancel_benchmark_run(now_ms, run_id)
        if state == "completed":
            return self.complete_benchmark_run(now_ms, run_id)
        if state != "failed":
            raise ApiError.bad_request(
                f"a benchmark run can be forced to failed, canceled or completed, not {state!r}"
            )
        run = self._store.benchmark_run(run_id, now_ms)
        current = self.benchmark_run_state(run, now_ms)
        if current != "running":
            raise ApiError.bad_request(f"BenchmarkRun {run_id!r} is already {current}")
        self._end_benchmark_run(run, now_ms, "failed")
        return run

    def scenario_runs_of(self, run_id: str, now_ms: int) -> list[ScenarioRunRecord]:
        """The started scenario runs of a benchmark run, oldest first (for tests and the control API)."""
        return self._store.benchmark_run(run_id, now_ms).runs.visible(now_ms)
