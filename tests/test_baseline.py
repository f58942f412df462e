"""The offline baseline policy: phrase/term extraction, the code it writes, its sub-LM."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rlmx import RLM, Status
from rlmx.engine.blocks import parse_response
from rlmx.lm.baseline import BaselineLM, key_phrases, query_terms


def test_key_phrases_and_terms():
    assert key_phrases("Which addresses mention the Marshall Plan?") == ["Marshall Plan"]
    assert key_phrases('Where is "circular reference" raised?') == ["circular reference"]
    assert key_phrases("What did Truman say about the Department of Defense?") == ["Department of Defense"]
    assert key_phrases("How does JSON work?") == []  # single capitalised words are terms, not phrases
    assert query_terms("How does the JSON encoder detect circular references?") == [
        "json",
        "encoder",
        "detect",
        "circular",
        "references",
    ]


def test_root_writes_search_then_answer_code_and_sub_is_extractive():
    root = BaselineLM(role="root")
    first = asyncio.run(root.complete([{"role": "user", "content": "<question>Who won?</question>"}]))
    code = parse_response(first.text).code
    assert code and "context.grep" in code and "context.search" in code
    compile(code, "<baseline>", "exec")
    second = asyncio.run(
        root.complete(
            [
                {"role": "user", "content": "<question>Who won?</question>"},
                {"role": "assistant", "content": first.text},
                {"role": "user", "content": "Turn 1 output"},
            ]
        )
    )
    code2 = parse_response(second.text).code
    assert code2 and "FINAL(answer, citations=cites)" in code2
    compile(code2, "<baseline>", "exec")
    sub = BaselineLM(role="sub")
    out = asyncio.run(
        sub.complete(
            [
                {
                    "role": "user",
                    "content": (
                        "Which year did the treaty pass?\nThe weather was fine that spring. "
                        "The treaty passed in 1949 after a long debate. Nothing else happened."
                    ),
                }
            ]
        )
    )
    assert out.text == "The treaty passed in 1949 after a long debate."
    assert out.provider == "baseline" and out.input_tokens > 0


def test_bm25_mode_answers_with_cited_sentences(small_corpus: Path):
    ans = RLM(model="baseline").ask(small_corpus, "When did wheat prices fall?")
    assert ans.status is Status.COMPLETED
    assert "Wheat prices fell in 1953" in ans.text
    assert [c.text for c in ans.citations] == ["Wheat prices fell in 1953."]


def test_no_match_is_said_plainly(small_corpus: Path):
    ans = RLM(model="baseline").ask(small_corpus, "Quantum chromodynamics lattice?")
    assert ans.status is Status.COMPLETED
    assert ans.text == "No passage of the context answers the question." and ans.citations == []
