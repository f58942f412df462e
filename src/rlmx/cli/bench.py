"""``rlmx bench``: generate tasks, run methods side by side, report (see ``rlmx.bench``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["bench"]


def _fail(message: str) -> None:
    click.echo(f"rlmx: {message}", err=True)
    sys.exit(1)


@click.group()
def bench() -> None:
    """Benchmarks: the RLM paper's task families offline, methods side by side, reports."""


@bench.command("generate")
@click.argument("task", type=click.Choice(["sniah", "oolong", "oolong-pairs", "codeqa", "docqa"]))
@click.option("--n", "n", default=10, show_default=True, help="Tasks per length (docqa: per --source folder).")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="JSONL file to write.")
@click.option("--lengths", default=None, help="Context lengths in tokens, e.g. 8k,64k,1m (k = 1,024).")
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False), help="Shared data folder.")
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Path(file_okay=False),
    help="codeqa: code base (default: stdlib). docqa: a documentation folder (repeatable).",
)
@click.option("--home", default=None, type=click.Path(file_okay=False), help="docqa: the store (default: RLMX_HOME).")
def generate_cmd(
    task: str,
    n: int,
    seed: int,
    out: str,
    lengths: str | None,
    data_dir: str | None,
    sources: tuple[str, ...],
    home: str | None,
) -> None:
    """Write N tasks per length of family TASK, deterministic from --seed.

    docqa: N questions per --source folder (the SQLite documentation unpacked by
    `sh scripts/fetch-docqa.sh DIR`, or Python source), ground truth computed from the files
    as rlmx ingests them (the folders are ingested into the store)."""
    from ..bench import generate, parse_lengths, write_tasks
    from ..bench.docqa import FETCH_HINT
    from ..errors import RlmxError

    if task == "docqa" and not sources:
        raise click.UsageError(f"docqa needs --source DIR (repeatable); get the SQLite documentation with {FETCH_HINT}")
    try:
        tasks = generate(
            task,
            n,
            seed,
            parse_lengths(lengths) if lengths else None,
            data_dir=data_dir,
            source=list(sources),
            home=home,
        )
    except (RlmxError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
        return
    count = write_tasks(tasks, out)
    corpora = {t.corpus_path or t.id: t.context_chars for t in tasks}  # a docqa folder counts once
    chars = sum(corpora.values())
    click.echo(f"wrote {count} {task} tasks ({chars / 1e6:.1f} M context characters) to {out}")


@bench.command("run")
@click.argument("taskfiles", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--methods", default="base,retrieval,rlm-d1", show_default=True, help="Comma-separated methods.")
@click.option("--model", default=None, help="Root model spec (default: as `rlmx ask`; offline: baseline).")
@click.option("--sub-model", default=None, help="Sub-LM spec, or 'oracle' (oolong labels from the task).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Results JSONL file.")
@click.option("--limit", default=None, type=int, help="Only the first N tasks of each file.")
@click.option("--max-turns", default=20, show_default=True)
@click.option("--max-sub-calls", default=None, type=int)
@click.option("--max-tokens", "max_total_tokens", default=None, type=int, help="Token budget per task.")
@click.option("--max-cost-usd", default=None, type=float, help="USD budget per task.")
@click.option("--max-seconds", default=None, type=float, help="Wall-clock budget per task.")
@click.option("--window-tokens", default=None, type=int, help="base: the model's window (default: known or 131072).")
@click.option("--top-k", default=10, show_default=True, help="retrieval: BM25 passages.")
@click.option("--max-output-tokens", default=None, type=int, help="base/retrieval: answer token cap.")
@click.option("--max-concurrency", default=None, type=int, help="Concurrent LM calls per task.")
@click.option("--jobs", default=1, show_default=True, help="Tasks run at once.")
@click.option("--home", default=None, type=click.Path(file_okay=False), help="Store folder (default: RLMX_HOME).")
@click.option("--no-cache", is_flag=True, help="Bypass the LLM cache.")
@click.option("--resume", is_flag=True, help="Keep results already in --out and skip them.")
@click.option("--quiet", is_flag=True)
def run_cmd(
    taskfiles: tuple[str, ...],
    methods: str,
    model: str | None,
    sub_model: str | None,
    out: str,
    limit: int | None,
    max_turns: int,
    max_sub_calls: int | None,
    max_total_tokens: int | None,
    max_cost_usd: float | None,
    max_seconds: float | None,
    window_tokens: int | None,
    top_k: int,
    max_output_tokens: int | None,
    max_concurrency: int | None,
    jobs: int,
    home: str | None,
    no_cache: bool,
    resume: bool,
    quiet: bool,
) -> None:
    """Run every task of TASKFILES with each method; write one JSON result per line to --out."""
    from ..bench import BenchRunner, RunConfig, parse_methods, read_tasks
    from ..bench.runner import print_progress
    from ..errors import RlmxError
    from ..types import Budgets

    try:
        budgets = Budgets(
            max_turns=max_turns,
            max_sub_calls=max_sub_calls,
            max_total_tokens=max_total_tokens,
            max_cost_usd=max_cost_usd,
            max_wall_seconds=max_seconds,
        )
        config = RunConfig(
            methods=parse_methods(methods),
            model=model,
            sub_model=sub_model,
            budgets=budgets,
            home=Path(home) if home else None,
            cache=not no_cache,
            window_tokens=window_tokens,
            top_k=top_k,
            max_output_tokens=max_output_tokens,
            max_concurrency=max_concurrency,
            jobs=jobs,
        )
        runner = BenchRunner(config, on_result=None if quiet else print_progress)
        tasks = []
        for f in taskfiles:
            tasks += list(read_tasks(f))[:limit]
        if not quiet:
            click.echo(f"{len(tasks)} tasks × {len(config.methods)} methods; root {runner.root_spec}", err=True)
        rows = runner.run(tasks, Path(out), resume=resume)
    except (RlmxError, ValueError) as e:
        _fail(str(e))
        return
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r["score"])
    for m, xs in by.items():
        click.echo(f"{m:<10} {len(xs):>4} results  mean score {sum(xs) / len(xs):.3f}")
    click.echo(f"results in {out}")


@bench.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", default="bench-report.md", show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False), help="Default: --out with .json.")
@click.option("--plots", "plots_dir", default=None, type=click.Path(file_okay=False), help="Default: beside --out.")
@click.option("--title", default="Benchmark results", show_default=True)
@click.option("--no-plots", is_flag=True)
def report_cmd(
    results: tuple[str, ...], out: str, json_out: str | None, plots_dir: str | None, title: str, no_plots: bool
) -> None:
    """Write a Markdown report, a JSON summary and PNG plots from RESULTS files."""
    import os

    from ..bench import build_report, load_results

    try:
        report = build_report(load_results(results))
    except (ValueError, KeyError, json.JSONDecodeError) as e:
        _fail(f"cannot report: {e}")
        return
    md = Path(out)
    md.parent.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    if not no_plots:
        folder = Path(plots_dir) if plots_dir else md.parent
        made = report.plots(folder, prefix=f"{md.stem}-")
        if not made:
            click.echo("no plots: matplotlib is not installed (pip install 'rlmx[bench]')", err=True)
        plots = {cap: Path(os.path.relpath(p, md.parent)).as_posix() for cap, p in made.items()}
    md.write_text(report.markdown(title, plots), encoding="utf-8")
    js = Path(json_out) if json_out else md.with_suffix(".json")
    js.write_text(json.dumps(report.summary(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"wrote {md}, {js}" + "".join(f", {p}" for p in plots.values()))
