"""Notes about variables the REPL's snapshot cannot hold (a ``re.Match``, an open file, a
generator): said once per variable, briefly, and only when a later step's code reads it —
a throwaway loop variable that nothing reads again is never mentioned (issue 13, item 2).
Such a variable is lost if the REPL restarts (after a timeout or crash, or on another
server); everything else comes back from the snapshot."""

from __future__ import annotations

import ast
from collections.abc import Mapping

__all__ = ["UnsavedNotes", "names_read"]


def names_read(code: str) -> set[str]:
    """The global names ``code`` reads (``ast.Name`` in a load context; attribute bases
    included). Code that does not parse reads nothing (its SyntaxError is reported anyway)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


class UnsavedNotes:
    """What the last snapshot could not save (``{name: reason}``), and who was told."""

    def __init__(self) -> None:
        self._unsaved: dict[str, str] = {}
        self._told: set[str] = set()

    def saw(self, unsaved: Mapping[str, str]) -> None:
        """After a step: ``unsaved`` is every variable its snapshot could not save."""
        self._unsaved = dict(unsaved)

    def before(self, code: str) -> list[str]:
        """Before a step runs ``code``: one note naming the unsaveable variables it reads
        that no note has named yet (``[]`` when there are none)."""
        if not self._unsaved:
            return []
        new = sorted((names_read(code) & self._unsaved.keys()) - self._told)
        if not new:
            return []
        self._told.update(new)
        items = ", ".join(f"{k} ({self._unsaved[k].split(': ', 1)[-1][:80]})" for k in new)
        return [f"[rlmx: not in the REPL's snapshot, so lost if the REPL restarts: {items}]"]
