"""Start-up stays light: importing the CLI (and so ``rlmx --help`` / ``rlmx verify``) loads
no heavy optional stack. Structural, not timed: the modules a fresh interpreter has loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from rlmx.cli.lazy import LazyGroup

HEAVY = (
    "fastapi",
    "openai",
    "aiohttp",
    "anthropic",
    "lxml",
    "matplotlib",
    "playwright",
    "prometheus_client",
    "opentelemetry",
)


def _loaded_after(code: str, *args: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe, *args], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    timed = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert timed, "python -X importtime printed nothing"
    return loaded | timed


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_import_cli_main_loads_no_heavy_module() -> None:
    loaded = _loaded_after("import rlmx.cli.main")
    assert "rlmx.cli.main" in loaded
    assert _heavy(loaded) == [], "make these imports lazy (inside the command, or rlmx.cli.lazy)"
    # the subcommands in their own modules are not imported either
    assert not {"rlmx.cli.serve", "rlmx.cli.view", "rlmx.cli.export", "rlmx.cli.chat"} & loaded


def test_help_lists_every_lazy_command_without_heavy_imports() -> None:
    code = (
        "from rlmx.cli.main import cli\ntry:\n    cli(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    loaded = _loaded_after(code)
    assert _heavy(loaded) == []
    from rlmx.cli.main import cli

    out = CliRunner().invoke(cli, ["--help"]).output
    for name in ("ask", "verify", "serve", "worker", "keys", "db", "mcp", "doctor", "view", "export", "chat", "bench"):
        assert f"  {name} " in out, name


def test_lazy_command_resolves_and_runs_its_help() -> None:
    from rlmx.cli.main import cli

    for argv in (["serve", "--help"], ["dev", "cluster", "--help"], ["export", "--help"]):
        r = CliRunner().invoke(cli, argv)
        assert r.exit_code == 0, (argv, r.output)
        assert "Usage:" in r.output


def test_lazy_group_rejects_a_target_that_is_not_a_command() -> None:
    group = LazyGroup(name="g", lazy_subcommands={"bad": "json:dumps"})
    with pytest.raises(TypeError, match="not a click command"):
        group.get_command(click.Context(group), "bad")
    assert group.get_command(click.Context(group), "missing") is None
    assert group.list_commands(click.Context(group)) == ["bad"]
