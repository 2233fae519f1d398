"""OpenAPI 3.0 → JSON Schema: one row per rule of the conversion, then the verdicts it leads to."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft7Validator, validators

from airflow_provider_runloop.testing.openapi.json_schema import (
    OPENAPI_TYPE_CHECKER,
    UnsupportedSchemaError,
    to_json_schema,
)

COMPONENTS: dict[str, Any] = {
    "Size": {"type": "string", "enum": ["S", "M"]},
    "User": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"uid": {"type": "integer", "format": "int32"}},
        "required": ["uid"],
    },
    "Cat": {"type": "object", "properties": {"kind": {"type": "string", "enum": ["cat"]}}},
    "Dog": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"kind": {"type": "string", "enum": ["dog"]}, "name": {"type": "string"}},
    },
    "Pet": {
        "oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
        "discriminator": {
            "propertyName": "kind",
            "mapping": {"cat": "#/components/schemas/Cat", "dog": "#/components/schemas/Dog"},
        },
    },
    "Loop": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Loop"}}},
}
CAT = {"type": "object", "properties": {"kind": {"type": "string", "enum": ["cat"]}}}
DOG = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"kind": {"type": "string", "enum": ["dog"]}, "name": {"type": "string"}},
}
INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}


@pytest.mark.parametrize(
    ("openapi", "json_schema"),
    [
        pytest.param({"type": "string", "nullable": True}, {"type": ["string", "null"]}, id="nullable"),
        pytest.param({"type": "string", "nullable": False}, {"type": "string"}, id="not-nullable"),
        pytest.param({"$ref": "#/components/schemas/Size"}, {"type": "string", "enum": ["S", "M"]}, id="ref"),
        pytest.param(
            {"$ref": "#/components/schemas/Size", "nullable": True, "description": "d"},
            {"type": ["string", "null"], "enum": ["S", "M", None]},
            id="nullable-beside-ref",
        ),
        pytest.param({"type": "integer", "format": "int32"}, INT32, id="int32"),
        pytest.param(
            {"type": "integer", "format": "int64"},
            {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
            id="int64",
        ),
        pytest.param(
            {"type": "integer", "format": "int32", "minimum": 0},
            {**INT32, "minimum": 0},
            id="int32-with-minimum",
        ),
        pytest.param({"type": "number", "format": "float"}, {"type": "number"}, id="float-is-a-number"),
        pytest.param({"type": "string", "format": "binary"}, {"type": "string"}, id="other-format"),
        pytest.param(
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            {"type": "number", "exclusiveMinimum": 0},
            id="draft4-exclusive",
        ),
        pytest.param(
            {"type": "object", "additionalProperties": {"type": "string"}, "x-tag": 1, "default": {}},
            {"type": "object", "additionalProperties": {"type": "string"}},
            id="annotations-dropped",
        ),
        pytest.param(
            {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"uid": INT32},
                    "required": ["uid"],
                },
            },
            id="ref-in-items",
        ),
        pytest.param(
            {"$ref": "#/components/schemas/Pet", "nullable": True},
            {
                "type": ["object", "null"],
                "required": ["kind"],
                "properties": {"kind": {"enum": ["cat", "dog"]}},
                "allOf": [
                    {
                        "if": {
                            "type": "object",
                            "required": ["kind"],
                            "properties": {"kind": {"const": "cat"}},
                        },
                        "then": CAT,
                    },
                    {
                        "if": {
                            "type": "object",
                            "required": ["kind"],
                            "properties": {"kind": {"const": "dog"}},
                        },
                        "then": DOG,
                    },
                ],
            },
            id="discriminator",
        ),
        pytest.param({"nullable": True}, {"anyOf": [{"type": "null"}, {}]}, id="nullable-without-type"),
    ],
)
def test_conversion(openapi: dict[str, Any], json_schema: dict[str, Any]) -> None:
    assert to_json_schema(openapi, COMPONENTS) == json_schema


@pytest.mark.parametrize(
    ("openapi", "problem"),
    [
        pytest.param({"$ref": "#/components/schemas/Loop"}, "recursive", id="recursive"),
        pytest.param({"$ref": "#/components/schemas/Nope"}, "not in the spec", id="unknown-ref"),
        pytest.param({"$ref": "other.yml#/X"}, "only #/components/schemas/", id="external-ref"),
        pytest.param(
            {"type": "string", "contentEncoding": "base64"}, "contentEncoding", id="unknown-keyword"
        ),
        pytest.param(
            {"oneOf": [{"$ref": "#/components/schemas/Cat"}], "discriminator": {"propertyName": "kind"}},
            "explicit mapping",
            id="implicit-mapping",
        ),
        pytest.param(
            {
                "oneOf": [{"$ref": "#/components/schemas/Cat"}],
                "discriminator": {"propertyName": "kind", "mapping": {"dog": "#/components/schemas/Dog"}},
            },
            "exactly the oneOf variants",
            id="mapping-mismatch",
        ),
    ],
)
def test_what_it_cannot_translate_is_an_error(openapi: dict[str, Any], problem: str) -> None:
    with pytest.raises(UnsupportedSchemaError, match=problem):
        to_json_schema(openapi, COMPONENTS)


Checker = validators.extend(Draft7Validator, type_checker=OPENAPI_TYPE_CHECKER)  # type: ignore[no-untyped-call]
PET = to_json_schema({"$ref": "#/components/schemas/Pet"}, COMPONENTS)
NULLABLE_USER = to_json_schema({"$ref": "#/components/schemas/User", "nullable": True}, COMPONENTS)


@pytest.mark.parametrize(
    ("schema", "instance", "valid"),
    [
        pytest.param({"type": "integer"}, 1, True, id="int"),
        pytest.param({"type": "integer"}, 1.0, False, id="float-is-not-an-integer"),
        pytest.param({"type": "integer"}, True, False, id="bool-is-not-an-integer"),
        pytest.param({"type": "number"}, 1, True, id="int-is-a-number"),
        pytest.param(INT32, 2**31, False, id="beyond-int32"),
        pytest.param(PET, {"kind": "dog"}, True, id="variant"),
        pytest.param(PET, {"kind": "fish"}, False, id="unknown-variant"),
        pytest.param(PET, {}, False, id="no-discriminator"),
        pytest.param(PET, None, False, id="null-pet"),
        pytest.param(NULLABLE_USER, None, True, id="null-where-nullable"),
        pytest.param(NULLABLE_USER, {"uid": 1, "name": "x"}, False, id="closed-object"),
        pytest.param(NULLABLE_USER, [1], False, id="list-for-object"),
    ],
)
def test_verdicts(schema: dict[str, Any], instance: Any, valid: bool) -> None:
    assert Checker(schema).is_valid(instance) is valid


@pytest.mark.parametrize(
    ("instance", "path", "validator"),
    [
        pytest.param({"kind": "dog", "name": 5}, ["name"], "type", id="field-of-the-variant"),
        pytest.param({"kind": "dog", "age": 5}, [], "additionalProperties", id="closed-variant"),
        pytest.param({"kind": "fish"}, ["kind"], "enum", id="unknown-variant"),
        pytest.param({"name": "rex"}, [], "required", id="no-discriminator"),
    ],
)
def test_an_error_in_a_variant_is_one_error_about_the_field(
    instance: dict[str, Any], path: list[str], validator: str
) -> None:
    [error] = Checker(PET).iter_errors(instance)
    assert (list(error.absolute_path), error.validator) == (path, validator)
