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
