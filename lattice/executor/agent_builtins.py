"""Builtins for agent work: run Python code, make an HTTP request, call an OpenAI-compatible chat endpoint, and
read or write a file in the run's workspace.

They are ordinary builtin tasks (``lattice.executor.builtins.BUILTINS``): they run on the cluster as attempts,
under the head's sandbox like any task (above level ``none`` in the sandboxed child, with the network off
unless the task says ``network: true``). What they share:

* **bounded**: every response is read in pieces up to ``max_bytes`` and refused past it (never read whole
  first), and every network call has a timeout;
* **keys stay out of results**: the chat call's key comes from its ``api_key`` input (which the head redacts
  in every view of a spec, see ``lattice.wire.catalog.SECRET_INPUTS``) or from the task's environment
  (``OPENAI_API_KEY``, which a ``llm=`` pool sets); it is never part of an output or an error message;
* **confined files**: a workspace path must be relative, without ``..``, and is opened one component at a
  time with ``O_NOFOLLOW`` relative to the workspace's directory descriptor, so no symlink (planted before or
  during the call) leads out of it.
"""

from __future__ import annotations

import json
import os
from pathlib import PurePosixPath
from typing import Any

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT_S = 30.0
#: where each run's workspace lives on a node when the task's environment does not say
DEFAULT_WORKSPACE_ROOT = "/tmp/lattice-workspaces"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class ResponseTooLarge(ValueError):
    """A response went past the ``max_bytes`` the task allowed."""


class WorkspacePathError(ValueError):
    """A path that would leave the run's workspace (absolute, ``..``, a symlink)."""


class ChatError(RuntimeError):
    """The chat endpoint answered with an error, or without a message."""


def _positive(params: dict[str, Any], name: str, default: float) -> float:
    value = params.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# --- Python code ------------------------------------------------------------------------------------------

def python_code(params: dict[str, Any]) -> dict[str, Any]:
    """Runs ``code`` with ``inputs`` (an object) in scope; the value it assigns to ``result`` is the output.

    It is the user's code, run as the task itself: under the head's sandbox level, exactly as a shipped
    ``@task`` would be (at level ``none``, in the worker, as trusted code).
    """
    code = params.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ValueError("code must be a non-empty string of Python")
    inputs = params.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise TypeError(f"inputs must be an object, got {type(inputs).__name__}")
    scope: dict[str, Any] = {"__name__": "__lattice_code__", "inputs": inputs, "result": None}
    exec(compile(code, "<python_code>", "exec"), scope)
    return {"result": scope.get("result")}


# --- HTTP -------------------------------------------------------------------------------------------------

def _read_bounded(response: Any, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"the response is {declared} bytes, more than max_bytes={max_bytes}")
    body = bytearray()
    for piece in response.iter_bytes():
        body += piece
        if len(body) > max_bytes:
            raise ResponseTooLarge(f"the response is more than max_bytes={max_bytes} bytes")
    return bytes(body)


def _request(method: str, url: str, *, headers: dict[str, str], json_body: Any = None, content: bytes | None = None,
             timeout_s: float, max_bytes: int) -> tuple[int, dict[str, str], bytes]:
    import httpx

    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
    with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True, max_redirects=5) as client, \
            client.stream(method, url, headers=headers, json=json_body, content=content) as response:
        body = _read_bounded(response, max_bytes)
        return response.status_code, dict(response.headers), body


def http_request(params: dict[str, Any]) -> dict[str, Any]:
    """One HTTP request: ``method`` (GET), ``url``, ``headers``, ``body`` (a string is sent as is, anything
    else as JSON), ``timeout_s`` (30) and ``max_bytes`` (10 MiB). Returns ``status``, ``headers``, ``text`` and
    ``json`` (the body parsed, or null when it is not JSON). A 4xx/5xx is a result, not a failure."""
    method = str(params.get("method") or "GET").upper()
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    headers = params.get("headers") or {}
    if not isinstance(headers, dict):
        raise TypeError(f"headers must be an object, got {type(headers).__name__}")
    body = params.get("body")
    content = body.encode() if isinstance(body, str) else None
    status, response_headers, data = _request(
        method, params.get("url"), headers={str(k): str(v) for k, v in headers.items()},  # type: ignore[arg-type]
        json_body=None if body is None or isinstance(body, str) else body, content=content,
        timeout_s=_positive(params, "timeout_s", DEFAULT_TIMEOUT_S),
        max_bytes=int(_positive(params, "max_bytes", DEFAULT_MAX_BYTES)))
    text = data.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return {"status": status, "headers": response_headers, "text": text, "json": parsed}


# --- LLM chat ---------------------------------------------------------------------------------------------

