"""What a head says when it is up: where it listens, its data, its auth, and how workers join it.

Written once and used twice: the head logs it when its port is bound, and ``lattice start --head``
prints it after checking that the head which answers is the one it started. The worker hint is a
command a person can paste: the address workers must use (never loopback when the head listens on
every interface), and a placeholder for the token (the token itself is never printed).
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import psutil

from lattice.core.config import HeadSettings

_ANY = ("0.0.0.0", "::", "")


def redact_url(url: str) -> str:
    """A store URL without its password (``scheme://***@host/db``)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_addresses() -> list[str]:
    """This machine's IPv4 addresses other machines may reach it at (no loopback, no link-local)."""
    found: list[str] = []
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for addr in addrs:
            if addr.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(addr.address)
            if not (ip.is_loopback or ip.is_link_local) and addr.address not in found:
                found.append(addr.address)
    return found


def worker_hint(settings: HeadSettings) -> list[str]:
    """How a worker joins: the exact command, with the address it must use and a token placeholder."""
    token = f" --token <TOKEN from {settings.token_path}>" if settings.auth else ""
    if is_loopback(settings.host):
        others = host_addresses()
        example = f" (e.g. --host {others[0]})" if others else ""
        return [
            f"  workers: this head listens on {settings.host} only, so workers on other machines cannot reach it;",
            f"           restart it with --host 0.0.0.0 or this machine's address{example} to accept them.",
            f"           A second node on this machine: lattice start --worker --addr {settings.url}{token}"
            " --data-dir OTHER_DIR --node-ip 127.0.0.2",
        ]
    if settings.host in _ANY:
        others = host_addresses()
        if not others:
            return [f"  workers: lattice start --worker --addr http://<THIS_HOST>:{settings.port}{token}"
                    "  (no non-loopback address found on this machine)"]
        line = f"  workers: lattice start --worker --addr http://{others[0]}:{settings.port}{token}"
        if len(others) > 1:
            line += f"   (this machine's other addresses: {', '.join(others[1:])})"
        return [line]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return [f"  workers: lattice start --worker --addr http://{host}:{settings.port}{token}"]


def head_banner(settings: HeadSettings, ray_address: str, pid: int) -> list[str]:
    lines = [f"Lattice head listening on {settings.url} (pid {pid})",
             f"  data:  {settings.data_dir} (store: {redact_url(settings.resolved_store_url)})"]
    if settings.auth:
        lines.append(f"  auth:  clients send 'Authorization: Bearer <token>'; the token is in {settings.token_path}"
                     " (clients on this machine read it themselves; elsewhere pass token= or set LATTICE_TOKEN)")
    else:
        lines.append("  auth:  DISABLED (--no-auth); anyone who reaches the port can run code")
    lines.append(f"  ray:   {ray_address}")
    pages = f"  board: {settings.url}/board"
    lines.append(pages + (f"   playground: {settings.url}/playground" if settings.playground else ""))
    lines.extend(worker_hint(settings))
    return lines


def log_paths(data_dir: Path) -> tuple[Path, Path]:
    """A background head's log (rotated, every line timestamped) and its raw stdout/stderr (crashes)."""
    logs = data_dir / "logs"
    return logs / "head.log", logs / "head.out"


__all__ = ["head_banner", "host_addresses", "is_loopback", "log_paths", "redact_url", "worker_hint"]
