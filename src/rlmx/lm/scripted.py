"""``scripted``: an LM whose replies come from a list, a callable or a file (tests, demos).

Sources (the ``responses`` argument of :class:`ScriptedLM`):

* a list of strings, consumed in order;
* a callable ``(messages) -> str`` or ``async (messages) -> str``, called for every request;
* a path (``str`` or ``Path``) to a file:

  - a JSON list of strings: ``["reply 1", "reply 2"]``;
  - JSON lines, one JSON string per line (blank lines ignored);
  - a JSON object ``{"root": [...], "sub": [...]}``; the ``role`` argument picks the list,
    so ``--model scripted:FILE`` and the sub model read the same file.

When a list runs out, ``complete`` raises a non-retryable ProviderError saying so. Tokens are
estimated (≈ 4 characters a token). ``calls`` records the messages of every request.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from rlmx.errors import ConfigError, ProviderError
from rlmx.lm.base import Completion, LMClient, Message, estimate_tokens

__all__ = ["ScriptFunction", "ScriptedLM", "load_script"]

ScriptFunction = Callable[[list[Message]], str | Awaitable[str]]
"""A reply function: ``(messages) -> str`` or ``async (messages) -> str``."""


def _strings(items: object, where: str) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ConfigError(f"{where}: expected a list of strings (the replies, in order)")
    return list(items)


def load_script(path: str | Path, role: str = "root") -> list[str]:
    """Read the replies for ``role`` from a script file (formats: see the module docstring).

    Raises ConfigError when the file is missing, malformed or has no list for ``role``.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"scripted:{path}: cannot read the script file ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            data = [json.loads(line) for line in lines]
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"scripted:{path}: not JSON and not JSON lines ({exc}); write a JSON list of "
                'strings, one JSON string per line, or {"root": [...], "sub": [...]}'
            ) from exc
    if isinstance(data, dict):
        if role not in data:
            raise ConfigError(
                f"scripted:{path}: no {role!r} list in the script object "
                f"(keys: {', '.join(sorted(map(str, data))) or 'none'})"
            )
        return _strings(data[role], f"scripted:{path} [{role}]")
    if isinstance(data, str):
        return [data]
    return _strings(data, f"scripted:{path}")


class ScriptedLM(LMClient):
    """Replies from a script (see the module docstring). Provider ``"scripted"``.

    ``responses``: list of strings | callable | path. ``model``: the name in the spec
    (``scripted:MODEL``). ``role``: which list of a ``{"root", "sub"}`` file to use.
    Raises ConfigError for an unreadable file; ``complete`` raises ProviderError when
    the script is exhausted.
    """

    provider = "scripted"

    def __init__(
        self,
        responses: Sequence[str] | ScriptFunction | str | Path,
        *,
        model: str = "scripted",
        role: str = "root",
    ) -> None:
        self.model = model
        self.role = role
        self.calls: list[list[Message]] = []
        self._fn: ScriptFunction | None = None
        self._queue: list[str] = []
        self._source = "list"
        if isinstance(responses, str | Path):
            self._queue = load_script(responses, role)
            self._source = f"file {responses} [{role}]"
        elif callable(responses):
            self._fn = responses
            self._source = "callable"
        else:
            self._queue = _strings(list(responses), "ScriptedLM responses")
        self._total = len(self._queue)

    @property
    def remaining(self) -> int:
        """Replies not yet consumed (0 for a callable script)."""
        return len(self._queue)

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """The next scripted reply. ``max_tokens``/``temperature`` are ignored.

        Raises ProviderError (not retryable) when the script is exhausted.
        """
        started = time.perf_counter()
        self.calls.append([dict(m) for m in messages])
        if self._fn is not None:
            result = self._fn(messages)
            text = await result if inspect.isawaitable(result) else result
            if not isinstance(text, str):
                raise ProviderError(
                    f"scripted:{self.model}: the script function returned {type(text).__name__}, not str"
                )
        elif self._queue:
            text = self._queue.pop(0)
        else:
            raise ProviderError(
                f"scripted:{self.model}: script exhausted after {self._total} responses "
                f"({self._source}); add replies for this {self.role} model",
                retryable=False,
            )
        prompt = "".join(m.get("content", "") for m in messages)
        return Completion(
            text=text,
            input_tokens=estimate_tokens(prompt),
            output_tokens=estimate_tokens(text),
            provider=self.provider,
            model=self.model,
            latency_s=time.perf_counter() - started,
            raw={"usage_estimated": True},
        )
