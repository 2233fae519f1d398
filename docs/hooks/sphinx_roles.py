"""griffe extension: Sphinx cross-reference roles in docstrings become code spans in the API reference.

The package's docstrings are written for Airflow and Sphinx (``:param:`` fields, ``:class:`Name```
roles). mkdocstrings parses the ``:param:`` fields, but shows a role as raw text, and a docstring line
that starts with a role is taken for a field and lost. So before a docstring is parsed,
``:role:`~a.b.Name``` becomes ```Name``` and ``:role:`a.b.Name``` becomes ```a.b.Name```.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["SphinxRoles", "plain_roles"]

_ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|mod|data|attr|exc|obj|const):`(?P<short>~?)(?P<target>[^`]+)`"
)


def plain_roles(text: str) -> str:
    """``text`` with every Sphinx cross-reference role replaced by a Markdown code span."""

    def code(match: re.Match[str]) -> str:
        target = match["target"].lstrip(".")
        return f"`{target.rsplit('.', 1)[-1] if match['short'] else target}`"

    return _ROLE.sub(code, text)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of each docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)
