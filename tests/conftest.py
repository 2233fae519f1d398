"""Test-session settings shared by every test.

Set before Airflow is imported anywhere, so no test reads or writes the developer's ~/airflow: an
isolated AIRFLOW_HOME with a SQLite metadata DB, no example DAGs, and two DAG bundles (the test DAGs
in ``tests/dags`` and the shipped ``example_dags``) so that ``dag.test()`` can find DAG files.

The canary (``support/canary.py``): every emulator of the fixtures uses the session's canary API key,
a test whose captured output or failure report holds it fails, and at the end of the session the
Airflow home and every temporary folder of the session are scanned for it (files and SQLite dumps).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from support.canary import CANARY_API_KEY, CanaryScan, count_canary, scan_paths

REPO = Path(__file__).resolve().parents[1]
_BUNDLES = [
    {
        "name": name,
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(REPO / folder)},
    }
    for name, folder in (("tests", "tests/dags"), ("examples", "example_dags"))
]

# Property-based tests: a small, fixed budget in `make test` (derandomized: the same examples every
# run, so a failure reproduces and the suite stays fast), a deep random one in `make fuzz`
# (RUNLOOP_HYPOTHESIS_PROFILE=fuzz). The deadline is how "never a hang" is checked: one example of a
# parser taking seconds is a failure, whatever it returned.
settings.register_profile(
    "suite",
    derandomize=True,
    max_examples=100,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=5000,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("RUNLOOP_HYPOTHESIS_PROFILE", "suite"))

# `make test` runs the suite in pytest-xdist workers, which inherit the controller's environment: each
# worker gets an Airflow home (and so a metadata DB) of its own.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER is not None:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix=f"runloop-tests-airflow-{_WORKER}-")
else:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="runloop-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "tests" / "dags"))
os.environ.setdefault("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(_BUNDLES))


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh, migrated SQLite metadata DB for the session (for ``dag.test()``)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def runloop_emulator_options() -> dict[str, Any]:
    """Every emulator of the ``runloop_emulator`` fixtures uses the canary key (a marker may differ)."""
    return {"api_key": CANARY_API_KEY}


_CANARY_SCANS: list[CanaryScan] = []


@pytest.fixture(scope="session", autouse=True)
def _canary_scan_at_the_end(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the last test: no file under the Airflow home or the session's temporary folders (task and
    trigger logs, metadata DBs, exported files, the end-to-end deployments) holds the canary key."""
    yield
    scan = scan_paths([Path(os.environ["AIRFLOW_HOME"]), tmp_path_factory.getbasetemp()])
    _CANARY_SCANS.append(scan)
    assert not scan.hits, scan.describe()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A test whose captured logs or output hold the canary key fails."""
    report: pytest.TestReport = yield
    # A phase's report also carries the earlier phases' sections: look at its own only. (A failure's
    # traceback is not searched: it shows the test's own fixtures, and the test failed anyway.)
    leaking = [
        name for name, text in report.sections if name.endswith(f" {report.when}") and count_canary(text)
    ]
    if leaking:
        original = report.longreprtext
        report.outcome = "failed"
        report.longrepr = f"the canary API key appears in this test's {', '.join(leaking)}\n\n{original}"
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for scan in _CANARY_SCANS:
        terminalreporter.write_line(scan.describe())


@pytest.fixture(autouse=True)
def _collect_after_each_test() -> Iterator[None]:
    """With RUNLOOP_GC_AFTER_EACH_TEST=1, collect garbage after every test, so that an unclosed socket or
    client (an error: pyproject's filterwarnings) is blamed on the test that left it, not on whichever test
    happens to run when the collector does. Off by default: a collection costs ~50 ms on Airflow's heap."""
    yield
    if os.environ.get("RUNLOOP_GC_AFTER_EACH_TEST") == "1":
        import gc

        gc.collect()
