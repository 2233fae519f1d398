"""redact_credentials: the key and every Bearer / Authorization form leave server-provided text."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from airflow_provider_runloop.redaction import REDACTED, redact_credentials

KEY = "rl-canary-7d1e9a0c4b2f"
# What the client accepts as a key (see check_api_key): printable ASCII without spaces.
# The second kind is made of the characters the redaction itself writes or escapes (a mask of "*",
# JSON's backslash, the percent sign): keys like "*" or "a*" are where a naive mask spells the key again.
keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40) | st.text(
    st.sampled_from('*a"\\%/'), min_size=1, max_size=6
)
texts = st.text(max_size=80)
# Tokens of other credentials: the characters bearer tokens and basic credentials are made of.
tokens = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/="),
    min_size=8,
    max_size=40,
)

# How servers, gateways and transports write a credential back: one line per form.
TEMPLATES = [
    pytest.param('{{"message": "bad key", "authorization": "Bearer {}"}}', id="json-body"),
    pytest.param("{{'authorization': 'Bearer {}', 'accept': 'application/json'}}", id="python-dict"),
    pytest.param("Authorization: Bearer {}\r\nAccept: */*", id="header-dump"),
    pytest.param("AUTHORIZATION: {}", id="bare-header-upper-case"),
    pytest.param("authorization={}; path=/", id="key-value"),
    pytest.param("Illegal header value b'Bearer {}\\n'", id="h11-bytes-repr"),
    pytest.param("<td>authorization</td><td>Bearer {}</td>", id="html"),
    pytest.param("bearer%20{}", id="percent-encoded"),
    pytest.param('{{\\"authorization\\": \\"Basic {}\\"}}', id="escaped-json"),
    pytest.param("token rejected: BEARER {}.", id="prose"),
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_written_form_of_a_foreign_token_is_removed(template: str) -> None:
    token = "sk-other-0123456789abcdef"
    redacted = redact_credentials(template.format(token))
    assert token not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize("template", TEMPLATES)
@given(token=tokens)
def test_no_token_survives_any_form(template: str, token: str) -> None:
    assume(token not in template)
    assert token not in redact_credentials(template.format(token))


@pytest.mark.parametrize(
    ("secret", "written", "text"),
    [
        pytest.param(KEY, KEY, f"key={KEY}, again {KEY}", id="raw-twice"),
        pytest.param('a"b\\c', 'a\\"b\\\\c', 'echo: {"k": "a\\"b\\\\c"}', id="json-escaped"),
        pytest.param("a/b c", "a%2Fb%20c", "GET /x?k=a%2Fb%20c", id="percent-encoded"),
    ],
)
def test_the_secret_is_removed_in_each_of_its_encodings(secret: str, written: str, text: str) -> None:
    assert written in text
    assert written not in redact_credentials(text, [secret])


@given(key=keys, before=texts, after=texts)
def test_the_key_never_survives_whatever_surrounds_it(key: str, before: str, after: str) -> None:
    assert key not in redact_credentials(f"{before}{key}{after}", [key])
    assert key not in redact_credentials(f"{before}Bearer {key}{after}", [key])


@given(key=keys)
def test_a_mask_never_spells_the_key_again(key: str) -> None:
    # "a*" in "aa**" would become "a" + "***" + "*", which holds "a*" again with a plain mask.
    text = f"{key[:1]}{key}{key[1:]}{key}"
    assert key not in redact_credentials(text, [key])


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Runloop API GET /v1/benchmark_runs/bmr_1 returned 503: down", id="status"),
        pytest.param("ConnectError: [Errno 111] Connection refused", id="transport"),
        pytest.param("", id="empty"),
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_credentials(text, [KEY, None, ""]) == text
