"""What the sync and async clients share: where the head is, the token, and turning answers into values.

The two clients differ only in I/O; everything about URLs, headers, error bodies and decoding lives
here once.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from lattice.errors import (
    APIError,
    AuthenticationError,
    ErrorInfo,
    HeadUnavailableError,
    NotFoundError,
    RunCancelled,
    exception_from_error_info,
)
from lattice.utils.home import default_home
from lattice.utils.tokens import read_token
from lattice.wire.encoding import Encoding, decode_task_value
from lattice.wire.restricted_pickle import PickleTrust

DEFAULT_URL = "http://localhost:8000"
RESULT_POLL_S = 30.0


def discover_url(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    if os.environ.get("LATTICE_URL"):
        return os.environ["LATTICE_URL"].rstrip("/")
    try:
        info = json.loads((default_home() / "head.json").read_text())
        return str(info["url"]).rstrip("/")
    except (OSError, ValueError, KeyError):
        return DEFAULT_URL


def discover_token(token: str | None, data_dir: str | Path | None = None) -> str | None:
    """An explicit token, else ``$LATTICE_TOKEN``, else the token file of the local head's data dir."""
    if token:
        return token
    if os.environ.get("LATTICE_TOKEN"):
        return os.environ["LATTICE_TOKEN"]
    home = Path(data_dir).expanduser() if data_dir else default_home()
    return read_token(home / "token")


def raise_for_response(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        body = {"type": "http_error", "message": response.text[:500] or response.reason_phrase}
    cls = {401: AuthenticationError, 404: NotFoundError}.get(response.status_code, APIError)
    raise cls(response.status_code, body.get("type", "error"), body.get("message", ""), body.get("field"),
              body.get("hint"))


def connection_error(url: str, exc: Exception) -> HeadUnavailableError:
    return HeadUnavailableError(
        f"cannot reach the Lattice head at {url}: {exc}. Start one with "
        "'lattice start --head --port 8000', or pass the right URL to the client")


def stream_close_error(exc: Exception, run_id: str) -> Exception | None:
    """The typed error for a WebSocket the head closed on purpose (4401 bad token, 4404 unknown run)."""
    code = getattr(getattr(exc, "rcvd", None), "code", None)
    if code == 4401:
        return AuthenticationError(401, "unauthorized", "invalid or missing token", "token",
                                   "pass token= or set LATTICE_TOKEN")
    if code == 4404:
        return NotFoundError(404, "not_found", f"run {run_id!r} not found", "run_id")
    return None


_UNTRUSTED = PickleTrust()  # nothing beyond the restricted decoder's safe types


def decode_wire_value(item: dict[str, Any], trust: PickleTrust = _UNTRUSTED, *, task: str | None = None,
                      output: str | None = None) -> Any:
    """A value as the head sends it (JSON inline, else base64 bytes), decoded by :func:`decode_task_value`."""
    encoding = item.get("encoding", Encoding.JSON)
    if encoding == Encoding.JSON:
        return item.get("value")
    return decode_task_value(encoding, base64.b64decode(item["data"]), trust, task=task, output=output)


def decode_outputs(outputs: dict[str, dict[str, Any]] | None, trust: PickleTrust = _UNTRUSTED,
                   task: str | None = None) -> dict[str, Any]:
    """Decode a dict of wire values: one task's outputs (``task`` given), or merged sink outputs.

    A merged item names its task itself (``"task"``, set by the head), and a shared output name is
    keyed ``"<task>.<output>"``: the error for a refused value then names the plain output.
    """
    decoded = {}
    for key, item in (outputs or {}).items():
        owner = item.get("task")
        if owner is None:
            decoded[key] = decode_wire_value(item, trust, task=task, output=key)
        else:
            decoded[key] = decode_wire_value(item, trust, task=owner, output=key.removeprefix(f"{owner}."))
    return decoded


def results_or_raise(body: dict[str, Any], trust: PickleTrust = _UNTRUSTED) -> dict[str, Any]:
    """A finished run's results as values; a failed or cancelled run raises its typed error.

    The error carries ``trust``, so its ``original_exception()`` decodes as this call would.
    """
    state = body["state"]
    if state == "succeeded":
        return decode_outputs(body.get("outputs"), trust)
    if state == "cancelled":
        raise RunCancelled(body["run_id"])
    error = ErrorInfo.from_dict(body.get("error") or {"kind": "internal", "type": "RunFailed",
                                                     "message": "the run failed"})
    raise exception_from_error_info(body["run_id"], body.get("failed_task"), error, trust)


@dataclass
class TaskResult:
    """One task of a run: its state, decoded outputs, attempt, node, timings and error."""

    name: str
    state: str
    outputs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    attempt_id: str | None = None
    node_id: str | None = None
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    error: ErrorInfo | None = None

    @classmethod
    def from_api(cls, item: dict[str, Any], trust: PickleTrust = _UNTRUSTED) -> TaskResult:
        """One task as ``GET /runs/{id}/tasks`` gives it; its outputs decoded under ``trust``."""
        return cls(
            name=item["name"], state=item["state"], outputs=decode_outputs(item.get("outputs"), trust, item["name"]),
            attempt=item.get("attempt", 0), attempt_id=item.get("attempt_id"), node_id=item.get("node_id"),
            queued_at=item.get("queued_at"), started_at=item.get("started_at"),
            finished_at=item.get("finished_at"), duration_s=item.get("duration_s"),
            error=ErrorInfo.from_dict(item["error"]) if item.get("error") else None,
        )


class HeadHTTP:
    """An ``httpx.Client`` bound to a head: its URL and token, and error bodies turned into exceptions."""

    def __init__(self, config: ClientConfig, read_timeout: float | None = None) -> None:
        self.config = config
        timeout = httpx.Timeout(config.timeout, read=read_timeout or config.timeout)
        self._http = httpx.Client(base_url=config.url, headers=config.headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise connection_error(self.config.url, exc) from exc
        raise_for_response(response)
        return response.json()

    def close(self) -> None:
        self._http.close()


class AsyncHeadHTTP:
    """The async twin of :class:`HeadHTTP`."""

    def __init__(self, config: ClientConfig, read_timeout: float | None = None) -> None:
        self.config = config
        timeout = httpx.Timeout(config.timeout, read=read_timeout or config.timeout)
        self._http = httpx.AsyncClient(base_url=config.url, headers=config.headers, timeout=timeout)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise connection_error(self.config.url, exc) from exc
        raise_for_response(response)
        return response.json()

    async def aclose(self) -> None:
        await self._http.aclose()


class ClientConfig:
    """URL, token and request building shared by both clients."""

    def __init__(self, url: str | None, token: str | None, timeout: float,
                 data_dir: str | Path | None = None) -> None:
        self.url = discover_url(url)
        self.token = discover_token(token, data_dir)
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        headers = {"user-agent": "lattice-client"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def ws_url(self, run_id: str, after: int) -> str:
        base = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/api/v1/runs/{run_id}/events/ws?{urlencode({'after': after})}"
