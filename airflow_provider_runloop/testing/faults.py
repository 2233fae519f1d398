"""Fault injection: make chosen requests fail the way networks and servers do, deterministically.

A :class:`Fault` matches requests by method and path (``fnmatch`` globs, where ``*`` also spans ``/``:
``/v1/benchmark_runs/*/scenario_runs``) and fires for a number of matching requests (``times``), for
each one with a probability (drawn from a generator seeded by the emulator's seed and the fault's id,
so a test run is reproducible), or both; ``skip`` lets the first matching requests through. Kinds:

``status``
    answer ``status`` (default 503) with ``{"message": ...}``, optionally ``Retry-After: retry_after``
    (seconds) and ``x-should-retry: true|false``. 429, 500, 502 and 503 are the usual ones.
``echo_authorization``
    like ``status`` (401, 403 and 503 are the telling ones), but the message quotes the request's
    ``Authorization`` header back, the way some gateways and debug error pages do: as a header line,
    inside a mapping of the request's headers, and the bare token. A client must keep none of it.
``latency``
    wait ``latency_seconds`` (an ``asyncio`` sleep: the server keeps serving others), then answer
    normally. Latency faults add up and combine with one other fault.
``drop_connection``
    close the connection without any response (the client sees "server disconnected").
``delay_answer``
    act on the request at once, then wait ``latency_seconds`` before answering: the server has done
    the work (started the run) while the client still waits (a task killed meanwhile never learns the
    run's id).
``truncate_body``
    send the headers (with the full ``Content-Length``) and half the body, then close the connection.
``malformed_body``
    a complete response whose body is cut in half, so it is not valid JSON.
``repeat_page``
    for a page request with ``starting_after``, serve again the page this listing served last (the
    client sees items twice and must de-duplicate by id).
``shift_page``
    for a page request with ``starting_after``, serve the page that starts ``shift`` items earlier
    (default: half the previous page), as a lagging replica or a cache keyed loosely might: the page
    repeats the previous page's last items, then goes on. The cursor still advances; the client must
    drop what it already listed.
``insert_item``
    for a scenario-run page request with ``starting_after``, first add a scenario run that sorts right
    after the cursor (a newcomer showing up mid-pagination; ``total_count`` grows by one).
``unknown_state``
    a complete 200 whose ``state`` fields (the object's own, and each item's in a page) read ``state``
    (default ``"paused"``), a state the API does not document, as a newer server might send: a client
    must fail closed, naming the state. Nothing stored changes.

Faults never apply to the control API (``/_emulator/...``).
"""

from __future__ import annotations

import fnmatch
import json
import random
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["FAULT_KINDS", "PAGE_MEMORY_KINDS", "Fault", "FaultInjector"]

FAULT_KINDS = (
    "status",
    "echo_authorization",
    "latency",
    "drop_connection",
    "delay_answer",
    "truncate_body",
    "malformed_body",
    "repeat_page",
    "shift_page",
    "insert_item",
    "unknown_state",
)
#: Kinds that need the page the listing served last (the gateway keeps it while one is active).
PAGE_MEMORY_KINDS = frozenset({"repeat_page", "shift_page"})
_FAULT_FIELDS = {
    "kind",
    "method",
    "path",
    "times",
    "probability",
    "skip",
    "status",
    "retry_after",
    "should_retry",
    "latency_seconds",
    "message",
    "shift",
    "state",
}


