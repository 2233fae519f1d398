"""The HA stack's PostgreSQL (tests/support/postgres.py): it starts from the lock's pgserver binaries on
127.0.0.1, answers a query through the driver Airflow uses, and stops by its PID, leaving no process and
no data dir behind."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy
from support.postgres import PostgresServer


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line holds ``text`` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def test_starts_answers_and_stops_leaving_nothing() -> None:
    server = PostgresServer(database="e2e_check").start()
    try:
        assert server.process is not None
        pid = server.process.pid
        root = server.root
        assert root is not None
        assert server.url.startswith("postgresql+psycopg2://postgres@127.0.0.1:")
        engine = sqlalchemy.create_engine(server.url)
        try:
            with engine.connect() as connection:
                version = connection.execute(sqlalchemy.text("SHOW server_version")).scalar_one()
                listen = connection.execute(sqlalchemy.text("SHOW listen_addresses")).scalar_one()
                database = connection.execute(sqlalchemy.text("SELECT current_database()")).scalar_one()
        finally:
            engine.dispose()
        assert str(version).split(".")[0].isdigit()
        assert listen == "127.0.0.1"
        assert database == "e2e_check"
        assert _processes_mentioning(str(server.data_dir)) == [pid]
    finally:
        server.stop()
    assert server.process.poll() is not None
    assert not _processes_mentioning(str(root)), "a postgres process outlived stop()"
    assert not root.exists()
