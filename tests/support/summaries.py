"""One factory for the benchmark-run summary that tasks see (XCom, trigger events): no literal per file.

Built through :class:`~airflow_provider_runloop.progress.BenchmarkRunSummary` itself, so the keys are always
the ones ``to_dict`` writes: a field added to the summary shows up here (or fails here) once, not in every
test that carries a copy.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_runloop.progress import BenchmarkRunSummary

__all__ = ["make_summary"]

# A run that is done and a success: two scenarios, both completed, each scoring 0.5 on ``tests``.
_DEFAULTS: dict[str, Any] = {
    "benchmark_run_id": "bmr_1",
    "benchmark_run_state": "completed",
    "benchmark_id": None,
    "done": True,
    "success": True,
    "message": "bmr_1: 2/2 scenarios finished (completed 2)",
    "exact": True,
    "accept_scored": False,
    "expected_scenarios": 2,
    "started_scenarios": 2,
    "finished_scenarios": 2,
    "total_scenario_runs": 2,
    "state_counts": {"completed": 2},
    "mean_score": 0.5,
    "scored_scenarios": 2,
    "scoring_function_mean_scores": {"tests": 0.5},
    "scoring_function_mean_scores_truncated": False,
    "failed_scenario_count": 0,
    "failed_scenario_run_ids": (),
    "failed_scenario_run_ids_truncated": False,
    "missing_scenario_count": 0,
    "missing_scenario_ids": (),
    "missing_scenario_ids_truncated": False,
    "benchmark_score": 0.5,
}


def make_summary(**overrides: Any) -> dict[str, Any]:
    """A summary dict (``BenchmarkRunSummary.to_dict()``) of a finished, successful run, with ``overrides``.

    An override that is not a summary field is a ``TypeError``, so a test cannot set a key the summary
    does not have.
    """
    return BenchmarkRunSummary(**{**_DEFAULTS, **overrides}).to_dict()
