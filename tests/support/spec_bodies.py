"""Request bodies drawn from the packaged OpenAPI spec: valid ones, and valid ones with one thing broken.

The spec is read here on its own terms (``$ref``, ``nullable``, ``oneOf`` + ``discriminator``,
``format: int32``), independently of the emulator's conversion to JSON Schema, so a test built on these
bodies checks that conversion as well as the emulator's use of it.

* :meth:`SpecBodies.valid` is a hypothesis strategy of bodies the spec accepts. ``rules`` patch the
  schema of named properties (``{"name": {"pattern": ...}}``): rules the spec states only in prose, and
  ids of objects that exist; a property whose rule says ``"present": True`` is always sent. At the top
  level it adds unknown keys, which the emulator ignores.
* :meth:`SpecBodies.breakages` lists every one-change way to make a valid body invalid: a value of the
  wrong JSON type, a string outside an enum, a required key removed, an unknown key in an object the
  spec closes (``additionalProperties: false``; not at the top level, which stays open).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

__all__ = ["Breakage", "SpecBodies", "field_path"]

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# A value of another JSON type for each type (an integer also refuses 1.5).
_WRONG_VALUES: dict[str, tuple[Any, ...]] = {
    "string": (5,),
    "integer": ("7", 1.5),
    "number": ("1.5",),
    "boolean": ("yes",),
    "object": ([1],),
    "array": ({"not": "a list"},),
}
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)

Path = tuple[str | int, ...]


def field_path(path: Path) -> str:
    """``a.b[0].c``: how the emulator's messages name a field."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(frozen=True)
class Breakage:
    """One change that makes a body invalid: set ``path`` to ``value``, or remove it (``remove``)."""

    path: Path
    kind: str
    value: Any = None
    remove: bool = False

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        broken = copy.deepcopy(dict(body))
        parent: Any = broken
        for part in self.path[:-1]:
            parent = parent[part]
        if self.remove:
            del parent[self.path[-1]]
        else:
            parent[self.path[-1]] = self.value
        return broken

    @property
    def where(self) -> str:
        """What the 400 message must name: the field (for an added or removed key, its name too)."""
        return (
            field_path(self.path[:-1]) if self.kind in ("missing", "unknown key") else field_path(self.path)
        )

    def __str__(self) -> str:
        return f"{self.kind} at {field_path(self.path)}" + ("" if self.remove else f": {self.value!r}")


