"""The official ``rlms`` library's result types, with the same fields, and its logger.

:class:`RLMChatCompletion` (``root_model``, ``prompt``, ``response``, ``usage_summary``,
``execution_time`` in seconds, ``metadata``, ``error``), :class:`UsageSummary`
(``model_usage_summaries`` by model name; ``total_cost`` in USD or None,
``total_input_tokens``, ``total_output_tokens``) and :class:`ModelUsageSummary`
(``total_calls``, ``total_input_tokens``, ``total_output_tokens``, ``total_cost``), each with
``to_dict``/``from_dict`` as there. :class:`RLMLogger` keeps the trajectory of each
completion (``completion.metadata``) and, with ``log_dir``, appends it to a JSONL file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ModelUsageSummary", "RLMChatCompletion", "RLMLogger", "UsageSummary", "usage_from_trace"]


@dataclass
class ModelUsageSummary:
    """One model's calls and tokens; ``total_cost`` in USD, None when unknown."""

    total_calls: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "total_calls": self.total_calls,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
        }
        if self.total_cost is not None:
            out["total_cost"] = self.total_cost
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelUsageSummary:
        return cls(
            total_calls=int(data.get("total_calls") or 0),
            total_input_tokens=int(data.get("total_input_tokens") or 0),
            total_output_tokens=int(data.get("total_output_tokens") or 0),
            total_cost=data.get("total_cost"),
        )


@dataclass
class UsageSummary:
    """Usage by model name (the name without its ``provider:`` prefix, as the official
    library keys it)."""

    model_usage_summaries: dict[str, ModelUsageSummary]

    @property
    def total_cost(self) -> float | None:
        costs = [s.total_cost for s in self.model_usage_summaries.values() if s.total_cost is not None]
        return sum(costs) if costs else None

    @property
    def total_input_tokens(self) -> int:
        return sum(s.total_input_tokens for s in self.model_usage_summaries.values())

    @property
    def total_output_tokens(self) -> int:
        return sum(s.total_output_tokens for s in self.model_usage_summaries.values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_usage_summaries": {m: s.to_dict() for m, s in self.model_usage_summaries.items()}}
        if self.total_cost is not None:
            out["total_cost"] = self.total_cost
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageSummary:
        items = (data.get("model_usage_summaries") or {}).items()
        return cls(model_usage_summaries={m: ModelUsageSummary.from_dict(s) for m, s in items})


@dataclass
class RLMChatCompletion:
    """The result of :meth:`rlmx.compat.rlms.RLM.completion`. ``response``: the final answer;
    ``execution_time``: wall seconds; ``metadata``: the trajectory when a logger is given
    (``{"run_metadata", "execution_id", "status", "trace"}``, the trace as
    :func:`rlmx.engine.trace.load_trace` gives it); ``error``: set when the execution ended
    FAILED or CANCELLED (``response`` then holds the best answer so far, possibly empty)."""

    root_model: str
    prompt: str | dict[str, Any] | list[Any]
    response: str
    usage_summary: UsageSummary
    execution_time: float
    metadata: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "root_model": self.root_model,
            "prompt": self.prompt,
            "response": self.response,
            "usage_summary": self.usage_summary.to_dict(),
            "execution_time": self.execution_time,
        }
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RLMChatCompletion:
        return cls(
            root_model=data.get("root_model", ""),
            prompt=data.get("prompt", ""),
            response=data.get("response", ""),
            usage_summary=UsageSummary.from_dict(data.get("usage_summary") or {}),
            execution_time=float(data.get("execution_time") or 0.0),
            metadata=data.get("metadata"),
            error=data.get("error"),
        )


def _name(spec: str) -> str:
    return spec.split(":", 1)[1] if ":" in spec else spec


def usage_from_trace(trace: dict[str, Any]) -> UsageSummary:
    """Per-model usage of a trace (:func:`rlmx.engine.trace.load_trace`), children included:
    each turn is a call of the execution's root model, each sub-call of its ``model``
    (an ``rlm_query`` sub-call's tokens are its child's turns, counted there)."""
    acc: dict[str, list[Any]] = {}

    def add(model: str, calls: int, tin: int, tout: int, cost: float | None) -> None:
        row = acc.setdefault(_name(model), [0, 0, 0, None])
        row[0] += calls
        row[1] += tin
        row[2] += tout
        if cost is not None:
            row[3] = (row[3] or 0.0) + cost

    def walk(t: dict[str, Any]) -> None:
        root = str(t.get("execution", {}).get("root_model") or "unknown")
        for turn in t.get("turns", []):
            tin, tout = int(turn.get("input_tokens") or 0), int(turn.get("output_tokens") or 0)
            add(str(turn.get("root_model") or root), 1, tin, tout, turn.get("cost_usd"))
        for s in t.get("subcalls", []):
            if s.get("child_id"):
                continue
            tin, tout = int(s.get("input_tokens") or 0), int(s.get("output_tokens") or 0)
            add(str(s.get("model") or "unknown"), 1, tin, tout, s.get("cost_usd"))
        for child in t.get("children", []):
            walk(child)

    walk(trace)
    return UsageSummary({m: ModelUsageSummary(r[0], r[1], r[2], r[3]) for m, r in acc.items()})


@dataclass
class RLMLogger:
    """Captures each completion's trajectory (``completion.metadata``, the last one in
    :meth:`get_trajectory`); with ``log_dir``, also appends it as one JSON line to
    ``log_dir/rlmx_<UTC timestamp>.jsonl`` (one file per logger)."""

    log_dir: str | Path | None = None
    trajectories: list[dict[str, Any]] = field(default_factory=list)
    _path: Path | None = None

    @property
    def log_file_path(self) -> Path | None:
        """The JSONL file (None without ``log_dir``)."""
        if self.log_dir is None:
            return None
        if self._path is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            self._path = Path(self.log_dir) / f"rlmx_{stamp}.jsonl"
        return self._path

    def log_trajectory(self, trajectory: dict[str, Any]) -> None:
        """Keep ``trajectory`` and append it to the log file when there is one."""
        self.trajectories.append(trajectory)
        path = self.log_file_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(trajectory, ensure_ascii=False, default=str) + "\n")

    def get_trajectory(self) -> dict[str, Any] | None:
        """The last completion's trajectory, or None before any."""
        return self.trajectories[-1] if self.trajectories else None
