"""``lattice``: start and stop heads and workers, and show the cluster's status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lattice import __version__
from lattice.core.config import HeadSettings
from lattice.utils.home import default_home
from lattice.wire.sandbox import SandboxLevel

# soft_wrap: long lines (paths, URLs) stay whole instead of being broken at the terminal width
console = Console(stderr=True, soft_wrap=True)
SANDBOX_CHOICES = click.Choice(SandboxLevel.names())
HEAD_START_TIMEOUT_S = 120.0


@click.group()
@click.version_option(__version__, prog_name="lattice")
def cli() -> None:
    """Lattice: a distributed runtime for LLM-agent workflows on Ray."""


@cli.command()
@click.option("--head", "role", flag_value="head", help="Start a head (API server, scheduler, embedded Ray).")
@click.option("--worker", "role", flag_value="worker", help="Join this machine to a head's cluster.")
@click.option("--port", type=int, default=8000, show_default=True, envvar="LATTICE_PORT",
              help="Head: HTTP port.")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="LATTICE_HOST",
              help="Head: address to bind. Use 0.0.0.0 only on a trusted network; auth stays on.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where runs, the token and logs live [default: $LATTICE_HOME or ~/.lattice].")
@click.option("--store-url", default=None, envvar="LATTICE_STORE_URL",
              help="Head: SQLAlchemy URL of the store (e.g. postgresql+psycopg://...).")
@click.option("--ray-address", default=None, envvar="LATTICE_RAY_ADDRESS",
              help="Head: join an existing Ray cluster instead of starting one.")
@click.option("--num-cpus", type=float, default=None, envvar="LATTICE_NUM_CPUS",
              help="CPUs this node offers [default: all].")
@click.option("--num-gpus", type=float, default=None, envvar="LATTICE_NUM_GPUS",
              help="GPUs this node offers [default: detected].")
@click.option("--object-store-mb", type=int, default=512, show_default=True, envvar="LATTICE_OBJECT_STORE_MB",
              help="Ray object store size.")
@click.option("--sandbox", type=SANDBOX_CHOICES, default="none", show_default=True, envvar="LATTICE_SANDBOX",
              help="Head: default sandbox level of tasks.")
@click.option("--min-sandbox", type=SANDBOX_CHOICES, default=None, envvar="LATTICE_MIN_SANDBOX",
              help="Head: weakest level a task may ask for [default: the --sandbox level].")
@click.option("--no-auth", is_flag=True, help="Head: do not require a token (never on a shared network).")
@click.option("--max-body-mb", type=int, default=64, show_default=True, envvar="LATTICE_MAX_BODY_MB",
              help="Head: largest accepted request body.")
@click.option("--io-slots", type=int, default=256, show_default=True, envvar="LATTICE_IO_SLOTS",
              help="Head: concurrent I/O-bound (cpu=0) tasks per node.")
@click.option("--max-output-mb", type=int, default=256, show_default=True, envvar="LATTICE_MAX_OUTPUT_MB",
              help="Head: largest total size of one task's outputs; larger fails the task (output_too_large).")
@click.option("--addr", default=None, help="Worker: the head's HOST:PORT or URL.")
@click.option("--token", default=None, help="Worker: the head's token [default: $LATTICE_TOKEN or local file].")
@click.option("--node-ip", default=None,
              help="Worker: this node's address as the cluster sees it (e.g. 127.0.0.2 for a second local node).")
@click.option("--block", is_flag=True, help="Stay in the foreground until stopped (Ctrl-C stops).")
@click.option("--otel", metavar="URL", expose_value=False, callback=lambda _c, _p, v: _otel_endpoint(v),
              help="Export traces over OTLP/HTTP to URL (sets OTEL_EXPORTER_OTLP_ENDPOINT; needs the otel extra).")
def start(role: str | None, port: int, host: str, data_dir: Path | None, store_url: str | None,
          ray_address: str | None, num_cpus: float | None, num_gpus: float | None, object_store_mb: int,
          sandbox: str, min_sandbox: str | None, no_auth: bool, max_body_mb: int, io_slots: int,
          max_output_mb: int, addr: str | None, token: str | None, node_ip: str | None, block: bool) -> None:
    """Start a head (--head) or a worker node (--worker)."""
    data_dir = (data_dir or default_home()).expanduser().resolve()
    if role == "head":
        settings = HeadSettings(host=host, port=port, data_dir=data_dir, store_url=store_url,
                                ray_address=ray_address, num_cpus=num_cpus, num_gpus=num_gpus,
                                object_store_mb=object_store_mb, sandbox=sandbox,
                                min_sandbox=min_sandbox or sandbox, auth=not no_auth, max_body_mb=max_body_mb,
                                io_slots=io_slots, max_output_mb=max_output_mb,
                                sandbox_config=os.environ.get("LATTICE_SANDBOX_CONFIG"))
        _start_head(settings, block)
    elif role == "worker":
        if not addr:
            raise click.UsageError("--worker needs --addr HEAD_HOST:PORT")
        _start_worker(addr, token, data_dir, num_cpus, num_gpus, object_store_mb, node_ip, block)
    else:
        raise click.UsageError("say what to start: --head or --worker")


def _otel_endpoint(url: str | None) -> None:
    """``--otel URL``: the standard variable, so the head, its Ray and every worker it starts inherit it."""
    if url:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL, e.g. http://127.0.0.1:4318",
                                     param_hint="'--otel'")
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url


def _start_head(settings: HeadSettings, block: bool) -> None:
    from lattice.cli.server import read_head_info, serve

    existing = read_head_info(settings.data_dir)
    if existing and _alive(existing["pid"]):
        raise click.ClickException(
            f"a head already runs for {settings.data_dir} (pid {existing['pid']}, {existing['url']}); "
            "stop it with 'lattice stop' or use another --data-dir")
    if block:
        serve(settings, announce=lambda line: console.print(line, highlight=False))
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / "logs" / "head.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LATTICE_SETTINGS_JSON": settings.model_dump_json()}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lattice.cli.head"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    with console.status(f"starting the Lattice head on {settings.url} (Ray, store, scheduler) ..."):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise click.ClickException(
                    f"the head exited with status {proc.returncode}; last lines of {log_path}:\n"
                    + _tail(log_path))
            if _answers_health(settings.url):
                break
            time.sleep(0.25)
        else:
            proc.terminate()
            raise click.ClickException(f"the head did not answer within {HEAD_START_TIMEOUT_S:.0f} s; "
                                       f"see {log_path}")
    console.print(f"[green]Lattice head running[/] (pid {proc.pid})", highlight=False)
    console.print(_tail(log_path, 8, only_head_lines=True), highlight=False)
    console.print(f"  logs:  {log_path}\n  stop:  lattice stop"
                  + (f" --data-dir {settings.data_dir}" if settings.data_dir != default_home().resolve() else ""),
                  highlight=False)


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


def _join_info(url: str, token: str | None, data_dir: Path) -> dict[str, Any]:
    """What this machine needs to join the head's Ray cluster, asked with the head's token."""
    from lattice.client import endpoints
    from lattice.client.base import ClientConfig, discover_token
    from lattice.client.transport import HeadHTTP
    from lattice.errors import APIError, AuthenticationError, HeadUnavailableError

    try:
        with HeadHTTP(ClientConfig(url, discover_token(token, data_dir), timeout=10.0)) as head:
            return head.send(endpoints.cluster_join())
    except HeadUnavailableError as exc:
        raise click.ClickException(f"cannot reach the head at {url}: {exc.__cause__ or exc}") from exc
    except AuthenticationError as exc:
        raise click.ClickException("the head refused the token; pass --token or set LATTICE_TOKEN") from exc
    except APIError as exc:
        raise click.ClickException(f"the head refused to let this machine join: {exc}") from exc


def _start_worker(addr: str, token: str | None, data_dir: Path, num_cpus: float | None,
                  num_gpus: float | None, object_store_mb: int, node_ip: str | None, block: bool) -> None:
    from lattice.executor.ray_process import RayProcess

    url = addr if addr.startswith("http") else f"http://{addr}"
    join = _join_info(url, token, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = RayProcess(data_dir, "ray-worker.log")
    existing = _read_json(data_dir / "worker.json")
    if existing and _alive(existing["pid"]):
        raise click.ClickException(f"a worker already runs for {data_dir} (pid {existing['pid']}); "
                                   "stop it with 'lattice stop --data-dir ...' or use another --data-dir")
    proc.start_worker(join["ray_address"], join["ray_token"] or "", num_cpus, num_gpus, object_store_mb, node_ip)
    info = {"pid": proc.pgid, "head": url, "ray_address": join["ray_address"], "started_at": time.time()}
    (data_dir / "worker.json").write_text(json.dumps(info, indent=2))
    console.print(f"[green]worker joined[/] {join['ray_address']} (Ray pid {proc.pgid}); stop: lattice stop"
                  f" --data-dir {data_dir}", highlight=False)
    if block:
        try:
            assert proc.proc is not None
            proc.proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            proc.stop()
            (data_dir / "worker.json").unlink(missing_ok=True)


@cli.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The head's or worker's data dir [default: $LATTICE_HOME or ~/.lattice].")
@click.option("--timeout", type=float, default=20.0, show_default=True, help="Seconds before SIGKILL.")
def stop(data_dir: Path | None, timeout: float) -> None:
    """Stop the head (and the Ray processes it started) and any worker of this data dir."""
    from lattice.executor.ray_process import kill_process_group

    data_dir = (data_dir or default_home()).expanduser().resolve()
    stopped = False
    head = _read_json(data_dir / "head.json")
    if head:
        if _alive(head["pid"]):
            with console.status(f"stopping the head (pid {head['pid']}) ..."):
                _terminate(head["pid"], timeout)
            stopped = True
        if head.get("ray_pgid"):
            kill_process_group(int(head["ray_pgid"]), timeout=5)
        (data_dir / "head.json").unlink(missing_ok=True)
    worker = _read_json(data_dir / "worker.json")
    if worker:
        kill_process_group(int(worker["pid"]), timeout=timeout)
        (data_dir / "worker.json").unlink(missing_ok=True)
        stopped = True
    if stopped:
        console.print("[green]stopped[/]")
    else:
        console.print(f"nothing runs for {data_dir}")


@cli.command()
@click.option("--url", default=None, help="Head URL [default: the local head of --data-dir].")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--token", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def status(url: str | None, data_dir: Path | None, token: str | None, as_json: bool) -> None:
    """Show the head's health, nodes and resources."""
    from lattice.client import LatticeClient
    from lattice.errors import LatticeError

    data_dir = (data_dir or default_home()).expanduser().resolve()
    if url is None:
        head = _read_json(data_dir / "head.json")
        url = head["url"] if head else None
    try:
        with LatticeClient(url, token=token, data_dir=data_dir, timeout=10) as client:
            health, nodes, totals = client.health(), client.nodes(), client.resources()
            runs = client.list_runs(limit=5)
    except LatticeError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"health": health, "nodes": nodes, "resources": totals}, indent=2))
        return
    out = Console()
    out.print(f"[bold]Lattice head[/] {client.config.url}  v{health['version']}  up {health['uptime_s']:.0f} s")
    table = Table("node", "address", "alive", "CPU used/total", "GPU used/total", "memory MB used/total",
                  "tasks", title="nodes")
    for node in nodes:
        table.add_row(node["node_id"][:12], node["address"], "yes" if node["alive"] else "no",
                      f"{node['used']['cpu']:g}/{node['total']['cpu']:g}",
                      f"{node['used']['gpu']:g}/{node['total']['gpu']:g}",
                      f"{node['used']['memory_mb']:.0f}/{node['total']['memory_mb']:.0f}",
                      str(node["running_tasks"]))
    out.print(table)
    queued = ", ".join(f"{k}: {v}" for k, v in totals["queued_tasks"].items())
    out.print(f"running tasks: {totals['running_tasks']}   queued: {queued}")
    if runs:
        recent = Table("run", "workflow", "state", "created", title="recent runs")
        for run in runs:
            recent.add_row(run["run_id"][:12], run["workflow_name"], run["state"],
                           time.strftime("%H:%M:%S", time.localtime(run["created_at"])))
        out.print(recent)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _terminate(pid: int, timeout: float) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 20, only_head_lines: bool = False) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    if only_head_lines:
        start = max((i for i, line in enumerate(text) if line.startswith("Lattice head listening")), default=0)
        return "\n".join(text[start:start + lines])
    return "\n".join(text[-lines:])


if __name__ == "__main__":
    cli()
