"""Operators for Runloop benchmark runs.

``RunloopBenchmarkResultsOperator`` harvests a benchmark run's scored results: a compact summary into
XCom (for branching and alerts) and, optionally, every scenario run as a record in a file in object
storage (``file://`` out of the box, ``s3://`` with the Amazon provider). The record schema and the
writers live in ``results.py``; the completion rule in ``progress.py``; this module only wires them to
Airflow (the hook, XCom, object storage, assets, the dashboard link).

The lifecycle operators drive runs and jobs (``docs/lifecycle.md``): ``RunloopStartBenchmarkRunOperator``,
``RunloopCompleteBenchmarkRunOperator`` and ``RunloopCancelBenchmarkRunOperator`` for interactive
benchmark runs, ``RunloopCreateBenchmarkJobOperator`` for benchmark jobs. Their waits reuse the sensor's
(``BenchmarkRunWaitMixin``) and the triggers' (``triggers/runloop.py``) logic.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import Asset, BaseOperator, ObjectStoragePath, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowOptionalProviderFeatureException
from airflow.sdk.io import has_fs

from airflow_provider_runloop.arguments import (
    check_count,
    check_flag,
    check_number,
    check_optional_count,
    check_poll_interval,
    check_text,
    check_when_known,
    rendered_later,
)
from airflow_provider_runloop.client import MAX_PAGE_SIZE, validate_id
from airflow_provider_runloop.exceptions import (
    RunloopBadRequestError,
    RunloopBenchmarkRunFailedError,
    RunloopConflictError,
    RunloopError,
    RunloopResultsNotReadyError,
    RunloopUnknownStateError,
)
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.links import (
    RunloopBenchmarkJobLink,
    RunloopBenchmarkRunLink,
    benchmark_run_url,
    benchmark_url,
)
from airflow_provider_runloop.models import (
    BenchmarkJobState,
    BenchmarkJobView,
    BenchmarkRunState,
    BenchmarkRunView,
    ScenarioRunState,
    ScenarioRunView,
)
from airflow_provider_runloop.progress import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    MAX_LISTED_IDS,
    BenchmarkRunVerdict,
    ScenarioRunTally,
    ScenarioStateClass,
    classify_scenario_state,
    judge,
    known_benchmark_run_state,
    normalise_job_state,
    scored_is_final,
    settle_failure,
)
from airflow_provider_runloop.results import (
    RecordSchema,
    ResultRecord,
    ResultsFormat,
    ResultsWriter,
    open_writer,
    record_json,
    require_pyarrow,
)
from airflow_provider_runloop.sensors.runloop import BenchmarkRunWaitMixin
from airflow_provider_runloop.triggers.runloop import (
    BenchmarkJobVerdict,
    RunloopBenchmarkJobTrigger,
    judge_benchmark_job,
    read_trigger_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "DEFAULT_MAX_XCOM_RECORDS_BYTES",
    "DEFAULT_WAIT_TIMEOUT",
    "STALE_STAGING_AGE",
    "TAG_METADATA_KEY",
    "RunloopBenchmarkResultsOperator",
    "RunloopCancelBenchmarkRunOperator",
    "RunloopCompleteBenchmarkRunOperator",
    "RunloopCreateBenchmarkJobOperator",
    "RunloopStartBenchmarkRunOperator",
    "TaskTag",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_XCOM_RECORDS_BYTES: Final = 48 * 1024
"""Records go to XCom (when there is no destination) only below this many bytes of JSON."""

_LOCAL_PROTOCOLS: Final = frozenset({"", "file", "local"})
# A progress line every this many records: a 100,000-run export logs ten lines, not a hundred thousand.
_LOG_EVERY: Final = 10_000
# fsspec's write buffer; object stores upload one part per block. 8 MiB is above S3's 5 MiB minimum part
# size and far below s3fs's 50 MiB default, so memory stays small.
_WRITE_BLOCK_BYTES: Final = 8 * 1024 * 1024

STALE_STAGING_AGE: Final = timedelta(hours=24)
"""A staged results file this old was left by a killed export (none takes a day); the next export to
the same destination removes it. Younger ones may belong to an export still running elsewhere."""


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
    :param runloop_conn_id: the Runloop connection.
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
    :param page_size: scenario runs per listing request (1 to 5000; default 5000).
    """

    template_fields: Sequence[str] = ("benchmark_run_id", "destination")
    operator_extra_links = (RunloopBenchmarkRunLink(),)
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.benchmark_run_id = benchmark_run_id
        self.runloop_conn_id = runloop_conn_id
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
        self._validate_arguments()
        # Known now, so downstream DAGs can be scheduled on it; a templated one is only known at run time.
        if (uri := _static_destination_uri(destination)) is not None:
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
        destination = self.destination
        if destination is None:
            if self.storage_conn_id is not None:
                raise ValueError("storage_conn_id is set but destination is not: set both, or neither")
        elif isinstance(destination, ObjectStoragePath):
            if self.storage_conn_id and destination.conn_id and destination.conn_id != self.storage_conn_id:
                raise ValueError(
                    f"destination has conn_id {destination.conn_id!r} but storage_conn_id is "
                    f"{self.storage_conn_id!r}: give one of them"
                )
            if not rendered_later(str(destination)):
                _check_destination_url(_public_uri(destination))
        elif isinstance(destination, str):
            if not rendered_later(destination):
                _check_destination_url(destination)
            user_info = urlsplit(destination).netloc.rpartition("@")[0]
            if self.storage_conn_id and user_info and user_info != self.storage_conn_id:
                raise ValueError(
                    f"destination names the connection {user_info!r} but storage_conn_id is "
                    f"{self.storage_conn_id!r}: give one of them"
                )
        else:
            raise TypeError(
                "destination must be an ObjectStoragePath or a URL string such as "
                f"'file:///data/results.jsonl' or 's3://bucket/key.jsonl', got {type(destination).__name__}"
            )

    @cached_property
    def hook(self) -> RunloopHook:
        """The Runloop hook (built on first use, never at DAG parse time)."""
        return RunloopHook(runloop_conn_id=self.runloop_conn_id)

    # -- execution -----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        # Input problems first, before any request or write: the id, the format's library, the
        # destination's filesystem and whether it can be written.
        benchmark_run_id = validate_id("benchmark_run_id", self.benchmark_run_id)
        target = self._resolve_destination()
        if target is not None and self.format is ResultsFormat.PARQUET:
            try:
                require_pyarrow()
            except ImportError as exc:
                raise AirflowOptionalProviderFeatureException(str(exc)) from None
        staged = _StagedFile.create(target, _staging_token(context)) if target is not None else None
        try:
            result, verdict = self._export(context, benchmark_run_id, staged)
        except BaseException:
            if staged is not None:
                staged.discard()
            raise
        finally:
            self.hook.close()
        if self.fail_on_scenario_failure and verdict.failed:
            where = f" The results are at {result['destination']}." if staged is not None else ""
            raise RunloopBenchmarkRunFailedError(verdict.message + where)
        return result

    def _resolve_destination(self) -> ObjectStoragePath | None:
        destination = self.destination
        if destination is None:
            return None
        if isinstance(destination, ObjectStoragePath):
            uri = _public_uri(destination)
            _check_destination_url(uri)
            _check_filesystem(urlsplit(uri).scheme, uri)
            if self.storage_conn_id and not destination.conn_id:
                destination = ObjectStoragePath(destination, conn_id=self.storage_conn_id)
        elif isinstance(destination, str):
            _check_destination_url(destination)
            _check_filesystem(urlsplit(destination).scheme, destination)
            # Built only now: with a connection, ObjectStoragePath looks the connection up at once.
            destination = ObjectStoragePath(destination, conn_id=self.storage_conn_id)
        else:
            raise TypeError(f"destination rendered to a {type(destination).__name__}, not a URL string")
        try:
            destination.fs  # noqa: B018  (the filesystem's own library is imported here)
        except ImportError as exc:
            # The Amazon provider registers s3:// without s3fs, which does the work.
            raise AirflowOptionalProviderFeatureException(
                f"{exc}. For s3:// install 'airflow-provider-runloop[s3]'."
            ) from None
        return destination

    def _export(
        self, context: Context, benchmark_run_id: str, staged: _StagedFile | None
    ) -> tuple[dict[str, Any], BenchmarkRunVerdict]:
        hook = self.hook
        # Fetched before the listing, as judge() requires: a `completed` read now cannot hide a scenario
        # run that started after the listing went past it.
        run = hook.get_benchmark_run(benchmark_run_id)
        RunloopBenchmarkRunLink.persist(
            context, benchmark_run_url(hook.get_conn().base_url, run.id, run.benchmark_id)
        )
        expected_ids = (
            None if self.expected_scenario_count is not None else hook.get_expected_scenario_ids(run)
        )
        schema = RecordSchema(
            include_scorer_output=self.include_scorer_output, include_environment=self.include_environment
        )
        sink: ResultsWriter | _XComRecords
        if staged is not None:
            sink = open_writer(self.format, staged.open(), schema)
            self.log.info(
                "Exporting the scenario runs of %s to %s as %s", run.id, staged.uri, self.format.value
            )
        else:
            sink = _XComRecords(run.id, self.max_xcom_records_bytes)
            self.log.info("Collecting the scenario runs of %s for XCom (no destination set)", run.id)

        tally = ScenarioRunTally()
        active = _ActiveRuns(
            scored_is_final=scored_is_final(known_benchmark_run_state(run), self.accept_scored)
        )
        try:
            for scenario_run in hook.list_scenario_runs(benchmark_run_id, page_size=self.page_size):
                tally.add(scenario_run)
                active.add(scenario_run)
                sink.write(schema.record(scenario_run, benchmark_run_id=benchmark_run_id))
                if tally.total_runs % _LOG_EVERY == 0:
                    self.log.info("%s: %d scenario runs listed", run.id, tally.total_runs)
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
            if not verdict.done:
                if not self.allow_partial:
                    raise RunloopResultsNotReadyError(_not_ready_message(verdict, active))
                self.log.warning("Exporting a partial result (allow_partial=True): %s", verdict.message)
            if staged is not None:
                assert isinstance(sink, ResultsWriter)
                sink.finish()
                staged.commit()  # only now does anything reach the destination
        except BaseException:
            if isinstance(sink, ResultsWriter):
                sink.abort()
            raise

        result: dict[str, Any] = {"summary": verdict.summary.to_dict(), "record_count": tally.total_runs}
        if staged is not None:
            result.update(destination=staged.uri, storage_conn_id=staged.conn_id, format=self.format.value)
            self.log.info("Wrote %d records to %s. %s", tally.total_runs, staged.uri, verdict.message)
        else:
            assert isinstance(sink, _XComRecords)
            result["records"] = sink.records
            self.log.info("Returning %d records in XCom. %s", tally.total_runs, verdict.message)
        return result, verdict

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


