"""``oolong``: OOLONG ``trec_coarse``-style aggregation (Bertsch et al., 2025, "Oolong",
arXiv 2511.02817; the OOLONG task of the RLM paper, arXiv 2512.24601 §3).

The context is a header and one line per instance,
``Date: Mar 14, 2023 || User: 48213 || Instance: <a TREC question>``, sampled from
``shared/data/trec`` (TREC.train + TREC.test, Li & Roth). The labels are withheld: the six
coarse classes, named as OOLONG names them (``abbreviation``, ``description and abstract
concept``, ``entity``, ``human being``, ``location``, ``numeric value``); a model must infer
them from each question's meaning. Texts with two different labels in TREC are dropped.
Instances are drawn without replacement while the pool lasts (≈ 120K tokens of lines),
then again. Users: ``clamp(lines / 25, 8, 60)`` random 5-digit ids; dates: uniform over
Oct 2022 – Sep 2023. ``meta["labels"]`` keeps the withheld label of every instance text of
the context, for the offline oracle sub-LM (:mod:`rlmx.bench.offline`).

Questions (kind, answer type): ``count`` (numeric) — instances of a label;
``most_frequent`` / ``least_frequent`` (label); ``compare`` (comparison: ``more common
than`` / ``less common than`` / ``same frequency as``); ``user_count`` (numeric) — instances
of a label among one user's; ``month_count`` (numeric) — instances of a label in a month.
Score (paper §3): numeric answers ``0.75 ** |gold − answer|``, the others exact match.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .tasks import CHARS_PER_TOKEN, Task, find_data_dir, format_length, read_text_file

__all__ = [
    "COARSE_NAMES",
    "LABELS",
    "Instance",
    "build_context",
    "generate_oolong",
    "trec_pool",
]

COARSE_NAMES = {
    "ABBR": "abbreviation",
    "DESC": "description and abstract concept",
    "ENTY": "entity",
    "HUM": "human being",
    "LOC": "location",
    "NUM": "numeric value",
}
"""TREC coarse class → the label name OOLONG uses."""

LABELS = sorted(COARSE_NAMES.values())

HEADER = (
    "The following lines contain {n} general-knowledge questions, one per line. Each line has "
    "a date, a user ID and the question (the Instance). Each question can be labelled as one of "
    "these labels: {labels}. The data does not provide the labels: they must be inferred from "
    "the meaning of each question.\n\n"
)

_START = dt.date(2022, 10, 1)
_DAYS = 365


@dataclass(frozen=True)
class Instance:
    """One context line: ``date`` (datetime.date), ``user`` (int), ``text``, ``label``."""

    date: dt.date
    user: int
    text: str
    label: str

    def line(self) -> str:
        return f"Date: {self.date:%b %d, %Y} || User: {self.user} || Instance: {self.text}"


@cache
def _pool(data_dir: str) -> tuple[tuple[str, str], ...]:
    seen: dict[str, set[str]] = {}
    order: list[str] = []
    for name in ("TREC.train", "TREC.test"):
        path = Path(data_dir) / "trec" / name
        for raw in read_text_file(path).splitlines():
            coarse, _, rest = raw.partition(":")
            _fine, _, text = rest.partition(" ")
            text = " ".join(text.split())
            if coarse not in COARSE_NAMES or not text:
                continue
            if text not in seen:
                seen[text] = set()
                order.append(text)
            seen[text].add(COARSE_NAMES[coarse])
    return tuple((t, next(iter(seen[t]))) for t in order if len(seen[t]) == 1)


def trec_pool(data_dir: str | Path | None = None) -> list[tuple[str, str]]:
    """``(question text, label name)`` of every unambiguous TREC question, in file order."""
    return list(_pool(str(find_data_dir(data_dir))))


def build_context(length_tokens: int, rng: random.Random, pool: list[tuple[str, str]]) -> tuple[str, list[Instance]]:
    """A context of about ``length_tokens`` tokens and its instances (see module doc)."""
    budget = length_tokens * CHARS_PER_TOKEN - len(HEADER) - 40
    order = list(range(len(pool)))
    rng.shuffle(order)
    picked: list[tuple[str, str]] = []
    used = 0
    k = 0
    while True:
        if k == len(order):
            rng.shuffle(order)
            k = 0
        text, label = pool[order[k]]
        k += 1
        cost = len(text) + 52  # "Date: Mar 14, 2023 || User: 12345 || Instance: " + newline
        if used + cost > budget and picked:
            break
        picked.append((text, label))
        used += cost
    n_users = max(8, min(60, len(picked) // 25))
    users = sorted(rng.sample(range(10_000, 100_000), n_users))
    instances = [
        Instance(_START + dt.timedelta(days=rng.randrange(_DAYS)), rng.choice(users), text, label)
        for text, label in picked
    ]
    header = HEADER.format(n=len(instances), labels=", ".join(LABELS))
    return header + "\n".join(i.line() for i in instances) + "\n", instances


_ANSWER_NUMBER = " Give your final answer in the form 'Answer: number'."
_ANSWER_LABEL = " Give your final answer in the form 'Label: answer'."


def _question(kind: str, inst: list[Instance], rng: random.Random) -> tuple[str, str, str, dict[str, object]] | None:
    """``(question, gold, answer_type, params)`` for ``kind``, or None when ill-defined."""
    counts = Counter(i.label for i in inst)
    full = {label: counts.get(label, 0) for label in LABELS}
    if kind == "count":
        label = rng.choice(LABELS)
        q = f"In the above data, how many data points should be classified as label '{label}'?" + _ANSWER_NUMBER
        return q, str(full[label]), "numeric", {"label": label}
    if kind in ("most_frequent", "least_frequent"):
        ranked = sorted(full.items(), key=lambda kv: kv[1], reverse=kind == "most_frequent")
        if ranked[0][1] == ranked[1][1]:
            return None
        word = "most" if kind == "most_frequent" else "least"
        q = f"In the above data, which of the labels is the {word} common?" + _ANSWER_LABEL
        return q, ranked[0][0], "label", {}
    if kind == "compare":
        a, b = rng.sample(LABELS, 2)
        rel = "same frequency as"
        if full[a] != full[b]:
            rel = "more common than" if full[a] > full[b] else "less common than"
        q = (
            f"In the above data, is label '{a}' more common, less common, or the same frequency as label "
            f"'{b}'? Give your final answer in the form 'Answer: {a} is [X] {b}', where [X] is 'more common "
            "than', 'less common than', or 'same frequency as'."
        )
        return q, rel, "comparison", {"a": a, "b": b}
    if kind == "user_count":
        per_user = Counter(i.user for i in inst)
        user = rng.choice(sorted(u for u, c in per_user.items() if c >= 3) or sorted(per_user))
        label = rng.choice(LABELS)
        gold = sum(1 for i in inst if i.user == user and i.label == label)
        q = (
            f"In the above data, how many of the instances of user {user} should be classified as label "
            f"'{label}'?" + _ANSWER_NUMBER
        )
        return q, str(gold), "numeric", {"user": user, "label": label}
    if kind == "month_count":
        month = (_START.replace(day=1) + dt.timedelta(days=31 * rng.randrange(12))).replace(day=1)
        label = rng.choice(LABELS)
        gold = sum(1 for i in inst if (i.date.year, i.date.month) == (month.year, month.month) and i.label == label)
        q = (
            f"In the above data, how many instances dated in {month:%B %Y} should be classified as label "
            f"'{label}'?" + _ANSWER_NUMBER
        )
        return q, str(gold), "numeric", {"month": f"{month:%Y-%m}", "label": label}
    raise ValueError(kind)


KINDS = ("count", "most_frequent", "compare", "user_count", "month_count", "least_frequent")


def generate_oolong(
    n: int,
    seed: int,
    lengths: list[int],
    *,
    data_dir: str | Path | None = None,
) -> list[Task]:
    """``n`` tasks per length (tokens); task ``i`` asks a question of kind
    ``KINDS[i % 6]`` (the next kind when it is ill-defined, e.g. a tie for most common)."""
    pool = trec_pool(data_dir)
    tasks: list[Task] = []
    for length in lengths:
        rng = random.Random(f"oolong:{seed}:{length}")
        for i in range(n):
            context, inst = build_context(length, rng, pool)
            for j in range(len(KINDS)):
                kind = KINDS[(i + j) % len(KINDS)]
                made = _question(kind, inst, rng)
                if made is not None:
                    break
            assert made is not None  # "count" is always defined
            question, gold, answer_type, params = made
            tasks.append(
                Task(
                    id=f"oolong-{format_length(length)}-s{seed}-{i:04d}",
                    family="oolong",
                    seed=seed,
                    index=i,
                    length_tokens=length,
                    question=question,
                    context=context,
                    answer=gold,
                    answer_type=answer_type,
                    meta={
                        "kind": kind,
                        "params": params,
                        "n_instances": len(inst),
                        "labels": {x.text: x.label for x in inst},
                    },
                )
            )
    return tasks
