"""Model specs → clients, and the model resolution order (with the baseline notice)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rlmx.config import Settings
from rlmx.errors import ConfigError
from rlmx.lm import AzureOpenAIClient, BaselineLM, OpenAIClient, ScriptedLM
from rlmx.lm.registry import (
    AZURE_NO_DEPLOYMENT_NOTICE,
    NO_MODEL_NOTICE,
    make_client,
    parse_spec,
    resolve_models,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_KEY",
        "OPENAI_API_VERSION",
        "ANTHROPIC_API_KEY",
        "RLMX_MODEL",
        "RLMX_SUB_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)


# parsing --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-5", ("openai", "gpt-5")),
        ("azure:prod-gpt5", ("azure", "prod-gpt5")),
        ("anthropic:claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("scripted:/tmp/a:b.json", ("scripted", "/tmp/a:b.json")),
        ("openai:ft:gpt-4o-mini:org::id", ("openai", "ft:gpt-4o-mini:org::id")),
        ("baseline", ("baseline", "")),
        ("baseline:bm25", ("baseline", "bm25")),
        (" OpenAI:gpt-5 ", ("openai", "gpt-5")),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, str]) -> None:
    assert parse_spec(spec) == expected


def test_unknown_prefix_lists_valid_forms() -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec("mistral:large")
    msg = str(info.value)
    for form in (
        "openai:MODEL",
        "azure:DEPLOYMENT",
        "anthropic:MODEL",
        "scripted:PATH",
        "baseline",
    ):
        assert form in msg
    with pytest.raises(ConfigError, match="did you mean openai:gpt-5"):
        parse_spec("gpt-5")
    with pytest.raises(ConfigError, match="names no model"):
        parse_spec("openai:")


# make_client ----------------------------------------------------------------------------
def test_make_openai_and_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client = make_client("openai:gpt-5", settings=Settings(request_timeout_s=7))
    assert isinstance(client, OpenAIClient)
    assert client.spec == "openai:gpt-5" and client.timeout_s == 7
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    azure = make_client("azure:prod")
    assert isinstance(azure, AzureOpenAIClient) and azure.spec == "azure:prod"


def test_make_openai_without_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_client("openai:gpt-5")


def test_make_anthropic_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # import fails even if installed
    with pytest.raises(ConfigError, match=r"pip install 'rlmx\[anthropic\]'"):
        make_client("anthropic:claude-sonnet-4-5")


def test_make_scripted_picks_role(tmp_path: Path) -> None:
    f = tmp_path / "script.json"
    f.write_text(json.dumps({"root": ["r"], "sub": ["s"]}), encoding="utf-8")
    root = make_client(f"scripted:{f}")
    sub = make_client(f"scripted:{f}", role="sub")
    assert isinstance(root, ScriptedLM) and isinstance(sub, ScriptedLM)
    assert root.spec == f"scripted:{f}"
    assert (root.remaining, sub.remaining) == (1, 1)
    assert sub.role == "sub"


def test_make_baseline() -> None:
    plain = make_client("baseline", role="sub")
    assert isinstance(plain, BaselineLM) and plain.provider == "baseline"
    named = make_client("baseline:custom")
    assert isinstance(named, BaselineLM) and named.model == "custom"


# resolve_models -------------------------------------------------------------------------
def test_explicit_wins() -> None:
    env = {"OPENAI_API_KEY": "k", "RLMX_MODEL": "openai:gpt-4o"}
    root, sub, notice = resolve_models("anthropic:claude-sonnet-4-5", None, environ=env)
    assert (root, sub, notice) == (
        "anthropic:claude-sonnet-4-5",
        "anthropic:claude-haiku-4-5",
        None,
    )


def test_rlmx_model_from_settings_or_environ() -> None:
    settings = Settings(model="openai:gpt-4.1", sub_model="openai:gpt-4.1-nano")
    assert resolve_models(None, None, settings=settings, environ={"OPENAI_API_KEY": "k"}) == (
        "openai:gpt-4.1",
        "openai:gpt-4.1-nano",
        None,
    )
    env = {"RLMX_MODEL": "openai:gpt-4o", "RLMX_SUB_MODEL": "openai:gpt-4o-mini"}
    assert resolve_models(None, None, environ=env) == ("openai:gpt-4o", "openai:gpt-4o-mini", None)


def test_openai_key_gives_the_paper_pair() -> None:
    assert resolve_models(None, None, environ={"OPENAI_API_KEY": "k"}) == (
        "openai:gpt-5",
        "openai:gpt-5-mini",
        None,
    )


def test_nothing_configured_falls_back_to_baseline_with_notice() -> None:
    root, sub, notice = resolve_models(None, None, environ={})
    assert (root, sub) == ("baseline", "baseline")
    assert notice == NO_MODEL_NOTICE
    assert notice == (
        "rlmx: no model configured (set OPENAI_API_KEY or pass --model/RLMX_MODEL); using the offline baseline policy"
    )
    assert "\n" not in notice


def test_azure_without_deployment_says_so() -> None:
    env = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_API_KEY": "k"}
    root, _, notice = resolve_models(None, None, environ=env)
    assert root == "baseline" and notice == AZURE_NO_DEPLOYMENT_NOTICE
    assert "azure:DEPLOYMENT" in notice


def test_sub_model_order() -> None:
    env = {"RLMX_SUB_MODEL": "openai:gpt-4o-mini"}
    assert resolve_models("openai:gpt-5", "openai:gpt-5-nano", environ=env)[1] == ("openai:gpt-5-nano")
    assert resolve_models("openai:gpt-5", None, environ=env)[1] == "openai:gpt-4o-mini"
    assert resolve_models("openai:gpt-5", None, environ={})[1] == "openai:gpt-5-mini"
    assert resolve_models("openai:gpt-4o", None, environ={})[1] == "openai:gpt-4o"
    assert resolve_models("azure:prod", None, environ={})[1] == "azure:prod"


def test_invalid_specs_are_rejected_early() -> None:
    with pytest.raises(ConfigError):
        resolve_models("gpt-5", None, environ={})
    with pytest.raises(ConfigError):
        resolve_models("openai:gpt-5", "nope:x", environ={})


def test_public_names_are_pinned_and_openai_is_imported_lazily() -> None:
    import subprocess

    import rlmx.lm

    assert rlmx.lm.__all__ == [
        "AnthropicClient",
        "AzureOpenAIClient",
        "BaselineLM",
        "CachedLM",
        "Completion",
        "ConcurrencyLimitedLM",
        "LMClient",
        "Message",
        "OpenAIClient",
        "Price",
        "PriceTable",
        "RetryingLM",
        "ScriptedLM",
        "WrapperLM",
        "cache_key",
        "estimate_tokens",
        "make_client",
        "parse_spec",
        "resolve_models",
        "wrap_client",
    ]
    for name in rlmx.lm.__all__:
        assert getattr(rlmx.lm, name) is not None
    code = "import sys, rlmx.lm; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_openai_base_url_alone_selects_the_servers_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmx.dev import MockLLMServer

    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    assert resolve_models(None, None, environ=env) == ("openai:auto", "openai:auto", None)
    # the official endpoint keeps the usual default
    official = {"OPENAI_BASE_URL": "https://api.openai.com/v1", "OPENAI_API_KEY": "k"}
    assert resolve_models(None, None, environ=official)[0] == "openai:gpt-5"
    with MockLLMServer(scripts={"served-model": ["hi"]}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        assert make_client("openai:auto").spec == "openai:served-model"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    with pytest.raises(ConfigError, match="could not list the models"):
        make_client("openai:auto")
