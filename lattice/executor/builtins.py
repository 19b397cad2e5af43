"""Builtin tasks a spec can name instead of shipping code (used by the Playground, HTTP users, benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def noop(params: dict[str, Any]) -> dict[str, Any]:
    """Does nothing; returns ``{"result": None}``."""
    return {"result": None}


def echo(params: dict[str, Any]) -> dict[str, Any]:
    """Returns its inputs as ``{"result": {...}}``."""
    return {"result": dict(params)}


def sleep(params: dict[str, Any]) -> dict[str, Any]:
    """Sleeps ``seconds`` (default 1) and returns ``{"result": seconds}``."""
    seconds = float(params.get("seconds", 1.0))
    time.sleep(seconds)
    return {"result": seconds}


def concat(params: dict[str, Any]) -> dict[str, Any]:
    """Joins its string inputs in name order with ``sep`` (default a space)."""
    sep = str(params.get("sep", " "))
    return {"result": sep.join(str(v) for k, v in sorted(params.items()) if k != "sep")}


BUILTINS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "noop": noop,
    "echo": echo,
    "sleep": sleep,
    "concat": concat,
}
