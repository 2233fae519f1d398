"""Requests and responses checked against the packaged spec by openapi-core, not by the emulator's code."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from airflow_provider_runloop.testing.openapi import SPEC_FILE

__all__ = ["request_problem", "response_problem", "spec_openapi"]

SERVER = "https://api.runloop.ai"


@functools.cache
def spec_openapi() -> OpenAPI:
    """The spec as openapi-core reads it, built once per test session."""
    return OpenAPI.from_file_path(str(SPEC_FILE))


def response_problem(response: httpx.Response) -> str | None:
    """Why ``response`` (to its request) breaks the spec's response schema, or ``None`` if it conforms."""
    request = response.request
    mock_request = MockRequest(
        SERVER, request.method.lower(), request.url.path, args=dict(request.url.params)
    )
    mock_response = MockResponse(
        response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=response.headers["content-type"],
    )
    try:
        spec_openapi().validate_response(mock_request, mock_response)
    except Exception as error:  # every openapi-core error type: the caller lists them all
        return f"{request.method} {request.url.path}: {error!r} {error.__cause__!r}"
    return None


def request_problem(method: str, path: str, body: Any) -> str | None:
    """Why a JSON ``body`` sent as ``method path`` breaks the spec's request schema, or ``None``.

    openapi-core reads OpenAPI 3.0 strictly: ``nullable`` beside ``$ref`` is ignored, and the top level
    of a body is as closed as the spec says. The emulator is more lenient there (see its docs).
    """
    mock_request = MockRequest(
        SERVER,
        method.lower(),
        path,
        data=json.dumps(body).encode(),
        content_type="application/json",
        headers={"Authorization": "Bearer any"},
    )
    try:
        spec_openapi().validate_request(mock_request)
    except Exception as error:  # every openapi-core error type
        return f"{method} {path}: {error!r} {error.__cause__!r}"
    return None
