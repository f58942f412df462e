"""``sniah``: RULER-style single needle in a haystack (Hsieh et al., 2024, "RULER"; the
S-NIAH task of the RLM paper, arXiv 2512.24601 §3).

The haystack is real prose from the shared data folder (the State of the Union addresses
and the Shakespeare text), shuffled by the seed and repeated when a length needs more text
than there is (a 1M-token haystack is ≈ 4.2 M characters; the sources hold ≈ 3.2 M). One
needle sentence, ``One of the special magic numbers for {key} is: {value}.``, is inserted
at a sentence boundary at a chosen depth (task ``i`` of ``n`` at depth ``(i + 0.5) / n`` of
the haystack). ``key`` is two words joined by a hyphen and ``value`` a 7-digit number, as in
RULER; both are drawn again until neither occurs anywhere else in the context.

Question: ``What is the special magic number for {key} mentioned in the provided text?``
Score: 1 when the value appears in the answer (RULER's string match), else 0.
"""

from __future__ import annotations

import random
from pathlib import Path

from .tasks import CHARS_PER_TOKEN, Task, find_data_dir, format_length, read_text_file

__all__ = ["NEEDLE", "QUESTION", "generate_sniah", "haystack_sources"]

NEEDLE = "One of the special magic numbers for {key} is: {value}."
QUESTION = "What is the special magic number for {key} mentioned in the provided text?"

# fmt: off
_ADJECTIVES = [
    "amber", "brisk", "cobalt", "dusty", "eager", "faded", "gentle", "hollow", "ivory", "jagged",
    "keen", "lucid", "mellow", "nimble", "opaque", "placid", "quaint", "rustic", "silent", "tawny",
    "umber", "vivid", "wistful", "zesty", "bashful", "crimson", "dapper", "frosty", "gilded", "hazy",
]
_NOUNS = [
    "lantern", "harbor", "quill", "meadow", "anvil", "beacon", "canyon", "dynamo", "ember", "falcon",
    "glacier", "hammock", "igloo", "jigsaw", "kettle", "locket", "marble", "nebula", "orchid", "pebble",
    "quarry", "ribbon", "saddle", "thimble", "urchin", "violin", "walnut", "yarrow", "zeppelin", "bobbin",
]
# fmt: on


def haystack_sources(data_dir: Path) -> list[tuple[str, str]]:
    """``(name, canonical text)`` of the haystack texts, sorted by name."""
    files = sorted((data_dir / "state_union").glob("*.txt"))
    shakespeare = data_dir / "tinyshakespeare.txt"
    if shakespeare.exists():
        files.append(shakespeare)
    if not files:
        raise FileNotFoundError(f"no haystack texts under {data_dir} (state_union/*.txt, tinyshakespeare.txt)")
    return [(f.name, read_text_file(f).strip()) for f in files]


def _haystack(sources: list[tuple[str, str]], chars: int, rng: random.Random) -> str:
    parts: list[str] = []
    total = 0
    while total < chars:
        order = list(range(len(sources)))
        rng.shuffle(order)
        for i in order:
            parts.append(sources[i][1])
            total += len(sources[i][1]) + 2
            if total >= chars:
                break
    text = "\n\n".join(parts)[:chars]
    cut = max(text.rfind(". "), text.rfind("\n"))
    return text[: cut + 1] if cut > chars // 2 else text


def _insert(haystack: str, needle: str, depth: float) -> tuple[str, int]:
    """Insert ``needle`` at the sentence boundary nearest ``depth`` (0..1); returns the text
    and the needle's character offset."""
    target = int(len(haystack) * depth)
    before = max(haystack.rfind(". ", 0, target), haystack.rfind("\n", 0, target))
    pos = before + 2 if before >= 0 and haystack[before] == "." else before + 1
    pos = max(0, pos)
    text = haystack[:pos] + needle + " " + haystack[pos:]
    return text, pos


def generate_sniah(
    n: int,
    seed: int,
    lengths: list[int],
    *,
    data_dir: str | Path | None = None,
) -> list[Task]:
    """``n`` tasks per length (tokens), deterministic in ``seed`` and the data files."""
    sources = haystack_sources(find_data_dir(data_dir))
    tasks: list[Task] = []
    for length in lengths:
        rng = random.Random(f"sniah:{seed}:{length}")
        for i in range(n):
            depth = (i + 0.5) / n
            haystack = _haystack(sources, length * CHARS_PER_TOKEN - 80, rng)
            while True:
                key = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
                value = str(rng.randrange(1_000_000, 10_000_000))
                if key not in haystack and value not in haystack:
                    break
            needle = NEEDLE.format(key=key, value=value)
            context, offset = _insert(haystack, needle, depth)
            tasks.append(
                Task(
                    id=f"sniah-{format_length(length)}-s{seed}-{i:04d}",
                    family="sniah",
                    seed=seed,
                    index=i,
                    length_tokens=length,
                    question=QUESTION.format(key=key),
                    context=context,
                    answer=value,
                    answer_type="substring",
                    meta={"kind": "single-needle", "key": key, "depth": round(depth, 4), "needle_offset": offset},
                )
            )
    return tasks
