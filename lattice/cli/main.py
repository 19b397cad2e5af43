"""``lattice``: start and stop heads and workers, show the cluster's status, and work with runs.

Exit statuses (docs/cli.md): 0 success; 1 an error the head or the run reported; 2 a bad flag or
argument (click's usage error, one line naming the flag); 3 no head runs (or answers) where the
command looked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from lattice import __version__
from lattice.cli.checks import check_host, check_sandbox, check_store_url, port_in_use
from lattice.cli.target import (
    EXIT_NOT_RUNNING,
    HeadNotRunning,
    LocalHead,
    head_errors,
    read_json,
    resolve_data_dir,
    resolve_target,
    target_options,
)
from lattice.core.config import HeadSettings
from lattice.utils.home import default_home
from lattice.utils.logs import LOG_LEVELS, LogSettings
from lattice.utils.procs import ProcessIdentity, group_is_ours, recorded_identity
from lattice.wire.sandbox import SandboxLevel

# soft_wrap: long lines (paths, URLs) stay whole instead of being broken at the terminal width
console = Console(stderr=True, soft_wrap=True)
SANDBOX_CHOICES = click.Choice(SandboxLevel.names())
HEAD_START_TIMEOUT_S = 120.0
DATA_DIR = click.Path(path_type=Path, file_okay=False)
#: settings fields whose name differs from their flag's
_FLAG_OF = {"auth": "--no-auth", "sandbox_config": "LATTICE_SANDBOX_CONFIG"}


@click.group()
@click.version_option(__version__, prog_name="lattice")
def cli() -> None:
    """Lattice: a distributed runtime for LLM-agent workflows on Ray."""


def _check_addr(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--addr`` is HOST:PORT or http(s)://HOST:PORT; returned as a URL."""
    if value is None:
        return None
    url = value if "://" in value else f"http://{value}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}", param=param) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise click.BadParameter(f"{value!r} is not HOST:PORT or http://HOST:PORT (e.g. 10.0.0.5:8000)", param=param)
    return url.rstrip("/")


def _check_ip(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    import ipaddress

    if value is None:
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IP address (e.g. 127.0.0.2)", param=param) from None
    return value


@cli.command()
@click.option("--head", "role", flag_value="head", help="Start a head (API server, scheduler, embedded Ray).")
@click.option("--worker", "role", flag_value="worker", help="Join this machine to a head's cluster.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, envvar="LATTICE_PORT",
              help="Head: HTTP port.")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="LATTICE_HOST", callback=check_host,
              help="Head: address to bind. Use 0.0.0.0 only on a trusted network; auth stays on.")
@click.option("--data-dir", type=DATA_DIR, default=None,
              help="Where runs, the token and logs live [default: $LATTICE_HOME or ~/.lattice].")
@click.option("--store-url", default=None, envvar="LATTICE_STORE_URL", callback=check_store_url,
              help="Head: SQLAlchemy URL of the store (e.g. postgresql+psycopg://...).")
@click.option("--ray-address", default=None, envvar="LATTICE_RAY_ADDRESS",
              help="Head: join an existing Ray cluster instead of starting one.")
@click.option("--num-cpus", type=click.FloatRange(min=0), default=None, envvar="LATTICE_NUM_CPUS",
              help="CPUs this node offers [default: all].")
@click.option("--num-gpus", type=click.FloatRange(min=0), default=None, envvar="LATTICE_NUM_GPUS",
              help="GPUs this node offers [default: detected].")
@click.option("--object-store-mb", type=click.IntRange(min=64), default=512, show_default=True,
              envvar="LATTICE_OBJECT_STORE_MB", help="Ray object store size (at least 64).")
@click.option("--sandbox", type=SANDBOX_CHOICES, default="none", show_default=True, envvar="LATTICE_SANDBOX",
              help="Head: default sandbox level of tasks.")
@click.option("--min-sandbox", type=SANDBOX_CHOICES, default=None, envvar="LATTICE_MIN_SANDBOX",
              help="Head: weakest level a task may ask for [default: the --sandbox level].")
@click.option("--no-auth", is_flag=True, help="Head: do not require a token (never on a shared network).")
@click.option("--max-body-mb", type=click.IntRange(min=1), default=64, show_default=True,
              envvar="LATTICE_MAX_BODY_MB", help="Head: largest accepted request body.")
