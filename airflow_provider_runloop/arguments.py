"""Checks of user-supplied argument values, shared by the trigger, the sensor and the operators.

Each option is validated the same way wherever it is accepted, at construction, before any request,
and the error names the argument and the value it got.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final, TypeVar, cast
from warnings import warn

from airflow.exceptions import AirflowProviderDeprecationWarning
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
    "renamed_keywords",
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


_Init = TypeVar("_Init", bound=Callable[..., None])

# Where a keyword came from: not given, the DAG's (or task group's) default_args, or the call itself.
_ABSENT, _DEFAULT_ARGS, _GIVEN = 0, 1, 2


def renamed_keywords(renames: Mapping[str, str]) -> Callable[[_Init], _Init]:
    """Keep an operator's old keyword names working: ``renames`` maps each old name to its new one.

    Decorates the operator's ``__init__``. An old name still works (in the call or in ``default_args``)
    and warns ``AirflowProviderDeprecationWarning``; the value goes to the new name. The old and the new
    name of one option given together (both in the call, or both in ``default_args``) is a
    ``ValueError`` naming both, raised before anything else happens; a name in the call beats one in
    ``default_args``. The old names stay in the signature (keyword-only, default ``None``), so
    ``partial``/``expand`` and ``default_args`` accept them as before.
    """

    def decorate(init: _Init) -> _Init:
        signature = inspect.signature(init)
        parameters = list(signature.parameters.values())
        at = next((i for i, p in enumerate(parameters) if p.kind is p.VAR_KEYWORD), len(parameters))
        old_parameters = [
            inspect.Parameter(old, inspect.Parameter.KEYWORD_ONLY, default=None) for old in renames
        ]

        @functools.wraps(init)
        def wrapper(self: object, *args: Any, **kwargs: Any) -> None:
            default_args = kwargs.get("default_args") or {}

            def source(name: str) -> int:
                if name not in kwargs:
                    return _ABSENT
                # The operator metaclass copies a default_args entry in under the same name.
                from_defaults = name in default_args and kwargs[name] is default_args[name]
                return _DEFAULT_ARGS if from_defaults else _GIVEN

            for old, new in renames.items():
                old_source, new_source = source(old), source(new)
                if old_source == _ABSENT:
                    continue
                if old_source == new_source:
                    where = "default_args" if old_source == _DEFAULT_ARGS else "the call"
                    raise ValueError(
                        f"{type(self).__name__} {kwargs.get('task_id')!r}: {old} and {new} are both given "
                        f"(in {where}); {old} is deprecated, give only {new}"
                    )
                value = kwargs.pop(old)
                if old_source > new_source:
                    # The operator's warning, attributed to whoever constructed it (past the metaclass).
                    warn(f"{old} is deprecated; use {new}", AirflowProviderDeprecationWarning, stacklevel=3)
                    kwargs[new] = value
                # else: the call's new name beats the old one in default_args (meant for other operators).
            init(self, *args, **kwargs)

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*parameters[:at], *old_parameters, *parameters[at:]]
        )
        return cast("_Init", wrapper)

    return decorate
