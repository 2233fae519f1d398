"""The canary's nets (``tests/support/canary.py``) can fail: a planted key is found in each place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support.canary import CANARY_API_KEY, assert_no_canary, count_canary, scan_paths

PLANT = "rl-canary-planted-0123456789"


def _database(path: Path, value: object) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE xcom (key TEXT, value)")
        db.execute("INSERT INTO xcom VALUES ('return_value', ?)", (value,))
    return path


@pytest.mark.parametrize(
    ("plant", "hits"),
    [
        pytest.param(lambda d: (d / "logs" / "task.log").write_text(f"retry: Bearer {PLANT}\n"), 1, id="log"),
        pytest.param(lambda d: _database(d / "airflow.db", f'{{"msg": "{PLANT}"}}'), 2, id="db-text"),
        pytest.param(lambda d: _database(d / "airflow.db", PLANT.encode()), 2, id="db-blob"),
        pytest.param(lambda d: (d / "results.jsonl").write_bytes(PLANT.encode().hex().encode()), 1, id="hex"),
    ],
)
def test_a_planted_key_is_found(tmp_path: Path, plant: object, hits: int) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "clean.log").write_text("nothing to see: Bearer ***\n")
    plant(tmp_path)  # type: ignore[operator]
    scan = scan_paths([tmp_path], key=PLANT)
    assert len(scan.hits) == hits  # the raw bytes, and (for a database) its iterdump too
    assert all(hit.count >= 1 for hit in scan.hits)
    assert f"{scan.hit_count} hits" in scan.describe()
    assert scan_paths([tmp_path], key=CANARY_API_KEY).hits == []


def test_a_clean_tree_has_no_hits(tmp_path: Path) -> None:
    _database(tmp_path / "airflow.db", "Authorization: ***")
    scan = scan_paths([tmp_path, tmp_path / "missing"], key=PLANT)
    assert (scan.files, scan.databases, scan.hits) == (1, 1, [])


@pytest.mark.parametrize(
    "seen",
    [
        pytest.param(f"message: {PLANT}", id="text"),
        pytest.param({"status": "error", "message": f"Bearer {PLANT}"}, id="event"),
        pytest.param(ValueError(PLANT), id="exception-repr"),
    ],
)
def test_assert_no_canary_fails_on_a_planted_key(seen: object) -> None:
    with pytest.raises(AssertionError, match="canary API key leaked"):
        assert_no_canary("clean", seen, key=PLANT)


def test_the_session_key_is_recognisable() -> None:
    assert CANARY_API_KEY.startswith("rl-canary-")
    assert len(CANARY_API_KEY) > 20
    assert count_canary(f"a{CANARY_API_KEY}b{CANARY_API_KEY}") == 2