def llm_chat(params: dict[str, Any]) -> dict[str, Any]:
    """A chat completion from any OpenAI-compatible endpoint: ``base_url`` and ``model`` (or the task's
    ``OPENAI_BASE_URL`` / ``OPENAI_MODEL``), ``api_key`` (or ``OPENAI_API_KEY``), and ``messages`` (a list of
    ``{role, content}``) or a ``prompt`` string, plus ``system``, ``temperature`` and ``max_tokens``.
    Returns the assistant's ``result`` text and the ``usage`` the endpoint reported."""
    base_url = params.get("base_url") or os.environ.get("OPENAI_BASE_URL")
    model = params.get("model") or os.environ.get("OPENAI_MODEL")
    if not base_url or not model:
        raise ValueError("base_url and model are required (as inputs, or OPENAI_BASE_URL / OPENAI_MODEL)")
    api_key = params.get("api_key") or os.environ.get("OPENAI_API_KEY")
    messages = params.get("messages")
    if messages is None:
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("give messages (a list of {role, content}) or a prompt string")
        messages = [{"role": "user", "content": prompt}]
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in messages):
        raise TypeError("messages must be a list of {role, content} objects")
    if params.get("system"):
        messages = [{"role": "system", "content": str(params["system"])}, *messages]
    body: dict[str, Any] = {"model": model, "messages": messages}
    for name in ("temperature", "max_tokens"):
        if params.get(name) is not None:
            body[name] = params[name]
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    status, _headers, data = _request(
        "POST", f"{str(base_url).rstrip('/')}/chat/completions", headers=headers, json_body=body,
        timeout_s=_positive(params, "timeout_s", 120.0),
        max_bytes=int(_positive(params, "max_bytes", DEFAULT_MAX_BYTES)))
    text = data.decode("utf-8", errors="replace")
    if status >= 400:
        raise ChatError(f"the chat endpoint answered {status}: {_redacted(text, api_key)[:500]}")
    try:
        answer = json.loads(text)
        content = answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ChatError(f"the chat endpoint's answer has no message: {_redacted(text, api_key)[:500]}") from None
    return {"result": content, "usage": answer.get("usage") or {}}


def _redacted(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


# --- the run's workspace ----------------------------------------------------------------------------------

def workspace_dir() -> str:
    """This run's workspace on this node: ``$LATTICE_WORKSPACE``, set by the head for every attempt
    (``<workspace root>/<run id>``), created on first use."""
    path = os.environ.get("LATTICE_WORKSPACE")
    if not path:
        from lattice.wire.context import current_task

        context = current_task()
        if context is None:
            raise RuntimeError("no run workspace: this is not running as a task of a run")
        path = os.path.join(DEFAULT_WORKSPACE_ROOT, context.run_id)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _parts(path: Any) -> list[str]:
    if not isinstance(path, str) or not path.strip():
        raise WorkspacePathError("path must be a non-empty string, relative to the run's workspace")
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise WorkspacePathError(f"path {path!r} is absolute; give it relative to the run's workspace")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if ".." in parts:
        raise WorkspacePathError(f"path {path!r} contains '..'; it must stay inside the run's workspace")
    if not parts:
        raise WorkspacePathError(f"path {path!r} names the workspace itself, not a file in it")
    return parts


def _open_in_workspace(path: Any, flags: int, create_dirs: bool) -> int:
    """An fd for ``path`` inside the workspace; no component may be a symlink (``O_NOFOLLOW`` each step)."""
    parts = _parts(path)
    directory = os.open(workspace_dir(), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            if create_dirs:
                try:
                    os.mkdir(part, 0o700, dir_fd=directory)
                except FileExistsError:
                    pass
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            except OSError as exc:
                raise WorkspacePathError(f"path {path!r}: {part!r} is not a directory of the workspace "
                                         f"(symlinks are refused): {exc.strerror}") from None
            os.close(directory)
            directory = inner
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW, 0o600, dir_fd=directory)
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: the file itself is a symlink
                raise WorkspacePathError(f"path {path!r} is a symlink; symlinks are refused") from None
            raise
    finally:
        os.close(directory)


def file_write(params: dict[str, Any]) -> dict[str, Any]:
    """Writes ``content`` (a string as is, anything else as JSON) to ``path`` in the run's workspace, making
    its directories; ``append: true`` adds to the end. Returns the path and the bytes written."""
    content = params.get("content", "")
    data = (content if isinstance(content, str) else json.dumps(content)).encode()
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if params.get("append") else os.O_TRUNC)
    fd = _open_in_workspace(params.get("path"), flags, create_dirs=True)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return {"result": {"path": "/".join(_parts(params["path"])), "bytes": len(data)}}


def file_read(params: dict[str, Any]) -> dict[str, Any]:
    """Reads ``path`` from the run's workspace as text (UTF-8), at most ``max_bytes`` (10 MiB)."""
    max_bytes = int(_positive(params, "max_bytes", DEFAULT_MAX_BYTES))
    fd = _open_in_workspace(params.get("path"), os.O_RDONLY, create_dirs=False)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ResponseTooLarge(f"the file {params['path']!r} is more than max_bytes={max_bytes} bytes")
    return {"result": data.decode("utf-8", errors="replace")}


AGENT_BUILTINS = {
    "python_code": python_code,
    "http_request": http_request,
    "llm_chat": llm_chat,
    "file_read": file_read,
    "file_write": file_write,
}

__all__ = ["AGENT_BUILTINS", "ChatError", "ResponseTooLarge", "WorkspacePathError", "file_read", "file_write",
           "http_request", "llm_chat", "python_code", "workspace_dir"]
