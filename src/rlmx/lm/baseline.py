"""``baseline``: an offline policy in the style of the paper's CodeAct + BM25 baseline.

As the **root LM** it writes real REPL code (templates in ``policies/``): turn 1 greps the
corpus for the question's key phrases (quoted or multi-word capitalised names) or, if none
match, runs a BM25 ``context.search``; turn 2 reads the sentences around the best hits and
ends with ``FINAL(answer, citations=[...])`` — an extractive answer whose citations are
the quoted sentences. As a **sub-LM** it returns the sentences of the prompt that share
the most terms with the prompt's first line (an extractive heuristic, not a language
model). It needs no network and no key; tokens are estimated at ≈ 4 characters a token;
its price is 0 USD.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from string import Template

from .base import Completion, LMClient, Message, estimate_tokens

__all__ = ["BaselineLM", "key_phrases", "policy_template", "query_terms", "question_of"]

_STOP = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "before",
        "being",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "during",
        "each",
        "few",
        "for",
        "from",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "mention",
        "mentions",
        "mentioned",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "list",
        "name",
        "give",
        "tell",
        "find",
        "show",
        "explain",
        "describe",
    ]
)
_QUESTION_WORDS = frozenset(
    [
        "which",
        "what",
        "how",
        "who",
        "when",
        "where",
        "why",
        "did",
        "does",
        "do",
        "is",
        "are",
        "was",
        "were",
        "can",
        "the",
        "a",
        "an",
        "in",
        "on",
    ]
)


def query_terms(question: str) -> list[str]:
    """Content words of ``question`` (lower case, stopwords dropped, order kept)."""
    out: list[str] = []
    for w in re.findall(r"\w+", question.lower()):
        if w not in _STOP and len(w) > 1 and w not in out:
            out.append(w)
    return out


def key_phrases(question: str) -> list[str]:
    """Quoted strings and multi-word capitalised names of ``question`` ("Marshall Plan")."""
    phrases = [a or b for a, b in re.findall(r'"([^"]+)"|“([^”]+)”', question)]
    for m in re.finditer(r"\b[A-Z][\w'-]*(?:\s+(?:of\s+(?:the\s+)?)?[A-Z][\w'-]*)+", question):
        words = m.group().split()
        while words and words[0].lower() in _QUESTION_WORDS:
            words = words[1:]
        if len(words) >= 2:
            phrases.append(" ".join(words))
    return list(dict.fromkeys(p.strip() for p in phrases if p.strip()))


@cache
def policy_template(package: str, name: str) -> Template:
    """The REPL-code template ``<package>/policies/<name>.py.txt`` (``string.Template``)."""
    return Template(resources.files(package).joinpath(f"policies/{name}.py.txt").read_text("utf-8"))


def question_of(messages: list[Message], default: str | None = None) -> str:
    """The question the root prompt carries in ``<question>…</question>``; else ``default``,
    or the first user message when ``default`` is None."""
    for m in messages:
        if m["role"] == "user":
            found = re.search(r"<question>(.*?)</question>", m["content"], re.S)
            if found:
                return found.group(1).strip()
    if default is not None:
        return default
    return next((m["content"] for m in messages if m["role"] == "user"), "")


def _template(name: str) -> Template:
    return policy_template(__package__ or "rlmx.lm", name)


class BaselineLM(LMClient):
    """``BaselineLM(role="root"|"sub")`` — see the module doc. Never raises."""

    provider = "baseline"

    def __init__(self, role: str = "root", model: str = "bm25-extractive"):
        self.role = role
        self.model = model

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        text = self._root(messages) if self.role == "root" else self._sub(messages[-1]["content"])
        prompt_chars = "".join(m["content"] for m in messages)
        return Completion(text, estimate_tokens(prompt_chars), estimate_tokens(text), self.provider, self.model)

    def _root(self, messages: list[Message]) -> str:
        question = question_of(messages)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        last = messages[-1]["content"]
        if "You have used all" in last or turn >= 3:
            return 'Out of turns.\n```repl\nFINAL(globals().get("answer") or "No answer was found.")\n```'
        if turn == 0 or ("Error:" in last and "NameError" in last):
            code = _template("search_turn").substitute(
                question=repr(question),
                phrases=repr(key_phrases(question)),
                terms=repr(query_terms(question)),
            )
            return "Search the corpus for the question's key phrases, falling back to BM25.\n```repl\n" + code + "```"
        return (
            "Read the sentences around the best hits and answer extractively.\n```repl\n"
            + _template("answer_turn").template
            + "```"
        )

    def _sub(self, prompt: str) -> str:
        head, _, body = prompt.partition("\n")
        terms = query_terms(head)
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", body or head) if len(s.strip()) >= 20]
        ranked = sorted(
            sentences,
            key=lambda s: -sum(1 for t in terms if t[:6] in s.lower()),
        )
        best = [s for s in ranked[:3] if any(t[:6] in s.lower() for t in terms)]
        return " ".join(best) if best else "No relevant passage found."
