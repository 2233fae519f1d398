"""Each operator's options table in the docs matches its constructor and ``template_fields``.

A table follows the heading ``## `RunloopBenchmarkRunSensor` options`` (any level) and has the
columns ``option | type | default | templated | meaning``. Its rows are every parameter of the provider's
own constructors (the class and its provider bases and mixins; Airflow's ``BaseOperator`` arguments work
as usual and are not repeated), plus, optionally, Airflow arguments worth a row of their own (the
sensor's ``poke_interval``). For each row: the type is the annotation as written, the default is the
signature's (a literal, the constant's name, or ``[section] key`` for a config lookup), and templated
says whether the name is in ``template_fields``.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_runloop.operators import runloop as operators
from airflow_provider_runloop.sensors.runloop import RunloopBenchmarkRunSensor

DOCS = Path(__file__).resolve().parents[3] / "docs"
HEADER = ["option", "type", "default", "templated", "meaning"]

TABLES = [
    pytest.param(operators.RunloopBenchmarkResultsOperator, "results.md", id="results"),
    pytest.param(operators.RunloopStartBenchmarkRunOperator, "lifecycle.md", id="start"),
    pytest.param(operators.RunloopCompleteBenchmarkRunOperator, "lifecycle.md", id="complete"),
    pytest.param(operators.RunloopCancelBenchmarkRunOperator, "lifecycle.md", id="cancel"),
    pytest.param(operators.RunloopCreateBenchmarkJobOperator, "lifecycle.md", id="create_job"),
    pytest.param(RunloopBenchmarkRunSensor, "sensor.md", id="sensor"),
    pytest.param(operators.RunloopBenchmarkRunCheckOperator, "checks.md", id="check"),
]


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: str
    default_source: str | None  # None: required
    default: Any
    owner: type


def _parameters(cls: type) -> dict[str, Parameter]:
    """Every keyword parameter of each ``__init__`` in the MRO, nearest class first."""
    found: dict[str, Parameter] = {}
    for owner in cls.__mro__:
        init = vars(owner).get("__init__")
        if init is None or owner is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(init))
        except (OSError, TypeError):
            continue
        node = ast.parse(source).body[0]
        assert isinstance(node, ast.FunctionDef)
        args = node.args
        positional = args.args[1:]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
        defaults += list(args.defaults)
        values = inspect.signature(inspect.unwrap(init)).parameters
        for arg, default in [
            *zip(positional, defaults, strict=True),
            *zip(args.kwonlyargs, args.kw_defaults, strict=True),
        ]:
            if arg.arg in found:
                continue
            found[arg.arg] = Parameter(
                name=arg.arg,
                annotation=ast.unparse(arg.annotation) if arg.annotation else "",
                default_source=None if default is None else ast.unparse(default),
                default=values[arg.arg].default,
                owner=owner,
            )
    return found


def _own(cls: type) -> set[str]:
    """The parameters the provider's own classes add (not Airflow's)."""
    return {
        name
        for name, parameter in _parameters(cls).items()
        if parameter.owner.__module__.startswith("airflow_provider_runloop.")
    }


def _cells(row: str) -> list[str]:
    # Split on the pipes outside code spans (Python-Markdown's tables do the same).
    cells, current, in_code = [], "", False
    for char in row.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append(current.strip())
            current = ""
        else:
            current += char
    return [*cells, current.strip()]


def options_table(page: str, cls: type) -> dict[str, dict[str, str]]:
    """The rows of the table under the heading that names ``cls``: ``{option: {column: cell}}``."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    heading = next(
        (
            i
            for i, line in enumerate(lines)
            if line.startswith("#") and line.endswith(f"`{cls.__name__}` options")
        ),
        None,
    )
    assert heading is not None, f"docs/{page} has no heading '`{cls.__name__}` options'"
    section = []
    for line in lines[heading + 1 :]:
        if line.startswith("#"):
            break
        section.append(line)
    table = [line for line in section if line.startswith("|")]
    assert table, f"docs/{page}: no table under the heading of {cls.__name__}"
    assert _cells(table[0]) == HEADER, f"docs/{page}: the {cls.__name__} table's columns"
    rows = {}
    for line in table[2:]:
        cells = dict(zip(HEADER, _cells(line), strict=True))
        (name,) = re.fullmatch(r"`(\w+)`", cells["option"]).groups()  # type: ignore[union-attr]
        assert name not in rows, f"{name} has two rows"
        rows[name] = cells
    return rows


