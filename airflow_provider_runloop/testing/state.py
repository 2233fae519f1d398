"""The emulator's store and its lifecycle rules: what each API action does, and how runs progress.

Nothing here knows HTTP or the clock: every method takes ``now_ms`` and the caller (the app, or the
Python control API) holds :attr:`EmulatorState.lock` around the call and the serialisation of its result,
so one request sees one consistent moment.

:class:`EmulatorState` is the facade: it holds the lock and composes the parts that own each job, and
every public method is one of theirs:

* :mod:`.store` - the records, their ids, lookups by id and paged listings;
* :mod:`.catalog` - benchmarks and scenarios;
* :mod:`.timelines` - scenario-run timelines planned from scripts, and rewriting their future;
* :mod:`.benchmark_runs` - benchmark runs: start, state, end, score;
* :mod:`.scenario_runs` - scenario runs: the client's actions and their listings;
* :mod:`.jobs` - benchmark jobs, their runs and outcomes.

Behaviour where the real API is unverified follows the choices in
``docs/emulator.md#choices-where-the-real-api-is-unverified`` (their numbers below):

* state conflicts are 400, never 409 (#11); repeating an action is 200 with the current view (#10);
* scenario runs: ``score`` on ``running`` moves to ``scoring`` at once and to ``scored`` (with
  ``scoring_contract_result``) after the scoring delay (#12); ``score`` on ``scoring``/``scored`` is a no-op;
  ``complete`` needs ``scored`` (#9); ``cancel`` ends any non-terminal run as ``canceled``;
* benchmark runs: ``complete`` works while scenario runs are still active and leaves them as they are (#6);
  ``cancel`` cancels every non-terminal scenario run (#7); either way scenario runs that have not started
  yet never will. ``score`` = Σ result scores ÷ number of scenario runs, set on ``completed``/``canceled``,
  absent when there are no runs (#8);
* interactive benchmark runs never end on their own (#14); scripted and job runs complete themselves once
  every scenario run is lifecycle-over (``completed``/``failed``/``timeout``/``canceled``);
* a scoring phase longer than the scenario's ``scorer_timeout_sec`` ends in ``timeout`` (#13);
* the scenario set of a benchmark is snapshotted when a run starts (#22);
* an id referenced in a request body that does not exist (``benchmark_id``, ``scenario_id``,
  ``benchmark_run_id``) is 404, like an unknown id in the path (#17);
* benchmark jobs: ``queued`` for ``job_queue_seconds``, then ``running`` with one benchmark run per agent
  config, then ``completed`` when all those runs are (``failed`` if one of them failed) (#20). Harbor jobs
  are accepted but not emulated: they fail one second after starting, with a ``failure_reason``.
"""

from __future__ import annotations

import threading

from airflow_provider_runloop.testing.benchmark_runs import BenchmarkRuns
from airflow_provider_runloop.testing.catalog import Catalog
from airflow_provider_runloop.testing.jobs import BenchmarkJobs, JobSpecRequest, ScenarioOutcomeData
from airflow_provider_runloop.testing.records import BenchmarkJobRecord as BenchmarkJobRecord
from airflow_provider_runloop.testing.records import BenchmarkRecord as BenchmarkRecord
from airflow_provider_runloop.testing.records import BenchmarkRunRecord as BenchmarkRunRecord
from airflow_provider_runloop.testing.records import ScenarioRecord as ScenarioRecord
from airflow_provider_runloop.testing.records import ScenarioRunRecord as ScenarioRunRecord
from airflow_provider_runloop.testing.scenario_runs import ScenarioRuns
from airflow_provider_runloop.testing.script import ScenarioScript
from airflow_provider_runloop.testing.settings import EmulatorSettings
from airflow_provider_runloop.testing.store import PageRequest, RecordStore
from airflow_provider_runloop.testing.timelines import RunProfile, Timelines

# The record types imported above with ``as`` stay importable from here, as before the split.
__all__ = [
    "EmulatorState",
    "JobSpecRequest",
    "PageRequest",
    "RunProfile",
    "ScenarioOutcomeData",
]


