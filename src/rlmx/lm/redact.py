"""Redaction of what leaves for outside LMs: an opt-in policy, a per-tree mapping, a wrapper.

A :class:`RedactPolicy` names what to mask: built-in kinds (``emails``, ``keys``, ``phones``)
and user regexes. A :class:`Redactor` holds the mapping of one execution tree, in the
orchestrator's memory only (never stored, never sent): each distinct matched value gets a
stable placeholder (``[EMAIL_1]``, ``[KEY_2]``, ``[PHONE_1]``, ``[REDACTED_3]`` for user
regexes), numbered in order of first appearance, so the same value masks the same way in
every call of the tree (and a repeated prompt still hits the LLM cache).
:class:`RedactingLM` masks every message it sends and unmasks the reply, so the engine, the
REPL and the final answer see the originals; the provider, the LLM cache and any log beyond
this wrapper see placeholders only.

Limits: it masks what the patterns match, nothing else (a name, an address, a number in
words or a key in an unknown format goes out as is). The built-in patterns are deliberately
simple (:data:`BUILTIN_PATTERNS`). A placeholder-shaped string already in the corpus (e.g. a
literal ``[EMAIL_1]``) is unmasked to the tree's value of that placeholder in replies.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from rlmx.errors import ConfigError
from rlmx.lm.base import Completion, LMClient, Message
from rlmx.lm.wrappers import WrapperLM

__all__ = ["BUILTIN_PATTERNS", "KIND_NAMES", "RedactPolicy", "RedactingLM", "Redactor", "redactor_of"]

BUILTIN_PATTERNS: dict[str, str] = {
    # API keys first: a key may contain an '@' or digits that the others would take.
    "key": (
        r"(?:\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style
        r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
        r"|\b[Bb]earer\s+[A-Za-z0-9._~+/\-]{16,}=*)"  # HTTP bearer tokens
    ),
    "email": r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b",
    # +CC (AREA) NNN-NNNN and friends: at least 8 digits in 2-4 groups; not dates (YYYY-MM-DD).
    "phone": r"(?<![\w+])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?)?\d{2,4}[ .\-]\d{3,4}(?:[ .\-]?\d{3,4})?(?![\w-])",
}
"""The built-in kinds' regular expressions (Python ``re``), tried in this order."""

KIND_NAMES: dict[str, str] = {
    "email": "email",
    "emails": "email",
    "key": "key",
    "keys": "key",
    "phone": "phone",
    "phones": "phone",
}
"""Names accepted in a policy string for the built-in kinds (singular or plural)."""

_LABEL = {"email": "EMAIL", "key": "KEY", "phone": "PHONE", "regex": "REDACTED"}
_PLACEHOLDER = re.compile(r"\[(EMAIL|KEY|PHONE|REDACTED)_([1-9][0-9]*)\]")


