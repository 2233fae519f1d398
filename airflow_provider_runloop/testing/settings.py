"""Runtime settings of an emulator; all of them can be changed while it runs (Python or control API)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EmulatorSettings"]


@dataclass
class EmulatorSettings:
    """Behaviour switches of one emulator.

    :param emit_nulls: write ``null`` for optional fields without a value (where the spec allows ``null``)
        instead of leaving them out. Real clients must cope with both; unverified choice 19
        in ``docs/emulator.md``.
    :param scoring_delay_seconds: if set, the delay between ``POST .../score`` and the end of scoring for
        every run; otherwise each scenario's scripted ``timing.scoring`` applies.
    :param job_concurrency: ``n_concurrent_trials`` of a benchmark job that does not set it (the SDK says
        1, the docs say 10; unverified choice 21).
    :param job_queue_seconds: how long a new benchmark job stays ``queued`` before it starts running.
    :param dedupe_request_ids: replay the first response to a non-GET request whose ``x-request-id`` was
        seen before, instead of acting twice (unverified choice 15; off by default, as the real API is
        not known to).
    :param refuse_repeated_actions: answer 400 "not running" to ``complete``/``cancel`` of a benchmark run
        that is already completed/canceled, as a server whose actions are not idempotent would (off by
        default: the emulator treats a repeat as a no-op). With a lost answer and the client's retry, this
        is the case the lifecycle operators must recognise as success.
    :param request_log_limit: the most requests the request log keeps (oldest dropped first).
    :param max_page_size: if set, every listing page holds at most this many items whatever ``limit`` asks
        (``has_more`` and the cursor say the rest), as servers and gateways that cap pages do. Clients must
        follow ``has_more``, not count items; tests use it to page small data sets.
    """

    emit_nulls: bool = False
    scoring_delay_seconds: float | None = None
    job_concurrency: int = 10
    job_queue_seconds: float = 1.0
    dedupe_request_ids: bool = False
    refuse_repeated_actions: bool = False
    request_log_limit: int = 100_000
    max_page_size: int | None = None

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (keys as the constructor's), validating names and types."""
        known = asdict(self)
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(sorted(known))}")
            if key == "scoring_delay_seconds":
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise ValueError("scoring_delay_seconds must be a number or null")
                if value is not None and value < 0:
                    raise ValueError("scoring_delay_seconds must not be negative")
            elif isinstance(known[key], bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
            elif key == "max_page_size":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                    raise ValueError("max_page_size must be a positive integer or null")
            elif key in ("job_concurrency", "request_log_limit"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{key} must be a positive integer")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
        for key, value in changes.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
