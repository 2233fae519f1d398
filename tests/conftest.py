"""Test-session settings shared by every test: an isolated AIRFLOW_HOME, no example DAGs.

Set before Airflow is imported anywhere, so no test reads or writes the developer's ~/airflow.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="runloop-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
