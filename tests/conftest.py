"""Test-session settings shared by every test.

Set before Airflow is imported anywhere, so no test reads or writes the developer's ~/airflow: an
isolated AIRFLOW_HOME with a SQLite metadata DB, no example DAGs, and two DAG bundles (the test DAGs
in ``tests/dags`` and the shipped ``example_dags``) so that ``dag.test()`` can find DAG files.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_BUNDLES = [
    {
        "name": name,
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(REPO / folder)},
    }
    for name, folder in (("tests", "tests/dags"), ("examples", "example_dags"))
]

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="runloop-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "tests" / "dags"))
os.environ.setdefault("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(_BUNDLES))


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh, migrated SQLite metadata DB for the session (for ``dag.test()``)."""
    from airflow.utils import db

    db.resetdb()
