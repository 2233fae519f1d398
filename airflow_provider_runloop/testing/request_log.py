"""The request log: every API request the emulator saw, for assertions in tests.

Each entry has the method, path, raw query, response status (``None`` when a fault dropped the
connection), the request's ``x-request-id``, the fault that fired (if any), the request headers and the
parsed JSON body. The ``Authorization`` header is never kept. Control-API requests are not logged.
"""

from __future__ import annotations

import fnmatch
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["LoggedRequest", "RequestLog"]


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the emulator saw it."""

    seq: int
    time_ms: int
    method: str
    path: str
    query: str
    status: int | None
    request_id: str | None
    fault: str | None
    headers: dict[str, str]
    body: Any

    @property
    def params(self) -> dict[str, str]:
        """The query parameters (the last value wins for a repeated key)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """A bounded, thread-safe list of :class:`LoggedRequest`, oldest first.

    :param limit: the most entries kept; the oldest go first.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=limit)
        self._seq = 0
        self._lock = threading.Lock()

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def append(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def resize(self, limit: int) -> None:
        with self._lock:
            self._entries = deque(self._entries, maxlen=limit)

    def entries(self, *, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Logged requests, oldest first; ``path`` is an ``fnmatch`` glob (``*`` spans ``/``)."""
        with self._lock:
            entries = list(self._entries)
        if method is not None:
            entries = [e for e in entries if e.method == method.upper()]
        if path is not None:
            entries = [e for e in entries if fnmatch.fnmatchcase(e.path, path)]
        return entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
