"""MkDocs hook: pages link to the repository's example files, and each such file gets a page of its own.

Code in the pages comes from tested files through pymdownx.snippets (``--8<-- "file.py:section"``,
sections marked ``# --8<-- [start:section]`` / ``# --8<-- [end:section]``; ``check_paths`` in mkdocs.yml
fails the build on a missing file or section). What snippets does not do is this:

* every example DAG, script and benchmark (``GENERATED_SOURCE_GLOBS``) gets a generated page,
  ``source/<path>.md``, that shows the whole file (through snippets too);
* a link from a page to such a file (``../example_dags/x.py``, which works on GitHub) is pointed at that
  page; a link out of ``docs/`` to any other repository file fails the build, since the site cannot
  show it.

The functions are plain (no MkDocs import) so that ``tests/unit/test_docs.py`` can check every page.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any

__all__ = ["GENERATED_SOURCE_GLOBS", "LinkError", "generated_source_paths", "rewrite_repository_links"]

REPO = Path(__file__).resolve().parents[2]
GENERATED_SOURCE_GLOBS = ("example_dags/*.py", "scripts/*.py", "scripts/*.json", "bench/*.py")
SOURCE_PAGE_PREFIX = "source/"

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_LANGUAGES = {".py": "python", ".json": "json"}


class LinkError(ValueError):
    """A link out of ``docs/`` to a repository file the site has no page for."""


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
    """The Markdown of the generated page that shows one repository file (included by snippets)."""
    language = _LANGUAGES.get(posixpath.splitext(relative)[1], "text")
    return f'# `{relative}`\n\n```{language}\n--8<-- "{relative}"\n```\n'


def rewrite_repository_links(markdown: str, page_src_uri: str, repo: Path = REPO) -> str:
    """Point links to repository files outside ``docs/`` at their generated source pages.

    :raises LinkError: for a link to a repository file or folder that has no generated page.
    """
    page_dir = posixpath.dirname(page_src_uri)
    docs = repo / "docs"
    sources = set(generated_source_paths(repo))

    def rewrite(match: re.Match[str]) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match[0]
        path_part, _, anchor = target.partition("#")
        resolved = Path(os.path.normpath(docs / page_dir / path_part))
        if resolved == docs or docs in resolved.parents:
            return match[0]  # a page of the site: MkDocs checks it
        relative = resolved.relative_to(repo).as_posix() if repo in resolved.parents else None
        if relative not in sources:
            raise LinkError(
                f"a link to {target!r} leaves the docs and names no file with a generated page "
                f"(those matching {', '.join(GENERATED_SOURCE_GLOBS)})"
            )
        page = posixpath.relpath(f"{SOURCE_PAGE_PREFIX}{relative}.md", page_dir or ".")
        return f"]({page}{'#' + anchor if anchor else ''})"

    out, fence = [], None
    for line in markdown.splitlines(keepends=True):
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening[1]
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
        elif fence is None:
            line = _LINK.sub(rewrite, line)
        out.append(line)
    return "".join(out)


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
    """Rewrite links to repository files."""
    from mkdocs.exceptions import PluginError

    try:
        return rewrite_repository_links(markdown, page.file.src_uri)
    except LinkError as error:
        raise PluginError(f"docs/{page.file.src_uri}: {error}") from None
