"""The run lifecycle operators: start, complete and cancel (interactive) benchmark runs.

``RunloopStartBenchmarkRunOperator`` starts a run (or reattaches to the one an earlier try started, by
its :class:`~airflow_provider_runloop.operators.tagging.TaskTag`) and can wait for it with the sensor's
own steps (:class:`~airflow_provider_runloop.waiting.RunWait`); ``RunloopCompleteBenchmarkRunOperator``
and ``RunloopCancelBenchmarkRunOperator`` move a running run to its end, idempotently. See
``docs/lifecycle.md``; benchmark jobs are in ``operators/jobs.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Final

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_runloop.arguments import (
    check_flag,
    check_poll_interval,
    check_text,
    check_when_known,
    renamed_keywords,
    rendered_later,
)
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.exceptions import RunloopBadRequestError, RunloopConflictError, RunloopError
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.links import RunloopBenchmarkRunLink, benchmark_run_url
from airflow_provider_runloop.models import BenchmarkRunState, BenchmarkRunView, ScenarioRunState
from airflow_provider_runloop.operators.request_shapes import (
    check_optional_text,
    check_run_metadata,
    check_run_profile,
    check_seconds,
)
from airflow_provider_runloop.operators.results import some_ids
from airflow_provider_runloop.operators.tagging import TAG_METADATA_KEY, TaskTag
from airflow_provider_runloop.progress import (
    ACTIVE_SCENARIO_STATES,
    DEFAULT_FAILURE_SETTLE_SECONDS,
    MAX_LISTED_IDS,
    BenchmarkRunVerdict,
    known_benchmark_run_state,
    state_name,
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
    from airflow.sdk import Context

__all__ = [
    "DEFAULT_WAIT_TIMEOUT",
    "RENAMED_OPTIONS",
    "RESUME_XCOM_KEY",
    "LifecycleOperator",
    "RunloopCancelBenchmarkRunOperator",
    "RunloopCompleteBenchmarkRunOperator",
    "RunloopStartBenchmarkRunOperator",
    "find_live_run",
]

DEFAULT_WAIT_TIMEOUT: Final = timedelta(days=7)
"""How long the lifecycle operators wait for completion unless told otherwise (as sensors do)."""

RENAMED_OPTIONS: Final = {
    "wait_for_completion": "wait_for_termination",
    "poll_interval": "check_interval",
    "wait_timeout": "timeout",
}
"""The start and the job operators' deprecated option names, each with its new (dbt Cloud's) name.
The old names still work, with an ``AirflowProviderDeprecationWarning`` (see ``docs/lifecycle.md``)."""

RESUME_XCOM_KEY: Final = "runloop_resume"
"""The XCom key of what a deferred lifecycle task needs again when it resumes."""

# Reattaching lists only live runs or jobs with the task's own name: a page or two at most.
LOOKUP_PAGE_SIZE: Final = 100


class LifecycleOperator(BaseOperator):
    """What the operators that start something and may wait for it share: the options of starting and
    waiting (checked here once) and the hook. Subclassed by the start and the job operators.

    :param runloop_conn_id: the Runloop connection (templated).
    :param reattach: look for what an earlier try of this task instance started, and reattach to it.
    :param cancel_on_kill: cancel what the task started if it is killed while it waits or starts.
    :param wait_for_termination: wait until what was started is done.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param check_interval: seconds (or a ``timedelta``) between polls while waiting.
    :param timeout: how long to wait (seconds or a ``timedelta``).
    """

    def __init__(
        self,
        *,
        runloop_conn_id: str,
        reattach: bool,
        cancel_on_kill: bool,
        wait_for_termination: bool,
        deferrable: bool,
        check_interval: float | timedelta,
        timeout: float | timedelta,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.runloop_conn_id = check_text("runloop_conn_id", runloop_conn_id)
        self.reattach = check_flag("reattach", reattach)
        self.cancel_on_kill = check_flag("cancel_on_kill", cancel_on_kill)
        self.wait_for_termination = check_flag("wait_for_termination", wait_for_termination)
        self.deferrable = check_flag("deferrable", deferrable)
        self.check_interval = check_poll_interval("check_interval", check_interval)
        self.timeout = check_seconds("timeout", timeout)
        if self.deferrable and not self.wait_for_termination:
            # As dbt Cloud's operator does: deferring is about the wait, and there is none.
            warnings.warn(
                f"{type(self).__name__} {self.task_id!r}: deferrable=True has no effect with "
                "wait_for_termination=False (the task does not wait, so nothing is deferred)",
                UserWarning,
                stacklevel=3,
            )

    @cached_property
    def hook(self) -> RunloopHook:
        """The hook for ``runloop_conn_id`` (built on first use, never at DAG parse time)."""
        return RunloopHook(runloop_conn_id=self.runloop_conn_id)


class RunloopStartBenchmarkRunOperator(WaitPolicyOptions, LifecycleOperator):
    """Start an interactive benchmark run of a benchmark, or reattach to the one an earlier try started.

    Runloop starts nothing in an interactive run: the DAG starts, scores and completes each scenario run
    (for example in a ``@task`` through :class:`~airflow_provider_runloop.hooks.runloop.RunloopHook`),
    then completes the run (:class:`RunloopCompleteBenchmarkRunOperator`).

    The XCom value: ``benchmark_run_id``, ``benchmark_id``, ``run_name``, ``state``, ``reattached``,
    ``scenario_ids`` (the benchmark's scenarios, read when the run starts, or when a retry reattaches,
    since the benchmark can be edited later), ``expected_scenario_count`` and ``dashboard_url``; with
    ``wait_for_termination`` also ``summary`` (as
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
    :param wait_for_termination: after starting, wait until the run is done under the completion rule
        (as the sensor does). Off by default: an interactive run only progresses when something starts
        its scenario runs, usually tasks downstream of this one. (Was ``wait_for_completion``, which
        still works with a deprecation warning.)
    :param deferrable: wait in the triggerer instead of a worker slot (default: the ``[operators]
        default_deferrable`` setting).
    :param check_interval: seconds between polls while waiting (was ``poll_interval``, deprecated).
    :param timeout: how long to wait (seconds or a ``timedelta``; default 7 days). Running out of
        time fails the try, not the run: a retry reattaches and waits again. (Was ``wait_timeout``,
        deprecated.)
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

    @renamed_keywords(RENAMED_OPTIONS)
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
        wait_for_termination: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        check_interval: float = 30.0,
        timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        expected_scenario_count: int | None = None,
        accept_scored: bool = False,
        fail_on_scenario_failure: bool = True,
        max_consecutive_poll_failures: int = 5,
        failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            runloop_conn_id=runloop_conn_id,
            reattach=reattach,
            cancel_on_kill=cancel_on_kill,
            wait_for_termination=wait_for_termination,
            deferrable=deferrable,
            check_interval=check_interval,
            timeout=timeout,
            **kwargs,
        )
        self.benchmark_id = benchmark_id
        self.run_name = run_name
        self.metadata = metadata
        self.run_profile = run_profile
        self.policy = WaitPolicy(
            expected_scenario_count, accept_scored, fail_on_scenario_failure, max_consecutive_poll_failures,
            failure_settle_seconds,
        )  # fmt: skip
        self._started_run_id: str | None = None
        self._progress = ProgressLog()
        self._starting: tuple[str, str, TaskTag] | None = None
        # Bad input fails at parse time when it is known then; templated values are checked in execute.
        check_when_known("benchmark_id", benchmark_id, validate_id)
        if not rendered_later(run_name):
            check_optional_text("run_name", run_name)
        if not rendered_later(metadata):
            check_run_metadata(metadata)
        if not rendered_later(run_profile):
            check_run_profile(run_profile)

    # The wait's options, as attributes: read from the policy.

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            return self._start_and_wait(context)
        finally:
            self.hook.close()

    def _start_and_wait(self, context: Context) -> dict[str, Any]:
        benchmark_id = validate_id("benchmark_id", self.benchmark_id)
        run_name = check_optional_text("run_name", self.run_name)
        metadata = check_run_metadata(self.metadata)
        run_profile = check_run_profile(self.run_profile)
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
        self.log.info("Benchmark run %s on the Runloop dashboard: %s", run.id, url)
        scenario_ids = list(benchmark.scenario_ids)
        started: dict[str, Any] = {
            "benchmark_run_id": run.id,
            "benchmark_id": benchmark_id,
            "run_name": name,
            "state": state_name(run.state),
            "reattached": reattached,
            "scenario_ids": scenario_ids,
            "expected_scenario_count": self.expected_scenario_count or len(scenario_ids) or None,
            "dashboard_url": url,
        }
        if not self.wait_for_termination:
            return started

        # The wait: the sensor's own steps (RunWait), with this run's snapshot as the expected count.
        wait = RunWait(
            dataclasses.replace(self.policy, expected_scenario_count=started["expected_scenario_count"])
        )
        started_at = getattr(context.get("ti"), "start_date", None)
        deadline = (started_at.timestamp() if started_at is not None else time.time()) + self.timeout
        verdict = self._poll(wait, run.id)
        if self.deferrable and (verdict is None or not verdict.done):
            context["ti"].xcom_push(key=RESUME_XCOM_KEY, value=started)  # read back on resumption
            trigger = RunloopBenchmarkRunTrigger(
                benchmark_run_id=run.id,
                deadline=deadline,
                runloop_conn_id=self.runloop_conn_id,
                poll_interval=self.check_interval,
                cancel_on_kill=self.cancel_on_kill,
                **wait.trigger_kwargs(),
            )
            self.defer(trigger=trigger, method_name="execute_complete", timeout=deferral_timeout(deadline))
        while verdict is None or not verdict.done:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise self._wait_timed_out(f"Benchmark run {run.id} was not done by the deadline")
            time.sleep(min(self.check_interval, remaining))
            verdict = self._poll(wait, run.id)
        return {**started, "summary": finish_run_wait(verdict)}

    def _poll(self, wait: RunWait, run_id: str) -> BenchmarkRunVerdict | None:
        verdict = wait.poll(self.hook.check_benchmark_run, run_id, self.log)
        if verdict is not None and verdict.done:
            self.log.info("%s", verdict.message)
        elif verdict is not None:
            self._progress.log(
                self.log, verdict.message, running_since_ms=verdict.summary.benchmark_run_start_time_ms
            )
        return verdict

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: the start's XCom plus the summary, or raise."""
        try:
            verdict = verdict_from_event(event, timed_out=self._wait_timed_out)
            self.log.info("%s", verdict.message)
            started = context["ti"].xcom_pull(key=RESUME_XCOM_KEY)
            if not isinstance(started, dict):
                started = {"benchmark_run_id": verdict.summary.benchmark_run_id}
            return {**started, "summary": finish_run_wait(verdict)}
        finally:
            self.hook.close()

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
            run = find_live_run(hook, benchmark_id, name, tag)
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
        return RunloopError(f"{message}. The run is still running: {next_step}, or raise timeout")

    def _find_live_run(self, benchmark_id: str, name: str, tag: TaskTag) -> BenchmarkRunView | None:
        """The running benchmark run this task instance started on an earlier try, if any."""
        return find_live_run(self.hook, benchmark_id, name, tag)


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
            state: self.hook.count_scenario_runs(run_id, state=state) for state in ACTIVE_SCENARIO_STATES
        }
        active = {state: count for state, count in counts.items() if count}
        if active:
            listed = ", ".join(f"{state.value} {count}" for state, count in active.items())
            total = sum(active.values())
            named = some_ids(self._name_active_runs(run_id, active), total)
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


# --- helpers ---------------------------------------------------------------------------------------


def _run_outcome(run: BenchmarkRunView, url: str, *, changed: bool) -> dict[str, Any]:
    return {
        "benchmark_run_id": run.id,
        "benchmark_id": run.benchmark_id,
        "state": state_name(run.state),
        "score": run.score,
        "changed": changed,
        "dashboard_url": url,
    }


def find_live_run(hook: RunloopHook, benchmark_id: str, name: str, tag: TaskTag) -> BenchmarkRunView | None:
    """The running benchmark run of ``benchmark_id`` that carries this task instance's tag, if any."""
    runs = hook.list_benchmark_runs(
        benchmark_id=benchmark_id, name=name, state=BenchmarkRunState.RUNNING, page_size=LOOKUP_PAGE_SIZE
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
            task_log.info("Benchmark run %s is already %s: nothing to cancel", run.id, state_name(run.state))
            return
        canceled = hook.cancel_benchmark_run(benchmark_run_id)
        task_log.info("Canceled benchmark run %s (the task was killed)", canceled.id)
    except RunloopError as exc:
        task_log.warning("Could not cancel benchmark run %s: %s", benchmark_run_id, exc)
    finally:
        hook.close()
