"""The canary API key of the test suites, and the scans that fail a run when it shows up anywhere.

Every emulator the integration and end-to-end suites start, and so every connection pointing at one,
uses :data:`CANARY_API_KEY`, a recognisable key made fresh for each test session. Nothing the provider
writes may ever contain it. Three nets catch it:

* each test's captured output (logs, stdout, stderr) and failure report (``tests/conftest.py``);
* the tests of a leak path, which pass what they saw to :func:`assert_no_canary` (exception texts and
  reprs, trigger events, serialized triggers, XCom, exported files);
* at the end of the session, :func:`scan_paths` over the Airflow home (task and trigger logs, the
  SQLite metadata DB) and every temporary folder the session made (the end-to-end deployments' homes,
  their databases and logs, exported files): raw bytes, and each SQLite database's ``iterdump()``.

A value is searched for as text and as hex (the form ``iterdump()`` gives to BLOB columns).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CANARY_API_KEY", "CanaryScan", "assert_no_canary", "count_canary", "scan_paths"]

CANARY_API_KEY = f"rl-canary-{secrets.token_hex(12)}"
_SQLITE_HEADER = b"SQLite format 3\x00"


def _forms(key: str) -> tuple[bytes, ...]:
    raw = key.encode()
    return (raw, raw.hex().encode(), raw.hex().upper().encode())


def count_canary(data: bytes | str, key: str = CANARY_API_KEY) -> int:
    """How often ``key`` occurs in ``data`` (as text or as hex)."""
    blob = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return sum(blob.count(form) for form in _forms(key))


def assert_no_canary(*seen: object, key: str = CANARY_API_KEY) -> None:
    """Fail if ``key`` is in any of ``seen``: strings as they are, anything else as ``repr`` and JSON."""
    for value in seen:
        texts = [value] if isinstance(value, str | bytes) else [repr(value), json.dumps(value, default=repr)]
        for text in texts:
            assert count_canary(text, key) == 0, f"the canary API key leaked into {text!r:.2000}"


@dataclass(frozen=True)
class Hit:
    """Where the key was found, and how often."""

    where: str
    count: int


@dataclass
class CanaryScan:
    """What :func:`scan_paths` looked at and found."""

    roots: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    databases: int = 0
    hits: list[Hit] = field(default_factory=list)

    @property
    def hit_count(self) -> int:
        return sum(hit.count for hit in self.hits)

    def describe(self) -> str:
        where = "; ".join(f"{hit.where}: {hit.count}" for hit in self.hits) or "none"
        return (
            f"canary API key scan: {self.hit_count} hits in {self.files} files ({self.bytes:,} bytes) "
            f"and {self.databases} SQLite dumps under {', '.join(self.roots)}. Hits: {where}"
        )


def scan_paths(roots: Iterable[Path], key: str = CANARY_API_KEY) -> CanaryScan:
    """Search every file under ``roots`` for ``key``, and every SQLite database's dump."""
    roots = list(roots)
    scan = CanaryScan(roots=[str(root) for root in roots])
    for path in _files(roots):
        try:
            data = path.read_bytes()
        except OSError:
            continue  # removed while we walked (a WAL file after its checkpoint)
        scan.files += 1
        scan.bytes += len(data)
        if count := count_canary(data, key):
            scan.hits.append(Hit(str(path), count))
        if data.startswith(_SQLITE_HEADER):
            scan.databases += 1
            if count := sum(count_canary(line, key) for line in _sqlite_dump(path)):
                scan.hits.append(Hit(f"{path} (iterdump)", count))
    return scan


def _files(roots: Iterable[Path]) -> Iterator[Path]:
    seen: set[Path] = set()
    for root in roots:
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            resolved = path.resolve()
            if path.is_file() and resolved not in seen:
                seen.add(resolved)
                yield path


def _sqlite_dump(path: Path) -> Iterator[str]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield from connection.iterdump()
    finally:
        connection.close()