@click.option("--io-slots", type=click.IntRange(min=1), default=256, show_default=True, envvar="LATTICE_IO_SLOTS",
              help="Head: concurrent I/O-bound (cpu=0) tasks per node.")
@click.option("--max-output-mb", type=click.IntRange(min=1), default=256, show_default=True,
              envvar="LATTICE_MAX_OUTPUT_MB",
              help="Head: largest total size of one task's outputs; larger fails the task (output_too_large).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="INFO",
              show_default=True, envvar="LATTICE_LOG_LEVEL", help="Head: lowest level logged.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="LATTICE_LOG_FORMAT", help="Head: text lines or one JSON object per line.")
@click.option("--access-log", is_flag=True, envvar="LATTICE_ACCESS_LOG",
              help="Head: log every HTTP request (method, path, status).")
@click.option("--scheduling", type=click.Choice(["fair", "fifo"]), default="fair", show_default=True,
              envvar="LATTICE_SCHEDULING",
              help="Head: fair shares capacity between tenants, then runs; fifo is strict priority order.")
@click.option("--ssl-certfile", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              envvar="LATTICE_SSL_CERTFILE", help="Head: serve HTTPS with this PEM certificate (uvicorn's TLS).")
@click.option("--ssl-keyfile", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              envvar="LATTICE_SSL_KEYFILE", help="Head: the PEM private key of --ssl-certfile.")
@click.option("--playground", is_flag=True, envvar="LATTICE_PLAYGROUND",
              help="Head: also serve the Playground (drag-and-drop workflow designer) at /playground.")
@click.option("--addr", default=None, callback=_check_addr, help="Worker: the head's HOST:PORT or URL.")
@click.option("--token", default=None, help="Worker: the head's token [default: $LATTICE_TOKEN or local file].")
@click.option("--node-ip", default=None, callback=_check_ip,
              help="Worker: this node's address as the cluster sees it (e.g. 127.0.0.2 for a second local node).")
@click.option("--memory", "memory_mb", type=click.IntRange(min=1), default=None,
              help="Worker: memory in MB this node offers to tasks [default: what Ray detects].")
@click.option("--resources", "custom_resources", default=None,
              help='Worker: custom resources as JSON, e.g. \'{"my_res": 2}\' (tasks ask resources={"my_res": 1}).')
@click.option("--labels", default=None, help="Worker: node labels k=v,... (tasks ask node_labels={...}).")
@click.option("--join-timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
              envvar="LATTICE_JOIN_TIMEOUT",
              help="Worker: seconds to wait until the head lists this node as alive, else stop its Ray and fail.")
@click.option("--block", is_flag=True, help="Stay in the foreground until stopped (Ctrl-C stops).")
@click.option("--otel", metavar="URL", expose_value=False, callback=lambda _c, _p, v: _otel_endpoint(v),
              help="Export traces over OTLP/HTTP to URL (sets OTEL_EXPORTER_OTLP_ENDPOINT; needs the otel extra).")
def start(role: str | None, port: int, host: str, data_dir: Path | None, store_url: str | None,
          ray_address: str | None, num_cpus: float | None, num_gpus: float | None, object_store_mb: int,
          sandbox: str, min_sandbox: str | None, no_auth: bool, max_body_mb: int, io_slots: int,
          max_output_mb: int, log_level: str, log_format: str, access_log: bool, scheduling: str, playground: bool,
          addr: str | None, token: str | None, node_ip: str | None, memory_mb: int | None,
          custom_resources: str | None, labels: str | None, ssl_certfile: Path | None, ssl_keyfile: Path | None,
          join_timeout: float, block: bool) -> None:
    """Start a head (--head) or a worker node (--worker)."""
    data_dir = resolve_data_dir(data_dir)
    if role == "head":
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise click.UsageError("--ssl-certfile and --ssl-keyfile go together")
        try:
            settings = HeadSettings(host=host, port=port, data_dir=data_dir, store_url=store_url,
                                    ray_address=ray_address, num_cpus=num_cpus, num_gpus=num_gpus,
                                    object_store_mb=object_store_mb, sandbox=sandbox,
                                    min_sandbox=min_sandbox or sandbox, auth=not no_auth, max_body_mb=max_body_mb,
                                    io_slots=io_slots, max_output_mb=max_output_mb, scheduling=scheduling,
                                    sandbox_config=os.environ.get("LATTICE_SANDBOX_CONFIG"),
                                    ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, playground=playground)
        except ValidationError as exc:  # the click types check first; this is the backstop, one line
            error = exc.errors()[0]
            name = str(error["loc"][0]) if error["loc"] else "?"
            raise click.UsageError(f"{_FLAG_OF.get(name, '--' + name.replace('_', '-'))}: {error['msg']}") from None
        logs = LogSettings(log_level=log_level.upper(), log_format=log_format, access_log=access_log)
        _start_head(settings, block, logs)
    elif role == "worker":
        if not addr:
            raise click.UsageError("--worker needs --addr HEAD_HOST:PORT")
        from lattice.cli.worker import parse_labels, parse_resources, start_worker

        start_worker(addr, token, data_dir, num_cpus, num_gpus, object_store_mb, node_ip, block, memory_mb,
                     parse_resources(custom_resources), parse_labels(labels),
                     echo=lambda line: console.print(line, highlight=False), join_timeout_s=join_timeout)
    else:
        raise click.UsageError("say what to start: --head or --worker")


def _otel_endpoint(url: str | None) -> None:
    """``--otel URL``: the standard variable, so the head, its Ray and every worker it starts inherit it."""
    if url:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL, e.g. http://127.0.0.1:4318",
                                     param_hint="'--otel'")
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url


