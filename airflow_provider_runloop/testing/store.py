"""The emulator's records by resource: id allocation, lookups by id, and listings (pagination).

:class:`RecordStore` is the one place that holds every benchmark, scenario, benchmark run, scenario run
and job of an emulator. The parts of :class:`~airflow_provider_runloop.testing.state.EmulatorState` share
one store; they decide what changes, the store only finds and pages. Listings follow the API's
pagination (``docs/emulator.md``): newest first, ``starting_after`` must name a known id,
``total_count`` counts the whole filtered set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.ids import IdFactory
from airflow_provider_runloop.testing.records import (
    BenchmarkJobRecord,
    BenchmarkRecord,
    BenchmarkRunRecord,
    Page,
    ScenarioRecord,
    ScenarioRunRecord,
    TimeOrdered,
)
from airflow_provider_runloop.testing.settings import EmulatorSettings

__all__ = ["Collection", "PageRequest", "RecordStore", "search_matches"]

_RecordT = TypeVar("_RecordT", BenchmarkRecord, ScenarioRecord, BenchmarkRunRecord, ScenarioRunRecord)


@dataclass(frozen=True)
class PageRequest:
    """Validated pagination parameters (unverified choices 1-5 in ``docs/emulator.md``)."""

    limit: int = 20
    starting_after: str | None = None
    include_total_count: bool = True


@dataclass
class Collection:
    """The records of one resource: by id, and in creation order for listings."""

    by_id: dict[str, Any] = field(default_factory=dict)
    ordered: TimeOrdered[Any] = field(default_factory=TimeOrdered)

    def add(self, record: Any) -> None:
        self.by_id[record.id] = record
        self.ordered.add(record)


def search_matches(search: str | None, record_id: str, name: str | None) -> bool:
    """The ``search`` filter of the list endpoints: the exact id, or a case-insensitive part of the name."""
    if not search:
        return True
    return record_id == search or (name is not None and search.lower() in name.lower())


def _combine(predicates: Sequence[Callable[[_RecordT], bool]]) -> Callable[[_RecordT], bool] | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda record: all(predicate(record) for predicate in predicates)


class RecordStore:
    """Every record of one emulator, the ids it hands out, and the lookups and pages over them.

    :param seed: the seed of the ids.
    :param settings: the emulator's live settings (``max_page_size`` caps every page).
    """

    def __init__(self, seed: int, settings: EmulatorSettings | None = None) -> None:
        self.ids = IdFactory(seed)
        self.settings = settings if settings is not None else EmulatorSettings()
        self.benchmarks = Collection()
        self.scenarios = Collection()
        self.benchmark_runs = Collection()
        self.scenario_runs = Collection()
        self.jobs = Collection()

    # ----------------------------------------------------------------------------------------- lookups

    def benchmark(self, benchmark_id: str) -> BenchmarkRecord:
        record: BenchmarkRecord | None = self.benchmarks.by_id.get(benchmark_id)
        if record is None:
            raise ApiError.not_found("Benchmark", benchmark_id)
        return record

    def scenario(self, scenario_id: str) -> ScenarioRecord:
        record: ScenarioRecord | None = self.scenarios.by_id.get(scenario_id)
        if record is None:
            raise ApiError.not_found("Scenario", scenario_id)
        return record

    def benchmark_run(self, run_id: str, now_ms: int) -> BenchmarkRunRecord:
        record: BenchmarkRunRecord | None = self.benchmark_runs.by_id.get(run_id)
        if record is None or record.created_ms > now_ms:  # a job's run exists once the job starts it
            raise ApiError.not_found("BenchmarkRun", run_id)
        return record

    def scenario_run(self, run_id: str, now_ms: int) -> ScenarioRunRecord:
        record: ScenarioRunRecord | None = self.scenario_runs.by_id.get(run_id)
        if record is None or record.created_ms > now_ms:  # scripted runs exist once they start
            raise ApiError.not_found("ScenarioRun", run_id)
        return record

    def job(self, job_id: str) -> BenchmarkJobRecord:
        record: BenchmarkJobRecord | None = self.jobs.by_id.get(job_id)
        if record is None:
            raise ApiError.not_found("BenchmarkJob", job_id)
        return record

    # ---------------------------------------------------------------------------------------- listings

    def _cursor(self, collection: Collection, page: PageRequest) -> tuple[int, str] | None:
        if page.starting_after is None:
            return None
        record = collection.by_id.get(page.starting_after)
        if record is None:
            raise ApiError.bad_request(f"starting_after {page.starting_after!r} is not a known id")
        return (record.created_ms, record.id)

    def page(
        self,
        collection: Collection,
        now_ms: int,
        page: PageRequest,
        predicates: Sequence[Callable[[Any], bool]],
        *,
        index: TimeOrdered[Any] | None = None,
        count_matches: Callable[[], int] | None = None,
    ) -> Page[Any]:
        """One page of ``collection`` (or of ``index``, a subset of it) matching every predicate."""
        cap = self.settings.max_page_size
        return (collection.ordered if index is None else index).page(
            now_ms,
            limit=page.limit if cap is None else min(page.limit, cap),
            after=self._cursor(collection, page),
            predicate=_combine(predicates),
            include_total_count=page.include_total_count,
            count_matches=count_matches,
        )
