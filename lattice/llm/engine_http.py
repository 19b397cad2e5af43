"""The proxy's HTTP client to engines and providers: one pooled ``aiohttp`` session per pool manager.

Why aiohttp here and httpx elsewhere: a py-spy profile of the head under 8 callers
(``docs/benchmarks/llm.md``) put 35 % of the head's samples in httpx's request path (httpcore's per-request
readability check of a pooled connection, anyio's socket attribute lookups, headers and body written in
two sends) — CPU taken from the engine when they share the cores. aiohttp's client parses in C and
writes a small request in one send; the proxy's one hop per request is the only hot HTTP path of the head,
so only it moves (readiness probes and everything else stay on httpx).

Connections are kept alive and reused (no limit on their number: the pool's gate is the limit); the
session is made on first use, inside the running loop, as aiohttp requires.
"""

from __future__ import annotations

import asyncio

import aiohttp

#: an engine that is down, restarting or died before its answer began (the proxy reroutes these)
ENGINE_DOWN: tuple[type[BaseException], ...] = (aiohttp.ClientConnectionError, aiohttp.ServerTimeoutError,
                                                asyncio.TimeoutError)


class EngineHTTP:
    def __init__(self, connect_timeout_s: float = 5.0, read_timeout_s: float = 600.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0)
            # skip_auto_headers: the proxy forwards what it means to; cookies are never kept between callers
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  cookie_jar=aiohttp.DummyCookieJar(),
                                                  skip_auto_headers=("User-Agent",))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = ["ENGINE_DOWN", "EngineHTTP"]
