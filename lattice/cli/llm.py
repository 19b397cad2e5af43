"""``lattice llm``: deploy, list and stop model pools on the head (``lattice/llm``), through the SDK."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from lattice.cli.target import head_errors, resolve_target, target_options
from lattice.wire.llm import Engine, PoolView

_REPLICAS = re.compile(r"^(\d+)(?:\.\.(\d+))?$")


def _replicas(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = _REPLICAS.match(value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not N or MIN..MAX (e.g. 0..2)")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else max(low, 1)
    if high < low or high < 1:
        raise click.BadParameter(f"{value!r}: MAX must be at least MIN and at least 1")
    return low, high


@click.group()
def llm() -> None:
    """Model pools: engines on the cluster behind one OpenAI-compatible endpoint (docs/llm.md)."""


@llm.command("deploy")
@click.argument("alias")
@click.option("--engine", type=click.Choice([e.value for e in Engine]), required=True)
@click.option("--model", required=True, help="A local path or a model id the engine loads.")
@click.option("--gpu", type=click.FloatRange(min=0), default=None, help="GPUs per replica.")
@click.option("--gpu-memory", "gpu_memory_mb", type=click.IntRange(min=0), default=None,
              help="GPU memory leased per replica, MB (vLLM's --gpu-memory-utilization follows it).")
@click.option("--cpu", type=click.FloatRange(min=0), default=None, help="CPU cores leased per replica.")
@click.option("--replicas", callback=_replicas, default=None, help="N or MIN..MAX [default: 0..1].")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=None, help="Requests in flight, whole pool.")
@click.option("--max-concurrency-per-replica", type=click.IntRange(min=1), default=None)
@click.option("--max-queue", type=click.IntRange(min=0), default=None, help="Requests waiting; more get 429.")
@click.option("--idle-timeout", "idle_timeout_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds without requests before the replicas stop.")
@click.option("--start-timeout", "start_timeout_s", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--pinned", is_flag=True, default=None, help="Never evicted for another pool's GPU memory.")
@click.option("--base-url", default=None, help="external: the provider's OpenAI-compatible base URL.")
@click.option("--api-key-env", default=None, help="external: the head's environment variable holding the key.")
@click.option("--rpm", "requests_per_minute", type=click.IntRange(min=1), default=None)
@click.option("--tpm", "tokens_per_minute", type=click.IntRange(min=1), default=None)
@click.option("--engine-arg", "engine_args", multiple=True, help="An extra argument for the engine (repeat).")
@click.option("--json", "as_json", is_flag=True)
@target_options
def deploy(alias: str, engine: str, model: str, replicas: tuple[int, int] | None, as_json: bool,
           url: str | None, data_dir: Path | None, token: str | None, **options: Any) -> None:
    """Declare pool ALIAS; it starts on its first request (or now, with --replicas MIN>=1)."""
    fields = {k: v for k, v in options.items() if v not in (None, ())}
    if "engine_args" in fields:
        fields["engine_args"] = list(fields["engine_args"])
    if replicas is not None:
        fields["min_replicas"], fields["max_replicas"] = replicas
    from lattice.client.llm import spec_of

    try:
        spec = spec_of(alias, engine, model, **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "pool"
        raise click.UsageError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
    target = resolve_target(url, token, data_dir)
    with head_errors(target), target.client(timeout=30) as client:
        view = client.llm.deploy(alias, **spec.model_dump(exclude={"alias"}))
        base = client.llm.base_url(alias)
    if as_json:
        click.echo(view.model_dump_json(indent=2))
        return
    click.echo(f"pool {alias} ({engine}, {model}): {view.state}; endpoint {base}")


@llm.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the pools as JSON.")
@target_options
def list_pools(as_json: bool, url: str | None, data_dir: Path | None, token: str | None) -> None:
    """Every pool: replicas, node, memory leased vs used, in flight, queued, tokens/s."""
    target = resolve_target(url, token, data_dir)
    with head_errors(target), target.client(timeout=10) as client:
        pools = client.llm.list()
    if as_json:
        click.echo(json.dumps([p.model_dump(mode="json") for p in pools], indent=2))
        return
    print_pools(Console(), pools)


@llm.command("stop")
@click.argument("alias")
@target_options
def stop(alias: str, url: str | None, data_dir: Path | None, token: str | None) -> None:
    """Stop pool ALIAS: its engines' process groups stop, leases are given back, its endpoint answers 404."""
    target = resolve_target(url, token, data_dir)
    with head_errors(target), target.client(timeout=60) as client:
        client.llm.stop(alias)
    click.echo(f"pool {alias} stopped")


def print_pools(out: Console, pools: list[PoolView] | list[dict[str, Any]]) -> None:
    """The pools table (also part of ``lattice status``)."""
    views = [p if isinstance(p, PoolView) else PoolView.model_validate(p) for p in pools]
    if not views:
        out.print("model pools: none (lattice llm deploy ALIAS --engine ... --model ...)")
        return
    table = Table("pool", "engine", "state", "replicas (node)", "GPU MB leased/used", "in flight/cap",
                  "queued/bound", "tokens in/out", "tokens/s", title="model pools")
    for view in views:
        ready = [r for r in view.replicas if r.state == "ready"]
        nodes = ", ".join(sorted({(r.node_id or "?")[:8] for r in view.replicas}))
        leased = sum(r.gpu_memory_leased_mb for r in view.replicas)
        used = [r.gpu_memory_used_mb for r in view.replicas if r.gpu_memory_used_mb is not None]
        table.add_row(view.alias, view.engine.value, view.state + (f" ({view.error})" if view.error else ""),
                      f"{len(ready)}/{len(view.replicas)}" + (f" ({nodes})" if nodes else ""),
                      f"{leased}/{sum(used) if used else '-'}", f"{view.in_flight}/{view.max_concurrency}",
                      f"{view.queued}/{view.max_queue}", f"{view.tokens_in}/{view.tokens_out}",
                      f"{view.tokens_per_s:g}")
    out.print(table)
