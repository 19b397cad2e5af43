"""``client.llm``: deploy, list and stop model pools (``/api/v1/llm/pools``), sync and async.

The pools' own endpoint is OpenAI's: point the ``openai`` client at ``{head}/api/v1/llm/{alias}/v1``
(:meth:`LLMPools.base_url`); inside a task, ``params["llm"][alias]`` already holds URL, key and model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lattice.client import endpoints
from lattice.client.endpoints import Call
from lattice.wire.llm import PoolSpec, PoolView

T = TypeVar("T")


def deploy_call(spec: PoolSpec) -> Call[PoolView]:
    call = endpoints.llm_deploy(spec.model_dump(mode="json", exclude_defaults=True))
    return Call(call.method, call.path, json=call.json, parse=PoolView.model_validate)


def list_call() -> Call[list[PoolView]]:
    call = endpoints.llm_list()
    return Call(call.method, call.path, parse=lambda body: [PoolView.model_validate(p) for p in call.parse(body)])


def stop_call(alias: str) -> Call[dict[str, Any]]:
    return endpoints.llm_stop(alias)


def spec_of(alias: str, engine: str, model: str, **options: Any) -> PoolSpec:
    """``options`` are :class:`~lattice.wire.llm.PoolSpec` fields (``max_concurrency=2``, ``gpu_memory_mb=...``)."""
    return PoolSpec(alias=alias, engine=engine, model=model, **options)


class LLMPools:
    def __init__(self, send: Callable[[Call[Any]], Any], url: str) -> None:
        self._send, self._url = send, url.rstrip("/")

    def deploy(self, alias: str, *, engine: str, model: str, **options: Any) -> PoolView:
        return self._send(deploy_call(spec_of(alias, engine, model, **options)))

    def list(self) -> list[PoolView]:
        return self._send(list_call())

    def stop(self, alias: str) -> dict[str, Any]:
        return self._send(stop_call(alias))

    def base_url(self, alias: str) -> str:
        return endpoints.llm_base_url(self._url, alias)


class AsyncLLMPools:
    def __init__(self, send: Callable[[Call[Any]], Awaitable[Any]], url: str) -> None:
        self._send, self._url = send, url.rstrip("/")

    async def deploy(self, alias: str, *, engine: str, model: str, **options: Any) -> PoolView:
        return await self._send(deploy_call(spec_of(alias, engine, model, **options)))

    async def list(self) -> list[PoolView]:
        return await self._send(list_call())

    async def stop(self, alias: str) -> dict[str, Any]:
        return await self._send(stop_call(alias))

    def base_url(self, alias: str) -> str:
        return endpoints.llm_base_url(self._url, alias)