# --- helpers of the results export ------------------------------------------------------------------


class _XComRecords:
    """Collects records for XCom, failing as soon as they outgrow the limit (not after listing all)."""

    def __init__(self, benchmark_run_id: str, limit: int) -> None:
        self.records: list[ResultRecord] = []
        self._benchmark_run_id = benchmark_run_id
        self._limit = limit
        self._size = 2  # the list's brackets

    def write(self, record: ResultRecord) -> None:
        self._size += len(record_json(record).encode()) + 1
        if self._size > self._limit:
            raise AirflowFailException(
                f"The results of {self._benchmark_run_id} are too large for XCom: more than "
                f"{self._limit} bytes of records after {len(self.records) + 1} scenario runs. Set "
                "destination= (for example 'file:///data/results/{{ run_id }}.jsonl' or an s3:// URL) "
                "to write them to storage and keep only the summary in XCom, or leave out scorer output "
                "with include_scorer_output=False. XCom lives in the metadata database: keep it small."
            )
        self.records.append(record)


class _ActiveRuns:
    """The scenario runs still active, counted by state, with the first ids kept to name them."""

    def __init__(self, *, scored_is_final: bool) -> None:
        self._scored_is_final = scored_is_final
        self.by_state: Counter[str] = Counter()
        self.ids: list[str] = []

    def add(self, run: ScenarioRunView) -> None:
        cls = classify_scenario_state(run.state, accept_scored=self._scored_is_final, scenario_run_id=run.id)
        if cls is ScenarioStateClass.ACTIVE:
            self.by_state[str(getattr(run.state, "value", run.state))] += 1
            if len(self.ids) < MAX_LISTED_IDS:
                self.ids.append(run.id)

    @property
    def count(self) -> int:
        return sum(self.by_state.values())


def _not_ready_message(verdict: BenchmarkRunVerdict, active: _ActiveRuns) -> str:
    summary = verdict.summary
    reasons = []
    if active.count:
        states = ", ".join(f"{state} {count}" for state, count in sorted(active.by_state.items()))
        reasons.append(
            f"{active.count} scenario runs are still active ({states}): {_some(active.ids, active.count)}"
        )
    if summary.missing_scenario_count:
        missing = list(summary.missing_scenario_ids)
        named = f": {_some(missing, summary.missing_scenario_count)}" if missing else ""
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


def _some(ids: Sequence[str], total: int) -> str:
    hidden = total - len(ids)
    return ", ".join(ids) + (f" and {hidden} more" if hidden > 0 else "")


class _StagedFile:
    """A results file written beside its destination, then moved into place in one step.

    The bytes go to a hidden sibling, ``.<name>.runloop-<token>.partial`` (Spark, Hive, shell and Python
    globs skip names starting with ``.``; the ``.partial`` suffix keeps ``*.jsonl`` from matching it);
    ``commit`` moves it over the destination: a rename on a local filesystem, a server-side copy then a
    delete of the temporary object on object stores (where a new object appears whole or not at all).
    ``discard`` removes the sibling. The token is the same on every try of one task instance, so a
    retry after a crash overwrites the leftover sibling instead of adding another.

    A killed worker (SIGKILL, out of memory, a lost node) runs no cleanup, and a new DAG run has another
    token: so before staging, ``create`` removes the staged siblings of the same destination that are
    older than ``STALE_STAGING_AGE`` (no export runs that long, so none of them is being written), and
    logs each one. The name alone tells what a leftover is and which destination it belongs to.
    """

    def __init__(self, target: ObjectStoragePath, token: str) -> None:
        self.target = target
        self.uri = _public_uri(target)
        self.conn_id: str | None = target.conn_id
        self._fs = target.fs
        self._local = (target.protocol or "") in _LOCAL_PROTOCOLS
        self._final = target.path
        parent, _, name = self._final.rpartition("/")
        self._parent = parent or "/"
        self._name = name
        self._temp = f"{parent}/{_staging_name(name, token)}"
        self._file: IO[bytes] | None = None
        self._committed = False

    @classmethod
    def create(cls, target: ObjectStoragePath, token: str) -> _StagedFile:
        """Check the destination can be written, by creating the empty temporary sibling.

        :raises ValueError: if the destination is a directory or cannot be written (the message says why).
        """
        staged = cls(target, token)
        try:
            if staged._local:
                staged._fs.makedirs(staged._parent, exist_ok=True)
            if staged._fs.isdir(staged._final):
                raise IsADirectoryError(f"{staged.uri} is a directory; name a file in it")
            staged._remove_stale_siblings()
            staged._fs.touch(staged._temp)
        except Exception as exc:
            staged.discard()
            raise ValueError(
                f"Cannot write results to {staged.uri}: {type(exc).__name__}: {exc}. Check the path, its "
                "permissions and the storage connection (storage_conn_id). Nothing was fetched."
            ) from exc
        return staged

    def _remove_stale_siblings(self, now: datetime | None = None) -> None:
        """Remove this destination's staged siblings left by killed exports (older than the limit)."""
        now = now or datetime.now(timezone.utc)
        pattern = _staged_sibling_pattern(self._name)
        own = _base_name(self._temp)
        # A glob narrows an object-store listing to this destination's prefix; magic characters in the
        # name would make it match other names, so then the folder is listed (the pattern decides).
        if glob.has_magic(self._name):
            found = self._fs.ls(self._parent, detail=False)
        else:
            found = self._fs.glob(f"{self._parent.rstrip('/')}/.{self._name}.*.partial")
        for path in sorted(str(item) for item in found):
            name = _base_name(path)
            if name == own or not pattern.fullmatch(name):
                continue  # this task instance's own is overwritten anyway; others are not ours
            try:
                modified = self._fs.modified(path)
                if modified.tzinfo is None:
                    modified = modified.replace(tzinfo=timezone.utc)
                age = now - modified
                if age < STALE_STAGING_AGE:
                    continue  # perhaps another DAG run's export, still being written
                self._fs.rm_file(path)
            except Exception as exc:
                # Logged, not raised: a leftover must not stop a new export.
                log.warning("Could not remove the stale staged file %s (%s); delete it by hand", path, exc)
                continue
            log.info(
                "Removed %s: a staged copy of %s last written %s ago by an export that never finished "
                "(a killed worker)",
                path,
                self.uri,
                str(age).split(".")[0],
            )

    def open(self) -> IO[bytes]:
        """Open the temporary sibling for writing."""
        self._file = self._fs.open(self._temp, "wb", block_size=_WRITE_BLOCK_BYTES)
        return self._file

    def commit(self) -> None:
        """Close the temporary file and move it over the destination."""
        if self._file is not None:
            self._file.close()
        self._fs.mv(self._temp, self._final)
        self._committed = True

    def discard(self) -> None:
        """Remove the temporary sibling (best effort: the destination itself is never touched)."""
        if self._committed:
            return
        if self._file is not None:
            # Closing may upload what was buffered, but only ever to the temporary sibling.
            with contextlib.suppress(Exception):
                self._file.close()
        try:
            if self._fs.exists(self._temp):
                self._fs.rm_file(self._temp)
        except Exception:
            # Logged, not raised: the original error is the one the user needs to see.
            log.warning(
                "Could not remove the temporary file %s; delete it by hand", self._temp, exc_info=True
            )


