"""Request bodies checked against the packaged OpenAPI spec's request schemas, all the way down.

Every operation of the spec with a JSON ``requestBody`` gets one validator, compiled once per process
(the emulator serves 100,000-run benchmarks; responses are never checked here, only requests). A body
the spec rejects is a 400 ``{"message": ...}`` naming the field and the problem, before the handler
runs, so an invalid request changes nothing.

The leniencies of the API as the SDK uses it are kept, and only those
(``docs/emulator.md#choices-where-the-real-api-is-unverified``):

* no body, an empty body and ``null`` count as ``{}`` (the SDK sends no body on actions; the action
  POSTs have no schema at all);
* an optional field sent as ``null`` counts as absent wherever the spec marks it ``nullable``;
* unknown keys at the top level of a body are ignored (unverified choice 23: the SDK can send extra
  body keys).
  Below the top level the spec's ``additionalProperties: false`` holds: an unknown key inside
  ``environment_parameters``, a scorer or an agent config is a 400, since it would be stored and
  echoed back in views the spec closes.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any, Final

from jsonschema import Draft7Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator

from airflow_provider_runloop.testing.errors import ApiError
from airflow_provider_runloop.testing.openapi import load_spec
from airflow_provider_runloop.testing.openapi.json_schema import OPENAPI_TYPE_CHECKER, to_json_schema

__all__ = ["request_body_routes", "request_body_schema", "validate_request_body"]

_JSON = "application/json"
_MESSAGE_LIMIT: Final = 500  # a wrong value can be large; the message quotes it

_OpenApiValidator = validators.extend(  # type: ignore[no-untyped-call]  # the stubs leave it untyped
    Draft7Validator, type_checker=OPENAPI_TYPE_CHECKER
)


def request_body_routes() -> frozenset[tuple[str, str]]:
    """``(METHOD, path template)`` of every operation whose request body the spec describes."""
    return frozenset(_validators())


def request_body_schema(method: str, path: str) -> dict[str, Any]:
    """The JSON Schema a body of ``method path`` (a spec path template) is checked against.

    The spec's request schema converted to JSON Schema, with the top level open to unknown keys.
    """
    schema = _validators()[(method.upper(), path)].schema
    assert isinstance(schema, Mapping)
    return copy.deepcopy(dict(schema))


def validate_request_body(method: str, path: str, body: Any) -> None:
    """Raise a 400 :class:`.ApiError` if ``body`` (parsed JSON) breaks the request schema of ``method path``.

    Routes without a request body in the spec accept anything (callers parse those themselves).
    """
    validator = _validators().get((method.upper(), path))
    if validator is None or validator.is_valid(body):  # the common case, without collecting errors
        return
    error = best_match(validator.iter_errors(body))
    if error is not None:
        raise ApiError.bad_request(_message(error))


def _message(error: ValidationError) -> str:
    where = _field_path(error)
    message = f"invalid request body: {where + ': ' if where else ''}{error.message}"
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 1] + "…"


def _field_path(error: ValidationError) -> str:
    """``environment_parameters.launch_parameters.user_parameters`` / ``agent_configs[0].name``."""
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@functools.cache
def _validators() -> Mapping[tuple[str, str], Validator]:
    spec = load_spec()
    components = spec.get("components", {}).get("schemas", {})
    compiled: dict[tuple[str, str], Validator] = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = (
                operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            )
            if _JSON not in content:
                continue
            schema = to_json_schema(content[_JSON]["schema"], components)
            # Unverified choice 23: the top level ignores keys it does not know; nested objects stay as
            # closed as the spec.
            schema.pop("additionalProperties", None)
            _OpenApiValidator.check_schema(schema)
            compiled[(method.upper(), path)] = _OpenApiValidator(schema)
    return compiled
