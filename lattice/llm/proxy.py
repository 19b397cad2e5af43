"""One request through a pool: admit (gate), route, forward to the engine, count, release.

The body is forwarded as the caller sent it, with ``model`` set to the name the engine serves (so a task
may say ``model="anything"``): the caller's bytes unchanged when they already name it, else re-encoded
once. The hop to the engine is ``aiohttp`` over kept-alive connections (``engine_http.py`` says why).
Streams pass through chunk by chunk (SSE bytes as the engine wrote them);
tokens are read from the engine's ``usage`` (OpenAI shape; for streams, the final chunk's, else one per
content chunk). A replica that fails before its answer began is taken out and the request is admitted
again and goes to another replica, or to this one once restarted (up to ``MAX_REROUTES`` times); once the
answer began (a stream's first bytes), a failure ends that answer, since its bytes are with the caller.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from lattice.llm.engine_http import ENGINE_DOWN
from lattice.llm.gate import Grant
from lattice.llm.manager import Pool, PoolError, PoolManager

MAX_REROUTES = 3
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}


@dataclass
class Forwarded:
    status: int
    headers: dict[str, str]
    #: the whole body (errors, non-streaming answers) or the stream of bytes
    content: bytes | None = None
    stream: AsyncIterator[bytes] | None = None


def estimate_tokens(body: dict[str, Any], size_bytes: int | None = None) -> float:
    """What a request is charged when admitted: prompt size (4 bytes a token; the whole body's size when
    given, which spares encoding the prompt again) plus its max_tokens."""
    if size_bytes is None:
        size_bytes = len(json.dumps(body.get("messages") or body.get("prompt") or ""))
    size = size_bytes / 4
    wanted = body.get("max_tokens") or body.get("max_completion_tokens") or 16
    try:
        return size + float(wanted)
    except (TypeError, ValueError):
        return size + 16.0


def _usage(data: Any) -> tuple[float, float] | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    return float(usage.get("prompt_tokens") or 0), float(usage.get("completion_tokens") or 0)


async def forward(manager: PoolManager, pool: Pool, run: str, path: str, body: dict[str, Any],
                  raw: bytes | None = None) -> Forwarded:
    """Raises ``GateError`` (429/503) or :class:`PoolError`; else the engine's answer, status included.

    ``raw``: the caller's body as it came (``body`` parsed), sent unchanged when it names the pool's model.
    """
    manager.demand(pool)
    stream = bool(body.get("stream"))
    estimate = estimate_tokens(body, len(raw) if raw is not None else None)
    if raw is None or body.get("model") != pool.served_model:  # the pool's model, whatever the caller said
        raw = json.dumps({**body, "model": pool.served_model}, separators=(",", ":")).encode()
    session = manager.engine_http.session()
    exclude: frozenset[int] = frozenset()
    last_error = ""
    for _ in range(MAX_REROUTES + 1):
        try:
            grant = await pool.gate.acquire(run, estimate, exclude, readmit=bool(exclude))
        except Exception:
            pool.stats.rejected += 1
            raise
        base, headers = manager.target(pool, grant.slot)
        started = time.monotonic()
        try:
            response = await session.post(f"{base}/{path}", data=raw,
                                          headers={**headers, "content-type": "application/json"})
        except ENGINE_DOWN as exc:
            # no answer began: the replica is down (refused, reset, died mid-generation). Take it out, admit
            # the request again and send it elsewhere (or to the restarted replica). A completion has no side
            # effects, so one the dead engine had begun is generated again rather than lost.
            last_error = f"{type(exc).__name__}: {exc}"
            manager.replica_failed(pool, grant.slot, last_error)
            exclude = exclude | {id(grant.slot)}
            pool.gate.requeue(grant)
            continue
        except BaseException:
            pool.gate.release(grant, tokens=0.0)
            raise
        out_headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
        if stream and response.status < 400:
            return Forwarded(response.status, out_headers, stream=_relay(manager, pool, grant, response, started, run))
        try:
            content = await response.read()
        except BaseException:
            pool.gate.release(grant, tokens=0.0)
            raise
        finally:
            response.release()
        seconds = time.monotonic() - started
        tokens_in, tokens_out = 0.0, 0.0
        if response.status < 400:
            try:
                counted = _usage(json.loads(content))
            except ValueError:
                counted = None
            if counted is not None:
                tokens_in, tokens_out = counted
            pool.stats.observe_ttft(seconds)
        else:
            pool.stats.failed += 1
        _finish(manager, pool, grant, run, tokens_in, tokens_out, seconds, response.status)
        return Forwarded(response.status, out_headers, content=content)
    raise PoolError(503, "unavailable", f"no replica of {pool.alias!r} could be reached ({last_error})",
                    "alias", "the pool's replicas are restarting; retry shortly (see lattice llm list)")


async def _relay(manager: PoolManager, pool: Pool, grant: Grant, response: aiohttp.ClientResponse,
                 started: float, run: str) -> AsyncIterator[bytes]:
    tokens_in = tokens_out = 0.0
    chunks = 0
    counted: tuple[float, float] | None = None
    first = True
    pending = b""
    status = response.status
    try:
        async for raw in response.content.iter_any():
            if first:
                pool.stats.observe_ttft(time.monotonic() - started)
                first = False
            pending += raw
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    continue
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                usage = _usage(event)
                if usage is not None:
                    counted = usage
                elif event.get("choices"):
                    chunks += 1
            yield raw
    except BaseException:
        status = 499  # the caller went away (or the engine broke off): still released and counted
        raise
    finally:
        response.release()  # back to the pool when read to the end, else the connection is closed
        if counted is not None:
            tokens_in, tokens_out = counted
        else:
            tokens_out = float(chunks)
        _finish(manager, pool, grant, run, tokens_in, tokens_out, time.monotonic() - started, status)


def _finish(manager: PoolManager, pool: Pool, grant: Grant, run: str, tokens_in: float, tokens_out: float,
            seconds: float, status: int) -> None:
    pool.gate.release(grant, tokens=tokens_in + tokens_out, seconds=seconds)
    pool.stats.requests += 1
    pool.stats.observe_tokens(tokens_in, tokens_out)
    pool.last_used = time.time()
    if manager.on_request is not None:
        manager.on_request(run, pool.alias, {"status": status, "tokens_in": int(tokens_in),
                                             "tokens_out": int(tokens_out), "seconds": round(seconds, 4),
                                             "waited_s": round(grant.waited_s, 4)})
