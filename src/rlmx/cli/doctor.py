"""``rlmx doctor``: which sandbox layers are active on this host and why any is missing."""

from __future__ import annotations

import json
import sys

import click

__all__ = ["doctor"]


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--runner",
    type=click.Choice(["local", "bwrap"]),
    default=None,
    help="Check this runner instead of RLMX_SANDBOX_RUNNER.",
)
@click.option(
    "--corpus",
    "corpus",
    multiple=True,
    metavar="PATH",
    help="Check with this corpus (files, folders, globs; repeatable): it is ingested as `rlmx ask` would.",
)
def doctor(as_json: bool, runner: str | None, corpus: tuple[str, ...]) -> None:
    """Report the REPL sandbox's isolation layers on this host (starts a REPL and probes it).

    Exit status 0 when every required layer is active, 1 when a layer is missing and
    RLMX_SANDBOX_HARDENED is set (a REPL would refuse to start), 2 when no REPL can start
    (or the corpus cannot be ingested)."""
    from ..sandbox.doctor import diagnose, render
    from ..sandbox.policy import SandboxPolicy

    policy = SandboxPolicy()
    if runner is not None:
        policy = policy.model_copy(update={"runner": runner})
    report = diagnose(policy, list(corpus) or None)
    click.echo(json.dumps(report, indent=2) if as_json else render(report))
    if report.get("error") and not report.get("layers"):
        sys.exit(2)
    if policy.hardened and report.get("hardened_would_refuse"):
        sys.exit(1)
