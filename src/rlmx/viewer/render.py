"""Render a :class:`~.model.PageView` as HTML: a Jinja2 template (``templates/page.html``)
with the code highlighted server-side by Pygments, and the viewer's CSS and JS
(``static/``), linked from ``asset_base`` or inlined into one self-contained file (no
network needed to open it). Every text of the trace is escaped (autoescape)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from .model import PageView, dom_id

__all__ = ["ASSETS", "asset", "render_notice", "render_page"]

ASSETS = {"viewer.css": "text/css; charset=utf-8", "viewer.js": "text/javascript; charset=utf-8"}
"""The viewer's static files and their content types."""

_FORMATTER = HtmlFormatter(cssclass="hl", nowrap=False)
_LEXER = PythonLexer()


@cache
def asset(name: str) -> str:
    """The text of static file ``name`` (one of :data:`ASSETS`; the CSS with Pygments'
    highlighting rules appended). Raises KeyError for any other name."""
    if name not in ASSETS:
        raise KeyError(name)
    text = resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")
    if name == "viewer.css":
        text += "\n/* pygments */\n" + _FORMATTER.get_style_defs(".hl")
    return text


def _code(source: str | None) -> Markup:
    return Markup(highlight(source or "", _LEXER, _FORMATTER))


def _usd(v: object) -> str:
    if v is None:
        return "unknown"
    if not isinstance(v, int | float):
        return "–"
    return f"${v:.4f}" if v < 100 else f"${v:,.2f}"


def _secs(v: object) -> str:
    if not isinstance(v, int | float):
        return "–"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def _num(v: object) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return "–" if v is None or not isinstance(v, str) else v
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.4f}"
    return f"{int(v):,}"


def _pct(part: float, whole: float) -> str:
    return f"{max(0.0, min(100.0, 100.0 * part / whole)) if whole > 0 else 0.0:.3f}%"


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


@cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader(__package__ or "rlmx.viewer", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(code=_code, usd=_usd, secs=_secs, num=_num, chunks=_chunks)
    env.globals.update(pct=_pct, dom_id=dom_id)
    return env


def render_page(page: PageView, *, asset_base: str | None = None, title_suffix: str = "rlmx trace") -> str:
    """The HTML of ``page``. ``asset_base``: the URL folder of the static files (e.g.
    ``/ui/static``); None inlines them (a self-contained file)."""
    inline = None if asset_base is not None else {name: asset(name) for name in ASSETS}
    return (
        _env()
        .get_template("page.html")
        .render(
            page=page,
            executions=list(page.executions()),
            asset_base=asset_base,
            inline=inline,
            title_suffix=title_suffix,
            subcall_page=50,
        )
    )


def render_notice(
    title: str,
    message: str,
    *,
    asset_base: str,
    login: bool = False,
    action: str = "",
    next_url: str = "",
    error: str = "",
    open_form: bool = False,
) -> str:
    """A small page of the service's UI: the sign-in form (``login``: it POSTs ``key`` and
    ``next`` to ``action``), or a notice with ``message`` (``open_form``: a form asking for
    an execution id, sent by GET to ``action``)."""
    return (
        _env()
        .get_template("notice.html")
        .render(
            title=title,
            message=message,
            asset_base=asset_base,
            login=login,
            action=action,
            next=next_url,
            error=error,
            open_form=open_form,
        )
    )
