"""Request and response bodies of the HTTP API (pydantic). The checks free-form JSON in them
passes (depth, finite numbers, valid Unicode) are in :mod:`.json_checks`, re-exported here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ..types import Budgets
from .json_checks import MAX_JSON_DEPTH, JsonInt, PlainJSON, json_int, load_json, plain_json
from .spans import MAX_VERIFY_CITATIONS

__all__ = [
    "MAX_JSON_DEPTH",
    "Accepted",
    "BudgetLeft",
    "CancelOut",
    "CheckOut",
    "CitationIn",
    "ContextOut",
    "DocIn",
    "DocSummary",
    "DocumentsPage",
    "ExecutionAccepted",
    "ExecutionCreate",
    "Health",
    "JsonInt",
    "ModelsIn",
    "PlainJSON",
    "PromptOut",
    "ResolveIn",
    "RuntimeAccepted",
    "RuntimeCreate",
    "SessionCreate",
    "SessionList",
    "SessionOut",
    "SpanGet",
    "SpanOut",
    "SpanRefOut",
    "StepIn",
    "StepOut",
    "ToolResultIn",
    "VerifyIn",
    "VerifyOut",
    "load_json",
    "plain_json",
]

# --- request and response bodies -------------------------------------------------------------
_STRICT = ConfigDict(extra="forbid")
"""Request bodies: no unknown fields."""


class DocIn(BaseModel):
    """A server path (file or folder) under ``RLMX_ALLOWED_PATHS``."""

    model_config = _STRICT
    source_name: str | None = Field(None, max_length=500, description="Display name (default: the file name).")
    path: str = Field(min_length=1, max_length=4096)


class SessionCreate(BaseModel):
    model_config = _STRICT
    docs: list[DocIn] = Field(min_length=1, max_length=1000)
    ttl_minutes: Annotated[int, Ge(1), Le(525_600), BeforeValidator(json_int)] | None = Field(
        None, description="Delete the session after this many minutes."
    )
    options: PlainJSON = None
    include: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list,
        max_length=100,
        description="Glob patterns: files of a folder that are ingested though skipped by default (scripts, ...).",
    )
    exclude: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=100, description="Glob patterns: files of a folder that are skipped."
    )


class Accepted(BaseModel):
    session_id: str
    status: str


class DocumentsPage(BaseModel):
    """Where a page of a session's per-document entries lies among them all."""

    offset: int
    limit: int
    total: int = Field(description="Per-document entries in all (documents, failures, skipped files, duplicates).")
    next_offset: int | None = Field(description="`offset` of the next page; null after the last.")


class SessionOut(BaseModel):
    session_id: str
    status: Literal["CREATING", "READY", "FAILED"]
    error: str | None = None
    corpus_id: str | None = None
    documents: list[dict[str, Any]] = Field(
        description="One page of the per-document entries (`?documents=offset,limit`; see documents_page)."
    )
    documents_page: DocumentsPage
    documents_parsed: int = Field(description="Files parsed so far (all of them once READY).")
    documents_total: int | None = Field(
        None, description="Files to parse in all; null until they are listed (or for an older session)."
    )
    n_documents: int = Field(description="Documents kept (status READY), over all pages.")
    n_failed: int = Field(description="Files that failed, over all pages.")
    summary: dict[str, Any] | None = Field(
        None,
        description="Ingestion, once done: {kept, skipped: {reason: n}, duplicates, aliases: "
        "{kept name: [other names]}, failed: {reason: n}}.",
    )
    options: dict[str, Any]
    created_at: str
    expires_at: str | None = None


class SessionList(BaseModel):
    sessions: list[SessionOut]


class ModelsIn(BaseModel):
    model_config = _STRICT
    root: str | None = Field(None, max_length=300, description="Root LM spec, e.g. openai:gpt-5 or baseline.")
    sub: str | None = Field(None, max_length=300, description="Sub-LM spec for llm_query.")


class ExecutionCreate(BaseModel):
    model_config = _STRICT
    question: str = Field(min_length=1, max_length=200_000)
    models: ModelsIn | None = None
    budgets: Budgets | None = None
    output_schema: PlainJSON = Field(None, description="JSON Schema of SUBMIT(**fields).")
    redact: list[Annotated[str, Field(min_length=1, max_length=1_000)]] | None = Field(
        None,
        max_length=16,
        description="Mask these in every prompt sent to an LM: `emails`, `keys`, `phones` and/or a regex, "
        'as `rlmx ask --redact` (e.g. `["emails,keys", "EMP-[0-9]{5}"]`); the answer shows the originals, '
        "`usage.redaction` counts what was masked.",
    )


class ExecutionEstimate(BaseModel):
    """The answer of a dry run: what the execution would cost, with nothing created."""

    dry_run: Literal[True] = True
    session_id: str
    estimate: dict[str, Any] = Field(
        description="`expected` (low, high) and `worst_case` tokens and USD, `notes`, the paper's cost figures "
        "(see docs/estimate-and-redaction.md)."
    )


class RuntimeCreate(BaseModel):
    model_config = _STRICT
    question: str | None = Field(
        None, max_length=200_000, description="What the client is working on (for the record)."
    )
    models: ModelsIn | None = None
    budgets: Budgets | None = None
    output_schema: PlainJSON = None
    sub_calls: Literal["server", "client"] = Field(
        "server", description="`client`: llm_query/rlm_query inside a step wait for the client's results."
    )