class SpecBodies:
    """Valid and broken bodies of the spec's request schemas."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.components: Mapping[str, Any] = spec["components"]["schemas"]

    def request_schema(self, method: str, path: str) -> dict[str, Any]:
        operation = self.spec["paths"][path][method.lower()]
        schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
        return schema

    # ----------------------------------------------------------------------------- reading the spec

    def resolve(self, schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
        """The schema behind any ``$ref``, and whether ``null`` is allowed (``nullable`` at either end)."""
        nullable = bool(schema.get("nullable"))
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
            nullable = nullable or bool(schema.get("nullable"))
        return schema, nullable

    def variants(self, schema: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        """A discriminated ``oneOf``'s variants by discriminator value ({} for any other schema)."""
        if "discriminator" not in schema:
            return {}
        return {
            value: self.resolve({"$ref": ref})[0] for value, ref in schema["discriminator"]["mapping"].items()
        }

    def _type(self, schema: Mapping[str, Any]) -> str | None:
        return "object" if self.variants(schema) else schema.get("type")

    # ---------------------------------------------------------------------------------- valid bodies

    def valid(
        self, schema: Mapping[str, Any], rules: Mapping[str, Mapping[str, Any]]
    ) -> st.SearchStrategy[Any]:
        """Bodies ``schema`` accepts, with ``rules`` patched into the properties they name."""
        body: st.SearchStrategy[dict[str, Any]] = self._strategy(schema, rules, top=True)
        return body

    def _strategy(
        self, schema: Mapping[str, Any], rules: Mapping[str, Mapping[str, Any]], *, top: bool = False
    ) -> st.SearchStrategy[Any]:
        resolved, nullable = self.resolve(schema)
        value = self._non_null(resolved, rules, top=top)
        return st.none() | value if nullable else value

    def _non_null(
        self, schema: Mapping[str, Any], rules: Mapping[str, Mapping[str, Any]], *, top: bool
    ) -> st.SearchStrategy[Any]:
        variants = self.variants(schema)
        if variants:
            return st.one_of([self._non_null(variant, rules, top=top) for variant in variants.values()])
        if "enum" in schema:
            return st.sampled_from([value for value in schema["enum"] if value is not None])
        kind = schema.get("type")
        if kind == "string":
            if "pattern" in schema:
                return st.from_regex(schema["pattern"], fullmatch=True)
            return st.text(min_size=schema.get("minLength", 0), max_size=12)
        if kind == "integer":
            low, high = _INT_RANGES.get(schema.get("format", "int64"), _INT_RANGES["int64"])
            return st.integers(max(low, schema.get("minimum", low)), min(high, schema.get("maximum", high)))
        if kind == "number":
            return st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "array":
            items = self._strategy(schema.get("items", {}), rules)
            return st.lists(
                items, min_size=schema.get("minItems", 0), max_size=max(3, schema.get("minItems", 0))
            )
        if kind == "object" and ("properties" in schema or "additionalProperties" in schema):
            return self._object(schema, rules, top=top)
        if kind == "object":  # an open object: any keys, any JSON values
            return st.dictionaries(st.text(max_size=8), _JSON, max_size=3)
        return _JSON  # a schema with no type

    def _object(
        self, schema: Mapping[str, Any], rules: Mapping[str, Mapping[str, Any]], *, top: bool
    ) -> st.SearchStrategy[dict[str, Any]]:
        properties = {
            name: self._strategy(self._ruled(name, sub, rules), rules)
            for name, sub in schema.get("properties", {}).items()
        }
        required = set(schema.get("required", ())) | {
            name for name in properties if rules.get(name, {}).get("present")
        }
        known = st.fixed_dictionaries(
            {name: strategy for name, strategy in properties.items() if name in required},
            optional={name: strategy for name, strategy in properties.items() if name not in required},
        )
        extra = schema.get("additionalProperties", True)
        if top:  # unverified choice 23: unknown top-level keys are ignored, so valid bodies may carry some
            extras: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
                st.text(min_size=1, max_size=8).map("unknown_".__add__), _JSON, max_size=2
            )
        elif isinstance(extra, Mapping):
            extras = st.dictionaries(
                st.text(max_size=8).filter(lambda key: key not in properties),
                self._strategy(extra, rules),
                max_size=3,
            )
        else:
            extras = st.just({})
        return st.tuples(known, extras).map(lambda parts: {**parts[1], **parts[0]})

    def _ruled(
        self, name: str, schema: Mapping[str, Any], rules: Mapping[str, Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        if name not in rules:
            return schema
        resolved, nullable = self.resolve(schema)
        return {**resolved, "nullable": nullable, **rules[name]}

    # --------------------------------------------------------------------------------- broken bodies

    def breakages(self, body: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Breakage]:
        """Every one-change breakage of the valid ``body`` of ``schema``, in a stable order."""
        return list(self._breakages(body, schema, ()))

    def _breakages(self, value: Any, schema: Mapping[str, Any], path: Path) -> Iterator[Breakage]:
        resolved, _ = self.resolve(schema)
        variants = self.variants(resolved)
        if variants and isinstance(value, dict):
            resolved = variants[value[resolved["discriminator"]["propertyName"]]]
        kind = self._type(resolved)
        if path and kind is not None:
            for wrong in _WRONG_VALUES[kind]:
                yield Breakage(path, "wrong type", wrong)
        if path and "enum" in resolved and isinstance(value, str):
            yield Breakage(path, "not in enum", f"not-{value}")
        if isinstance(value, dict) and kind == "object":
            yield from self._object_breakages(value, resolved, path)
        if isinstance(value, list) and kind == "array":
            for index, item in enumerate(value):
                yield from self._breakages(item, resolved.get("items", {}), (*path, index))

    def _object_breakages(
        self, value: dict[str, Any], schema: Mapping[str, Any], path: Path
    ) -> Iterator[Breakage]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name in value:
                yield Breakage((*path, name), "missing", remove=True)
        if path and schema.get("additionalProperties") is False:
            yield Breakage((*path, "unexpected_key"), "unknown key", 1)
        for name, sub in properties.items():
            if name in value:
                yield from self._breakages(value[name], sub, (*path, name))
            else:  # reach fields the valid body left out: add one, wrongly typed
                kind = self._type(self.resolve(sub)[0])
                if kind is not None:
                    yield Breakage((*path, name), "wrong type", _WRONG_VALUES[kind][0])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name, item in value.items():
                if name not in properties:
                    yield from self._breakages(item, extra, (*path, name))
