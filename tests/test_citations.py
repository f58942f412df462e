from rlmx.engine.citations import Span, answer_uses, build_spanrefs, derive_spans, merge_spans
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


def test_explicit_citations_win():
    spans = derive_spans("anything", [{"doc_id": "d1", "start": 4, "end": 17}], [read("d2", 0, 10)], {}, text_of)
    assert spans == [Span("d1", 4, 17)]


def test_quoted_answer_is_cited_precisely_not_whole_read():
    events = [read("d1", 0, len(DOC)), read("d2", 0, len(TEXTS["d2"]))]
    answer = 'It says: "The Marshall Plan rebuilt Europe after the war."'
    spans = derive_spans(answer, None, events, {}, text_of)
    assert spans == [Span("d1", 0, len("The Marshall Plan rebuilt Europe after the war"))]


def test_quote_matches_across_whitespace_differences():
    events = [read("d1", 0, 200)]
    answer = "Congress   debated it\nfor months"
    (span,) = derive_spans(answer, None, events, {}, text_of)
    assert text_of("d1", span.start, span.end) == "Congress debated it for months"


def test_scans_are_not_citations():
    events = [SpanEvent(kind="scan", doc_id="d1", start=0, end=17)]
    assert derive_spans("The Marshall Plan rebuilt Europe after the war.", None, events, {}, text_of) == []


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
