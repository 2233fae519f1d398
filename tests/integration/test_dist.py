"""The release build (``make dist``): ``scripts/dist_check.py`` builds the sdist, the wheel and
``constraints.txt`` into a temporary directory, checks them, installs the wheel into new virtualenvs
and runs the README's install block as written. Here so that ``make test`` fails when a release would.

It needs the package index (or uv's and pip's caches) the way ``make env`` does; it takes about a
minute, most of it Airflow starting in the new virtualenvs. What each check refuses is in
``tests/unit/scripts/test_dist_check.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "dist_check.py"
TIMEOUT_SECONDS = 900


def _dist_check(tmp_path: Path, *args: str) -> tuple[int, str]:
    log = tmp_path / "dist-check.log"
    with log.open("w") as out:
        result = subprocess.run(
            [sys.executable, str(SCRIPT), *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    return result.returncode, log.read_text()


def test_the_release_builds_checks_and_installs_as_the_readme_says(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    code, log = _dist_check(tmp_path, "--out", str(out))
    assert code == 0, log[-6000:]
    assert "dist check passed" in log
    built = sorted(path.name for path in out.iterdir() if not path.name.startswith("."))
    assert [name.split("-")[0] for name in built] == ["airflow_provider_runloop"] * 2 + ["constraints.txt"]
    assert built[0].endswith("-py3-none-any.whl")
    assert built[1].endswith(".tar.gz")
    # Each step ran (the script prints every command it runs).
    for step in ("twine check --strict", "providers list", "providers hooks", "the README's install block"):
        assert step in log, step


def test_a_failing_step_fails_the_check_and_names_the_command(tmp_path: Path) -> None:
    broken_uv = tmp_path / "uv"
    broken_uv.write_text("#!/bin/sh\necho 'no index reachable' >&2\nexit 3\n")
    broken_uv.chmod(0o755)
    code, log = _dist_check(tmp_path, "--uv", str(broken_uv), "--out", str(tmp_path / "dist"))
    assert code == 1, log
    assert "dist check FAILED" in log
    assert f"{broken_uv} build" in log
    assert "exited with 3" in log
    assert "no index reachable" in log
