"""Model specs → clients, and which models to use when the user named none.

Spec forms (``--model``, ``--sub-model``, ``RLMX_MODEL``, ``RLMX_SUB_MODEL``)::

    openai:MODEL      OpenAI or an OpenAI-compatible server (OPENAI_API_KEY, OPENAI_BASE_URL)
    azure:DEPLOYMENT  Azure OpenAI (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY,
                      OPENAI_API_VERSION)
    anthropic:MODEL   Anthropic (ANTHROPIC_API_KEY; pip install 'rlmx[anthropic]')
    scripted:PATH     replies from a script file (tests, demos)
    baseline[:NAME]   the offline baseline policy (no network, no key)

Resolution (:func:`resolve_models`): root = explicit ``--model`` → ``RLMX_MODEL`` →
``openai:auto`` when ``OPENAI_BASE_URL`` names a server other than api.openai.com (the
first model the server lists at ``GET /models``: vLLM, llama.cpp, Ollama need no other
setting) → ``openai:gpt-5`` when ``OPENAI_API_KEY`` is set → ``baseline`` with a one-line
notice.
Sub = explicit ``--sub-model`` → ``RLMX_SUB_MODEL`` → the root's paired default
(``openai:gpt-5`` → ``openai:gpt-5-mini``, as in the paper) → the root spec itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rlmx.config import Settings
from rlmx.errors import ConfigError
from rlmx.lm.base import LMClient

__all__ = [
    "AUTO_OPENAI_MODEL",
    "DEFAULT_OPENAI_MODEL",
    "PAIRED_SUB_MODELS",
    "SPEC_FORMS",
    "make_client",
    "parse_spec",
    "resolve_models",
]

DEFAULT_OPENAI_MODEL = "openai:gpt-5"
AUTO_OPENAI_MODEL = "openai:auto"
"""Resolved by :func:`make_client` to the first model the OpenAI-compatible server lists."""

PAIRED_SUB_MODELS: dict[str, str] = {
    "openai:gpt-5": "openai:gpt-5-mini",
    "openai:gpt-5.1": "openai:gpt-5-mini",
    "anthropic:claude-opus-4-5": "anthropic:claude-haiku-4-5",
    "anthropic:claude-sonnet-4-5": "anthropic:claude-haiku-4-5",
}
"""Root spec → the cheaper sub-model used when none is configured."""

SPEC_FORMS = "openai:MODEL, azure:DEPLOYMENT, anthropic:MODEL, scripted:PATH, baseline or baseline:NAME"
_PROVIDERS = ("openai", "azure", "anthropic", "scripted", "baseline")

NO_MODEL_NOTICE = (
    "rlmx: no model configured (set OPENAI_API_KEY or pass --model/RLMX_MODEL); using the offline baseline policy"
)
AZURE_NO_DEPLOYMENT_NOTICE = (
    "rlmx: AZURE_OPENAI_ENDPOINT is set but no deployment was chosen (pass "
    "--model azure:DEPLOYMENT or set RLMX_MODEL=azure:DEPLOYMENT); "
    "using the offline baseline policy"
)


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``"provider:name"`` into ``(provider, name)`` (``"baseline"`` → ``("baseline", "")``).

    Raises ConfigError for an unknown provider or a missing name, listing the valid forms.
    """
    spec = spec.strip()
    provider, sep, name = spec.partition(":")
    provider = provider.strip().lower()
    name = name.strip()
    if provider not in _PROVIDERS:
        hint = f" (did you mean openai:{spec}?)" if not sep and spec else ""
        raise ConfigError(f"unknown model spec {spec!r}{hint}; valid forms: {SPEC_FORMS}")
    if not name and provider != "baseline":
        raise ConfigError(f"model spec {spec!r} names no model; valid forms: {SPEC_FORMS}")
    return provider, name


def _server_model(timeout_s: float) -> str:
    """The first model id listed by the server at ``OPENAI_BASE_URL`` (``GET /models``, a
    blocking request of at most 15 s). Raises ConfigError when it cannot be listed."""
    import json
    import urllib.error
    import urllib.request

    base_url = (os.environ.get("OPENAI_BASE_URL") or "").rstrip("/")
    key = os.environ.get("OPENAI_API_KEY") or "EMPTY"
    req = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=min(timeout_s, 15.0)) as resp:
            listing = json.loads(resp.read())
        ids = [str(m["id"]) for m in listing.get("data", []) if isinstance(m, dict) and "id" in m]
    except (OSError, ValueError, AttributeError) as e:  # URLError/HTTPError are OSErrors
        raise ConfigError(
            f"could not list the models of OPENAI_BASE_URL={base_url} ({e}); pass --model openai:NAME"
        ) from e
    if not ids:
        raise ConfigError(f"the server at OPENAI_BASE_URL={base_url} lists no model; pass --model openai:NAME")
    return ids[0]


def make_client(spec: str, *, settings: Settings | None = None, role: str = "root") -> LMClient:
    """A bare provider client for ``spec`` (no retry, cache or concurrency wrappers; see
    :func:`rlmx.lm.wrappers.wrap_client`). ``role`` (``"root"`` or ``"sub"``) picks the
    list of a ``{"root", "sub"}`` script file and the baseline policy's behaviour.

    Raises ConfigError for a malformed spec, a missing key or a missing optional package.
    """
    provider, name = parse_spec(spec)
    timeout_s = settings.request_timeout_s if settings is not None else 120.0
    if provider == "openai":
        from rlmx.lm.openai_client import OpenAIClient

        if name == "auto":
            name = _server_model(timeout_s)
        return OpenAIClient(name, timeout_s=timeout_s)
    if provider == "azure":
        from rlmx.lm.openai_client import AzureOpenAIClient

        return AzureOpenAIClient(name, timeout_s=timeout_s)
    if provider == "anthropic":
        from rlmx.lm.anthropic_client import AnthropicClient

        return AnthropicClient(name, timeout_s=timeout_s)
    if provider == "scripted":
        from rlmx.lm.scripted import ScriptedLM

        return ScriptedLM(Path(name), model=name, role=role)
    from rlmx.lm.baseline import BaselineLM

    return BaselineLM(role=role, model=name) if name else BaselineLM(role=role)


def resolve_models(
    model: str | None,
    sub_model: str | None,
    *,
    settings: Settings | None = None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[str, str, str | None]:
    """``(root spec, sub spec, notice or None)`` by the order in the module docstring.

    ``settings`` supplies ``RLMX_MODEL`` / ``RLMX_SUB_MODEL``; when None they are read from
    ``environ``. The notice is one line for stderr, set only when falling back to the
    baseline policy. Specs are validated with :func:`parse_spec` (ConfigError).
    """
    if settings is not None:
        env_model, env_sub = settings.model, settings.sub_model
    else:
        env_model, env_sub = environ.get("RLMX_MODEL"), environ.get("RLMX_SUB_MODEL")
    notice: str | None = None
    root = model or env_model
    if not root:
        base_url = environ.get("OPENAI_BASE_URL", "")
        if base_url and "api.openai.com" not in base_url:
            root = AUTO_OPENAI_MODEL
        elif environ.get("OPENAI_API_KEY"):
            root = DEFAULT_OPENAI_MODEL
        elif environ.get("AZURE_OPENAI_ENDPOINT"):
            root, notice = "baseline", AZURE_NO_DEPLOYMENT_NOTICE
        else:
            root, notice = "baseline", NO_MODEL_NOTICE
    root = root.strip()
    parse_spec(root)
    sub = (sub_model or env_sub or PAIRED_SUB_MODELS.get(root) or root).strip()
    parse_spec(sub)
    return root, sub, notice
