"""Pre-run cost estimate of an execution tree: tokens and USD, without calling a model.

Pure functions over sizes (characters), budgets, windows and prices. The result has an
**expected range** (``low`` and ``high``: a retrieval-shaped run and an aggregation-shaped
run, meant to bracket the middle half of runs) and the **worst case the budgets allow**.

Formula (tokens ≈ characters / 4, the rule of :func:`rlmx.lm.base.estimate_tokens`):

* root turn ``t`` (1-based) reads ``S + (t - 1) * (a + o)`` input tokens, at most the root
  window ``W_root``: ``S`` is the system prompt plus the question (measured here: the exact
  prompt text), ``a`` the root's output per turn, ``o`` the observation per turn (at most
  ``output_max_chars / 4``) — the conversation grows by one reply and one observation a
  turn. Root input over ``T`` turns: ``sum(min(W_root, S + (t - 1) * (a + o)) for t in 1..T)``;
  root output ``T * a``.
* ``N`` sub-calls each read ``s_in`` and write ``s_out`` tokens.
* USD = tokens × the price table (:class:`~rlmx.lm.pricing.PriceTable`), root and sub
  priced separately; an unknown price gives ``usd = None`` and a note, never zero.

Scenario figures (``T``, ``N``, ``a``, ``o``, ``s_in``, ``s_out``) and their sources:

* ``low``: ``T = 3`` turns (look, read, answer), ``N = 2`` sub-calls of ≈ 2,000 input and
  200 output tokens, ``a = 500``, ``o = 500``;
* ``high``: ``T = 10`` turns, ``N = ceil(C / chunk)`` — one pass over the corpus of ``C``
  characters in the chunk size the root prompt advises (:func:`.prompting.chunk_chars`) —
  each reading a full chunk plus ≈ 200 tokens of instructions and writing 1,000,
  ``a = 2,000`` (reasoning models bill hidden reasoning as output), ``o`` at its cap.
  Both are capped by the budgets.
* Measured (``rlmx bench run`` with the offline ``baseline`` policies, see
  ``docs/benchmarks.md``, 18 tasks): root turns read 1,117–4,413 input tokens (median
  1,330) and wrote 42–1,892 output tokens (median 380); needle tasks made 0 sub-calls;
  aggregation tasks made exactly one pass over the context (7 sub-calls at 31K characters, 56 at 252K, chunks of ≈ 4,500
  characters) — the ``high`` scenario's shape. The baseline policy is not a frontier model:
  the turn counts and per-turn outputs above are assumptions, not measurements.
* Paper (Zhang, Kraska & Khattab, arXiv 2512.24601 v1, Table 1, mean ± standard deviation of
  API cost per query; Figure 3 plots the 25th–95th percentiles: medians comparable to the
  base model, a long tail from long trajectories): :data:`PAPER_COST_PER_QUERY`, reported
  with every estimate as a cross-check (the paper's GPT-5 runs use GPT-5-mini sub-calls).

Worst case: ``max_turns + 1`` root calls (the last is the closing request) each at
``min(W_root, S + (t - 1) * (a_max + o_max))``, plus ``max_sub_calls`` sub-calls each at the
sub-LM's prompt size (``sub_lm_chars / 4`` tokens) — or, while ``rlm_query`` may start
children (``max_depth >= 1``), a child execution of up to ``max_turns + 1`` calls on the
sub-LM — then capped by ``max_total_tokens`` and ``max_cost_usd``. No sub-call budget and
no token or cost budget: unbounded (``total_tokens = None``). Budgets are checked before each
call, so calls already in flight when one is reached can overshoot it by at most one call
each (``max_concurrency`` of them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..lm.pricing import PriceTable
from ..types import Budgets
from .prompting import chunk_chars

__all__ = [
    "PAPER_COST_PER_QUERY",
    "Estimate",
    "EstimateInputs",
    "Scenario",
    "estimate_cost",
    "estimate_lines",
    "tokens_of_chars",
]

PAPER_COST_PER_QUERY: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "GPT-5": {
        "RLM": {
            "CodeQA": (0.11, 0.10),
            "BrowseComp+ (1K)": (0.99, 1.22),
            "OOLONG": (0.43, 0.85),
            "OOLONG-Pairs": (0.33, 0.20),
        },
        "RLM (no sub-calls)": {
            "CodeQA": (0.18, 0.56),
            "BrowseComp+ (1K)": (0.44, 0.90),
            "OOLONG": (0.37, 0.42),
            "OOLONG-Pairs": (0.69, 1.16),
        },
        "Base model": {"CodeQA": (0.13, 0.07), "OOLONG": (0.14, 0.02), "OOLONG-Pairs": (0.16, 0.10)},
        "Summary agent": {
            "CodeQA": (1.31, 1.46),
            "BrowseComp+ (1K)": (0.57, 0.10),
            "OOLONG": (0.13, 0.01),
            "OOLONG-Pairs": (0.13, 0.09),
        },
        "CodeAct (+ BM25)": {
            "CodeQA": (0.06, 0.08),
            "BrowseComp+ (1K)": (0.71, 1.20),
            "OOLONG": (0.61, 1.06),
            "OOLONG-Pairs": (0.75, 0.43),
        },
    },
    "Qwen3-Coder-480B": {
        "RLM": {
            "CodeQA": (0.92, 1.23),
            "BrowseComp+ (1K)": (0.84, 0.63),
            "OOLONG": (0.61, 0.49),
            "OOLONG-Pairs": (1.02, 0.52),
        },
        "RLM (no sub-calls)": {
            "CodeQA": (0.18, 0.58),
            "BrowseComp+ (1K)": (0.82, 0.69),
            "OOLONG": (0.32, 0.13),
            "OOLONG-Pairs": (1.77, 1.23),
        },
    },
}
"""USD per query, ``(mean, standard deviation)``, from the paper's Table 1 (arXiv 2512.24601
v1; task lengths: CodeQA 23K–4.2M tokens, BrowseComp+ (1K) 6M–11M, OOLONG 131K,
OOLONG-Pairs 32K). Not a model of this corpus: a reference for the order of magnitude."""

LOW = {"turns": 3, "sub_calls": 2, "root_out": 500, "observation": 500, "sub_in": 2_000, "sub_out": 200}
HIGH = {"turns": 10, "root_out": 2_000, "sub_instructions": 200, "sub_out": 1_000}
WORST_ROOT_OUT = 8_000
"""Root output tokens per turn assumed in the worst case when the root client sets no
``max_tokens`` (reasoning included)."""
WORST_SUB_OUT = 4_000
"""Sub-call output tokens assumed in the worst case when the sub client sets no ``max_tokens``."""


def tokens_of_chars(chars: int) -> int:
    """≈ 4 characters a token (DESIGN.md), at least 0."""
    return max(0, (chars + 3) // 4)


@dataclass(frozen=True)
class EstimateInputs:
    """What an estimate reads. Characters: ``corpus_chars`` (all documents),
    ``prompt_chars`` (the root's turn-1 system prompt plus first user message),
    ``output_max_chars`` (observation cap), ``sub_lm_chars`` (one sub-LM prompt). Tokens:
    ``root_window`` / ``sub_window`` (input windows), ``root_max_tokens`` /
    ``sub_max_tokens`` (output caps of the clients, None when unset)."""

    corpus_chars: int
    documents: int
    prompt_chars: int
    root_spec: str
    sub_spec: str
    budgets: Budgets
    output_max_chars: int
    sub_lm_chars: int
    root_window: int
    sub_window: int
    root_max_tokens: int | None = None
    sub_max_tokens: int | None = None


@dataclass
class Scenario:
    """Tokens of one scenario (root and sub-calls apart) and USD (None when a price is
    unknown, or, for ``total_tokens``, None when unbounded)."""

    turns: int
    sub_calls: int | None
    root_input_tokens: int
    root_output_tokens: int
    sub_input_tokens: int | None
    sub_output_tokens: int | None
    total_tokens: int | None
    usd: float | None
    capped_by: list[str] = field(default_factory=list)


@dataclass
class Estimate:
    """The result of :func:`estimate_cost`; :meth:`to_dict` is its JSON shape (CLI
    ``--estimate --json``, ``RLM.estimate``, the service's ``dry_run``)."""

    corpus: dict[str, int]
    models: dict[str, str]
    prices_known: dict[str, bool]
    low: Scenario
    high: Scenario
    worst: Scenario
    notes: list[str]
    paper: dict[str, dict[str, dict[str, tuple[float, float]]]] = field(default_factory=lambda: PAPER_COST_PER_QUERY)

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "models": self.models,
            "prices_known": self.prices_known,
            "expected": {"low": asdict(self.low), "high": asdict(self.high)},
            "worst_case": asdict(self.worst),
            "notes": self.notes,
            "paper_cost_per_query_usd": {
                m: {meth: {task: {"mean": mv, "sd": sd} for task, (mv, sd) in t.items()} for meth, t in ms.items()}
                for m, ms in self.paper.items()
            },
            "method": "docs/estimate-and-redaction.md; rlmx.engine.estimate",
        }


def _root_input(start: int, growth: int, turns: int, window: int) -> int:
    return sum(min(window, start + (t - 1) * growth) for t in range(1, turns + 1))


def _scenario(
    inp: EstimateInputs,
    prices: PriceTable,
    *,
    turns: int,
    sub_calls: int,
    root_out: int,
    observation: int,
    sub_in: int,
    sub_out: int,
) -> Scenario:
    b = inp.budgets
    capped: list[str] = []
    if turns > b.max_turns:
        turns, capped = b.max_turns, [*capped, "max_turns"]
    if b.max_sub_calls is not None and sub_calls > b.max_sub_calls:
        sub_calls, capped = b.max_sub_calls, [*capped, "max_sub_calls"]
    start = tokens_of_chars(inp.prompt_chars)
    r_in = _root_input(start, root_out + observation, turns, inp.root_window)
    r_out = turns * root_out
    s_in, s_out = sub_calls * min(sub_in, inp.sub_window), sub_calls * sub_out
    return _priced(inp, prices, turns, sub_calls, r_in, r_out, s_in, s_out, capped)


def _priced(
    inp: EstimateInputs,
    prices: PriceTable,
    turns: int,
    sub_calls: int | None,
    r_in: int,
    r_out: int,
    s_in: int | None,
    s_out: int | None,
    capped: list[str],
) -> Scenario:
    """Apply the tree-wide token and cost caps and price the tokens. Tokens over
    ``max_total_tokens`` are scaled down to it (USD in proportion; when unbounded, the cap
    priced at the dearest per-token price of the two models, an upper bound)."""
    b = inp.budgets
    total = None if s_in is None or s_out is None else r_in + r_out + s_in + s_out
    root_usd = prices.cost(inp.root_spec, r_in, r_out)
    sub_usd = prices.cost(inp.sub_spec, s_in, s_out) if s_in is not None and s_out is not None else None
    usd = root_usd + sub_usd if root_usd is not None and sub_usd is not None else None
    rp, sp = prices.price(inp.root_spec), prices.price(inp.sub_spec)
    if b.max_total_tokens is not None and (total is None or total > b.max_total_tokens):
        if total is not None and usd is not None:
            usd *= b.max_total_tokens / total
        elif total is None and rp is not None and sp is not None:
            dearest = max(rp.input_per_mtok, rp.output_per_mtok, sp.input_per_mtok, sp.output_per_mtok)
            usd = b.max_total_tokens * dearest / 1e6
        total, capped = b.max_total_tokens, [*capped, "max_total_tokens"]
    if b.max_cost_usd is not None and rp is not None and sp is not None and (usd is None or usd > b.max_cost_usd):
        usd, capped = b.max_cost_usd, [*capped, "max_cost_usd"]
    return Scenario(turns, sub_calls, r_in, r_out, s_in, s_out, total, _round(usd), capped)


def _round(usd: float | None) -> float | None:
    return None if usd is None else round(usd, 6)


def estimate_cost(inp: EstimateInputs, prices: PriceTable) -> Estimate:
    """The expected range and the worst case of one execution tree (formula and sources:
    module docstring). Never calls a model. Tokens are estimates at ≈ 4 characters a token."""
    b = inp.budgets
    chunk = chunk_chars(inp.sub_lm_chars)
    subs_allowed = b.max_sub_calls != 0
    low = _scenario(
        inp,
        prices,
        turns=LOW["turns"],
        sub_calls=LOW["sub_calls"] if subs_allowed else 0,
        root_out=LOW["root_out"],
        observation=LOW["observation"],
        sub_in=min(LOW["sub_in"], tokens_of_chars(inp.corpus_chars) + HIGH["sub_instructions"]),
        sub_out=LOW["sub_out"],
    )
    one_pass = math.ceil(inp.corpus_chars / chunk) if inp.corpus_chars else 0
    high = _scenario(
        inp,
        prices,
        turns=HIGH["turns"],
        sub_calls=one_pass if subs_allowed else 0,
        root_out=HIGH["root_out"],
        observation=tokens_of_chars(inp.output_max_chars),
        sub_in=tokens_of_chars(min(chunk, inp.corpus_chars)) + HIGH["sub_instructions"],
        sub_out=HIGH["sub_out"],
    )
    worst = _worst(inp, prices)
    notes = [
        "tokens are estimated at about 4 characters a token; providers count their own",
        "expected: low = a retrieval-shaped run, high = one pass over the corpus in the advised chunks "
        f"({chunk:,} characters); real runs vary widely (the paper's Figure 3: a long tail of long trajectories)",
    ]
    known = {"root": prices.price(inp.root_spec) is not None, "sub": prices.price(inp.sub_spec) is not None}
    for role, ok in known.items():
        if not ok:
            spec = inp.root_spec if role == "root" else inp.sub_spec
            notes.append(f"USD unknown: no price for {spec} (add it to a prices file, RLMX_PRICES_FILE)")
    if worst.total_tokens is None:
        notes.append(
            "worst case unbounded: no sub-call, token or cost budget "
            "(set --max-sub-calls, --max-tokens or --max-cost-usd)"
        )
    return Estimate(
        corpus={
            "documents": inp.documents,
            "characters": inp.corpus_chars,
            "tokens": tokens_of_chars(inp.corpus_chars),
            "prompt_tokens": tokens_of_chars(inp.prompt_chars),
        },
        models={"root": inp.root_spec, "sub": inp.sub_spec},
        prices_known=known,
        low=low,
        high=high,
        worst=worst,
        notes=notes,
    )


def _worst(inp: EstimateInputs, prices: PriceTable) -> Scenario:
    """Every turn used, every reply at its cap, every sub-call at the sub-LM's prompt size
    (or a full child execution while children are allowed), capped by the budgets."""
    b = inp.budgets
    calls = b.max_turns + 1  # the closing request after the last turn
    a_max = inp.root_max_tokens or WORST_ROOT_OUT
    o_max = tokens_of_chars(inp.output_max_chars)
    start = tokens_of_chars(inp.prompt_chars)
    r_in = _root_input(start, a_max + o_max, calls, inp.root_window)
    r_out = calls * a_max
    capped = ["max_turns"]
    if b.max_sub_calls is None:
        s_in = s_out = None
        n: int | None = None
    else:
        n = b.max_sub_calls
        s_out_each = inp.sub_max_tokens or WORST_SUB_OUT
        if b.max_depth >= 1:  # a sub-call may be a child execution on the sub-LM
            s_in_each = _root_input(start, s_out_each + o_max, calls, inp.sub_window)
            s_out_each *= calls
        else:
            s_in_each = min(inp.sub_window, tokens_of_chars(inp.sub_lm_chars) + HIGH["sub_instructions"])
        s_in, s_out = n * s_in_each, n * s_out_each
        capped.append("max_sub_calls")
    return _priced(inp, prices, calls, n, r_in, r_out, s_in, s_out, capped)


def _usd_text(usd: float | None) -> str:
    return "USD unknown" if usd is None else f"${usd:,.4f}"


def estimate_lines(est: Estimate) -> list[str]:
    """A plain-text summary of ``est`` (what ``rlmx ask --estimate`` prints)."""
    c = est.corpus
    lines = [
        f"estimate (no model called): {c['documents']} documents, {c['characters']:,} characters "
        f"(≈ {c['tokens']:,} tokens); root {est.models['root']} · sub {est.models['sub']}",
    ]
    for name, s in (("expected low ", est.low), ("expected high", est.high), ("worst case   ", est.worst)):
        subs = "unlimited" if s.sub_calls is None else f"{s.sub_calls:,}"
        sub_tok = "unbounded" if s.sub_input_tokens is None else f"{s.sub_input_tokens + (s.sub_output_tokens or 0):,}"
        total = "unbounded" if s.total_tokens is None else f"{s.total_tokens:,}"
        cap = f" (capped by {', '.join(s.capped_by)})" if s.capped_by else ""
        lines.append(
            f"{name}: {s.turns} turns, root {s.root_input_tokens + s.root_output_tokens:,} tokens, "
            f"{subs} sub-calls {sub_tok} tokens; total {total} tokens, {_usd_text(s.usd)}{cap}"
        )
    lines += [f"note: {n}" for n in est.notes]
    return lines
