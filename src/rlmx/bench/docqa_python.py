"""``docqa`` questions over Python source (e.g. a package of the standard library), with
ground truth from the AST of each ``.py`` document's canonical text:

* ``defines`` — which file defines the top-level function or class ``name`` (defined at
  top level in exactly one file of the folder); the path or the module name is accepted;
* ``default`` — the default value of a parameter, as the ``def`` line writes it (``None``
  defaults are left out: too easy to guess);
* ``raises`` — the exception class a function's ``raise`` statements raise (one class);
* ``bases`` — the base classes a top-level class lists;
* ``count-defs`` (aggregation) — how many unindented ``def`` statements a file has;
* ``count-files-defining`` (aggregation) — how many files define a top-level function
  of a name.

Only top-level (unindented) definitions are asked about, so a definition is one line of
its file; evidence is that line (for ``raises``: from the ``def`` line to the ``raise``
line).
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass

from .docqa_base import Doc, Question, evidence, lines_with_offsets

__all__ = ["KINDS", "detect", "questions"]

KINDS = (
    "defines",
    "default",
    "raises",
    "bases",
    "count-defs",
    "defines",
    "default",
    "raises",
    "bases",
    "count-files-defining",
)
"""The kind of task ``i`` is ``KINDS[i % len(KINDS)]`` (another one when that is used up)."""

_FORMAT = " Give only the value, in the form 'Answer: VALUE'."
_MAX_RAISE_EVIDENCE = 2000


def detect(docs: list[Doc]) -> bool:
    """True when ``docs`` hold at least two Python files."""
    return sum(d.name.endswith(".py") for d in docs) >= 2


@dataclass
class _File:
    doc: Doc
    tree: ast.Module
    lines: list[tuple[int, str]]

    def line_span(self, lineno: int) -> tuple[int, int]:
        start, line = self.lines[lineno - 1]
        return start, start + len(line)


def _files(docs: list[Doc]) -> list[_File]:
    out = []
    for d in docs:
        if not d.name.endswith(".py"):
            continue
        try:
            tree = ast.parse(d.text)
        except (SyntaxError, ValueError):
            continue
        out.append(_File(d, tree, lines_with_offsets(d.text)))
    return out


def _names(file: _File, package: str | None) -> list[str]:
    """The accepted ways to name a file: its path in the folder and its module name, each
    also with the package's name in front when the folder is a package."""
    rel = file.doc.name
    mod = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    out = [rel, mod]
    if package:
        out += [f"{package}/{rel}", f"{package}.{mod}" if rel != "__init__.py" else package]
    return list(dict.fromkeys(out))


_Def = ast.FunctionDef | ast.AsyncFunctionDef


def _top(file: _File) -> list[ast.stmt]:
    return [n for n in file.tree.body if isinstance(n, _Def | ast.ClassDef)]


def _raises(fn: _Def) -> list[ast.Raise]:
    out: list[ast.Raise] = []
    todo: list[ast.AST] = list(fn.body)
    while todo:
        node = todo.pop()
        if isinstance(node, _Def | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Raise):
            out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return sorted(out, key=lambda r: (r.lineno, r.col_offset))


def _exc_name(r: ast.Raise) -> str | None:
    exc = r.exc.func if isinstance(r.exc, ast.Call) else r.exc
    if not isinstance(exc, ast.Name | ast.Attribute):
        return None
    name = ast.unparse(exc)
    return name if name.rsplit(".", 1)[-1][:1].isupper() else None


