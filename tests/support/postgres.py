"""A throwaway PostgreSQL server for the HA end-to-end stack, from the binaries the ``pgserver`` wheel ships.

Only pgserver's files are used, never its Python API (that one daemonizes the server with ``pg_ctl``,
listens on a Unix socket only and, as root, adds a system user and opens permissions up to ``/``). Here
the test process runs ``initdb`` into a temporary data dir and then ``postgres`` itself, in the
foreground, as its own child: bound to 127.0.0.1 on a free port, its Unix socket in the same temp dir,
trust auth (nothing listens beyond loopback), stopped by its PID (SIGINT: PostgreSQL's fast shutdown,
then SIGKILL), and SIGTERMed by the kernel should the test process die first (``die_with_parent``).

PostgreSQL refuses to run as root. As root (this project's machines and CI are), both programs run as
``nobody``, and the temp dir (under ``/tmp``, not pytest's root-only ``tmp_path``) is chowned to it.

The settings trade durability for speed (``fsync=off``, no synchronous commit, no full-page writes): a
test's database is thrown away with its data dir.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from support.airflow_stack import die_with_parent, free_port

__all__ = ["PostgresServer", "postgres_bin_dir"]

_UNPRIVILEGED_USER = "nobody"


def postgres_bin_dir() -> Path:
    """The ``bin`` folder of the PostgreSQL that the ``pgserver`` wheel ships (found without importing
    pgserver, whose import sets up runtime dirs and locks)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver is not installed (it is in the dev dependency group: make env)")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise RuntimeError(f"no postgres binary under {bin_dir}")
    return bin_dir


def _demote_kwargs() -> dict[str, Any]:
    """Popen arguments that run a child as ``nobody`` when this process is root (else nothing)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(_UNPRIVILEGED_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@dataclass
class PostgresServer:
    """One PostgreSQL server in its own temp dir; a context manager (start on enter, stop on exit).

    :param database: created after the server starts; the one :attr:`url` names.
    """

    database: str = "airflow"
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of :attr:`database` (psycopg2 over TCP on 127.0.0.1)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, *, timeout: float = 60.0) -> PostgresServer:
        bin_dir = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="runloop-e2e-pg-", dir="/tmp"))
        demote = _demote_kwargs()
        if demote:
            os.chown(self.root, demote["user"], demote["group"])
        self._log = self.log_path.open("wb")
        if demote:
            os.chown(self.log_path, demote["user"], demote["group"])
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=120,
            **demote,
        )
        self.process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                # Two schedulers, two triggerers, the API server, the DAG processor, the LocalExecutor's
                # workers and the test itself each hold a few connections.
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
            **demote,
        )
        try:
            self._wait_ready(timeout)
            self.execute(f'CREATE DATABASE "{self.database}"', database="postgres")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                status = self.process.returncode
                raise RuntimeError(f"postgres exited with status {status}:\n{self.log_tail()}")
            try:
                psycopg2.connect(
                    host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", connect_timeout=2
                ).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept connections:\n{self.log_tail()}") from None
                time.sleep(0.2)

    def execute(self, sql: str, *, database: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) and return its rows (none for a statement without)."""
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname=database or self.database
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall()) if cursor.description is not None else []
        finally:
            connection.close()

    def stop(self, *, grace: float = 20.0) -> None:
        """Stop the server by its PID (SIGINT, PostgreSQL's fast shutdown; then SIGKILL to its process
        group) and remove its temp dir."""
        process = self.process
        if process is not None and process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGINT)
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        if self.root is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
