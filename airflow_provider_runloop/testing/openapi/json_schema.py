"""OpenAPI 3.0 Schema Objects → self-contained JSON Schema (draft 7) that ``jsonschema`` can check.

OpenAPI 3.0 schemas are close to JSON Schema but not the same, and a plain JSON Schema validator reads
the differences wrongly or not at all. The conversion, keyword by keyword:

* ``$ref: '#/components/schemas/X'`` is inlined (the spec has no recursive schemas; one is an error),
  so each request body has one schema with nothing left to resolve.
* ``nullable: true`` adds ``null`` to ``type`` (and to ``enum``). It is honoured beside ``$ref`` too,
  where OpenAPI 3.0 strictly ignores it: the spec writes ``$ref`` + ``nullable`` for optional nested
  objects (``runProfile``, ``environment_parameters``, ...), and the SDK sends ``null`` for them.
* ``oneOf`` + ``discriminator`` becomes "``propertyName`` is one of the mapping's keys, and then the
  variant it names": the same verdict as ``oneOf`` for this spec, whose variants each fix their
  ``type``, but an error names the field inside the variant instead of "not valid under any schema".
* ``format: int32`` / ``int64`` become the ranges they mean; other formats are annotations.
* Draft-4 style boolean ``exclusiveMinimum`` / ``exclusiveMaximum`` become draft 7's numbers.
* Annotations (``description``, ``default``, ``example``, ``x-...``) are dropped.

A keyword the conversion does not know is an error, so a new spec cannot be half-understood silently.
Integers: OpenAPI's ``integer`` excludes ``1.0``, unlike draft 7; :data:`OPENAPI_TYPE_CHECKER` says so.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from jsonschema import Draft7Validator, TypeChecker

__all__ = ["OPENAPI_TYPE_CHECKER", "UnsupportedSchemaError", "to_json_schema"]

_COMPONENT_PREFIX = "#/components/schemas/"
_INT_RANGES: Final = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_ANNOTATIONS: Final = frozenset(
    {"description", "title", "default", "example", "deprecated", "readOnly", "writeOnly", "externalDocs"}
)
_PASSED_THROUGH: Final = frozenset(
    {
        "type",
        "enum",
        "required",
        "minimum",
        "maximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
    }
)


def _is_openapi_integer(checker: TypeChecker, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


OPENAPI_TYPE_CHECKER: Final = Draft7Validator.TYPE_CHECKER.redefine("integer", _is_openapi_integer)
"""Draft 7's types, except that ``integer`` is an ``int`` only (``1.0`` is a number, not an integer)."""


class UnsupportedSchemaError(ValueError):
    """The spec uses a construct this conversion does not translate (a bug to fix here, not to skip)."""


def to_json_schema(schema: Mapping[str, Any], components: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI 3.0 Schema Object) as JSON Schema draft 7, every ``$ref`` into ``components``
    (the spec's ``components.schemas``) inlined."""
    return _Converter(components).convert(schema, ())


class _Converter:
    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components

    def convert(self, schema: Mapping[str, Any], refs: tuple[str, ...]) -> dict[str, Any]:
        if "$ref" in schema:
            # OpenAPI 3.0 ignores a Reference Object's siblings; `nullable` is the one kept (see above).
            converted = self._resolve(schema["$ref"], refs)
            return _nullable(converted) if schema.get("nullable") else converted
        if "discriminator" in schema:
            converted = self._discriminated(schema, refs)
        else:
            converted = self._plain(schema, refs)
        return _nullable(converted) if schema.get("nullable") else converted

    def _resolve(self, ref: str, refs: tuple[str, ...]) -> dict[str, Any]:
        if not ref.startswith(_COMPONENT_PREFIX):
            raise UnsupportedSchemaError(f"only {_COMPONENT_PREFIX}... references are supported, got {ref!r}")
        if ref in refs:
            raise UnsupportedSchemaError(f"recursive schema: {' -> '.join([*refs, ref])}")
        name = ref.removeprefix(_COMPONENT_PREFIX)
        if name not in self.components:
            raise UnsupportedSchemaError(f"{ref} is not in the spec's components")
        return self.convert(self.components[name], (*refs, ref))

    def _plain(self, schema: Mapping[str, Any], refs: tuple[str, ...]) -> dict[str, Any]:
        converted: dict[str, Any] = {}
        for keyword, value in schema.items():
            if keyword in _PASSED_THROUGH:
                converted[keyword] = copy.deepcopy(value)
            elif keyword in _ANNOTATIONS or keyword.startswith("x-") or keyword == "nullable":
                continue
            elif keyword == "properties":
                converted["properties"] = {name: self.convert(sub, refs) for name, sub in value.items()}
            elif keyword in ("items", "not"):
                converted[keyword] = self.convert(value, refs)
            elif keyword == "additionalProperties":
                converted[keyword] = value if isinstance(value, bool) else self.convert(value, refs)
            elif keyword in ("oneOf", "anyOf", "allOf"):
                converted[keyword] = [self.convert(sub, refs) for sub in value]
            elif keyword == "format":
                if value in _INT_RANGES:
                    low, high = _INT_RANGES[value]
                    converted["minimum"] = max(low, schema.get("minimum", low))
                    converted["maximum"] = min(high, schema.get("maximum", high))
            elif keyword in ("exclusiveMinimum", "exclusiveMaximum"):
                if not isinstance(value, bool):  # already draft 7's numeric form
                    converted[keyword] = value
            else:
                raise UnsupportedSchemaError(f"unsupported schema keyword {keyword!r}")
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if schema.get(exclusive) is True and bound in schema:
                converted[exclusive] = converted.pop(bound)
        return converted

    def _discriminated(self, schema: Mapping[str, Any], refs: tuple[str, ...]) -> dict[str, Any]:
        discriminator = schema["discriminator"]
        mapping = discriminator.get("mapping")
        if "oneOf" not in schema or not mapping:
            raise UnsupportedSchemaError("a discriminator needs oneOf and an explicit mapping")
        extra = set(schema) - {"oneOf", "discriminator", "nullable"} - _ANNOTATIONS
        if extra:
            raise UnsupportedSchemaError(f"unsupported keywords beside a discriminator: {sorted(extra)}")
        if set(mapping.values()) != {sub.get("$ref") for sub in schema["oneOf"]}:
            raise UnsupportedSchemaError("the discriminator's mapping must name exactly the oneOf variants")
        name = discriminator["propertyName"]
        return {
            "type": "object",
            "required": [name],
            "properties": {name: {"enum": list(mapping)}},
            "allOf": [
                {
                    "if": {"type": "object", "required": [name], "properties": {name: {"const": value}}},
                    "then": self._resolve(ref, refs),
                }
                for value, ref in mapping.items()
            ],
        }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also accepts ``null``."""
    if "type" not in schema:
        return {"anyOf": [{"type": "null"}, schema]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    nullable = {**schema, "type": [*types, "null"] if "null" not in types else types}
    if "enum" in schema and None not in schema["enum"]:
        nullable["enum"] = [*schema["enum"], None]
    return nullable
