"""Build the release artifacts and prove they install: ``make dist`` runs this, and so does the suite
(``tests/integration/test_dist.py``), so ``make test`` fails when a release would be broken.

Steps, each failing with a message that names what is wrong:

1. **build**: ``uv build`` writes the sdist and the wheel to the output directory (``dist/``), and
   ``uv export`` turns the committed ``uv.lock`` into ``constraints.txt`` beside them: every runtime
   dependency (all extras, no dev tools) pinned, as Airflow's own constraint files are.
2. **metadata**: ``twine check --strict`` (what PyPI would refuse), then our own: name and version (the
   same in ``pyproject.toml``, ``__version__`` and both artifacts), the Project-URLs, the extras, the
   ``apache_airflow_provider`` entry point, and a CHANGELOG section for the version.
3. **contents**: the wheel holds every file of the package (``py.typed``, the emulator's OpenAPI spec)
   and nothing else; the sdist holds the tests, the docs and the lock, and no ``.venv``, ``site/`` or caches.
4. **install**: in a new virtualenv (``uv venv``), the wheel alone under the constraints; then
   ``airflow providers list`` and ``airflow providers hooks`` with a temporary ``AIRFLOW_HOME`` must show
   the provider, its version and the ``runloop`` connection type of ``RunloopHook``; the emulator must
   load its OpenAPI spec from the installed package.
5. **the README**: the README's "install today" block (the lines between ``<!-- install-from-wheel -->``
   and the end of the fenced block after it) runs as written, with ``bash -euo pipefail``, in an empty
   directory where ``dist/`` is the output directory. It must create and activate a virtualenv; in that
   virtualenv the ``[s3]`` extra (the Amazon provider, s3fs, aiobotocore) must be installed.

Steps 4 and 5 run side by side: most of their time is Airflow's start-up and downloads' waiting.

Usage: ``python scripts/dist_check.py [--out dist] [--uv .tools/bin/uv]``. Exit status 0 when every step
passed, 1 with the problems on stderr otherwise. It writes the output directory, a temporary directory
(the virtualenvs, their Airflow homes, the README block's home directory) and uv's and pip's download
caches, nothing else; of the repository it reads only its own files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.metadata import Metadata
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's dependency on 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "DistCheckError",
    "check_changelog",
    "check_constraints",
    "check_metadata",
    "check_sdist_files",
    "check_wheel_files",
    "main",
    "readme_install_block",
]

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_runloop"
DIST_NAME = "airflow-provider-runloop"
CONNECTION_TYPE = "runloop"
HOOK_CLASS = f"{PACKAGE}.hooks.runloop.RunloopHook"
README_MARKER = "<!-- install-from-wheel -->"
REQUIRED_URLS = ("Homepage", "Documentation", "Repository", "Issues", "Changelog")
REQUIRED_EXTRAS = ("s3", "parquet", "openlineage")
ENTRY_POINT = f"provider_info = {PACKAGE}.get_provider_info:get_provider_info"
# The package data a user's DAG tests need at run time: the emulator reads its spec from the wheel.
REQUIRED_PACKAGE_DATA = (
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/testing/openapi/runloop-benchmarks.yml",
)
REQUIRED_SDIST_FILES = (
    "PKG-INFO",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "CHANGELOG.md",
    "mkdocs.yml",
    "docs/index.md",
    "tests/conftest.py",
    "example_dags/example_runloop_wait_and_export.py",
    *REQUIRED_PACKAGE_DATA,
)
# No artifact may carry a virtualenv, a build of the docs, another build, VCS data or a cache.
FORBIDDEN_PARTS = frozenset(
    {
        ".venv",
        ".tools",
        ".git",
        "site",
        "dist",
        "build",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".hypothesis",
        ".demo",
        ".e2e",
    }
)
FORBIDDEN_SUFFIXES = (".pyc", ".pyo", ".egg-info")
# Packages the [s3] extra brings that plain pip backtracked through for a quarter of an hour.
S3_PINS = ("apache-airflow-providers-amazon", "s3fs", "aiobotocore", "botocore")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)(?:\s*;.*)?$")
_FENCE = re.compile(r"^(`{3,}|~{3,})")
# Environment that belongs to the caller's own virtualenv or uv project, not to a clean install.
_INHERITED_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT", "CONDA_PREFIX")
COMMAND_TIMEOUT_SECONDS = 600


class DistCheckError(Exception):
    """A step of the check failed; the message says which and what to fix."""


@dataclass(frozen=True)
class Artifacts:
    wheel: Path
    sdist: Path
    constraints: Path


# --- pure checks (unit-tested with hand-made inputs) ------------------------------------------------


def _forbidden(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return any(part in FORBIDDEN_PARTS for part in parts) or any(
        part.endswith(FORBIDDEN_SUFFIXES) for part in parts
    )


def check_wheel_files(names: Iterable[str], package_files: Iterable[str], version: str) -> list[str]:
    """Problems with a wheel's file list, given the package's own files (paths relative to the repo)."""
    names = set(names)
    dist_info = f"{PACKAGE}-{version}.dist-info/"
    required = {*package_files, *REQUIRED_PACKAGE_DATA}
    required |= {f"{dist_info}{name}" for name in ("METADATA", "RECORD", "WHEEL", "entry_points.txt")}
    problems = [f"the wheel has no {name}" for name in sorted(required - names)]
    for name in sorted(names):
        if _forbidden(name):
            problems.append(f"the wheel must not contain {name}")
        elif not name.startswith((f"{PACKAGE}/", dist_info)):
            problems.append(f"the wheel has a file outside {PACKAGE}/ and its .dist-info: {name}")
    return problems


def check_sdist_files(names: Iterable[str], version: str) -> list[str]:
    """Problems with an sdist's file list (tar member names, with their ``name-version/`` root)."""
    root = f"{PACKAGE}-{version}/"
    relative = set()
    problems = []
    for name in sorted(names):
        if not name.startswith(root):
            problems.append(f"the sdist has a file outside {root}: {name}")
            continue
        relative.add(name.removeprefix(root))
        if _forbidden(name.removeprefix(root)):
            problems.append(f"the sdist must not contain {name.removeprefix(root)}")
    problems += [f"the sdist has no {name}" for name in REQUIRED_SDIST_FILES if name not in relative]
    return problems


