"""Resource ids for the emulator: Runloop-shaped, reproducible under a seed, ordered by creation.

An id is ``<prefix>_`` followed by 21 base-62 characters, like the real ``bmd_2zmp3Mu3LhWu7yDVIfq3m``. The
first six characters encode a creation counter in an alphabet sorted like ASCII, so comparing two ids as
strings compares their creation order; list endpoints use that to break ties between items created in the
same millisecond. The other fifteen come from a seeded generator, so the same seed and the same calls give
the same ids.
"""

from __future__ import annotations

import random
import threading

__all__ = ["ID_PREFIXES", "IdFactory"]

# Digits, then upper case, then lower case: the ASCII order, so string order == numeric order.
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_COUNTER_WIDTH = 6
_RANDOM_WIDTH = 15

#: Prefixes per resource. ``bmd`` is confirmed by a real id; the others follow the SDK's test fixtures
#: (``scn``, ``bmr``, ``scr``) or are the emulator's own guess (``bmj`` for jobs, ``dbx`` for devboxes).
ID_PREFIXES = {
    "benchmark": "bmd",
    "scenario": "scn",
    "benchmark_run": "bmr",
    "scenario_run": "scr",
    "benchmark_job": "bmj",
    "devbox": "dbx",
}


# Byte -> alphabet character; the slight bias of 256 % 62 does not matter for ids.
_BYTE_TO_CHAR = bytes(ord(_ALPHABET[i % 62]) for i in range(256))


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


class IdFactory:
    """Makes ids for all resources from one seeded generator and one creation counter.

    :param seed: the seed of the random part of the ids.
    """

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(f"runloop-emulator-ids:{seed}")
        self._counter = 0
        self._lock = threading.Lock()

    def new(self, resource: str) -> str:
        """A new id for ``resource`` (a key of :data:`ID_PREFIXES`)."""
        prefix = ID_PREFIXES[resource]
        with self._lock:
            self._counter += 1
            suffix = self._random.randbytes(_RANDOM_WIDTH).translate(_BYTE_TO_CHAR).decode()
            return f"{prefix}_{_base62(self._counter, _COUNTER_WIDTH)}{suffix}"
