"""``oolong-pairs``: pairs of users whose instances satisfy a predicate over labels and
dates, in the style of the RLM paper's OOLONG-Pairs (arXiv 2512.24601 §3 and Appendix D).

The context is an ``oolong`` context (:func:`rlmx.bench.oolong.build_context`: TREC
questions with withheld labels, user ids, dates). Each task asks for every unordered pair of
distinct users satisfying one predicate, drawn by the seed from three kinds:

* ``both_any`` — both users have at least one instance labelled ``A`` or ``B``;
* ``both_dated`` — as ``both_any``, and every instance labelled ``A`` of either user is
  dated before (or after) a date ``D``;
* ``asymmetric`` — one user has at least ``k`` instances labelled ``A`` and the other
  exactly ``m`` instances labelled ``B``.

Parameters are drawn again until the gold set is neither empty nor every pair. The answer is
expected as ``(user_id_1, user_id_2)`` lines, lower id first. Score: F1 over the pairs
(paper §3).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

from .oolong import LABELS, Instance, build_context, trec_pool
from .tasks import Task, format_length

__all__ = ["PREDICATE_KINDS", "generate_pairs", "gold_pairs"]

PREDICATE_KINDS = ("both_any", "both_dated", "asymmetric")

_SUFFIX = (
    " Each question can be labelled as one of: " + ", ".join(LABELS) + " (the data does not provide the labels: "
    "infer them from the meaning of each question). List every pair of distinct user IDs, with no duplicate "
    "pairs and the lower ID first, one per line in the form (user_id_1, user_id_2)."
)


def _an(label: str) -> str:
    return ("an " if label[0] in "aeiou" else "a ") + f"'{label}'"


def _predicate(
    kind: str, rng: random.Random
) -> tuple[str, Callable[[list[Instance], list[Instance]], bool], dict[str, object]]:
    a, b = rng.sample(LABELS, 2)
    if kind == "both_any":

        def ok(x: list[Instance]) -> bool:
            return any(i.label in (a, b) for i in x)

        text = f"where both users have at least one instance labelled {_an(a)} or {_an(b)}"
        return text, lambda u, v: ok(u) and ok(v), {"a": a, "b": b}
    if kind == "both_dated":
        cut = dt.date(2022, 10, 1) + dt.timedelta(days=rng.randrange(60, 300))
        after = rng.random() < 0.5

        def ok(x: list[Instance]) -> bool:
            if not any(i.label in (a, b) for i in x):
                return False
            return all((i.date > cut) if after else (i.date < cut) for i in x if i.label == a)

        word = "after" if after else "before"
        text = (
            f"where both users have at least one instance labelled {_an(a)} or {_an(b)}, and every instance "
            f"labelled {_an(a)} of either user is dated {word} {cut:%B %d, %Y}"
        )
        return text, lambda u, v: ok(u) and ok(v), {"a": a, "b": b, "date": cut.isoformat(), "after": after}
    if kind == "asymmetric":
        k, m = rng.choice([1, 2, 3]), rng.choice([1, 2])

        def one(x: list[Instance]) -> bool:
            return sum(i.label == a for i in x) >= k

        def other(x: list[Instance]) -> bool:
            return sum(i.label == b for i in x) == m

        text = (
            f"such that one user has at least {k} instance{'s' if k > 1 else ''} labelled '{a}' and the other "
            f"user has exactly {m} instance{'s' if m > 1 else ''} labelled '{b}'"
        )
        return (
            text,
            lambda u, v: (one(u) and other(v)) or (one(v) and other(u)),
            {"a": a, "b": b, "k": k, "m": m},
        )
    raise ValueError(kind)


def gold_pairs(inst: list[Instance], test: Callable[[list[Instance], list[Instance]], bool]) -> list[list[int]]:
    """Every pair ``[u1, u2]`` (``u1 < u2``) of users of ``inst`` for which ``test`` holds."""
    by_user: dict[int, list[Instance]] = defaultdict(list)
    for i in inst:
        by_user[i.user].append(i)
    return [[u, v] for u, v in combinations(sorted(by_user), 2) if test(by_user[u], by_user[v])]


def generate_pairs(
    n: int,
    seed: int,
    lengths: list[int],
    *,
    data_dir: str | Path | None = None,
) -> list[Task]:
    """``n`` tasks per length (tokens); task ``i`` uses predicate kind
    ``PREDICATE_KINDS[i % 3]``."""
    pool = trec_pool(data_dir)
    tasks: list[Task] = []
    for length in lengths:
        rng = random.Random(f"oolong-pairs:{seed}:{length}")
        for i in range(n):
            context, inst = build_context(length, rng, pool)
            n_users = len(Counter(x.user for x in inst))
            kind = PREDICATE_KINDS[i % len(PREDICATE_KINDS)]
            for _ in range(100):
                text, test, params = _predicate(kind, rng)
                gold = gold_pairs(inst, test)
                if 0 < len(gold) < n_users * (n_users - 1) // 2:
                    break
            question = "In the above data, list all pairs of user IDs " + text + "." + _SUFFIX
            tasks.append(
                Task(
                    id=f"oolong-pairs-{format_length(length)}-s{seed}-{i:04d}",
                    family="oolong-pairs",
                    seed=seed,
                    index=i,
                    length_tokens=length,
                    question=question,
                    context=context,
                    answer=gold,
                    answer_type="pairs",
                    meta={
                        "kind": kind,
                        "params": params,
                        "n_instances": len(inst),
                        "n_users": n_users,
                        "labels": {x.text: x.label for x in inst},
                    },
                )
            )
    return tasks
