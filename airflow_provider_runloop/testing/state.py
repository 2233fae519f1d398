"""The emulator's store and its lifecycle rules: what each API action does, and how runs progress.

Nothing here knows HTTP or the clock: every method takes ``now_ms`` and the caller (the app, or the
Python control API) holds :attr:`EmulatorState.lock` around the call and the serialisation of its result,
so one request sees one consistent moment.

Behaviour where the real API is unverified follows the choices in
``docs/emulator.md#choices-where-the-real-api-is-unverified`` (their numbers below):

* state conflicts are 400, never 409 (#11); repeating an action is 200 with the current view (#10);
* scenario runs: ``score`` on ``running`` moves to ``scoring`` at once and to ``scored`` (with
  ``scoring_contract_result``) after the scoring delay (#12); ``score`` on ``scoring``/``scored`` is a no-op;
  ``complete`` needs ``scored`` (#9); ``cancel`` ends any non-terminal run as ``canceled``;
* benchmark runs: ``complete`` works while scenario runs are still active and leaves them as they are (#6);
  ``cancel`` cancels every non-terminal scenario run (#7); either way scenario runs that have not started
  yet never will. ``score`` = Σ result scores ÷ number of scenario runs, set on ``completed``/``canceled``,
  absent when there are no runs (#8);
* interactive benchmark runs never end on their own (#14); scripted and job runs complete themselves once
  every scenario run is lifecycle-over (``completed``/``failed``/``timeout``/``canceled``);
* a scoring phase longer than the scenario's ``scorer_timeout_sec`` ends in ``timeout`` (#13);
* the scenario set of a benchmark is snapshotted when a run starts (#22);
* an id referenced in a request body that does not exist (``benchmark_id``, ``scenario_id``,
  ``benchmark_run_id``) is 404, like an unknown id in the path (#17);
* benchmark jobs: ``queued`` for ``job_queue_seconds``, then ``running`` with one benchmark run per agent
  config, then ``completed`` when all those runs are (``failed`` if one of them failed) (#20). Harbor jobs
  are accepted but not emulated: they fail one second after starting, with a ``failure_reason``.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.ids import IdFactory
from airflow_provider_runloop.testing.records import (
    INFINITE_MS,
    LIFECYCLE_OVER,
    SCENARIO_RUN_STATES,
    BenchmarkJobRecord,
    BenchmarkRecord,
    BenchmarkRunRecord,
    Page,
    ScenarioRecord,
    ScenarioRunRecord,
    TimeOrdered,
)
from airflow_provider_runloop.testing.script import AttemptPlan, ScenarioPlan, ScenarioScript, Timing
from airflow_provider_runloop.testing.settings import EmulatorSettings

__all__ = [
    "EmulatorState",
    "JobSpecRequest",
    "PageRequest",
    "RunProfile",
    "ScenarioOutcomeData",
]

_RecordT = TypeVar("_RecordT", BenchmarkRecord, ScenarioRecord, BenchmarkRunRecord, ScenarioRunRecord)

_HARBOR_FAILURE = "The Runloop emulator does not run Harbor jobs; use a 'benchmark' or 'scenarios' spec."
_SETUP_FAILURE = {"exception_type": "SetupError", "exception_message": "[emulated] scenario setup failed"}
_OUTCOME_STATES = {"completed": "COMPLETED", "failed": "FAILED", "timeout": "TIMEOUT", "canceled": "CANCELED"}


@dataclass(frozen=True)
class PageRequest:
    """Validated pagination parameters (unverified choices 1-5 in ``docs/emulator.md``)."""

    limit: int = 20
    starting_after: str | None = None
    include_total_count: bool = True


@dataclass(frozen=True)
class RunProfile:
    """The parts of a ``runProfile`` the emulator reflects in its views."""

    purpose: str | None = None
    env_vars: dict[str, str] | None = None
    secrets: dict[str, str] | None = None


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


@dataclass
class _Collection:
    """The records of one resource: by id, and in creation order for listings."""

    by_id: dict[str, Any] = field(default_factory=dict)
    ordered: TimeOrdered[Any] = field(default_factory=TimeOrdered)

    def add(self, record: Any) -> None:
        self.by_id[record.id] = record
        self.ordered.add(record)


def _search_matches(search: str | None, record_id: str, name: str | None) -> bool:
    if not search:
        return True
    return record_id == search or (name is not None and search.lower() in name.lower())


def _combine(predicates: Sequence[Callable[[_RecordT], bool]]) -> Callable[[_RecordT], bool] | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda record: all(predicate(record) for predicate in predicates)


class EmulatorState:
    """All resources of one emulator, and the rules that change them.

    :param settings: the emulator's live settings.
    :param seed: the seed of ids and of scripts that do not set their own.
    :param default_script: plans the runs of scenarios created over the API.
    """

    def __init__(self, *, settings: EmulatorSettings, seed: int, default_script: ScenarioScript) -> None:
        #: Held around every read and change, and while a response is serialised.
        self.lock = threading.RLock()
        self.settings = settings
        self.seed = seed
        self.default_script = default_script
        self.ids = IdFactory(seed)
        self._benchmarks = _Collection()
        self._scenarios = _Collection()
        self._benchmark_runs = _Collection()
        self._scenario_runs = _Collection()
        self._jobs = _Collection()
        self._standalone_attempts: dict[str, int] = {}

    # ----------------------------------------------------------------------------------------- lookups

    def benchmark(self, benchmark_id: str) -> BenchmarkRecord:
        record: BenchmarkRecord | None = self._benchmarks.by_id.get(benchmark_id)
        if record is None:
            raise ApiError.not_found("Benchmark", benchmark_id)
        return record

    def scenario(self, scenario_id: str) -> ScenarioRecord:
        record: ScenarioRecord | None = self._scenarios.by_id.get(scenario_id)
        if record is None:
            raise ApiError.not_found("Scenario", scenario_id)
        return record

    def benchmark_run(self, run_id: str, now_ms: int) -> BenchmarkRunRecord:
        record: BenchmarkRunRecord | None = self._benchmark_runs.by_id.get(run_id)
        if record is None or record.created_ms > now_ms:  # a job's run exists once the job starts it
            raise ApiError.not_found("BenchmarkRun", run_id)
        return record

    def scenario_run(self, run_id: str, now_ms: int) -> ScenarioRunRecord:
        record: ScenarioRunRecord | None = self._scenario_runs.by_id.get(run_id)
        if record is None or record.created_ms > now_ms:  # scripted runs exist once they start
            raise ApiError.not_found("ScenarioRun", run_id)
        return record

    def job(self, job_id: str) -> BenchmarkJobRecord:
        record: BenchmarkJobRecord | None = self._jobs.by_id.get(job_id)
        if record is None:
            raise ApiError.not_found("BenchmarkJob", job_id)
        return record

    def _cursor(self, collection: _Collection, page: PageRequest) -> tuple[int, str] | None:
        if page.starting_after is None:
            return None
        record = collection.by_id.get(page.starting_after)
        if record is None:
            raise ApiError.bad_request(f"starting_after {page.starting_after!r} is not a known id")
        return (record.created_ms, record.id)

    def _page(
        self,
        collection: _Collection,
        now_ms: int,
        page: PageRequest,
        predicates: Sequence[Callable[[Any], bool]],
        *,
        index: TimeOrdered[Any] | None = None,
        count_matches: Callable[[], int] | None = None,
    ) -> Page[Any]:
        return (index or collection.ordered).page(
            now_ms,
            limit=page.limit,
            after=self._cursor(collection, page),
            predicate=_combine(predicates),
            include_total_count=page.include_total_count,
            count_matches=count_matches,
        )

    # -------------------------------------------------------------------------------------- benchmarks

    def create_benchmark(
        self,
        now_ms: int,
        *,
        name: str,
        scenario_ids: Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        attribution: str | None = None,
        description: str | None = None,
        required_environment_variables: Sequence[str] | None = None,
        required_secret_names: Sequence[str] | None = None,
        script: ScenarioScript | None = None,
        is_public: bool | None = None,
    ) -> BenchmarkRecord:
        if not name.strip():
            raise ApiError.bad_request("name must not be blank")
        ids = list(dict.fromkeys(scenario_ids or ()))
        for scenario_id in ids:
            self.scenario(scenario_id)
        record = BenchmarkRecord(
            id=self.ids.new("benchmark"),
            name=name,
            created_ms=now_ms,
            scenario_ids=ids,
            metadata=dict(metadata or {}),
            script=script or self.default_script,
            attribution=attribution,
            description=description,
            required_environment_variables=(
                None if required_environment_variables is None else list(required_environment_variables)
            ),
            required_secret_names=None if required_secret_names is None else list(required_secret_names),
            is_public=is_public,
        )
        self._benchmarks.add(record)
        return record

    def update_benchmark(self, benchmark_id: str, changes: Mapping[str, Any]) -> BenchmarkRecord:
        """Replace the fields present in ``changes`` (null/absent keys were already dropped)."""
        record = self.benchmark(benchmark_id)
        if "name" in changes and not str(changes["name"]).strip():
            raise ApiError.bad_request("name must not be blank")
        if "scenario_ids" in changes:
            for scenario_id in changes["scenario_ids"]:
                self.scenario(scenario_id)
            changes = {**changes, "scenario_ids": list(dict.fromkeys(changes["scenario_ids"]))}
        for key, value in changes.items():
            setattr(record, key, value)
        return record

    def update_benchmark_scenarios(
        self, benchmark_id: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> BenchmarkRecord:
        record = self.benchmark(benchmark_id)
        for scenario_id in add:
            self.scenario(scenario_id)
        removed = set(remove)
        kept = [scenario_id for scenario_id in record.scenario_ids if scenario_id not in removed]
        record.scenario_ids = list(dict.fromkeys([*kept, *(s for s in add if s not in removed)]))
        return record

    def set_benchmark_archived(self, benchmark_id: str, archived: bool) -> BenchmarkRecord:
        record = self.benchmark(benchmark_id)
        if record.is_public:
            raise ApiError(403, f"Cannot {'archive' if archived else 'unarchive'} public benchmarks")
        record.archived = archived
        return record

    def list_benchmarks(
        self,
        now_ms: int,
        page: PageRequest,
        *,
        name: str | None = None,
        search: str | None = None,
        public_only: bool = False,
    ) -> Page[BenchmarkRecord]:
        predicates: list[Callable[[BenchmarkRecord], bool]] = [lambda b: not b.archived]
        if public_only:
            predicates.append(lambda b: bool(b.is_public))
        if name:
            predicates.append(lambda b: b.name == name)
        if search:
            predicates.append(lambda b: _search_matches(search, b.id, b.name))
        return self._page(self._benchmarks, now_ms, page, predicates)

    def benchmark_definitions(
        self, now_ms: int, benchmark_id: str, page: PageRequest
    ) -> Page[ScenarioRecord]:
        member_ids = set(self.benchmark(benchmark_id).scenario_ids)
        predicates: list[Callable[[ScenarioRecord], bool]] = [lambda s: s.id in member_ids and not s.archived]
        return self._page(self._scenarios, now_ms, page, predicates)

    def metadata_keys(self, resource: str) -> list[str]:
        records = self._metadata_records(resource)
        return sorted({key for record in records for key in record.metadata})

    def metadata_values(self, resource: str, key: str) -> list[str]:
        records = self._metadata_records(resource)
        values = {record.metadata[key] for record in records if key in record.metadata}
        if not values:
            raise ApiError.bad_request(f"Invalid metadata key {key!r}")
        return sorted(values)

    def _metadata_records(self, resource: str) -> list[Any]:
        collection = self._benchmarks if resource == "benchmarks" else self._scenarios
        return [record for record in collection.by_id.values() if not record.archived]

    # --------------------------------------------------------------------------------------- scenarios

    def create_scenario(
        self,
        now_ms: int,
        *,
        name: str,
        input_context: dict[str, Any],
        scoring_contract: dict[str, Any],
        metadata: Mapping[str, str] | None = None,
        environment: dict[str, Any] | None = None,
        reference_output: str | None = None,
        required_environment_variables: Sequence[str] | None = None,
        required_secret_names: Sequence[str] | None = None,
        validation_type: str | None = None,
        scorer_timeout_sec: int | None = None,
        script: ScenarioScript | None = None,
        script_position: int | None = None,
        is_public: bool | None = None,
    ) -> ScenarioRecord:
        if not name.strip():
            raise ApiError.bad_request("name must not be blank")
        ordinal = len(self._scenarios.by_id)
        record = ScenarioRecord(
            id=self.ids.new("scenario"),
            name=name,
            created_ms=now_ms,
            script=script or self.default_script,
            script_position=ordinal if script_position is None else script_position,
            input_context=input_context,
            scoring_contract=scoring_contract,
            metadata=dict(metadata or {}),
            environment=environment,
            reference_output=reference_output,
            required_environment_variables=(
                None if required_environment_variables is None else list(required_environment_variables)
            ),
            required_secret_names=None if required_secret_names is None else list(required_secret_names),
            is_public=is_public,
            validation_type=validation_type,
            scorer_timeout_sec=scorer_timeout_sec,
        )
        self._scenarios.add(record)
        return record

    def update_scenario(self, scenario_id: str, changes: Mapping[str, Any]) -> ScenarioRecord:
        record = self.scenario(scenario_id)
        if record.archived:
            raise ApiError.bad_request(f"Scenario {scenario_id!r} is archived and cannot be updated")
        if "name" in changes and not str(changes["name"]).strip():
            raise ApiError.bad_request("name must not be blank")
        for key, value in changes.items():
            setattr(record, key, value)
        return record

    def set_scenario_archived(self, scenario_id: str, archived: bool) -> ScenarioRecord:
        record = self.scenario(scenario_id)
        if record.is_public:
            raise ApiError(403, f"Cannot {'archive' if archived else 'unarchive'} public scenarios")
        record.archived = archived
        return record

    def list_scenarios(
        self,
        now_ms: int,
        page: PageRequest,
        *,
        benchmark_id: str | None = None,
        name: str | None = None,
        search: str | None = None,
        validation_type: str | None = None,
        public_only: bool = False,
    ) -> Page[ScenarioRecord]:
        predicates: list[Callable[[ScenarioRecord], bool]] = [lambda s: not s.archived]
        if public_only:
            predicates.append(lambda s: bool(s.is_public))
        if benchmark_id:
            benchmark = self._benchmarks.by_id.get(benchmark_id)
            member_ids = set(benchmark.scenario_ids) if benchmark else set()
            predicates.append(lambda s: s.id in member_ids)
        if name:
            predicates.append(lambda s: s.name == name)
        if search:
            predicates.append(lambda s: _search_matches(search, s.id, s.name))
        if validation_type:
            predicates.append(lambda s: s.validation_type == validation_type)
        return self._page(self._scenarios, now_ms, page, predicates)

    def seed_benchmark(
        self,
        now_ms: int,
        *,
        script: ScenarioScript,
        name: str | None = None,
        is_public: bool | None = None,
    ) -> BenchmarkRecord:
        """Create ``script.scenario_count`` scenarios and a benchmark of them, planned by ``script``."""
        total_weight = sum(spec.weight for spec in script.scoring_functions)
        # One contract shared by all seeded scenarios: a 100k-scenario benchmark stays small in memory.
        scoring_contract = {
            "scoring_function_parameters": [
                {
                    "name": spec.name,
                    "weight": round(spec.weight / total_weight, 6),
                    "scorer": {"type": "command_scorer", "command": f"./score_{spec.name}.sh"},
                }
                for spec in script.scoring_functions
            ]
        }
        input_context = {"problem_statement": "[emulated] Make the failing tests pass."}
        scenario_ids = [
            self.create_scenario(
                now_ms,
                name=script.scenario_name(position),
                input_context=input_context,
                scoring_contract=scoring_contract,
                script=script,
                script_position=position,
                is_public=is_public,
            ).id
            for position in range(script.scenario_count)
        ]
        return self.create_benchmark(
            now_ms,
            name=name or script.benchmark_name,
            scenario_ids=scenario_ids,
            script=script,
            is_public=is_public,
        )

    # ---------------------------------------------------------------------------------- benchmark runs

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
            id=self.ids.new("benchmark_run"),
            kind="interactive",
            created_ms=now_ms,
            script=None,
            timing=benchmark.script.timing,
            seed=self.seed,
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
        self._benchmark_runs.add(run)
        return run

    def _runnable_benchmark(self, benchmark_id: str, profile: RunProfile) -> BenchmarkRecord:
        benchmark = self.benchmark(benchmark_id)
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
        benchmark = self.benchmark(benchmark_id)
        if benchmark.archived:
            raise ApiError.bad_request(f"Benchmark {benchmark_id!r} is archived and cannot be run")
        run = BenchmarkRunRecord(
            id=self.ids.new("benchmark_run"),
            kind="scripted",
            created_ms=now_ms,
            script=script,
            timing=(script or benchmark.script).timing,
            seed=self.seed if seed is None else seed,
            variant=0,
            scenario_ids=tuple(benchmark.scenario_ids),
            auto_complete=auto_complete,
            benchmark_id=benchmark.id,
            name=name,
            metadata=dict(metadata or {}),
        )
        self._benchmark_runs.add(run)
        self._schedule_autonomous_run(run, concurrency=run.timing.concurrency, max_attempts=None)
        return run

    def _plan(self, run: BenchmarkRunRecord | None, scenario: ScenarioRecord) -> ScenarioPlan:
        if run is not None and scenario.id in run.plans:
            return run.plans[scenario.id]
        if run is not None and run.script is not None and scenario.id in run.scenario_ids:
            plan = run.script.plan(run.scenario_ids.index(scenario.id), seed=run.seed, variant=run.variant)
        else:
            seed = run.seed if run is not None else self.seed
            variant = run.variant if run is not None else 0
            plan = scenario.script.plan(scenario.script_position, seed=seed, variant=variant)
        if run is not None and run.kind == "interactive":
            run.plans[scenario.id] = plan
        return plan

    def _schedule_autonomous_run(
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
            scenario = self.scenario(scenario_id)
            plan = self._plan(run, scenario)
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
                    record = self._new_scenario_run(run, scenario, attempt, start)
                    self._apply_autonomous_timeline(record, attempt)
                    created.append(record)
                    finish = record.end_ms
                    if finish >= INFINITE_MS:
                        break
                    start = finish + plan.retry_delay_ms
            if concurrency is not None:
                heapq.heappush(free_slots, min(finish, INFINITE_MS))
        run.runs.extend(created)
        self._scenario_runs.ordered.extend(created)
        for record in created:
            self._scenario_runs.by_id[record.id] = record
        run.counter.rebuild(run.runs.all())
        run.version += 1

    @staticmethod
    def _job_attempts(plan: ScenarioPlan, max_attempts: int) -> int:
        attempts = 1
        while attempts < max_attempts and plan.attempt(attempts - 1).retryable:
            attempts += 1
        return attempts

    def _new_scenario_run(
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
        record = ScenarioRunRecord(
            id=self.ids.new("scenario_run"),
            scenario_id=scenario.id,
            devbox_id=self.ids.new("devbox"),
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
            self._set_scoring_timeline(record, agent_done, attempt.scoring_ms, scripted_outcome=False)
            if attempt.outcome == "completed" and record.scored_ms < INFINITE_MS:
                record.end_ms, record.end_state = record.scored_ms + attempt.complete_ms, "completed"
        # "stays_running": the timeline stays open until a client action or a test hook.

    def _set_scoring_timeline(
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
            predicates.append(lambda r: _search_matches(search, r.id, r.name))
        if state:
            predicates.append(lambda r: self.benchmark_run_state(r, now_ms) == state)
        return self._page(self._benchmark_runs, now_ms, page, predicates)

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
        run = self.benchmark_run(run_id, now_ms)
        state = self.benchmark_run_state(run, now_ms)
        if state == "completed" and not self.settings.refuse_repeated_actions:
            return run
        if state != "running":
            raise ApiError.bad_request(
                f"BenchmarkRun {run_id!r} is not running ({state}): cannot be completed"
            )
        self._end_benchmark_run(run, now_ms, "completed")
        return run

    def cancel_benchmark_run(self, now_ms: int, run_id: str) -> BenchmarkRunRecord:
        run = self.benchmark_run(run_id, now_ms)
        state = self.benchmark_run_state(run, now_ms)
        if state == "canceled" and not self.settings.refuse_repeated_actions:
            return run
        if state != "running":
            raise ApiError.bad_request(
                f"BenchmarkRun {run_id!r} is not running ({state}): cannot be canceled"
            )
        for record in run.runs.visible(now_ms):
            if record.state_at(now_ms) not in LIFECYCLE_OVER:
                self._rewrite_future(record, now_ms, end_ms=now_ms, end_state="canceled", recount=False)
        self._end_benchmark_run(run, now_ms, "canceled")
        return run

    def _end_benchmark_run(self, run: BenchmarkRunRecord, now_ms: int, state: str) -> None:
        """End ``run`` now: scenario runs and setup failures still in its future never happen."""
        removed = run.runs.remove_where(lambda record: record.created_ms > now_ms)
        if removed:
            removed_ids = {record.id for record in removed}
            self._scenario_runs.ordered.remove_where(lambda record: record.id in removed_ids)
            for record in removed:
                del self._scenario_runs.by_id[record.id]
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
        run = self.benchmark_run(run_id, now_ms)
        current = self.benchmark_run_state(run, now_ms)
        if current != "running":
            raise ApiError.bad_request(f"BenchmarkRun {run_id!r} is already {current}")
        self._end_benchmark_run(run, now_ms, "failed")
        return run

    # ----------------------------------------------------------------------------------- scenario runs

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
        scenario = self.scenario(scenario_id)
        if scenario.archived:
            raise ApiError.bad_request(f"Scenario {scenario_id!r} is archived and cannot be run")
        run = None
        if benchmark_run_id is not None:
            run = self.benchmark_run(benchmark_run_id, now_ms)
            run_state = self.benchmark_run_state(run, now_ms)
            if run_state != "running":
                raise ApiError.bad_request(
                    f"BenchmarkRun {benchmark_run_id!r} is {run_state}; scenario runs cannot be added to it"
                )
        plan = self._plan(run, scenario)
        if run is not None:
            attempt_index = run.attempt_counts.get(scenario_id, 0)
        else:
            attempt_index = self._standalone_attempts.get(scenario_id, 0)
            self._standalone_attempts[scenario_id] = attempt_index + 1
        record = self._new_scenario_run(
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
        self._scenario_runs.add(record)
        if run is not None:
            run.runs.add(record)
            run.counter.add(record)
            run.version += 1
        return record

    def _rewrite_future(
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
            self._benchmark_runs.by_id.get(record.benchmark_run_id) if record.benchmark_run_id else None
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
            self._set_scoring_timeline(record, scoring_ms, scoring_delay_ms, scripted_outcome=True)
        if scored_ms is not None:
            record.scoring_ms = min(record.scoring_ms, scored_ms)
            record.scored_ms = scored_ms
        if end_ms is not None and end_state is not None:
            record.end_ms, record.end_state = end_ms, end_state
        if run is not None:
            if recount:
                run.counter.add(record)
            run.version += 1

    def score_scenario_run(self, now_ms: int, run_id: str) -> ScenarioRunRecord:
        record = self.scenario_run(run_id, now_ms)
        state = record.state_at(now_ms)
        if state in ("scoring", "scored"):
            return record
        if state != "running":
            raise ApiError.bad_request(f"ScenarioRun {run_id!r} is {state} and cannot be scored")
        delay_seconds = self.settings.scoring_delay_seconds
        delay_ms = record.scoring_delay_ms if delay_seconds is None else round(delay_seconds * 1000)
        self._rewrite_future(record, now_ms, scoring_ms=now_ms, scoring_delay_ms=delay_ms)
        return record

    def complete_scenario_run(self, now_ms: int, run_id: str) -> ScenarioRunRecord:
        record = self.scenario_run(run_id, now_ms)
        state = record.state_at(now_ms)
        if state == "completed":
            return record
        if state != "scored":
            raise ApiError.bad_request(
                f"ScenarioRun {run_id!r} is {state}; only a scored run can be completed (score it first)"
            )
        self._rewrite_future(record, now_ms, end_ms=now_ms, end_state="completed")
        return record

    def cancel_scenario_run(self, now_ms: int, run_id: str) -> ScenarioRunRecord:
        record = self.scenario_run(run_id, now_ms)
        state = record.state_at(now_ms)
        if state == "canceled":
            return record
        if state in LIFECYCLE_OVER:
            raise ApiError.bad_request(f"ScenarioRun {run_id!r} is {state} and cannot be canceled")
        self._rewrite_future(record, now_ms, end_ms=now_ms, end_state="canceled")
        return record

    def force_scenario_run_state(self, now_ms: int, run_id: str, state: str) -> ScenarioRunRecord:
        """Test hook: move a scenario run that is not lifecycle-over to ``state`` now.

        ``scored`` gives it its planned result; ``completed``, ``failed``, ``timeout``, ``canceled`` end it.
        """
        record = self.scenario_run(run_id, now_ms)
        current = record.state_at(now_ms)
        if current in LIFECYCLE_OVER:
            raise ApiError.bad_request(f"ScenarioRun {run_id!r} is already {current}")
        if state == current:
            return record
        if state == "scored":
            self._rewrite_future(record, now_ms, scored_ms=now_ms)
        elif state in LIFECYCLE_OVER:
            scored = now_ms if state == "completed" and current != "scored" else None
            self._rewrite_future(record, now_ms, scored_ms=scored, end_ms=now_ms, end_state=state)
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
            run = self._benchmark_runs.by_id.get(benchmark_run_id)
            if run is None or run.created_ms > now_ms:  # unverified choice 5: an unknown filter lists nothing
                return Page([], False, 0 if page.include_total_count else None)
        predicates: list[Callable[[ScenarioRunRecord], bool]] = []
        if scenario_id:
            predicates.append(lambda r: r.scenario_id == scenario_id)
        if name:
            predicates.append(lambda r: r.name == name)
        if search:
            predicates.append(lambda r: _search_matches(search, r.id, r.name))
        count_matches = None
        if state:
            predicates.append(lambda r: r.state_at(now_ms) == state)
            if run is not None and len(predicates) == 1:
                count_matches = lambda: run.counter.count(state, now_ms)  # noqa: E731
        return self._page(
            self._scenario_runs,
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
        self.benchmark_run(run_id, now_ms)
        if state is not None and state not in SCENARIO_RUN_STATES:
            raise ApiError.bad_request(
                f"state must be one of {', '.join(SCENARIO_RUN_STATES)}; got {state!r}"
            )
        return self.list_scenario_runs(now_ms, page, benchmark_run_id=run_id, state=state, search=search)

    @staticmethod
    def _attempt_of(record: ScenarioRunRecord) -> AttemptPlan:
        return AttemptPlan(
            outcome=record.outcome,
            duration_ms=0,
            scoring_ms=record.scoring_delay_ms,
            complete_ms=0,
            function_scores=record.function_scores,
            score=record.score,
        )

    def insert_scenario_run_before(self, now_ms: int, cursor_id: str) -> ScenarioRunRecord | None:
        """Fault helper: add a run that sorts just after the cursor, so the next page shows a newcomer.

        It is a copy of the cursor run's timeline (same scenario, as if retried) created 1 ms earlier, so
        it never changes when the benchmark run completes.
        """
        cursor: ScenarioRunRecord | None = self._scenario_runs.by_id.get(cursor_id)
        if cursor is None or cursor.benchmark_run_id is None:
            return None
        run: BenchmarkRunRecord = self._benchmark_runs.by_id[cursor.benchmark_run_id]
        scenario = self.scenario(cursor.scenario_id)

        def shifted(time_ms: int) -> int:
            return time_ms - 1 if time_ms < INFINITE_MS else time_ms

        record = self._new_scenario_run(
            run, scenario, self._attempt_of(cursor), cursor.created_ms - 1, name=cursor.name
        )
        record.scoring_ms, record.scored_ms = shifted(cursor.scoring_ms), shifted(cursor.scored_ms)
        record.end_ms, record.end_state = shifted(cursor.end_ms), cursor.end_state
        self._scenario_runs.add(record)
        run.runs.add(record)
        run.counter.add(record)
        run.version += 1
        return record

    # -------------------------------------------------------------------------------------------- jobs

    def create_job(self, now_ms: int, *, name: str | None, spec: JobSpecRequest) -> BenchmarkJobRecord:
        """``POST /v1/benchmark_jobs``: queue a job; its runs and their scenario runs are planned now."""
        start_ms = now_ms + round(self.settings.job_queue_seconds * 1000)
        job_id = self.ids.new("benchmark_job")
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
            self._jobs.add(job)
            return job
        if spec.type == "benchmark":
            assert spec.benchmark_id is not None  # checked by the request parser
            benchmark = self.benchmark(spec.benchmark_id)
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
                self.scenario(scenario_id)
            job_source = {"type": "scenarios", "scenario_ids": list(spec.scenario_ids)}
            default_name = f"{len(scenario_ids)} scenarios job"
        given = spec.orchestrator_config or {}
        orchestrator: dict[str, Any] = {
            "n_attempts": given.get("n_attempts") if given.get("n_attempts") is not None else 0,
            "n_concurrent_trials": given.get("n_concurrent_trials") or self.settings.job_concurrency,
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
        timing = (benchmark.script if benchmark is not None else self.default_script).timing
        for variant, agent_config in enumerate(spec.agent_configs):
            run = BenchmarkRunRecord(
                id=self.ids.new("benchmark_run"),
                kind="job",
                created_ms=start_ms,
                script=None,
                timing=timing,
                seed=self.seed,
                variant=variant,
                scenario_ids=scenario_ids,
                auto_complete=True,
                benchmark_id=benchmark.id if benchmark is not None else None,
                name=f"{job.name} / {agent_config['name']}",
                job_id=job.id,
                agent_config=dict(agent_config),
            )
            self._benchmark_runs.add(run)
            job.run_ids.append(run.id)
            self._schedule_autonomous_run(
                run,
                concurrency=int(orchestrator["n_concurrent_trials"]),
                max_attempts=1 + int(orchestrator["n_attempts"]),
            )
        self._jobs.add(job)
        return job

    def job_runs(self, job: BenchmarkJobRecord, now_ms: int) -> list[BenchmarkRunRecord]:
        """The job's benchmark runs that exist at ``now_ms`` (none while the job is queued)."""
        runs = [self._benchmark_runs.by_id[run_id] for run_id in job.run_ids]
        return [run for run in runs if run.created_ms <= now_ms]

    def job_state(self, job: BenchmarkJobRecord, now_ms: int) -> str:
        if job.forced_end_ms <= now_ms:
            return job.forced_state
        if now_ms < job.start_ms:
            return "queued"
        if job.harbor_failure_ms <= now_ms:
            return "failed"
        ends = [self.benchmark_run_end(self._benchmark_runs.by_id[run_id]) for run_id in job.run_ids]
        if ends and all(end is not None and end[0] <= now_ms for end in ends):
            return "failed" if any(end is not None and end[1] == "failed" for end in ends) else "completed"
        return "running"

    def job_failure_reason(self, job: BenchmarkJobRecord, now_ms: int) -> str | None:
        if self.job_state(job, now_ms) != "failed":
            return None
        if job.failure_reason:
            return job.failure_reason
        failed = [r.id for r in self.job_runs(job, now_ms) if self.benchmark_run_state(r, now_ms) == "failed"]
        return f"benchmark run(s) failed: {', '.join(failed)}" if failed else None

    def force_job_state(
        self, now_ms: int, job_id: str, state: str, failure_reason: str | None = None
    ) -> BenchmarkJobRecord:
        """Test hook: end a job now as ``failed``, ``cancelled``, ``timeout`` or ``completed``."""
        job = self.job(job_id)
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
            scenario = self.scenario(scenario_id)
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
            predicates.append(lambda j: _search_matches(search, j.id, j.name))
        return self._page(self._jobs, now_ms, page, predicates)

    # ------------------------------------------------------------------------------------- inspection

    def scenario_runs_of(self, run_id: str, now_ms: int) -> list[ScenarioRunRecord]:
        """The started scenario runs of a benchmark run, oldest first (for tests and the control API)."""
        return self.benchmark_run(run_id, now_ms).runs.visible(now_ms)