def _staging_name(name: str, token: str) -> str:
    """The hidden name a results file called ``name`` is staged under, beside it, until it is complete."""
    return f".{name}.runloop-{token}.partial"


def _base_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _staged_sibling_pattern(name: str) -> re.Pattern[str]:
    # Also the names of versions before 0.x (".<name>.<token>.partial"), so their leftovers go too.
    return re.compile(rf"\.{re.escape(name)}\.(?:runloop-)?[0-9a-f]{{16}}\.partial")


def _staging_token(context: Context) -> str:
    ti = context.get("ti")
    parts = [str(getattr(ti, name, "")) for name in ("dag_id", "task_id", "run_id", "map_index")]
    if not any(parts[:3]):
        return uuid.uuid4().hex[:16]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _check_destination_url(url: str) -> None:
    """Refuse a destination that cannot name one file: no scheme, a relative path, a directory."""
    parts = urlsplit(url)
    example = "'file:///data/results/run.jsonl' or 's3://bucket/results/run.jsonl'"
    if not parts.scheme:
        raise ValueError(f"destination must be a URL with a scheme, such as {example}; got {url!r}")
    if parts.scheme in _LOCAL_PROTOCOLS:
        if parts.netloc:
            raise ValueError(
                f"destination {url!r} is not an absolute file URL: write three slashes, "
                f"file:///absolute/path (got host {parts.netloc!r})"
            )
        if not parts.path.startswith("/"):
            raise ValueError(f"destination {url!r} must be an absolute path, such as {example}")
    elif not parts.netloc or parts.path.strip("/") == "":
        raise ValueError(f"destination {url!r} must name an object inside a bucket, such as {example}")
    if url.endswith("/"):
        raise ValueError(f"destination {url!r} ends with '/': name a file, such as {example}")


def _check_filesystem(scheme: str, url: str) -> None:
    protocol = scheme or "file"
    if not has_fs(protocol):
        hint = (
            "install the Amazon provider: pip install 'airflow-provider-runloop[s3]'"
            if protocol in ("s3", "s3a", "s3n")
            else "install the Airflow provider that registers it"
        )
        raise ValueError(
            f"No filesystem is registered for {protocol}:// (destination {url!r}): {hint}. "
            "file:// works out of the box."
        )


def _public_uri(path: ObjectStoragePath) -> str:
    """The destination as a URL without the connection id: the XCom value and the asset's URI."""
    protocol = path.protocol or "file"
    if protocol == "local":
        protocol = "file"
    return f"{protocol}://{path.path}"


def _static_destination_uri(destination: str | ObjectStoragePath | None) -> str | None:
    """The destination's URL if it is known at parse time (given and not templated), else ``None``."""
    if isinstance(destination, ObjectStoragePath):
        return None if rendered_later(str(destination)) else _public_uri(destination)
    if not isinstance(destination, str) or rendered_later(destination):
        return None
    parts = urlsplit(destination)
    # Drop a connection id given as user info (s3://aws_conn@bucket/key): it is not part of the data's name.
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# --- run and job lifecycle: start, complete, cancel benchmark runs; create benchmark jobs ------------
#
# Idempotency (docs/lifecycle.md): what a task starts is tagged with the task instance that started it,
# whatever the try (TaskTag). A new try looks for a live run or job with its tag and reattaches to it
# instead of starting another; each POST carries a request id fixed for the try, so the client's own
# retries of that POST (after a 503, a dropped connection) can be de-duplicated by the server.

TAG_METADATA_KEY: Final = "airflow_tag"
"""Metadata key of the tag that ties a benchmark run to the task instance that started it."""

DEFAULT_WAIT_TIMEOUT: Final = timedelta(days=7)
"""How long the lifecycle operators wait for completion unless told otherwise (as sensors do)."""

_TAG_METADATA_KEYS: Final = (
    "airflow_dag_id",
    "airflow_run_id",
    "airflow_task_id",
    "airflow_map_index",
    TAG_METADATA_KEY,
)
_RUN_PROFILE_KEYS: Final = frozenset({"envVars", "secrets", "launchParameters", "mounts", "purpose"})
_AGENT_CONFIG_KEYS: Final = frozenset(
    {"type", "name", "agent_id", "model_name", "timeout_seconds", "kwargs", "agent_environment"}
)
_AGENT_ENVIRONMENT_KEYS: Final = frozenset({"environment_variables", "secrets"})
_ORCHESTRATOR_KEYS: Final = frozenset({"n_attempts", "n_concurrent_trials", "timeout_multiplier", "quiet"})
# Reattaching lists only live runs or jobs with the task's own name: a page or two at most.
_LOOKUP_PAGE_SIZE: Final = 100
_ALIVE_JOB_STATES: Final = frozenset(
    {BenchmarkJobState.INITIALIZING, BenchmarkJobState.QUEUED, BenchmarkJobState.RUNNING}
)


