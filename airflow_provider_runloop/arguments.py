"""Checks of user-supplied argument values, shared by the trigger, the sensor and the operators.

Each option is validated the same way wherever it is accepted, at construction, before any request,
and the error names the argument and the value it got.
"""

from __future__ import annotations

import math

__all__ = ["check_count", "check_flag", "check_number", "check_optional_count", "check_text"]


def check_text(name: str, value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def check_flag(name: str, value: object) -> bool:
    """A real ``bool`` (not a truthy string such as ``"false"``)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_number(name: str, value: object, *, minimum: float, inclusive: bool = True) -> float:
    """A finite number above ``minimum`` (or at it, when ``inclusive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < minimum or (not inclusive and value == minimum):
        bound = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be {bound} {minimum:g}, got {value!r}")
    return float(value)


def check_count(name: str, value: object, *, minimum: int) -> int:
    """A whole number of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def check_optional_count(name: str, value: object) -> int | None:
    """``None``, or a whole number of at least 1."""
    return None if value is None else check_count(name, value, minimum=1)
