"""RunloopCreateBenchmarkJobOperator: create a benchmark job (Runloop runs and scores it), and wait.

A job runs a benchmark or a list of scenarios once per agent config. Its wait polls the job with the one
poll-failure budget (:class:`~airflow_provider_runloop.waiting.PollBudget`) in the worker, or defers to
:class:`~airflow_provider_runloop.triggers.runloop.RunloopBenchmarkJobTrigger`; the job's rule is
:func:`~airflow_provider_runloop.progress.judge_benchmark_job`. See ``docs/lifecycle.md``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import conf

from airflow_provider_runloop.arguments import (
    check_flag,
    check_when_known,
    renamed_keywords,
    rendered_later,
)
from airflow_provider_runloop.client import validate_id
from airflow_provider_runloop.exceptions import (
    RunloopBenchmarkRunFailedError,
    RunloopError,
    RunloopUnknownStateError,
)
from airflow_provider_runloop.hooks.runloop import RunloopHook
from airflow_provider_runloop.links import RunloopBenchmarkJobLink, benchmark_run_url, benchmark_url
from airflow_provider_runloop.models import BenchmarkJobView
from airflow_provider_runloop.operators.lifecycle import (
    DEFAULT_WAIT_TIMEOUT,
    LOOKUP_PAGE_SIZE,
    RENAMED_OPTIONS,
    RESUME_XCOM_KEY,
    LifecycleOperator,
)
from airflow_provider_runloop.operators.request_shapes import (
    check_agent_configs,
    check_optional_text,
    check_orchestrator_config,
    check_scenario_ids,
)
from airflow_provider_runloop.operators.tagging import TaskTag
from airflow_provider_runloop.progress import (
    ALIVE_JOB_STATES,
    BenchmarkJobVerdict,
    judge_benchmark_job,
    normalise_job_state,
)
from airflow_provider_runloop.triggers.runloop import RunloopBenchmarkJobTrigger
from airflow_provider_runloop.waiting import PollBudget, ProgressLog, deferral_timeout, read_trigger_event

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["RunloopCreateBenchmarkJobOperator"]


class RunloopCreateBenchmarkJobOperator(LifecycleOperator):
    """Create a Runloop benchmark job (Runloop runs and scores everything), and optionally wait for it.

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
    :param wait_for_termination: wait until the job is finished. Off by default, as for the start
        operator (one name, one default; see ``docs/lifecycle.md``): set it, or wait with the sensor
        downstream. (Was ``wait_for_completion``, default ``True``, which still works with a
        deprecation warning.)
    :param deferrable: wait in the triggerer instead of a worker slot (default: the ``[operators]
        default_deferrable`` setting).
    :param check_interval: seconds between polls while waiting (was ``poll_interval``, deprecated).
    :param timeout: how long to wait (seconds or a ``timedelta``; default 7 days). Running out of
        time fails the try, not the job: a retry reattaches and waits again. (Was ``wait_timeout``,
        deprecated.)
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

    @renamed_keywords(RENAMED_OPTIONS)
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
        wait_for_termination: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        check_interval: float = 30.0,
        timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        max_consecutive_poll_failures: int = 5,
        fail_on_job_failure: bool = True,
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
        self.agent_configs = agent_configs
        self.benchmark_id = benchmark_id
        self.scenario_ids = scenario_ids
        self.orchestrator_config = orchestrator_config
        self.job_name = job_name
        self.max_consecutive_poll_failures = PollBudget(max_consecutive_poll_failures).limit
        self.fail_on_job_failure = check_flag("fail_on_job_failure", fail_on_job_failure)
        self._started_job_id: str | None = None
        self._creating: tuple[str, dict[str, Any]] | None = None
        if (benchmark_id is None) == (scenario_ids is None):
            raise ValueError("Give exactly one of benchmark_id (a benchmark) or scenario_ids (a list)")
        if benchmark_id is not None:
            check_when_known("benchmark_id", benchmark_id, validate_id)
        if scenario_ids is not None and not rendered_later(scenario_ids):
            check_scenario_ids(scenario_ids)
        if not rendered_later(agent_configs):
            check_agent_configs(agent_configs)
        if not rendered_later(orchestrator_config):
            check_orchestrator_config(orchestrator_config)
        if not rendered_later(job_name):
            check_optional_text("job_name", job_name)

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            return self._create_and_wait(context)
        finally:
            self.hook.close()

    def _create_and_wait(self, context: Context) -> dict[str, Any]:
        spec = self._spec()
        tag = TaskTag.from_context(context)
        name = tag.tagged_name(check_optional_text("job_name", self.job_name))
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
        if link is not None:
            self.log.info("Benchmark job %s's runs on the Runloop dashboard: %s", job.id, link)
        verdict = judge_benchmark_job(job)
        self.log.info("%s", verdict.message)
        if not self.wait_for_termination or verdict.done:
            return self._finish(context, verdict, reattached, link)
        deadline = time.time() + self.timeout
        if self.deferrable:
            # Read back on resumption (kept in XCom: not every runner hands defer kwargs back).
            context["ti"].xcom_push(key=RESUME_XCOM_KEY, value={"reattached": reattached, "link": link})
            trigger = RunloopBenchmarkJobTrigger(
                benchmark_job_id=job.id,
                deadline=deadline,
                runloop_conn_id=self.runloop_conn_id,
                poll_interval=self.check_interval,
                max_consecutive_poll_failures=self.max_consecutive_poll_failures,
                cancel_on_kill=self.cancel_on_kill,
            )
            self.defer(trigger=trigger, method_name="execute_complete", timeout=deferral_timeout(deadline))
        return self._finish(context, self._poll_until_finished(job.id, deadline), reattached, link)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: the job's XCom value, or raise what the event says."""
        status, message, summary = read_trigger_event(
            event, "job", timed_out=self._wait_timed_out, source="Runloop job trigger"
        )
        verdict = BenchmarkJobVerdict(
            done=True, success=status == "success", message=message, summary=summary
        )
        started = context["ti"].xcom_pull(key=RESUME_XCOM_KEY)
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
        configs = check_agent_configs(self.agent_configs)
        spec: dict[str, Any]
        if self.benchmark_id is not None:
            spec = {"type": "benchmark", "benchmark_id": validate_id("benchmark_id", self.benchmark_id)}
        else:
            spec = {"type": "scenarios", "scenario_ids": check_scenario_ids(self.scenario_ids)}
        spec["agent_configs"] = [{"type": "job_agent", **config} for config in configs]
        orchestrator = check_orchestrator_config(self.orchestrator_config)
        if orchestrator:
            spec["orchestrator_config"] = orchestrator
        return spec

    def _find_live_job(
        self, name: str, spec: dict[str, Any], hook: RunloopHook | None = None
    ) -> BenchmarkJobView | None:
        """The live job this task instance created (on an earlier try, or a create still in flight)."""
        for job in (hook or self.hook).list_benchmark_jobs(name=name, page_size=LOOKUP_PAGE_SIZE):
            if job.name != name:
                continue
            try:
                state = normalise_job_state(job.state, benchmark_job_id=job.id)
            except RunloopUnknownStateError:
                continue
            if state not in ALIVE_JOB_STATES:
                continue
            if _job_matches(job, spec):
                return job
            self.log.warning(
                "Benchmark job %s has this task's name but another spec (the DAG changed?): not reattaching",
                job.id,
            )
        return None

    def _poll_until_finished(self, job_id: str, deadline: float) -> BenchmarkJobVerdict:
        budget = PollBudget(self.max_consecutive_poll_failures)
        progress = ProgressLog()
        while True:
            job = budget.run(lambda: self.hook.get_benchmark_job(job_id), self.log)
            if job is not None:
                verdict = judge_benchmark_job(job)
                if verdict.done:
                    self.log.info("%s", verdict.message)
                    return verdict
                progress.log(self.log, verdict.message)
            remaining = deadline - time.time()
            if remaining <= 0:
                raise self._wait_timed_out(f"Benchmark job {job_id} was not finished by the deadline")
            time.sleep(min(self.check_interval, remaining))

    def _wait_timed_out(self, message: str) -> BaseException:
        next_step = (
            "a retry of this task reattaches to it and waits again"
            if self.reattach
            else "a retry of this task creates a new job (reattach=False)"
        )
        return RunloopError(f"{message}. The job goes on: {next_step}, or raise timeout")

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
