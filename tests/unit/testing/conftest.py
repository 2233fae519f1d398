"""Fixtures for the emulator's unit tests: an emulator on a manual clock and an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from airflow_provider_runloop.testing import ManualClock, RunloopEmulator


@pytest.fixture
def emulator() -> RunloopEmulator:
    return RunloopEmulator(clock=ManualClock(), seed=0)


@pytest.fixture
async def client(emulator: RunloopEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """Talks to ``emulator.app`` in-process through ``httpx.ASGITransport`` (no socket), authenticated."""
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://emulator", headers=emulator.auth_headers
    ) as async_client:
        yield async_client