def check_metadata(raw: str, *, where: str, version: str, urls: Mapping[str, str]) -> list[str]:
    """Problems with a METADATA / PKG-INFO text (core metadata), compared with ``pyproject.toml``."""
    try:
        metadata = Metadata.from_email(raw, validate=True)
    except Exception as error:  # packaging raises an ExceptionGroup of every invalid field
        return [f"{where}: invalid core metadata: {error!r}"]
    problems = []
    if canonicalize_name(metadata.name) != DIST_NAME:
        problems.append(f"{where}: name is {metadata.name!r}, expected {DIST_NAME!r}")
    if str(metadata.version) != version:
        problems.append(f"{where}: version is {metadata.version}, pyproject.toml says {version}")
    found = dict(metadata.project_urls or {})
    for label in REQUIRED_URLS:
        if label not in found:
            problems.append(f"{where}: no Project-URL {label!r} ([project.urls] in pyproject.toml)")
        elif found[label] != urls.get(label):
            problems.append(
                f"{where}: Project-URL {label} is {found[label]!r}, pyproject.toml says {urls.get(label)!r}"
            )
        elif not found[label].startswith("https://"):
            problems.append(f"{where}: Project-URL {label} is not an https URL: {found[label]!r}")
    extras = {str(extra) for extra in metadata.provides_extra or []}
    problems += [f"{where}: no extra {extra!r}" for extra in REQUIRED_EXTRAS if extra not in extras]
    requires = {canonicalize_name(req.name) for req in metadata.requires_dist or []}
    if "apache-airflow" not in requires:
        problems.append(f"{where}: apache-airflow is not a requirement")
    if not metadata.requires_python:
        problems.append(f"{where}: no Requires-Python")
    if metadata.description_content_type != "text/markdown":
        problems.append(f"{where}: the long description is not text/markdown (the README)")
    return problems


