"""``scripts/dist_check.py`` (``make dist``): each check finds what it is there to find, on hand-made
file lists, metadata and constraints; and the README's install block is the one the docs show.

The real build, installs and Airflow CLI runs are ``tests/integration/test_dist.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.dag_files import load_script

REPO = Path(__file__).resolve().parents[3]


dist_check = load_script("dist_check")

VERSION = "1.2.3"
PKG = "airflow_provider_runloop"
DIST_INFO = f"{PKG}-{VERSION}.dist-info"
PACKAGE_FILES = [f"{PKG}/__init__.py", f"{PKG}/hooks/runloop.py", *dist_check.REQUIRED_PACKAGE_DATA]
GOOD_WHEEL = [
    *PACKAGE_FILES,
    *(f"{DIST_INFO}/{name}" for name in ("METADATA", "RECORD", "WHEEL", "entry_points.txt")),
]
SDIST_ROOT = f"{PKG}-{VERSION}/"
GOOD_SDIST = [SDIST_ROOT + name for name in dist_check.REQUIRED_SDIST_FILES] + [f"{SDIST_ROOT}docs/hook.md"]
URLS = {label: f"https://example.test/{label.lower()}" for label in dist_check.REQUIRED_URLS}


def _metadata(
    *, name: str = "airflow-provider-runloop", version: str = VERSION, urls: dict[str, str] = URLS
) -> str:
    lines = [
        "Metadata-Version: 2.4",
        f"Name: {name}",
        f"Version: {version}",
        "Requires-Python: >=3.10",
        "Requires-Dist: apache-airflow<4,>=3.3.2",
        "Requires-Dist: apache-airflow-providers-amazon[s3fs]>=9.0; extra == 's3'",
        "Requires-Dist: pyarrow>=14; extra == 'parquet'",
        "Requires-Dist: apache-airflow-providers-openlineage>=2.20.2; extra == 'openlineage'",
        "Provides-Extra: parquet",
        "Provides-Extra: s3",
        "Provides-Extra: openlineage",
        "Description-Content-Type: text/markdown",
        *(f"Project-URL: {label}, {url}" for label, url in urls.items()),
    ]
    return "\n".join(lines) + "\n\n# the README\n"


def test_a_complete_wheel_passes() -> None:
    assert dist_check.check_wheel_files(GOOD_WHEEL, PACKAGE_FILES, VERSION) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(lambda n: n - {f"{PKG}/py.typed"}, f"the wheel has no {PKG}/py.typed", id="no-py-typed"),
        pytest.param(
            lambda n: n - {f"{PKG}/testing/openapi/runloop-benchmarks.yml"},
            f"the wheel has no {PKG}/testing/openapi/runloop-benchmarks.yml",
            id="no-spec",
        ),
        pytest.param(
            lambda n: n - {f"{PKG}/hooks/runloop.py"},
            f"the wheel has no {PKG}/hooks/runloop.py",
            id="no-module",
        ),
        pytest.param(
            lambda n: n - {f"{DIST_INFO}/entry_points.txt"}, "has no " + DIST_INFO, id="no-entry-points"
        ),
        pytest.param(
            lambda n: n | {f"{PKG}/__pycache__/client.cpython-311.pyc"}, "must not contain", id="pycache"
        ),
        pytest.param(lambda n: n | {f"{PKG}/.mypy_cache/x.json"}, "must not contain", id="cache"),
        pytest.param(lambda n: n | {"tests/conftest.py"}, "a file outside", id="tests-in-wheel"),
        pytest.param(lambda n: n | {"site/index.html"}, "must not contain site/index.html", id="site"),
    ],
)
def test_a_wheel_missing_or_carrying_a_file_is_refused(
    change: Callable[[set[str]], set[str]], problem: str
) -> None:
    problems = dist_check.check_wheel_files(change(set(GOOD_WHEEL)), PACKAGE_FILES, VERSION)
    assert any(problem in p for p in problems), problems


def test_a_complete_sdist_passes() -> None:
    assert dist_check.check_sdist_files(GOOD_SDIST, VERSION) == []


@pytest.mark.parametrize(
    ("extra", "missing", "problem"),
    [
        pytest.param(".venv/bin/python", None, "must not contain .venv/bin/python", id="venv"),
        pytest.param(".tools/bin/uv", None, "must not contain .tools/bin/uv", id="tools"),
        pytest.param("site/index.html", None, "must not contain site/index.html", id="site"),
        pytest.param(".demo/results/x.jsonl", None, "must not contain .demo/results/x.jsonl", id="demo"),
        pytest.param("tests/__pycache__/conftest.cpython-311.pyc", None, "must not contain", id="pycache"),
        pytest.param("dist/old.whl", None, "must not contain dist/old.whl", id="dist"),
        pytest.param(None, "CHANGELOG.md", "the sdist has no CHANGELOG.md", id="no-changelog"),
        pytest.param(None, "tests/conftest.py", "the sdist has no tests/conftest.py", id="no-tests"),
        pytest.param(None, "uv.lock", "the sdist has no uv.lock", id="no-lock"),
    ],
)
def test_an_sdist_missing_or_carrying_a_file_is_refused(
    extra: str | None, missing: str | None, problem: str
) -> None:
    names = [n for n in GOOD_SDIST if n != SDIST_ROOT + str(missing)] + (
        [SDIST_ROOT + extra] if extra else []
    )
    problems = dist_check.check_sdist_files(names, VERSION)
    assert any(problem in p for p in problems), problems


def test_an_sdist_file_outside_its_root_is_refused() -> None:
    problems = dist_check.check_sdist_files([*GOOD_SDIST, "etc/passwd"], VERSION)
    assert problems == [f"the sdist has a file outside {SDIST_ROOT}: etc/passwd"]


def test_complete_metadata_passes() -> None:
    assert dist_check.check_metadata(_metadata(), where="METADATA", version=VERSION, urls=URLS) == []


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(_metadata(version="1.2.4"), "version is 1.2.4, pyproject.toml says 1.2.3", id="version"),
        pytest.param(_metadata(name="other-provider"), "name is 'other-provider'", id="name"),
        pytest.param(
            _metadata(urls={k: v for k, v in URLS.items() if k != "Documentation"}),
            "no Project-URL 'Documentation'",
            id="no-docs-url",
        ),
        pytest.param(
            _metadata(urls={**URLS, "Changelog": "https://example.test/elsewhere"}),
            "Project-URL Changelog is 'https://example.test/elsewhere'",
            id="url-differs",
        ),
        pytest.param(_metadata().replace("Provides-Extra: s3\n", ""), "no extra 's3'", id="no-s3-extra"),
        pytest.param(
            _metadata().replace("Provides-Extra: openlineage\n", ""),
            "no extra 'openlineage'",
            id="no-openlineage-extra",
        ),
        pytest.param(
            _metadata().replace("Requires-Dist: apache-airflow<4,>=3.3.2\n", ""),
            "apache-airflow",
            id="no-airflow",
        ),
        pytest.param(
            _metadata().replace("text/markdown", "text/plain"), "not text/markdown", id="not-markdown"
        ),
        pytest.param(
            _metadata().replace("Version: 1.2.3", "Version: not a version"),
            "invalid core metadata",
            id="invalid",
        ),
    ],
)
def test_metadata_problems_are_named(raw: str, problem: str) -> None:
    problems = dist_check.check_metadata(raw, where="METADATA", version=VERSION, urls=URLS)
    assert any(problem in p for p in problems), problems


def test_an_http_project_url_is_refused() -> None:
    urls = {**URLS, "Issues": "http://example.test/issues"}
    problems = dist_check.check_metadata(_metadata(urls=urls), where="METADATA", version=VERSION, urls=urls)
    assert problems == ["METADATA: Project-URL Issues is not an https URL: 'http://example.test/issues'"]


LOCKED = {"apache-airflow": "3.3.2", "apache-airflow-providers-amazon": "9.1.0", "s3fs": "2026.1.0"}
LOCKED |= {"aiobotocore": "3.1.0", "botocore": "1.40.0", "airflow-provider-runloop": VERSION}
GOOD_CONSTRAINTS = "# exported from uv.lock\n" + "".join(
    f"{name}=={version} ; sys_platform == 'linux'\n"
    for name, version in LOCKED.items()
    if name != "airflow-provider-runloop"
)


def test_constraints_pinned_to_the_lock_pass() -> None:
    assert dist_check.check_constraints(GOOD_CONSTRAINTS, LOCKED) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(GOOD_CONSTRAINTS + "httpx>=0.27\n", "not an exact pin: 'httpx>=0.27'", id="range"),
        pytest.param(GOOD_CONSTRAINTS + "-e .\n", "not an exact pin: '-e .'", id="editable-project"),
        pytest.param(
            GOOD_CONSTRAINTS + f"airflow-provider-runloop=={VERSION}\n", "pins the provider itself", id="self"
        ),
        pytest.param(
            GOOD_CONSTRAINTS.replace("s3fs==2026.1.0", "s3fs==2025.1.0"),
            "s3fs==2025.1.0, uv.lock has 2026.1.0",
            id="stale",
        ),
        pytest.param(
            GOOD_CONSTRAINTS.replace("aiobotocore==", "#aiobotocore=="),
            "does not pin aiobotocore",
            id="no-aiobotocore",
        ),
    ],
)
def test_constraints_problems_are_named(text: str, problem: str) -> None:
    problems = dist_check.check_constraints(text, LOCKED)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("changelog", "problems"),
    [
        pytest.param("# Changelog\n\n## [Unreleased]\n\n## [1.2.3] - 2026-12-01\n", [], id="has-section"),
        pytest.param(
            "# Changelog\n\n## [1.2.2] - 2026-11-01\n",
            ["CHANGELOG.md has no '## [1.2.3]' section"],
            id="missing",
        ),
        pytest.param(
            "Mentions [1.2.3] in a sentence.\n",
            ["CHANGELOG.md has no '## [1.2.3]' section"],
            id="not-a-heading",
        ),
    ],
)
def test_the_changelog_needs_a_section_for_the_version(changelog: str, problems: list[str]) -> None:
    assert dist_check.check_changelog(changelog, VERSION) == problems


def test_the_readme_block_is_the_fenced_block_after_the_marker() -> None:
    readme = (
        "# x\n\n```bash\nnot this\n```\n\n"
        "<!-- install-from-wheel -->\n```bash\npip install uv\nuv pip install x\n```\nafter\n"
    )
    assert dist_check.readme_install_block(readme) == "pip install uv\nuv pip install x\n"


@pytest.mark.parametrize(
    ("readme", "error"),
    [
        pytest.param(
            "```bash\npip install x\n```\n",
            "exactly one <!-- install-from-wheel --> line, found 0",
            id="no-marker",
        ),
        pytest.param(
            "<!-- install-from-wheel -->\n<!-- install-from-wheel -->\n", "found 2", id="two-markers"
        ),
        pytest.param(
            "<!-- install-from-wheel -->\nsome prose\n",
            "must be followed by a fenced code block",
            id="no-block",
        ),
        pytest.param(
            "<!-- install-from-wheel -->\n```bash\npip install x\n", "is never closed", id="unclosed"
        ),
        pytest.param("<!-- install-from-wheel -->\n```bash\n\n```\n", "is empty", id="empty"),
    ],
)
def test_a_readme_without_one_clear_block_is_refused(readme: str, error: str) -> None:
    with pytest.raises(dist_check.DistCheckError, match=error):
        dist_check.readme_install_block(readme)


def test_the_readme_installs_the_built_wheel_with_the_s3_extra_under_the_constraints() -> None:
    block = dist_check.readme_install_block((REPO / "README.md").read_text())
    install = [line for line in block.splitlines() if line.startswith("uv pip install")]
    assert len(install) == 1, block
    assert "dist/airflow_provider_runloop-" in install[0]
    assert "[s3]" in install[0]
    assert "--constraints dist/constraints.txt" in install[0]
    assert "source " in block  # a virtualenv, activated, so nothing lands in the system Python


def test_the_installation_page_shows_the_readmes_tested_block() -> None:
    page = dist_check.readme_install_block((REPO / "docs" / "installation.md").read_text())
    assert page == dist_check.readme_install_block((REPO / "README.md").read_text())


def test_the_wheel_name_in_the_readme_is_the_projects_version() -> None:
    version = dist_check._pyproject()["version"]
    block = dist_check.readme_install_block((REPO / "README.md").read_text())
    assert f"dist/airflow_provider_runloop-{version}-py3-none-any.whl" in block


def test_main_says_how_to_get_uv_when_it_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dist_check.main(["--uv", str(tmp_path / "no-uv"), "--out", str(tmp_path / "dist")]) == 1
    assert "`make env` installs the pinned uv" in capsys.readouterr().err
    assert not (tmp_path / "dist").exists()
