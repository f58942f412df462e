"""The local OpenAI-compatible mock server, over plain HTTP (urllib, 127.0.0.1 only)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from rlmx.dev import MockLLMServer, load_script_file


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers.items())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers.items())


def chat(srv: MockLLMServer, model: str, content: str, **extra: Any):
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return post(srv.base_url + "/chat/completions", body)


def test_echo_reply_has_realistic_shape_and_usage() -> None:
    with MockLLMServer() as srv:
        assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
        status, body, _ = post(
            srv.base_url + "/chat/completions",
            {
                "model": "m",
                "messages": [
                    {"role": "system", "content": "s" * 40},
                    {"role": "user", "content": "hello there!"},
                ],
            },
        )
    assert status == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"] == "m"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "hello there!", "refusal": None}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == (40 + 12 + 3) // 4
    assert usage["completion_tokens"] == 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_scripts_per_model_wildcard_callable_and_exhaustion() -> None:
    scripts: dict[str, Any] = {
        "root": ["r1", "r2"],
        "*": ["any"],
        "fn": lambda model, msgs: f"{model}:{len(msgs)}",
    }
    with MockLLMServer(scripts=scripts, default="fixed") as srv:
        assert chat(srv, "root", "x")[1]["choices"][0]["message"]["content"] == "r1"
        assert chat(srv, "root", "x")[1]["choices"][0]["message"]["content"] == "r2"
        status, body, _ = chat(srv, "root", "x")
        assert status == 400 and "exhausted" in body["error"]["message"]
        assert chat(srv, "fn", "x")[1]["choices"][0]["message"]["content"] == "fn:1"
        assert chat(srv, "other", "x")[1]["choices"][0]["message"]["content"] == "any"
        status, body, _ = chat(srv, "other", "x")
        assert status == 400
    with MockLLMServer(default="fixed") as srv:
        assert chat(srv, "m", "x")[1]["choices"][0]["message"]["content"] == "fixed"
    with MockLLMServer(scripts=lambda model, msgs: model.upper()) as srv:
        assert chat(srv, "abc", "x")[1]["choices"][0]["message"]["content"] == "ABC"


def test_faults_in_order_with_retry_after_then_success() -> None:
    with MockLLMServer(faults=[429, 500, 503]) as srv:
        s1, b1, h1 = chat(srv, "m", "x")
        s2, b2, _ = chat(srv, "m", "x")
        s3, _, _ = chat(srv, "m", "x")
        s4, _, _ = chat(srv, "m", "x")
        assert (s1, s2, s3, s4) == (429, 500, 503, 200)
        assert {k.lower(): v for k, v in h1.items()}["retry-after"] == "0"
        assert b1["error"]["type"] == "rate_limit_error" and "message" in b2["error"]
        assert [r.status for r in srv.requests] == [429, 500, 503, 200]


def test_error_rate_is_seeded_and_reproducible() -> None:
    def statuses(seed: int) -> list[int]:
        with MockLLMServer(error_rate=0.5, seed=seed) as srv:
            return [chat(srv, "m", "x")[0] for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 500}


def test_api_key_required_when_configured() -> None:
    with MockLLMServer(api_key="secret") as srv:
        url = srv.base_url + "/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        assert post(url, body)[0] == 401
        assert post(url, body, {"Authorization": "Bearer secret"})[0] == 200
        assert post(url, body, {"api-key": "secret"})[0] == 200


def test_azure_path_uses_deployment_as_model_and_models_endpoint() -> None:
    with MockLLMServer(scripts={"dep": ["from azure"]}) as srv:
        url = srv.azure_endpoint + "/openai/deployments/dep/chat/completions?api-version=2024-10-21"
        status, body, _ = post(url, {"messages": [{"role": "user", "content": "x"}]})
        assert status == 200 and body["choices"][0]["message"]["content"] == "from azure"
        assert srv.requests[-1].model == "dep"
        with urllib.request.urlopen(srv.base_url + "/models", timeout=10) as resp:
            models = json.loads(resp.read())
        assert [m["id"] for m in models["data"]] == ["dep"]


def test_bad_requests_and_unknown_routes() -> None:
    with MockLLMServer() as srv:
        assert post(srv.url + "/v1/nope", {})[0] == 404
        assert post(srv.base_url + "/chat/completions", {"messages": []})[0] == 400
        assert chat(srv, "m", "x", stream=True)[0] == 400
        req = urllib.request.Request(srv.base_url + "/chat/completions", data=b"{not json", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 400


def test_max_tokens_truncates_with_length_finish_reason() -> None:
    with MockLLMServer(default="abcdefghijklmnop") as srv:
        body = chat(srv, "m", "x", max_completion_tokens=2)[1]
    assert body["choices"][0]["message"]["content"] == "abcdefgh"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_latency_and_concurrent_requests_are_recorded() -> None:
    with MockLLMServer(latency_ms=100) as srv:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(chat(srv, "m", "x")[0])) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 8
        assert len(srv.requests) == 8
        assert srv.peak_in_flight > 1  # served concurrently, not one after another
        srv.clear_requests()
        assert srv.requests == []


def test_url_before_start_raises_and_restart_after_stop() -> None:
    srv = MockLLMServer()
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    srv.start()
    try:
        assert chat(srv, "m", "hi")[0] == 200
    finally:
        srv.stop()


def test_load_script_file(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps(["a", "b"]))
    assert load_script_file(p) == {"*": ["a", "b"]}
    p.write_text(json.dumps({"root": ["a"], "sub": ["b"]}))
    assert load_script_file(p) == {"root": ["a"], "sub": ["b"]}
    p.write_text(json.dumps({"root": "a"}))
    with pytest.raises(ValueError):
        load_script_file(p)


def test_listening_sockets_say_tcp_so_asyncio_disables_nagle() -> None:
    """asyncio sets TCP_NODELAY on accepted sockets only when the listening socket's proto is
    IPPROTO_TCP; with proto 0 every two-part response waited for a delayed ACK (≈ 40 ms)."""
    import socket

    from rlmx.viewer.server import bind

    with MockLLMServer() as srv:
        assert srv._httpd is not None and srv._httpd._sock.proto == socket.IPPROTO_TCP
    sock = bind(0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