def check_constraints(text: str, locked: Mapping[str, str]) -> list[str]:
    """Problems with ``constraints.txt``: every requirement an exact pin, matching ``uv.lock``."""
    pins: dict[str, str] = {}
    problems = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match is None:
            problems.append(f"constraints.txt: not an exact pin: {line!r}")
            continue
        pins[canonicalize_name(match["name"])] = match["version"]
    if DIST_NAME in pins:
        problems.append("constraints.txt pins the provider itself (it must constrain its dependencies only)")
    for name in ("apache-airflow", *S3_PINS):
        if name not in pins:
            problems.append(f"constraints.txt does not pin {name}")
    for name, version in sorted(pins.items()):
        if locked.get(name) != version:
            problems.append(f"constraints.txt pins {name}=={version}, uv.lock has {locked.get(name)}")
    return problems


def check_changelog(text: str, version: str) -> list[str]:
    """A Keep-a-Changelog file must have a section for the version being built."""
    if not re.search(rf"^## \[{re.escape(version)}\]", text, re.M):
        return [f"CHANGELOG.md has no '## [{version}]' section"]
    return []


def readme_install_block(readme: str) -> str:
    """The commands of the fenced block right after the README's ``<!-- install-from-wheel -->`` line."""
    lines = readme.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == README_MARKER]
    if len(starts) != 1:
        raise DistCheckError(f"README.md must have exactly one {README_MARKER} line, found {len(starts)}")
    rest = lines[starts[0] + 1 :]
    opening = next((i for i, line in enumerate(rest) if line.strip()), None)
    fence = _FENCE.match(rest[opening].strip()) if opening is not None else None
    if opening is None or fence is None:
        raise DistCheckError(f"README.md: {README_MARKER} must be followed by a fenced code block")
    body = rest[opening + 1 :]
    closing = next((i for i, line in enumerate(body) if line.strip() == fence[1]), None)
    if closing is None:
        raise DistCheckError(f"README.md: the code block after {README_MARKER} is never closed")
    commands = "\n".join(body[:closing]).strip()
    if not commands:
        raise DistCheckError(f"README.md: the code block after {README_MARKER} is empty")
    return commands + "\n"


# --- the steps that build and run things --------------------------------------------------------


def _run(
    command: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    label: str | None = None,
) -> str:
    """Run a command, return its stdout; on failure raise with the command and the tail of its output."""
    shown = label or " ".join(str(part) for part in command)
    started = time.monotonic()
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    print(f"  {time.monotonic() - started:5.1f} s  {shown}", flush=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise DistCheckError(f"{shown} exited with {result.returncode}:\n{tail}")
    return result.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without its virtualenv and Airflow settings: installs land only where we
    say, and Airflow starts as it would for a new user."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _INHERITED_ENV and not key.startswith("AIRFLOW")  # e.g. a test session's settings
    }
    venv_bins = {str(REPO / ".venv" / "bin"), str(Path(sys.prefix) / "bin")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p not in venv_bins)
    env.update(extra)
    return env


def _pyproject() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return {canonicalize_name(p["name"]): p["version"] for p in lock["package"] if "version" in p}