class ExecutionAccepted(BaseModel):
    execution_id: str
    status: str


class DocSummary(BaseModel):
    index: int
    name: str
    length: int = Field(description="Characters.")


class ContextOut(BaseModel):
    """The context of an execution in numbers, with one page of its documents."""

    n_docs: int
    total_chars: int
    offset: int
    docs: list[DocSummary]
    next_offset: int | None = Field(description="`offset` of the next page; null after the last.")


class RuntimeAccepted(ExecutionAccepted):
    sub_calls: Literal["server", "client"]
    prompt: str = Field(description="The root system prompt answerer mode sends for this corpus and budgets.")
    first_message: str = Field(description="The first user message answerer mode sends: the question, to start.")
    context: ContextOut


class PromptOut(BaseModel):
    execution_id: str
    prompt: str
    first_message: str
    context: ContextOut


class BudgetLeft(BaseModel):
    """What is left of each budget; null: unlimited."""

    turns: int
    sub_calls: int | None
    tokens: int | None
    cost_usd: float | None
    wall_seconds: float | None


class CancelOut(BaseModel):
    execution_id: str
    status: str
    cancel_requested: bool


class StepIn(BaseModel):
    model_config = _STRICT
    code: str = Field(max_length=1_000_000, description="Python code run in the execution's REPL.")


class ToolResultIn(BaseModel):
    """One tool request's answer: a ``value``, or an ``error`` (one of them, not null)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["value"], "properties": {"value": {"not": {"type": "null"}}}},
                {"required": ["error"], "properties": {"error": {"type": "string"}}},
            ]
        },
    )
    id: str = Field(max_length=200)
    value: str | list[str] | None = Field(None, description="A string; a list of strings for llm_query_batched.")
    error: str | None = Field(None, max_length=10_000, description="The client could not answer: raised in the code.")

    @model_validator(mode="after")
    def _value_or_error(self) -> ToolResultIn:
        if self.value is None and self.error is None:
            raise ValueError(f"result {self.id!r}: give a value or an error")
        return self


class ResolveIn(BaseModel):
    model_config = _STRICT
    results: list[ToolResultIn] = Field(default_factory=list, max_length=10_000)
    server_ids: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description='Ids the server resolves; ["*"]: all the others.',
    )


class StepOut(BaseModel):
    execution_id: str
    turn: int
    status: str
    waiting: bool
    success: bool | None
    observation: str | None = Field(
        description="The output as the root LM sees it in answerer mode (head + tail, RLMX_OUTPUT_MAX_CHARS); "
        "null while waiting."
    )
    turns_left: int
    last_turn: bool = Field(description="The next step is the last one: end it with FINAL(...).")
    final_request: str | None = Field(
        None,
        description="The turns are spent: the closing request (as answerer mode sends its root LM). The next "
        "step is the closing one: its FINAL(...) is the answer, and the execution ends MAX_TURNS_EXCEEDED.",
    )
    budget_left: BudgetLeft
    stdout: str | None = Field(None, description="The whole stdout: only with ?include=stdout.")
    error: str | None
    timed_out: bool
    span_log: list[dict[str, Any]] | None = Field(None, description="Only with ?include=span_log.")
    variables: list[str]
    tool_requests: list[dict[str, Any]]
    final: dict[str, Any] | None
    answer: str | None
    citations: list[dict[str, Any]]
    fields: dict[str, Any] | None


class SpanGet(BaseModel):
    """A span of a document named by ``doc_id``, or by ``session_id`` and ``doc_index``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["doc_id"], "properties": {"doc_id": {"type": "string"}}},
                {
                    "required": ["session_id", "doc_index"],
                    "properties": {"session_id": {"type": "string"}, "doc_index": {"type": "integer"}},
                },
            ]
        },
    )
    doc_id: str | None = Field(None, min_length=1, max_length=200)
    session_id: str | None = Field(None, min_length=1, max_length=200)
    doc_index: Annotated[int, Ge(0), BeforeValidator(json_int)] | None = None
    start: Annotated[int, Ge(0), BeforeValidator(json_int)]
    end: Annotated[int, Ge(0), BeforeValidator(json_int)]

    @model_validator(mode="after")
    def _names_a_document(self) -> SpanGet:
        if self.doc_id is None and (self.session_id is None or self.doc_index is None):
            raise ValueError("give doc_id, or session_id and doc_index")
        return self


class SpanRefOut(BaseModel):
    doc_id: str
    doc_name: str
    start: int
    end: int
    checksum: str
    text: str


class SpanOut(BaseModel):
    text: str
    span: SpanRefOut


class CitationIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    doc_id: str = Field(max_length=200)
    start: JsonInt
    end: JsonInt
    checksum: str = Field(max_length=200)
    text: str | None = None
    doc_name: str | None = None


class VerifyIn(BaseModel):
    model_config = _STRICT
    citations: list[CitationIn] = Field(max_length=MAX_VERIFY_CITATIONS)


class CheckOut(BaseModel):
    index: int
    doc_id: str
    start: int
    end: int
    ok: bool
    reason: str


class VerifyOut(BaseModel):
    all_ok: bool
    results: list[CheckOut]


class Health(BaseModel):
    status: str
