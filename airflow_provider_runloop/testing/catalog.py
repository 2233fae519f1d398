"""Benchmarks and scenarios: the definitions that runs are made of.

:class:`Catalog` creates, updates, archives and lists them, answers the metadata endpoints, and seeds a
benchmark of scripted scenarios. A benchmark or scenario keeps the script that plans its runs (the
emulator's default script unless one is given).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.records import BenchmarkRecord, Page, ScenarioRecord
from airflow_provider_runloop.testing.script import ScenarioScript
from airflow_provider_runloop.testing.store import PageRequest, RecordStore, search_matches

__all__ = ["Catalog"]


class Catalog:
    """The benchmarks and scenarios of one emulator, and the rules that change them.

    :param store: the emulator's records.
    :param default_script: plans the runs of benchmarks and scenarios created without a script.
    """

    def __init__(self, store: RecordStore, default_script: ScenarioScript) -> None:
        self._store = store
        self._default_script = default_script

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
            self._store.scenario(scenario_id)
        record = BenchmarkRecord(
            id=self._store.ids.new("benchmark"),
            name=name,
            created_ms=now_ms,
            scenario_ids=ids,
            metadata=dict(metadata or {}),
            script=script or self._default_script,
            attribution=attribution,
            description=description,
            required_environment_variables=(
                None if required_environment_variables is None else list(required_environment_variables)
            ),
            required_secret_names=None if required_secret_names is None else list(required_secret_names),
            is_public=is_public,
        )
        self._store.benchmarks.add(record)
        return record

    def update_benchmark(self, benchmark_id: str, changes: Mapping[str, Any]) -> BenchmarkRecord:
        """Replace the fields present in ``changes`` (null/absent keys were already dropped)."""
        record = self._store.benchmark(benchmark_id)
        if "name" in changes and not str(changes["name"]).strip():
            raise ApiError.bad_request("name must not be blank")
        if "scenario_ids" in changes:
            for scenario_id in changes["scenario_ids"]:
                self._store.scenario(scenario_id)
            changes = {**changes, "scenario_ids": list(dict.fromkeys(changes["scenario_ids"]))}
        for key, value in changes.items():
            setattr(record, key, value)
        return record

    def update_benchmark_scenarios(
        self, benchmark_id: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> BenchmarkRecord:
        record = self._store.benchmark(benchmark_id)
        for scenario_id in add:
            self._store.scenario(scenario_id)
        removed = set(remove)
        kept = [scenario_id for scenario_id in record.scenario_ids if scenario_id not in removed]
        record.scenario_ids = list(dict.fromkeys([*kept, *(s for s in add if s not in removed)]))
        return record

    def set_benchmark_archived(self, benchmark_id: str, archived: bool) -> BenchmarkRecord:
        record = self._store.benchmark(benchmark_id)
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
            predicates.append(lambda b: search_matches(search, b.id, b.name))
        return self._store.page(self._store.benchmarks, now_ms, page, predicates)

    def benchmark_definitions(
        self, now_ms: int, benchmark_id: str, page: PageRequest
    ) -> Page[ScenarioRecord]:
        member_ids = set(self._store.benchmark(benchmark_id).scenario_ids)
        predicates: list[Callable[[ScenarioRecord], bool]] = [lambda s: s.id in member_ids and not s.archived]
        return self._store.page(self._store.scenarios, now_ms, page, predicates)

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
        collection = self._store.benchmarks if resource == "benchmarks" else self._store.scenarios
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
        ordinal = len(self._store.scenarios.by_id)
        record = ScenarioRecord(
            id=self._store.ids.new("scenario"),
            name=name,
            created_ms=now_ms,
            script=script or self._default_script,
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
        self._store.scenarios.add(record)
        return record

    def update_scenario(self, scenario_id: str, changes: Mapping[str, Any]) -> ScenarioRecord:
        record = self._store.scenario(scenario_id)
        if record.archived:
            raise ApiError.bad_request(f"Scenario {scenario_id!r} is archived and cannot be updated")
        if "name" in changes and not str(changes["name"]).strip():
            raise ApiError.bad_request("name must not be blank")
        for key, value in changes.items():
            setattr(record, key, value)
        return record

    def set_scenario_archived(self, scenario_id: str, archived: bool) -> ScenarioRecord:
        record = self._store.scenario(scenario_id)
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
            benchmark = self._store.benchmarks.by_id.get(benchmark_id)
            member_ids = set(benchmark.scenario_ids) if benchmark else set()
            predicates.append(lambda s: s.id in member_ids)
        if name:
            predicates.append(lambda s: s.name == name)
        if search:
            predicates.append(lambda s: search_matches(search, s.id, s.name))
        if validation_type:
            predicates.append(lambda s: s.validation_type == validation_type)
        return self._store.page(self._store.scenarios, now_ms, page, predicates)

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
