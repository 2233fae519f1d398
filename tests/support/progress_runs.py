"""Sample benchmark runs, scenario runs, tallies and summaries for the ``progress`` tests (and ``waiting``'s).

Plain factories built through the models and the rule themselves; no test here.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_runloop.models import BenchmarkRunView, ScenarioRunView
from airflow_provider_runloop.progress import (
    BenchmarkRunSummary,
    BenchmarkRunVerdict,
    ScenarioRunCounts,
    ScenarioRunTally,
    assess_counts,
    judge,
)

__all__ = [
    "ABC",
    "benchmark_run",
    "judged",
    "mixed_runs",
    "runs",
    "sample_summaries",
    "scenario_run",
    "tally_of",
]

ABC = ["scn_a", "scn_b", "scn_c"]


def benchmark_run(
    state: str, *, run_id: str = "bmr_x", score: float | None = None, duration_ms: int | None = None
) -> BenchmarkRunView:
    data: dict[str, Any] = {"id": run_id, "state": state, "metadata": {}, "start_time_ms": 1_700_000_000_000}
    if score is not None:
        data["score"] = score
    if duration_ms is not None:
        data["duration_ms"] = duration_ms
    return BenchmarkRunView.model_validate(data)


def scenario_run(
    run_id: str,
    scenario_id: str,
    state: str,
    *,
    start: int | None = None,
    score: float | None = None,
    functions: dict[str, float] | None = None,
    name: str | None = None,
) -> ScenarioRunView:
    data: dict[str, Any] = {
        "id": run_id,
        "scenario_id": scenario_id,
        "state": state,
        "devbox_id": f"dbx_{run_id}",
        "metadata": {},
        "benchmark_run_id": "bmr_x",
    }
    if start is not None:
        data["start_time_ms"] = start
    if name is not None:
        data["name"] = name
    if score is not None:
        data["scoring_contract_result"] = {
            "score": score,
            "scoring_function_results": [
                {"scoring_function_name": name, "score": value, "state": "complete", "output": ""}
                for name, value in (functions or {}).items()
            ],
        }
    return ScenarioRunView.model_validate(data)


def runs(*specs: tuple[Any, ...]) -> list[ScenarioRunView]:
    """``(scenario_id, state)`` or ``(scenario_id, state, start_time_ms)``; run ids are ``r<index>``."""
    return [
        scenario_run(f"r{index}", spec[0], spec[1], start=spec[2] if len(spec) > 2 else None)
        for index, spec in enumerate(specs)
    ]


def tally_of(scenario_runs: list[ScenarioRunView]) -> ScenarioRunTally:
    tally = ScenarioRunTally()
    tally.extend(scenario_runs)
    return tally


def judged(run_state: str, scenario_runs: list[ScenarioRunView], **options: Any) -> BenchmarkRunVerdict:
    return judge(benchmark_run(run_state), tally_of(scenario_runs), **options)


def mixed_runs() -> list[ScenarioRunView]:
    states = ["completed"] * 30 + ["failed"] * 2 + ["timeout"] + ["running"] * 70 + ["scoring"] * 13
    return [scenario_run(f"r{i}", f"scn_{i}", state) for i, state in enumerate(states)]


def sample_summaries() -> list[BenchmarkRunSummary]:
    scored = [
        scenario_run("r0", "scn_a", "completed", start=1, score=0.1 + 0.2, functions={"tests": 1 / 3}),
        scenario_run("r1", "scn_b", "failed", start=2),
    ]
    return [
        judge(benchmark_run("completed", score=0.15), tally_of(scored), expected_scenario_ids=ABC).summary,
        judged("running", mixed_runs(), expected_count=120).summary,
        judged("running", runs()).summary,
        assess_counts(
            benchmark_run("canceled"),
            ScenarioRunCounts(total=3, running=1, scoring=0, scored=2),
            expected_count=3,
        ).summary,
    ]