def build(uv: Path, out: Path) -> Artifacts:
    if out.exists():
        shutil.rmtree(out)
    _run([uv, "build", "--out-dir", out, "--no-progress"])
    constraints = _run(
        [
            uv,
            "export",
            "--frozen",
            "--no-hashes",
            "--no-annotate",
            "--all-extras",
            "--no-dev",
            "--no-emit-project",
        ]
    )
    (out / "constraints.txt").write_text(constraints)
    wheels = sorted(out.glob("*.whl"))
    sdists = sorted(out.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise DistCheckError(f"expected one wheel and one sdist in {out}, found {wheels + sdists}")
    return Artifacts(wheels[0], sdists[0], out / "constraints.txt")


def check_artifacts(artifacts: Artifacts, version: str, urls: Mapping[str, str]) -> list[str]:
    _run([sys.executable, "-m", "twine", "check", "--strict", artifacts.wheel, artifacts.sdist])
    problems = []
    init = (REPO / PACKAGE / "__init__.py").read_text()
    if f'__version__ = "{version}"' not in init:
        problems.append(f"{PACKAGE}/__init__.py's __version__ is not {version!r} (pyproject.toml's version)")
    problems += check_changelog((REPO / "CHANGELOG.md").read_text(), version)

    with zipfile.ZipFile(artifacts.wheel) as wheel:
        names = wheel.namelist()
        dist_info = f"{PACKAGE}-{version}.dist-info"
        metadata = wheel.read(f"{dist_info}/METADATA").decode() if f"{dist_info}/METADATA" in names else ""
        entry_points = (
            wheel.read(f"{dist_info}/entry_points.txt").decode()
            if f"{dist_info}/entry_points.txt" in names
            else ""
        )
    package_files = [
        path.relative_to(REPO).as_posix()
        for path in (REPO / PACKAGE).rglob("*")
        if path.is_file() and not _forbidden(path.relative_to(REPO).as_posix())
    ]
    problems += check_wheel_files(names, package_files, version)
    problems += check_metadata(metadata, where="wheel METADATA", version=version, urls=urls)
    if "[apache_airflow_provider]" not in entry_points or ENTRY_POINT not in entry_points:
        problems.append(f"the wheel's entry_points.txt has no [apache_airflow_provider] {ENTRY_POINT}")

    with tarfile.open(artifacts.sdist) as sdist:
        members = [member.name for member in sdist.getmembers() if member.isfile()]
        pkg_info = sdist.extractfile(f"{PACKAGE}-{version}/PKG-INFO")
        raw = pkg_info.read().decode() if pkg_info is not None else ""
    problems += check_sdist_files(members, version)
    problems += check_metadata(raw, where="sdist PKG-INFO", version=version, urls=urls)
    problems += check_constraints(artifacts.constraints.read_text(), _locked_versions())
    return problems


def _airflow_json(venv: Path, home: Path, *args: str) -> object:
    env = _clean_env(AIRFLOW_HOME=str(home), VIRTUAL_ENV=str(venv))
    out = _run([venv / "bin" / "airflow", "providers", *args, "--output", "json"], env=env, cwd=home)
    try:
        return json.loads(out)
    except json.JSONDecodeError as error:
        raise DistCheckError(
            f"airflow providers {' '.join(args)} did not print JSON: {out[-2000:]!r}"
        ) from error


def _listed_packages(providers: object) -> dict[str, str]:
    if not isinstance(providers, list):
        raise DistCheckError(f"airflow providers list printed {providers!r}, not a list")
    return {
        str(row.get("package_name")): str(row.get("version")) for row in providers if isinstance(row, dict)
    }


def check_clean_install(uv: Path, artifacts: Artifacts, work: Path, version: str) -> list[str]:
    """The wheel alone (no extra) in a new venv, then what Airflow's CLI says about it."""
    venv = work / "wheel-venv"
    home = work / "wheel-airflow-home"
    home.mkdir()
    _run([uv, "venv", "--no-project", "--python", sys.executable, venv], env=_clean_env())
    _run(
        [
            uv,
            "pip",
            "install",
            "--python",
            venv / "bin" / "python",
            artifacts.wheel,
            "-c",
            artifacts.constraints,
        ],
        env=_clean_env(),
    )
    # Each command starts Airflow afresh (about 10 s of imports), so these two are all we ask; the
    # documentation URL Airflow shows comes from the METADATA checked above (test_get_provider_info.py
    # checks that Airflow reads it from there).
    providers = _airflow_json(venv, home, "list")
    hooks = _airflow_json(venv, home, "hooks")
    # The emulator reads its spec as package data: from the installed wheel, not from the repository.
    probe = (
        "import json\n"
        "from airflow_provider_runloop.testing.openapi import SPEC_FILE, load_spec\n"
        "print(json.dumps([str(SPEC_FILE.resolve()), len(load_spec()['paths'])]))\n"
    )
    spec_file, spec_paths = json.loads(
        _run([venv / "bin" / "python", "-c", probe], env=_clean_env(), cwd=home, label="the emulator's spec")
    )
    problems = []
    if not Path(spec_file).is_relative_to(venv.resolve()) or not spec_paths:
        problems.append(
            f"the installed emulator read its spec from {spec_file} ({spec_paths} paths), not the wheel"
        )
    listed = _listed_packages(providers)
    if listed.get(DIST_NAME) != version:
        problems.append(
            f"airflow providers list shows {DIST_NAME} as {listed.get(DIST_NAME)!r}, expected {version}"
        )
    ours = (
        [row for row in hooks if isinstance(row, dict) and row.get("connection_type") == CONNECTION_TYPE]
        if isinstance(hooks, list)
        else []
    )
    if len(ours) != 1 or ours[0].get("class") != HOOK_CLASS or ours[0].get("package_name") != DIST_NAME:
        problems.append(
            f"airflow providers hooks: expected one {CONNECTION_TYPE!r} connection type, {HOOK_CLASS}: {ours}"
        )
    return problems


def check_readme_install(uv: Path, artifacts: Artifacts, work: Path) -> list[str]:
    """Run the README's block as written, in a directory where ``dist/`` holds the artifacts."""
    commands = readme_install_block((REPO / "README.md").read_text())
    uv_cache = _run([uv, "cache", "dir"], env=_clean_env()).strip()
    here = work / "readme"
    here.mkdir()
    (here / "dist").symlink_to(artifacts.wheel.parent.resolve(), target_is_directory=True)
    home = work / "readme-airflow-home"
    home.mkdir()
    user_home = work / "readme-home"
    user_home.mkdir()
    venv_file = work / "readme-venv-path"
    script = f'{commands}\nprintf "%s" "${{VIRTUAL_ENV:-}}" > {venv_file}\n'
    print("  the README's install block:\n" + "".join(f"    $ {line}\n" for line in commands.splitlines()))
    # A fresh HOME (the block may put its venv under ~), keeping the download caches so it stays fast.
    env = _clean_env(
        AIRFLOW_HOME=str(home),
        HOME=str(user_home),
        UV_CACHE_DIR=uv_cache,
        PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
    )
    _run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=here, label="the README's install block")
    venv = Path(venv_file.read_text()) if venv_file.exists() else Path()
    if not venv.is_absolute() or not (venv / "bin" / "python").exists():
        return ["the README's install block must create and activate a virtualenv (no VIRTUAL_ENV after it)"]
    # The block's own `airflow providers list | grep` showed our provider. What the [s3] extra brings is
    # checked without starting Airflow a second time: the Amazon provider installed, s3fs importable.
    probe = (
        "import importlib.metadata, aiobotocore, s3fs\n"
        "print(importlib.metadata.version('apache-airflow-providers-amazon'))\n"
    )
    problems = []
    try:
        _run(
            [venv / "bin" / "python", "-c", probe], env=_clean_env(), cwd=home, label="the [s3] extra's probe"
        )
    except DistCheckError as error:
        problems.append(f"after the README's install block, the [s3] extra is not installed: {error}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "dist", help="where the artifacts go (default dist/)"
    )
    parser.add_argument(
        "--uv", type=Path, default=REPO / ".tools" / "bin" / "uv", help="the uv to build with"
    )
    args = parser.parse_args(argv)
    uv = args.uv.resolve()
    if not uv.exists():
        print(f"dist check: {uv} does not exist; `make env` installs the pinned uv there", file=sys.stderr)
        return 1
    project = _pyproject()
    version = str(project["version"])
    urls = dict(project.get("urls", {}))  # type: ignore[call-overload]
    started = time.monotonic()
    problems: list[str] = []
    try:
        print(f"build {DIST_NAME} {version} into {args.out}")
        artifacts = build(uv, args.out.resolve())
        print("check metadata and contents")
        problems += check_artifacts(artifacts, version, urls)
        print("install the wheel into a new virtualenv and ask Airflow about it; beside it, run the README's")
        print("install block as written")
        with tempfile.TemporaryDirectory(prefix="runloop-dist-check-") as tmp, ThreadPoolExecutor(2) as pool:
            installs = [
                pool.submit(check_clean_install, uv, artifacts, Path(tmp), version),
                pool.submit(check_readme_install, uv, artifacts, Path(tmp)),
            ]
            for install in installs:
                problems += install.result()
    except DistCheckError as error:
        problems.append(str(error))
    elapsed = time.monotonic() - started
    if problems:
        print(f"dist check FAILED after {elapsed:.1f} s:", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        return 1
    built = ", ".join(path.name for path in (artifacts.wheel, artifacts.sdist, artifacts.constraints))
    print(f"dist check passed in {elapsed:.1f} s: {built} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
