"""Faithful HTML (issue 13 item 4): a documentation page keeps every visible word of its
main content in order, inline code included; blocks are single lines; ``<pre>`` keeps its
lines; table rows are lines; navigation, header and footer go."""

from __future__ import annotations

import re
from pathlib import Path

from rlmx.corpus.ids import doc_id_for
from rlmx.corpus.parsers import HtmlParser, default_registry
from rlmx.corpus.parsers.htmldoc import CELL_SEPARATOR, doc_text

# Modelled on a DocBook/Texinfo manual page: source indentation and wrapping, definition
# lists whose terms hold <code>, inline <var>/<kbd>/<code>, a table, a code block.
PAGE = """<!DOCTYPE html>
<html>
  <head>
    <title>Server Configuration</title>
    <style>dt { font-weight: bold }</style>
    <script>var tracking = "no";</script>
  </head>
  <body>
    <div class="navheader"><a href="prev.html">Prev</a> Up <a href="next.html">Next</a></div>
    <header><span>Acme Manual Banner</span></header>
    <nav><ul><li><a href="/">Sitehome</a></li><li>Downloads</li></ul></nav>
    <main>
      <h1>
        Server
        Configuration
      </h1>
      <p>
        Set <var>work_mem</var> before a large sort, then press
        <kbd>Ctrl</kbd>+<kbd>C</kbd> to stop; the call
        <code>set_config(name, value)</code> changes it at run time.
      </p>
      <div class="variablelist">
        <dl>
          <dt><span class="term">
            <code class="varname">max_connections</code>
            (<code class="type">integer</code>)
          </span></dt>
          <dd>
            <p>
              Determines the maximum number of
              concurrent connections. The default is typically
              <code class="literal">100</code>.
            </p>
          </dd>
          <dt><code>shared_buffers</code> (<code class="type">integer</code>)</dt>
          <dd><p>Sets the amount of memory used for buffers.</p></dd>
        </dl>
      </div>
      <ul>
        <li>First
            item wraps</li>
        <li><p>Second item in a paragraph</p></li>
      </ul>
      <table>
        <thead><tr><th>Name</th><th>Type</th></tr></thead>
        <tbody>
          <tr><td><code>port</code></td><td>integer</td></tr>
          <tr><td>listen_addresses</td><td>string</td></tr>
        </tbody>
      </table>
      <pre class="programlisting">
SELECT name, setting
  FROM pg_settings
    WHERE name = 'port';
</pre>
      <p>Last&nbsp;paragraph ends<br>after a break.</p>
    </main>
    <footer>Copyright 2024 Acme Footer</footer>
    <div class="navfooter">Prev Home Next</div>
  </body>
</html>
"""

_MAIN_TEXT = (
    "Server Configuration "
    "Set work_mem before a large sort then press Ctrl C to stop the call "
    "set_config name value changes it at run time "
    "max_connections integer Determines the maximum number of concurrent connections "
    "The default is typically 100 "
    "shared_buffers integer Sets the amount of memory used for buffers "
    "First item wraps Second item in a paragraph "
    "Name Type port integer listen_addresses string "
    "SELECT name setting FROM pg_settings WHERE name port "
    "Last paragraph ends after a break"
)
MAIN_WORDS = _MAIN_TEXT.split()


def _text() -> str:
    out = HtmlParser().parse(PAGE.encode(), Path("config.html"))
    assert out.meta["extractor"] == "htmldoc" and out.meta["title"] == "Server Configuration"
    return out.text


def test_every_visible_word_in_order() -> None:
    assert re.findall(r"\w+", _text()) == MAIN_WORDS


def test_inline_code_kept_and_blocks_are_single_lines() -> None:
    lines = _text().split("\n")
    assert "Server Configuration" in lines
    assert (
        "Set work_mem before a large sort, then press Ctrl+C to stop; the call "
        "set_config(name, value) changes it at run time."
    ) in lines
    assert "max_connections (integer)" in lines
    assert "shared_buffers (integer)" in lines
    assert ("Determines the maximum number of concurrent connections. The default is typically 100.") in lines
    assert "- First item wraps" in lines and "- Second item in a paragraph" in lines
    for line in lines:
        if not line.startswith(("SELECT", " ")):
            assert line == line.strip() and "  " not in line, line


def test_code_block_lines_and_table_rows() -> None:
    text = _text()
    assert "SELECT name, setting\n  FROM pg_settings\n    WHERE name = 'port';" in text
    lines = text.split("\n")
    assert f"Name{CELL_SEPARATOR}Type" in lines
    assert f"port{CELL_SEPARATOR}integer" in lines
    assert f"listen_addresses{CELL_SEPARATOR}string" in lines
    assert "Last paragraph ends" in lines and "after a break." in lines


def test_navigation_header_footer_dropped() -> None:
    text = _text()
    for gone in ("Prev", "Next", "Banner", "Sitehome", "Downloads", "Footer", "tracking"):
        assert gone not in text
    assert "font-weight" not in text


def test_body_without_main_element_drops_chrome() -> None:
    page = PAGE.replace("<main>", "<div>").replace("</main>", "</div>")
    text, title = doc_text(page)
    assert title == "Server Configuration"
    assert re.findall(r"\w+", text) == MAIN_WORDS


def test_article_header_is_content() -> None:
    html = (
        "<html><body><header>Site banner</header><article><header><h1>Post title</h1>"
        "</header><p>Body text.</p><footer>By the author</footer></article></body></html>"
    )
    text, _ = doc_text(html)
    assert text.split("\n") == ["Post title", "Body text.", "By the author"]


def test_parser_version_names_extractor_and_changes_ids() -> None:
    parser = default_registry().parser_for(Path("a.html"), PAGE.encode())
    assert parser.name == "html" and parser.version.startswith("2+htmldoc-lxml-")
    raw = "sha256:" + "0" * 64
    assert doc_id_for(raw, "html", parser.version) != doc_id_for(raw, "html", "1+trafilatura-2")
