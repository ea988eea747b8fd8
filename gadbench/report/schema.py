"""A tiny JSON-schema validator: the subset used by baselines/paper.schema.json."""

from __future__ import annotations

import re
from typing import Any

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(value: Any, schema: dict, where: str = "$") -> list[str]:
    """Return one message per violation of `schema` (type, required, properties, additionalProperties,
    enum, pattern, minimum, maximum, items, minItems, oneOf); an empty list means valid."""
    errors: list[str] = []
    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{where}[{i}]")
    if isinstance(value, dict):
        errors += _validate_object(value, schema, where)
    if "oneOf" in schema:
        passing = sum(not validate(value, sub, where) for sub in schema["oneOf"])
        if passing != 1:
            errors.append(f"{where}: matches {passing} of the oneOf alternatives, expected exactly 1")
    return errors


def _validate_object(value: dict, schema: dict, where: str) -> list[str]:
    errors = [f"{where}: missing required key {k!r}" for k in schema.get("required", []) if k not in value]
    props = schema.get("properties", {})
    for key, item in value.items():
        if key in props:
            errors += validate(item, props[key], f"{where}.{key}")
        elif schema.get("additionalProperties", True) is False:
            errors.append(f"{where}: unexpected key {key!r}")
    return errors
