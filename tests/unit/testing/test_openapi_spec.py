"""The packaged OpenAPI spec: the file the README vouches for, readable from the package alone."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from airflow_provider_runloop.testing.openapi import SPEC_FILE, load_spec

REPO = Path(__file__).resolve().parents[3]


def test_the_spec_is_the_file_whose_checksum_the_readme_records() -> None:
    readme = (SPEC_FILE.parent / "README.md").read_text()
    recorded = re.search(r"sha256: `([0-9a-f]{64})`", readme)
    assert recorded is not None, "the README must record the spec's sha256"
    assert hashlib.sha256(SPEC_FILE.read_bytes()).hexdigest() == recorded.group(1)


def test_the_spec_lives_in_the_package_and_parses_as_openapi_3_0() -> None:
    assert SPEC_FILE.is_relative_to(REPO / "airflow_provider_runloop")
    spec = load_spec()
    assert spec["openapi"].startswith("3.0.")
    assert (len(spec["paths"]), len(spec["components"]["schemas"])) == (34, 78)
    assert load_spec() is spec  # parsed once per process


def test_nothing_in_the_repository_reads_the_teams_shared_folder() -> None:
    # A clone on its own has nothing beside it; the spec once came from a sibling folder (issue 10, point 5).
    suffixes = {".py", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".sh"}
    names = {"Makefile", "run"}
    skipped = {".venv", ".tools", ".git", "site", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    offenders = [
        str(path.relative_to(REPO))
        for path in REPO.rglob("*")
        if path.is_file()
        and not skipped.intersection(path.relative_to(REPO).parts)
        and (path.suffix in suffixes or path.name in names)
        and re.search(r"\.\./shared|shared/openapi", path.read_text(errors="replace"))
        and path != Path(__file__)
    ]
    assert offenders == []
