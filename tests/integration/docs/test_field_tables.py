"""The docs' field tables list exactly the fields the code writes: the record schema and the summary."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from airflow_provider_runloop.progress import BenchmarkRunSummary
from airflow_provider_runloop.results import RecordSchema

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _first_column(page: str, heading: str) -> list[str]:
    """The first cells of the first table under ``heading``, in order."""
    text = (DOCS / page).read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    end = next((i for i, line in enumerate(rows) if i > 1 and not line.startswith("| `")), len(rows))
    return [line.split("|")[1].strip() for line in rows[2:end]]


def test_the_record_schema_table_lists_every_column_in_order() -> None:
    fields = [
        re.fullmatch(r"`(\w+)`", cell)[1] for cell in _first_column("results.md", "## The record schema")
    ]  # type: ignore[index]
    assert fields == list(RecordSchema(include_environment=True).columns)


def test_the_summary_table_lists_every_key() -> None:
    keys = set()
    for cell in _first_column("completion-rule.md", "## The summary (XCom value and trigger event)"):
        names = re.findall(r"`(\w+)`", cell.split("(+")[0])
        keys.update(names)
        if "(+ `_truncated`)" in cell:
            keys.add(f"{names[-1]}_truncated")  # the flag of the list just before it
    assert keys == {field.name for field in dataclasses.fields(BenchmarkRunSummary)}


def test_the_settings_table_lists_every_variable_the_examples_read_with_its_default() -> None:
    read = {}
    for path in sorted((DOCS.parent / "example_dags").glob("*.py")):
        # os.environ.get("NAME", "default") or os.environ.get("NAME", '{"json": ...}'), over lines too;
        # os.environ.get("NAME") has no default ("").
        pattern = r"""os\.environ\.get\(\s*"(\w+)"\s*(?:,\s*("[^"]*"|'[^']*')\s*)?\)"""
        for name, quoted in re.findall(pattern, path.read_text()):
            default = quoted[1:-1]
            assert read.setdefault(name, default) == default, f"{name} has two defaults"
    text = (DOCS / "examples.md").read_text(encoding="utf-8").split("\n## Settings they read\n", 1)[1]
    text = text.split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in text.splitlines() if line.startswith("| `")]
    documented = {name.strip().strip("`"): default.strip().strip("`") for name, default in rows}
    assert documented == read
