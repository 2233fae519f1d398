"""Load a file as a module: a DAG file, the way ``dag.test()`` tests need it, or one of ``scripts/``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["load_dag_file", "load_script"]

REPO = Path(__file__).resolve().parents[2]


def load_dag_file(path: Path) -> ModuleType:
    """Import the DAG file at ``path`` (a fresh module each call, named after the file)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as the module ``runloop_<name>``, registered in ``sys.modules``
    (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(f"runloop_{name}", REPO / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
