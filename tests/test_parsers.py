"""Every parser on a real small file built here, plus the files that must fail."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from rlmx.corpus.canonical import canonicalize
from rlmx.corpus.parsers import (
    DocxParser,
    HtmlParser,
    MarkdownParser,
    ParsedText,
    ParseError,
    Parser,
    PdfParser,
    PlainTextParser,
    RstParser,
    SourceCodeParser,
    decode_text,
    default_registry,
)
from rlmx.corpus.parsers.encoding import badness

REG = default_registry()


def _parse(name: str, data: bytes) -> tuple[Parser, ParsedText]:
    return REG.parse(Path(name), data)


def make_pdf(pages: list[str], owner: str | None = None, user: str | None = None) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if owner:
        pdf.set_encryption(owner_password=owner, user_password=user)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx() -> bytes:
    d = docx.Document()
    d.core_properties.title = "Quarterly Report"
    d.add_heading("Introduction", level=1)
    d.add_paragraph("The launch code is 7-4-1. Café naïve.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "name", "value"
    table.cell(1, 0).text, table.cell(1, 1).text = "alpha", "42"
    d.add_heading("Details", level=2)
    d.add_paragraph("Closing words.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


# --- text and encodings ------------------------------------------------------------


def test_plain_text_utf8() -> None:
    parser, out = _parse("notes.txt", "héllo\r\nwörld\n".encode())
    assert isinstance(parser, PlainTextParser)
    assert out.text == "héllo\r\nwörld\n" and out.encoding == "utf-8"
    assert out.media_type == "text/plain" and out.meta["lines"] == 3
    assert _parse("a.txt", b"plain")[1].encoding == "ascii"
    assert _parse("b.txt", "\ufeffbom".encode("utf-8-sig"))[1].encoding == "utf-8-sig"
    assert _parse("c.txt", "utf sixteen é".encode("utf-16"))[1].text == "utf sixteen é"


@pytest.mark.parametrize(
    ("raw", "expected", "encodings"),
    [
        (b"the \xbd\xa2 decrease in taxes " + b"words " * 50, "½¢", {"iso-8859-1"}),
        (
            b"completing what man\xa1\xa6s genius began\xa1Xnot " + b"words " * 50,
            "man’s",
            {"cp950"},
        ),
        ("He said “hello” — it’s fine. ".encode("cp1252") + b"words " * 50, "“hello”", {"cp1252"}),
        (
            "Grüße aus Köln, Straße. ".encode("latin-1") + b"plain words " * 50,
            "Grüße",
            {"iso-8859-1"},
        ),
        ("Съешь же ещё этих мягких французских булок. ".encode("cp1251") * 20, "булок", {"cp1251"}),
    ],
)
def test_legacy_encodings(raw: bytes, expected: str, encodings: set[str]) -> None:
    text, encoding = decode_text(raw)
    assert expected in text
    assert encoding in encodings


def test_badness_prefers_real_characters() -> None:
    assert badness("man’s genius") < badness("man¡¦s genius")
    assert badness("the ½¢ decrease") < badness("the 耦 decrease")
    assert badness("plain ascii") == 0


def test_source_code() -> None:
    src = b"def f(x):\n    return x  # \xc3\xa9\n"
    parser, out = _parse("mod.py", src)
    assert isinstance(parser, SourceCodeParser)
    assert out.text == src.decode() and out.meta == {"language": "python", "lines": 3}
    assert out.media_type == "text/x-python"
    assert _parse("main.rs", b"fn main() {}\n")[1].meta["language"] == "rust"
    assert _parse("Makefile", b"all:\n\techo hi\n")[1].meta["language"] == "make"
    assert _parse("cfg.yaml", b"a: 1\n")[1].media_type == "application/yaml"


def test_markdown_title_and_headings() -> None:
    md = "# Guide\r\n\r\nIntro text.\r\n\r\n## Install\r\n\r\nRun it.\r\n\r\nSetext\r\n------\r\n"
    parser, out = _parse("guide.md", md.encode())
    assert isinstance(parser, MarkdownParser)
    text = canonicalize(md)
    assert out.text == text  # source kept (canonicalised)
    assert out.meta["title"] == "Guide"
    heads = out.meta["headings"]
    assert [(h["level"], h["text"]) for h in heads] == [(1, "Guide"), (2, "Install"), (2, "Setext")]
    for h in heads:
        assert h["text"] in text[h["start"] :].split("\n")[0]


def test_markdown_front_matter_title() -> None:
    md = "---\ntitle: 'Front Title'\nauthor: x\n---\n\n# Heading\n\nBody\n"
    _, out = _parse("post.md", md.encode())
    assert out.meta["title"] == "Front Title"
    assert [h["text"] for h in out.meta["headings"]] == ["Heading"]
    assert out.text[out.meta["headings"][0]["start"] :].startswith("# Heading")


def test_rst_title_and_headings() -> None:
    rst = "=========\nThe Title\n=========\n\nIntro.\n\nSection A\n---------\n\nText.\n\nSection B\n---------\n"
    parser, out = _parse("doc.rst", rst.encode())
    assert isinstance(parser, RstParser)
    assert out.text == rst and out.meta["title"] == "The Title"
    assert [(h["level"], h["text"]) for h in out.meta["headings"]] == [
        (1, "The Title"),
        (2, "Section A"),
        (2, "Section B"),
    ]
    assert out.meta["headings"][1]["start"] == rst.index("Section A")


def test_html_main_content_not_markup() -> None:
    html = (
        "<html><head><title>Page Title</title><style>p{color:red}</style>"
        "<script>var secret = 1;</script></head><body>"
        "<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav><article>"
        "<h1>Big News</h1><p>The first paragraph of the article talks about café prices "
        "and has enough words to count as main content for the extractor.</p>"
        "<p>A second paragraph continues the story so the length threshold is met.</p>"
        "</article><footer>Copyright footer</footer></body></html>"
    )
    parser, out = _parse("page.html", html.encode())
    assert isinstance(parser, HtmlParser)
    assert "café prices" in out.text and "second paragraph" in out.text
    assert "<p>" not in out.text and "var secret" not in out.text and "color:red" not in out.text
    assert out.meta["extractor"] == "htmldoc" and out.meta["title"] == "Page Title"
    assert "Home" not in out.text and "Copyright footer" not in out.text


def test_html_fallback_and_charset() -> None:
    html = "<html><head><meta charset='iso-8859-1'><title>T</title></head><body>Só</body></html>"
    _, out = _parse("tiny.htm", html.encode("latin-1"))
    assert "Só" in out.text and out.encoding == "iso-8859-1"
    with pytest.raises(ParseError, match="no visible text"):
        _parse("blank.html", b"<html><body><script>x()</script></body></html>")


def test_pdf_pages_and_offsets() -> None:
    data = make_pdf(["Page one says hello café.", "Page two: the launch code is 7-4-1."])
    parser, out = _parse("doc.pdf", data)
    assert isinstance(parser, PdfParser)
    assert out.meta["pages"] == 2 and out.encoding is None
    assert out.text == canonicalize(out.text)
    s0, s1 = out.meta["page_starts"]
    assert s0 == 0 and out.text[s1:].startswith("Page two") and out.text[s1 - 2 : s1] == "\n\n"
    assert "café" in out.text[:s1]
    # an owner password only (no user password) still opens
    assert "launch code" in _parse("owner.pdf", make_pdf(["launch code"], owner="o"))[1].text


def test_docx_paragraphs_and_tables() -> None:
    parser, out = _parse("report.docx", make_docx())
    assert isinstance(parser, DocxParser)
    assert out.text.split("\n")[:5] == [
        "Introduction",
        "The launch code is 7-4-1. Café naïve.",
        "name\tvalue",
        "alpha\t42",
        "",
    ]
    assert out.meta["title"] == "Quarterly Report" and out.meta["tables"] == 1
    for h in out.meta["headings"]:
        assert out.text[h["start"] :].startswith(h["text"])
    assert [(h["level"], h["text"]) for h in out.meta["headings"]] == [
        (1, "Introduction"),
        (2, "Details"),
    ]


def test_sniffing_unknown_extensions() -> None:
    assert REG.parse(Path("README"), b"just text\n")[0].name == "text"
    assert REG.parse(Path("data.weird"), b"some text\n")[0].name == "text"
    assert REG.parser_for(Path("noext"), make_pdf(["x"])).name == "pdf"
    assert REG.parser_for(Path("page"), b"<!DOCTYPE html><html></html>").name == "html"
    assert REG.parser_for(Path("doc.bin2"), make_docx()).name == "docx"


# --- failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\t\n", "only whitespace"),
        ("nul.txt", b"abc\x00def" * 10, "binary content"),
        ("ctrl.txt", bytes(range(1, 9)) * 100, "binary content"),
        ("blob.xyz", b"\x00\x01\x02\x03" * 100, "unsupported file type '.xyz'"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "unsupported file type '.png'"),
        ("sheet.xlsx", b"PK\x03\x04whatever", "spreadsheets are not parsed"),
        ("old.doc", b"\xd0\xcf\x11\xe0", "legacy Word"),
        ("empty.pdf", b"", "empty file"),
        ("bad.pdf", b"this is not a pdf at all", "corrupt PDF"),
        ("cut.pdf", make_pdf(["hello world"])[:300], "corrupt PDF"),
        ("scan.pdf", make_pdf([""]), "no text layer"),
        ("locked.pdf", make_pdf(["secret"], owner="o", user="u"), "password"),
        ("bad.docx", b"not a zip file", "corrupt DOCX"),
        ("bad2.docx", b"PK\x03\x04" + b"\x00" * 50, "corrupt DOCX"),
        ("empty.docx", b"", "empty file"),
    ],
)
def test_bad_files_fail_with_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as info:
        _parse(name, data)
    assert info.value.reason


def test_zip_without_document_is_corrupt_docx() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ParseError, match="corrupt DOCX"):
        _parse("fake.docx", buf.getvalue())