class EmulatorState:
    """All resources of one emulator, and the rules that change them.

    :param settings: the emulator's live settings.
    :param seed: the seed of ids and of scripts that do not set their own.
    :param default_script: plans the runs of scenarios created over the API.
    """

    def __init__(self, *, settings: EmulatorSettings, seed: int, default_script: ScenarioScript) -> None:
        #: Held around every read and change, and while a response is serialised.
        self.lock = threading.RLock()
        self.settings = settings
        self.seed = seed
        self.default_script = default_script
        self.store = RecordStore(seed, settings)
        self.ids = self.store.ids
        self.catalog = Catalog(self.store, default_script)
        self.timelines = Timelines(self.store, seed)
        self.benchmark_runs = BenchmarkRuns(self.store, self.timelines, settings=settings, seed=seed)
        self.scenario_runs = ScenarioRuns(self.store, self.timelines, self.benchmark_runs, settings=settings)
        self.jobs = BenchmarkJobs(
            self.store,
            self.timelines,
            self.benchmark_runs,
            settings=settings,
            seed=seed,
            default_script=default_script,
        )
        self._forward_the_api()

    def _forward_the_api(self) -> None:
        """Make each part's public methods the state's own (``state.create_job(...)`` and so on)."""
        store, catalog, runs, scenario_runs, jobs = (
            self.store,
            self.catalog,
            self.benchmark_runs,
            self.scenario_runs,
            self.jobs,
        )
        # lookups
        self.benchmark = store.benchmark
        self.scenario = store.scenario
        self.benchmark_run = store.benchmark_run
        self.scenario_run = store.scenario_run
        self.job = store.job
        # benchmarks
        self.create_benchmark = catalog.create_benchmark
        self.update_benchmark = catalog.update_benchmark
        self.update_benchmark_scenarios = catalog.update_benchmark_scenarios
        self.set_benchmark_archived = catalog.set_benchmark_archived
        self.list_benchmarks = catalog.list_benchmarks
        self.benchmark_definitions = catalog.benchmark_definitions
        self.metadata_keys = catalog.metadata_keys
        self.metadata_values = catalog.metadata_values
        self.seed_benchmark = catalog.seed_benchmark
        # scenarios
        self.create_scenario = catalog.create_scenario
        self.update_scenario = catalog.update_scenario
        self.set_scenario_archived = catalog.set_scenario_archived
        self.list_scenarios = catalog.list_scenarios
        # benchmark runs
        self.start_benchmark_run = runs.start_benchmark_run
        self.start_scripted_run = runs.start_scripted_run
        self.list_benchmark_runs = runs.list_benchmark_runs
        self.benchmark_run_end = runs.benchmark_run_end
        self.benchmark_run_state = runs.benchmark_run_state
        self.benchmark_run_score = runs.benchmark_run_score
        self.complete_benchmark_run = runs.complete_benchmark_run
        self.cancel_benchmark_run = runs.cancel_benchmark_run
        self.force_benchmark_run_state = runs.force_benchmark_run_state
        self.scenario_runs_of = runs.scenario_runs_of
        # scenario runs
        self.start_scenario_run = scenario_runs.start_scenario_run
        self.score_scenario_run = scenario_runs.score_scenario_run
        self.complete_scenario_run = scenario_runs.complete_scenario_run
        self.cancel_scenario_run = scenario_runs.cancel_scenario_run
        self.force_scenario_run_state = scenario_runs.force_scenario_run_state
        self.list_scenario_runs = scenario_runs.list_scenario_runs
        self.list_benchmark_run_scenario_runs = scenario_runs.list_benchmark_run_scenario_runs
        self.insert_scenario_run_before = scenario_runs.insert_scenario_run_before
        # jobs
        self.create_job = jobs.create_job
        self.job_runs = jobs.job_runs
        self.job_state = jobs.job_state
        self.job_failure_reason = jobs.job_failure_reason
        self.force_job_state = jobs.force_job_state
        self.job_outcomes = jobs.job_outcomes
        self.list_jobs = jobs.list_jobs
