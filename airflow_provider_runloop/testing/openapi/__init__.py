"""Runloop's published OpenAPI spec for the benchmark resources, packaged with the emulator.

``runloop-benchmarks.yml`` beside this module is the contract the emulator keeps: it checks request
bodies against the spec's request schemas (:mod:`..request_validation`), and the test suite checks
every response against the response schemas. The ``README.md`` beside it names the spec's source.
It lives inside the package so that an installed provider, and a clone of the repository on its own,
both have it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["SPEC_FILE", "load_spec"]

SPEC_FILE: Final = Path(__file__).with_name("runloop-benchmarks.yml")


@functools.cache
def load_spec() -> dict[str, Any]:
    """The spec, parsed once per process. Shared by every caller: treat it as read-only."""
    # The C loader, where PyYAML has it, reads the 3,000-line file several times faster.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec: dict[str, Any] = yaml.load(SPEC_FILE.read_text(encoding="utf-8"), Loader=loader)
    return spec
