"""``codeqa``: multiple-choice questions about a real code base, with answers verified from
its AST (in the spirit of LongBench-v2 CodeQA, the RLM paper's CodeQA task, arXiv
2512.24601 §3).

The context is a concatenation of source files of a code base (default: the running
Python's standard library, ``sysconfig.get_paths()["stdlib"]``; ``--source DIR`` for
another one), each introduced by a ``### File: <relative path>`` line, drawn by the seed
until the length is reached (files over 60,000 characters, tests and vendored packages are
skipped). Facts come from the AST of the files in the context:

* ``defines`` — which file defines the top-level function or class ``name`` (a public name
  defined at top level in exactly one file of the context; the wrong options are other
  files of the context);
* ``params`` — the parameter names of a top-level function (wrong options: other
  functions' parameter lists of the context, else the true list with one name dropped);
* ``bases`` — the base classes a top-level class lists (wrong options: other classes'
  bases).

Four options ``A``–``D``, one right; the answer is expected as ``Answer: X``. Score:
accuracy. The tasks depend on the code base's files: the same seed and the same Python
version give the same tasks (``meta["source"]`` names the folder and Python version).
"""

from __future__ import annotations

import ast
import random
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .tasks import CHARS_PER_TOKEN, Task, format_length, read_text_file

__all__ = ["LETTERS", "default_source", "generate_codeqa", "source_files"]

LETTERS = "ABCD"
MAX_FILE_CHARS = 60_000
_SKIP_PARTS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "__pycache__", "turtledemo", "ensurepip"}


def default_source() -> Path:
    """The standard library folder of the running Python."""
    return Path(sysconfig.get_paths()["stdlib"])


def source_files(root: Path) -> list[Path]:
    """Python files under ``root`` (relative paths, sorted), without tests and vendored code."""
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if _SKIP_PARTS & set(rel.parts) or rel.name.startswith("test_"):
            continue
        out.append(rel)
    return out


@dataclass
class _Def:
    path: str
    kind: str  # "function" | "class"
    name: str
    params: list[str]
    bases: list[str]


def _defs(path: str, source: str) -> list[_Def] | None:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args]
            if a.vararg:
                names.append("*" + a.vararg.arg)
            names += [x.arg for x in a.kwonlyargs]
            if a.kwarg:
                names.append("**" + a.kwarg.arg)
            out.append(_Def(path, "function", node.name, names, []))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            out.append(_Def(path, "class", node.name, [], [ast.unparse(b) for b in node.bases]))
    return out


def _options(right: str, wrong: list[str], rng: random.Random) -> tuple[list[str], str] | None:
    wrong = sorted({w for w in wrong if w != right})
    if len(wrong) < 3:
        return None
    opts = [*rng.sample(wrong, 3), right]
    rng.shuffle(opts)
    return opts, LETTERS[opts.index(right)]


def _fmt_params(params: list[str]) -> str:
    return ", ".join(params) if params else "(no parameters)"


def _fmt_bases(bases: list[str]) -> str:
    return ", ".join(bases) if bases else "(no explicit base class)"


def _question(kind: str, defs: list[_Def], files: list[str], rng: random.Random) -> tuple[str, list[str], str, dict]:
    count: dict[str, int] = {}
    for d in defs:
        count[d.name] = count.get(d.name, 0) + 1
    unique = [d for d in defs if count[d.name] == 1]
    if kind == "defines":
        d = rng.choice(unique)
        what = "function" if d.kind == "function" else "class"
        made = _options(d.path, [f for f in files if f != d.path], rng)
        q = f"Which file of this code base defines the top-level {what} `{d.name}`?"
    elif kind == "params":
        funcs = [d for d in unique if d.kind == "function" and d.params]
        d = rng.choice(funcs)
        right = _fmt_params(d.params)
        wrong = [_fmt_params(f.params) for f in funcs if f is not d]
        wrong += [_fmt_params(d.params[:j] + d.params[j + 1 :]) for j in range(len(d.params))]
        made = _options(right, wrong, rng)
        q = f"What are the parameters, in order, of the top-level function `{d.name}` defined in `{d.path}`?"
    else:
        classes = [d for d in unique if d.kind == "class"]
        d = rng.choice([c for c in classes if c.bases] or classes)
        right = _fmt_bases(d.bases)
        made = _options(right, [_fmt_bases(c.bases) for c in classes if c is not d], rng)
        q = f"Which base classes does the top-level class `{d.name}` defined in `{d.path}` list?"
    if made is None:
        raise LookupError(kind)
    opts, letter = made
    lines = [q, *(f"{LETTERS[i]}) {o}" for i, o in enumerate(opts))]
    lines.append("Answer with the letter of the correct option, in the form 'Answer: X'.")
    return "\n".join(lines), opts, letter, {"name": d.name, "path": d.path}


KINDS = ("defines", "params", "bases")


def generate_codeqa(
    n: int,
    seed: int,
    lengths: list[int],
    *,
    source: str | Path | None = None,
) -> list[Task]:
    """``n`` tasks per length (tokens); task ``i`` asks a question of kind ``KINDS[i % 3]``
    (another kind when the context has too few candidates)."""
    root = Path(source) if source is not None else default_source()
    files = source_files(root)
    if not files:
        raise FileNotFoundError(f"no Python files under {root}")
    texts: dict[Path, str] = {}
    tasks: list[Task] = []
    for length in lengths:
        rng = random.Random(f"codeqa:{seed}:{length}")
        for i in range(n):
            budget = length * CHARS_PER_TOKEN
            order = list(range(len(files)))
            rng.shuffle(order)
            parts: list[str] = []
            defs: list[_Def] = []
            names: list[str] = []
            used = 0
            for k in order:
                if used > 0.95 * budget and len(names) >= 4:
                    break
                rel = files[k].as_posix()
                if files[k] not in texts:
                    texts[files[k]] = read_text_file(root / files[k])
                text = texts[files[k]]
                if len(text) > MAX_FILE_CHARS or not text.strip():
                    continue
                block = f"### File: {rel}\n{text.rstrip()}\n\n"
                if used + len(block) > budget:
                    if len(names) >= 4:
                        break
                    continue
                if len(names) < 4 and len(block) > (budget - used) / (4 - len(names)):
                    continue  # keep room for the four files a question needs
                found = _defs(rel, text)
                if not found:
                    continue
                parts.append(block)
                defs += found
                names.append(rel)
                used += len(block)
            made = None
            for j in range(len(KINDS)):
                kind = KINDS[(i + j) % len(KINDS)]
                try:
                    made = _question(kind, defs, names, rng)
                    break
                except (LookupError, IndexError):
                    continue
            if made is None:
                raise ValueError(f"length {length}: too little code in context for a question; use a longer length")
            question, opts, letter, params = made
            tasks.append(
                Task(
                    id=f"codeqa-{format_length(length)}-s{seed}-{i:04d}",
                    family="codeqa",
                    seed=seed,
                    index=i,
                    length_tokens=length,
                    question=question,
                    context="".join(parts),
                    answer=letter,
                    answer_type="choice",
                    meta={
                        "kind": kind,
                        "options": opts,
                        "params": params,
                        "files": names,
                        "source": "stdlib" if source is None else str(source),
                        "python": f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}",
                    },
                )
            )
    return tasks
