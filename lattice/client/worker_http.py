"""Sending a Call with the standard library: for code that runs inside a task, on a worker.

A task that talks to its head (a LangGraph node streaming ``custom`` chunks) sends a handful of small
requests from a process that may be fresh (a sandbox child): importing httpx and setting up its TLS
context there would cost a few hundred milliseconds for them. ``urllib`` is already loaded in most
processes and costs no set-up. Requests, auth and error answers are the core's all the same
(:mod:`lattice.client.endpoints`, :class:`~lattice.client.base.ClientConfig`,
:func:`~lattice.client.base.api_error`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TypeVar
from urllib.parse import urlencode

from lattice.client.base import ClientConfig, api_error, connection_error
from lattice.client.endpoints import Call

T = TypeVar("T")

__all__ = ["WorkerHTTP"]


def _query_value(value: object) -> str:
    """A query value as httpx writes it (``true``/``false``, ``""`` for None), so both senders agree."""
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


class WorkerHTTP:
    """Blocking, one connection per request, no pool: right for a few requests, wrong for a client."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    def send(self, call: Call[T]) -> T:
        url = self.config.url + call.path
        if call.params:
            url += "?" + urlencode({key: _query_value(value) for key, value in call.params.items()})
        data = json.dumps(call.json).encode() if call.json is not None else None
        headers = {**self.config.headers, **(call.headers or {}), "content-type": "application/json"}
        request = urllib.request.Request(url, data=data, headers=headers, method=call.method)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:  # an answer, not a transport failure: the head's error body
            raise api_error(exc.code, exc.read().decode(errors="replace"), str(exc.reason)) from None
        except OSError as exc:  # URLError, refused, reset, timed out
            refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
            raise connection_error(self.config.url, exc, request_sent=not refused) from exc
        return call.parse(json.loads(body or b"null"))
