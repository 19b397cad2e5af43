"""Checks ``lattice start --head`` makes before it starts anything, so a bad setting fails at once.

Each returns the one line to print, naming the flag and the fix: a port another process holds (a
head whose ``/health`` answers would otherwise pass for ours), a sandbox default below the minimum
(every task would be refused), the docker level with no Docker engine (every task would fail at run
time), a ``LATTICE_SANDBOX_CONFIG`` that does not parse. Click's types check each flag's own range;
these check what only makes sense together, or needs the machine.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
from typing import Any

import click

from lattice.wire.sandbox import SandboxLevel


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound, or None. Binds the way uvicorn does (SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"--port {port}: {host}:{port} is already in use (another Lattice head? see "
                        f"'lattice status --url http://{host}:{port}'); stop that process or pick another --port")
            if exc.errno == errno.EACCES:
                return f"--port {port}: binding ports below 1024 needs privileges; pick a port from 1024 up"
            return f"--host {host} / --port {port}: cannot bind: {exc.strerror or exc}"
    return None


def check_host(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A click callback: ``--host`` must be an IP address or a name this machine resolves."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    try:
        socket.getaddrinfo(value, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise click.BadParameter(f"{value!r} is not an IP address or a resolvable host name ({exc})",
                                 param=param) from None
    return value


def check_store_url(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: ``--store-url`` must parse as an SQLAlchemy URL (the database is reached later)."""
    if value is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)
    except ArgumentError as exc:
        raise click.BadParameter(f"not an SQLAlchemy URL ({exc}); e.g. sqlite:////path/lattice.db or "
                                 "postgresql+psycopg://user:pass@host/db", param=param) from None
    return value


def sandbox_config_error(raw: str | None) -> str | None:
    """Why ``LATTICE_SANDBOX_CONFIG`` is not valid JSON of SandboxConfig fields, or None."""
    if not raw:
        return None
    from lattice.executor.sandbox import get_sandbox_config

    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("it must be a JSON object")
        get_sandbox_config().merged(**data)
    except (ValueError, TypeError) as exc:
        return f"LATTICE_SANDBOX_CONFIG is not valid: {exc}"
    return None


def docker_host(raw_sandbox_config: str | None) -> str | None:
    try:
        return (json.loads(raw_sandbox_config or "{}") or {}).get("docker_host")
    except (ValueError, AttributeError):
        return None


def docker_engine_error(host: str | None) -> str | None:
    """Why no Docker engine answers (at ``host``, else ``DOCKER_HOST`` or the default socket), or None."""
    try:
        import docker
    except ImportError:
        return "the Python package 'docker' is not installed (pip install 'lattice-agent[sandbox]')"
    try:
        client: Any = docker.DockerClient(base_url=host, timeout=5) if host else docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - docker raises many types (DockerException, requests errors)
        return f"no Docker engine answers at {host or 'DOCKER_HOST or the default socket'}: {exc}"
    return None


def check_sandbox(sandbox: str, min_sandbox: str, joins_cluster: bool,
                  raw_sandbox_config: str | None) -> list[str]:
    """Refuse (ClickException) what cannot work; return warnings for what may not."""
    default, minimum = SandboxLevel.parse(sandbox), SandboxLevel.parse(min_sandbox)
    if not default.at_least(minimum):
        raise click.UsageError(
            f"--sandbox {default} is weaker than --min-sandbox {minimum}: the head would refuse every task "
            f"that does not ask for a level itself. Pass --sandbox {minimum} (or a stricter level), or lower "
            "--min-sandbox")
    if error := sandbox_config_error(raw_sandbox_config):
        raise click.UsageError(error)
    warnings: list[str] = []
    if default is SandboxLevel.DOCKER or minimum is SandboxLevel.DOCKER:
        problem = docker_engine_error(docker_host(raw_sandbox_config))
        if problem is not None:
            fix = ("start the engine (e.g. 'sudo systemctl start docker'), point DOCKER_HOST (or docker_host in "
                   "LATTICE_SANDBOX_CONFIG) at one, or choose --sandbox seccomp")
            if not joins_cluster:
                raise click.UsageError(f"--sandbox docker: every task runs in a container on this machine, but "
                                       f"{problem}. Fix: {fix}")
            warnings.append(f"--sandbox docker: {problem} on this machine; tasks placed on nodes without an "
                            f"engine will fail. Fix: {fix}")
    return warnings


__all__ = ["check_host", "check_sandbox", "check_store_url", "docker_engine_error", "port_in_use",
           "sandbox_config_error"]
