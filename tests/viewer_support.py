"""A scripted execution tree for the trace viewer's tests (not a test module): a root with
a child (``rlm_query``), 60 sub-calls in one turn, a turn that fails, and an answer with a
citation; the root LM's prose carries markup that must never run in the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlmx import RLM, Answer
from rlmx.lm import ScriptedLM

N_SUBCALLS = 60
"""The ``llm_query_batched`` calls of the root's first turn (plus one ``rlm_query``)."""
CANARY = '<img src="x" onerror="window.__pwned=1"><script>window.__pwned=1</script>'
"""Markup in a root LM response: the page must show it as text."""
CITED = "Congress debated foreign aid for months."


def _repl(code: str, prose: str = "") -> str:
    return f"{prose}\n```repl\n{code}\n```"


def _root(messages: list[dict[str, Any]]) -> str:
    question, n = messages[1]["content"], len(messages)
    if "<question>Find the aid sentence" in question:  # the child execution, on one document
        if n == 2:
            return _repl("print(len(context))\ns = context[0:89]\nprint(s)")
        return _repl("FINAL(s.split(chr(10))[1])")
    if n == 2:
        return _repl(
            "hits = context.search('foreign aid', k=3)\n"
            f"notes = llm_query_batched([f'Summarise passage {{i}}: ' + hits[0].text for i in range({N_SUBCALLS})])\n"
            "r = rlm_query('Find the aid sentence', context=context.doc('alpha.txt'))\n"
            "print(r)",
            prose=f"Search first, then ask a child. {CANARY}",
        )
    if n == 4:
        return _repl("missing_name + 1")
    return _repl("FINAL(r)")


def scripted_tree(corpus: Path) -> tuple[RLM, Answer]:
    """Run the scripted tree over ``corpus`` (the ``small_corpus`` fixture) in ``$RLMX_HOME``."""
    sub = ScriptedLM(lambda m: "summary: " + str(m[-1]["content"])[:40])
    rlm = RLM(model=ScriptedLM(_root), sub_model=sub, budgets={"max_depth": 1})
    return rlm, rlm.ask(corpus, "What did Congress debate?")


def scripted_long_run(corpus: Path, turns: int = 120, per_turn: int = 9) -> tuple[RLM, Answer]:
    """A long execution: ``turns`` turns, each but the last making ``per_turn`` sub-calls
    of 3,000-character prompts (120 × 9: 1,071 sub-calls)."""

    def root(messages: list[dict[str, Any]]) -> str:
        turn = len(messages) // 2
        if turn < turns:
            return _repl(
                f"r{turn} = llm_query_batched("
                f"[f'part {{i}} of turn {turn}: ' + 'x' * 3000 for i in range({per_turn})])\n"
                f"print(len(r{turn}))",
                prose=f"Turn {turn}.",
            )
        return _repl("FINAL('done')")

    rlm = RLM(model=ScriptedLM(root), sub_model=ScriptedLM(lambda m: "ok " * 200), budgets={"max_turns": turns + 1})
    return rlm, rlm.ask(corpus, "A long run?")
