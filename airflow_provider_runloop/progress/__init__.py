"""When is a benchmark run (or job) done, and how did it go: the domain room, with no I/O.

No HTTP, no Airflow import, no clock: the hook, the triggers, the sensor and the operators fetch from the
API and feed what they got in; these modules return verdicts. One state table, one completion rule, one
summary shape, used by every path that waits.

- :mod:`~airflow_provider_runloop.progress.states`: what each state means (scenario runs, runs, jobs).
- :mod:`~airflow_provider_runloop.progress.tally`: what a poll saw (counts, the streamed tally).
- :mod:`~airflow_provider_runloop.progress.rule`: the completion rule and its verdicts.
- :mod:`~airflow_provider_runloop.progress.summary`: the summary (XCom, events) and the progress line.
- :mod:`~airflow_provider_runloop.progress.jobs`: the benchmark job's rule.
- :mod:`~airflow_provider_runloop.progress.gates`: score gates (thresholds, regressions against a baseline).

Import from here; the submodules are the layout, not the API.
"""

from airflow_provider_runloop.progress.gates import (
    COMPARISON_SLACK,
    MAX_REGRESSED_SCENARIOS,
    METRIC_MEAN_SCORE,
    METRIC_RUNLOOP_SCORE,
    SCORING_FUNCTION_METRIC_PREFIX,
    GateMetrics,
    GateOutcome,
    GateRow,
    GateThresholds,
    RegressedScenario,
    Tolerance,
    evaluate_gate,
    find_regressed_scenarios,
    parse_tolerances,
)
from airflow_provider_runloop.progress.jobs import BenchmarkJobVerdict, judge_benchmark_job
from airflow_provider_runloop.progress.rule import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    MAX_SCORING_FUNCTIONS,
    BenchmarkRunVerdict,
    CountsOutcome,
    CountsVerdict,
    FailureHold,
    assess_counts,
    expected_scenarios_matter,
    judge,
    score_line,
    settle_failure,
)
from airflow_provider_runloop.progress.states import (
    ACTIVE_SCENARIO_STATES,
    ALIVE_JOB_STATES,
    FINISHED_JOB_STATES,
    ScenarioStateClass,
    classify_scenario_state,
    known_benchmark_run_state,
    normalise_job_state,
    scored_is_final,
    state_name,
)
from airflow_provider_runloop.progress.summary import BenchmarkRunSummary, format_progress, human_duration
from airflow_provider_runloop.progress.tally import (
    MAX_LISTED_IDS,
    ActiveRuns,
    FailedLatestRun,
    LatestRun,
    ScenarioRunCounts,
    ScenarioRunTally,
)

__all__ = [
    "ACTIVE_SCENARIO_STATES",
    "ALIVE_JOB_STATES",
    "COMPARISON_SLACK",
    "DEFAULT_FAILURE_SETTLE_SECONDS",
    "FINISHED_JOB_STATES",
    "MAX_LISTED_IDS",
    "MAX_REGRESSED_SCENARIOS",
    "MAX_SCORING_FUNCTIONS",
    "METRIC_MEAN_SCORE",
    "METRIC_RUNLOOP_SCORE",
    "SCORING_FUNCTION_METRIC_PREFIX",
    "ActiveRuns",
    "BenchmarkJobVerdict",
    "BenchmarkRunSummary",
    "BenchmarkRunVerdict",
    "CountsOutcome",
    "CountsVerdict",
    "FailedLatestRun",
    "FailureHold",
    "GateMetrics",
    "GateOutcome",
    "GateRow",
    "GateThresholds",
    "LatestRun",
    "RegressedScenario",
    "ScenarioRunCounts",
    "ScenarioRunTally",
    "ScenarioStateClass",
    "Tolerance",
    "assess_counts",
    "classify_scenario_state",
    "evaluate_gate",
    "expected_scenarios_matter",
    "find_regressed_scenarios",
    "format_progress",
    "human_duration",
    "judge",
    "judge_benchmark_job",
    "known_benchmark_run_state",
    "normalise_job_state",
    "parse_tolerances",
    "score_line",
    "scored_is_final",
    "settle_failure",
    "state_name",
]
