"""Reports from result files: a Markdown table in the shape of the RLM paper's Table 1
(score, and mean cost ± standard deviation, per method and task family), the scores per
context length, usage means, a JSON summary and PNG plots (score against context length per
method; cost distribution per method).

Statistics: the score of a group is the mean of its tasks' scores (each in [0, 1]); costs
are USD per task, mean ± sample standard deviation (0 for one task); a group with any
task of unknown cost has an unknown cost. The cited-evidence rate of a group (``docqa``) is
the mean of its rows' ``evidence_cited`` (1 when the answer's citations hold all the task's
evidence), over the rows that have one (``base`` / ``retrieval`` do not cite). Plots need matplotlib (``pip install
'rlmx[bench]'``); without it :meth:`Report.plots` returns no files and says why.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .methods import METHODS
from .tasks import format_length

__all__ = ["Group", "Report", "build_report", "load_results"]

_FAMILY_ORDER = ("sniah", "oolong", "oolong-pairs", "codeqa", "docqa")


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The result rows of JSONL files, in order."""
    rows: list[dict[str, Any]] = []
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _sorted(values: Iterable[str], order: Iterable[str]) -> list[str]:
    rank = {v: i for i, v in enumerate(order)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(rank)), v))


def _sd(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


@dataclass
class Group:
    """Aggregates of one (method, family[, length]) group."""

    method: str
    family: str
    length_tokens: int | None
    n: int
    score: float
    score_sd: float
    cost_mean: float | None
    cost_sd: float | None
    input_tokens: float
    output_tokens: float
    turns: float
    sub_calls: float
    wall_s: float
    completed: int
    truncated: int
    cached_calls: int
    evidence_cited: float | None = None

    @classmethod
    def of(cls, method: str, family: str, length: int | None, rows: list[dict[str, Any]]) -> Group:
        costs = [r["cost_usd"] for r in rows]
        known = None if any(c is None for c in costs) else [float(c) for c in costs]
        scores = [float(r["score"]) for r in rows]
        cited = [float(r["evidence_cited"]) for r in rows if r.get("evidence_cited") is not None]
        return cls(
            method=method,
            family=family,
            length_tokens=length,
            n=len(rows),
            score=statistics.fmean(scores),
            score_sd=_sd(scores),
            cost_mean=None if known is None else statistics.fmean(known),
            cost_sd=None if known is None else _sd(known),
            input_tokens=statistics.fmean(r["input_tokens"] for r in rows),
            output_tokens=statistics.fmean(r["output_tokens"] for r in rows),
            turns=statistics.fmean(r["turns"] for r in rows),
            sub_calls=statistics.fmean(r["sub_calls"] for r in rows),
            wall_s=statistics.fmean(r["wall_s"] for r in rows),
            completed=sum(r["status"] == "COMPLETED" for r in rows),
            truncated=sum(bool(r.get("truncated")) for r in rows),
            cached_calls=sum(int(r.get("cached_calls") or 0) for r in rows),
            evidence_cited=statistics.fmean(cited) if cited else None,
        )

    def cost_text(self) -> str:
        if self.cost_mean is None or self.cost_sd is None:
            return "cost unknown"
        return f"${self.cost_mean:.4f} ± {self.cost_sd:.4f}"


@dataclass
class Report:
    """Aggregated results; see the module doc."""

    rows: list[dict[str, Any]]
    methods: list[str]
    families: list[str]
    groups: list[Group]
    by_length: list[Group]
    facts: dict[str, Any] = field(default_factory=dict)

    def group(self, method: str, family: str) -> Group | None:
        return next((g for g in self.groups if g.method == method and g.family == family), None)

    def summary(self) -> dict[str, Any]:
        """The JSON summary (facts, groups, groups by length)."""
        return {
            **self.facts,
            "groups": [g.__dict__ for g in self.groups],
            "by_length": [g.__dict__ for g in self.by_length],
        }

    def markdown(self, title: str = "Benchmark results", plots: dict[str, str] | None = None) -> str:
        """The Markdown report; ``plots`` maps a caption to an image path relative to it."""
        f = self.facts
        out = [f"# {title}", ""]
        out.append(f"rlmx {', '.join(f['rlmx_versions'])}; task generator {', '.join(f['generators'])}.")
        out.append("")
        out.append("| method | root model | sub-model |")
        out.append("|---|---|---|")
        for m in self.methods:
            for root, sub in f["models"].get(m, []):
                out.append(f"| {m} | `{root}` | {f'`{sub}`' if sub else '—'} |")
        out.append("")
        seeds = "; ".join(
            f"{fam}: seed {', '.join(map(str, f['seeds'][fam]))}, lengths "
            f"{', '.join(format_length(x) for x in f['lengths'][fam])}, {f['tasks'][fam]} tasks"
            for fam in self.families
        )
        out += [f"Tasks — {seeds}.", ""]
        if any(root.startswith("baseline") for pairs in f["models"].values() for root, _ in pairs):
            out += [
                "Roots named `baseline:...` are rlmx's scripted offline policies and `scripted:oracle-labels` "
                "labels instances from the tasks' withheld labels: their scores measure the harness and the "
                "code paths, not a language model.",
                "",
            ]
        out.append("## Score and cost per task (mean cost ± standard deviation, USD)")
        out.append("")
        out.append("| method | " + " | ".join(self.families) + " |")
        out.append("|---|" + "---|" * len(self.families))
        for m in self.methods:
            cells = []
            for fam in self.families:
                g = self.group(m, fam)
                cells.append("—" if g is None else f"{g.score:.3f} ({g.cost_text()})")
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        out.append("")
        cited = [g for g in self.groups if g.evidence_cited is not None]
        if cited:
            out += ["## Cited evidence", "", "Share of answers whose citations hold all of the task's evidence.", ""]
            out += ["| method | family | tasks | score | cited evidence |", "|---|---|---|---|---|"]
            out += [
                f"| {g.method} | {g.family} | {g.n} | {g.score:.3f} | {g.evidence_cited:.3f} |"
                for g in cited
                if g.evidence_cited is not None
            ]
            out.append("")
        out.append("## Score by context length")
        out.append("")
        out.append("| family | length (tokens) | " + " | ".join(self.methods) + " |")
        out.append("|---|---|" + "---|" * len(self.methods))
        keys = sorted({(g.family, g.length_tokens or 0) for g in self.by_length}, key=self._fam_len)
        for fam, length in keys:
            cells = []
            for m in self.methods:
                g = next((x for x in self.by_length if (x.method, x.family, x.length_tokens) == (m, fam, length)), None)
                cells.append("—" if g is None else f"{g.score:.3f}" + (f" ({g.truncated} cut)" if g.truncated else ""))
            out.append(f"| {fam} | {format_length(length)} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("## Usage per task (means)")
        out.append("")
        cols = "method | family | tasks | completed | input tokens | output tokens | turns | sub-calls | seconds"
        out.append(f"| {cols} |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for g in self.groups:
            out.append(
                f"| {g.method} | {g.family} | {g.n} | {g.completed} | {g.input_tokens:,.0f} | "
                f"{g.output_tokens:,.0f} | {g.turns:.1f} | {g.sub_calls:.1f} | {g.wall_s:.2f} |"
            )
        cached = sum(g.cached_calls for g in self.groups)
        if cached:
            out += ["", f"{cached} LM calls were LLM-cache hits (charged 0 USD): costs above exclude them."]
        for caption, path in (plots or {}).items():
            out += ["", f"![{caption}]({path})"]
        out.append("")
        return "\n".join(out)

    def _fam_len(self, key: tuple[str, int]) -> tuple[int, int]:
        fam, length = key
        return (self.families.index(fam) if fam in self.families else 99, length)

    def plots(self, folder: str | Path, prefix: str = "") -> dict[str, Path]:
        """Write ``score_vs_length.png`` and ``cost_distribution.png`` (with ``prefix``) into
        ``folder``; returns caption → path. Empty when matplotlib is missing."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return {}
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        made: dict[str, Path] = {}
        n = len(self.families)
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
        styles = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-")]
        for ax, fam in zip(axes[0], self.families, strict=True):
            for i, m in enumerate(self.methods):
                pts = sorted(
                    (g.length_tokens or 0, g.score) for g in self.by_length if (g.family, g.method) == (fam, m)
                )
                if pts:
                    marker, line = styles[i % len(styles)]
                    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                    ax.plot(xs, ys, marker=marker, linestyle=line, alpha=0.8, label=m)
            ax.set_xscale("log", base=2)
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(fam)
            ax.set_xlabel("context length (tokens)")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("score")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        made["Score against context length"] = folder / f"{prefix}score_vs_length.png"
        fig.savefig(made["Score against context length"], dpi=110)
        plt.close(fig)

        costs_known = all(r["cost_usd"] is not None for r in self.rows)
        use_cost = costs_known and any(float(r["cost_usd"]) > 0 for r in self.rows)
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
        for ax, fam in zip(axes[0], self.families, strict=True):
            data, labels = [], []
            for m in self.methods:
                rs = [r for r in self.rows if (r["family"], r["method"]) == (fam, m)]
                if rs:
                    if use_cost:
                        data.append([float(r["cost_usd"]) for r in rs])
                    else:
                        data.append([r["input_tokens"] + r["output_tokens"] for r in rs])
                    labels.append(m)
            if data:
                ax.boxplot(data, showfliers=True)
                ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, fontsize=8)
            ax.set_title(fam)
            if not use_cost:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("cost per task (USD)" if use_cost else "tokens per task (input + output)")
        if not use_cost:
            fig.suptitle("Cost distribution: every call cost 0 USD (offline), so tokens are shown", fontsize=9)
        fig.tight_layout()
        made["Cost distribution per task"] = folder / f"{prefix}cost_distribution.png"
        fig.savefig(made["Cost distribution per task"], dpi=110)
        plt.close(fig)
        return made


def build_report(rows: list[dict[str, Any]]) -> Report:
    """Aggregate result rows (see :mod:`rlmx.bench.runner` for their fields)."""
    if not rows:
        raise ValueError("no results to report: run `rlmx bench run` first")
    methods = _sorted((r["method"] for r in rows), METHODS)
    families = _sorted((r["family"] for r in rows), _FAMILY_ORDER)
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    by_len: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    models: dict[str, set[tuple[str, str]]] = defaultdict(set)
    seeds: dict[str, set[int]] = defaultdict(set)
    lengths: dict[str, set[int]] = defaultdict(set)
    tasks: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by[(r["method"], r["family"])].append(r)
        by_len[(r["method"], r["family"], r["length_tokens"])].append(r)
        models[r["method"]].add((r["root_model"], r.get("sub_model") or ""))
        seeds[r["family"]].add(r["seed"])
        lengths[r["family"]].add(r["length_tokens"])
        tasks[r["family"]].add(r["task_id"])
    groups = [Group.of(m, f, None, by[(m, f)]) for m in methods for f in families if (m, f) in by]
    by_length = [Group.of(m, f, n, rs) for (m, f, n), rs in sorted(by_len.items())]
    facts = {
        "rlmx_versions": sorted({str(r.get("rlmx_version")) for r in rows}),
        "generators": sorted({str(r.get("generator")) for r in rows}),
        "models": {m: sorted(v) for m, v in models.items()},
        "seeds": {f: sorted(v) for f, v in seeds.items()},
        "lengths": {f: sorted(v) for f, v in lengths.items()},
        "tasks": {f: len(v) for f, v in tasks.items()},
        "results": len(rows),
    }
    return Report(rows, methods, families, groups, by_length, facts)
