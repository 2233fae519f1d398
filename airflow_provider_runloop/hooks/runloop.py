"""RunloopHook: turns an Airflow ``runloop`` connection into Runloop API clients.

The connection keeps the API key in ``password`` (read without the whitespace around it) and the
API's base URL in ``host`` (default ``https://api.runloop.ai``; a full URL such as
``http://127.0.0.1:8765`` is accepted, and a bare host name means https). Optional extras:
``timeout`` and ``connect_timeout`` (seconds), ``max_retries`` and ``verify_ssl``.

Sync methods serve operators and poke-mode sensors; their ``a``-prefixed twins serve the triggerer
and read the connection with Airflow's async API, so they never block its event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseHook

from airflow_provider_runloop.client import (
    AsyncRunloopClient,
    RunloopClient,
)
from airflow_provider_runloop.exceptions import (
    RunloopAuthenticationError,
    RunloopBadRequestError,
    RunloopError,
)
from airflow_provider_runloop.hooks.connection import client_options
from airflow_provider_runloop.models import (
    BenchmarkJobView,
    BenchmarkRunState,
    BenchmarkRunView,
    BenchmarkView,
    ScenarioRunState,
    ScenarioRunView,
)
from airflow_provider_runloop.progress import (
    DEFAULT_FAILURE_SETTLE_SECONDS,
    BenchmarkRunVerdict,
    CountsOutcome,
    FailureHold,
    ScenarioRunCounts,
    ScenarioRunTally,
    assess_counts,
    expected_scenarios_matter,
    judge,
    settle_failure,
)
from airflow_provider_runloop.progress.plan import CountPlan, full_counts
from airflow_provider_runloop.redaction import redact_credentials

__all__ = ["RunloopHook"]


class RunloopHook(BaseHook):
    """Interact with the Runloop benchmark API through an Airflow connection.

    :param runloop_conn_id: the ``runloop`` connection to use (default ``runloop_default``).
    """

    conn_name_attr = "runloop_conn_id"
    default_conn_name = "runloop_default"
    conn_type = "runloop"
    hook_name = "Runloop"

    def __init__(self, runloop_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runloop_conn_id = runloop_conn_id
        self._client: RunloopClient | None = None
        self._async_client: AsyncRunloopClient | None = None
        # What one hook remembers between polls: per run, which counts to fetch; per benchmark, the
        # number of its scenarios (never its ids: a final listing reads them again, for that poll only).
        self._count_plans: dict[str, CountPlan] = {}
        self._scenario_counts: dict[str, int | None] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(runloop_conn_id={self.runloop_conn_id!r})"

    def __enter__(self) -> RunloopHook:
        """``with RunloopHook() as hook:`` closes the hook's clients when the block ends."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> RunloopHook:
        """``async with RunloopHook() as hook:`` closes the async client when the block ends."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- clients ------------------------------------------------------------------------------------

    def get_conn(self) -> RunloopClient:
        """Return the (cached) synchronous client for this connection."""
        if self._client is None:
            conn = self.get_connection(self.runloop_conn_id)
            options = client_options(self.runloop_conn_id, conn, conn.extra_dejson)
            self._client = RunloopClient(**options)
        return self._client

    async def aget_conn(self) -> AsyncRunloopClient:
        """Return the (cached) asynchronous client, reading the connection without blocking."""
        if self._async_client is None:
            conn = await self.aget_connection(self.runloop_conn_id)
            extra = await conn.aextra_dejson()
            options = client_options(self.runloop_conn_id, conn, extra)
            self._async_client = AsyncRunloopClient(**options)
        return self._async_client

    def close(self) -> None:
        """Release the synchronous client's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Release the asynchronous client's connections."""
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    # -- connection test ----------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated request. Never raises; returns ``(ok, message)``."""
        try:
            client = self.get_conn()
            client.verify_credentials()
        except RunloopAuthenticationError:
            return False, "Runloop authentication failed: check the API key in the password field."
        except (RunloopError, ValueError) as exc:
            return False, f"Runloop connection test failed: {exc}"
        except Exception as exc:
            # Not one of ours, so not redacted yet: it may quote a header (the UI shows this text).
            detail = redact_credentials(f"{type(exc).__name__}: {exc}")
            return False, f"Runloop connection test failed: {detail}"
        finally:
            self.close()
        return True, f"Connected to the Runloop API at {client.base_url}."

    # -- waiting on a benchmark run (one poll; the rule itself lives in progress) ---------------------

    def check_benchmark_run(
        self,
        benchmark_run_id: str,
        *,
        expected_count: int | None = None,
        expected_scenario_ids: Sequence[str] | None = None,
        expected_from_benchmark: bool = False,
        benchmark_scenario_count: int | None = None,
        accept_scored: bool = False,
        fail_on_scenario_failure: bool = True,
        failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS,
        failure_hold: FailureHold | None = None,
    ) -> BenchmarkRunVerdict:
        """Poll a benchmark run once and apply the completion rule.

        The benchmark run is fetched exactly once. While scenario runs are active a poll is **two small
        requests**, whatever the run's size: the run and one ``limit=1`` count of the state that had the
        most runs at the last full count (:class:`~airflow_provider_runloop.progress.plan.CountPlan`);
        one active run is enough to say "not done". The other three counts are added, in the same poll,
        when that count finds nothing, and at least once a minute for the progress line (five requests
        at most). Only when the counts say the run may be done (or it failed) are the scenario runs
        listed, once, streamed into a tally.

        A scenario failure seen while the benchmark run is still open is not final at once (Runloop may
        retry the scenario): the verdict is then not done and carries a ``failure_hold``; pass it to the
        next call, and the failure becomes final once it has held for ``failure_settle_seconds`` (see
        :func:`~airflow_provider_runloop.progress.settle_failure`).

        :param benchmark_run_id: the benchmark run to check.
        :param expected_count: how many scenarios the run should have; takes precedence.
        :param expected_scenario_ids: the scenarios the run should have (see
            :meth:`get_expected_scenario_ids`).
        :param expected_from_benchmark: when neither of the above is given, expect the benchmark's
            ``scenarioIds``. Their number is read (once per hook, unless ``benchmark_scenario_count``
            gives it) only when a verdict depends on it, near the end of the wait; the ids themselves
            only for the final listing, which checks each expected scenario and names the missing ones.
        :param benchmark_scenario_count: the number of distinct ``scenarioIds`` of the run's benchmark,
            if the caller already knows it (a trigger gets it from the task that deferred).
        :param accept_scored: count ``scored`` scenario runs as finished.
        :param fail_on_scenario_failure: fail the verdict when scenarios failed (default), or only
            report them.
        :param failure_settle_seconds: how long a failure in an open run must hold before it is final;
            ``0`` makes it final at once.
        :param failure_hold: the previous call's ``verdict.failure_hold``.
        """
        rule = _Rule(
            expected_count,
            expected_scenario_ids,
            accept_scored,
            fail_on_scenario_failure,
            failure_settle_seconds,
            failure_hold,
        )
        client = self.get_conn()
        plan = self._count_plans.setdefault(benchmark_run_id, CountPlan())
        probe = plan.probe(accept_scored=accept_scored, holding=failure_hold is not None, now=time.time())
        run = client.get_benchmark_run(benchmark_run_id)
        totals: dict[ScenarioRunState | None, int | None] = {}
        if probe is not None:
            totals[probe] = client.scenario_run_total(benchmark_run_id, state=probe)
            busy = plan.busy(run, probe, totals[probe])
            verdict = rule.from_counts(run, busy, time.time()) if busy is not None else None
            if verdict is not None:
                return verdict  # not done: one active run says so
        for state in plan.remaining(probe):
            totals[state] = client.scenario_run_total(benchmark_run_id, state=state)
        counts = full_counts(totals)
        plan.counted(counts, time.time())
        ids: list[str] | None = None  # read at most once a poll, and kept no longer
        if expected_from_benchmark and rule.wants_expected(run, counts):
            known, count = self._known_scenario_count(run, benchmark_scenario_count)
            if not known:
                ids = self.get_expected_scenario_ids(run)
                count = self._counted(run.benchmark_id, ids)
            rule = rule.expecting_count(count)
        verdict = rule.from_counts(run, counts, time.time())
        if verdict is not None:
            return verdict
        if expected_from_benchmark and rule.expected_count is None:
            # The final listing checks each expected scenario and names those that never started.
            if ids is None:
                ids = self.get_expected_scenario_ids(run)
                self._counted(run.benchmark_id, ids)
            rule = rule.expecting(ids)
        tally = ScenarioRunTally()
        tally.extend(client.list_scenario_runs(benchmark_run_id))
        return rule.from_tally(run, tally, time.time())

    async def acheck_benchmark_run(
        self,
        benchmark_run_id: str,
        *,
        expected_count: int | None = None,
        expected_scenario_ids: Sequence[str] | None = None,
        expected_from_benchmark: bool = False,
        benchmark_scenario_count: int | None = None,
        accept_scored: bool = False,
        fail_on_scenario_failure: bool = True,
        failure_settle_seconds: float = DEFAULT_FAILURE_SETTLE_SECONDS,
        failure_hold: FailureHold | None = None,
    ) -> BenchmarkRunVerdict:
        """Async twin of :meth:`check_benchmark_run` (a poll's requests are sent concurrently)."""
        rule = _Rule(
            expected_count,
            expected_scenario_ids,
            accept_scored,
            fail_on_scenario_failure,
            failure_settle_seconds,
            failure_hold,
        )
        client = await self.aget_conn()
        plan = self._count_plans.setdefault(benchmark_run_id, CountPlan())
        probe = plan.probe(accept_scored=accept_scored, holding=failure_hold is not None, now=time.time())
        # The run first (a poll that cannot read it sends nothing more), then the counts concurrently:
        # the probe alone, and the rest only if it cannot decide.
        run = await client.get_benchmark_run(benchmark_run_id)
        first = (probe,) if probe is not None else plan.remaining(None)
        totals = dict(zip(first, await self._acount(benchmark_run_id, first), strict=True))
        if probe is not None:
            busy = plan.busy(run, probe, totals[probe])
            verdict = rule.from_counts(run, busy, time.time()) if busy is not None else None
            if verdict is not None:
                return verdict  # not done: one active run says so
            rest = plan.remaining(probe)
            totals.update(zip(rest, await self._acount(benchmark_run_id, rest), strict=True))
        counts = full_counts(totals)
        plan.counted(counts, time.time())
        ids: list[str] | None = None
        if expected_from_benchmark and rule.wants_expected(run, counts):
            known, count = self._known_scenario_count(run, benchmark_scenario_count)
            if not known:
                ids = await self.aget_expected_scenario_ids(run)
                count = self._counted(run.benchmark_id, ids)
            rule = rule.expecting_count(count)
        verdict = rule.from_counts(run, counts, time.time())
        if verdict is not None:
            return verdict
        if expected_from_benchmark and rule.expected_count is None:
            if ids is None:
                ids = await self.aget_expected_scenario_ids(run)
                self._counted(run.benchmark_id, ids)
            rule = rule.expecting(ids)
        tally = ScenarioRunTally()
        async for scenario_run in client.list_scenario_runs(benchmark_run_id):
            tally.add(scenario_run)
        return rule.from_tally(run, tally, time.time())

    async def _acount(
        self, benchmark_run_id: str, states: Sequence[ScenarioRunState | None]
    ) -> list[int | None]:
        client = await self.aget_conn()
        return list(
            await asyncio.gather(*(client.scenario_run_total(benchmark_run_id, state=s) for s in states))
        )

    def get_expected_scenario_ids(self, run: BenchmarkRunView) -> list[str] | None:
        """The scenarios a run should have: its benchmark's ``scenarioIds``, or ``None`` if unknown."""
        if run.benchmark_id is None:
            return None
        return self.get_conn().get_benchmark(run.benchmark_id).scenario_ids or None

    async def aget_expected_scenario_ids(self, run: BenchmarkRunView) -> list[str] | None:
        """Async twin of :meth:`get_expected_scenario_ids`."""
        if run.benchmark_id is None:
            return None
        benchmark = await (await self.aget_conn()).get_benchmark(run.benchmark_id)
        return benchmark.scenario_ids or None

    def get_benchmark_scenario_count(self, benchmark_id: str | None) -> int | None:
        """How many distinct scenarios a benchmark has (``None``: no benchmark, or it lists none).

        Read once per hook and benchmark; only the number is kept (a large benchmark's ids are not). A
        task that defers passes it on to its trigger, so the triggerer never reads the ids to count them.
        """
        if benchmark_id is None:
            return None
        if benchmark_id not in self._scenario_counts:
            return self._counted(benchmark_id, self.get_conn().get_benchmark(benchmark_id).scenario_ids)
        return self._scenario_counts[benchmark_id]

    async def aget_benchmark_scenario_count(self, benchmark_id: str | None) -> int | None:
        """Async twin of :meth:`get_benchmark_scenario_count`."""
        if benchmark_id is None:
            return None
        if benchmark_id not in self._scenario_counts:
            benchmark = await (await self.aget_conn()).get_benchmark(benchmark_id)
            return self._counted(benchmark_id, benchmark.scenario_ids)
        return self._scenario_counts[benchmark_id]

    def _known_scenario_count(self, run: BenchmarkRunView, given: int | None) -> tuple[bool, int | None]:
        """``(True, count)`` when the run's benchmark's scenario count needs no read (given by the
        caller, read before, or no benchmark at all), else ``(False, None)``."""
        if given is not None:
            return True, given
        if run.benchmark_id is None:
            return True, None
        if run.benchmark_id in self._scenario_counts:
            return True, self._scenario_counts[run.benchmark_id]
        return False, None

    def _counted(self, benchmark_id: str | None, ids: Sequence[str] | None) -> int | None:
        count = len(set(ids)) if ids else None  # an empty benchmark says nothing about a run
        if benchmark_id is not None:
            self._scenario_counts[benchmark_id] = count
        return count

    # -- synchronous API ----------------------------------------------------------------------------

    def get_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Fetch a benchmark run."""
        return self.get_conn().get_benchmark_run(benchmark_run_id)

    def get_benchmark(self, benchmark_id: str) -> BenchmarkView:
        """Fetch a benchmark definition (with its ``scenario_ids``)."""
        return self.get_conn().get_benchmark(benchmark_id)

    def list_scenario_runs(
        self,
        benchmark_run_id: str,
        *,
        state: ScenarioRunState | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[ScenarioRunView]:
        """Lazily iterate over a benchmark run's scenario runs, one page in memory at a time."""
        return self.get_conn().list_scenario_runs(benchmark_run_id, state=state, page_size=page_size)

    def count_scenario_runs(
        self, benchmark_run_id: str, *, state: ScenarioRunState | str | None = None
    ) -> int:
        """Count a benchmark run's scenario runs (optionally in one state) with one small request."""
        return self.get_conn().count_scenario_runs(benchmark_run_id, state=state)

    def get_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Fetch a scenario run."""
        return self.get_conn().get_scenario_run(scenario_run_id)

    def start_benchmark_run(
        self,
        benchmark_id: str,
        *,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        run_profile: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> BenchmarkRunView:
        """Start a benchmark run of ``benchmark_id``."""
        return self.get_conn().start_benchmark_run(
            benchmark_id,
            run_name=run_name,
            metadata=metadata,
            run_profile=run_profile,
            idempotency_key=idempotency_key,
        )

    def complete_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Complete a running benchmark run."""
        return self.get_conn().complete_benchmark_run(benchmark_run_id)

    def cancel_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Cancel a benchmark run and its running scenario runs."""
        return self.get_conn().cancel_benchmark_run(benchmark_run_id)

    def create_benchmark_job(
        self, spec: Mapping[str, Any], *, name: str | None = None, idempotency_key: str | None = None
    ) -> BenchmarkJobView:
        """Create a benchmark job from one of the API's job spec variants."""
        return self.get_conn().create_benchmark_job(spec, name=name, idempotency_key=idempotency_key)

    def get_benchmark_job(self, benchmark_job_id: str) -> BenchmarkJobView:
        """Fetch a benchmark job."""
        return self.get_conn().get_benchmark_job(benchmark_job_id)

    def list_benchmark_runs(
        self,
        *,
        benchmark_id: str | None = None,
        name: str | None = None,
        state: BenchmarkRunState | str | None = None,
        search: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[BenchmarkRunView]:
        """Lazily iterate over benchmark runs; filters: ``benchmark_id``, ``name``, ``state``, ``search``."""
        return self.get_conn().list_benchmark_runs(
            benchmark_id=benchmark_id, name=name, state=state, search=search, page_size=page_size
        )

    def list_benchmark_jobs(
        self, *, name: str | None = None, search: str | None = None, page_size: int | None = None
    ) -> Iterator[BenchmarkJobView]:
        """Lazily iterate over benchmark jobs; filters: ``name`` (exact) and ``search``."""
        return self.get_conn().list_benchmark_jobs(name=name, search=search, page_size=page_size)

    def cancel_benchmark_job(self, benchmark_job_id: str) -> list[str]:
        """Stop a benchmark job by canceling each of its in-progress benchmark runs.

        The Runloop API has no endpoint to cancel a job, so this is the closest thing: every run the
        job lists in ``in_progress_runs`` as ``running`` is canceled (which cancels its scenario runs).
        A run that finishes in the meantime is skipped. A job still ``queued`` has no runs yet, so
        nothing can be canceled; the job's own state is whatever Runloop then reports.

        :param benchmark_job_id: the job.
        :return: the ids of the benchmark runs canceled.
        """
        client = self.get_conn()
        job = client.get_benchmark_job(benchmark_job_id)
        canceled = []
        for run_id in _runs_to_cancel(job):
            try:
                canceled.append(client.cancel_benchmark_run(run_id).id)
            except RunloopBadRequestError as exc:
                self.log.info("Benchmark run %s of job %s was not canceled: %s", run_id, job.id, exc)
        return canceled

    def start_scenario_run(
        self,
        scenario_id: str,
        *,
        benchmark_run_id: str | None = None,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        run_profile: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ScenarioRunView:
        """Start a run of one scenario, attached to ``benchmark_run_id`` when given."""
        return self.get_conn().start_scenario_run(
            scenario_id,
            benchmark_run_id=benchmark_run_id,
            run_name=run_name,
            metadata=metadata,
            run_profile=run_profile,
            idempotency_key=idempotency_key,
        )

    def score_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Ask Runloop to score a running scenario run (it moves to ``scoring``, then ``scored``)."""
        return self.get_conn().score_scenario_run(scenario_run_id)

    def complete_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Complete a ``scored`` scenario run (shuts its devbox down)."""
        return self.get_conn().complete_scenario_run(scenario_run_id)

    def cancel_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Cancel a scenario run (shuts its devbox down)."""
        return self.get_conn().cancel_scenario_run(scenario_run_id)

    # -- asynchronous API (for the triggerer) -------------------------------------------------------

    async def aget_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Fetch a benchmark run."""
        return await (await self.aget_conn()).get_benchmark_run(benchmark_run_id)

    async def aget_benchmark(self, benchmark_id: str) -> BenchmarkView:
        """Fetch a benchmark definition."""
        return await (await self.aget_conn()).get_benchmark(benchmark_id)

    async def alist_scenario_runs(
        self,
        benchmark_run_id: str,
        *,
        state: ScenarioRunState | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[ScenarioRunView]:
        """Lazily iterate (``async for``) over a benchmark run's scenario runs."""
        client = await self.aget_conn()
        async for run in client.list_scenario_runs(benchmark_run_id, state=state, page_size=page_size):
            yield run

    async def acount_scenario_runs(
        self, benchmark_run_id: str, *, state: ScenarioRunState | str | None = None
    ) -> int:
        """Count a benchmark run's scenario runs with one small request."""
        return await (await self.aget_conn()).count_scenario_runs(benchmark_run_id, state=state)

    async def aget_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Fetch a scenario run."""
        return await (await self.aget_conn()).get_scenario_run(scenario_run_id)

    async def astart_benchmark_run(
        self,
        benchmark_id: str,
        *,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        run_profile: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> BenchmarkRunView:
        """Start a benchmark run of ``benchmark_id``."""
        return await (await self.aget_conn()).start_benchmark_run(
            benchmark_id,
            run_name=run_name,
            metadata=metadata,
            run_profile=run_profile,
            idempotency_key=idempotency_key,
        )

    async def acomplete_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Complete a running benchmark run."""
        return await (await self.aget_conn()).complete_benchmark_run(benchmark_run_id)

    async def acancel_benchmark_run(self, benchmark_run_id: str) -> BenchmarkRunView:
        """Cancel a benchmark run and its running scenario runs."""
        return await (await self.aget_conn()).cancel_benchmark_run(benchmark_run_id)

    async def acreate_benchmark_job(
        self, spec: Mapping[str, Any], *, name: str | None = None, idempotency_key: str | None = None
    ) -> BenchmarkJobView:
        """Create a benchmark job."""
        client = await self.aget_conn()
        return await client.create_benchmark_job(spec, name=name, idempotency_key=idempotency_key)

    async def aget_benchmark_job(self, benchmark_job_id: str) -> BenchmarkJobView:
        """Fetch a benchmark job."""
        return await (await self.aget_conn()).get_benchmark_job(benchmark_job_id)

    async def alist_benchmark_runs(
        self,
        *,
        benchmark_id: str | None = None,
        name: str | None = None,
        state: BenchmarkRunState | str | None = None,
        search: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[BenchmarkRunView]:
        """Lazily iterate (``async for``) over benchmark runs."""
        client = await self.aget_conn()
        listing = client.list_benchmark_runs(
            benchmark_id=benchmark_id, name=name, state=state, search=search, page_size=page_size
        )
        async for run in listing:
            yield run

    async def alist_benchmark_jobs(
        self, *, name: str | None = None, search: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[BenchmarkJobView]:
        """Lazily iterate (``async for``) over benchmark jobs."""
        client = await self.aget_conn()
        async for job in client.list_benchmark_jobs(name=name, search=search, page_size=page_size):
            yield job

    async def acancel_benchmark_job(self, benchmark_job_id: str) -> list[str]:
        """Async twin of :meth:`cancel_benchmark_job` (cancels the job's in-progress benchmark runs)."""
        client = await self.aget_conn()
        job = await client.get_benchmark_job(benchmark_job_id)
        canceled = []
        for run_id in _runs_to_cancel(job):
            try:
                canceled.append((await client.cancel_benchmark_run(run_id)).id)
            except RunloopBadRequestError as exc:
                self.log.info("Benchmark run %s of job %s was not canceled: %s", run_id, job.id, exc)
        return canceled

    async def astart_scenario_run(
        self,
        scenario_id: str,
        *,
        benchmark_run_id: str | None = None,
        run_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        run_profile: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ScenarioRunView:
        """Start a run of one scenario, attached to ``benchmark_run_id`` when given."""
        return await (await self.aget_conn()).start_scenario_run(
            scenario_id,
            benchmark_run_id=benchmark_run_id,
            run_name=run_name,
            metadata=metadata,
            run_profile=run_profile,
            idempotency_key=idempotency_key,
        )

    async def ascore_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Ask Runloop to score a running scenario run."""
        return await (await self.aget_conn()).score_scenario_run(scenario_run_id)

    async def acomplete_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Complete a ``scored`` scenario run."""
        return await (await self.aget_conn()).complete_scenario_run(scenario_run_id)

    async def acancel_scenario_run(self, scenario_run_id: str) -> ScenarioRunView:
        """Cancel a scenario run."""
        return await (await self.aget_conn()).cancel_scenario_run(scenario_run_id)


@dataclass(frozen=True)
class _Rule:
    """The completion-rule options of one wait, applied to what a poll fetched."""

    expected_count: int | None
    expected_scenario_ids: Sequence[str] | None
    accept_scored: bool
    fail_on_scenario_failure: bool
    failure_settle_seconds: float
    failure_hold: FailureHold | None
    benchmark_count: int | None = None  # the benchmark's scenarios, counted (the counts need no ids)

    def wants_expected(self, run: BenchmarkRunView, counts: ScenarioRunCounts | None) -> bool:
        """No expected scenarios are given yet, and this poll's verdict depends on them."""
        return (
            self.expected_count is None
            and self.expected_scenario_ids is None
            and expected_scenarios_matter(run, counts, accept_scored=self.accept_scored)
        )

    def expecting(self, scenario_ids: Sequence[str] | None) -> _Rule:
        """The rule with the benchmark's ids (for the final listing: each is checked, missing ones named)."""
        return dataclasses.replace(self, expected_scenario_ids=scenario_ids, benchmark_count=None)

    def expecting_count(self, count: int | None) -> _Rule:
        """The rule with the number of the benchmark's scenarios, for the counts (ids are not needed)."""
        return dataclasses.replace(self, benchmark_count=count)

    def from_counts(
        self, run: BenchmarkRunView, counts: ScenarioRunCounts | None, now: float
    ) -> BenchmarkRunVerdict | None:
        """The verdict when the counts settle "not done yet"; ``None`` when a listing must decide."""
        if counts is None:
            return None  # the server sent no total_count: list instead
        assessed = assess_counts(
            run,
            counts,
            expected_count=self.expected_count if self.expected_count is not None else self.benchmark_count,
            expected_scenario_ids=self.expected_scenario_ids,
            accept_scored=self.accept_scored,
            failure_hold=self.failure_hold,
            now=now,
            failure_settle_seconds=self.failure_settle_seconds,
        )
        if assessed.outcome is CountsOutcome.NOT_DONE:
            return BenchmarkRunVerdict(assessed.summary, assessed.failure_hold)
        return None  # maybe done, or failed: one full listing gives the exact verdict and names failures

    def from_tally(self, run: BenchmarkRunView, tally: ScenarioRunTally, now: float) -> BenchmarkRunVerdict:
        """The exact verdict from the full listing, with a failure in an open run held."""
        verdict = judge(
            run,
            tally,
            expected_count=self.expected_count,
            expected_scenario_ids=self.expected_scenario_ids,
            accept_scored=self.accept_scored,
            fail_on_scenario_failure=self.fail_on_scenario_failure,
        )
        return settle_failure(
            verdict,
            failure_hold=self.failure_hold,
            now=now,
            failure_settle_seconds=self.failure_settle_seconds,
        )


def _runs_to_cancel(job: BenchmarkJobView) -> list[str]:
    """The job's benchmark runs that are still running, each once (the twins cancel these)."""
    running = (run.benchmark_run_id for run in job.in_progress_runs if run.state == BenchmarkRunState.RUNNING)
    return list(dict.fromkeys(running))
