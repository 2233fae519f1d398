"""RunloopBenchmarkRunSensor: wait until a benchmark run is done, in poke, reschedule or deferrable mode.

Every mode applies the same completion rule (``progress.py``) through the same hook call, so the same
server gives the same outcome whichever mode a DAG author picks. How a task waits on a run (one poll
with its failure budget, the trigger, reading the trigger's event, the final verdict) lives in
:class:`BenchmarkRunWaitMixin`, which ``RunloopStartBenchmarkRunOperator`` shares, so that a run started
and awaited by that operator is judged exactly as the sensor judges it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_runloop.arguments import (
    check_count,
    check_flag,
    check_number,
    check_optional_count,
    check_poll_interval,
    check_text,
    check_when_known,
)
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.exceptions import (
    RunloopBenchmarkRunFailedError,
    RunloopError,
)
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.links import RunloopBenchmarkRunLink, benchmark_run_url
from airflow_provider_runloop.progress import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    BenchmarkRunSummary,
    BenchmarkRunVerdict,
    FailureHold,
)
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkRunTrigger, read_trigger_event

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import Logger
    from airflow.triggers.base import BaseTrigger

__all__ = ["BenchmarkRunWaitMixin", "RunloopBenchmarkRunSensor"]

# The deferral's own time-out is a safety net behind the trigger's deadline (say the triggerer is
# down at the deadline): it must never fire first.
_DEFERRAL_GRACE = timedelta(minutes=5)


class BenchmarkRunWaitMixin:
    """How a task waits on a benchmark run: one poll, the trigger, its event, the verdict.

    Mixed into :class:`RunloopBenchmarkRunSensor` and ``RunloopStartBenchmarkRunOperator`` (before
    their Airflow base class), so that both apply the completion rule through the same calls. The task
    sets ``benchmark_run_id`` and ``runloop_conn_id`` (templated) and calls :meth:`_set_wait_options`
    in its ``__init__``.
    """

    benchmark_run_id: str
    runloop_conn_id: str
    expected_scenario_count: int | None
    accept_scored: bool
    fail_on_scenario_failure: bool
    max_consecutive_poll_failures: int
    failure_settle_seconds: float
    _link_stored: bool
    _poll_failures: int
    _failure_hold: FailureHold | None

    if TYPE_CHECKING:

        @property
        def log(self) -> Logger: ...

        def defer(
            self,
            *,
            trigger: BaseTrigger,
            method_name: str,
            kwargs: dict[str, Any] | None = None,
            timeout: timedelta | int | float | None = None,
        ) -> NoReturn: ...

    def _set_wait_options(
        self,
        *,
        expected_scenario_count: int | None,
        accept_scored: bool,
        fail_on_scenario_failure: bool,
        max_consecutive_poll_failures: int,
        failure_settle_seconds: float,
    ) -> None:
        """Check and keep the options of the wait (the same checks for every task that waits)."""
        self.expected_scenario_count = check_optional_count(
            "expected_scenario_count", expected_scenario_count
        )
        self.accept_scored = check_flag("accept_scored", accept_scored)
        self.fail_on_scenario_failure = check_flag("fail_on_scenario_failure", fail_on_scenario_failure)
        self.max_consecutive_poll_failures = check_count(
            "max_consecutive_poll_failures", max_consecutive_poll_failures, minimum=0
        )
        self.failure_settle_seconds = check_number(
            "failure_settle_seconds", failure_settle_seconds, minimum=0
        )
        self._link_stored = False
        self._poll_failures = 0
        self._failure_hold = None

    @cached_property
    def hook(self) -> RunloopHook:
        """The hook for ``runloop_conn_id``."""
        return RunloopHook(runloop_conn_id=self.runloop_conn_id)

    def _check(self, context: Context) -> BenchmarkRunVerdict | None:
        """One poll. ``None`` when it failed in a way the failure budget still tolerates."""
        held = self._recall_failure_hold(context)
        try:
            verdict = self.hook.check_benchmark_run(
                self.benchmark_run_id,
                expected_count=self.expected_scenario_count,
                expected_from_benchmark=self.expected_scenario_count is None,
                accept_scored=self.accept_scored,
                fail_on_scenario_failure=self.fail_on_scenario_failure,
                failure_settle_seconds=self.failure_settle_seconds,
                failure_hold=held,
            )
        except RunloopError as exc:
            if not getattr(exc, "retryable", False):
                raise
            self._poll_failures = self._recall_poll_failures(context) + 1
            self._remember_poll_failures(context, self._poll_failures)
            if self._poll_failures > self.max_consecutive_poll_failures:
                raise
            self.log.warning("Poll %d in a row failed: %s", self._poll_failures, exc)
            return None
        if self._recall_poll_failures(context):
            self._remember_poll_failures(context, 0)
        self._poll_failures = 0
        if verdict.failure_hold != held:
            self._remember_failure_hold(context, verdict.failure_hold)
        if not self._link_stored:
            url = benchmark_run_url(
                self.hook.get_conn().base_url, self.benchmark_run_id, verdict.summary.benchmark_id
            )
            RunloopBenchmarkRunLink.persist(context, url)
            self._link_stored = True
        self.log.info("%s", verdict.message)
        return verdict

    def _recall_poll_failures(self, context: Context) -> int:
        """Failed polls in a row so far (kept in memory; the sensor keeps them across reschedules)."""
        return self._poll_failures

    def _remember_poll_failures(self, context: Context, failures: int) -> None:
        """Keep the count of failed polls in a row where the next poll will find it."""
        self._poll_failures = failures

    def _recall_failure_hold(self, context: Context) -> FailureHold | None:
        """The failure being held by the last poll (in memory; the sensor keeps it across reschedules)."""
        return self._failure_hold

    def _remember_failure_hold(self, context: Context, hold: FailureHold | None) -> None:
        """Keep the held failure where the next poll will find it."""
        self._failure_hold = hold

    def _wait_trigger(
        self, deadline: float, poll_interval: float, *, cancel_on_kill: bool = False
    ) -> RunloopBenchmarkRunTrigger:
        """The trigger that waits for this run in the triggerer, with this task's options."""
        return RunloopBenchmarkRunTrigger(
            benchmark_run_id=self.benchmark_run_id,
            deadline=deadline,
            runloop_conn_id=self.runloop_conn_id,
            poll_interval=poll_interval,
            expected_scenario_count=self.expected_scenario_count,
            accept_scored=self.accept_scored,
            fail_on_scenario_failure=self.fail_on_scenario_failure,
            max_consecutive_poll_failures=self.max_consecutive_poll_failures,
            cancel_on_kill=cancel_on_kill,
            failure_settle_seconds=self.failure_settle_seconds,
            failure_hold=self._failure_hold.to_dict() if self._failure_hold else None,
        )

    def _defer_wait(self, trigger: RunloopBenchmarkRunTrigger) -> NoReturn:
        """Hand the wait to the triggerer; ``execute_complete`` resumes the task with the event."""
        remaining = timedelta(seconds=max(0.0, trigger.deadline - time.time()))
        self.defer(trigger=trigger, method_name="execute_complete", timeout=remaining + _DEFERRAL_GRACE)

    def _wait_timed_out(self, message: str) -> BaseException:
        """What a wait that ran out of time raises (for the sensor, its own time-out: no retry)."""
        return AirflowSensorTimeout(message)

    def _verdict_from_event(self, event: dict[str, Any] | None) -> BenchmarkRunVerdict:
        """Read the trigger's event: the verdict, or raise what the event says (time-out, error)."""
        _, _, summary = read_trigger_event(
            event, "summary", timed_out=self._wait_timed_out, source="Runloop trigger"
        )
        verdict = BenchmarkRunVerdict(BenchmarkRunSummary.from_dict(summary))
        self.log.info("%s", verdict.message)
        return verdict

    def _finish(self, verdict: BenchmarkRunVerdict) -> dict[str, Any]:
        """The summary of a finished wait, or raise if the run is a failure under the rule."""
        if not verdict.success:
            raise RunloopBenchmarkRunFailedError(verdict.message)
        return verdict.summary.to_dict()

    def _wait_deadline(self, context: Context, seconds: float) -> float:
        """When the wait gives up: ``seconds`` after the start of this try (a resumption keeps it)."""
        started = getattr(context.get("ti"), "start_date", None)
        start = started.timestamp() if started is not None else time.time()
        return start + seconds


