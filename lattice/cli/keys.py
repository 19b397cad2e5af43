"""``lattice keys``: make, list and revoke the head's named API keys (tenants), with the admin token."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lattice.utils.home import default_home

_POSITIVE = click.FloatRange(min=0, min_open=True)


def _send(call: Any, url: str | None, token: str | None, data_dir: Path | None) -> Any:
    """Send one call to the head of ``--url`` (default: the local head of ``--data-dir``); errors are one line."""
    from lattice.client.base import ClientConfig, discover_token
    from lattice.client.transport import HeadHTTP
    from lattice.errors import APIError, LatticeError

    home = (data_dir or default_home()).expanduser().resolve()
    if url is None:
        try:
            url = json.loads((home / "head.json").read_text())["url"]
        except (OSError, ValueError, KeyError):
            raise click.ClickException(f"no head runs for {home}; pass --url") from None
    try:
        with HeadHTTP(ClientConfig(url, discover_token(token, home), timeout=10.0)) as head:
            return head.send(call)
    except APIError as exc:
        raise click.ClickException(f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")) from exc
    except LatticeError as exc:
        raise click.ClickException(str(exc)) from exc


_head_options = [
    click.option("--url", default=None, help="Head URL [default: the local head of --data-dir]."),
    click.option("--data-dir", type=click.Path(path_type=Path), default=None),
    click.option("--token", default=None, help="An admin token [default: $LATTICE_TOKEN or the head's token file]."),
]


def head_options(fn: Any) -> Any:
    for option in reversed(_head_options):
        fn = option(fn)
    return fn


@click.group()
def keys() -> None:
    """Named API keys: each is a tenant with a role, a share weight and quotas."""


@keys.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "submit", "read"]), default="submit", show_default=True,
              help="admin: everything; submit: run workflows, see its own; read: only read its own.")
@click.option("--max-cpu", type=_POSITIVE, default=None, help="CPU cores its tasks hold at once.")
@click.option("--max-gpu", type=_POSITIVE, default=None, help="GPUs its tasks hold at once.")
@click.option("--max-gpu-memory", type=click.IntRange(min=1), default=None, metavar="MB",
              help="GPU memory its tasks hold at once.")
@click.option("--max-running-runs", type=click.IntRange(min=1), default=None,
              help="Runs that run at once; later ones wait.")
@click.option("--weight", type=click.FloatRange(min=0, max=1000, min_open=True), default=1.0, show_default=True,
              help="Share of the cluster relative to other tenants.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@head_options
def create(name: str, role: str, max_cpu: float | None, max_gpu: float | None, max_gpu_memory: int | None,
           max_running_runs: int | None, weight: float, as_json: bool, url: str | None, data_dir: Path | None,
           token: str | None) -> None:
    """Make a key NAME; its secret is printed once (the head keeps only a hash)."""
    from lattice.client import endpoints

    quota = {k: v for k, v in {"max_cpu": max_cpu, "max_gpu": max_gpu, "max_gpu_memory_mb": max_gpu_memory,
                               "max_running_runs": max_running_runs}.items() if v is not None}
    created = _send(endpoints.create_key(name, role, weight, quota), url, token, data_dir)
    if as_json:
        click.echo(json.dumps(created, indent=2))
        return
    Console(stderr=True).print(f"[green]key {name!r} created[/] (role {role}); its secret, shown this once:",
                               highlight=False)
    click.echo(created["key"])


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@head_options
def list_(as_json: bool, url: str | None, data_dir: Path | None, token: str | None) -> None:
    """List the keys (never their secrets)."""
    from lattice.client import endpoints

    rows = _send(endpoints.list_keys(), url, token, data_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "role", "weight", "max CPU", "max GPU", "max GPU MB", "max runs", "created", "revoked")
    for row in rows:
        policy, quota = row["policy"], row["policy"]["quota"]
        table.add_row(policy["name"], policy["role"], f"{policy['weight']:g}", _cap(quota["max_cpu"]),
                      _cap(quota["max_gpu"]), _cap(quota["max_gpu_memory_mb"]), _cap(quota["max_running_runs"]),
                      _when(row["created_at"]), _when(row["revoked_at"]) if row["revoked_at"] else "")
    Console().print(table)


@keys.command("revoke")
@click.argument("name")
@head_options
def revoke(name: str, url: str | None, data_dir: Path | None, token: str | None) -> None:
    """Revoke key NAME at once (its next request is refused; its open streams close)."""
    from lattice.client import endpoints

    _send(endpoints.revoke_key(name), url, token, data_dir)
    Console(stderr=True).print(f"[green]key {name!r} revoked[/]", highlight=False)


def _cap(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
