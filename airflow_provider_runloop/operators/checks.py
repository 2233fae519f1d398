"""RunloopBenchmarkRunCheckOperator: a score gate on a finished benchmark run.

Waits for the run as the sensor does (on the worker, or deferred to ``RunloopBenchmarkRunTrigger``), then
checks thresholds and regressions against a baseline run. The rules are pure logic in
:mod:`airflow_provider_runloop.progress.gates`; this module fetches what they need, each run listed once,
and wires the outcome to Airflow (XCom, the log, the dashboard link).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_runloop.arguments import (
    check_flag,
    check_poll_interval,
    check_text,
    check_when_known,
)
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.exceptions import RunloopCheckFailedError, RunloopResultsNotReadyError
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.links import RunloopBenchmarkRunLink, benchmark_run_url
from airflow_provider_runloop.models import BenchmarkRunState, BenchmarkRunView
from airflow_provider_runloop.operators.lifecycle import DEFAULT_WAIT_TIMEOUT
from airflow_provider_runloop.operators.request_shapes import check_seconds
from airflow_provider_runloop.progress import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    BenchmarkRunVerdict,
    GateMetrics,
    GateOutcome,
    GateThresholds,
    ScenarioRunTally,
    evaluate_gate,
    find_regressed_scenarios,
    judge,
    known_benchmark_run_state,
    parse_tolerances,
)
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger
from airflow_provider_runloop.waiting import (
    ProgressLog,
    RunWait,
    WaitPolicy,
    WaitPolicyOptions,
    deferral_timeout,
    finish_run_wait,
    verdict_from_event,
)

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

__all__ = ["BASELINE_SOURCES", "RunloopBenchmarkRunCheckOperator"]

BASELINE_SOURCES: Final = ("id", "metadata", "previous_xcom")
"""The outcome's ``baseline_source``: how the baseline run was named."""


class _CheckFailed(RunloopCheckFailedError, AirflowFailException):
    """:class:`~airflow_provider_runloop.exceptions.RunloopCheckFailedError`, and to Airflow an
    ``AirflowFailException``: the task fails without retries (the same run fails the same checks)."""


@dataclass(frozen=True)
class _Reading:
    """One listing of a run: the run (fetched first), its scenario runs' tally and the verdict on both."""

    run: BenchmarkRunView
    tally: ScenarioRunTally
    verdict: BenchmarkRunVerdict


@dataclass(frozen=True)
class _Baseline:
    source: str
    benchmark_run_id: str
    metrics: GateMetrics | None = None  # None: read from the baseline's listing
    reading: _Reading | None = None


