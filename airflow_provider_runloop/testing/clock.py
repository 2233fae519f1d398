"""Clocks that drive the emulator's progression.

Every state the emulator reports is computed from "now" as this clock tells it, so a test that uses
:class:`ManualClock` decides exactly when scenario runs move on (``clock.advance(30)``), while demos use
:class:`RealClock`, optionally sped up. Times are Unix epoch milliseconds, like the API's ``*_ms`` fields.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "RealClock"]

# 2026-01-01T00:00:00Z: a fixed start keeps a manual-clock run byte-for-byte reproducible.
_DEFAULT_MANUAL_START_MS = 1_767_225_600_000


@runtime_checkable
class Clock(Protocol):
    """What the emulator needs from a clock: the current time, and a way to skip ahead."""

    def now_ms(self) -> int:
        """The current time in Unix epoch milliseconds; never goes backwards."""
        ...

    def advance(self, seconds: float) -> int:
        """Move the clock forward by ``seconds`` and return the new time in milliseconds."""
        ...


class ManualClock:
    """A clock that only moves when told to: the default for tests.

    :param start_ms: the initial time (Unix epoch milliseconds); a fixed date by default so that runs are
        reproducible.
    """

    def __init__(self, start_ms: int = _DEFAULT_MANUAL_START_MS) -> None:
        self._now_ms = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float) -> int:
        """Move forward by ``seconds`` (fractions allowed, rounded to the millisecond)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds} s)")
        with self._lock:
            self._now_ms += round(seconds * 1000)
            return self._now_ms

    def __repr__(self) -> str:
        return f"ManualClock(now_ms={self._now_ms})"


class RealClock:
    """Wall-clock time, optionally sped up: the default for demos and the CLI.

    It is monotonic (built on :func:`time.monotonic`), so a system clock change never makes a run move back.

    :param speed: how many emulated seconds pass per real second (``10`` makes a 60 s scenario take 6 s).
    """

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._start_ms = int(time.time() * 1000)
        self._start_monotonic = time.monotonic()
        self._skipped_ms = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        elapsed_ms = (time.monotonic() - self._start_monotonic) * 1000 * self.speed
        return self._start_ms + int(elapsed_ms) + self._skipped_ms

    def advance(self, seconds: float) -> int:
        """Jump ahead by ``seconds`` on top of the passing time (handy to fast-forward a demo)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds} s)")
        with self._lock:
            self._skipped_ms += round(seconds * 1000)
        return self.now_ms()

    def __repr__(self) -> str:
        return f"RealClock(speed={self.speed})"