def _per_file(f: _File, package: str | None) -> list[Question]:
    out: list[Question] = []
    names = _names(f, package)
    where = f"`{f.doc.name}`"
    top = _top(f)
    count = Counter(n.name for n in top)  # type: ignore[attr-defined]
    for node in top:
        name = node.name  # type: ignore[attr-defined]
        if name.startswith("_") or count[name] != 1:
            continue
        head = evidence(f.doc, *f.line_span(node.lineno))
        if isinstance(node, ast.ClassDef):
            if node.bases and all(b.end_lineno == node.lineno for b in node.bases):
                bases = [ast.unparse(b) for b in node.bases]
                short = [b.rsplit(".", 1)[-1] for b in bases]
                out.append(
                    Question(
                        "bases",
                        f"Which base classes does the class `{name}` in {where} list? Answer with them in order, "
                        "comma-separated, in the form 'Answer: VALUE'.",
                        ", ".join(bases),
                        list(dict.fromkeys([", ".join(bases), ", ".join(short), ",".join(bases)])),
                        [head],
                        params={"name": name, "file": f.doc.name},
                    )
                )
            continue
        assert isinstance(node, _Def)
        a = node.args
        positional = a.posonlyargs + a.args
        pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True))
        pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
        for arg, default in pairs:
            if arg.arg.startswith("_") or arg.lineno != node.lineno or default.end_lineno != node.lineno:
                continue
            if isinstance(default, ast.Constant) and default.value is None:
                continue  # too easy to guess
            seg = ast.get_source_segment(f.doc.text, default) or ast.unparse(default)
            accepted = [ast.unparse(default), seg]
            if isinstance(default, ast.Constant) and isinstance(default.value, str):
                accepted.append(default.value)
            out.append(
                Question(
                    "default",
                    f"What is the default value of the parameter `{arg.arg}` of the function `{name}` in {where}, "
                    "as its `def` line writes it?" + _FORMAT,
                    ast.unparse(default),
                    list(dict.fromkeys(accepted)),
                    [head],
                    params={"name": name, "param": arg.arg, "file": f.doc.name},
                )
            )
        raises = _raises(node)
        excs = {_exc_name(r) for r in raises if r.exc is not None}
        if len(excs) == 1 and None not in excs and all(r.exc is not None for r in raises):
            exc = excs.pop()
            assert exc is not None
            first = raises[0]
            start, end = head["start"], f.line_span(first.end_lineno or first.lineno)[1]
            if end - start <= _MAX_RAISE_EVIDENCE:
                out.append(
                    Question(
                        "raises",
                        f"Which exception class do the `raise` statements of the function `{name}` in {where} raise?"
                        + _FORMAT,
                        exc,
                        list(dict.fromkeys([exc, exc.rsplit(".", 1)[-1]])),
                        [evidence(f.doc, start, end)],
                        params={"name": name, "file": f.doc.name},
                    )
                )
    defs = [n for n in top if isinstance(n, _Def)]
    if 2 <= len(defs) <= 40:
        out.append(
            Question(
                "count-defs",
                f"How many top-level functions (unindented `def` statements, private ones included) does {where} "
                "define?" + _FORMAT,
                str(len(defs)),
                [str(len(defs))],
                [evidence(f.doc, *f.line_span(n.lineno)) for n in defs],
                aggregation=True,
                params={"file": f.doc.name, "accepted_files": names},
            )
        )
    return out


def questions(docs: list[Doc], package: str | None = None) -> list[Question]:
    """Every question the Python files of ``docs`` support, in a fixed order. ``package``:
    the folder's name when it is a package (it has ``__init__.py``), accepted in front of
    module names."""
    files = _files(docs)
    out: list[Question] = []
    defined: dict[str, list[tuple[_File, ast.stmt]]] = {}
    for f in files:
        out += _per_file(f, package)
        for node in _top(f):
            defined.setdefault(node.name, []).append((f, node))  # type: ignore[attr-defined]
    for name, where in sorted(defined.items()):
        if name.startswith("_"):
            continue
        if len(where) == 1:
            f, node = where[0]
            what = "class" if isinstance(node, ast.ClassDef) else "function"
            names = _names(f, package)
            out.append(
                Question(
                    "defines",
                    f"Which file of this folder defines the top-level {what} `{name}`? Answer with its path in the "
                    "folder, in the form 'Answer: PATH'.",
                    f.doc.name,
                    names,
                    [evidence(f.doc, *f.line_span(node.lineno))],
                    params={"name": name},
                )
            )
        funcs = [(f, n) for f, n in where if isinstance(n, _Def)]
        if 2 <= len({f.doc.name for f, _ in funcs}) <= 10 and len(funcs) == len({f.doc.name for f, _ in funcs}):
            out.append(
                Question(
                    "count-files-defining",
                    f"How many files of this folder define a top-level function named `{name}`?" + _FORMAT,
                    str(len(funcs)),
                    [str(len(funcs))],
                    [evidence(f.doc, *f.line_span(n.lineno)) for f, n in funcs],
                    aggregation=True,
                    params={"name": name, "files": sorted(f.doc.name for f, _ in funcs)},
                )
            )
    return out
