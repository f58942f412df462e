"""Offline LMs for benchmark runs without an API key. They are **scripted policies, not
models**: their scores measure the harness and the code paths, never a language model.

* :class:`OracleLabelLM` — a sub-LM for ``oolong`` / ``oolong-pairs`` that labels
  instances from the withheld labels of the tasks (a prompt with one instance per line,
  ``N. text`` or OOLONG lines, gets ``N: label`` lines; a single instance gets the label),
  so that the aggregation code path is measured apart from labelling. Spec
  ``scripted:oracle-labels`` (price 0).
* :class:`OolongPolicyLM` — a root policy writing real REPL code (templates in
  ``policies/oolong_*.py.txt``): turn 1 looks at the context, turn 2 parses the lines,
  labels the instances with ``llm_query_batched`` (or, when the context has more than
  ``delegate_min`` instances and ``rlm_query`` may start a child, with ``fanout`` child RLMs
  on windows of the context; or, with sub-calls disabled, with keyword rules) and
  aggregates in Python. It understands the question templates of
  :mod:`rlmx.bench.oolong` and :mod:`rlmx.bench.pairs`. Spec ``baseline:bench-oolong``.
* :class:`CodeQAPolicyLM` — a root policy for ``codeqa`` (``policies/codeqa_*.py.txt``):
  greps the definition of the question's identifier, then picks the option the definition
  and its file name cover best. Spec ``baseline:bench-codeqa``.
* :class:`OfflineReaderLM` — the direct reader of the ``base`` and ``retrieval`` methods:
  the ``baseline`` sub-LM's extractive heuristic (sentences sharing the most terms with
  the question), plus, for multiple-choice questions, the option sharing the most words
  with those sentences. Spec ``baseline:bench-reader``.

Tokens are estimated at ≈ 4 characters a token; all are priced 0 USD.
"""

from __future__ import annotations

import re
from string import Template
from typing import Any

from ..lm.base import Completion, LMClient, Message, estimate_tokens
from ..lm.baseline import BaselineLM, policy_template, question_of
from .oolong import LABELS

__all__ = ["LABEL_TASK", "CodeQAPolicyLM", "OfflineReaderLM", "OolongPolicyLM", "OracleLabelLM", "offline_root"]

LABEL_TASK = (
    "Label every instance (line) of this context with one of the labels "
    + ", ".join(LABELS)
    + ". Return FINAL with a JSON list of the labels, one per instance, in order."
)
"""The question a parent gives its child RLMs when delegating labelling."""

_OOLONG_LINE = re.compile(r"Instance: (.*)$")
_NUMBERED = re.compile(r"^\s*(\d+)\s*[.):]\s*(.*)$")


def _completion(text: str, messages: list[Message], provider: str, model: str) -> Completion:
    prompt = "".join(m["content"] for m in messages)
    return Completion(text, estimate_tokens(prompt), estimate_tokens(text), provider, model)


