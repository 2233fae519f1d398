"""RunloopBenchmarkRunSensor: wait until a benchmark run is done, in poke, reschedule or deferrable mode.

Every mode takes the same steps (:class:`~airflow_provider_runloop.waiting.RunWait`: the hook's one
poll, the one poll-failure budget, the held failure) and applies the same completion rule, so the same
server gives the same outcome, and the same error type, whichever mode a DAG author picks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_runloop.arguments import check_flag, check_poll_interval, check_text, check_when_known
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.links import RunloopBenchmarkRunLink, benchmark_run_url
from airflow_provider_runloop.progress import DEFAULT_FAILURE_SETTLE_SECONDS, BenchmarkRunVerdict
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

__all__ = ["RunloopBenchmarkRunSensor"]


class RunloopBenchmarkRunSensor(WaitPolicyOptions, BaseSensorOperator):
    """Wait until every scenario run of a Runloop benchmark run has reached a final state.

    The run is done when it is not ``failed``/``canceled`` (those fail at once), no scenario run is
    active, and either the run is ``completed`` or every expected scenario has a finished run (see
    the completion rule in the docs). Once done, failed, timed-out or canceled scenarios fail the
    task, naming them, unless ``fail_on_scenario_failure=False``. The XCom value is the summary:
    counts per state, expected/started/finished, mean scores, failed ids.

    A poll costs two small requests while scenario runs are active (five for a full count: the first
    poll, then at least once a minute), whatever the run's size; the
    scenario runs are listed once, at the end. A failed poll is judged by one rule in every mode
    (:func:`~airflow_provider_runloop.waiting.is_transient`): server and network errors and answers that
    do not parse spend ``max_consecutive_poll_failures``; any other error fails the task at once, with
    the same exception type whether it was poked or deferred.

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
        self.policy = WaitPolicy(
            expected_scenario_count, accept_scored, fail_on_scenario_failure, max_consecutive_poll_failures,
            failure_settle_seconds,
        )  # fmt: skip
        self.deferrable = deferrable
        self._deadline: float | None = None
        self._this_wait: RunWait | None = None
        self._link_stored = False
        self._progress = ProgressLog()

    @cached_property
    def hook(self) -> RunloopHook:
        """The hook for ``runloop_conn_id``."""
        return RunloopHook(runloop_conn_id=self.runloop_conn_id)

    def execute(self, context: Context) -> Any:
        # Templates are rendered by now: check the id before the first request.
        validate_id("benchmark_run_id", self.benchmark_run_id)
        try:
            if not self.deferrable:
                return super().execute(context)
            verdict = self._check(context)
            if verdict is not None and verdict.done:
                return finish_run_wait(verdict)
            deadline = self._timeout_deadline(context)
            wait = self._run_wait(context)
            if verdict is not None and self.policy.expected_scenario_count is None:
                # Read here, on the worker, once: the trigger gets the number, never the ids.
                wait.benchmark_scenario_count = self.hook.get_benchmark_scenario_count(
                    verdict.summary.benchmark_id
                )
            # Watch only: the sensor did not start the run, so killing it never cancels the run.
            trigger = RunloopBenchmarkRunTrigger(
                benchmark_run_id=self.benchmark_run_id,
                deadline=deadline,
                runloop_conn_id=self.runloop_conn_id,
                poll_interval=float(self.poke_interval),
                **wait.trigger_kwargs(),
            )
            self.defer(trigger=trigger, method_name="execute_complete", timeout=deferral_timeout(deadline))
        finally:
            self.hook.close()

    def poke(self, context: Context) -> PokeReturnValue:
        verdict = self._check(context)
        if verdict is not None and verdict.done:
            return PokeReturnValue(is_done=True, xcom_value=finish_run_wait(verdict))
        if time.time() >= self._timeout_deadline(context):
            message = f"Benchmark run {self.benchmark_run_id} was not done within the sensor's timeout"
            if verdict is not None:
                message += f": {verdict.message}"
            raise AirflowSensorTimeout(message)
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the summary, or raise what the event says."""
        verdict = verdict_from_event(event, timed_out=AirflowSensorTimeout)
        self.log.info("%s", verdict.message)
        return finish_run_wait(verdict)

    def _run_wait(self, context: Context) -> RunWait:
        """This try's wait. Each poke in reschedule mode runs in a fresh process: its budget and held
        failure live in Airflow's task state store, one set per try."""
        if self._this_wait is None:
            store = context.get("task_state_store") if self.reschedule else None
            if store is None:
                self._this_wait = RunWait(self.policy)
            else:
                self._this_wait = RunWait(self.policy, store, key_suffix=f"_try_{context['ti'].try_number}")
        return self._this_wait

    def _check(self, context: Context) -> BenchmarkRunVerdict | None:
        """One poll. ``None`` when it failed in a way the failure budget still tolerates."""
        verdict = self._run_wait(context).poll(self.hook.check_benchmark_run, self.benchmark_run_id, self.log)
        if verdict is None:
            return None
        if not self._link_stored:
            url = benchmark_run_url(
                self.hook.get_conn().base_url, self.benchmark_run_id, verdict.summary.benchmark_id
            )
            RunloopBenchmarkRunLink.persist(context, url)
            self._link_stored = True
            if self._wait_starts(context):
                self.log.info(
                    "Waiting for benchmark run %s; on the Runloop dashboard: %s", self.benchmark_run_id, url
                )
        if verdict.done:
            self.log.info("%s", verdict.message)
        else:
            self._progress.log(
                self.log, verdict.message, running_since_ms=verdict.summary.benchmark_run_start_time_ms
            )
        return verdict

    def _wait_starts(self, context: Context) -> bool:
        """Whether this is the wait's first poll in this try (the dashboard URL is logged then, once).

        In reschedule mode every poke is a new process: the task state store remembers it."""
        store = context.get("task_state_store") if self.reschedule else None
        if store is None:
            return True
        key = f"runloop_url_logged_try_{context['ti'].try_number}"
        if store.get(key):
            return False
        store.set(key, True)
        return True

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
