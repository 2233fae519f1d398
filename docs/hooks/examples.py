"""MkDocs hook: the docs' Python code comes from tested files, and stays in step with them.

A line of its own in a page::

    --8<-- "example_dags/example_runloop_wait_and_export.py:howto_sensor_runloop_deferrable"

is replaced by a fenced code block holding the lines between ``# [START howto_sensor_runloop_deferrable]``
and ``# [END howto_sensor_runloop_deferrable]`` in that file (path relative to the repository root,
common indentation removed). Without ``:name`` the whole file is included. A missing file, a missing,
repeated or unclosed marker fails the build.

Every ``python`` code block a page writes by hand fails the build too, unless it is exactly (blank lines
and indentation aside) a marked region of a tested file, the example DAGs or the test suite. A block that
starts with ``# [START name]`` must match the region of that name. So the docs cannot drift from the
tested code.

Links from a page to a repository file outside ``docs/`` (``../example_dags/x.py``) are rewritten to a
generated page showing that file; a link to a file that does not exist fails the build.

The functions here are plain (no MkDocs import) so that ``tests/unit/test_docs.py`` checks the pages
with the same rules ``mkdocs build --strict`` applies.
"""

from __future__ import annotations

import os
import posixpath
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "GENERATED_SOURCE_GLOBS",
    "IncludeError",
    "expand_includes",
    "extract_region",
    "find_region",
    "marked_regions",
    "python_block_problems",
    "rewrite_repository_links",
]

REPO = Path(__file__).resolve().parents[2]
# Repository files that get a generated page (``source/<path>.md``) that links can point to.
GENERATED_SOURCE_GLOBS = ("example_dags/*.py", "scripts/*.py", "scripts/*.json", "bench/*.py")
# Where marked regions are searched for when a page copies one by hand.
REGION_SOURCE_GLOBS = ("example_dags/*.py", "tests/**/*.py")
SOURCE_PAGE_PREFIX = "source/"

_DIRECTIVE = re.compile(r'^(?P<indent>[ \t]*)--8<--[ \t]+"(?P<path>[^":]+)(?::(?P<name>[\w-]+))?"[ \t]*$')
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_START = "# [START {}]"
_END = "# [END {}]"
_LANGUAGES = {
    ".py": "python",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".sh": "bash",
}
_PYTHON_INFOS = {"python", "py", "python3", "py3", "pycon"}
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


class IncludeError(ValueError):
    """A directive, a hand-written block or a link the docs cannot have; the message says where."""


# --- regions ------------------------------------------------------------------------------------------


