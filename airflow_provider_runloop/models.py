"""Pydantic views of the Runloop benchmark API responses, and the state enums.

The views are deliberately lenient, like the official SDK: unknown fields are ignored and a state
string the provider does not know is kept as a plain ``str`` (not rejected while parsing), so that
``progress`` can fail closed with an error that names it. Fields the provider does not need are
optional even where the API marks them required.

The list envelopes are the exception: a page's items and ``has_more`` are required, as the
published spec marks them in every list view, because a default there would read a malformed page
as an empty one, and a listing would end silently short.
"""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "ApiView",
    "BenchmarkJobList",
    "BenchmarkJobState",
    "BenchmarkJobView",
    "BenchmarkList",
    "BenchmarkOutcome",
    "BenchmarkRunList",
    "BenchmarkRunState",
    "BenchmarkRunView",
    "BenchmarkView",
    "InProgressRun",
    "JobSpecView",
    "ListView",
    "ScenarioOutcome",
    "ScenarioRunList",
    "ScenarioRunState",
    "ScenarioRunView",
    "ScoringContractResult",
    "ScoringFunctionResult",
]


class BenchmarkRunState(str, enum.Enum):
    """States of a benchmark run."""

    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"
    FAILED = "failed"


class ScenarioRunState(str, enum.Enum):
    """States of a scenario run: ``running → scoring → scored → completed``, or an end state."""

    RUNNING = "running"
    SCORING = "scoring"
    SCORED = "scored"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"


class BenchmarkJobState(str, enum.Enum):
    """States of a benchmark job (note the API's spelling ``cancelled`` for jobs)."""

    INITIALIZING = "initializing"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


# A known state parses to its enum member; an unknown one stays a str (tried left to right).
RunState = Annotated[BenchmarkRunState | str, Field(union_mode="left_to_right")]
ScenarioState = Annotated[ScenarioRunState | str, Field(union_mode="left_to_right")]
JobState = Annotated[BenchmarkJobState | str, Field(union_mode="left_to_right")]


# What a number from the server may be (docs/results.md, "Scores and numbers"). A score is a finite
# number from 0 to 1: the API says so of the total, and a scoring function's score is a share of it.
# NaN or an infinity would make every mean NaN and every exported record invalid JSON, so a body with
# one is refused here, naming the field, instead of being averaged and written out.
Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# Epoch milliseconds from 1970 to the end of year 9999, the range a datetime (and so an ISO time in an
# exported record) can hold; a duration fits the int64 an exported Parquet column has.
EpochMs = Annotated[int, Field(strict=True, ge=0, le=253_402_300_799_999)]
DurationMs = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]
# A count is a whole JSON number, not 2.5, "3" or true, and never negative.
Count = Annotated[int, Field(strict=True, ge=0)]


def _none_as_empty(value: object) -> object:
    return [] if value is None else value


# A list the API may send as ``null`` (a queued job has no runs yet): read as empty.
_ItemT = TypeVar("_ItemT")
NullableList = Annotated[list[_ItemT], BeforeValidator(_none_as_empty)]


class ApiView(BaseModel):
    """Base of every response view: extra fields ignored, instances immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ScoringFunctionResult(ApiView):
    """The result of one scoring function on a scenario run."""

    scoring_function_name: str
    score: Score
    state: str = "unknown"
    output: str = ""


class ScoringContractResult(ApiView):
    """All scoring functions' results for one scenario run; ``score`` is the total (0 to 1)."""

    score: Score
    scoring_function_results: list[ScoringFunctionResult] = Field(default_factory=list)


class ScenarioRunView(ApiView):
    """One run of one scenario, usually attached to a benchmark run."""

    id: str
    scenario_id: str
    state: ScenarioState
    devbox_id: str | None = None
    name: str | None = None
    benchmark_run_id: str | None = None
    scoring_contract_result: ScoringContractResult | None = None
    start_time_ms: EpochMs | None = None
    duration_ms: DurationMs | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    purpose: str | None = None
    environment_variables: dict[str, str] | None = None
    secrets_provided: dict[str, str] | None = None


