"""The ``rlmx`` command line.

Exit codes: 0 success (COMPLETED; verify: every citation matches); 1 an rlmx error (bad
configuration, provider failure, nothing ingested, REPL failure; verify: a citation does
not match); 2 usage error (bad arguments or input, or a malformed ``RLMX_`` variable); 3
MAX_TURNS_EXCEEDED; 4 BUDGET_EXCEEDED; 5 FAILED or CANCELLED.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from .. import __version__
from ..errors import RlmxError
from .lazy import LazyGroup
from .summary import summary_lines

__all__ = ["main"]

err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(e: RlmxError) -> None:
    err.print(f"[bold red]rlmx:[/] {e}", markup=True)
    sys.exit(1)


_SERVICE_COMMANDS = {"serve", "worker", "keys", "mcp"}
"""Subcommands that read the service's settings (``ServiceSettings``) too."""


def _check_settings(command: str | None) -> None:
    """Exit 2 with the message, not a traceback, when an ``RLMX_`` variable is malformed:
    the engine's settings, the sandbox policy's, and the service's for its commands."""
    from pydantic import ValidationError

    from ..config import Settings, settings_error
    from ..sandbox.policy import SandboxPolicy

    try:
        Settings()
        try:
            SandboxPolicy()
        except ValidationError as e:
            raise settings_error(e, SandboxPolicy) from None
        if command in _SERVICE_COMMANDS:
            from ..service.settings import ServiceSettings

            ServiceSettings()
    except RlmxError as e:
        err.print(f"[bold red]rlmx:[/] {e}", markup=True)
        sys.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rlmx")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """rlmx — Recursive Language Models: ask questions over corpora far larger than a context window."""
    _check_settings(ctx.invoked_subcommand)


def _split_args(args: tuple[str, ...], question_file: str | None) -> tuple[list[str], str]:
    if question_file is None:
        if len(args) < 2:
            raise click.UsageError("give one or more PATHs and then the QUESTION (or --question-file)")
        return list(args[:-1]), args[-1]
    if len(args) >= 2 and not Path(args[-1]).exists():
        return list(args[:-1]), args[-1]  # a literal question wins over --question-file
    if not args:
        raise click.UsageError("give one or more PATHs")
    return list(args), Path(question_file).read_text(encoding="utf-8").strip()


def _summarise_failures(failures: list[Any], shown: int = 5) -> None:
    """One line per failure reason (with a count), then a few example paths."""
    by_reason: dict[str, list[str]] = {}
    for f in failures:
        by_reason.setdefault(f.reason.split(":")[0], []).append(f.source_path)
    for reason, paths in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        more = f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""
        err.print(f"[yellow]skipped[/] {len(paths)} × {reason}: {paths[0]}{more}", highlight=False)
        shown -= 1
        if shown == 0:
            break


def _redact_policy(values: tuple[str, ...]) -> tuple[str, ...]:
    """Check ``--redact`` values before anything runs (a bad regex is a usage error, exit 2)."""
    from ..lm.redact import RedactPolicy

    try:
        RedactPolicy.parse(values)
    except RlmxError as e:
        raise click.BadParameter(str(e)) from None
    return values


def _load_tools(specs: tuple[str, ...], mcp_servers: tuple[str, ...] = ()) -> list[Any] | None:
    """The functions named by ``--tool MODULE:FUNCTION`` (the current folder is importable)
    and the tools of the ``--mcp-tools`` servers; bad ones exit 2 with the reason."""
    if not specs and not mcp_servers:
        return None
    from ..engine.tools import load_tool

    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: list[Any] = [load_tool(s) for s in specs]
    except RlmxError as e:
        raise click.BadParameter(str(e), param_hint="--tool") from None
    if mcp_servers:
        from ..engine.mcp_tools import mcp_tools

        try:
            for server in mcp_servers:
                found += mcp_tools(server)
        except RlmxError as e:
            raise click.BadParameter(str(e), param_hint="--mcp-tools") from None
    return found


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="PATH... QUESTION")
@click.option(
    "--model",
    "-m",
    help="Root LM spec, e.g. openai:gpt-5, azure:DEPLOYMENT, anthropic:MODEL, baseline.",
)
@click.option("--sub-model", help="Sub-LM spec for llm_query (default: paired with --model).")
@click.option("--max-turns", type=click.IntRange(min=1), help="Root turns per execution (default 30).")
@click.option("--max-depth", type=click.IntRange(min=0), help="Deepest rlm_query child (default 1).")
@click.option("--max-cost-usd", type=click.FloatRange(min=0), help="Cost budget of the whole tree, USD.")
@click.option("--max-sub-calls", type=click.IntRange(min=0), help="Sub-call budget of the whole tree.")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=0),
    help="Token budget (input + output) of the whole tree.",
)
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), help="Wall-time budget, seconds.")
@click.option(
    "--question-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read the question from a file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--no-cache", is_flag=True, help="Do not use the LLM cache.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--include", multiple=True, metavar="GLOB", help="Ingest matching files a folder or glob would skip.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip matching files of a folder or glob.")
@click.option("--estimate", is_flag=True, help="Print the expected and worst-case tokens and USD; call no model.")
@click.option(
    "--redact",
    multiple=True,
    metavar="KINDS[,REGEX]",
    help="Mask emails,keys,phones and/or a regex in every prompt sent to an LM (see docs/estimate-and-redaction.md).",
    callback=lambda _c, _p, v: _redact_policy(v),
)
@click.option(
    "--tool",
    "tools",
    multiple=True,
    metavar="MODULE:FUNCTION",
    help="Expose a Python function to model code by name (repeatable; runs in this process, see docs/repl.md).",
)
@click.option(
    "--mcp-tools",
    "mcp_servers",
    multiple=True,
    metavar="CMD|URL",
    help="Expose the tools of an MCP server (a command line over stdio, or an http(s) URL) to model code.",
)
@click.option("--max-tool-calls", type=click.IntRange(min=0), help="Custom tool-call budget of the whole tree.")
def ask(
    args: tuple[str, ...],
    model: str | None,
    sub_model: str | None,
    max_turns: int | None,
    max_depth: int | None,
    max_cost_usd: float | None,
    max_sub_calls: int | None,
    max_tokens: int | None,
    max_seconds: float | None,
    question_file: str | None,
    as_json: bool,
    no_cache: bool,
    quiet: bool,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    estimate: bool = False,
    redact: tuple[str, ...] = (),
    tools: tuple[str, ...] = (),
    mcp_servers: tuple[str, ...] = (),
    max_tool_calls: int | None = None,
) -> None:
    """Answer QUESTION over the documents in PATH... (files, folders, globs)."""
    paths, question = _split_args(args, question_file)
    if not estimate:  # the REPL's fork server starts on another core while the SDKs import
        from ..sandbox.launch import prestart_zygote

        prestart_zygote()
    from ..api import RLM, status_exit_code
    from ..types import Budgets
    from .progress_ingest import IngestProgress
    from .progress_run import RunProgress
    from .render import answer_json, print_answer

    budgets: dict[str, Any] = {
        k: v
        for k, v in {
            "max_turns": max_turns,
            "max_depth": max_depth,
            "max_cost_usd": max_cost_usd,
            "max_sub_calls": max_sub_calls,
            "max_total_tokens": max_tokens,
            "max_wall_seconds": max_seconds,
            "max_tool_calls": max_tool_calls,
        }.items()
        if v is not None
    }
    try:
        rlm = RLM(
            model=model,
            sub_model=sub_model,
            budgets=Budgets(**budgets),
            cache=not no_cache,
            on_event=(progress := RunProgress(err, quiet=quiet)),
            notice=lambda m: err.print(m, markup=False),
            redact=list(redact),
            tools=_load_tools(tools, mcp_servers),
        )
        if not quiet:
            err.print(f"[dim]root {rlm.root_spec} · sub {rlm.sub_spec} · store {rlm.settings.home}[/]")
        with IngestProgress(err, quiet=quiet) as ingesting:
            corpus = rlm.ingest(paths, on_progress=ingesting, include=include, exclude=exclude)
        if not quiet:
            err.print(
                f"[dim]{len(corpus.documents)} documents, {corpus.total_chars:,} characters"
                f"{f', {len(corpus.failures)} failed' if corpus.failures else ''}[/]"
            )
            for line in summary_lines(corpus):
                err.print(line, markup=False, highlight=False)
            _summarise_failures(corpus.failures)
        if estimate:
            from ..engine.estimate import estimate_lines

            est = rlm.estimate(corpus, question)
            click.echo(json.dumps(est.to_dict(), indent=2) if as_json else "\n".join(estimate_lines(est)))
            return
        with progress.running(rlm.budgets.max_turns):
            answer = rlm.ask(corpus, question)
    except RlmxError as e:
        _fail(e)
        return
    if as_json:
        click.echo(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
    else:
        print_answer(answer, Console(highlight=False, soft_wrap=True))
    sys.exit(status_exit_code(answer.status))


_VERIFY_HINT = "pipe the output of `rlmx ask --json`"


def _read_citations(file: Any) -> list[dict[str, Any]]:
    """The citations of ``rlmx ask --json`` output (or a bare list of them), else a
    :class:`click.UsageError` (exit 2) saying what is wrong with the input."""
    try:
        data = json.loads(file.read().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise click.UsageError(f"input is not UTF-8 text (byte {e.start}); {_VERIFY_HINT}") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise click.UsageError(f"input is not JSON ({e}); {_VERIFY_HINT}") from None
    cites = data.get("citations") if isinstance(data, dict) else data
    if not isinstance(cites, list):
        raise click.UsageError(f"expected an object with a `citations` list, or a list of citations; {_VERIFY_HINT}")
    for i, c in enumerate(cites, 1):
        if not isinstance(c, dict):
            raise click.UsageError(
                f"citation {i} is {type(c).__name__}, not an object {{doc_id, start, end, checksum}}; {_VERIFY_HINT}"
            )
    return cites


@cli.command()
@click.argument("file", default="-", type=click.File("rb"))
def verify(file: Any) -> None:
    """Check the citations of `rlmx ask --json` output (FILE or - for stdin) against the store."""
    from ..engine.verify import verify_citations
    from ..store import open_store

    cites = _read_citations(file)
    try:
        checks = verify_citations(cites, open_store())
    except RlmxError as e:
        _fail(e)
        return
    bad = [c for c in checks if not c.ok]
    for c in checks:
        mark = "[green]ok[/]" if c.ok else f"[red]INVALID[/] {c.reason}"
        err.print(f"[{c.index}] {c.doc_id} [{c.start}:{c.end}] {mark}")
    if not checks:
        err.print("no citations to verify")
    click.echo(f"{len(checks) - len(bad)} of {len(checks)} citations verified")
    sys.exit(1 if bad else 0)


@cli.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--include", multiple=True, metavar="GLOB", help="Ingest matching files a folder or glob would skip.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip matching files of a folder or glob.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary on stderr.")
def ingest_cmd(
    paths: tuple[str, ...], include: tuple[str, ...] = (), exclude: tuple[str, ...] = (), quiet: bool = False
) -> None:
    """Parse and store PATHS (files, folders, globs); print the documents and failures
    (and on stderr a progress bar, then the summary: kept, skipped by reason, duplicates,
    failed by reason)."""
    from ..corpus import ingest
    from ..store import open_store
    from .progress_ingest import IngestProgress

    try:
        with IngestProgress(err, quiet=quiet) as progress:
            corpus = ingest(list(paths), open_store(), include=include, exclude=exclude, on_progress=progress)
    except RlmxError as e:
        _fail(e)
        return
    for d in corpus.documents:
        click.echo(f"{d.doc_id}  {d.length_chars:>10,} chars  {d.parser}  {d.name}")
    for f in corpus.failures:
        click.echo(f"FAILED  {f.source_path}: {f.reason}")
    click.echo(f"corpus {corpus.corpus_id}: {len(corpus.documents)} documents, {len(corpus.failures)} failed")
    for line in [] if quiet else summary_lines(corpus):
        err.print(line, markup=False, highlight=False)


@cli.group(cls=LazyGroup)
def dev() -> None:
    """Developer tools."""


@dev.command("mock-llm")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--latency-ms", default=0.0, show_default=True)
@click.option("--error-rate", default=0.0, show_default=True)
@click.option(
    "--script",
    "script_file",
    type=click.Path(exists=True, dir_okay=False),
    help='JSON {"MODEL": ["reply", ...]} of scripted replies; echo otherwise.',
)
@click.option("--quiet", is_flag=True, help="No line per request (benchmarks: logging costs CPU).")
def mock_llm(host: str, port: int, latency_ms: float, error_rate: float, script_file: str | None, quiet: bool) -> None:
    """Run a local OpenAI-compatible chat-completions server (scripted or echo replies)."""
    from ..dev.mock_llm import serve

    serve(host, port, latency_ms, error_rate, script_file, verbose=not quiet)


dev.add_lazy_command("cluster", "rlmx.cli.cluster:cluster")  # type: ignore[attr-defined]


def main() -> None:
    cli()


# Subcommands in their own modules load when they run (see rlmx.cli.lazy): NAME -> module:attr.
for _name, _target in {
    "bench": "rlmx.cli.bench:bench",
    "serve": "rlmx.cli.serve:serve",
    "worker": "rlmx.cli.serve:worker",
    "keys": "rlmx.cli.keys:keys",
    "db": "rlmx.cli.db:db",
    "mcp": "rlmx.cli.mcp_cmd:mcp",
    "doctor": "rlmx.cli.doctor:doctor",
    "view": "rlmx.cli.view:view",
    "export": "rlmx.cli.export:export",
    "chat": "rlmx.cli.chat:chat",
    "executions": "rlmx.cli.executions:executions",
}.items():
    cli.add_lazy_command(_name, _target)