class RunloopBenchmarkRunCheckOperator(WaitPolicyOptions, BaseOperator):
    """Check a benchmark run once it is done: score thresholds, and regressions against a baseline run.

    Waits first, like ``RunloopBenchmarkRunSensor`` (the same completion rule and options): polling on
    the worker every ``check_interval``, or with ``deferrable=True`` in the triggerer
    (``RunloopBenchmarkRunTrigger``), then checks in ``execute_complete``; the rules and the outcome are
    the same in both. A run that failed or was canceled fails the task (``RunloopBenchmarkRunFailedError``):
    there is nothing to gate. Scenario failures are the gate's business (``max_failed_scenarios``,
    regressed scenarios), so ``fail_on_scenario_failure`` is off by default here.

    When any rule breaks, the task fails with ``RunloopCheckFailedError`` (not retried: to Airflow it is
    an ``AirflowFailException``) and a table of every rule. The XCom value is the outcome (see
    ``docs/checks.md``): ``passed``, the run ids, ``rows``, ``regressed_scenarios`` and ``metrics``, the
    numbers a later run needs of this one as its baseline. It is also kept as ``self.outcome``.

    Each run is listed once: the current run's summary and its per-scenario states come from the same
    listing, and the baseline run is listed at most once. A run already over when the task starts is
    read with one listing and no wait.

    :param benchmark_run_id: the run to check (templated).
    :param runloop_conn_id: the Runloop connection (templated).
    :param min_runloop_score: the least Runloop run score (the summary's ``benchmark_score``); a run
        without a score fails this rule.
    :param min_scoring_function_means: scoring function name -> the least mean score; a function the run
        does not have fails, named.
    :param max_failed_scenarios: the most scenarios whose latest run failed, timed out or was canceled.
    :param max_failed_fraction: the same as a fraction (0 to 1) of the run's scenarios (the expected ones
        when known, else the started ones).
    :param baseline_benchmark_run_id: compare with this run (templated).
    :param baseline_from_metadata: compare with the latest earlier ``completed`` run of the same
        benchmark whose metadata has the same values for these keys as this run's (e.g. ``["agent"]``).
    :param baseline_from_previous_xcom: compare with the run this task checked in its last successful
        DAG run (its XCom's ``metrics``). At most one of the three baseline options may be given.
    :param fail_without_baseline: when a baseline is asked for and none is found, fail; by default the
        check passes on the thresholds alone and logs a warning (the first night of a nightly gate).
    :param tolerances: metric -> the drop from the baseline allowed: a number (absolute, ``0.02``) or a
        percentage of the baseline's value (``"5%"``). Metrics: ``runloop_score``, ``mean_score``,
        ``scoring_function:<name>``.
    :param default_tolerance: the tolerance of the metrics not in ``tolerances`` (default ``0.0``: any
        drop fails).
    :param check_scenario_regressions: with a baseline, fail when a scenario that passed in the baseline
        (latest run ``completed``) fails now (latest run failed, timed out or canceled).
    :param expected_scenario_count: how many scenarios the run should have; default: the benchmark's.
    :param accept_scored: count ``scored`` scenario runs as finished.
    :param fail_on_scenario_failure: fail as the sensor does when scenarios failed, before any check.
    :param max_consecutive_poll_failures: failed polls in a row the wait tolerates (as the sensor).
    :param failure_settle_seconds: how long a scenario failure in an open run must hold (as the sensor).
    :param check_interval: seconds (or a ``timedelta``) between polls while waiting.
    :param timeout: how long to wait for the run to be done (default 7 days); then the try fails with
        ``RunloopResultsNotReadyError`` and a retry waits again.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :raises ValueError: at DAG parse time, naming the option, for a value that cannot work (a templated
        id is checked after rendering).
    """

    template_fields: Sequence[str] = ("benchmark_run_id", "baseline_benchmark_run_id", "runloop_conn_id")
    operator_extra_links = (RunloopBenchmarkRunLink(),)
    ui_color = "#fdf3e1"

    def __init__(
        self,
        *,
        benchmark_run_id: str,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        min_runloop_score: float | None = None,
        min_scoring_function_means: dict[str, float] | None = None,
        max_failed_scenarios: int | None = None,
        max_failed_fraction: float | None = None,
        baseline_benchmark_run_id: str | None = None,
        baseline_from_metadata: list[str] | None = None,
        baseline_from_previous_xcom: bool = False,
        fail_without_baseline: bool = False,
        tolerances: dict[str, float | str] | None = None,
        default_tolerance: float | str = 0.0,
        check_scenario_regressions: bool = True,
        expected_scenario_count: int | None = None,
        accept_scored: bool = False,
        fail_on_scenario_failure: bool = False,
        max_consecutive_poll_failures: int = 5,
        failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS,
        check_interval: float | timedelta = 30.0,
        timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_when_known("benchmark_run_id", benchmark_run_id, validate_id)
        if baseline_benchmark_run_id is not None:
            check_when_known("baseline_benchmark_run_id", baseline_benchmark_run_id, validate_id)
        self.benchmark_run_id = benchmark_run_id
        self.runloop_conn_id = check_text("runloop_conn_id", runloop_conn_id)
        self.thresholds = GateThresholds(
            min_runloop_score, min_scoring_function_means or {}, max_failed_scenarios, max_failed_fraction
        )
        self.min_runloop_score = min_runloop_score
        self.min_scoring_function_means = min_scoring_function_means
        self.max_failed_scenarios = max_failed_scenarios
        self.max_failed_fraction = max_failed_fraction
        self.baseline_benchmark_run_id = baseline_benchmark_run_id
        self.baseline_from_metadata = _check_metadata_keys(baseline_from_metadata)
        self.baseline_from_previous_xcom = check_flag(
            "baseline_from_previous_xcom", baseline_from_previous_xcom
        )
        named = [
            name
            for name, given in (
                ("baseline_benchmark_run_id", baseline_benchmark_run_id is not None),
                ("baseline_from_metadata", baseline_from_metadata is not None),
                ("baseline_from_previous_xcom", self.baseline_from_previous_xcom),
            )
            if given
        ]
        if len(named) > 1:
            raise ValueError(f"Name the baseline one way, not {len(named)}: {' and '.join(named)} were given")
        self.fail_without_baseline = check_flag("fail_without_baseline", fail_without_baseline)
        self.tolerances = tolerances
        self.default_tolerance = default_tolerance
        self._tolerances, self._default_tolerance = parse_tolerances(tolerances, default_tolerance)
        self.check_scenario_regressions = check_flag("check_scenario_regressions", check_scenario_regressions)
        self.policy = WaitPolicy(
            expected_scenario_count, accept_scored, fail_on_scenario_failure, max_consecutive_poll_failures,
            failure_settle_seconds,
        )  # fmt: skip
        self.check_interval = check_poll_interval("check_interval", check_interval)
        self.timeout = check_seconds("timeout", timeout)
        self.deferrable = check_flag("deferrable", deferrable)
        self.outcome: dict[str, Any] | None = None
        """The outcome of the last check (the XCom value), also when it failed; ``None`` before."""
        self._lineage_base_url: str | None = None  # for get_openlineage_facets_on_complete
        self._link_stored = False
        self._progress = ProgressLog()

    @cached_property
    def hook(self) -> RunloopHook:
        """The hook for ``runloop_conn_id`` (built on first use, never at DAG parse time)."""
        return RunloopHook(runloop_conn_id=self.runloop_conn_id)

    @property
    def _baseline_mode(self) -> str | None:
        if self.baseline_benchmark_run_id is not None:
            return "id"
        if self.baseline_from_metadata is not None:
            return "metadata"
        return "previous_xcom" if self.baseline_from_previous_xcom else None

    # -- execution -----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        run_id = validate_id("benchmark_run_id", self.benchmark_run_id)
        if self.baseline_benchmark_run_id is not None:
            validate_id("baseline_benchmark_run_id", self.baseline_benchmark_run_id)
            if self.baseline_benchmark_run_id == run_id:
                raise ValueError(f"baseline_benchmark_run_id is the run being checked ({run_id})")
        try:
            reading = self._read_if_over(context, run_id)
            if reading is not None:
                return self._check(context, reading.verdict, reading)
            return self._check(context, self._wait(context, run_id), None)
        finally:
            self.hook.close()

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: check the run, or raise what the event says."""
        try:
            verdict = verdict_from_event(event, timed_out=self._timed_out)
            self.log.info("%s", verdict.message)
            return self._check(context, verdict, None)
        finally:
            self.hook.close()

    def _wants_scenarios(self) -> bool:
        return self.check_scenario_regressions and self._baseline_mode is not None

    def _read_if_over(self, context: Context, run_id: str) -> _Reading | None:
        """When the scenarios are compared and the run is already over: its one listing, judged."""
        if not self._wants_scenarios():
            return None  # the wait's own final listing has every number the rules need
        run = self.hook.get_benchmark_run(run_id)
        self._store_link(context, run.id, run.benchmark_id)
        if known_benchmark_run_state(run) is BenchmarkRunState.RUNNING:
            return None
        reading = self._read(run_id, run=run)
        if not reading.verdict.done:
            return None  # scenario runs still active: wait for them
        self.log.info("%s", reading.verdict.message)
        return reading

    def _wait(self, context: Context, run_id: str) -> BenchmarkRunVerdict:
        """The sensor's steps (``RunWait``) until the run is done; defers when ``deferrable``."""
        wait = RunWait(self.policy)
        started_at = getattr(context.get("ti"), "start_date", None)
        deadline = (started_at.timestamp() if started_at is not None else time.time()) + self.timeout
        verdict = self._poll(context, wait, run_id)
        if self.deferrable and (verdict is None or not verdict.done):
            if verdict is not None and self.policy.expected_scenario_count is None:
                # Read here, on the worker, once: the trigger gets the number, never the ids.
                wait.benchmark_scenario_count = self.hook.get_benchmark_scenario_count(
                    verdict.summary.benchmark_id
                )
            trigger = RunloopBenchmarkRunTrigger(
                benchmark_run_id=run_id,
                deadline=deadline,
                runloop_conn_id=self.runloop_conn_id,
                poll_interval=self.check_interval,
                **wait.trigger_kwargs(),
            )
            self.defer(trigger=trigger, method_name="execute_complete", timeout=deferral_timeout(deadline))
        while verdict is None or not verdict.done:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise self._timed_out(f"Benchmark run {run_id} was not done within the check's timeout")
            time.sleep(min(self.check_interval, remaining))
            verdict = self._poll(context, wait, run_id)
        return verdict

    def _poll(self, context: Context, wait: RunWait, run_id: str) -> BenchmarkRunVerdict | None:
        verdict = wait.poll(self.hook.check_benchmark_run, run_id, self.log)
        if verdict is None:
            return None
        self._store_link(context, run_id, verdict.summary.benchmark_id)
        if verdict.done:
            self.log.info("%s", verdict.message)
        else:
            self._progress.log(
                self.log, verdict.message, running_since_ms=verdict.summary.benchmark_run_start_time_ms
            )
        return verdict

    def _store_link(self, context: Context, run_id: str, benchmark_id: str | None) -> None:
        if self._link_stored:
            return
        url = benchmark_run_url(self.hook.get_conn().base_url, run_id, benchmark_id)
        RunloopBenchmarkRunLink.persist(context, url)
        self._link_stored = True
        self.log.info("Checking benchmark run %s; on the Runloop dashboard: %s", run_id, url)

    def _timed_out(self, message: str) -> BaseException:
        return RunloopResultsNotReadyError(
            f"{message}; nothing was checked. A retry of this task waits again; or raise timeout"
        )

    def _read(self, run_id: str, *, run: BenchmarkRunView | None = None, baseline: bool = False) -> _Reading:
        """One listing of a run, judged: the run is fetched before the listing, as ``judge`` requires."""
        hook = self.hook
        run = hook.get_benchmark_run(run_id) if run is None else run
        tally = ScenarioRunTally()
        tally.extend(hook.list_scenario_runs(run_id))
        if baseline:
            expected_count, expected_ids = None, None
        else:
            expected_count = self.policy.expected_scenario_count
            expected_ids = None if expected_count is not None else hook.get_expected_scenario_ids(run)
        verdict = judge(
            run,
            tally,
            expected_count=expected_count,
            expected_scenario_ids=expected_ids,
            accept_scored=self.policy.accept_scored,
            fail_on_scenario_failure=False if baseline else self.policy.fail_on_scenario_failure,
        )
        return _Reading(run, tally, verdict)

    def _check(
        self, context: Context, verdict: BenchmarkRunVerdict, reading: _Reading | None
    ) -> dict[str, Any]:
        """Apply the rules to the finished run (``verdict``; ``reading``: its listing, if it was read)."""
        finish_run_wait(verdict)  # a failed or canceled run (or scenarios, if asked) fails here
        run_id = verdict.summary.benchmark_run_id
        baseline, note = self._find_baseline(context, run_id, reading)
        regressed: dict[str, Any] = {}
        if baseline is not None and self.check_scenario_regressions:
            if reading is None:
                # The scenarios' states are needed: the summary comes from this same listing.
                reading = self._read(run_id)
                finish_run_wait(reading.verdict)
                if not reading.verdict.done:
                    raise RunloopResultsNotReadyError(
                        f"Benchmark run {run_id} changed after it was done ({reading.verdict.message}); "
                        "nothing was checked. Retry the task."
                    )
                verdict = reading.verdict
            baseline_reading = baseline.reading or self._read(baseline.benchmark_run_id, baseline=True)
            found, count = find_regressed_scenarios(baseline_reading.tally, reading.tally)
            regressed = {"regressed_scenarios": found, "regressed_scenario_count": count}
        baseline_metrics = None
        if baseline is not None:
            baseline_metrics = baseline.metrics
            if baseline_metrics is None:
                assert baseline.reading is not None
                baseline_metrics = GateMetrics.from_summary(baseline.reading.verdict.summary)
        outcome = evaluate_gate(
            GateMetrics.from_summary(verdict.summary),
            thresholds=self.thresholds,
            baseline=baseline_metrics,
            baseline_source=baseline.source if baseline is not None else None,
            baseline_note=note,
            fail_without_baseline=self.fail_without_baseline,
            tolerances=self._tolerances,
            default_tolerance=self._default_tolerance,
            **regressed,
        )
        return self._report(outcome)

    def _report(self, outcome: GateOutcome) -> dict[str, Any]:
        self.outcome = outcome.to_dict()
        self._lineage_base_url = self.hook.get_conn().base_url
        if not outcome.passed:
            raise _CheckFailed(outcome.message())
        if outcome.baseline_note is not None:
            self.log.warning(
                "%s The check passes on its thresholds alone (fail_without_baseline=False).",
                outcome.baseline_note,
            )
        self.log.info("%s", outcome.message())
        return self.outcome

    # -- the baseline --------------------------------------------------------------------------------

    def _find_baseline(
        self, context: Context, run_id: str, reading: _Reading | None
    ) -> tuple[_Baseline | None, str | None]:
        """The baseline (read once, when its listing is needed), or ``None`` and why there is none."""
        mode = self._baseline_mode
        if mode is None:
            return None, None
        if mode == "id":
            assert self.baseline_benchmark_run_id is not None
            baseline_id = self.baseline_benchmark_run_id
        elif mode == "metadata":
            current = reading.run if reading is not None else self.hook.get_benchmark_run(run_id)
            found, note = self._baseline_by_metadata(current)
            if found is None:
                return None, note
            baseline_id = found
        else:
            return self._baseline_from_xcom(context, run_id)
        baseline_reading = self._read(baseline_id, baseline=True)
        if not baseline_reading.verdict.done:
            raise RunloopResultsNotReadyError(
                f"The baseline benchmark run {baseline_id} is not done: {baseline_reading.verdict.message}"
            )
        return _Baseline(mode, baseline_id, reading=baseline_reading), None

    def _baseline_by_metadata(self, current: BenchmarkRunView) -> tuple[str | None, str | None]:
        keys = self.baseline_from_metadata or []
        if current.benchmark_id is None:
            return None, f"No baseline: benchmark run {current.id} belongs to no benchmark."
        missing = [key for key in keys if key not in current.metadata]
        if missing:
            return None, (
                f"No baseline: benchmark run {current.id} has no metadata {', '.join(map(repr, missing))} "
                "(baseline_from_metadata)."
            )
        if current.start_time_ms is None:
            return None, f"No baseline: benchmark run {current.id} has no start time to compare with."
        wanted = {key: current.metadata[key] for key in keys}
        best: BenchmarkRunView | None = None
        for run in self.hook.list_benchmark_runs(benchmark_id=current.benchmark_id, state="completed"):
            if (
                run.id == current.id
                or run.start_time_ms is None
                or run.start_time_ms >= current.start_time_ms
            ):
                continue
            if any(run.metadata.get(key) != value for key, value in wanted.items()):
                continue
            if best is None or (run.start_time_ms, run.id) > (best.start_time_ms or 0, best.id):
                best = run
        if best is None:
            shown = ", ".join(f"{key}={value!r}" for key, value in wanted.items())
            return None, (
                f"No baseline: no completed benchmark run of {current.benchmark_id} started before "
                f"{current.id} with metadata {shown}."
            )
        return best.id, None

    def _baseline_from_xcom(self, context: Context, run_id: str) -> tuple[_Baseline | None, str | None]:
        ti = context["ti"]
        previous = ti.xcom_pull(
            task_ids=self.task_id,
            include_prior_dates=True,
            map_indexes=getattr(ti, "map_index", -1),
            default=None,
        )
        if previous is None:
            return None, f"No baseline: task {self.task_id!r} has no XCom from an earlier successful run."
        try:
            metrics = GateMetrics.from_dict(previous.get("metrics") if isinstance(previous, dict) else None)
        except ValueError as exc:
            return None, f"No baseline: the earlier XCom of task {self.task_id!r} cannot be read: {exc}."
        if metrics.benchmark_run_id == run_id:
            return None, f"No baseline: the earlier XCom of task {self.task_id!r} is of this same run."
        return _Baseline("previous_xcom", metrics.benchmark_run_id, metrics=metrics), None

    # -- OpenLineage (the openlineage extra) ------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The checked benchmark run as the input, its rules as ``dataQualityAssertions`` (one assertion
        per row of the outcome, a success when it passed), and the baseline run, if any, as a second
        input (``docs/lineage.md``). Needs the ``openlineage`` extra."""
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset

        from airflow_provider_runloop import lineage

        outcome, base_url = self.outcome, self._lineage_base_url
        if outcome is None or base_url is None:
            return OperatorLineage()
        checked = lineage.benchmark_run_dataset(base_url, outcome["benchmark_run_id"])
        inputs = [
            InputDataset(
                namespace=checked.namespace,
                name=checked.name,
                facets=checked.facets,
                inputFacets={"dataQualityAssertions": lineage.assertion_facets(outcome["rows"])},
            )
        ]
        if outcome["baseline_benchmark_run_id"]:
            inputs.append(lineage.benchmark_run_dataset(base_url, outcome["baseline_benchmark_run_id"]))
        return OperatorLineage(inputs=inputs)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """As on completion: a failed check's assertions say which rules broke."""
        return self.get_openlineage_facets_on_complete(task_instance)


def _check_metadata_keys(keys: object) -> list[str] | None:
    if keys is None:
        return None
    if isinstance(keys, str) or not isinstance(keys, (list, tuple)) or not keys:
        raise ValueError("baseline_from_metadata must be a non-empty list of metadata keys, e.g. ['agent']")
    for key in keys:
        if not isinstance(key, str) or not key.strip():
            raise ValueError("baseline_from_metadata must hold metadata keys (non-empty strings)")
    return list(keys)
