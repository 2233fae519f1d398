"""Credentials out of text that a server or a transport wrote, before the provider stores or logs it.

A server, or a gateway or proxy in front of it, may echo the request's ``Authorization`` header in an
error body, and httpx/h11 quote a refused header value in their own errors (``Illegal header value
b'Bearer …'``). Whatever the client keeps of such text (an exception's message, a retry log line, and
from there trigger events, task logs and the metadata DB) first passes through
:func:`redact_credentials`. It removes:

* the API key itself, wherever it appears (also JSON-escaped and percent-encoded);
* any ``Bearer <token>``, whoever's token it is;
* the value of any ``Authorization: …`` header, also written as a JSON or Python mapping entry
  (``"authorization": "…"``).

Letter case does not matter. Redaction errs on the side of removing too much: a message that loses a
few words is better than a key in a log. This module does no I/O and imports nothing from Airflow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["REDACTED", "redact_credentials"]

#: What a credential is replaced with.
REDACTED = "***"

# A quote as it appears in raw text, or escaped once (text that was itself embedded in JSON).
_QUOTE = r"\\?[\"']"
# `Authorization`, an optional closing quote of a mapping key, then `:` or `=`, then the value: up to
# the matching quote when quoted, else up to the end of the line or a delimiter that cannot be part of
# a header value written inline (a header value may hold spaces: `Basic abc`, `Bearer abc`).
_AUTHORIZATION = re.compile(
    rf"(?P<name>\bauthorization(?:{_QUOTE})?\s*[:=]\s*)"
    rf"(?:(?P<quote>{_QUOTE})(?P<quoted>.*?)(?P=quote)|(?P<bare>[^\r\n\"'<>,;}}\]]+))",
    re.IGNORECASE,
)
# `Bearer`, separated by whitespace (or its URL encodings), then the token: a run of characters
# that are not whitespace, quotes or closing delimiters. A backslash stays in, so the `\n` of a
# bytes repr (`b'Bearer key\n'`) goes with the token.
_BEARER = re.compile(r"\b(?P<scheme>bearer)(?:\s+|%20|\+)(?P<token>[^\s\"'`<>,;)\]}]+)", re.IGNORECASE)


def redact_credentials(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with every credential in it replaced by :data:`REDACTED`.

    :param text: text a server or a transport produced (a body, a header value, an error message).
    :param secrets: values to remove wherever they appear, such as the API key; empty ones are ignored.
    """
    forms = sorted(
        {form for secret in secrets if secret for form in _written_forms(secret)}, key=len, reverse=True
    )
    mask = _mask_for(forms)
    # Secrets first, so a pattern never stops half-way through one (a key may hold a `,` or a `)`),
    # and again last, in case what a pattern left beside its mask spells one again.
    text = _replace_all(text, forms, mask)
    text = _AUTHORIZATION.sub(_redacted_header, text)
    text = _BEARER.sub(lambda match: f"{match['scheme']} {REDACTED}", text)
    return _replace_all(text, forms, mask)


def _written_forms(secret: str) -> set[str]:
    """The ways a secret may be written in a body: as is, JSON-escaped, percent-encoded."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}


def _mask_for(forms: list[str]) -> str:
    """:data:`REDACTED`, or a mask of a character none of ``forms`` holds.

    A mask made of characters foreign to every form can never be part of one, so one pass of
    replacements leaves no occurrence behind (``"***"`` would, for a key like ``"a*"`` in ``"aa**"``).
    """
    used = set("".join(forms))
    if "*" not in used:
        return REDACTED
    return next(chr(code) for code in range(0x2588, 0x110000) if chr(code) not in used) * 3


def _replace_all(text: str, forms: list[str], mask: str) -> str:
    # Longest first, so that no form is left half-replaced by a shorter one inside it.
    for form in forms:
        text = text.replace(form, mask)
    return text


def _redacted_header(match: re.Match[str]) -> str:
    if match["quote"] is not None:
        return f"{match['name']}{match['quote']}{REDACTED}{match['quote']}"
    return f"{match['name']}{REDACTED}"