@dataclass(frozen=True)
class TaskTag:
    """The task instance that starts a run or job: the same on every try, so a retry can find its work.

    :param dag_id: the DAG.
    :param run_id: the DAG run.
    :param task_id: the task.
    :param map_index: the mapped task's index (``-1`` when not mapped).
    :param try_number: the try (only in request ids, never in the tag).
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int

    @classmethod
    def from_context(cls, context: Context) -> TaskTag:
        """The tag of the running task instance.

        :raises ValueError: when the context has no task instance (the operator runs outside Airflow).
        """
        ti = context.get("ti")
        parts = [getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id")]
        if not all(isinstance(part, str) and part for part in parts):
            raise ValueError(
                "This operator tags what it starts with its task instance (dag_id, run_id, task_id), "
                "but the context has no task instance: run it as an Airflow task."
            )
        map_index = getattr(ti, "map_index", -1)
        try_number = getattr(ti, "try_number", 1)
        return cls(
            dag_id=str(parts[0]),
            run_id=str(parts[1]),
            task_id=str(parts[2]),
            map_index=map_index if isinstance(map_index, int) else -1,
            try_number=try_number if isinstance(try_number, int) else 1,
        )

    @property
    def key(self) -> str:
        """16 hex digits identifying the task instance (not the try)."""
        identity = "\0".join((self.dag_id, self.run_id, self.task_id, str(self.map_index)))
        return hashlib.sha256(identity.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """``dag_id.task_id`` (with ``[map_index]`` when mapped), for names people read."""
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{mapped}"

    def tagged_name(self, base: str | None = None) -> str:
        """``<base> [airflow <key>]``: a name only this task instance gives (base: its label)."""
        return f"{base or self.label} [airflow {self.key}]"

    def metadata(self) -> dict[str, str]:
        """The metadata a benchmark run started by this task instance carries."""
        values = (self.dag_id, self.run_id, self.task_id, str(self.map_index), self.key)
        return dict(zip(_TAG_METADATA_KEYS, values, strict=True))

    def request_id(self, action: str) -> str:
        """The ``x-request-id`` of one POST of this try: the same on the client's retries of it.

        The try is part of it: a new try (a retry, or a clear to start over) must reach the server as a
        new request, or a server that de-duplicates would hand back the first try's (maybe finished) run.
        """
        return f"airflow-runloop-{action}-{self.key}-{self.try_number}"


class RunloopStartBenchmarkRunOperator(BenchmarkRunWaitMixin, BaseOperator):
    """Start an interactive benchmark run of a benchmark, or reattach to the one an earlier try started.

    Runloop starts nothing in an interactive run: the DAG starts, scores and completes each scenario run
    (for example in a ``@task`` through :class:`~airflow_provider_runloop.hooks.runloop.RunloopHook`),
    then completes the run (:class:`RunloopCompleteBenchmarkRunOperator`).

    The XCom value: ``benchmark_run_id``, ``benchmark_id``, ``run_name``, ``state``, ``reattached``,
    ``scenario_ids`` (the benchmark's scenarios, read when the run starts, or when a retry reattaches,
    since the benchmark can be edited later), ``expected_scenario_count`` and ``dashboard_url``; with
    ``wait_for_completion`` also ``summary`` (as
    :class:`~airflow_provider_runloop.sensors.runloop.RunloopBenchmarkRunSensor` returns).

    The run is tagged with this task instance (metadata ``airflow_dag_id``, ``airflow_run_id``,
    ``airflow_task_id``, ``airflow_map_index``, ``airflow_tag``); a retry finds a still-running run with
    its tag and reattaches to it instead of starting a second one (see ``docs/lifecycle.md``).

    :param benchmark_id: the benchmark to run (templated).
    :param run_name: the run's name (templated); default ``<dag_id>.<task_id> [airflow <tag>]``.
    :param metadata: extra metadata for the run (templated), strings to strings; the ``airflow_*`` keys
        above are the provider's.
    :param run_profile: the run profile (templated): ``envVars``, ``secrets`` (environment variable to
        Runloop secret *name*), ``launchParameters``, ``mounts``, ``purpose``. Never put secret values
        in ``envVars``: rendered fields show in the Airflow UI; use ``secrets``.
    :param runloop_conn_id: the Runloop connection (templated).
    :param reattach: look for a running run this task instance started (an earlier try) and reattach
        to it (default); ``False`` always starts a new run.
    :param cancel_on_kill: cancel the run if the task is killed while it waits or starts (a user marks
        it failed or successful, or clears it; or its ``execution_timeout`` passes). Never on a
        triggerer restart. Default ``True``.
    :param wait_for_completion: after starting, wait until the run is done under the completion rule
        (as the sensor does). Off by default: an interactive run only progresses when something starts
        its scenario runs, usually tasks downstream of this one.
    :param deferrable: wait in the triggerer instead of a worker slot (default: the ``[operators]
        default_deferrable`` setting).
    :param poll_interval: seconds between polls while waiting.
    :param wait_timeout: how long to wait (seconds or a ``timedelta``; default 7 days). Running out of
        time fails the try, not the run: a retry reattaches and waits again.
    :param expected_scenario_count: how many scenarios the run should have; default: as many as the
        benchmark had when the run started.
    :param accept_scored: count ``scored`` scenario runs as finished while waiting.
    :param fail_on_scenario_failure: fail the task when, once done, scenarios failed, timed out or were
        canceled (default), or succeed and report them in the summary.
    :param max_consecutive_poll_failures: polls in a row that may fail (each after the client's own
        retries) before the wait gives up.
    :param failure_settle_seconds: while waiting, a scenario failure seen while the run is still open
        ends the wait only once it has held this long (a retry could overturn it); default 60, ``0``:
        at once. As for the sensor.
    """

    template_fields: Sequence[str] = (
        "benchmark_id",
        "run_name",
        "metadata",
        "run_profile",
        "runloop_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"metadata": "json", "run_profile": "json"}
    operator_extra_links = (RunloopBenchmarkRunLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        benchmark_id: str,
        run_name: str | None = None,
        metadata: dict[str, str] | None = None,
        run_profile: dict[str, Any] | None = None,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        reattach: bool = True,
        cancel_on_kill: bool = True,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        wait_timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        expected_scenario_count: int | None = None,
        accept_scored: bool = False,
        fail_on_scenario_failure: bool = True,
        max_consecutive_poll_failures: int = 5,
        failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.benchmark_id = benchmark_id
        self.run_name = run_name
        self.metadata = metadata
        self.run_profile = run_profile
        self.runloop_conn_id = runloop_conn_id
        self.reattach = check_flag("reattach", reattach)
        self.cancel_on_kill = check_flag("cancel_on_kill", cancel_on_kill)
        self.wait_for_completion = check_flag("wait_for_completion", wait_for_completion)
        self.deferrable = check_flag("deferrable", deferrable)
        self.poll_interval = check_poll_interval("poll_interval", poll_interval)
        self.wait_timeout = _seconds("wait_timeout", wait_timeout)
        self._set_wait_options(
            expected_scenario_count=expected_scenario_count,
            accept_scored=accept_scored,
            fail_on_scenario_failure=fail_on_scenario_failure,
            max_consecutive_poll_failures=max_consecutive_poll_failures,
            failure_settle_seconds=failure_settle_seconds,
        )
        self.benchmark_run_id = ""  # known once started
        self._started_run_id: str | None = None
        self._starting: tuple[str, str, TaskTag] | None = None
        # Bad input fails at parse time when it is known then; templated values are checked in execute.
        check_when_known("benchmark_id", benchmark_id, validate_id)
        if not rendered_later(run_name):
            _check_optional_text("run_name", run_name)
        if not rendered_later(metadata):
            _check_run_metadata(metadata)
        if not rendered_later(run_profile):
            _check_run_profile(run_profile)
        check_text("runloop_conn_id", runloop_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            return self._start_and_wait(context)
        finally:
            self.hook.close()

    def _start_and_wait(self, context: Context) -> dict[str, Any]:
        benchmark_id = validate_id("benchmark_id", self.benchmark_id)
        run_name = _check_optional_text("run_name", self.run_name)
        metadata = _check_run_metadata(self.metadata)
        run_profile = _check_run_profile(self.run_profile)
        tag = TaskTag.from_context(context)
        name = run_name or tag.tagged_name()
        hook = self.hook
        # The scenario set is read now, as the run starts: the benchmark can be edited later.
        benchmark = hook.get_benchmark(benchmark_id)
        run = self._find_live_run(benchmark_id, name, tag) if self.reattach else None
        reattached = run is not None
        if run is None:
            # Known before the POST: a kill while it is in flight finds the run by its tag (on_kill).
            self._starting = (benchmark_id, name, tag)
            run = hook.start_benchmark_run(
                benchmark_id,
                run_name=name,
                metadata={**metadata, **tag.metadata()},
                run_profile=run_profile,
                idempotency_key=tag.request_id("start-run"),
            )
            self.log.info("Started benchmark run %s of %s (%r)", run.id, benchmark_id, name)
        else:
            self.log.info(
                "Reattached to benchmark run %s, which an earlier try of this task started (%r); "
                "set reattach=False to always start a new run",
                run.id,
                name,
            )
        self._started_run_id = run.id
        url = benchmark_run_url(hook.get_conn().base_url, run.id, run.benchmark_id or benchmark_id)
        RunloopBenchmarkRunLink.persist(context, url)
        scenario_ids = list(benchmark.scenario_ids)
        started: dict[str, Any] = {
            "benchmark_run_id": run.id,
            "benchmark_id": benchmark_id,
            "run_name": name,
            "state": _state_name(run.state),
            "reattached": reattached,
            "scenario_ids": scenario_ids,
            "expected_scenario_count": self.expected_scenario_count or len(scenario_ids) or None,
            "dashboard_url": url,
        }
        if not self.wait_for_completion:
            return started

        # The wait: the sensor's own steps (BenchmarkRunWaitMixin), with this run's snapshot as expected.
        self.benchmark_run_id = run.id
        self.expected_scenario_count = started["expected_scenario_count"]
        self._link_stored = True
        deadline = self._wait_deadline(context, self.wait_timeout)
        verdict = self._check(context)
        if self.deferrable and (verdict is None or not verdict.done):
            context["ti"].xcom_push(key=_RESUME_XCOM_KEY, value=started)  # read back on resumption
            self._defer_wait(
                self._wait_trigger(deadline, self.poll_interval, cancel_on_kill=self.cancel_on_kill)
            )
        while verdict is None or not verdict.done:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise self._wait_timed_out(f"Benchmark run {run.id} was not done by the deadline")
            time.sleep(min(self.poll_interval, remaining))
            verdict = self._check(context)
        return {**started, "summary": self._finish(verdict)}

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: the start's XCom plus the summary, or raise."""
        verdict = self._verdict_from_event(event)
        started = context["ti"].xcom_pull(key=_RESUME_XCOM_KEY)
        if not isinstance(started, dict):
            started = {"benchmark_run_id": verdict.summary.benchmark_run_id}
        return {**started, "summary": self._finish(verdict)}

    def on_kill(self) -> None:
        """Cancel the run this task started (best effort), if ``cancel_on_kill``.

        Killed while the start request is in flight, the task does not know the run's id yet, though the
        server may have created the run: it is then found by this task instance's tag.
        """
        if not self.cancel_on_kill:
            return
        if self._started_run_id is not None:
            _cancel_run_if_running(self.runloop_conn_id, self._started_run_id, self.log)
            return
        if self._starting is None:
            return  # killed before anything was asked of the server
        benchmark_id, name, tag = self._starting
        hook = RunloopHook(runloop_conn_id=self.runloop_conn_id)
        try:
            run = _find_live_run(hook, benchmark_id, name, tag)
        except RunloopError as exc:
            self.log.warning("Could not look for the run this task was starting (%r): %s", name, exc)
            return
        finally:
            hook.close()
        if run is None:
            self.log.info(
                "Killed while starting a run of %s: no running run with this task's tag (%s) exists, "
                "so there is nothing to cancel",
                benchmark_id,
                tag.key,
            )
            return
        self.log.info("Killed while starting: found run %s by this task's tag (%s)", run.id, tag.key)
        _cancel_run_if_running(self.runloop_conn_id, run.id, self.log)

    def _wait_timed_out(self, message: str) -> BaseException:
        # Not the sensor's no-retry time-out: the run goes on, and a retry can wait for it again.
        next_step = (
            "a retry of this task reattaches to it and waits again"
            if self.reattach
            else "a retry of this task starts a new run (reattach=False)"
        )
        return RunloopError(f"{message}. The run is still running: {next_step}, or raise wait_timeout")

    def _find_live_run(self, benchmark_id: str, name: str, tag: TaskTag) -> BenchmarkRunView | None:
        """The running benchmark run this task instance started on an earlier try, if any."""
        return _find_live_run(self.hook, benchmark_id, name, tag)