class RunloopBenchmarkRunSensor(BenchmarkRunWaitMixin, BaseSensorOperator):
    """Wait until every scenario run of a Runloop benchmark run has reached a final state.

    The run is done when it is not ``failed``/``canceled`` (those fail at once), no scenario run is
    active, and either the run is ``completed`` or every expected scenario has a finished run (see
    the completion rule in the docs). Once done, failed, timed-out or canceled scenarios fail the
    task, naming them, unless ``fail_on_scenario_failure=False``. The XCom value is the summary:
    counts per state, expected/started/finished, mean scores, failed ids.

    A poll costs five small requests while scenario runs are active, whatever the run's size; the
    scenario runs are listed once, at the end.

    :param benchmark_run_id: the benchmark run to wait for (templated).
    :param runloop_conn_id: the Runloop connection (templated).
    :param expected_scenario_count: how many scenarios the run should have. When ``None`` (the
        default), the benchmark's ``scenarioIds`` are used; for a run without a benchmark only the
        run's own ``completed`` state ends the wait.
    :param accept_scored: count ``scored`` scenario runs (score final, devbox still up) as finished.
        Off by default: a ``scored`` run has not been closed yet.
    :param fail_on_scenario_failure: fail the task when any scenario failed, timed out or was
        canceled (default), or succeed and report them in the summary.
    :param max_consecutive_poll_failures: polls in a row that may fail (each after the client's own
        retries) before the wait gives up; default 5. Authentication and not-found errors fail at
        once. In ``mode="reschedule"`` the count is kept in Airflow's task state store between pokes.
    :param failure_settle_seconds: a scenario failure seen while the benchmark run is still open could
        be overturned by a retry of that scenario, so it ends the wait only once it has held this long
        (no scenario run added, none active); default 60. A ``completed`` run and a success end the wait
        at once; ``0`` makes a failure final at once too. See the completion rule in the docs.
    :param deferrable: wait in the triggerer instead of a worker slot (default: the
        ``[operators] default_deferrable`` setting). Checks once before deferring. Not with
        ``mode="reschedule"``: a deferrable sensor frees its slot already, so the two are rejected together.

    ``poke_interval`` (seconds or a ``timedelta``) must be finite and at least
    :data:`~airflow_provider_runloop.arguments.MIN_POLL_INTERVAL` in every mode. Bad options, and a
    ``benchmark_run_id`` that is not an id, fail when the DAG is parsed; a templated id is checked
    after rendering, before the first request.
    """

    template_fields: Sequence[str] = ("benchmark_run_id", "runloop_conn_id")
    operator_extra_links = (RunloopBenchmarkRunLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        benchmark_run_id: str,
        runloop_conn_id: str = RunloopHook.default_conn_name,
        expected_scenario_count: int | None = None,
        accept_scored: bool = False,
        fail_on_scenario_failure: bool = True,
        max_consecutive_poll_failures: int = 5,
        failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        deferrable = check_flag("deferrable", deferrable)
        # Checked before Airflow's own coercion, which turns 1e-9 into 0 and infinity into OverflowError.
        if "poke_interval" in kwargs:
            check_poll_interval("poke_interval", kwargs["poke_interval"])
        if deferrable and kwargs.get("mode") == "reschedule":
            raise ValueError(
                "deferrable=True and mode='reschedule' cannot be combined: a deferrable sensor waits in the "
                "triggerer and holds no worker slot already. Pass one of them."
            )
        super().__init__(**kwargs)
        self.poke_interval = check_poll_interval("poke_interval", self.poke_interval)
        check_when_known("benchmark_run_id", benchmark_run_id, validate_id)
        check_text("runloop_conn_id", runloop_conn_id)
        self.benchmark_run_id = benchmark_run_id
        self.runloop_conn_id = runloop_conn_id
        self._set_wait_options(
            expected_scenario_count=expected_scenario_count,
            accept_scored=accept_scored,
            fail_on_scenario_failure=fail_on_scenario_failure,
            max_consecutive_poll_failures=max_consecutive_poll_failures,
            failure_settle_seconds=failure_settle_seconds,
        )
        self.deferrable = deferrable
        self._deadline: float | None = None

    def execute(self, context: Context) -> Any:
        # Templates are rendered by now: check the id before the first request.
        validate_id("benchmark_run_id", self.benchmark_run_id)
        if not self.deferrable:
            return super().execute(context)
        verdict = self._check(context)
        if verdict is not None and verdict.done:
            return self._finish(verdict)
        # Watch only: the sensor did not start the run, so killing it never cancels the run.
        self._defer_wait(self._wait_trigger(self._timeout_deadline(context), float(self.poke_interval)))

    def poke(self, context: Context) -> PokeReturnValue:
        verdict = self._check(context)
        if verdict is not None and verdict.done:
            return PokeReturnValue(is_done=True, xcom_value=self._finish(verdict))
        if time.time() >= self._timeout_deadline(context):
            message = f"Benchmark run {self.benchmark_run_id} was not done within the sensor's timeout"
            if verdict is not None:
                message += f": {verdict.message}"
            raise AirflowSensorTimeout(message)
        return PokeReturnValue(is_done=False)

    def _timeout_deadline(self, context: Context) -> float:
        """When the wait times out: ``timeout`` after this task instance first started waiting.

        The start is kept in Airflow's task state store under the first try since the task was last
        cleared, so neither a retry, a reschedule nor a deferral's resumption extends the time-out,
        while clearing the task starts a new window. Without a state store (a task run outside
        Airflow) it counts from this call.
        """
        if self._deadline is None:
            store, ti = context.get("task_state_store"), context.get("ti")
            started: Any = None
            if store is not None and ti is not None:
                # ti.max_tries grows when the task is cleared: the first try of this series of tries.
                key = f"runloop_wait_started_at_{ti.max_tries - (self.retries or 0) + 1}"
                started = store.get(key)
                if not isinstance(started, (int, float)) or isinstance(started, bool):
                    started = time.time()
                    store.set(key, started)
            self._deadline = (started if started is not None else time.time()) + float(self.timeout)
        return self._deadline

    def _recall_poll_failures(self, context: Context) -> int:
        store = context.get("task_state_store") if self.reschedule else None
        if store is None:
            return self._poll_failures
        # Each poke in reschedule mode runs in a fresh process: the count lives in the state store.
        failures = store.get(self._failures_key(context), 0)
        return failures if isinstance(failures, int) else 0

    def _remember_poll_failures(self, context: Context, failures: int) -> None:
        self._poll_failures = failures
        store = context.get("task_state_store") if self.reschedule else None
        if store is not None:
            store.set(self._failures_key(context), failures)

    @staticmethod
    def _failures_key(context: Context) -> str:
        return f"runloop_poll_failures_try_{context['ti'].try_number}"

    def _recall_failure_hold(self, context: Context) -> FailureHold | None:
        store = context.get("task_state_store") if self.reschedule else None
        if store is None:
            return self._failure_hold
        return FailureHold.from_dict(store.get(self._hold_key(context), None))

    def _remember_failure_hold(self, context: Context, hold: FailureHold | None) -> None:
        self._failure_hold = hold
        store = context.get("task_state_store") if self.reschedule else None
        if store is not None:
            store.set(self._hold_key(context), hold.to_dict() if hold else None)

    @staticmethod
    def _hold_key(context: Context) -> str:
        return f"runloop_failure_hold_try_{context['ti'].try_number}"

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the summary, or raise what the event says."""
        return self._finish(self._verdict_from_event(event))