@dataclass
class Fault:
    """One fault rule. ``id``, ``matched`` and ``fired`` are filled in by the injector."""

    kind: str
    method: str = "*"
    path: str = "*"
    times: int | None = None
    probability: float | None = None
    skip: int = 0
    status: int = 503
    retry_after: float | None = None
    should_retry: bool | None = None
    latency_seconds: float = 0.0
    message: str | None = None
    shift: int | None = None
    state: str = "paused"
    id: str = ""
    matched: int = 0
    fired: int = 0
    _random: random.Random | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if self.times is not None and (isinstance(self.times, bool) or self.times < 1):
            raise ValueError(f"times must be a positive integer or None, got {self.times!r}")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise ValueError(f"probability must be between 0 and 1, got {self.probability!r}")
        if self.skip < 0:
            raise ValueError(f"skip must not be negative, got {self.skip}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after must not be negative, got {self.retry_after}")
        if self.latency_seconds < 0 or (
            self.kind in ("latency", "delay_answer") and self.latency_seconds == 0
        ):
            raise ValueError(f"a {self.kind} fault needs a positive latency_seconds")
        if self.shift is not None and (isinstance(self.shift, bool) or self.shift < 1):
            raise ValueError(f"shift must be a positive number of items or None, got {self.shift!r}")
        if not isinstance(self.state, str) or not self.state:
            raise ValueError(f"state must be a non-empty string, got {self.state!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from a JSON object (the control API's body); unknown keys are an error."""
        unknown = sorted(set(data) - _FAULT_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown fault field(s): {', '.join(unknown)}; known: {', '.join(sorted(_FAULT_FIELDS))}"
            )
        if "kind" not in data:
            raise ValueError(f"a fault needs a kind: one of {', '.join(FAULT_KINDS)}")
        try:
            return cls(**data)
        except TypeError as error:  # e.g. a string where a number belongs
            raise ValueError(f"invalid fault: {error}") from error

    def matches(self, method: str, path: str) -> bool:
        return fnmatch.fnmatchcase(method.upper(), self.method.upper()) and fnmatch.fnmatchcase(
            path, self.path
        )

    @property
    def answers_with_status(self) -> bool:
        """Whether this fault answers with ``status`` and an error body (see :meth:`error_message`)."""
        return self.kind in ("status", "echo_authorization")

    def error_message(self, request_headers: Mapping[str, str]) -> str:
        """The ``message`` of the error body; ``request_headers`` have lower-case names."""
        message = self.message or f"[emulated fault] HTTP {self.status}"
        if self.kind != "echo_authorization":
            return message
        authorization = request_headers.get("authorization", "")
        token = authorization.partition(" ")[2]
        return (
            f"{message}. Authorization: {authorization}; "
            f"request headers: {{'authorization': '{authorization}'}}; token: {token}"
        )

    @property
    def needs_previous_page(self) -> bool:
        """Whether this fault acts on the page the listing served last (and so needs one)."""
        return self.kind in PAGE_MEMORY_KINDS

    def shifted_query(self, query: str, previous_page: bytes) -> str:
        """``query`` with its ``starting_after`` moved ``shift`` items back into ``previous_page``."""
        envelope = json.loads(previous_page)
        items = next(value for value in envelope.values() if isinstance(value, list))
        ids = [item["id"] for item in items]
        if not ids:
            return query
        shift = self.shift if self.shift is not None else max(1, len(ids) // 2)
        cursor = ids[max(0, len(ids) - 1 - shift)]
        params = [
            (k, cursor if k == "starting_after" else v) for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        return urlencode(params)

    def restated_body(self, body: bytes) -> bytes:
        """``body`` (a JSON object) with its own and each listed item's ``state`` set to ``state``."""
        try:
            envelope = json.loads(body)
        except ValueError:
            return body
        if not isinstance(envelope, dict):
            return body
        if "state" in envelope:
            envelope["state"] = self.state
        for value in envelope.values():
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and "state" in item:
                        item["state"] = self.state
        return json.dumps(envelope).encode()

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class FaultInjector:
    """The active faults of one emulator, in the order they were added (the first that fires wins).

    :param seed: seeds each fault's probability draws (with the fault's id).
    """

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._faults: list[Fault] = []
        self._counter = 0
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._counter += 1
            fault.id = f"flt_{self._counter}"
            fault._random = random.Random(f"runloop-emulator-fault:{self._seed}:{fault.id}")
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            kept = [fault for fault in self._faults if fault.id != fault_id]
            removed = len(kept) != len(self._faults)
            self._faults = kept
        return removed

    def clear(self) -> None:
        with self._lock:
            self._faults = []

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def has_active(self, kind: str | Collection[str], method: str, path: str) -> bool:
        """Whether a fault of ``kind`` (or of any of these kinds) may still fire for this request."""
        kinds = {kind} if isinstance(kind, str) else set(kind)
        with self._lock:
            return any(f.kind in kinds and not f.exhausted and f.matches(method, path) for f in self._faults)

    def select(
        self, method: str, path: str, applicable: Callable[[Fault], bool]
    ) -> tuple[float, Fault | None]:
        """The total added latency and the one non-latency fault that fires for this request, if any.

        Only faults that match and are ``applicable`` (e.g. ``repeat_page`` needs a cursor) count the
        request, so ``times`` and ``skip`` count requests the fault could act on.
        """
        latency = 0.0
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(method, path) or not applicable(fault):
                    continue
                fault.matched += 1
                if fault.matched <= fault.skip:
                    continue
                if fault.probability is not None:
                    assert fault._random is not None
                    if fault._random.random() >= fault.probability:
                        continue
                fault.fired += 1
                if fault.kind == "latency":
                    latency += fault.latency_seconds
                    continue
                return latency, fault
        return latency, None
