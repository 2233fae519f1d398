"""RunloopBenchmarkResultsOperator: harvest a benchmark run's scored results.

A compact summary into XCom (for branching and alerts) and, optionally, every scenario run as a record in
a file in object storage (``file://`` out of the box, ``s3://`` with the Amazon provider). The record
schema and the writers live in ``results.py``, destinations and staging in ``storage.py``, the
completion rule in ``progress``; this module only wires them to Airflow (the hook, XCom, assets, the
dashboard link).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from airflow.sdk import Asset, BaseOperator, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException, AirflowOptionalProviderFeatureException

from airflow_provider_runloop.arguments import (
    check_count,
    check_flag,
    check_number,
    check_optional_count,
    check_text,
    check_when_known,
)
from airflow_provider_runloop.client import MAX_PAGE_SIZE, validate_id
from airflow_provider_runloop.exceptions import RunloopBenchmarkRunFailedError, RunloopResultsNotReadyError
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.links import (
    RunloopBenchmarkRunLink,
    RunloopResultsReportLink,
    benchmark_run_url,
    report_url,
)
from airflow_provider_runloop.models import BenchmarkRunView
from airflow_provider_runloop.progress import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    ActiveRuns,
    BenchmarkRunSummary,
    BenchmarkRunVerdict,
    ScenarioRunTally,
    judge,
    known_benchmark_run_state,
    score_line,
    scored_is_final,
    settle_failure,
    state_name,
)
from airflow_provider_runloop.report import ScoreHistogram, render, report_path_for
from airflow_provider_runloop.results import (
    RecordList,
    RecordSchema,
    RecordsTooLargeError,
    ResultsFormat,
    ResultsWriter,
    open_writer,
    require_pyarrow,
)
from airflow_provider_runloop.storage import (
    StagedFile,
    check_destination_argument,
    resolve_destination,
    staging_token,
    static_destination_uri,
)

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

__all__ = [
    "DEFAULT_MAX_XCOM_RECORDS_BYTES",
    "EXPORT_PAGE_SIZE",
    "RunloopBenchmarkResultsOperator",
    "some_ids",
]

DEFAULT_MAX_XCOM_RECORDS_BYTES: Final = 48 * 1024
"""Records go to XCom (when there is no destination) only below this many bytes of JSON."""

# A progress line every this many records: a 100,000-run export logs ten lines, not a hundred thousand.
_LOG_EVERY: Final = 10_000

EXPORT_PAGE_SIZE: Final = 1000
"""Scenario runs per listing request when ``page_size`` is not given. One page of parsed runs is what
the export holds at a time: 1,000 keep it to a few MiB (the API's maximum, 5,000, would take about
20 MiB), at the same throughput."""


class RunloopBenchmarkResultsOperator(BaseOperator):
    """Export a benchmark run's scored results: a summary to XCom, every scenario run to a file.

    Lists every scenario run of the benchmark run (page by page, in the API's listing order), checks
    the run is done with the same completion rule as ``RunloopBenchmarkRunSensor``, and returns (as
    XCom) the run's summary. With a ``destination``, each scenario run is written as one record to a
    file there, streamed so memory stays flat whatever the run's size, and moved into place only once
    complete: a failure never leaves a partial file, and a retry overwrites the same path. Without one,
    the records go into the XCom itself, if they are small (see ``max_xcom_records_bytes``).

    Failed, timed-out and canceled scenarios are exported like any other (exporting failures is the
    point); so is a failed or canceled benchmark run. What stops the export is a run that is not done:
    scenario runs still active, or expected scenarios not started while the run is open. Then the task
    fails naming them, before anything reaches the destination, unless ``allow_partial`` is set.

    See ``docs/results.md`` for the record schema, the formats and the XCom value.

    :param benchmark_run_id: the benchmark run to export (templated).
    :param runloop_conn_id: the Runloop connection (templated).
    :param destination: where to write the records (templated): an ``ObjectStoragePath`` or a URL such
        as ``file:///data/results/bmr_123.jsonl`` or ``s3://bucket/results/bmr_123.parquet``. ``None``
        (the default) puts the records into XCom instead, if they fit. When it is known at parse time
        (not templated), it is declared as an ``Asset`` outlet, so DAGs can be scheduled on new results.
    :param storage_conn_id: the Airflow connection for the destination's storage (for ``s3://``, an AWS
        connection); not needed for ``file://``.
    :param format: the file format: ``jsonl`` (default), ``json``, ``csv`` or ``parquet`` (needs the
        ``airflow-provider-runloop[parquet]`` extra).
    :param include_scorer_output: keep each scoring function's ``output`` text (its log) in the records.
    :param include_environment: add each scenario run's ``environment_variables`` and
        ``secrets_provided`` (secret *names*) to the records. Off by default: variables can hold
        sensitive values.
    :param allow_partial: export even if the run is not done (active scenario runs, or expected
        scenarios missing); the summary then says ``done: false``.
    :param accept_scored: count ``scored`` scenario runs (score final, run not closed) as finished.
    :param fail_on_scenario_failure: after exporting, fail the task if the run is a failure under the
        completion rule (a scenario failed, timed out, was canceled or never started; the benchmark run
        failed or was canceled). The results stay at the destination. Off by default: the summary
        reports failures and downstream tasks decide.
    :param expected_scenario_count: how many scenarios the run should have; by default the benchmark's
        ``scenarioIds`` (when the run belongs to a benchmark), else unknown.
    :param failure_settle_seconds: when the listing shows failed scenarios while the benchmark run is
        still open, a retry could still add a run for them, so the export waits until the failure has
        held this long (default 60; ``0``: export at once), then checks once more. If a run was added
        meanwhile, nothing is written and the task fails as not ready. ``allow_partial`` exports at once.
    :param max_xcom_records_bytes: without a destination, the most bytes of JSON records put into XCom;
        above it the task fails and asks for a destination. XCom lives in the metadata database.
    :param page_size: scenario runs per listing request (1 to 5000; default ``EXPORT_PAGE_SIZE``, 1000:
        the export holds one page of runs at a time).
    :param html_report: also write a self-contained HTML report beside the data file, named like it
        with ``.html`` for its extension (``bmr_1.jsonl`` → ``bmr_1.html``), staged and moved into place
        with the data file (after it, never without it), and shown as the *Runloop results report* link.
        Needs a ``destination``. See ``docs/results.md``.
    :param baseline_benchmark_run_id: another benchmark run (templated) to compare the report's score
        per scoring function with; its summary comes from one listing of it. Needs ``html_report``.
    """

    template_fields: Sequence[str] = (
        "benchmark_run_id",
        "destination",
        "runloop_conn_id",
        "baseline_benchmark_run_id",
    )
    operator_extra_links = (RunloopBenchmarkRunLink(), RunloopResultsReportLink())
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        benchmark_run_id: str,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        destination: str | ObjectStoragePath | None = None,
        storage_conn_id: str | None = None,
        format: ResultsFormat | str = ResultsFormat.JSONL,
        include_scorer_output: bool = True,
        include_environment: bool = False,
        allow_partial: bool = False,
        accept_scored: bool = False,
        fail_on_scenario_failure: bool = False,
        expected_scenario_count: int | None = None,
        failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS,
        max_xcom_records_bytes: int = DEFAULT_MAX_XCOM_RECORDS_BYTES,
        page_size: int | None = None,
        html_report: bool = False,
        baseline_benchmark_run_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.benchmark_run_id = benchmark_run_id
        self.runloop_conn_id = check_text("runloop_conn_id", runloop_conn_id)
        self.destination = destination
        self.storage_conn_id = storage_conn_id
        self.format = ResultsFormat.parse(format)
        self.include_scorer_output = check_flag("include_scorer_output", include_scorer_output)
        self.include_environment = check_flag("include_environment", include_environment)
        self.allow_partial = check_flag("allow_partial", allow_partial)
        self.accept_scored = check_flag("accept_scored", accept_scored)
        self.fail_on_scenario_failure = check_flag("fail_on_scenario_failure", fail_on_scenario_failure)
        self.expected_scenario_count = check_optional_count(
            "expected_scenario_count", expected_scenario_count
        )
        self.failure_settle_seconds = check_number(
            "failure_settle_seconds", failure_settle_seconds, minimum=0
        )
        self.max_xcom_records_bytes = check_count("max_xcom_records_bytes", max_xcom_records_bytes, minimum=0)
        self.page_size = page_size
        self.html_report = check_flag("html_report", html_report)
        self.baseline_benchmark_run_id = baseline_benchmark_run_id
        self._validate_arguments()
        # Known now, so downstream DAGs can be scheduled on it; a templated one is only known at run time.
        if (uri := static_destination_uri(destination)) is not None:
            self.add_outlets([Asset(uri=uri)])

    def _validate_arguments(self) -> None:
        # What can be checked without a network call or the worker's environment (the destination's
        # filesystem is the worker's: checked at the start of execute).
        check_when_known("benchmark_run_id", self.benchmark_run_id, validate_id)
        if self.page_size is not None and (
            check_count("page_size", self.page_size, minimum=1) > MAX_PAGE_SIZE
        ):
            raise ValueError(
                f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {self.page_size!r}"
            )
        check_destination_argument(self.destination, self.storage_conn_id)
        if self.html_report and self.destination is None:
            raise ValueError(
                "html_report=True needs a destination: the report is written beside the data file "
                "(an export to XCom only has no file to put it beside)"
            )
        if self.html_report and (uri := static_destination_uri(self.destination)) is not None:
            report_path_for(uri)  # refuses a data file named .html
        if self.baseline_benchmark_run_id is not None:
            if not self.html_report:
                raise ValueError(
                    "baseline_benchmark_run_id is used only by the HTML report: set html_report=True"
                )
            check_when_known("baseline_benchmark_run_id", self.baseline_benchmark_run_id, validate_id)

    @cached_property
    def hook(self) -> RunloopHook:
        """The Runloop hook (built on first use, never at DAG parse time)."""
        return RunloopHook(runloop_conn_id=self.runloop_conn_id)

    # -- execution -----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        # Input problems first, before any request or write: the id, the format's library, the
        # destination's filesystem and whether it can be written.
        benchmark_run_id = validate_id("benchmark_run_id", self.benchmark_run_id)
        target = resolve_destination(self.destination, self.storage_conn_id)
        if target is not None and self.format is ResultsFormat.PARQUET:
            try:
                require_pyarrow()
            except ImportError as exc:
                raise AirflowOptionalProviderFeatureException(str(exc)) from None
        staged = StagedFile.create(target, staging_token(context.get("ti"))) if target is not None else None
        report = self._stage_report(staged, context) if staged is not None and self.html_report else None
        try:
            # The API's base URL, kept for get_openlineage_facets_on_complete (the client _export uses).
            self._lineage_base_url = self.hook.get_conn().base_url
            result, verdict = self._export(context, benchmark_run_id, staged, report)
        except RecordsTooLargeError as exc:
            # No retry fixes it: the same records are as large next time.
            raise AirflowFailException(
                f"The results of {benchmark_run_id} are too large for XCom: {exc}. Set destination= (for "
                "example 'file:///data/results/{{ run_id }}.jsonl' or an s3:// URL) to write them to storage "
                "and keep only the summary in XCom, or leave out scorer output with "
                "include_scorer_output=False. XCom lives in the metadata database: keep it small."
            ) from None
        except BaseException:
            if staged is not None:
                staged.discard()
            if report is not None:
                report.discard()
            raise
        finally:
            self.hook.close()
        self._lineage_export = (benchmark_run_id, result.get("destination"), result["record_count"])
        self._set_outlet_event_extra(context, result)
        if self.fail_on_scenario_failure and verdict.failed:
            where = f" The results are at {result['destination']}." if staged is not None else ""
            raise RunloopBenchmarkRunFailedError(verdict.message + where)
        return result

    def _export(
        self,
        context: Context,
        benchmark_run_id: str,
        staged: StagedFile | None,
        report: StagedFile | None = None,
    ) -> tuple[dict[str, Any], BenchmarkRunVerdict]:
        hook = self.hook
        # Fetched before the listing, as judge() requires: a `completed` read now cannot hide a scenario
        # run that started after the listing went past it.
        run = hook.get_benchmark_run(benchmark_run_id)
        RunloopBenchmarkRunLink.persist(
            context, benchmark_run_url(hook.get_conn().base_url, run.id, run.benchmark_id)
        )
        baseline = self._baseline_summary() if report is not None else None
        schema = RecordSchema(
            include_scorer_output=self.include_scorer_output, include_environment=self.include_environment
        )
        sink: ResultsWriter | RecordList
        if staged is not None:
            sink = open_writer(self.format, staged.open(), schema)
            self.log.info(
                "Exporting the scenario runs of %s to %s as %s", run.id, staged.uri, self.format.value
            )
        else:
            sink = RecordList(self.max_xcom_records_bytes)
            self.log.info("Collecting the scenario runs of %s for XCom (no destination set)", run.id)

        tally = ScenarioRunTally()
        page_size = EXPORT_PAGE_SIZE if self.page_size is None else self.page_size
        try:
            for scenario_run in hook.list_scenario_runs(benchmark_run_id, page_size=page_size):
                tally.add(scenario_run)
                sink.write(schema.record(scenario_run, benchmark_run_id=benchmark_run_id))
                if tally.total_runs % _LOG_EVERY == 0:
                    self.log.info("%s: %d scenario runs listed", run.id, tally.total_runs)
            # Fetched only now, once the listing (and its pages) are gone: a large benchmark's
            # scenarioIds are as many strings as the tally's own ids, and only the verdict needs them.
            expected_ids = (
                None if self.expected_scenario_count is not None else hook.get_expected_scenario_ids(run)
            )
            verdict = judge(
                run,
                tally,
                expected_count=self.expected_scenario_count,
                expected_scenario_ids=expected_ids,
                accept_scored=self.accept_scored,
                fail_on_scenario_failure=self.fail_on_scenario_failure,
            )
            verdict = settle_failure(
                verdict,
                failure_hold=None,
                now=time.time(),
                failure_settle_seconds=self.failure_settle_seconds,
            )
            if verdict.failure_hold is not None and not self.allow_partial:
                verdict = self._wait_for_failure_to_settle(verdict, expected_ids, listed=tally.total_runs)
            del expected_ids  # not needed past the verdict: freed before the file is finished
            if not verdict.done:
                if not self.allow_partial:
                    active = tally.active_runs(
                        scored_is_final=scored_is_final(known_benchmark_run_state(run), self.accept_scored)
                    )
                    raise RunloopResultsNotReadyError(_not_ready_message(verdict, active))
                self.log.warning("Exporting a partial result (allow_partial=True): %s", verdict.message)
            if report is not None:
                self._write_report(
                    report, run, verdict.summary, tally, baseline, staged.uri if staged else None
                )
            if staged is not None:
                assert isinstance(sink, ResultsWriter)
                sink.finish()
                staged.commit()  # only now does anything reach the destination
            if report is not None:
                report.commit()  # after the data file: never a report without its data
                if (url := report_url(report.uri)) is not None:
                    RunloopResultsReportLink.persist(context, url)
        except BaseException:
            if isinstance(sink, ResultsWriter):
                sink.abort()
            raise

        result: dict[str, Any] = {"summary": verdict.summary.to_dict(), "record_count": tally.total_runs}
        if staged is not None:
            result.update(destination=staged.uri, storage_conn_id=staged.conn_id, format=self.format.value)
            if report is not None:
                result["report"] = report.uri
            self.log.info(
                "Wrote %d records to %s (%s)", tally.total_runs, staged.uri, _what_was_exported(verdict)
            )
        else:
            assert isinstance(sink, RecordList)
            result["records"] = sink.records
            self.log.info("Returning %d records in XCom (%s)", tally.total_runs, _what_was_exported(verdict))
        return result, verdict

    # -- the HTML report (html_report=True) -----------------------------------------------------------

    def _stage_report(self, staged: StagedFile, context: Context) -> StagedFile:
        """Stage the report beside the data file (checked writable now, like the data file)."""
        try:
            target = staged.target.with_name(report_path_for(staged.target.name))
            return StagedFile.create(target, staging_token(context.get("ti")))
        except BaseException:
            staged.discard()
            raise

    def _baseline_summary(self) -> BenchmarkRunSummary | None:
        if self.baseline_benchmark_run_id is None:
            return None
        baseline_id = validate_id("baseline_benchmark_run_id", self.baseline_benchmark_run_id)
        verdict = self.hook.check_benchmark_run(
            baseline_id,
            accept_scored=self.accept_scored,
            fail_on_scenario_failure=False,
            failure_settle_seconds=0,
        )
        self.log.info("Baseline %s for the report: %s", baseline_id, score_line(verdict.summary))
        return verdict.summary

    def _write_report(
        self,
        report: StagedFile,
        run: BenchmarkRunView,
        summary: BenchmarkRunSummary,
        tally: ScenarioRunTally,
        baseline: BenchmarkRunSummary | None,
        data_file: str | None,
    ) -> None:
        histogram = ScoreHistogram()
        histogram.extend(tally.scores())  # each scenario's latest run, by the tally's rule
        base_url = self.hook.get_conn().base_url
        page = render(
            run,
            summary,
            histogram,
            dashboard_url=benchmark_run_url(base_url, run.id, run.benchmark_id),
            baseline=baseline,
            baseline_dashboard_url=(
                None
                if baseline is None
                else benchmark_run_url(base_url, baseline.benchmark_run_id, baseline.benchmark_id)
            ),
            data_file=data_file,
        )
        file = report.open()
        file.write(page.encode("utf-8"))
        file.close()

    def _wait_for_failure_to_settle(
        self, verdict: BenchmarkRunVerdict, expected_ids: list[str] | None, *, listed: int
    ) -> BenchmarkRunVerdict:
        """Wait out a failure's settle window, then check the run once more (the same rule as a wait).

        The records listed so far stand only if no scenario run was added meanwhile.
        """
        self.log.info("%s", verdict.message)
        hold = verdict.failure_hold
        while hold is not None:
            time.sleep(max(hold.remaining(time.time(), self.failure_settle_seconds), 0.0))
            verdict = self.hook.check_benchmark_run(
                verdict.summary.benchmark_run_id,
                expected_count=self.expected_scenario_count,
                expected_scenario_ids=expected_ids,
                accept_scored=self.accept_scored,
                fail_on_scenario_failure=self.fail_on_scenario_failure,
                failure_settle_seconds=self.failure_settle_seconds,
                failure_hold=hold,
            )
            hold = verdict.failure_hold
        if verdict.summary.total_scenario_runs != listed or not verdict.done:
            raise RunloopResultsNotReadyError(
                f"Not exporting the results of {verdict.summary.benchmark_run_id}: scenarios had failed "
                "while the run was still open, and while the export waited for that to settle the run "
                f"changed ({listed} scenario runs listed, now {verdict.summary.total_scenario_runs}: a "
                f"retry started). ({verdict.message}) Nothing was written. Wait for the run first "
                "(RunloopBenchmarkRunSensor) or retry later."
            )
        return verdict

    def _set_outlet_event_extra(self, context: Context, result: Mapping[str, Any]) -> None:
        """Describe the export in its asset event's ``extra``, so a consumer need not open the file."""
        uri = static_destination_uri(self.destination)
        events = context.get("outlet_events")
        if uri is None or events is None:
            return  # no asset declared (no destination, or a templated one), or run outside Airflow
        summary = result["summary"]
        events[Asset(uri=uri)].extra = {
            "benchmark_run_id": summary["benchmark_run_id"],
            "record_count": result["record_count"],
            "format": self.format.value,
            "runloop_score": summary["benchmark_score"],
            "failed_scenario_count": summary["failed_scenario_count"],
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """What the export read and wrote, for Airflow's OpenLineage provider (``docs/lineage.md``).

        The benchmark run as the input; the exported file, with its schema and row count, as the
        output (none when the records went to XCom). Needs the ``openlineage`` extra.
        """
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_runloop.lineage import results_lineage

        base_url: str | None = getattr(self, "_lineage_base_url", None)
        export: tuple[str, str | None, int] | None = getattr(self, "_lineage_export", None)
        if base_url is None or export is None:
            return OperatorLineage()  # the export did not get that far
        benchmark_run_id, destination, record_count = export
        return results_lineage(
            base_url=base_url,
            benchmark_run_id=benchmark_run_id,
            destination=destination,
            schema=RecordSchema(
                include_scorer_output=self.include_scorer_output, include_environment=self.include_environment
            ),
            format=self.format,
            record_count=record_count,
        )


def _not_ready_message(verdict: BenchmarkRunVerdict, active: ActiveRuns) -> str:
    summary = verdict.summary
    reasons = []
    if active.count:
        states = ", ".join(
            f"{state_name(state)} {count}" for state, count in sorted(active.by_state.items(), key=_by_name)
        )
        reasons.append(
            f"{active.count} scenario runs are still active ({states}): {some_ids(active.ids, active.count)}"
        )
    if summary.missing_scenario_count:
        missing = list(summary.missing_scenario_ids)
        named = f": {some_ids(missing, summary.missing_scenario_count)}" if missing else ""
        reasons.append(f"{summary.missing_scenario_count} expected scenarios have not started{named}")
    if not reasons:
        reasons.append(
            "the benchmark run is still running and how many scenarios it should have is unknown "
            "(pass expected_scenario_count, or wait until the run is completed)"
        )
    return (
        f"Not exporting the results of {summary.benchmark_run_id}: it is not done; "
        + "; ".join(reasons)
        + f". ({summary.message}) Nothing was written. Wait for the run first (RunloopBenchmarkRunSensor), "
        "retry later, or pass allow_partial=True to export what is there."
    )


def _by_name(item: tuple[object, int]) -> str:
    return state_name(item[0])


def some_ids(ids: Sequence[str], total: int) -> str:
    """``a, b and 3 more``: the ids named, and how many more there are."""
    hidden = total - len(ids)
    return ", ".join(ids) + (f" and {hidden} more" if hidden > 0 else "")


def _what_was_exported(verdict: BenchmarkRunVerdict) -> str:
    # Not the verdict line again (the wait before the export logged it): what the records are, and the
    # score; the whole verdict is in the XCom's summary.
    summary = verdict.summary
    retried = summary.retried_scenario_runs or 0
    runs = f"{summary.started_scenarios} scenarios"
    if retried:
        runs += f", plus {retried} retried attempt{'' if retried == 1 else 's'}"
    return f"{runs}; {score_line(summary)}"