class BenchmarkRunView(ApiView):
    """A benchmark run: a set of scenario runs under one benchmark (or one benchmark job)."""

    id: str
    state: RunState
    benchmark_id: str | None = None
    name: str | None = None
    start_time_ms: EpochMs | None = None
    duration_ms: DurationMs | None = None
    score: Score | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    purpose: str | None = None
    environment_variables: dict[str, str] | None = None
    secrets_provided: dict[str, str] | None = None


class BenchmarkView(ApiView):
    """A benchmark definition. The API spells the scenario list ``scenarioIds`` in responses."""

    id: str
    name: str
    scenario_ids: list[str] = Field(default_factory=list, alias="scenarioIds")
    status: str = "active"
    metadata: dict[str, str] = Field(default_factory=dict)
    is_public: bool | None = None
    description: str | None = None
    attribution: str | None = None
    required_environment_variables: list[str] = Field(default_factory=list)
    required_secret_names: list[str] = Field(default_factory=list)


class ScenarioOutcome(ApiView):
    """A job's outcome for one scenario (states are upper case: ``COMPLETED``, ``FAILED``, ...)."""

    scenario_definition_id: str
    scenario_name: str = ""
    state: str
    scenario_run_id: str | None = None
    score: Score | None = None
    duration_ms: DurationMs | None = None


class BenchmarkOutcome(ApiView):
    """A job's outcome for one benchmark run (one per agent config)."""

    benchmark_run_id: str
    agent_name: str = ""
    model_name: str | None = None
    n_completed: Count = 0
    n_failed: Count = 0
    n_timeout: Count = 0
    average_score: Score | None = None
    duration_ms: DurationMs | None = None
    scenario_outcomes: NullableList[ScenarioOutcome] = Field(default_factory=list)


class InProgressRun(ApiView):
    """A benchmark run a job has started and not finished."""

    benchmark_run_id: str
    state: RunState
    start_time_ms: EpochMs | None = None
    duration_ms: DurationMs | None = None
    agent_config: dict[str, object] | None = None


class JobSpecView(ApiView):
    """The resolved specification of a benchmark job."""

    scenario_ids: NullableList[str] = Field(default_factory=list)
    agent_configs: NullableList[dict[str, object]] = Field(default_factory=list)
    orchestrator_config: dict[str, object] | None = None


class BenchmarkJobView(ApiView):
    """A benchmark job: Runloop orchestrates one benchmark run per agent config."""

    id: str
    name: str = ""
    state: JobState
    create_time_ms: EpochMs | None = None
    failure_reason: str | None = None
    job_source: dict[str, object] | None = None
    job_spec: JobSpecView | None = None
    in_progress_runs: NullableList[InProgressRun] = Field(default_factory=list)
    benchmark_outcomes: NullableList[BenchmarkOutcome] = Field(default_factory=list)


ItemT = TypeVar("ItemT", bound=ApiView)


class ListView(ApiView, Generic[ItemT]):
    """A page of a cursor-paginated listing: ``{<items key>: [...], has_more, total_count?}``.

    The items key and ``has_more`` are required (the spec's list views require both): a page without
    them fails validation instead of reading as an empty last page. The official SDK tolerates a
    missing ``has_more``; this provider follows the spec and never guesses that a listing is over.
    ``total_count`` is optional (absent or ``null`` with ``include_total_count=false``);
    ``remaining_count``, which old docs show, is ignored. A ``total_count`` that is negative or not a
    whole number is an invalid response, not a count.
    """

    items_key: ClassVar[str]
    has_more: bool
    total_count: Count | None = None

    @property
    def items(self) -> list[ItemT]:
        items: list[ItemT] = getattr(self, self.items_key)
        return items


class ScenarioRunList(ListView[ScenarioRunView]):
    items_key: ClassVar[str] = "runs"
    runs: list[ScenarioRunView]


class BenchmarkRunList(ListView[BenchmarkRunView]):
    items_key: ClassVar[str] = "runs"
    runs: list[BenchmarkRunView]


class BenchmarkList(ListView[BenchmarkView]):
    items_key: ClassVar[str] = "benchmarks"
    benchmarks: list[BenchmarkView]


class BenchmarkJobList(ListView[BenchmarkJobView]):
    items_key: ClassVar[str] = "jobs"
    jobs: list[BenchmarkJobView]