def extract_region(path: Path, name: str | None) -> str:
    """The text between ``# [START name]`` and ``# [END name]`` in ``path``, dedented (or the whole file).

    :raises IncludeError: if the file or a marker is missing, or a marker appears more than once.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise IncludeError(f"{_display(path)} does not exist") from None
    if name is None:
        return text.rstrip("\n") + "\n"
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == _START.format(name)]
    ends = [i for i, line in enumerate(lines) if line.strip() == _END.format(name)]
    if not starts:
        raise IncludeError(f"{_display(path)} has no marker '{_START.format(name)}'")
    if not ends:
        raise IncludeError(f"{_display(path)} has no marker '{_END.format(name)}'")
    if len(starts) > 1 or len(ends) > 1:
        raise IncludeError(f"{_display(path)} marks the region {name!r} more than once")
    if ends[0] < starts[0]:
        raise IncludeError(f"{_display(path)} ends the region {name!r} before it starts")
    body = textwrap.dedent("\n".join(lines[starts[0] + 1 : ends[0]])).strip("\n")
    if not body.strip():
        raise IncludeError(f"{_display(path)} has an empty region {name!r}")
    return body + "\n"


def find_region(name: str, repo: Path = REPO) -> Path:
    """The one file under the region sources that marks ``name``.

    :raises IncludeError: if no file, or more than one, marks it.
    """
    marker = _START.format(name)
    found = sorted(
        {
            path
            for pattern in REGION_SOURCE_GLOBS
            for path in repo.glob(pattern)
            if marker in path.read_text(encoding="utf-8", errors="replace")
        }
    )
    if len(found) != 1:
        where = ", ".join(_display(path, repo) for path in found) or "no file"
        raise IncludeError(f"the region {name!r} must be marked in exactly one tested file; found in {where}")
    return found[0]


# --- pages ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    start: int  # line index of the opening fence
    end: int  # line index of the closing fence (or len(lines) when unclosed)
    info: str
    body: list[str]


def _blocks(lines: list[str]) -> Iterator[_Block]:
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence = match["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(index + 1, len(lines)) if closing.match(lines[j])), len(lines))
        yield _Block(index, end, match["info"].strip().split(" ")[0].lower(), lines[index + 1 : end])
        index = end + 1


def expand_includes(markdown: str, repo: Path = REPO) -> str:
    """Replace each include directive (outside code blocks) with a fenced block of the included code."""
    lines = markdown.splitlines()
    inside = {i for block in _blocks(lines) for i in range(block.start, block.end + 1)}
    out: list[str] = []
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line) if index not in inside else None
        if match is None:
            out.append(line)
            continue
        path = _repository_path(match["path"], repo)
        code = extract_region(path, match["name"])
        indent = match["indent"]
        language = _LANGUAGES.get(path.suffix, "text")
        fence = "`" * max(3, _longest_backtick_run(code) + 1)
        out.append(f"{indent}{fence}{language}")
        out.extend(f"{indent}{code_line}" if code_line else "" for code_line in code.splitlines())
        out.append(f"{indent}{fence}")
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")


def python_block_problems(markdown: str, repo: Path = REPO) -> list[str]:
    """Why each hand-written Python block of a page is not allowed (an empty list when all are fine).

    A block written into a page is allowed only if it is tested code: its lines (blank lines and
    indentation aside) are exactly a marked region of a tested file. A block that starts with
    ``# [START name]`` must match the region ``name``.
    """
    problems = []
    regions = marked_regions(repo)
    for block in _blocks(markdown.splitlines()):
        if block.info not in _PYTHON_INFOS:
            continue
        where = f"line {block.start + 1}"
        first = next((line.strip() for line in block.body if line.strip()), "")
        named = re.fullmatch(r"# \[START ([\w-]+)\]", first)
        code = _normalized(block.body, named[1] if named else None)
        if named is None:
            if code not in regions.values():
                problems.append(
                    f"{where}: a Python block written by hand is no tested file's marked region; include "
                    'it from a tested file instead (--8<-- "path/to/file.py:region_name", the region marked '
                    "with # [START region_name] and # [END region_name])"
                )
            continue
        name = named[1]
        try:
            source = find_region(name, repo)
        except IncludeError as error:
            problems.append(f"{where}: {error}")
            continue
        if code != _normalized(extract_region(source, name).splitlines(), None):
            problems.append(
                f"{where}: the copy of {name!r} differs from {_display(source, repo)}; include it instead"
            )
    return problems


def marked_regions(repo: Path = REPO) -> dict[str, list[str]]:
    """Every marked region of the tested files, normalized: ``{"path:name": lines}``."""
    regions = {}
    for pattern in REGION_SOURCE_GLOBS:
        for path in sorted(repo.glob(pattern)):
            text = path.read_text(encoding="utf-8", errors="replace")
            for name in re.findall(r"^[ \t]*# \[START ([\w-]+)\][ \t]*$", text, re.M):
                try:
                    body = extract_region(path, name)
                except IncludeError:
                    continue  # reported when a page uses it
                regions[f"{_display(path, repo)}:{name}"] = _normalized(body.splitlines(), None)
    return regions


def rewrite_repository_links(markdown: str, page_src_uri: str, repo: Path = REPO) -> str:
    """Point links to repository files outside ``docs/`` at their generated source pages.

    :raises IncludeError: for a link to a repository file or folder that has no generated page.
    """
    page_dir = posixpath.dirname(page_src_uri)
    docs = repo / "docs"
    lines = markdown.splitlines(keepends=True)
    inside = {
        i
        for block in _blocks([line.rstrip("\n") for line in lines])
        for i in range(block.start, block.end + 1)
    }

    def rewrite(match: re.Match[str]) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match[0]
        path_part, _, anchor = target.partition("#")
        resolved = Path(os.path.normpath(docs / page_dir / path_part))
        if resolved == docs or docs in resolved.parents:
            return match[0]  # a page of the site: MkDocs checks it
        relative = resolved.relative_to(repo).as_posix() if repo in resolved.parents else None
        if relative is None or relative not in generated_source_paths(repo):
            raise IncludeError(
                f"a link to {target!r} leaves the docs and names no file with a generated page "
                f"(those matching {', '.join(GENERATED_SOURCE_GLOBS)})"
            )
        page = posixpath.relpath(f"{SOURCE_PAGE_PREFIX}{relative}.md", page_dir or ".")
        return f"]({page}{'#' + anchor if anchor else ''})"

    return "".join(line if i in inside else _LINK.sub(rewrite, line) for i, line in enumerate(lines))


def generated_source_paths(repo: Path = REPO) -> list[str]:
    """Repository paths (posix) that get a generated source page."""
    return sorted(
        {
            path.relative_to(repo).as_posix()
            for pattern in GENERATED_SOURCE_GLOBS
            for path in repo.glob(pattern)
        }
    )


def source_page(relative: str) -> str:
    """The Markdown of a generated page that shows one repository file."""
    return f'# `{relative}`\n\n--8<-- "{relative}"\n'


# --- helpers ---------------------------------------------------------------------------------------------


def _repository_path(relative: str, repo: Path) -> Path:
    path = (repo / relative).resolve()
    if repo not in path.parents:
        raise IncludeError(f"{relative!r} is not a file inside the repository")
    return path


def _normalized(lines: list[str], drop_markers_of: str | None) -> list[str]:
    text = "\n".join(lines)
    if drop_markers_of is not None:
        text = "\n".join(
            line
            for line in text.splitlines()
            if line.strip() not in (_START.format(drop_markers_of), _END.format(drop_markers_of))
        )
    # Blank lines are not compared: top-level code in a page may be spaced differently from a DAG body.
    return [line for line in textwrap.dedent(text).splitlines() if line.strip()]


def _longest_backtick_run(code: str) -> int:
    return max((len(run) for run in re.findall(r"`+", code)), default=0)


def _display(path: Path, repo: Path = REPO) -> str:
    try:
        return path.resolve().relative_to(repo).as_posix()
    except ValueError:
        return str(path)


# --- MkDocs events ----------------------------------------------------------------------------------------


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Add a generated page for each repository file that pages may link to."""
    from mkdocs.structure.files import File, InclusionLevel

    for relative in generated_source_paths():
        uri = f"{SOURCE_PAGE_PREFIX}{relative}.md"
        # Reached through links, not the nav; `omitted_files: warn` still catches a page left out of it.
        page = File.generated(config, uri, content=source_page(relative), inclusion=InclusionLevel.NOT_IN_NAV)
        files.append(page)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Check hand-written Python blocks, expand includes, rewrite links to repository files."""
    from mkdocs.exceptions import PluginError

    src = page.file.src_uri
    problems = python_block_problems(markdown)
    if problems:
        raise PluginError(f"docs/{src}: " + "; ".join(problems))
    try:
        return rewrite_repository_links(expand_includes(markdown), src)
    except IncludeError as error:
        raise PluginError(f"docs/{src}: {error}") from None