def _code(cell: str) -> str | None:
    match = re.match(r"`([^`]+)`", cell)
    return match[1] if match else None


def _default_matches(cell: str, parameter: Parameter) -> bool:
    if parameter.default_source is None:
        return cell == "required"
    shown = _code(cell)
    if shown is None:
        return False
    config = re.fullmatch(r"conf\.get\w*\('(\w+)', '(\w+)'.*\)", parameter.default_source)
    if config:
        return shown == f"[{config[1]}] {config[2]}"
    if shown == parameter.default_source:
        return True
    try:
        return bool(ast.literal_eval(shown) == parameter.default)
    except (ValueError, SyntaxError):
        return False


@pytest.mark.parametrize(("cls", "page"), TABLES)
def test_the_table_lists_every_option_of_the_constructor(cls: type, page: str) -> None:
    rows = options_table(page, cls)
    parameters = _parameters(cls)
    assert sorted(_own(cls) - set(rows)) == [], "options without a row"
    assert sorted(set(rows) - set(parameters)) == [], "rows that are no parameter"


@pytest.mark.parametrize(("cls", "page"), TABLES)
def test_each_row_has_the_constructors_type_and_default(cls: type, page: str) -> None:
    parameters = _parameters(cls)
    wrong = []
    for name, cells in options_table(page, cls).items():
        parameter = parameters[name]
        if _code(cells["type"]) != parameter.annotation:
            wrong.append(f"{name}: type {cells['type']!r}, the constructor says `{parameter.annotation}`")
        if not _default_matches(cells["default"], parameter):
            shown = parameter.default_source or "required"
            wrong.append(f"{name}: default {cells['default']!r}, the constructor says {shown}")
    assert wrong == []


@pytest.mark.parametrize(("cls", "page"), TABLES)
def test_each_row_says_whether_the_option_is_templated(cls: type, page: str) -> None:
    templated = set(cls.template_fields)  # type: ignore[attr-defined]
    rows = options_table(page, cls)
    wrong = {
        name: cells["templated"]
        for name, cells in rows.items()
        if cells["templated"] != ("yes" if name in templated else "no")
    }
    assert wrong == {}
    assert templated <= set(rows)


@pytest.mark.parametrize(
    ("cell", "source", "value", "matches"),
    [
        pytest.param("required", None, inspect.Parameter.empty, True, id="required"),
        pytest.param("`None`", None, inspect.Parameter.empty, False, id="required-shown-as-none"),
        pytest.param("`30`", "30.0", 30.0, True, id="literal"),
        pytest.param("`60`", "30.0", 30.0, False, id="wrong-literal"),
        pytest.param(
            '`"runloop_default"`', "RunloopHook.default_conn_name", "runloop_default", True, id="value"
        ),
        pytest.param("`DEFAULT_WAIT_TIMEOUT` (7 days)", "DEFAULT_WAIT_TIMEOUT", 0, True, id="constant"),
        pytest.param(
            "`[operators] default_deferrable`",
            "conf.getboolean('operators', 'default_deferrable', fallback=False)",
            False,
            True,
            id="config",
        ),
        pytest.param(
            "`False`", "conf.getboolean('operators', 'default_deferrable')", False, False, id="config-value"
        ),
    ],
)
def test_how_a_default_cell_is_read(cell: str, source: str | None, value: Any, matches: bool) -> None:
    parameter = Parameter("x", "float", source, value, object)
    assert _default_matches(cell, parameter) is matches
