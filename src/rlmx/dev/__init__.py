"""Developer tools: a local OpenAI-compatible mock LLM server (:mod:`rlmx.dev.mock_llm`)."""

from __future__ import annotations

from rlmx.dev.mock_llm import MockLLMServer, MockRequest, ScriptFn, load_script_file, serve

__all__ = ["MockLLMServer", "MockRequest", "ScriptFn", "load_script_file", "serve"]
