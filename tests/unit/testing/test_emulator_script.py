"""Scenario scripts: parsing, validation, and reproducible plans under a seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_runloop.testing import (
    DEFAULT_SCRIPT,
    ScenarioScript,
    ScriptError,
    load_script,
    quick_script,
)

MIX = {
    "outcomes": {"completed": 0.5, "failed": 0.2, "timeout": 0.2, "setup_failed": 0.1},
    "scenario_count": 200,
}


def _plans(script: ScenarioScript, seed: int) -> list[tuple[Any, ...]]:
    rows = []
    for position in range(script.scenario_count):
        plan = script.plan(position, seed=seed)
        attempt = plan.attempt(0)
        rows.append(
            (plan.name, plan.setup_failed, plan.setup_ms, attempt.outcome, attempt.duration_ms, attempt.score)
        )
    return rows


def test_an_empty_mapping_is_the_default_script() -> None:
    assert ScenarioScript.from_mapping({}) == DEFAULT_SCRIPT
    assert DEFAULT_SCRIPT.scenario_count == 10
    assert [f.name for f in DEFAULT_SCRIPT.scoring_functions] == ["tests_pass", "lint_clean"]


@pytest.mark.parametrize(
    ("script", "names"),
    [
        ({"bogus": 1}, "bogus"),
        ({"timing": {"duraton": 5}}, "duraton"),
        ({"scenarios": [{"outcome": "exploded"}]}, "scenarios[0].outcome"),
        ({"scenarios": [{"attempts": ["failed", "setup_failed"]}]}, "scenarios[0].attempts[1]"),
        ({"scenarios": [{"outcome": "failed", "attempts": ["failed"]}]}, "not both"),
        ({"scenarios": [{"score": 1.5}]}, "scenarios[0].score"),
        ({"scenarios": [{"function_scores": {"nope": 1}}]}, "nope"),
        ({"scenario_count": 1, "scenarios": [{}, {}]}, "scenario_count"),
        ({"scenario_count": -1}, "scenario_count"),
        ({"timing": {"duration": [5, 1]}}, "timing.duration"),
        ({"timing": {"concurrency": 0}}, "timing.concurrency"),
        ({"scores": [0.5, 2]}, "scores"),
        ({"outcomes": {"completed": 0}}, "outcomes"),
        ({"scoring_functions": ["has space"]}, "scoring_functions[0]"),
        ({"scoring_functions": ["a", "a"]}, "duplicate"),
        ({"seed": "7"}, "seed"),
    ],
)
def test_invalid_scripts_are_rejected_naming_the_key(script: dict[str, Any], names: str) -> None:
    with pytest.raises(ScriptError, match=r".*" + names.replace("[", r"\[").replace("]", r"\]")):
        ScenarioScript.from_mapping(script)


def test_same_seed_gives_the_same_plans_and_another_seed_differs() -> None:
    script = ScenarioScript.from_mapping(MIX)
    assert _plans(script, seed=7) == _plans(ScenarioScript.from_mapping(MIX), seed=7)
    assert _plans(script, seed=7) != _plans(script, seed=8)


def test_the_scripts_own_seed_wins_over_the_emulators() -> None:
    script = ScenarioScript.from_mapping({**MIX, "seed": 3})
    assert _plans(script, seed=1) == _plans(script, seed=2) == _plans(script.with_seed(3), seed=99)


def test_a_scenarios_plan_does_not_depend_on_the_other_scenarios() -> None:
    short = ScenarioScript.from_mapping({**MIX, "scenario_count": 5})
    with_entry = ScenarioScript.from_mapping({**MIX, "scenarios": [{"outcome": "canceled", "duration": 99}]})
    assert _plans(short, seed=1)[1:] == _plans(with_entry, seed=1)[1:5]


def test_the_mix_produces_every_outcome_under_a_seed() -> None:
    outcomes = {
        row[3] if not row[1] else "setup_failed" for row in _plans(ScenarioScript.from_mapping(MIX), 0)
    }
    assert outcomes == {"completed", "failed", "timeout", "setup_failed"}


def test_explicit_entries_drive_attempts_setup_failures_timing_and_scores() -> None:
    script = ScenarioScript.from_mapping(
        {
            "scoring_functions": ["tests", {"name": "style", "weight": 3}],
            "scenarios": [
                {"name": "flaky", "attempts": ["failed", "completed"], "score": 0.5},
                {"outcome": "setup_failed"},
                {"function_scores": {"tests": 1.0, "style": 0.0}, "duration": 30, "scoring": [2, 2]},
                {"outcome": "stays_scored", "start_at": 120},
            ],
        }
    )
    flaky = script.plan(0, seed=0)
    assert (flaky.name, flaky.scripted_attempts) == ("flaky", 2)
    assert [flaky.attempt(i).outcome for i in range(3)] == ["failed", "completed", "completed"]
    assert flaky.attempt(1).score == 0.5
    assert flaky.attempt(1).scoring_contract_result()["scoring_function_results"][0]["score"] == 0.5

    setup = script.plan(1, seed=0)
    assert setup.setup_failed
    assert setup.scripted_attempts == 0
    assert 1000 <= setup.setup_ms <= 2000

    weighted = script.plan(2, seed=0).attempt(0)
    assert (weighted.duration_ms, weighted.scoring_ms) == (30_000, 2000)
    assert weighted.score == 0.25  # (1 * 1.0 + 3 * 0.0) / 4
    assert dict(weighted.function_scores) == {"tests": 1.0, "style": 0.0}
    assert script.plan(3, seed=0).start_at_ms == 120_000
    assert script.scenario_name(4) == "scenario-005"


def test_scores_stay_in_the_scripted_range() -> None:
    script = ScenarioScript.from_mapping({"scores": [0.2, 0.3], "scenario_count": 50})
    scores = [score for p in range(50) for _, score in script.plan(p, seed=4).attempt(0).function_scores]
    assert all(0.2 <= score <= 0.3 for score in scores)


def test_quick_script_preset() -> None:
    script = quick_script(40, seed=1)
    assert script.scenario_count == 40
    assert {outcome for outcome, _ in script.outcomes} == {"completed", "failed", "timeout"}


def test_load_script_from_json_and_yaml_files(tmp_path: Path) -> None:
    data = {"scenario_count": 3, "scenarios": [{"outcome": "failed"}]}
    json_file = tmp_path / "script.json"
    json_file.write_text(json.dumps(data))
    yaml_file = tmp_path / "script.yaml"
    yaml_file.write_text("scenario_count: 3\nscenarios:\n  - outcome: failed\n")
    assert load_script(json_file) == load_script(yaml_file) == ScenarioScript.from_mapping(data)


@pytest.mark.parametrize(("name", "text"), [("bad.json", "{"), ("bad.yaml", "a: [")])
def test_load_script_reports_unparsable_files(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ScriptError, match=name):
        load_script(path)


def test_load_script_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="cannot read"):
        load_script(tmp_path / "missing.json")
