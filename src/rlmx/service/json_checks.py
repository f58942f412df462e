"""The checks free-form JSON of the HTTP API passes before any route sees it: nesting depth,
finite numbers, valid Unicode (``plain_json``, ``PlainJSON``), a raw body parsed without
NaN/Infinity (``load_json``), and integers as JSON Schema has them (``JsonInt``)."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from .errors import BadRequest

__all__ = ["MAX_JSON_DEPTH", "JsonInt", "PlainJSON", "json_int", "load_json", "plain_json"]

MAX_JSON_DEPTH = 64
"""How deeply free-form JSON (``options``, ``output_schema``) may nest."""


def _json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of decoded JSON, without recursion; counted up to ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d <= limit:
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def plain_json(value: Any) -> Any:
    """Free-form JSON must nest at most ``MAX_JSON_DEPTH`` levels, hold finite numbers and
    text that is valid Unicode (no lone surrogates such as ``"\\ud800"``)."""
    if value is None:
        return value
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text must be valid Unicode (no lone surrogates)") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return value


PlainJSON = Annotated[dict[str, Any] | None, AfterValidator(plain_json)]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(raw: bytes, what: str = "the body") -> Any:
    """``raw`` as JSON, else BadRequest (not JSON, NaN/Infinity, nested too deeply)."""
    try:
        data = json.loads(raw or b"null", parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise BadRequest(f"{what} is not JSON: {why}") from None
    if _json_depth(data, MAX_JSON_DEPTH + 4) > MAX_JSON_DEPTH + 4:
        raise BadRequest(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def json_int(value: Any) -> Any:
    """An integer as JSON Schema has it: ``3`` or ``3.0``, never ``true`` or ``"3"``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a valid integer")
    return value


JsonInt = Annotated[int, BeforeValidator(json_int)]
"""An integer field that coerces no booleans or strings, so that what the OpenAPI schema
rejects the server rejects too."""
