"""A real Airflow deployment in a temporary AIRFLOW_HOME, for end-to-end tests.

``AirflowStack.start()`` migrates a SQLite metadata DB, then starts four processes: ``airflow api-server``,
``airflow scheduler`` (LocalExecutor), ``airflow dag-processor`` and ``airflow triggerer``. Everything it
binds is on 127.0.0.1: the API server on a free port the OS picks (never 8080), and no log servers at all
(``--skip-serve-logs``: Airflow's log servers listen on every interface; the API server reads task logs
from the shared local log folder instead). Auth is Airflow's SimpleAuthManager with one admin user whose
password the stack writes into the passwords file before the API server starts, so it can ask
``POST /auth/token`` for a JWT.

The HA shape (``database_url`` of a PostgreSQL server, ``schedulers`` and ``triggerers`` above one,
``triggerer_capacity``) runs that many schedulers and triggerers, named ``scheduler``, ``scheduler-2``, ...
and ``triggerer``, ``triggerer-2``, .... The n-th scheduler and the n-th triggerer start together once the
ones before have their rows in the ``job`` table, so :attr:`AirflowStack.job_ids` can say which job is
which process (Airflow's job rows hold no PID, and every component has the same hostname).

Each process runs in its own session and is stopped by its PID (its process group: SIGTERM, wait,
SIGKILL). Their output goes to one log file each, which :meth:`AirflowStack.log_tails` shows when a test
fails.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psutil
import sqlalchemy

__all__ = ["AirflowStack", "free_port", "poll_until", "stop_process_group"]

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "e2e_admin"
T = TypeVar("T")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


_JOB_TYPES = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob"}


def _kind(name: str) -> str:
    """``scheduler-2`` -> ``scheduler``; ``api-server`` stays."""
    head, _, tail = name.rpartition("-")
    return head if tail.isdigit() else name


def _numbered(kind: str, count: int) -> list[str]:
    return [kind if i == 0 else f"{kind}-{i + 1}" for i in range(count)]


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not reaped yet, does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def poll_until(what: str, check: Callable[[], T | None], *, attempts: int, interval: float = 0.5) -> T:
    """Call ``check`` until it returns something other than ``None``; a bounded number of tries."""
    for _ in range(attempts):
        value = check()
        if value is not None:
            return value
        time.sleep(interval)
    raise AssertionError(f"gave up waiting for {what} after {attempts} tries")


def die_with_parent() -> None:
    """In a child, before exec: SIGTERM it when the test process dies (a killed pytest, a killed xdist
    worker), so that no Airflow component outlives the run that started it (Linux ``prctl``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process_group(process: subprocess.Popen[Any], *, grace: float = 20.0) -> None:
    """Stop a process started with ``start_new_session=True``, by its PID: SIGTERM, wait, SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class AirflowStack:
    """An Airflow home plus the processes serving it.

    :param home: the AIRFLOW_HOME (created if missing).
    :param dags_folder: the folder the DAG processor parses.
    :param extra_env: more environment for every component (e.g. settings the DAG files read).
    :param database_url: the metadata DB's SQLAlchemy URL (default: SQLite in the home).
    :param schedulers: how many ``airflow scheduler`` processes to run.
    :param triggerers: how many ``airflow triggerer`` processes to run.
    :param triggerer_capacity: ``[triggerer] capacity`` (default: Airflow's).
    """

    home: Path
    dags_folder: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    database_url: str | None = None
    schedulers: int = 1
    triggerers: int = 1
    triggerer_capacity: int | None = None
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Component name -> its ``job`` row's id (filled for HA stacks: see the module's docstring).
    job_ids: dict[str, int] = field(default_factory=dict)
    _log_files: list[IO[bytes]] = field(default_factory=list)
    _token: str | None = field(default=None, repr=False)

    @property
    def ha(self) -> bool:
        """Whether this is the HA shape (more than one scheduler or triggerer, or another DB)."""
        return self.database_url is not None or self.schedulers > 1 or self.triggerers > 1

    @property
    def sql_alchemy_conn(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'airflow.db'}"

    @property
    def components(self) -> tuple[str, ...]:
        """The component names, in start order."""
        if not self.ha:
            return COMPONENTS
        return (
            "api-server",
            *_numbered("scheduler", self.schedulers),
            "dag-processor",
            *_numbered("triggerer", self.triggerers),
        )

    def named(self, kind: str) -> list[str]:
        """The names of the components of one kind (``scheduler``, ``triggerer``), in start order."""
        return [name for name in self.components if name == kind or name.startswith(f"{kind}-")]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "component-logs"

    def log_path(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every component (and of ``airflow db migrate``)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and key != "AIRFLOW_HOME"
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__FERNET_KEY": self._fernet_key,
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self._passwords_file),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__WORKERS": "1",
                # Every component signs or checks the same JWTs (task tokens, the REST API's).
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                # Airflow 3.3's deferral race (docs/deployment.md): a task that defers exits at once, but
                # its supervisor notices only at its next wake-up, up to this many seconds later. The
                # executor's late "success" for the deferred try can then land on the resumed try and
                # fail it. One second keeps that window shorter than any resumption.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                **(
                    {"AIRFLOW__TRIGGERER__CAPACITY": str(self.triggerer_capacity)}
                    if self.triggerer_capacity is not None
                    else {}
                ),
                **self.extra_env,
            }
        )
        return env

    @property
    def _passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    @property
    def _secrets_file(self) -> Path:
        return self.home / "e2e-secrets.json"

    def _secret(self, name: str, make: Callable[[], str]) -> str:
        data = json.loads(self._secrets_file.read_text()) if self._secrets_file.exists() else {}
        if name not in data:
            data[name] = make()
            self._secrets_file.write_text(json.dumps(data))
        return str(data[name])

    @property
    def _fernet_key(self) -> str:
        from cryptography.fernet import Fernet

        return self._secret("fernet_key", lambda: Fernet.generate_key().decode())

    @property
    def _jwt_secret(self) -> str:
        return self._secret("jwt_secret", lambda: secrets.token_urlsafe(32))

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Migrate the DB, start the components, wait until the API server reports them healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        # Written before the API server starts: SimpleAuthManager keeps passwords it finds for its users.
        self._passwords_file.write_text(json.dumps({ADMIN_USER: self.password}))
        airflow = str(Path(sys.executable).with_name("airflow"))
        with self.log_path("db-migrate").open("wb") as log:
            subprocess.run(
                [airflow, "db", "migrate"], env=self.env, stdout=log, stderr=subprocess.STDOUT, check=True
            )
        for wave in self._waves():
            known = set(self.job_ids.values())
            for name in wave:
                self.processes[name] = self._spawn(name, self._command(_kind(name)))
            for name in wave:
                self._await_job_row(name, known)
                known.update(self.job_ids.values())
        poll_until(
            "a healthy Airflow (api-server, scheduler, dag-processor, triggerer)", self._healthy, attempts=240
        )

    def _command(self, kind: str) -> list[str]:
        airflow = str(Path(sys.executable).with_name("airflow"))
        commands = {
            "api-server": [
                airflow,
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
        }
        return commands[kind]

    def _waves(self) -> list[list[str]]:
        """The components in start waves: all at once for the one-of-each stack; for the HA shape the
        components without a job row to tell apart first, then the n-th scheduler with the n-th
        triggerer (one new job row of each type per wave)."""
        if not self.ha:
            return [list(self.components)]
        first = [name for name in self.components if _kind(name) not in _JOB_TYPES]
        schedulers, triggerers = self.named("scheduler"), self.named("triggerer")
        waves = [first]
        for i in range(max(len(schedulers), len(triggerers))):
            waves.append([*schedulers[i : i + 1], *triggerers[i : i + 1]])
        return waves

    def _spawn(self, name: str, command: list[str], *, append: bool = False) -> subprocess.Popen[bytes]:
        log = self.log_path(name).open("ab" if append else "wb")
        self._log_files.append(log)
        return subprocess.Popen(
            command,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def restart(self, name: str) -> None:
        """Start a stopped (or killed) component again under the same name, as a supervisor would; for a
        scheduler or triggerer wait for its new job row (its log goes on in the same file)."""
        process = self.processes[name]
        assert process.poll() is not None, f"airflow {name} is still running"
        known = set(self.job_ids.values())
        self.processes[name] = self._spawn(name, self._command(_kind(name)), append=True)
        self._await_job_row(name, known)

    def _await_job_row(self, name: str, known: set[int]) -> None:
        """For a scheduler or triggerer of an HA stack, wait for its job row (one not in ``known``) and
        remember it in :attr:`job_ids`."""
        job_type = _JOB_TYPES.get(_kind(name))
        if self.ha and job_type is not None:
            self.job_ids[name] = poll_until(
                f"airflow {name}'s job row", lambda: self._new_job(job_type, known, name), attempts=240
            )

    def signal_tree(self, name: str, sig: signal.Signals) -> list[int]:
        """Send ``sig`` to every process of one component: the process and all its descendants, which
        need not share its process group (Airflow's supervisors put their child in a group of its own).
        Returns the PIDs signalled."""
        leader = psutil.Process(self.processes[name].pid)
        members = [leader, *leader.children(recursive=True)]
        for member in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(sig)
        return [member.pid for member in members]

    def kill(self, name: str) -> None:
        """SIGKILL one component, every process of it at once (the machine it ran on died), and reap it."""
        pids = self.signal_tree(name, signal.SIGKILL)
        self.processes[name].wait(timeout=30)
        poll_until(
            f"every process of airflow {name} to be gone",
            lambda: not any(_alive(pid) for pid in pids) or None,
            attempts=60,
        )

    def stop(self) -> None:
        """Stop every component by its PID: all but the API server at once (each may take seconds to
        wind down), then the API server, which the others talk to while they do."""
        first = [
            self.processes[name]
            for name in self.components
            if name in self.processes and name != "api-server"
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(first))) as pool:
            list(pool.map(stop_process_group, first))
        if "api-server" in self.processes:
            stop_process_group(self.processes["api-server"])
        for log in self._log_files:
            log.close()
        self._log_files.clear()

    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the metadata DB ----------------------------------------------------------------------------

    def query(self, sql: str, **params: Any) -> list[sqlalchemy.Row[Any]]:
        """Rows of one read of the metadata DB (a new connection each time)."""
        engine = sqlalchemy.create_engine(self.sql_alchemy_conn, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                return list(connection.execute(sqlalchemy.text(sql), params))
        finally:
            engine.dispose()

    def _new_job(self, job_type: str, known: set[int], name: str) -> int | None:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(
                f"airflow {name} exited with status {process.returncode}:\n{self.log_tails([name])}"
            )
        try:
            rows = self.query(
                "SELECT id FROM job WHERE job_type = :job_type AND state = 'running' ORDER BY id",
                job_type=job_type,
            )
        except sqlalchemy.exc.OperationalError:
            return None
        new = [row.id for row in rows if row.id not in known]
        return int(new[-1]) if new else None

    def _healthy(self) -> bool | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with status {process.returncode}:\n{self.log_tails([name])}"
                )
        try:
            health = httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        statuses = [(health.get(name) or {}).get("status") for name in components]
        return True if all(status == "healthy" for status in statuses) else None

    # -- the REST API -------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """A JWT for the admin user, from ``POST /auth/token``."""
        if self._token is None:
            response = httpx.post(
                f"{self.api_url}/auth/token",
                json={"username": ADMIN_USER, "password": self.password},
                timeout=30,
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def client(self) -> httpx.Client:
        """An httpx client for the REST API, authenticated as the admin user.

        Its read timeout is generous: on a loaded two-core machine the api-server has been seen to stall
        for over 30 s, and every wait on the API is a bounded loop anyway."""
        return httpx.Client(
            base_url=f"{self.api_url}/api/v2", headers={"Authorization": f"Bearer {self.token}"}, timeout=90
        )

    # -- diagnostics --------------------------------------------------------------------------------

    def log_tails(
        self, components: Iterator[str] | list[str] | tuple[str, ...] | None = None, lines: int = 60
    ) -> str:
        """The last lines of each component's log, for a failure report."""
        parts = []
        for name in self.components if components is None else components:
            path = self.log_path(name)
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"----- airflow {name} ({path}) -----\n{tail}")
        return "\n".join(parts)
