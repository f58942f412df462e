"""Scorers on hand-made answers: right, wrong and partially right (paper §3 formulas)."""

from __future__ import annotations

import pytest

from rlmx.bench.scoring import (
    choice_letter,
    pairs_f1,
    parse_number,
    parse_pairs,
    score,
)


def test_substring_sniah() -> None:
    gold = "4821937"
    assert score("substring", "The special magic number is 4821937.", gold) == 1.0
    assert score("substring", "4821937", gold) == 1.0
    assert score("substring", "The number is 4821936.", gold) == 0.0  # one digit off: wrong
    assert score("substring", "482193", gold) == 0.0  # partial digits are not the value
    assert score("substring", None, gold) == 0.0


def test_numeric_oolong_is_075_to_the_error() -> None:
    assert score("numeric", "Answer: 54", "54") == 1.0
    assert score("numeric", "Answer: 55", "54") == pytest.approx(0.75)
    assert score("numeric", "Answer: 52", "54") == pytest.approx(0.75**2)
    assert score("numeric", "I counted 40 of them, so the Answer: 50 (out of 300)", "54") == pytest.approx(0.75**4)
    assert score("numeric", "There are 1,204 of them.", "1204") == 1.0  # no marker: the last number
    assert score("numeric", "I could not count them.", "54") == 0.0
    assert score("numeric", "Answer: 154", "54") == pytest.approx(0.75**100)


def test_label_exact_match() -> None:
    assert score("label", "Label: entity", "entity") == 1.0
    assert score("label", "label: 'Numeric Value'.", "numeric value") == 1.0
    assert score("label", "human being", "human being") == 1.0
    assert score("label", "Label: human being", "entity") == 0.0
    # partially right: names the gold label among others — exact match gives 0
    assert score("label", "Label: entity or human being", "entity") == 0.0


def test_comparison() -> None:
    gold = "less common than"
    assert score("comparison", "Answer: entity is less common than location", gold) == 1.0
    assert score("comparison", "Answer: entity is more common than location", gold) == 0.0
    # hedging between two relations is not an answer
    assert score("comparison", "Answer: entity is less common than or the same frequency as location", gold) == 0.0


def test_pairs_f1() -> None:
    gold = [[101, 202], [101, 303], [202, 303], [303, 404]]
    right = "(101, 202)\n(101, 303)\n(202, 303)\n(303, 404)"
    assert score("pairs", right, gold) == 1.0
    assert score("pairs", "(202, 101) (303,101) (303, 202) (404, 303)", gold) == 1.0  # order within a pair is free
    half = "(101, 202)\n(101, 303)"  # precision 1, recall 0.5
    assert score("pairs", half, gold) == pytest.approx(2 * 1 * 0.5 / 1.5)
    noisy = right + "\n(500, 600)\n(700, 800)\n(900, 1000)\n(1100, 1200)"  # precision 0.5, recall 1
    assert score("pairs", noisy, gold) == pytest.approx(2 / 3)
    assert score("pairs", "(500, 600)", gold) == 0.0
    assert score("pairs", "No pair satisfies the condition.", []) == 1.0
    assert pairs_f1("(1, 1)", [[1, 2]]) == 0.0  # a user paired with itself is ignored
    assert parse_pairs("(3, 2), (2, 3)") == {(2, 3)}


def test_choice_accuracy() -> None:
    meta = {"options": ["json/decoder.py", "shlex.py", "csv.py", "uu.py"]}
    assert score("choice", "Answer: A", "A", meta) == 1.0
    assert score("choice", "The answer is (A).", "A", meta) == 1.0
    assert score("choice", "A", "A", meta) == 1.0
    assert score("choice", "It is defined in json/decoder.py.", "A", meta) == 1.0  # quotes one option
    assert score("choice", "Answer: B", "A", meta) == 0.0
    # partially right: hesitating between the right option and a wrong one scores 0
    assert score("choice", "Either json/decoder.py or shlex.py", "A", meta) == 0.0
    assert choice_letter("answer is a function of the input") is None


def test_parse_number_and_unknown_type() -> None:
    assert parse_number("Answer: -3") == -3
    assert parse_number("nothing") is None
    with pytest.raises(ValueError):
        score("essay", "x", "y")
