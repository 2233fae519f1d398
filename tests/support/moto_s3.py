"""moto's S3-compatible server on a free 127.0.0.1 port, for the tests that write to s3://."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from support.airflow_stack import free_port, poll_until, stop_process_group


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Start moto's server (its own process group), yield its endpoint URL, stop it by its PID."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool | None:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with status {process.returncode}")
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
        except httpx.HTTPError:
            return None
        return True

    try:
        poll_until("moto's S3 server", up, attempts=300, interval=0.1)
        yield endpoint
    finally:
        stop_process_group(process)
