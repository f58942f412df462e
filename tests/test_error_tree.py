"""The exception tree and the settings' errors (issue 9, item 7): every error rlmx raises on
purpose is an RlmxError, a malformed variable is a ConfigError naming it, and the public
names of ``rlmx`` are pinned."""

from __future__ import annotations

import pytest

import rlmx
import rlmx.errors
from rlmx.config import Settings
from rlmx.engine import runtime
from rlmx.engine.runtime import ToolResultError
from rlmx.errors import ConfigError, RlmxError
from rlmx.service import errors as service_errors
from rlmx.service.settings import ServiceSettings


def test_the_public_names_of_rlmx_are_pinned():
    assert sorted(rlmx.__all__) == [
        "Answer",
        "BudgetExceededError",
        "Budgets",
        "CitationError",
        "ConfigError",
        "IngestError",
        "NotFoundError",
        "ProviderError",
        "RLM",
        "ReplError",
        "RlmxError",
        "SchemaError",
        "SpanRef",
        "Status",
        "StoreError",
        "Usage",
        "__version__",
        "span_checksum",
    ]
    for name in rlmx.__all__:
        assert getattr(rlmx, name) is not None


@pytest.mark.parametrize(
    ("module", "name"),
    [(runtime, "RuntimeConflict"), (runtime, "ToolResultError"), (service_errors, "ServiceError")]
    + [(service_errors, n) for n in ("BadRequest", "Forbidden", "NotFound", "Conflict", "TooLarge", "Unavailable")],
)
def test_runtime_and_service_errors_are_rlmx_errors_in_the_documented_tree(module: object, name: str):
    cls = getattr(module, name, None)
    assert isinstance(cls, type) and issubclass(cls, RlmxError)
    assert name in (rlmx.errors.__doc__ or "")


def test_tool_result_error_is_still_a_value_error():
    assert issubclass(ToolResultError, ValueError)


@pytest.mark.parametrize(
    ("cls", "var", "value"),
    [
        (Settings, "RLMX_STEP_TIMEOUT_S", "abc"),
        (Settings, "RLMX_MAX_CONCURRENCY", "1.5"),
        (ServiceSettings, "RLMX_MAX_UPLOAD_BYTES", "5"),
        (ServiceSettings, "RLMX_PUBLIC_DOCS", "perhaps"),
    ],
)
def test_a_malformed_variable_is_a_config_error_naming_it(
    cls: type[Settings | ServiceSettings], var: str, value: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        cls()
    message = str(info.value)
    assert f"{var}={value!r}" in message and "unset" in message
    assert "pydantic" not in message and "errors.pydantic.dev" not in message


def test_a_bad_value_passed_in_code_names_the_field():
    with pytest.raises(ConfigError, match=r"Settings\.step_timeout_s"):
        Settings(step_timeout_s="abc")  # type: ignore[arg-type]
