"""``rlmx keys``: API keys of the service (create, list, revoke)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
from rich.console import Console

if TYPE_CHECKING:
    from ..service.core import Service

__all__ = ["keys"]

err = Console(stderr=True, highlight=False, soft_wrap=True)


def _service() -> Service:
    from ..service.core import Service

    return Service(notice=lambda m: err.print(m, markup=False))


@click.group()
def keys() -> None:
    """API keys of the service: each belongs to one tenant; only its HMAC is stored."""


@keys.command("create")
@click.option("--tenant", required=True, help="The tenant the key acts for ([A-Za-z0-9._-]).")
@click.option("--name", default="", help="A label for listings.")
def create(tenant: str, name: str) -> None:
    """Create a key for TENANT and print it once (on stdout); it cannot be shown again."""
    from ..errors import RlmxError

    try:
        key, rec = _service().keys.create(tenant, name)
    except RlmxError as e:
        err.print(f"[bold red]rlmx:[/] {e}")
        sys.exit(1)
    err.print(f"[dim]key {rec.key_id} for tenant {rec.tenant}; store it now, it is not shown again[/]")
    click.echo(key)


@keys.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
def list_keys(tenant: str | None) -> None:
    """List keys (ids, tenants, status; never the keys)."""
    for k in _service().meta.list_api_keys(tenant):
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        click.echo(f"{k.key_id}  {k.tenant:<20} {state:<24} {k.created_at:%Y-%m-%d %H:%M}  {k.name}")


@keys.command("revoke")
@click.argument("key_or_id")
def revoke(key_or_id: str) -> None:
    """Revoke a key by its id (key_…) or by the key itself (rlmx_…)."""
    if not _service().keys.revoke(key_or_id):
        err.print(f"[bold red]rlmx:[/] no such key: {key_or_id} (list them with `rlmx keys list`)")
        sys.exit(1)
    click.echo(f"revoked {key_or_id if key_or_id.startswith('key_') else '(key)'}")
