"""Output schemas for ``SUBMIT(**fields)``: a JSON Schema dict or a pydantic model class.

Validation uses ``jsonschema`` (Draft 2020-12) for dicts and pydantic for models. A failed
validation is fed back to the root LM as an observation, so the model can fix its answer.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, SchemaError
from ..sandbox.base import FinalSignal

__all__ = ["MAX_SCHEMA_DEPTH", "OutputSchema"]

MAX_SCHEMA_DEPTH = 32
_UNSAFE_KEYWORDS = ("pattern", "patternProperties", "$dynamicRef", "$recursiveRef")


def _refs(node: Any, loc: str, out: list[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out.append((loc, value[1:]))
            else:
                _refs(value, f"{loc}/{key}", out)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _refs(item, f"{loc}/{i}", out)


def _within(loc: str, target: str) -> bool:
    return loc == target or loc.startswith(target.rstrip("/") + "/") or target in ("", "/")


def _check_acyclic(schema: dict[str, Any]) -> None:
    """Refuse recursive schemas (a ``$ref`` reachable from its own target): validating them
    can exhaust the stack inside the validator's native code, which no handler can catch.
    Raises :class:`ConfigError`."""
    refs: list[tuple[str, str]] = []
    _refs(schema, "", refs)
    edges = {i: [j for j, (loc_j, _) in enumerate(refs) if _within(loc_j, tgt)] for i, (_, tgt) in enumerate(refs)}
    state: dict[int, int] = {}

    def visit(i: int) -> None:
        state[i] = 1
        for j in edges[i]:
            if state.get(j) == 1:
                raise ConfigError("output_schema may not be recursive ($ref cycles are refused)")
            if j not in state:
                visit(j)
        state[i] = 2

    for i in edges:
        if i not in state:
            visit(i)


def _check_safe(schema: Any, depth: int = 0) -> None:
    """Refuse what would let a caller's schema hurt the server: regular expressions
    (``pattern``: catastrophic backtracking runs in the service's event loop), references
    outside the schema (``$ref`` not starting with ``#``: fetched or unresolvable), and
    nesting deeper than ``MAX_SCHEMA_DEPTH``. Raises :class:`ConfigError` saying which."""
    if depth > MAX_SCHEMA_DEPTH:
        raise ConfigError(f"output_schema is nested deeper than {MAX_SCHEMA_DEPTH} levels")
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in _UNSAFE_KEYWORDS:
                raise ConfigError(
                    f"output_schema may not use {key!r} (regular expressions and dynamic references are refused)"
                )
            if key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
                raise ConfigError("output_schema may only use local references ($ref starting with '#')")
            _check_safe(value, depth + 1)
    elif isinstance(schema, list):
        for item in schema:
            _check_safe(item, depth + 1)


class OutputSchema:
    """``OutputSchema(schema)`` with ``schema`` a JSON Schema object (``{"type": "object",
    "properties": ...}``) or a pydantic ``BaseModel`` subclass. Raises :class:`ConfigError`
    for anything else or an invalid JSON Schema."""

    def __init__(self, schema: dict[str, Any] | type[BaseModel]):
        self.model: type[BaseModel] | None = None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self.model = schema
            self.json_schema: dict[str, Any] = schema.model_json_schema()
        elif isinstance(schema, dict):
            import jsonschema  # ≈ 60 ms: only runs that have a dict schema pay it (issue 10, start-up)

            _check_safe(schema)
            _check_acyclic(schema)
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as e:
                raise ConfigError(f"output_schema is not a valid JSON Schema: {e.message}") from e
            except RecursionError:
                raise ConfigError("output_schema is nested too deeply") from None
            self.json_schema = schema
        else:
            raise ConfigError("output_schema must be a JSON Schema dict or a pydantic model class")
        if self.json_schema.get("type", "object") != "object":
            raise ConfigError('output_schema must describe an object ({"type": "object", ...})')

    @property
    def field_names(self) -> list[str]:
        return list(self.json_schema.get("properties", {}))

    def fields_or_none(self, final: FinalSignal) -> dict[str, Any] | None:
        """:meth:`validate`, but None instead of :class:`SchemaError` (for an answer that ends
        the execution anyway: max turns, or one rebuilt on resume)."""
        try:
            return self.validate(final)
        except SchemaError:
            return None

    def validate(self, final: FinalSignal) -> dict[str, Any]:
        """Return the validated fields of a ``SUBMIT`` (or of a FINAL whose answer is a JSON
        object). Raises :class:`SchemaError` saying what to fix."""
        if final.kind == "SUBMIT":
            fields = dict(final.fields or {})
        else:
            try:
                fields = json.loads(final.answer)
            except (TypeError, ValueError):
                raise SchemaError(
                    "an output schema is set: end with SUBMIT(field=value, ...) using the fields "
                    f"{self.field_names}, not FINAL"
                ) from None
            if not isinstance(fields, dict):
                raise SchemaError("SUBMIT needs keyword fields matching the output schema")
        if self.model is not None:
            try:
                return self.model.model_validate(fields).model_dump(mode="json")
            except ValidationError as e:
                raise SchemaError(f"SUBMIT fields do not match the schema: {e}") from None
        import jsonschema
        from referencing.exceptions import Unresolvable

        try:
            errors = sorted(jsonschema.Draft202012Validator(self.json_schema).iter_errors(fields), key=str)
        except (RecursionError, jsonschema.exceptions.ValidationError, Unresolvable, LookupError, ValueError) as e:
            raise SchemaError(f"SUBMIT fields could not be checked against the schema: {e}") from None
        if errors:
            msgs = "; ".join(f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5])
            raise SchemaError(f"SUBMIT fields do not match the schema: {msgs}")
        return fields
