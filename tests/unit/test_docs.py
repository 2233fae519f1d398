"""The docs' rules (``docs/hooks/examples.py``): includes, hand-written Python blocks, links out of docs/.

The same functions run inside ``mkdocs build --strict`` (``make docs``); here they are checked on every
page directly, and on small made-up pages and files.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def _load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_examples_hook", DOCS / "hooks" / "examples.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hook = _load_hook()
PAGES = sorted(DOCS.glob("*.md"))
README = REPO / "README.md"


@pytest.mark.parametrize("page", [*PAGES, README], ids=[*(page.name for page in PAGES), "README.md"])
def test_every_python_block_of_every_page_is_tested_code(page: Path) -> None:
    assert hook.python_block_problems(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_include_and_link_of_every_page_resolves(page: Path) -> None:
    expanded = hook.expand_includes(page.read_text())
    assert "--8<--" not in expanded.replace('--8<-- "path/to/file.py:region_name"', "")
    hook.rewrite_repository_links(expanded, page.name)


def test_the_mkdocs_config_registers_the_hook_and_builds_strictly() -> None:
    config = (REPO / "mkdocs.yml").read_text()
    assert "  - docs/hooks/examples.py" in config
    assert "strict: true" in config


# --- the rules on made-up files ------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "example_dags").mkdir()
    (tmp_path / "example_dags" / "dag.py").write_text(
        "x = 1\n"
        "with dag:\n"
        "    # [START snippet]\n"
        "    wait = Sensor(\n"
        "        task_id='wait',\n"
        "    )\n"
        "\n"
        "    wait >> export\n"
        "    # [END snippet]\n"
        "# [START twice]\n# [END twice]\n# [START twice]\n# [END twice]\n"
        "# [END backwards]\n# [START backwards]\n"
        "# [START open]\n"
    )
    return tmp_path


def test_a_directive_becomes_a_fenced_block_of_the_dedented_region(repo: Path) -> None:
    page = 'Text\n\n--8<-- "example_dags/dag.py:snippet"\n\nMore\n'
    assert hook.expand_includes(page, repo) == (
        "Text\n\n```python\nwait = Sensor(\n    task_id='wait',\n)\n\nwait >> export\n```\n\nMore\n"
    )


def test_a_directive_without_a_name_includes_the_whole_file(repo: Path) -> None:
    expanded = hook.expand_includes('--8<-- "example_dags/dag.py"\n', repo)
    assert expanded.startswith("```python\nx = 1\n")


def test_a_directive_inside_a_code_block_is_left_alone(repo: Path) -> None:
    page = '```text\n--8<-- "example_dags/missing.py:nothing"\n```\n'
    assert hook.expand_includes(page, repo) == page


@pytest.mark.parametrize(
    ("directive", "error"),
    [
        ('"example_dags/missing.py:snippet"', "example_dags/missing.py does not exist"),
        ('"example_dags/dag.py:absent"', "has no marker '# [START absent]'"),
        ('"example_dags/dag.py:open"', "has no marker '# [END open]'"),
        ('"example_dags/dag.py:twice"', "marks the region 'twice' more than once"),
        ('"example_dags/dag.py:backwards"', "ends the region 'backwards' before it starts"),
        ('"../outside.py:snippet"', "is not a file inside the repository"),
    ],
)
def test_a_broken_directive_fails(repo: Path, directive: str, error: str) -> None:
    with pytest.raises(hook.IncludeError, match=error.replace("[", r"\[").replace("]", r"\]")):
        hook.expand_includes(f"--8<-- {directive}\n", repo)


def test_a_hand_written_python_block_is_refused(repo: Path) -> None:
    (problem,) = hook.python_block_problems("Text\n\n```python\nprint('untested')\n```\n", repo)
    assert problem.startswith("line 3: a Python block written by hand")


def test_a_copy_of_a_tested_region_is_accepted_and_a_stale_one_refused(repo: Path) -> None:
    copy = "```py\nwait = Sensor(\n    task_id='wait',\n)\nwait >> export\n```\n"
    assert hook.python_block_problems(copy, repo) == []
    named = (
        "```python\n# [START snippet]\nwait = Sensor(\n    task_id='wait',\n)\nwait >> export\n"
        "# [END snippet]\n```\n"
    )
    assert hook.python_block_problems(named, repo) == []
    (problem,) = hook.python_block_problems(named.replace("'wait'", "'other'"), repo)
    assert "the copy of 'snippet' differs from example_dags/dag.py" in problem


def test_other_languages_are_not_checked(repo: Path) -> None:
    assert hook.python_block_problems("```bash\nmake demo\n```\n\n```console\n$ ls\n```\n", repo) == []


def test_links_out_of_the_docs_point_at_generated_source_pages(repo: Path) -> None:
    page = "See [the DAG](../example_dags/dag.py#L3), [a page](sensor.md) and [Airflow](https://airflow.apache.org).\n"
    assert hook.rewrite_repository_links(page, "index.md", repo) == (
        "See [the DAG](source/example_dags/dag.py.md#L3), [a page](sensor.md) and [Airflow](https://airflow.apache.org).\n"
    )
    nested = hook.rewrite_repository_links("[x](../../example_dags/dag.py)", "guide/page.md", repo)
    assert nested == "[x](../source/example_dags/dag.py.md)"


@pytest.mark.parametrize("target", ["../example_dags/missing.py", "../example_dags/", "../pyproject.toml"])
def test_a_link_out_of_the_docs_without_a_source_page_fails(repo: Path, target: str) -> None:
    (repo / "pyproject.toml").write_text("")
    with pytest.raises(hook.IncludeError, match="leaves the docs"):
        hook.rewrite_repository_links(f"[x]({target})", "index.md", repo)