@dataclass(frozen=True)
class RedactPolicy:
    """What to mask: ``kinds`` (built-in: ``"email"``, ``"key"``, ``"phone"``) and
    ``regexes`` (user patterns, Python ``re`` syntax, masked as ``[REDACTED_n]``).

    Build it with :meth:`parse`. An empty policy masks nothing (:attr:`enabled` False).
    """

    kinds: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    _compiled: tuple[tuple[str, re.Pattern[str]], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def parse(cls, spec: str | Sequence[str] | RedactPolicy | None) -> RedactPolicy:
        """A policy from ``"emails,keys,phones,REGEX"`` (or a list of such strings, e.g. one
        per ``--redact`` option). In each string, comma-separated built-in names are read from
        the front; the rest of the string, commas included, is one regex (so
        ``"emails,\\d{2,4}-\\d+"`` is the email kind and the regex ``\\d{2,4}-\\d+``).

        Raises :class:`~rlmx.errors.ConfigError` for an invalid regex or one that matches the
        empty string (it would mask nothing and everything)."""
        if isinstance(spec, RedactPolicy):
            return spec
        items = [spec] if isinstance(spec, str) else list(spec or ())
        kinds: list[str] = []
        regexes: list[str] = []
        for item in items:
            parts = str(item).split(",")
            while parts and parts[0].strip().lower() in KIND_NAMES:
                kind = KIND_NAMES[parts.pop(0).strip().lower()]
                if kind not in kinds:
                    kinds.append(kind)
            rest = ",".join(parts).strip()
            if rest and rest not in regexes:
                regexes.append(rest)
        return cls.of(kinds, regexes)

    @classmethod
    def of(cls, kinds: Iterable[str], regexes: Iterable[str] = ()) -> RedactPolicy:
        """A policy of built-in ``kinds`` and user ``regexes``; raises ConfigError for an
        unknown kind or a bad regex."""
        ks = tuple(dict.fromkeys(KIND_NAMES.get(k.strip().lower(), k) for k in kinds))
        for k in ks:
            if k not in BUILTIN_PATTERNS:
                raise ConfigError(f"unknown redaction kind {k!r}: use emails, keys, phones or a regex")
        compiled: list[tuple[str, re.Pattern[str]]] = [
            (k, re.compile(BUILTIN_PATTERNS[k])) for k in BUILTIN_PATTERNS if k in ks
        ]
        rs = tuple(regexes)
        for r in rs:
            try:
                pat = re.compile(r)
            except re.error as e:
                raise ConfigError(f"invalid redaction regex {r!r}: {e}; use Python re syntax") from None
            if pat.fullmatch(""):
                raise ConfigError(f"redaction regex {r!r} matches the empty string: make it match at least a character")
            compiled.append(("regex", pat))
        return cls(kinds=ks, regexes=rs, _compiled=tuple(compiled))

    @property
    def enabled(self) -> bool:
        return bool(self._compiled)

    def describe(self) -> list[str]:
        """The policy as a list of names (``"email"``…) and ``"regex"`` per user pattern,
        without the patterns themselves (they may spell what is secret)."""
        return [*self.kinds, *["regex"] * len(self.regexes)]

    def matches(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, kind)`` ranges (code points) to mask in ``text``:
        leftmost first; at the same start the longest; at equal length the earlier kind."""
        found: list[tuple[int, int, int, str]] = []
        for order, (kind, pat) in enumerate(self._compiled):
            for m in pat.finditer(text):
                if m.end() > m.start():
                    found.append((m.start(), -(m.end() - m.start()), order, kind))
        found.sort()
        out: list[tuple[int, int, str]] = []
        pos = 0
        for start, neg_len, _order, kind in found:
            if start >= pos:
                out.append((start, start - neg_len, kind))
                pos = start - neg_len
        return out


class Redactor:
    """The mapping of one execution tree: value ↔ placeholder, in memory only.

    ``mask(text)`` replaces every match of the policy by its placeholder; ``unmask(text)``
    puts the originals back for the placeholders this redactor made (others stay as they
    are). :meth:`summary` gives counts per kind, never values.
    """

    def __init__(self, policy: RedactPolicy) -> None:
        self.policy = policy
        self._placeholder: dict[str, str] = {}
        self._value: dict[str, str] = {}
        self._next: Counter[str] = Counter()
        self.occurrences: Counter[str] = Counter()
        """Matches masked per kind, over every message sent (a value resent counts again)."""

    def _placeholder_for(self, value: str, kind: str) -> str:
        ph = self._placeholder.get(value)
        if ph is None:
            self._next[kind] += 1
            ph = f"[{_LABEL[kind]}_{self._next[kind]}]"
            self._placeholder[value] = ph
            self._value[ph] = value
        return ph

    def mask(self, text: str) -> str:
        """``text`` with every policy match replaced by its stable placeholder."""
        spans = self.policy.matches(text)
        if not spans:
            return text
        parts: list[str] = []
        pos = 0
        for start, end, kind in spans:
            parts.append(text[pos:start])
            parts.append(self._placeholder_for(text[start:end], kind))
            self.occurrences[kind] += 1
            pos = end
        parts.append(text[pos:])
        return "".join(parts)

    def unmask(self, text: str) -> str:
        """``text`` with this redactor's placeholders replaced by their original values."""
        if not self._value:
            return text
        return _PLACEHOLDER.sub(lambda m: self._value.get(m.group(0), m.group(0)), text)

    def summary(self) -> dict[str, object]:
        """``{"policy": [kind...], "values": {kind: distinct values masked},
        "occurrences": {kind: matches masked}}``: counts only, for the trace."""
        values: Counter[str] = Counter()
        for ph in self._value:
            label = ph[1:].rsplit("_", 1)[0]
            values[next(k for k, v in _LABEL.items() if v == label)] += 1
        return {
            "policy": self.policy.describe(),
            "values": dict(sorted(values.items())),
            "occurrences": dict(sorted(self.occurrences.items())),
        }


class RedactingLM(WrapperLM):
    """Masks every message sent to ``inner`` with ``redactor`` and unmasks the reply text.

    Put it outside the LLM cache (``RedactingLM(CachedLM(...))``) so that cache entries
    hold placeholders only. Share one :class:`Redactor` between the root and sub LMs of a
    tree (placeholders then agree across them). Token counts are the provider's, for the
    masked text.
    """

    def __init__(self, inner: LMClient, redactor: Redactor) -> None:
        super().__init__(inner)
        self.redactor = redactor

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        masked = [{**m, "content": self.redactor.mask(m.get("content", ""))} for m in messages]
        c = await self.inner.complete(masked, max_tokens=max_tokens, temperature=temperature)
        return replace(c, text=self.redactor.unmask(c.text))


def redactor_of(lm: LMClient) -> Redactor | None:
    """The :class:`Redactor` of the first :class:`RedactingLM` in ``lm``'s wrapper chain,
    else None (no redaction on that client)."""
    client: LMClient | None = lm
    while isinstance(client, WrapperLM):
        if isinstance(client, RedactingLM):
            return client.redactor
        client = client.inner
    return None
