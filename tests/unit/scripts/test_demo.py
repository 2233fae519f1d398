"""``scripts/demo.py`` (``make demo``): choosing the target, the environment it gives Airflow, what it
shows of ``airflow dags test``, the summary of the results file, and starting/stopping the emulator."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.dag_files import load_script

REPO = Path(__file__).resolve().parents[3]


demo = load_script("demo")


# --- which target ---------------------------------------------------------------------------------------


def test_no_runloop_variables_means_the_emulator() -> None:
    assert demo.target_from_env({}).uses_emulator
    assert demo.target_from_env({"RUNLOOP_API_KEY": " ", "RUNLOOP_BENCHMARK_RUN_ID": ""}).uses_emulator


def test_key_and_run_id_mean_the_real_api() -> None:
    target = demo.target_from_env({"RUNLOOP_API_KEY": "sk-secret", "RUNLOOP_BENCHMARK_RUN_ID": "bmr_123"})
    assert not target.uses_emulator
    assert target.mode == "runloop"
    assert target.benchmark_run_id == "bmr_123"
    assert target.base_url == "https://api.runloop.ai"
    assert json.loads(target.airflow_conn()) == {
        "conn_type": "runloop",
        "host": "https://api.runloop.ai",
        "password": "sk-secret",
    }
    assert "sk-secret" not in repr(target)


def test_a_base_url_is_used_without_its_trailing_slash() -> None:
    target = demo.target_from_env(
        {
            "RUNLOOP_API_KEY": "k",
            "RUNLOOP_BENCHMARK_RUN_ID": "bmr_1",
            "RUNLOOP_BASE_URL": "https://api.example.test/",
        }
    )
    assert target.base_url == "https://api.example.test"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RUNLOOP_API_KEY": "k"}, "RUNLOOP_BENCHMARK_RUN_ID is not"),
        ({"RUNLOOP_BENCHMARK_RUN_ID": "bmr_1"}, "RUNLOOP_API_KEY is not"),
        ({"RUNLOOP_BASE_URL": "https://api.runloop.ai"}, "RUNLOOP_BASE_URL is set"),
        ({"RUNLOOP_API_KEY": "k", "RUNLOOP_BENCHMARK_RUN_ID": "../x"}, "must be a Runloop id"),
        (
            {"RUNLOOP_API_KEY": "k", "RUNLOOP_BENCHMARK_RUN_ID": "bmr_1", "RUNLOOP_BASE_URL": "api.x"},
            "must start with https://",
        ),
    ],
)
def test_half_a_configuration_is_an_error_not_a_fallback(env: dict[str, str], message: str) -> None:
    with pytest.raises(demo.DemoConfigError, match=message):
        demo.target_from_env(env)


def test_main_refuses_half_a_configuration_before_starting_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_run(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("nothing may start")

    monkeypatch.setattr(demo, "run", no_run)
    assert demo.main([], env={"RUNLOOP_API_KEY": "sk-secret"}) == 2
    err = capsys.readouterr().err
    assert "RUNLOOP_BENCHMARK_RUN_ID" in err
    assert "sk-secret" not in err


def test_main_passes_the_real_api_target_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(target: Any, *, timeout: float | None, speed: float) -> int:
        seen.update(target=target, timeout=timeout, speed=speed)
        return 0

    monkeypatch.setattr(demo, "run", fake_run)
    env = {"RUNLOOP_API_KEY": "k", "RUNLOOP_BENCHMARK_RUN_ID": "bmr_9"}
    assert demo.main([], env=env) == 0
    assert seen["target"].benchmark_run_id == "bmr_9"
    assert seen["timeout"] is None  # the real run takes as long as it takes; the sensor has its timeout
    assert demo.main([], env={}) == 0
    assert seen["target"].uses_emulator
    assert seen["timeout"] == demo.EMULATOR_RUN_TIMEOUT_SECONDS
    assert seen["speed"] == demo.EMULATOR_SPEED
    assert demo.main(["--speed", "4"], env={}) == 0
    assert seen["speed"] == 4.0


# --- the environment of airflow -------------------------------------------------------------------------


def test_airflow_env_isolates_the_demo(tmp_path: Path) -> None:
    shell = {
        "PATH": "/usr/bin",
        "AIRFLOW_HOME": "/home/me/airflow",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW_CONN_RUNLOOP_DEFAULT": "runloop://:mine@api.runloop.ai",
        "AIRFLOW_VAR_X": "1",
    }
    env = demo.airflow_env(
        shell,
        airflow_home=tmp_path,
        results_url="file:///r",
        runloop_conn='{"conn_type": "runloop"}',
        poll_seconds=2,
    )
    assert env["PATH"] == "/usr/bin"
    assert env["AIRFLOW_HOME"] == str(tmp_path)
    assert "AIRFLOW__CORE__EXECUTOR" not in env
    assert "AIRFLOW_VAR_X" not in env
    assert env["AIRFLOW_CONN_RUNLOOP_DEFAULT"] == '{"conn_type": "runloop"}'
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow.db'}"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "example_dags")
    assert env["RUNLOOP_FAIL_ON_SCENARIO_FAILURE"] == "false"
    assert env["RUNLOOP_POLL_SECONDS"] == "2"
    assert env["RUNLOOP_RESULTS_URL"] == "file:///r"
    migrate = demo.airflow_env(
        shell, airflow_home=tmp_path, results_url="", runloop_conn=None, poll_seconds=0
    )
    assert "AIRFLOW_CONN_RUNLOOP_DEFAULT" not in migrate


# --- following airflow dags test ------------------------------------------------------------------------


def _line(message: str, logger: str = "airflow.models.dagrun", level: str = "info") -> str:
    return f"2026-11-29T22:20:49.783891Z [{level:<9}] {message} [{logger}] loc=x.py:1\n"


def test_the_filter_shows_progress_and_task_output_and_hides_bookkeeping() -> None:
    progress = demo.ProgressFilter()
    sensor = "airflow.task.operators.airflow_provider_runloop.sensors.runloop.RunloopBenchmarkRunSensor"
    trigger = "airflow_provider_runloop.triggers.runloop.RunloopBenchmarkRunTrigger"
    shown = [
        progress.feed(line)
        for line in [
            "You might need to install the graphviz package\n",
            _line("Filling up the DagBag from /x", "airflow.dag_processing.dagbag.BundleDagBag"),
            _line("[DAG TEST] starting task_id=wait_for_run map_index=-1", "airflow.sdk.definitions.dag"),
            _line("bmr_1: 7/50 scenarios finished (running 19, scoring 6)", sensor),
            _line("Pausing task as DEFERRED. ", "task"),
            _line("bmr_1: 50/50 scenarios finished (completed 46, failed 4). Done", trigger),
            _line("[DAG TEST] end task task_id=wait_for_run map_index=-1", "airflow.sdk.definitions.dag"),
            "printed outside any task\n",
            _line("[DAG TEST] starting task_id=report map_index=-1", "airflow.sdk.definitions.dag"),
            "51 scenario runs in file:///x.jsonl\n",
            _line("Task failed with exception", "task", level="error"),
            _line("[DAG TEST] end task task_id=report map_index=-1", "airflow.sdk.definitions.dag"),
            _line("DagRun Finished: dag_id=d, state=success, run_type=manual", "airflow.models.dagrun"),
        ]
    ]
    assert [line for line in shown if line is not None] == [
        "22:20:49  ▶ wait_for_run",
        "22:20:49    bmr_1: 7/50 scenarios finished (running 19, scoring 6)",
        "22:20:49    deferred: the trigger polls now, no worker slot held",
        "22:20:49    bmr_1: 50/50 scenarios finished (completed 46, failed 4). Done",
        "22:20:49  ▶ report",
        "    51 scenario runs in file:///x.jsonl",
        "22:20:49    Task failed with exception",
        "22:20:49  DAG run finished: success",
    ]


def test_follow_copies_every_line_to_the_log(tmp_path: Path) -> None:
    lines = ["noise\n", _line("[DAG TEST] starting task_id=t map_index=-1")]
    log_path = tmp_path / "log"
    with log_path.open("w") as log:
        shown = list(demo.follow(lines, log))
    assert shown == ["22:20:49  ▶ t"]
    assert log_path.read_text() == "".join(lines)


# --- the summary ----------------------------------------------------------------------------------------


def _record(run: str, scenario: str, state: str, start: int | None, score: float | None) -> str:
    functions = [] if score is None else [{"name": "tests_pass", "score": score, "state": "complete"}]
    return json.dumps(
        {
            "scenario_run_id": run,
            "scenario_id": scenario,
            "name": None if scenario == "scn_c" else f"name of {scenario}",
            "state": state,
            "start_time_ms": start,
            "score": score,
            "scoring_function_results": functions,
        }
    )


def test_the_summary_counts_each_scenario_by_its_latest_run() -> None:
    lines = [
        _record("scr_3", "scn_a", "completed", 3000, 0.5),  # the retry of scn_a: the latest
        _record("scr_2", "scn_b", "timeout", 2000, None),
        _record("scr_1", "scn_a", "failed", 1000, None),  # scn_a's first attempt
        "",
        _record("scr_5", "scn_c", "failed", None, None),
        _record("scr_4", "scn_c", "completed", None, 1.0),  # same (missing) start time: listed first wins
        _record("scr_6", "scn_d", "completed", 4000, 1.0),
    ]
    summary = demo.summarize_records(lines)
    assert summary.records == 6
    assert summary.scenarios == 4
    assert summary.state_counts == {"completed": 2, "timeout": 1, "failed": 1}
    assert summary.mean_score == pytest.approx(0.75)
    assert summary.scorer_means == {"tests_pass": pytest.approx(0.75)}
    assert summary.scored_scenarios == 2
    assert summary.retried_attempts == 2
    assert summary.failed_runs == [("scr_2", "name of scn_b"), ("scr_5", None)]


def test_the_summary_table(tmp_path: Path) -> None:
    summary = demo.ResultsSummary(
        records=51,
        scenarios=50,
        state_counts={"failed": 3, "completed": 46, "timeout": 1},
        mean_score=0.7071,
        scored_scenarios=46,
        scorer_means={"lint_clean": 0.691, "tests_pass": 0.711},
        failed_runs=[(f"scr_{i:02d}", f"scenario-{i}" if i else None) for i in range(12)],
    )
    table = demo.format_summary("bmr_1", summary, tmp_path / "bmr_1.jsonl", 0.65)
    assert table.splitlines() == [
        "Benchmark run bmr_1",
        # Runloop's own score first: the number its dashboard shows.
        "  Runloop run score       0.650   (the run's score, as on the dashboard)",
        "  scenarios                  50   (51 scenario runs: 1 retried attempt; each scenario counts by its "
        "latest run)",
        "    completed                46",
        "    failed                    3",
        "    timeout                   1",
        "  mean, scored scenarios  0.707   (over the 46 scenarios whose latest run has a score)",
        "    lint_clean            0.691",
        "    tests_pass            0.711",
        "  failed, timed out or canceled (12): scr_00, "
        + ", ".join(f"scr_{i:02d} (scenario-{i})" for i in range(1, 10))
        + " and 2 more",
        f"Results file: {tmp_path / 'bmr_1.jsonl'}",
    ]
    unscored = demo.format_summary("bmr_1", summary, tmp_path / "bmr_1.jsonl", None)
    assert unscored.splitlines()[1] == "  Runloop run score        none   (Runloop has not scored the run)"


# --- the emulator process -------------------------------------------------------------------------------


def test_the_emulator_starts_on_loopback_and_stops_by_pid(tmp_path: Path) -> None:
    ready_file = tmp_path / "ready.json"
    with (tmp_path / "emulator.log").open("wb") as log:
        process, ready = demo.start_emulator(sys.executable, ready_file, log)
        try:
            assert ready["host"] == "127.0.0.1"
            assert ready["port"] != 8765
            assert ready["pid"] == process.pid
            assert len(ready["scenario_ids"]) == 50
            assert ready["benchmark_run_id"].startswith("bmr_")
            assert os.getpgid(process.pid) == process.pid  # its own process group, stopped as one
        finally:
            demo.stop_process(process)
    assert process.returncode == 0  # SIGTERM: a clean stop
    assert not ready_file.exists()


def test_the_real_api_path_starts_no_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path)
    monkeypatch.setenv("RUNLOOP_POLL_SECONDS", "45")
    target = demo.target_from_env(
        {
            "RUNLOOP_API_KEY": "sk-secret",
            "RUNLOOP_BENCHMARK_RUN_ID": "bmr_7",
            "RUNLOOP_BASE_URL": "https://x.test",
        }
    )
    demo_run = demo.DemoRun(target)
    try:
        run_id, conn, poll = demo_run.start_target()
    finally:
        demo_run.close()
    assert (run_id, poll) == ("bmr_7", 45.0)
    assert json.loads(conn)["host"] == "https://x.test"
    assert demo_run.started == []
    out = capsys.readouterr().out
    assert out == "Runloop API at https://x.test: waiting for benchmark run bmr_7\n"
    assert "sk-secret" not in out
