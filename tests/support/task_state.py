"""A stand-in for Airflow's task state store, as far as the sensor uses it (get/set of JSON values)."""

from __future__ import annotations

from typing import Any

__all__ = ["FakeStateStore"]


class FakeStateStore:
    """Keeps values in a dict; ``values`` is there for tests to read or seed."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if value is None:  # as Airflow's own store does
            raise ValueError("Cannot set value as None")
        self.values[key] = value
