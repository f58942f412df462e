"""Task generators: determinism (same seed ⇒ byte-identical JSONL, context sha256
included), and gold answers that agree with the contexts they were built from."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from rlmx.bench import context_sha256, generate, parse_lengths, read_tasks, write_tasks
from rlmx.bench.codeqa import generate_codeqa
from rlmx.bench.oolong import LABELS
from rlmx.bench.scoring import score
from rlmx.errors import ConfigError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not (SHARED_DATA / "trec").is_dir(), reason="shared data not found")


def _code_base(root: Path) -> Path:
    """A small real-looking code base (six modules) for codeqa."""
    root.mkdir()
    for i, (mod, base) in enumerate(
        [("alpha", "object"), ("beta", "dict"), ("gamma", "list"), ("delta", "Exception"), ("eps", "int"), ("zeta", "")]
    ):
        bases = f"({base})" if base else ""
        (root / f"{mod}.py").write_text(
            f'"""Module {mod}."""\n\n\ndef {mod}_open(path, mode="r", *args, encoding=None, **kw{i}):\n'
            f"    return path\n\n\ndef {mod}_close(handle{i}):\n    return None\n\n\n"
            f"class {mod.title()}Error{bases}:\n    pass\n",
            encoding="utf-8",
        )
    return root


def _jsonl(tasks: list, path: Path) -> bytes:
    write_tasks(tasks, path)
    return path.read_bytes()


@pytest.mark.parametrize("family", ["sniah", "oolong", "oolong-pairs"])
def test_same_seed_same_tasks(family: str, tmp_path: Path) -> None:
    lengths = parse_lengths("2k,4k")
    a = _jsonl(generate(family, 3, 7, lengths, data_dir=SHARED_DATA), tmp_path / "a.jsonl")
    b = _jsonl(generate(family, 3, 7, lengths, data_dir=SHARED_DATA), tmp_path / "b.jsonl")
    c = _jsonl(generate(family, 3, 8, lengths, data_dir=SHARED_DATA), tmp_path / "c.jsonl")
    assert a == b
    assert a != c
    tasks = list(read_tasks(tmp_path / "a.jsonl"))
    assert len(tasks) == 6 and len({t.id for t in tasks}) == 6
    for t in tasks:
        assert t.context_sha256 == context_sha256(t.context)
        assert 0.5 * 4 * t.length_tokens < len(t.context) <= 4 * t.length_tokens


def test_codeqa_same_seed_same_tasks(tmp_path: Path) -> None:
    src = _code_base(tmp_path / "code")
    a = _jsonl(generate("codeqa", 3, 1, [1024], source=src), tmp_path / "a.jsonl")
    assert a == _jsonl(generate("codeqa", 3, 1, [1024], source=src), tmp_path / "b.jsonl")
    stdlib = generate_codeqa(1, 0, [4096])  # the default code base: the standard library
    assert stdlib[0].to_json() == generate_codeqa(1, 0, [4096])[0].to_json()


def test_sniah_needle_is_unique_and_answerable() -> None:
    for t in generate("sniah", 4, 3, [2048], data_dir=SHARED_DATA):
        key, value = t.meta["key"], t.answer
        assert t.context.count(key) == 1 and t.context.count(value) == 1
        needle = f"One of the special magic numbers for {key} is: {value}."
        assert t.context[t.meta["needle_offset"] :].startswith(needle)
        assert key in t.question and value not in t.question
    depths = [t.meta["depth"] for t in generate("sniah", 4, 3, [2048], data_dir=SHARED_DATA)]
    assert depths == [0.125, 0.375, 0.625, 0.875]


def _instances(context: str) -> list[tuple[str, int, str]]:
    return re.findall(r"^Date: (.+?) \|\| User: (\d+) \|\| Instance: (.*)$", context, re.M)


def test_oolong_gold_matches_the_withheld_labels() -> None:
    tasks = generate("oolong", 6, 2, [2048], data_dir=SHARED_DATA)
    assert {t.meta["kind"] for t in tasks} >= {"count", "compare", "user_count", "month_count"}
    for t in tasks:
        rows = _instances(t.context)
        labels = t.meta["labels"]
        assert len(rows) == t.meta["n_instances"]
        assert not any(label in t.context.split("\n\n", 1)[1] for label in ("ABBR", "DESC", "ENTY", "NUM"))
        counts = Counter(labels[q] for _, _, q in rows)
        if t.meta["kind"] == "count":
            assert t.answer == str(counts[t.meta["params"]["label"]])
        if t.meta["kind"] == "user_count":
            p = t.meta["params"]
            want = sum(1 for _, u, q in rows if int(u) == p["user"] and labels[q] == p["label"])
            assert t.answer == str(want)
        assert set(labels.values()) <= set(LABELS)


def test_pairs_gold_is_sorted_unique_and_consistent() -> None:
    for t in generate("oolong-pairs", 3, 5, [2048], data_dir=SHARED_DATA):
        pairs = [tuple(p) for p in t.answer]
        assert pairs and all(a < b for a, b in pairs) and len(set(pairs)) == len(pairs)
        users = {int(u) for _, u, _ in _instances(t.context)}
        assert {u for p in pairs for u in p} <= users
        text = "\n".join(f"({a}, {b})" for a, b in pairs)
        assert score("pairs", text, t.answer) == 1.0


def test_codeqa_answers_match_the_code(tmp_path: Path) -> None:
    src = _code_base(tmp_path / "code")
    for t in generate("codeqa", 3, 4, [1024], source=src):
        opts = t.meta["options"]
        assert len(opts) == 4 and len(set(opts)) == 4
        right = opts["ABCD".index(t.answer)]
        name, path = t.meta["params"]["name"], t.meta["params"]["path"]
        assert f"### File: {path}\n" in t.context
        if t.meta["kind"] == "defines":
            assert right == path
        assert f"{'A) '}{opts[0]}" in t.question and name in t.question


def test_lengths_and_errors(tmp_path: Path) -> None:
    assert parse_lengths("8k, 64k,1m") == [8192, 65536, 1048576]
    assert parse_lengths("5000") == [5000]
    with pytest.raises(ConfigError):
        parse_lengths("8q")
    with pytest.raises(ValueError):
        generate("nope", 1, 0)
    bad = tmp_path / "bad.jsonl"
    write_tasks(generate("sniah", 1, 0, [1024], data_dir=SHARED_DATA), bad)
    bad.write_text(bad.read_text().replace("special magic", "special tragic", 1))
    with pytest.raises(ConfigError, match="context_sha256"):
        list(read_tasks(bad))
