"""Load a DAG file as a module, the way ``dag.test()`` tests need it (by path, with its module globals)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["load_dag_file"]


def load_dag_file(path: Path) -> ModuleType:
    """Import the DAG file at ``path`` (a fresh module each call, named after the file)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
