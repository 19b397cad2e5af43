"""Builtin tasks a spec can name instead of shipping code (used by the Playground, HTTP users, benchmarks).

Each one's ports are described in :mod:`lattice.wire.catalog` (the Playground's palette). The ones that reach
out (Python code, HTTP, LLM chat, workspace files) live in :mod:`lattice.executor.agent_builtins`.
"""

from __future__ import annotations

import json
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


def prompt_template(params: dict[str, Any]) -> dict[str, Any]:
    """Fills ``{name}`` placeholders of ``template`` from ``values`` (a missing one fails, naming it)."""
    template = str(params.get("template", ""))
    values = params.get("values") or {}
    if not isinstance(values, dict):
        raise TypeError(f"values must be an object, got {type(values).__name__}")
    try:
        return {"result": template.format_map(values)}
    except KeyError as exc:
        raise KeyError(f"the template names {exc.args[0]!r}, which values does not have") from None


def json_extract(params: dict[str, Any]) -> dict[str, Any]:
    """Reads the dotted ``path`` (``a.b.0.c``) out of ``data``; a string ``data`` is parsed as JSON first."""
    data = params.get("data")
    if isinstance(data, str):
        data = json.loads(data)
    for part in [p for p in str(params.get("path", "")).split(".") if p]:
        if isinstance(data, list):
            data = data[int(part)]
        elif isinstance(data, dict):
            if part not in data:
                raise KeyError(f"no key {part!r} at this point of the path {params.get('path')!r}")
            data = data[part]
        else:
            raise TypeError(f"cannot read {part!r} of a {type(data).__name__}")
    return {"result": data}


def text_split(params: dict[str, Any]) -> dict[str, Any]:
    """Splits ``text`` on ``sep`` (default a newline); empty parts are dropped."""
    sep = str(params.get("sep", "\n")) or "\n"
    return {"result": [part for part in str(params.get("text", "")).split(sep) if part]}


def text_join(params: dict[str, Any]) -> dict[str, Any]:
    """Joins the list ``items`` with ``sep`` (default a newline)."""
    items = params.get("items") or []
    if not isinstance(items, list | tuple):
        raise TypeError(f"items must be a list, got {type(items).__name__}")
    return {"result": str(params.get("sep", "\n")).join(str(item) for item in items)}


from lattice.executor.agent_builtins import AGENT_BUILTINS  # noqa: E402 - after the simple ones, by design

BUILTINS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "noop": noop,
    "echo": echo,
    "sleep": sleep,
    "concat": concat,
    "prompt_template": prompt_template,
    "json_extract": json_extract,
    "text_split": text_split,
    "text_join": text_join,
    **AGENT_BUILTINS,
}
