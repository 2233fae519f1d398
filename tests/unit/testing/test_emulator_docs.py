"""The runnable example in docs/emulator.md runs, so the page cannot go stale."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "emulator.md"
MARKER = "# runnable example:"


def test_the_runnable_examples_in_the_emulator_docs_run() -> None:
    text = DOC.read_text()
    blocks = [
        m for m in re.finditer(r"```python\n(.*?)```", text, re.DOTALL) if m.group(1).startswith(MARKER)
    ]
    assert blocks, f"no python block starting with {MARKER!r} in {DOC}"
    for match in blocks:
        # Pad with blank lines so that a failure's traceback points at the right line of the page.
        source = "\n" * text.count("\n", 0, match.start(1)) + match.group(1)
        exec(compile(source, str(DOC), "exec"), {"__name__": "emulator_docs_example"})
