"""``scripts/ui_check.py`` (``make ui-check``): which Chromium it drives, and how checks are reported.

The browser checks themselves need Chromium and a running Airflow; ``make ui-check`` runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dag_files import load_script

ui_check = load_script("ui_check")


def _executable(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("on_path", "found"),
    [
        pytest.param(["chromium-headless-shell", "chromium"], "chromium-headless-shell", id="headless-first"),
        pytest.param(["chromium"], "chromium", id="full-browser"),
        pytest.param([], None, id="none"),
    ],
)
def test_chromium_is_looked_up_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, on_path: list[str], found: str | None
) -> None:
    for name in on_path:
        _executable(tmp_path / "bin", name)
    monkeypatch.delenv(ui_check.CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    expected = None if found is None else str(tmp_path / "bin" / found)
    assert ui_check.find_chromium() == expected


def test_the_environment_variable_wins_and_must_name_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _executable(tmp_path / "bin", "chromium")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    chosen = _executable(tmp_path / "elsewhere", "my-chromium")
    monkeypatch.setenv(ui_check.CHROMIUM_ENV, str(chosen))
    assert ui_check.find_chromium() == str(chosen)
    monkeypatch.setenv(ui_check.CHROMIUM_ENV, str(tmp_path / "missing"))
    assert ui_check.find_chromium() is None


def test_without_chromium_it_prints_the_apt_command_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ui_check.CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ui_check.main() == 2
    assert "sudo apt-get install -y chromium-headless-shell" in capsys.readouterr().out


def test_a_failed_check_or_a_step_that_raises_is_reported_failed(capsys: pytest.CaptureFixture[str]) -> None:
    report = ui_check.Report()
    assert report.check("fine", True)
    assert not report.check("wrong", False, seen=0)
    with report.step("broken"):
        raise TimeoutError("the page never showed it")
    with report.step("quiet"):
        report.check("also fine", True)
    assert report.failed == ["wrong", "broken ran to the end"]
    out = capsys.readouterr().out
    assert "FAILED wrong (seen: 0)" in out
    assert "the page never showed it" in out
