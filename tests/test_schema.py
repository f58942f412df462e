import pytest
from pydantic import BaseModel

from rlmx.engine.schema import OutputSchema
from rlmx.errors import ConfigError, SchemaError
from rlmx.sandbox.base import FinalSignal

SCHEMA = {
    "type": "object",
    "properties": {"year": {"type": "integer"}, "name": {"type": "string"}},
    "required": ["year"],
}


def test_json_schema_submit():
    s = OutputSchema(SCHEMA)
    assert s.field_names == ["year", "name"]
    assert s.validate(FinalSignal(kind="SUBMIT", answer="", fields={"year": 1948})) == {"year": 1948}
    with pytest.raises(SchemaError, match="year"):
        s.validate(FinalSignal(kind="SUBMIT", answer="", fields={"year": "x"}))
    with pytest.raises(SchemaError, match="SUBMIT"):
        s.validate(FinalSignal(kind="FINAL", answer="1948"))
    assert s.validate(FinalSignal(kind="FINAL", answer='{"year": 1950}')) == {"year": 1950}


def test_pydantic_schema():
    class Out(BaseModel):
        year: int

    s = OutputSchema(Out)
    assert s.validate(FinalSignal(kind="SUBMIT", answer="", fields={"year": "1948"})) == {"year": 1948}


def test_bad_schema():
    with pytest.raises(ConfigError):
        OutputSchema({"type": "nonsense-type"})
    with pytest.raises(ConfigError):
        OutputSchema("not a schema")  # type: ignore[arg-type]


def test_unsafe_schemas_are_refused():
    with pytest.raises(ConfigError, match="pattern"):
        OutputSchema({"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a+)+$"}}})
    with pytest.raises(ConfigError, match="local references"):
        OutputSchema({"type": "object", "properties": {"x": {"$ref": "http://example.invalid/s.json"}}})
    deep: dict = {"type": "object"}
    node = deep
    for _ in range(40):
        node["properties"] = {"x": {"type": "object"}}
        node = node["properties"]["x"]
    with pytest.raises(ConfigError, match="nested"):
        OutputSchema(deep)
    ok = OutputSchema(
        {"type": "object", "$defs": {"n": {"type": "integer"}}, "properties": {"x": {"$ref": "#/$defs/n"}}}
    )
    assert ok.validate(FinalSignal(kind="SUBMIT", answer="", fields={"x": 3})) == {"x": 3}


def test_recursive_schemas_are_refused():
    for schema in (
        {"type": "object", "if": {"$ref": "#"}, "then": {"$ref": "#"}, "properties": {"x": {}}},
        {"type": "object", "definitions": {"a": {"$ref": "#/definitions/a"}}},
        {"type": "object", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}},
        {"type": "object", "dependentSchemas": {"x": {"$ref": "#"}}},
    ):
        with pytest.raises(ConfigError, match="recursive"):
            OutputSchema(schema)
    ok = OutputSchema(
        {
            "type": "object",
            "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "integer"}},
            "properties": {"x": {"$ref": "#/$defs/a"}},
        }
    )
    assert ok.validate(FinalSignal(kind="SUBMIT", answer="", fields={"x": 1})) == {"x": 1}
