"""The docs cannot drift from the code: snippets, links, references and the API reference.

``mkdocs build --strict`` (``make docs``) fails on a missing snippet file or section (pymdownx.snippets
``check_paths``) and on an API name mkdocstrings cannot resolve. These tests check what the build cannot:
that no page carries hand-written Python, that every example section is shown somewhere, that every
public name has a reference entry, and that references in the code point at something a reader has.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import griffe
import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
PAGE_IDS = [page.relative_to(DOCS).as_posix() for page in PAGES]

# The public modules and the reference page that documents each, by the import path DAGs use.
PUBLIC_MODULES = {
    "airflow_provider_runloop.hooks.runloop": "reference/hook.md",
    "airflow_provider_runloop.sensors.runloop": "reference/sensor.md",
    "airflow_provider_runloop.triggers.runloop": "reference/triggers.md",
    "airflow_provider_runloop.triggers.watch": "reference/triggers.md",
    "airflow_provider_runloop.waiting": "reference/waiting.md",
    "airflow_provider_runloop.progress": "reference/progress.md",
    "airflow_provider_runloop.operators.runloop": "reference/operators.md",
    "airflow_provider_runloop.links": "reference/links.md",
    "airflow_provider_runloop.report": "reference/report.md",
    "airflow_provider_runloop.lineage": "reference/lineage.md",
    "airflow_provider_runloop.client": "reference/client.md",
    "airflow_provider_runloop.pool": "reference/pool.md",
    "airflow_provider_runloop.exceptions": "reference/exceptions.md",
    "airflow_provider_runloop.testing": "reference/testing.md",
    "airflow_provider_runloop.testing.pytest_plugin": "reference/testing.md",
}

_SNIPPET = re.compile(r'^[ \t]*--8<--[ \t]+"(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"[ \t]*$', re.M)
_SECTION = re.compile(r"^[ \t]*# --8<-- \[(?P<kind>start|end):(?P<name>[\w-]+)\][ \t]*$", re.M)
_FENCED = re.compile(
    r"^(?P<fence>```+|~~~+)[ \t]*(?P<info>\S*)[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)
_DIRECTIVE = re.compile(r"^:::[ \t]+(?P<path>[\w.]+)[ \t]*$", re.M)
_CELLS = re.compile(r"\|[ \t]*([^|]*?)[ \t]*(?=\|)")


def _load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_examples_hook", DOCS / "hooks" / "examples.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hook = _load_hook()


def sections(path: Path) -> dict[str, str]:
    """The sections a file marks, ``{name: dedented body}``; unpaired or repeated markers fail."""
    text = path.read_text(encoding="utf-8")
    markers = [(m["kind"], m["name"], m.start(), m.end()) for m in _SECTION.finditer(text)]
    found: dict[str, str] = {}
    for kind, name, _, end in markers:
        if kind != "start":
            continue
        assert name not in found, f"{path.name} marks the section {name!r} twice"
        closing = [start for k, n, start, _ in markers if k == "end" and n == name and start > end]
        assert closing, f"{path.name} never ends the section {name!r}"
        found[name] = text[end : closing[0]]
    ends = [name for kind, name, _, _ in markers if kind == "end"]
    assert sorted(ends) == sorted(found), f"{path.name}: end markers without a start"
    return found


def snippets(markdown: str) -> list[tuple[str, str | None]]:
    return [(m["path"], m["section"]) for m in _SNIPPET.finditer(markdown)]


def public_names(module: str) -> list[str]:
    """``__all__`` of a package module, read from its source (as griffe does: nothing is imported)."""
    parts = module.split(".")
    path = REPO.joinpath(*parts)
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{module} has no __all__")


# --- snippets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_snippet_names_an_existing_file_and_section(page: Path) -> None:
    for relative, section in snippets(page.read_text(encoding="utf-8")):
        path = REPO / relative
        assert path.is_file(), f"{page.name}: {relative} does not exist"
        if section is not None:
            assert section in sections(path), f"{page.name}: {relative} has no section {section!r}"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_python_in_a_page_comes_from_tested_files(page: Path) -> None:
    for block in _FENCED.finditer(page.read_text(encoding="utf-8")):
        if block["info"].lower() not in {"python", "py", "python3", "pycon"}:
            continue
        lines = [line for line in block["body"].splitlines() if line.strip()]
        assert lines, f"{page.name}: an empty Python block"
        assert all(_SNIPPET.match(line) for line in lines), (
            f"{page.name}: a Python block written by hand; put the code in a tested file between "
            '"# --8<-- [start:name]" and "# --8<-- [end:name]" and include it: --8<-- "path:name"'
        )


def _normalized(code: str) -> list[str]:
    # Blank lines aside: top-level code in a page may be spaced differently from a DAG body.
    lines = [line for line in code.splitlines() if line.strip()]
    indent = min((len(line) - len(line.lstrip()) for line in lines), default=0)
    return [line[indent:] for line in lines]


def test_the_readme_python_is_a_copy_of_a_tested_section() -> None:
    # GitHub renders no snippets, so the README carries a copy; it must be a tested section, verbatim.
    tested = [
        _normalized(body) for path in sorted(REPO.glob("tests/**/*.py")) for body in sections(path).values()
    ]
    blocks = [
        b["body"] for b in _FENCED.finditer(README.read_text(encoding="utf-8")) if b["info"] == "python"
    ]
    assert blocks
    for body in blocks:
        assert _normalized(body) in tested, "README.md: a Python block that is no tested section"


EXAMPLE_DAGS = sorted((REPO / "example_dags").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLE_DAGS, ids=[path.name for path in EXAMPLE_DAGS])
def test_every_section_of_an_example_dag_is_shown_in_the_docs(path: Path) -> None:
    relative = path.relative_to(REPO).as_posix()
    shown = {section for page in PAGES for file, section in snippets(page.read_text()) if file == relative}
    assert set(sections(path)) <= shown


def test_a_section_marker_left_open_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "dag.py"
    broken.write_text("# --8<-- [start:wait]\nx = 1\n")
    with pytest.raises(AssertionError, match="never ends the section 'wait'"):
        sections(broken)
    broken.write_text("# --8<-- [start:a]\nx = 1\n# --8<-- [end:a]\n# --8<-- [end:b]\n")
    with pytest.raises(AssertionError, match="end markers without a start"):
        sections(broken)


def test_the_snippet_config_fails_the_build_on_a_missing_file_or_section() -> None:
    config = (REPO / "mkdocs.yml").read_text()
    snippet_config = config.split("- pymdownx.snippets:", 1)[1].split("\nvalidation:", 1)[0]
    assert "check_paths: true" in snippet_config
    assert "strict: true" in config
    assert "  - docs/hooks/examples.py" in config


# --- links out of docs/ ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_link_out_of_the_docs_has_a_page(page: Path) -> None:
    hook.rewrite_repository_links(page.read_text(), page.relative_to(DOCS).as_posix())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "example_dags").mkdir()
    (tmp_path / "example_dags" / "dag.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


def test_links_out_of_the_docs_point_at_generated_source_pages(repo: Path) -> None:
    page = "See [the DAG](../example_dags/dag.py#L3), [a page](sensor.md) and [Airflow](https://airflow.apache.org).\n"
    assert hook.rewrite_repository_links(page, "index.md", repo) == (
        "See [the DAG](source/example_dags/dag.py.md#L3), [a page](sensor.md) and [Airflow](https://airflow.apache.org).\n"
    )
    nested = hook.rewrite_repository_links("[x](../../example_dags/dag.py)", "guide/page.md", repo)
    assert nested == "[x](../source/example_dags/dag.py.md)"
    in_code = "```text\n[x](../pyproject.toml)\n```\n"
    assert hook.rewrite_repository_links(in_code, "index.md", repo) == in_code


@pytest.mark.parametrize("target", ["../example_dags/missing.py", "../example_dags/", "../pyproject.toml"])
def test_a_link_out_of_the_docs_without_a_source_page_fails(repo: Path, target: str) -> None:
    with pytest.raises(hook.LinkError, match="leaves the docs"):
        hook.rewrite_repository_links(f"[x]({target})", "index.md", repo)


def test_a_source_page_includes_the_whole_file_through_snippets() -> None:
    assert (
        hook.source_page("scripts/demo.py")
        == '# `scripts/demo.py`\n\n```python\n--8<-- "scripts/demo.py"\n```\n'
    )


# --- the API reference -----------------------------------------------------------------------------------


def _documented() -> dict[str, set[str]]:
    """``{page: {dotted path of each ::: entry}}`` of the reference pages."""
    return {
        page.relative_to(DOCS).as_posix(): set(_DIRECTIVE.findall(page.read_text()))
        for page in sorted((DOCS / "reference").glob("*.md"))
    }


@pytest.mark.parametrize(("module", "page"), PUBLIC_MODULES.items(), ids=list(PUBLIC_MODULES))
def test_every_public_name_has_an_entry_in_the_reference(module: str, page: str) -> None:
    entries = _documented()[page]
    missing = [name for name in public_names(module) if f"{module}.{name}" not in entries]
    assert missing == [], f"docs/{page} lacks '::: {module}.<name>' for {missing}"


def test_the_reference_documents_only_public_names_by_their_public_path() -> None:
    allowed = {f"{module}.{name}" for module in PUBLIC_MODULES for name in public_names(module)}
    stray = sorted(entry for entries in _documented().values() for entry in entries if entry not in allowed)
    assert stray == []


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    loaded = griffe.load("airflow_provider_runloop", search_paths=[str(REPO)], resolve_aliases=True)
    assert isinstance(loaded, griffe.Module)
    return loaded


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=list(PUBLIC_MODULES))
def test_griffe_resolves_every_public_name_to_a_documented_object(
    package: griffe.Module, module: str
) -> None:
    # What mkdocstrings renders: a re-export (an alias) must resolve to its target, and the target
    # must have a docstring, or its entry would be an empty heading.
    for name in public_names(module):
        obj = package[f"{module}.{name}".removeprefix("airflow_provider_runloop.")]
        target = obj.final_target if obj.is_alias else obj
        assert not target.is_alias, f"{module}.{name} does not resolve"
        if target.is_class or target.is_function:
            assert target.docstring is not None, f"{module}.{name} ({target.path}) has no docstring"


# --- references in the code and docs ---------------------------------------------------------------------

# Files a user of the repository reads; the wheel ships the package folder.
_REFERENCE_SOURCES = (
    "airflow_provider_runloop/**/*.py",
    "airflow_provider_runloop/**/*.md",
    "docs/**/*.md",
    "tests/**/*.py",
    "scripts/*.py",
    "example_dags/*.py",
    "bench/*.py",
    "README.md",
)
_DOCS_REFERENCE = re.compile(r"\bdocs/(?P<page>[\w/-]+\.md)(?:#(?P<anchor>[\w-]+))?")
_UNVERIFIED_ROW = re.compile(r"unverified choices? (?P<rows>\d+(?:(?:-|, | and )\d+)*)")


def _reference_files() -> list[Path]:
    own = Path(__file__).resolve()
    files = {path for pattern in _REFERENCE_SOURCES for path in REPO.glob(pattern) if path.is_file()}
    return sorted(files - {own})


def _anchors(page: Path) -> set[str]:
    # MkDocs' toc slugs: lower case, punctuation dropped, spaces to hyphens.
    headings = re.findall(r"^#+[ \t]+(.+?)[ \t]*$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower()) for heading in headings}


def test_no_file_cites_a_document_the_repository_does_not_have() -> None:
    # The API notes the emulator was built from are not in the repository (nor in the wheel): a reader
    # cannot follow "runloop-api.md §13". Cite docs/emulator.md or the shipped OpenAPI spec instead.
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in _reference_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "runloop-api.md" in line or "§" in line
    ]
    assert offenders == []


def test_every_docs_page_reference_resolves() -> None:
    unresolved = []
    for path in _reference_files():
        for match in _DOCS_REFERENCE.finditer(path.read_text(encoding="utf-8")):
            page = DOCS / match["page"]
            if not page.is_file() or (match["anchor"] and match["anchor"] not in _anchors(page)):
                unresolved.append(f"{path.relative_to(REPO)}: {match[0]}")
    assert unresolved == []


def _unverified_rows() -> set[str]:
    text = (DOCS / "emulator.md").read_text(encoding="utf-8")
    after = text.split("### Choices where the real API is unverified\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    table = after[start : next(i for i in range(start, len(after)) if not after[i].startswith("|"))]
    return {match[1] for line in table if (match := re.match(r"^\| (\w+) \|", line))}


def test_every_cited_unverified_choice_is_a_row_of_the_emulator_page() -> None:
    rows = _unverified_rows()
    assert {"1", "13", "23"} <= rows
    cited = {
        f"{path.relative_to(REPO)}: {number}"
        for path in _reference_files()
        for match in _UNVERIFIED_ROW.finditer(path.read_text(encoding="utf-8"))
        for number in re.findall(r"\d+", match["rows"])
        if number not in rows
    }
    assert cited == set()


def test_the_emulator_help_points_at_what_a_wheel_installs(capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_provider_runloop.testing import __main__ as cli

    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    help_text = capsys.readouterr().out
    (module,) = re.findall(r"python -m pydoc ([\w.]+)", help_text)
    documented = importlib.import_module(module)
    assert "scenario_count" in (documented.__doc__ or "")  # the script format is written there
    (spec,) = re.findall(r"(airflow_provider_runloop/[\w/.-]+\.yml)", help_text)
    assert (REPO / spec).is_file()
    assert "docs/emulator.md" in help_text


def test_the_emulator_cli_table_lists_every_option_with_its_default() -> None:
    from airflow_provider_runloop.testing import __main__ as cli

    parser_defaults = vars(cli.parse_args([]))
    text = (DOCS / "emulator.md").read_text(encoding="utf-8")
    section = text.split("### From the command line", 1)[1].split("\n#", 1)[0]
    rows = [_CELLS.findall(line) for line in section.splitlines() if line.startswith("| `--")]
    documented = {option.strip("`").split()[0]: default for option, default, _ in rows}
    assert sorted(documented) == sorted(f"--{name.replace('_', '-')}" for name in parser_defaults)
    for option, default in documented.items():
        value = parser_defaults[option[2:].replace("-", "_")]
        if default.startswith("`"):
            shown = default.strip("`")
            assert shown == str(value) or (isinstance(value, float) and float(shown) == value), option
        else:  # no default of its own: what happens without the option is said in words (or nothing)
            assert value in (None, False), option


def _load_roles() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_sphinx_roles", DOCS / "hooks" / "sphinx_roles.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("docstring", "shown"),
    [
        pytest.param("See :class:`RunloopHook`.", "See `RunloopHook`.", id="bare"),
        pytest.param(
            ":meth:`~airflow_provider_runloop.progress.FailureHold.to_dict`", "`to_dict`", id="short"
        ),
        pytest.param("(:mod:`.faults`)", "(`faults`)", id="relative"),
        pytest.param(":py:data:`a.b.LIMIT` and ``code``", "`a.b.LIMIT` and ``code``", id="domain"),
    ],
)
def test_a_sphinx_role_becomes_a_code_span(docstring: str, shown: str) -> None:
    assert _load_roles().plain_roles(docstring) == shown


def test_no_public_docstring_keeps_a_role_the_reference_would_show_raw(package: griffe.Module) -> None:
    roles = _load_roles()
    left = []
    for module in PUBLIC_MODULES:
        for name in public_names(module):
            obj = package[f"{module}.{name}".removeprefix("airflow_provider_runloop.")]
            target = obj.final_target if obj.is_alias else obj
            for member in [target, *getattr(target, "members", {}).values()]:
                if getattr(member, "docstring", None) is not None:
                    text = roles.plain_roles(member.docstring.value)
                    left += [f"{member.path}: {role}" for role in re.findall(r":\w+:`[^`]*`", text)]
    assert left == []