class OracleLabelLM(LMClient):
    """Labels instances from ``labels`` (instance text → label name). Never raises."""

    provider = "scripted"

    def __init__(self, labels: dict[str, str] | None = None, model: str = "oracle-labels"):
        self.model = model
        self.labels: dict[str, str] = dict(labels or {})

    def add(self, labels: dict[str, str]) -> None:
        self.labels.update(labels)

    def answer(self, prompt: str) -> str:
        found: list[tuple[str, str]] = []
        for line in prompt.splitlines():
            text = line.strip()
            number = None
            m = _OOLONG_LINE.search(text)
            if m:
                text = m.group(1).strip()
            else:
                n = _NUMBERED.match(text)
                if n:
                    number, text = n.group(1), n.group(2).strip()
            label = self.labels.get(text)
            if label is not None:
                found.append((number or str(len(found) + 1), label))
        if not found:
            return "unknown"
        if len(found) == 1 and len(prompt.splitlines()) <= 3:
            return found[0][1]
        return "\n".join(f"{n}: {label}" for n, label in found)

    async def complete(
        self, messages: list[Message], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        return _completion(self.answer(messages[-1]["content"]), messages, self.provider, self.model)


def _template(name: str) -> Template:
    return policy_template(__package__ or "rlmx.bench", name)


def _question(messages: list[Message]) -> str:
    return question_of(messages, default="")


def _block(prose: str, code: str) -> str:
    return f"{prose}\n```repl\n{code}```"


_GIVE_UP = 'FINAL("The scripted policy did not reach an answer; see the trace.")\n'


class _PolicyLM(LMClient):
    provider = "baseline"

    async def complete(
        self, messages: list[Message], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        return _completion(self.respond(messages), messages, self.provider, self.model)

    def respond(self, messages: list[Message]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class OolongPolicyLM(_PolicyLM):
    """See the module doc. ``sub_calls=False`` labels with keyword rules (method ``rlm-d0``)."""

    def __init__(
        self,
        *,
        sub_calls: bool = True,
        chunk: int = 50,
        delegate_min: int = 1000,
        fanout: int = 4,
        model: str = "bench-oolong",
    ):
        self.model = model
        self.sub_calls = sub_calls
        self.chunk = chunk
        self.delegate_min = delegate_min
        self.fanout = fanout

    def respond(self, messages: list[Message]) -> str:
        question = _question(messages)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        label_mode = question.startswith(LABEL_TASK[:40])
        if "You have used all" in messages[-1]["content"] or turn >= 3:
            return _block("Out of turns.", _GIVE_UP)
        if turn == 0 and not label_mode:
            return _block("Look at the size and the first lines of the context.", _template("oolong_explore").template)
        if turn >= (1 if label_mode else 2):
            return _block("The step failed; end.", _GIVE_UP)
        code = _template("oolong_solve").substitute(
            question=repr(question),
            mode=repr("label" if label_mode else "answer"),
            sub_calls=repr(self.sub_calls),
            can_delegate=repr("starts a child RLM" in messages[0]["content"]),
            chunk=repr(self.chunk),
            delegate_min=repr(self.delegate_min),
            fanout=repr(self.fanout),
            labels=repr(LABELS),
            label_task=repr(LABEL_TASK),
        )
        return _block("Parse the lines, label every instance, and aggregate in Python.", code)


class CodeQAPolicyLM(_PolicyLM):
    """See the module doc."""

    def __init__(self, model: str = "bench-codeqa"):
        self.model = model

    def respond(self, messages: list[Message]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if "You have used all" in messages[-1]["content"] or turn >= 2:
            return _block("End.", _GIVE_UP)
        if turn == 0:
            code = _template("codeqa_find").substitute(question=repr(_question(messages)))
            return _block("Find the definition the question is about.", code)
        return _block("Pick the option the evidence supports best.", _template("codeqa_choose").template)


_OPTION = re.compile(r"^([A-D])\) (.*)$", re.M)


class OfflineReaderLM(LMClient):
    """The offline direct reader of ``base`` / ``retrieval`` (see the module doc). The
    prompt ends with ``Question: ...``; everything before it is the context."""

    provider = "baseline"

    def __init__(self, model: str = "bench-reader"):
        self.model = model
        self._extractive = BaselineLM(role="sub")

    def answer(self, prompt: str) -> str:
        context, sep, question = prompt.rpartition("\nQuestion: ")
        if not sep:
            context, question = prompt, prompt.splitlines()[0] if prompt else ""
        first = question.strip().splitlines()[0] if question.strip() else ""
        passage = self._extractive._sub(first + "\n" + context)
        options = _OPTION.findall(question)
        if not options:
            return passage
        seen = set(re.findall(r"\w+", passage.lower()))

        def overlap(item: tuple[str, str]) -> float:
            words = set(re.findall(r"\w+", item[1].lower()))
            return len(words & seen) / max(1, len(words))

        best = max(options, key=overlap)
        return f"Answer: {best[0]}"

    async def complete(
        self, messages: list[Message], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        return _completion(self.answer(messages[-1]["content"]), messages, self.provider, self.model)


def offline_root(family: str, *, sub_calls: bool = True, **options: Any) -> LMClient:
    """The offline root policy for a task family: ``sniah`` → the generic ``baseline``
    policy; ``oolong`` / ``oolong-pairs`` → :class:`OolongPolicyLM`; ``codeqa`` →
    :class:`CodeQAPolicyLM`."""
    if family in ("oolong", "oolong-pairs"):
        return OolongPolicyLM(sub_calls=sub_calls, **options)
    if family == "codeqa":
        return CodeQAPolicyLM()
    return BaselineLM(role="root")
