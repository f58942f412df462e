"""A click group whose subcommands are imported only when they run (or ``--help`` lists them).

Registering a command must not import what it needs at ``rlmx`` start-up: ``rlmx verify``
should not pay for FastAPI, the LM SDKs or SQLAlchemy because ``rlmx serve`` exists. Give
:class:`LazyGroup` a mapping from a command name to ``"module:attribute"``; the module is
imported the first time that command is looked up (``rlmx NAME ...``, or the command list of
``rlmx --help``). tests/test_startup_imports.py pins what ``import rlmx.cli.main`` loads.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["LazyGroup"]


class LazyGroup(click.Group):
    """A :class:`click.Group` with ``lazy_subcommands={name: "module:attr"}`` beside its
    eagerly added commands. Raises :class:`TypeError` when the imported object is not a
    :class:`click.Command` (a programming error, caught by the CLI tests)."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def add_lazy_command(self, name: str, target: str) -> None:
        """Register ``name`` as ``"module:attr"`` (imported on first use)."""
        self.lazy_subcommands[name] = target

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands and cmd_name not in self.commands:
            module, _, attr = self.lazy_subcommands[cmd_name].partition(":")
            cmd = getattr(importlib.import_module(module), attr)
            if not isinstance(cmd, click.Command):
                raise TypeError(f"{self.lazy_subcommands[cmd_name]} is {type(cmd).__name__}, not a click command")
            self.add_command(cmd, cmd_name)
        return super().get_command(ctx, cmd_name)
