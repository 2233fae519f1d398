"""Checks of user-supplied argument values, shared by the trigger, the sensor and the operators.

Each option is validated the same way wherever it is accepted, at construction, before any request,
and the error names the argument and the value it got.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from airflow.sdk import XComArg

__all__ = [
    "MIN_POLL_INTERVAL",
    "check_count",
    "check_flag",
    "check_number",
    "check_optional_count",
    "check_poll_interval",
    "check_text",
    "check_when_known",
    "rendered_later",
]

MIN_POLL_INTERVAL: Final = 0.01
"""The shortest wait between polls, in seconds. A floor against typos (``0``, ``1e-6``, milliseconds
given as seconds), not a rate limit: a poll is itself several requests, so anything shorter only spins.
It is low enough for tests against the local emulator; against the real API use tens of seconds."""


def check_text(name: str, value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {_shown(value)}")
    return value


def check_flag(name: str, value: object) -> bool:
    """A real ``bool`` (not a truthy string such as ``"false"``)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {_shown(value)}")
    return value


def check_number(name: str, value: object, *, minimum: float, inclusive: bool = True) -> float:
    """A finite number above ``minimum`` (or at it, when ``inclusive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _fits_float(value):
        raise ValueError(f"{name} must be a finite number, got {_shown(value)}")
    if value < minimum or (not inclusive and value == minimum):
        bound = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be {bound} {minimum:g}, got {_shown(value)}")
    return float(value)


def _fits_float(value: int | float) -> bool:
    # An int beyond a float's range (10**400) is not a number a deadline or an interval can be:
    # math.isfinite itself raises OverflowError converting it.
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _shown(value: object) -> str:
    # repr of a 400-digit int is a wall of digits in the error; its size says enough.
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # (and str() of one past 4300 digits raises ValueError itself)
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value)


def check_count(name: str, value: object, *, minimum: int) -> int:
    """A whole number of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {_shown(value)}")
    return value


def check_optional_count(name: str, value: object) -> int | None:
    """``None``, or a whole number of at least 1."""
    return None if value is None else check_count(name, value, minimum=1)


def check_poll_interval(name: str, value: object) -> float:
    """Seconds between polls (a number or a ``timedelta``): finite and at least ``MIN_POLL_INTERVAL``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return check_number(name, seconds, minimum=MIN_POLL_INTERVAL)


def rendered_later(value: object) -> bool:
    """A Jinja template or an ``XComArg``: its value is only known (and checked) at run time."""
    if isinstance(value, XComArg):
        return True
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_when_known(name: str, value: object, check: Callable[[str, object], object]) -> None:
    """Apply ``check(name, value)`` now, at DAG parse time, unless the value is rendered later.

    Every task calls this in ``__init__`` for its ids, so a bad literal fails the same way everywhere
    when the DAG is parsed; a templated value is checked in ``execute``, after rendering.
    """
    if not rendered_later(value):
        check(name, value)