def _preflight(settings: HeadSettings) -> None:
    """Everything that would make the new head fail or refuse every task, said before anything starts."""
    local = LocalHead.of(settings.data_dir)
    if local.running and local.info:
        raise click.ClickException(
            f"a head already runs for {settings.data_dir} (pid {local.info['pid']}, {local.info['url']}); "
            "stop it with 'lattice stop' or use another --data-dir")
    for warning in check_sandbox(settings.sandbox, settings.min_sandbox, bool(settings.ray_address),
                                 settings.sandbox_config):
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if problem := port_in_use(settings.host, settings.port):
        raise click.ClickException(problem)


def _start_head(settings: HeadSettings, block: bool, logs: LogSettings | None = None) -> None:
    from lattice.cli.banner import head_banner, log_paths

    logs = logs or LogSettings()
    _preflight(settings)
    if block:
        import logging

        from lattice.cli.server import serve
        from lattice.utils.logs import configure_logging

        configure_logging(logs)  # stderr: the supervisor (systemd, a container, a terminal) keeps it
        serve(settings, announce=logging.getLogger("lattice.head").info, access_log=logs.access_log)
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path, out_path = log_paths(settings.data_dir)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LATTICE_SETTINGS_JSON": settings.model_dump_json(), "LATTICE_LOG_LEVEL": logs.log_level,
           "LATTICE_LOG_FORMAT": logs.log_format, "LATTICE_ACCESS_LOG": "1" if logs.access_log else "0"}
    with open(out_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lattice.cli.head"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    info = _wait_until_listening(proc, settings, log_path, out_path)
    console.print(f"[green]Lattice head running[/] (pid {proc.pid})", highlight=False)
    console.print("\n".join(head_banner(settings, str(info.get("ray_address")), proc.pid)), highlight=False)
    console.print(f"  logs:  {log_path} (raw output: {out_path})\n  stop:  lattice stop"
                  + (f" --data-dir {settings.data_dir}" if settings.data_dir != default_home().resolve() else ""),
                  highlight=False)


def _wait_until_listening(proc: subprocess.Popen[bytes], settings: HeadSettings, log_path: Path,
                          out_path: Path) -> dict[str, Any]:
    """Wait until *this* head (its pid in head.json, port bound) answers /health; fail with its own words.

    Asking only ``/health`` is not enough: another head on the same port answers it while ours dies
    on "address already in use". head.json says ``listening`` only once our process bound the port.
    """
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    with console.status(f"starting the Lattice head on {settings.url} (Ray, store, scheduler) ..."):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise click.ClickException(
                    f"the head exited with status {proc.returncode}; last lines of {log_path}:\n"
                    + _tail(log_path) + (f"\nand of {out_path}:\n{_tail(out_path)}" if _tail(out_path) else ""))
            info = read_json(settings.data_dir / "head.json")
            if info and info.get("pid") == proc.pid and info.get("listening") and _answers_health(settings.url):
                return info
            time.sleep(0.25)
    proc.terminate()
    raise click.ClickException(f"the head did not answer within {HEAD_START_TIMEOUT_S:.0f} s; see {log_path}")


def _answers_health(url: str) -> bool:
    """Whether a head answers ``/health`` at ``url`` within a second (it needs no token)."""
    from lattice.client import endpoints
    from lattice.client.base import ClientConfig
    from lattice.client.transport import HeadHTTP
    from lattice.errors import LatticeError

    try:
        with HeadHTTP(ClientConfig(url, None, timeout=1.0)) as head:
            head.send(endpoints.health())
    except (LatticeError, ValueError):  # not up yet, an error answer, or not a Lattice head's JSON
        return False
    return True


@cli.command()
@click.option("--data-dir", type=DATA_DIR, default=None,
              help="The head's or worker's data dir [default: $LATTICE_HOME or ~/.lattice].")
@click.option("--timeout", type=click.FloatRange(min=0), default=20.0, show_default=True,
              help="Seconds before SIGKILL; a worker: seconds its running tasks get to finish before they move.")
@click.option("--worker", "worker_only", is_flag=True, help="Only the worker: drain its node, then stop it.")
@click.option("--token", default=None, help="Worker: the head's token, to drain [default: $LATTICE_TOKEN].")
def stop(data_dir: Path | None, timeout: float, worker_only: bool, token: str | None) -> None:
    """Stop the head (and the Ray processes it started) and any worker of this data dir.

    A pid is signalled only if the process that has it now is the one recorded (its start time
    matches): after a crash the pid may belong to an unrelated process.
    """
    from lattice.cli.server import retire_head_info
    from lattice.cli.worker import stop_worker
    from lattice.executor.ray_process import kill_process_group

    data_dir = resolve_data_dir(data_dir)
    stopped = False
    head = None if worker_only else read_json(data_dir / "head.json")
    if head:
        identity = recorded_identity(head)
        if identity is not None and identity.alive():
            with console.status(f"stopping the head (pid {identity.pid}) ..."):
                _terminate(identity, timeout)
            stopped = True
        elif identity is None:
            console.print(f"{data_dir / 'head.json'} records no start time for pid {head.get('pid')} (an older "
                          "Lattice wrote it), so it cannot be told apart from another process that reuses the pid; "
                          f"nothing was signalled. If pid {head.get('pid')} is that head, stop it with "
                          f"'kill {head.get('pid')}'", highlight=False)
        else:
            console.print(f"the head recorded in {data_dir / 'head.json'} (pid {head.get('pid')}) is not running "
                          "(it crashed, or the pid now belongs to another process, which is left alone); "
                          "cleaning up its record", highlight=False)
        ray_pgid = head.get("ray_pgid")
        if isinstance(ray_pgid, int) and group_is_ours(ray_pgid, head.get("ray_create_time")):
            kill_process_group(ray_pgid, timeout=5)
        retire_head_info(data_dir)
    if stop_worker(data_dir, token, timeout, echo=lambda line: console.print(line, highlight=False)):
        stopped = True
    if stopped:
        console.print("[green]stopped[/]")
    else:
        console.print(f"nothing runs for {data_dir}")


@cli.command()
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables (also when no head runs).")
def status(url: str | None, data_dir: Path | None, token: str | None, as_json: bool) -> None:
    """Show the head's health, nodes, resources and recent runs; exit status 3 when no head runs."""
    try:
        target = resolve_target(url, token, data_dir)
        with head_errors(target), target.client(timeout=10) as client:
            health, nodes, totals = client.health(), client.nodes(), client.resources()
            runs = client.list_runs(limit=5)
            queues = client.queues()
            pools = _pools(client)
    except HeadNotRunning as exc:
        if as_json:
            local = LocalHead.of(resolve_data_dir(data_dir))
            record = local.info or local.last or {}
            click.echo(json.dumps({"running": False, "data_dir": str(local.data_dir),
                                   "url": url or record.get("url"), "error": exc.message}, indent=2))
            sys.exit(EXIT_NOT_RUNNING)
        raise
    if as_json:
        click.echo(json.dumps({"running": True, "url": target.url, "health": health, "nodes": nodes,
                               "resources": totals, "runs": runs, "queues": queues,
                               **({"llm_pools": pools} if pools else {})}, indent=2))
        return
    out = Console()
    out.print(f"[bold]Lattice head[/] {target.url}  v{health['version']}  up {health['uptime_s']:.0f} s")
    table = Table("node", "address", "state", "CPU used/total", "GPU used/total", "memory MB used/total",
                  "tasks", title="nodes")
    for node in nodes:
        table.add_row(node["node_id"][:12], node["address"], node.get("state", "alive"),
                      f"{node['used']['cpu']:g}/{node['total']['cpu']:g}",
                      f"{node['used']['gpu']:g}/{node['total']['gpu']:g}",
                      f"{node['used']['memory_mb']:.0f}/{node['total']['memory_mb']:.0f}",
                      str(node["running_tasks"]))
    out.print(table)
    queued = ", ".join(f"{k}: {v}" for k, v in totals["queued_tasks"].items())
    out.print(f"running tasks: {totals['running_tasks']}   queued: {queued}")
    _print_queues(out, queues)
    if pools:
        from lattice.cli.llm import print_pools

        print_pools(out, pools)
    if runs:
        recent = Table("run", "workflow", "state", "created", title="recent runs")
        for run in runs:
            recent.add_row(run["run_id"], run["workflow_name"], run["state"],
                           time.strftime("%H:%M:%S", time.localtime(run["created_at"])))
        out.print(recent)


@cli.command()
@target_options
@click.argument("node")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Seconds running tasks get to finish there; then they run again elsewhere [default: no limit].")
def drain(url: str | None, data_dir: Path | None, token: str | None, node: str, timeout: float | None) -> None:
    """Stop placing tasks on NODE (a node id, a unique prefix of one, or its IP); running ones finish, then a
    node started with 'lattice start --worker' stops its Ray and leaves."""
    from lattice.cli.worker import drain_node

    target = resolve_target(url, token, data_dir)
    shown = drain_node(target.url, target.token, resolve_data_dir(data_dir), node, timeout)
    console.print(f"node {shown['node_id'][:12]} ({shown['address']}) is {shown['state']}: no new tasks go there; "
                  f"{shown['running_tasks']} running; a node of 'lattice start --worker' then stops its Ray and leaves",
                  highlight=False)


def _print_queues(out: Console, queues: dict[str, Any]) -> None:
    """Per tenant and run: what it holds, what it has queued and why that waits."""
    table = Table("tenant", "run", "weight", "held CPU/GPU (tasks)", "queued cpu/gpu/io", "waiting for",
                  title=f"queues ({queues['scheduling']} scheduling)")
    for tenant in queues["tenants"]:
        if not tenant["runs"] and not tenant["held"]["tasks"]:
            continue
        held = tenant["held"]
        table.add_row(tenant["tenant"], f"{tenant['running_runs']} running", f"{tenant['weight']:g}",
                      f"{held['cpu']:g}/{held['gpu']:g} ({held['tasks']})", _queued(tenant["queued"]), "")
        for run in tenant["runs"]:
            held = run["held"]
            why = f"{run['waiting']}: {run['waiting_detail']}" if run["waiting"] else ""
            table.add_row("", run["run_id"][:12], f"{run['weight']:g}", f"{held['cpu']:g}/{held['gpu']:g} "
                          f"({held['tasks']})", _queued(run["queued"]), why)
    if table.row_count:
        out.print(table)
    else:
        out.print(f"queues ({queues['scheduling']} scheduling): no tenant holds or waits for anything")


def _pools(client: Any) -> list[dict[str, Any]]:
    """The head's model pools; none from a head that has no pool routes (an older one)."""
    from lattice.errors import NotFoundError

    try:
        return [p.model_dump(mode="json") for p in client.llm.list()]
    except NotFoundError:
        return []


def _queued(counts: dict[str, int]) -> str:
    return f"{counts.get('cpu', 0)}/{counts.get('gpu', 0)}/{counts.get('io', 0)}"


def _terminate(identity: ProcessIdentity, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; each signal only while the pid is still that process."""
    if not identity.alive():
        return
    os.kill(identity.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not identity.alive():
            return
        time.sleep(0.1)
    if identity.alive():
        os.kill(identity.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _register() -> None:
    """The command groups that live in modules of their own (one line each)."""
    from lattice.cli.db import db
    from lattice.cli.keys import keys
    from lattice.cli.llm import llm
    from lattice.cli.runs import runs
    from lattice.cli.submit import submit

    cli.add_command(db)
    cli.add_command(keys)
    cli.add_command(llm)
    cli.add_command(runs)
    cli.add_command(submit)


_register()

if __name__ == "__main__":
    cli()
