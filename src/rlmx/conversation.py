"""Conversations over one corpus (issue 11, item 4): ``RLM(...).session(corpus)`` gives a
:class:`Conversation`; each ``.ask(question)`` is its own execution — with its own budget
(the RLM's budgets, afresh), trace and id — that follows up the previous one: the REPL's
variables carry over (restored from the previous execution's snapshot) and the root LM's
first message recalls the earlier questions and answers (:mod:`rlmx.engine.followup`).

    chat = RLM(model="openai:gpt-5-mini").session("docs/")
    first = chat.ask("Which functions does the manual deprecate?")
    second = chat.ask("Which of those have a replacement, and what is it?")
    assert second.execution_id != first.execution_id
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .corpus.records import CorpusRecord
from .types import Answer

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .api import RLM

__all__ = ["Conversation"]


class Conversation:
    """A sequence of follow-up questions over ``corpus`` with ``rlm``. ``answers`` lists the
    answers so far, oldest first; ``last_id`` is the execution the next question follows
    (None before the first, or given to start from an existing execution)."""

    def __init__(self, rlm: RLM, corpus: CorpusRecord, *, last_id: str | None = None) -> None:
        self.rlm = rlm
        self.corpus = corpus
        self.last_id = last_id
        self.answers: list[Answer] = []

    async def aask(self, question: str, output_schema: dict[str, Any] | type[BaseModel] | None = None) -> Answer:
        """Ask ``question`` as the next turn of the conversation (async); see :meth:`ask`."""
        ans = await self.rlm.aask(self.corpus, question, output_schema, follow_up=self.last_id)
        self.answers.append(ans)
        self.last_id = ans.execution_id
        return ans

    def ask(self, question: str, output_schema: dict[str, Any] | type[BaseModel] | None = None) -> Answer:
        """Ask ``question``; returns its :class:`~rlmx.types.Answer` (statuses other than
        COMPLETED are returned, not raised). Raises ``ConfigError`` for an empty question.
        Use :meth:`aask` inside a running event loop."""

        async def once() -> Answer:
            try:
                return await self.aask(question, output_schema)
            finally:  # this event loop ends here: release the clients' connection pools
                await self.rlm.aclose()

        return asyncio.run(once())
