from rlmx.engine.citations import (
    Span,
    answer_uses,
    build_spanrefs,
    check_explicit,
    derive_spans,
    merge_spans,
    refused_message,
    widen_spans,
)
from rlmx.sandbox.base import SpanEvent
from rlmx.types import span_checksum

DOC = (
    "The Marshall Plan rebuilt Europe after the war. Congress debated it for months. "
    "Later speeches returned to the subject of foreign aid and its costs. "
) * 3
TEXTS = {"d1": DOC, "d2": "Completely unrelated text about farm prices and tariffs in the Midwest."}


def text_of(doc_id, start, end):
    return TEXTS[doc_id][start:end]


def read(doc_id, start, end, subcalls=()):
    return SpanEvent(kind="read", doc_id=doc_id, start=start, end=end, subcalls=list(subcalls))


def test_merge_overlapping_and_adjacent_only():
    spans = [
        Span("a", 10, 20),
        Span("a", 20, 30),
        Span("a", 25, 40),
        Span("a", 50, 60),
        Span("b", 0, 5),
    ]
    assert merge_spans(spans) == [Span("a", 10, 40), Span("a", 50, 60), Span("b", 0, 5)]


def test_explicit_citations_win_and_are_widened_to_the_sentence():
    spans = derive_spans("anything", [{"doc_id": "d1", "start": 4, "end": 17}], [read("d2", 0, 10)], {}, text_of)
    assert spans == [Span("d1", 0, 47)]  # "The Marshall Plan rebuilt Europe after the war."


def test_quoted_answer_is_cited_precisely_not_whole_read():
    events = [read("d1", 0, len(DOC)), read("d2", 0, len(TEXTS["d2"]))]
    answer = 'It says: "The Marshall Plan rebuilt Europe after the war."'
    spans = derive_spans(answer, None, events, {}, text_of)
    assert spans == [Span("d1", 0, len("The Marshall Plan rebuilt Europe after the war."))]


def test_quote_matches_across_whitespace_differences():
    events = [read("d1", 0, 200)]
    answer = "Congress   debated it\nfor months"
    (span,) = derive_spans(answer, None, events, {}, text_of)
    assert text_of("d1", span.start, span.end) == "Congress debated it for months."


def test_hits_the_answer_uses_are_cited_as_sentences():
    events = [SpanEvent(kind="scan", doc_id="d1", start=4, end=17)]
    assert derive_spans("Marshall Plan", None, events, {}, text_of) == [Span("d1", 0, 47)]
    assert derive_spans("farm prices", None, events, {}, text_of) == []  # never found by the code


def test_subcall_fed_spans_cited_only_when_answer_uses_the_response():
    events = [read("d1", 0, 47, ["t1.0"]), read("d2", 0, 20, ["t1.1"])]
    responses = {"t1.0": "Europe was rebuilt with American aid", "t1.1": "prices fell"}
    spans = derive_spans("Europe was rebuilt with American aid.", None, events, responses, text_of)
    assert spans == [Span("d1", 0, 47)]
    assert derive_spans("no relation at all here", None, events, responses, text_of) == []


def test_answer_uses():
    assert answer_uses("The answer: 1948 and 1949.", "1948 and 1949")
    assert not answer_uses("1948", "something else entirely")


def test_spanrefs_checksum_over_canonical_text():
    (ref,) = build_spanrefs([Span("d1", 4, 17)], text_of, lambda d: "doc one")
    assert ref.text == "Marshall Plan"
    assert ref.checksum == span_checksum("Marshall Plan")
    assert ref.doc_name == "doc one"


def test_short_answer_needs_word_boundaries_and_a_used_span():
    texts = {"d": "In 1961 the plan failed. Item 1 was cheap."}
    t = lambda d, a, b: texts[d][a:b]  # noqa: E731
    events = [read("d", 0, len(texts["d"]))]
    (s,) = derive_spans("1", None, events, {}, t)
    assert t("d", s.start, s.end) == "Item 1 was cheap."  # not inside "1961"
    assert derive_spans("plan", None, events, {}, t) == [Span("d", 0, 24)]
    assert derive_spans("2", None, events, {}, t) == []


def test_list_answer_cites_each_item_and_nothing_for_absent_ones():
    texts = {"d": "Truman spoke first.\n\nEisenhower followed.\n\nKennedy closed. " + "x " * 2000}
    t = lambda d, a, b: texts[d][a:b]  # noqa: E731
    events = [read("d", 0, len(texts["d"]))]
    spans = derive_spans("Truman, Eisenhower and Nixon", None, events, {}, t)
    assert [t("d", s.start, s.end) for s in spans] == ["Truman spoke first.", "Eisenhower followed."]
    spans = derive_spans("- Kennedy\n- Truman", None, events, {}, t)
    assert [t("d", s.start, s.end) for s in spans] == ["Truman spoke first.", "Kennedy closed."]
    assert derive_spans("Lincoln", None, events, {}, t) == []


def test_widening_keeps_whole_words_rows_and_code_lines():
    row = "| 1947 | Truman | 4,200 |\n| 1948 | Truman | 5,100 |\n"
    code = "def copytree(src, dst):\n    raise Error(errors)\n"
    texts = {"r": row, "c": code, "w": "alpha " * 300 + "omega"}
    t = lambda d, a, b: texts[d][a:b]  # noqa: E731
    assert t("r", *_w(t, "r", row.index("5,1"), row.index("5,1") + 2)) == "| 1948 | Truman | 5,100 |"
    assert t("c", *_w(t, "c", code.index("Err"), code.index("Err") + 2)) == "raise Error(errors)"
    a, b = _w(t, "w", 902, 905)  # deep inside a 1,800-character "sentence": whole words
    assert texts["w"][a - 1] == " " and texts["w"][b] == " " and texts["w"][a:b].split()[0] == "alpha"


def _w(t, d, a, b):
    (s,) = widen_spans([Span(d, a, b)], t)
    return s.start, s.end


def test_explicit_citations_must_overlap_what_was_read_or_hit():
    events = [read("d1", 0, 47), SpanEvent(kind="scan", doc_id="d2", start=9, end=18)]
    given = [Span("d1", 40, 60), Span("d2", 10, 15), Span("d1", 100, 140), Span("d2", 30, 40)]
    ok, refused = check_explicit(given, events)
    assert ok == given[:2] and refused == given[2:]
    assert refused_message(refused) == (
        "citations refused (never read or fed to a sub-call by this execution): d1:100:140, d2:30:40"
    )