class _BenchmarkRunActionOperator(BaseOperator):
    """Move a running benchmark run to ``done_state`` (complete or cancel), idempotently.

    Shared by the complete and cancel operators: a run already in ``done_state`` is left as it is (so
    a retry is safe); a run in any other end state cannot be moved and fails the task without retrying.
    """

    template_fields: Sequence[str] = ("benchmark_run_id", "runloop_conn_id")
    operator_extra_links = (RunloopBenchmarkRunLink(),)
    done_state: BenchmarkRunState
    # Appended to the refusal message: what the user can do instead.
    _after_refusal = ""

    def __init__(
        self,
        *,
        benchmark_run_id: str,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.benchmark_run_id = benchmark_run_id
        self.runloop_conn_id = runloop_conn_id
        check_when_known("benchmark_run_id", benchmark_run_id, validate_id)
        check_text("runloop_conn_id", runloop_conn_id)

    @cached_property
    def hook(self) -> RunloopHook:
        """The hook for ``runloop_conn_id``."""
        return RunloopHook(runloop_conn_id=self.runloop_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        run_id = validate_id("benchmark_run_id", self.benchmark_run_id)
        hook = self.hook
        try:
            run = hook.get_benchmark_run(run_id)
            url = benchmark_run_url(hook.get_conn().base_url, run.id, run.benchmark_id)
            RunloopBenchmarkRunLink.persist(context, url)
            state = known_benchmark_run_state(run)
            if state is self.done_state:
                self.log.info("Benchmark run %s is already %s: nothing to do", run.id, state.value)
                return _run_outcome(run, url, changed=False)
            if state is not BenchmarkRunState.RUNNING:
                raise AirflowFailException(
                    f"Benchmark run {run.id} is {state.value} and cannot be {self.done_state.value}: only "
                    f"a running run can be.{self._after_refusal}"
                )
            self._check_before_acting(run.id)
            try:
                moved = self._act(hook, run.id)
            except (RunloopBadRequestError, RunloopConflictError) as refusal:
                moved = self._done_despite_refusal(hook, run.id, refusal)
        finally:
            hook.close()
        self.log.info("Benchmark run %s is now %s (score %s)", moved.id, moved.state, moved.score)
        return _run_outcome(moved, url, changed=True)

    def _done_despite_refusal(
        self, hook: RunloopHook, run_id: str, refusal: RunloopError
    ) -> BenchmarkRunView:
        """The run, if a refused action had in fact been done; else re-raise the refusal.

        The run was running when read, so a refusal usually means the client's retry of this very
        request reached a server that had acted on the first attempt (its answer lost on the way) and
        does not de-duplicate. One read tells: already in ``done_state`` is success.
        """
        run = hook.get_benchmark_run(run_id)
        if known_benchmark_run_state(run) is not self.done_state:
            raise refusal
        self.log.info(
            "The server refused to move benchmark run %s to %s (%s), but the run is %s already: an "
            "earlier attempt of this request did it and its answer was lost. Nothing more to do.",
            run.id,
            self.done_state.value,
            refusal,
            self.done_state.value,
        )
        return run

    def _check_before_acting(self, run_id: str) -> None:
        """Raise to refuse the action; the default accepts."""

    def _act(self, hook: RunloopHook, run_id: str) -> BenchmarkRunView:
        raise NotImplementedError


class RunloopCompleteBenchmarkRunOperator(_BenchmarkRunActionOperator):
    """Complete a running (interactive) benchmark run, once all its scenario runs are over.

    Runloop then computes the run's score. Idempotent: a run that is already ``completed`` is left as
    it is, so a retry is safe. A ``canceled`` or ``failed`` run cannot be completed: the task fails
    without retrying. While scenario runs are still ``running``, ``scoring`` or ``scored``, the task
    fails (and may be retried) rather than close the run early, unless ``allow_active_scenario_runs``.

    The XCom value: ``benchmark_run_id``, ``benchmark_id``, ``state``, ``score``, ``changed`` (whether
    this task completed it) and ``dashboard_url``.

    :param benchmark_run_id: the benchmark run to complete (templated).
    :param runloop_conn_id: the Runloop connection (templated).
    :param allow_active_scenario_runs: complete the run even though scenario runs are still active;
        those keep their state and count as unscored in the run's score.
    """

    ui_color = "#e8f0fe"
    done_state = BenchmarkRunState.COMPLETED
    _after_refusal = " Start a new run to try again."

    def __init__(self, *, allow_active_scenario_runs: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_active_scenario_runs = check_flag("allow_active_scenario_runs", allow_active_scenario_runs)

    def _act(self, hook: RunloopHook, run_id: str) -> BenchmarkRunView:
        return hook.complete_benchmark_run(run_id)

    def _check_before_acting(self, run_id: str) -> None:
        if self.allow_active_scenario_runs:
            return
        counts = {
            state: self.hook.count_scenario_runs(run_id, state=state) for state in _ACTIVE_SCENARIO_STATES
        }
        active = {state: count for state, count in counts.items() if count}
        if active:
            listed = ", ".join(f"{state.value} {count}" for state, count in active.items())
            total = sum(active.values())
            named = _some(self._name_active_runs(run_id, active), total)
            raise RunloopError(
                f"Not completing benchmark run {run_id}: {total} of its scenario runs are still active "
                f"({listed}): {named}. Completing it now would score them as missing. Wait for them "
                "first (RunloopBenchmarkRunSensor; a scored run is closed with "
                "RunloopHook.complete_scenario_run), or pass allow_active_scenario_runs=True."
            )

    def _name_active_runs(self, run_id: str, active: Mapping[ScenarioRunState, int]) -> list[str]:
        """``id (name) [state]`` of the first ``MAX_LISTED_IDS`` active scenario runs (one page each)."""
        names: list[str] = []
        for state in active:
            room = MAX_LISTED_IDS - len(names)
            if room <= 0:
                break
            listing = self.hook.list_scenario_runs(run_id, state=state, page_size=room)
            for scenario_run in itertools.islice(listing, room):
                label = f"{scenario_run.id} ({scenario_run.name})" if scenario_run.name else scenario_run.id
                names.append(f"{label} [{state.value}]")
        return names


class RunloopCancelBenchmarkRunOperator(_BenchmarkRunActionOperator):
    """Cancel a benchmark run: Runloop cancels its running scenario runs and scores what finished.

    Idempotent: a run that is already ``canceled`` is left as it is. A ``completed`` or ``failed`` run
    cannot be canceled: the task fails without retrying.

    The XCom value: ``benchmark_run_id``, ``benchmark_id``, ``state``, ``score``, ``changed`` (whether
    this task canceled it) and ``dashboard_url``.

    :param benchmark_run_id: the benchmark run to cancel (templated).
    :param runloop_conn_id: the Runloop connection (templated).
    """

    ui_color = "#fde8e8"
    done_state = BenchmarkRunState.CANCELED

    def _act(self, hook: RunloopHook, run_id: str) -> BenchmarkRunView:
        return hook.cancel_benchmark_run(run_id)


class RunloopCreateBenchmarkJobOperator(BaseOperator):
    """Create a Runloop benchmark job (Runloop runs and scores everything), and by default wait for it.

    A job runs a benchmark (``benchmark_id``) or a list of scenarios (``scenario_ids``) once per agent
    config: one benchmark run per agent config. The XCom value: ``benchmark_job_id``, ``name``,
    ``state``, ``failure_reason``, ``reattached``, ``dashboard_url``, ``expected_scenarios``,
    ``benchmark_run_ids`` and ``runs``, one entry per benchmark run with ``benchmark_run_id``,
    ``agent_name``, ``model_name``, ``in_progress``, ``n_completed``, ``n_failed``, ``n_timeout``,
    ``average_score`` and ``dashboard_url``. To export each run, map
    ``RunloopBenchmarkResultsOperator`` over ``benchmark_run_ids`` (Airflow maps only over a whole
    return value, so pick the list out with a one-line ``@task``; see ``docs/lifecycle.md``).

    The job's name carries a tag of this task instance (``<job_name> [airflow <tag>]``; jobs have no
    metadata); a retry finds a live job with that name and the same spec and reattaches to it.

    :param agent_configs: the agents to run (templated), at least one; each a dict with a unique
        ``name`` and optionally ``agent_id``, ``model_name``, ``timeout_seconds``, ``kwargs`` (strings)
        and ``agent_environment`` (``environment_variables``, ``secrets``: variable to secret id);
        ``type`` defaults to ``job_agent``.
    :param benchmark_id: the benchmark to run (templated); give it or ``scenario_ids``.
    :param scenario_ids: the scenarios to run (templated); give them or ``benchmark_id``.
    :param orchestrator_config: how Runloop schedules the job (templated): ``n_attempts`` (retries of a
        failed scenario, >= 0), ``n_concurrent_trials`` (>= 1), ``timeout_multiplier`` (> 0), ``quiet``.
    :param job_name: the start of the job's name (templated); default ``<dag_id>.<task_id>``.
    :param runloop_conn_id: the Runloop connection (templated).
    :param reattach: look for a live job this task instance created (an earlier try) and reattach to it
        (default); ``False`` always creates a new job.
    :param cancel_on_kill: if the task is killed while it waits (a user marks it failed or successful,
        or clears it), cancel the job's in-progress benchmark runs: Runloop has no endpoint to cancel a
        job. Never on a triggerer restart. Default ``True``.
    :param wait_for_completion: wait until the job is finished (default).
    :param deferrable: wait in the triggerer instead of a worker slot (default: the ``[operators]
        default_deferrable`` setting).
    :param poll_interval: seconds between polls while waiting.
    :param wait_timeout: how long to wait (seconds or a ``timedelta``; default 7 days). Running out of
        time fails the try, not the job: a retry reattaches and waits again.
    :param max_consecutive_poll_failures: polls in a row that may fail (each after the client's own
        retries) before the wait gives up.
    :param fail_on_job_failure: fail the task when the job ends ``failed``, ``cancelled`` or ``timeout``
        (default), or succeed and report it in the XCom.
    """

    template_fields: Sequence[str] = (
        "agent_configs",
        "benchmark_id",
        "scenario_ids",
        "orchestrator_config",
        "job_name",
        "runloop_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "agent_configs": "json",
        "orchestrator_config": "json",
    }
    operator_extra_links = (RunloopBenchmarkJobLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        agent_configs: list[dict[str, Any]],
        benchmark_id: str | None = None,
        scenario_ids: list[str] | None = None,
        orchestrator_config: dict[str, Any] | None = None,
        job_name: str | None = None,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        reattach: bool = True,
        cancel_on_kill: bool = True,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        wait_timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        max_consecutive_poll_failures: int = 5,
        fail_on_job_failure: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.agent_configs = agent_configs
        self.benchmark_id = benchmark_id
        self.scenario_ids = scenario_ids
        self.orchestrator_config = orchestrator_config
        self.job_name = job_name
        self.runloop_conn_id = runloop_conn_id
        self.reattach = check_flag("reattach", reattach)
        self.cancel_on_kill = check_flag("cancel_on_kill", cancel_on_kill)
        self.wait_for_completion = check_flag("wait_for_completion", wait_for_completion)
        self.deferrable = check_flag("deferrable", deferrable)
        self.poll_interval = check_poll_interval("poll_interval", poll_interval)
        self.wait_timeout = _seconds("wait_timeout", wait_timeout)
        self.max_consecutive_poll_failures = check_count(
            "max_consecutive_poll_failures", max_consecutive_poll_failures, minimum=0
        )
        self.fail_on_job_failure = check_flag("fail_on_job_failure", fail_on_job_failure)
        self._started_job_id: str | None = None
        self._creating: tuple[str, dict[str, Any]] | None = None
        if (benchmark_id is None) == (scenario_ids is None):
            raise ValueError("Give exactly one of benchmark_id (a benchmark) or scenario_ids (a list)")
        if benchmark_id is not None:
            check_when_known("benchmark_id", benchmark_id, validate_id)
        if scenario_ids is not None and not rendered_later(scenario_ids):
            _check_scenario_ids(scenario_ids)
        if not rendered_later(agent_configs):
            _check_agent_configs(agent_configs)
        if not rendered_later(orchestrator_config):
            _check_orchestrator_config(orchestrator_config)
        if not rendered_later(job_name):
            _check_optional_text("job_name", job_name)
        check_text("runloop_conn_id", runloop_conn_id)

    @cached_property
    def hook(self) -> RunloopHook:
        """The hook for ``runloop_conn_id``."""
        return RunloopHook(runloop_conn_id=self.runloop_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            return self._create_and_wait(context)
        finally:
            self.hook.close()

    def _create_and_wait(self, context: Context) -> dict[str, Any]:
        spec = self._spec()
        tag = TaskTag.from_context(context)
        name = tag.tagged_name(_check_optional_text("job_name", self.job_name))
        hook = self.hook
        link: str | None = None
        if spec["type"] == "benchmark":
            # Fails early (404) on a wrong id, and tells the benchmark's dashboard section.
            benchmark = hook.get_benchmark(spec["benchmark_id"])
            link = benchmark_url(hook.get_conn().base_url, benchmark.id, is_public=bool(benchmark.is_public))
            RunloopBenchmarkJobLink.persist(context, link)
        job = self._find_live_job(name, spec) if self.reattach else None
        reattached = job is not None
        if job is None:
            # Known before the POST: a kill while it is in flight finds the job by its name (on_kill).
            self._creating = (name, spec)
            job = hook.create_benchmark_job(spec, name=name, idempotency_key=tag.request_id("create-job"))
            self.log.info("Created benchmark job %s (%r)", job.id, name)
        else:
            self.log.info(
                "Reattached to benchmark job %s, which an earlier try of this task created (%r); "
                "set reattach=False to always create a new job",
                job.id,
                name,
            )
        self._started_job_id = job.id
        verdict = judge_benchmark_job(job)
        self.log.info("%s", verdict.message)
        if not self.wait_for_completion or verdict.done:
            return self._finish(context, verdict, reattached, link)
        deadline = time.time() + self.wait_timeout
        if self.deferrable:
            # Read back on resumption (kept in XCom: not every runner hands defer kwargs back).
            context["ti"].xcom_push(key=_RESUME_XCOM_KEY, value={"reattached": reattached, "link": link})
            trigger = RunloopBenchmarkJobTrigger(
                benchmark_job_id=job.id,
                deadline=deadline,
                runloop_conn_id=self.runloop_conn_id,
                poll_interval=self.poll_interval,
                max_consecutive_poll_failures=self.max_consecutive_poll_failures,
                cancel_on_kill=self.cancel_on_kill,
            )
            self.defer(
                trigger=trigger,
                method_name="execute_complete",
                timeout=timedelta(seconds=self.wait_timeout) + _DEFERRAL_GRACE,
            )
        return self._finish(context, self._poll_until_finished(job.id, deadline), reattached, link)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: the job's XCom value, or raise what the event says."""
        status, message, summary = read_trigger_event(
            event, "job", timed_out=self._wait_timed_out, source="Runloop job trigger"
        )
        verdict = BenchmarkJobVerdict(
            done=True, success=status == "success", message=message, summary=summary
        )
        started = context["ti"].xcom_pull(key=_RESUME_XCOM_KEY)
        if not isinstance(started, dict):
            started = {}
        try:
            return self._finish(context, verdict, bool(started.get("reattached")), started.get("link"))
        finally:
            self.hook.close()

    def on_kill(self) -> None:
        """Cancel the job's in-progress benchmark runs (best effort), if ``cancel_on_kill``.

        Killed while the create request is in flight, the task does not know the job's id yet, though
        the server may have created the job: it is then found by its tagged name (and spec).
        """
        job_id, creating = self._started_job_id, self._creating
        if not self.cancel_on_kill or (job_id is None and creating is None):
            return
        # A fresh hook: the task's own may be mid-request.
        hook = RunloopHook(runloop_conn_id=self.runloop_conn_id)
        try:
            if job_id is None and creating is not None:
                job_id = self._job_being_created(hook, *creating)
            if job_id is None:
                return
            canceled = hook.cancel_benchmark_job(job_id)
            self.log.info(
                "Canceled %d in-progress benchmark runs of job %s (the task was killed)",
                len(canceled),
                job_id,
            )
        except RunloopError as exc:
            self.log.warning("Could not cancel benchmark job %s: %s", job_id or "being created", exc)
        finally:
            hook.close()

    def _job_being_created(self, hook: RunloopHook, name: str, spec: dict[str, Any]) -> str | None:
        """The id of the job a create still in flight made, found by its tagged name (``None``: none)."""
        job = self._find_live_job(name, spec, hook)
        if job is None:
            self.log.info("Killed while creating job %r: no live job has that name, nothing to cancel", name)
            return None
        self.log.info("Killed while creating: found job %s by this task's tagged name %r", job.id, name)
        return job.id

    def _spec(self) -> dict[str, Any]:
        """The job spec to send, from the (rendered) arguments, checked."""
        configs = _check_agent_configs(self.agent_configs)
        spec: dict[str, Any]
        if self.benchmark_id is not None:
            spec = {"type": "benchmark", "benchmark_id": validate_id("benchmark_id", self.benchmark_id)}
        else:
            spec = {"type": "scenarios", "scenario_ids": _check_scenario_ids(self.scenario_ids)}
        spec["agent_configs"] = [{"type": "job_agent", **config} for config in configs]
        orchestrator = _check_orchestrator_config(self.orchestrator_config)
        if orchestrator:
            spec["orchestrator_config"] = orchestrator
        return spec

    def _find_live_job(
        self, name: str, spec: dict[str, Any], hook: RunloopHook | None = None
    ) -> BenchmarkJobView | None:
        """The live job this task instance created (on an earlier try, or a create still in flight)."""
        for job in (hook or self.hook).list_benchmark_jobs(name=name, page_size=_LOOKUP_PAGE_SIZE):
            if job.name != name:
                continue
            try:
                state = normalise_job_state(job.state, benchmark_job_id=job.id)
            except RunloopUnknownStateError:
                continue
            if state not in _ALIVE_JOB_STATES:
                continue
            if _job_matches(job, spec):
                return job
            self.log.warning(
                "Benchmark job %s has this task's name but another spec (the DAG changed?): not reattaching",
                job.id,
            )
        return None

    def _poll_until_finished(self, job_id: str, deadline: float) -> BenchmarkJobVerdict:
        failures = 0
        while True:
            try:
                verdict = judge_benchmark_job(self.hook.get_benchmark_job(job_id))
            except RunloopError as exc:
                if not getattr(exc, "retryable", False):
                    raise
                failures += 1
                if failures > self.max_consecutive_poll_failures:
                    raise
                self.log.warning("Poll %d in a row failed: %s", failures, exc)
            else:
                failures = 0
                self.log.info("%s", verdict.message)
                if verdict.done:
                    return verdict
            remaining = deadline - time.time()
            if remaining <= 0:
                raise self._wait_timed_out(f"Benchmark job {job_id} was not finished by the deadline")
            time.sleep(min(self.poll_interval, remaining))

    def _wait_timed_out(self, message: str) -> BaseException:
        next_step = (
            "a retry of this task reattaches to it and waits again"
            if self.reattach
            else "a retry of this task creates a new job (reattach=False)"
        )
        return RunloopError(f"{message}. The job goes on: {next_step}, or raise wait_timeout")

    def _finish(
        self, context: Context, verdict: BenchmarkJobVerdict, reattached: bool, link: str | None
    ) -> dict[str, Any]:
        """The XCom value (and the run ids under their own key); raise if the job failed."""
        summary = verdict.summary
        base_url = self.hook.get_conn().base_url
        benchmark_id = self.benchmark_id if isinstance(self.benchmark_id, str) else None
        runs = [
            {**run, "dashboard_url": benchmark_run_url(base_url, run["benchmark_run_id"], benchmark_id)}
            for run in summary.get("runs", [])
        ]
        if link is None and runs:
            # A job of loose scenarios has no benchmark page: link its first run (all are in the XCom).
            link = runs[0]["dashboard_url"]
            RunloopBenchmarkJobLink.persist(context, link)
        if verdict.done and not verdict.success and self.fail_on_job_failure:
            raise RunloopBenchmarkRunFailedError(
                f"{verdict.message}. Set fail_on_job_failure=False to accept it"
            )
        return {**summary, "runs": runs, "reattached": reattached, "dashboard_url": link}


# --- helpers of the lifecycle operators ---------------------------------------------------------------

# What a deferred task needs again when it resumes.
_RESUME_XCOM_KEY: Final = "runloop_resume"
# As the sensor's: the deferral's own time-out is only a safety net behind the trigger's deadline.
_DEFERRAL_GRACE: Final = timedelta(minutes=5)
_ACTIVE_SCENARIO_STATES: Final = (ScenarioRunState.RUNNING, ScenarioRunState.SCORING, ScenarioRunState.SCORED)


def _seconds(name: str, value: float | timedelta) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return check_number(name, seconds, minimum=0, inclusive=False)


def _check_optional_text(name: str, value: object) -> str | None:
    return None if value is None else check_text(name, value)


def _check_string_map(name: str, value: object) -> dict[str, str]:
    # The message names keys and types, never values: these maps can hold environment variables.
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict of strings to strings, got a {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValueError(
                f"{name} must be a dict of strings to strings; {key!r} maps to a {type(item).__name__}"
            )
    return dict(value)


def _check_run_metadata(value: object) -> dict[str, str]:
    metadata = _check_string_map("metadata", value)
    reserved = sorted(set(metadata) & set(_TAG_METADATA_KEYS))
    if reserved:
        raise ValueError(
            f"metadata must not set {', '.join(reserved)}: the provider tags the run with them to find it "
            "again on a retry"
        )
    return metadata


def _check_run_profile(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"run_profile must be a dict, got {type(value).__name__}")
    unknown = sorted(str(key) for key in value if key not in _RUN_PROFILE_KEYS)
    if unknown:
        raise ValueError(
            f"run_profile has unknown keys {', '.join(unknown)}; the API knows "
            f"{', '.join(sorted(_RUN_PROFILE_KEYS))} (camelCase)"
        )
    for key in ("envVars", "secrets"):
        if key in value:
            _check_string_map(f"run_profile[{key!r}]", value[key])
    return dict(value)


def _check_scenario_ids(value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"scenario_ids must be a non-empty list of scenario ids, got {value!r}")
    return [validate_id("scenario_ids[]", item) for item in value]


def _check_agent_configs(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)) or not value:
        shown = "an empty list" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
        raise ValueError(f"agent_configs must be a non-empty list of agent configs (dicts), got {shown}")
    names: set[str] = set()
    configs = []
    for position, config in enumerate(value):
        where = f"agent_configs[{position}]"
        if not isinstance(config, Mapping):
            raise ValueError(f"{where} must be a dict, got {type(config).__name__}")
        unknown = sorted(str(key) for key in config if key not in _AGENT_CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"{where} has unknown keys {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_AGENT_CONFIG_KEYS))}"
            )
        name = check_text(f"{where}['name']", config.get("name"))
        if name in names:
            raise ValueError(f"{where}['name'] {name!r} is used twice: each agent config needs its own name")
        names.add(name)
        if config.get("type", "job_agent") != "job_agent":
            raise ValueError(f"{where}['type'] must be 'job_agent', got {config.get('type')!r}")
        for key in ("agent_id", "model_name"):
            if config.get(key) is not None:
                check_text(f"{where}[{key!r}]", config[key])
        if config.get("timeout_seconds") is not None:
            check_number(f"{where}['timeout_seconds']", config["timeout_seconds"], minimum=0, inclusive=False)
        if "kwargs" in config:
            _check_string_map(f"{where}['kwargs']", config["kwargs"])
        environment = config.get("agent_environment")
        if environment is not None:
            if not isinstance(environment, Mapping) or set(environment) - _AGENT_ENVIRONMENT_KEYS:
                raise ValueError(
                    f"{where}['agent_environment'] must be a dict with environment_variables and/or secrets"
                )
            for key in _AGENT_ENVIRONMENT_KEYS & set(environment):
                _check_string_map(f"{where}['agent_environment'][{key!r}]", environment[key])
        configs.append(dict(config))
    return configs


def _check_orchestrator_config(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"orchestrator_config must be a dict, got {type(value).__name__}")
    unknown = sorted(str(key) for key in value if key not in _ORCHESTRATOR_KEYS)
    if unknown:
        raise ValueError(
            f"orchestrator_config has unknown keys {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_ORCHESTRATOR_KEYS))}"
        )
    if value.get("n_attempts") is not None:
        check_count("orchestrator_config['n_attempts']", value["n_attempts"], minimum=0)
    if value.get("n_concurrent_trials") is not None:
        check_count("orchestrator_config['n_concurrent_trials']", value["n_concurrent_trials"], minimum=1)
    if value.get("timeout_multiplier") is not None:
        check_number(
            "orchestrator_config['timeout_multiplier']",
            value["timeout_multiplier"],
            minimum=0,
            inclusive=False,
        )
    if value.get("quiet") is not None:
        check_flag("orchestrator_config['quiet']", value["quiet"])
    return dict(value)


def _job_matches(job: BenchmarkJobView, spec: dict[str, Any]) -> bool:
    """Whether a job was created from ``spec`` (as far as the job's view tells)."""
    source = job.job_source or {}
    if source:
        if source.get("type") != spec["type"]:
            return False
        if spec["type"] == "benchmark" and source.get("benchmark_id") != spec["benchmark_id"]:
            return False
        listed = source.get("scenario_ids")
        if spec["type"] == "scenarios" and (
            not isinstance(listed, list) or {str(item) for item in listed} != set(spec["scenario_ids"])
        ):
            return False
    if job.job_spec is not None and job.job_spec.agent_configs:
        names = [str(config.get("name")) for config in job.job_spec.agent_configs]
        if sorted(names) != sorted(config["name"] for config in spec["agent_configs"]):
            return False
    return True


def _state_name(state: object) -> str:
    return str(getattr(state, "value", state))


def _run_outcome(run: BenchmarkRunView, url: str, *, changed: bool) -> dict[str, Any]:
    return {
        "benchmark_run_id": run.id,
        "benchmark_id": run.benchmark_id,
        "state": _state_name(run.state),
        "score": run.score,
        "changed": changed,
        "dashboard_url": url,
    }


def _find_live_run(hook: RunloopHook, benchmark_id: str, name: str, tag: TaskTag) -> BenchmarkRunView | None:
    """The running benchmark run of ``benchmark_id`` that carries this task instance's tag, if any."""
    runs = hook.list_benchmark_runs(
        benchmark_id=benchmark_id, name=name, state=BenchmarkRunState.RUNNING, page_size=_LOOKUP_PAGE_SIZE
    )
    for run in runs:
        # The filters narrow the listing; the tag in the metadata decides.
        if (
            run.state == BenchmarkRunState.RUNNING
            and run.metadata.get(TAG_METADATA_KEY) == tag.key
            and run.benchmark_id in (None, benchmark_id)
        ):
            return run
    return None


def _cancel_run_if_running(runloop_conn_id: str, benchmark_run_id: str, task_log: Any) -> None:
    """Best effort, for ``on_kill``: a fresh hook (the task's own may be mid-request), errors logged."""
    hook = RunloopHook(runloop_conn_id=runloop_conn_id)
    try:
        run = hook.get_benchmark_run(benchmark_run_id)
        if run.state != BenchmarkRunState.RUNNING:
            task_log.info("Benchmark run %s is already %s: nothing to cancel", run.id, _state_name(run.state))
            return
        canceled = hook.cancel_benchmark_run(benchmark_run_id)
        task_log.info("Canceled benchmark run %s (the task was killed)", canceled.id)
    except RunloopError as exc:
        task_log.warning("Could not cancel benchmark run %s: %s", benchmark_run_id, exc)
    finally:
        hook.close()
