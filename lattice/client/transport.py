"""A connection to a head over httpx, sync and async: sends Calls, and turns failures into typed errors.

The one place where an ``httpx`` request is made for the client side (the clients, the LangGraph
checkpointer, the CLI): a connection error becomes :class:`~lattice.HeadUnavailableError` (saying
whether the request may have reached the head), an error answer :class:`~lattice.APIError` or a
subclass (:func:`~lattice.client.base.api_error`). Each answer's ``X-Lattice-Version`` is checked
against this client's (:mod:`lattice.client.compat`). Sending one request is all it does: retrying
is the clients' (:mod:`lattice.client.retry`), so that a command-line check fails fast.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

import httpx

from lattice.client.base import ClientConfig, api_error, connection_error
from lattice.client.compat import HEAD_VERSION_HEADER, check_head_version
from lattice.client.endpoints import Call

T = TypeVar("T")

__all__ = ["AsyncHeadHTTP", "HeadHTTP"]


def _timeout(config: ClientConfig, read_timeout: float | None) -> httpx.Timeout:
    return httpx.Timeout(config.timeout, read=read_timeout or config.timeout)


def _unavailable(config: ClientConfig, exc: httpx.TransportError) -> Exception:
    """The typed error; a refused or timed-out connect never sent the request, so any call may be resent."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    return connection_error(config.url, exc, request_sent=not never_sent)


def _json_or_raise(config: ClientConfig, response: httpx.Response) -> Any:
    check_head_version(config.url, response.headers.get(HEAD_VERSION_HEADER))
    if response.status_code >= 400:
        raise api_error(response.status_code, response.text, response.reason_phrase)
    return response.json()


class HeadHTTP:
    """An ``httpx.Client`` bound to a head: its URL, token and timeouts; thread-safe, one pool."""

    def __init__(self, config: ClientConfig, read_timeout: float | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._http = httpx.Client(base_url=config.url, headers=config.headers,
                                  timeout=_timeout(config, read_timeout), transport=transport)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer of one request (``kwargs`` as for ``httpx.Client.request``)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _unavailable(self.config, exc) from exc
        return _json_or_raise(self.config, response)

    def send(self, call: Call[T]) -> T:
        """One try of ``call`` (no retry: see the module's docstring)."""
        return call.parse(self.request(call.method, call.path, params=call.params, json=call.json,
                                       headers=call.headers))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HeadHTTP:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncHeadHTTP:
    """The async twin of :class:`HeadHTTP` (an ``httpx.AsyncClient``, bound to the loop that first uses it)."""

    def __init__(self, config: ClientConfig, read_timeout: float | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._http = httpx.AsyncClient(base_url=config.url, headers=config.headers,
                                       timeout=_timeout(config, read_timeout), transport=transport)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _unavailable(self.config, exc) from exc
        return _json_or_raise(self.config, response)

    async def send(self, call: Call[T]) -> T:
        return call.parse(await self.request(call.method, call.path, params=call.params, json=call.json,
                                             headers=call.headers))

    async def aclose(self) -> None:
        await self._http.aclose()
