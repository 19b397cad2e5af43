"""The asynchronous client: the same operations as :class:`~lattice.LatticeClient`, awaitable."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from lattice.client.base import (
    RESULT_POLL_S,
    AsyncHeadHTTP,
    ClientConfig,
    TaskResult,
    connection_error,
    results_or_raise,
    stream_close_error,
)
from lattice.client.workflow import AsyncLatticeWorkflow
from lattice.errors import LatticeError
from lattice.wire.encoding import value_to_wire
from lattice.wire.restricted_pickle import PickleTrust

_RECONNECT_TRIES = 5


class AsyncLatticeClient:
    """The async twin of :class:`~lattice.LatticeClient`, with the same ``trusted_types``/``trust_outputs``."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0,
                 data_dir: str | Path | None = None, trusted_types: Iterable[type | str] = (),
                 trust_outputs: bool = False) -> None:
        self.config = ClientConfig(url, token, timeout, data_dir)
        self.trust = PickleTrust.of(trusted_types, trust_outputs)
        self._http = AsyncHeadHTTP(self.config, read_timeout=RESULT_POLL_S + timeout)
        self._request = self._http.request

    async def __aenter__(self) -> AsyncLatticeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def create_workflow(self, name: str = "workflow") -> AsyncLatticeWorkflow:
        return AsyncLatticeWorkflow(self, name)

    async def submit_workflow(self, spec: dict[str, Any]) -> str:
        return (await self._request("POST", "/api/v1/workflows", json=spec))["workflow_id"]

    async def start_run(self, workflow_id: str, priority: int = 0, tags: dict[str, str] | None = None,
                        inputs: dict[str, dict[str, Any]] | None = None) -> str:
        """Start a run; ``inputs`` gives this run's values for literal inputs: ``{task: {input: value}}``."""
        body: dict[str, Any] = {"priority": priority, "tags": tags or {}}
        if inputs:
            body["inputs"] = {task: {k: value_to_wire(v) for k, v in values.items()}
                              for task, values in inputs.items()}
        return (await self._request("POST", f"/api/v1/workflows/{workflow_id}/runs", json=body))["run_id"]

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/api/v1/runs/{run_id}")

    async def wait(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = RESULT_POLL_S if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise LatticeError(f"run {run_id} did not finish within {timeout} s")
            body = await self._request("GET", f"/api/v1/runs/{run_id}/results",
                                       params={"wait": min(remaining, RESULT_POLL_S)})
            if body["done"]:
                return body

    async def get_results(self, run_id: str, timeout: float | None = None,
                          trust_outputs: bool | None = None) -> dict[str, Any]:
        """As :meth:`LatticeClient.get_results`; ``trust_outputs`` overrides the client's setting."""
        return results_or_raise(await self.wait(run_id, timeout), self.trust.but(trust_outputs))

    async def get_task_results(self, run_id: str, trust_outputs: bool | None = None) -> dict[str, TaskResult]:
        """As :meth:`LatticeClient.get_task_results`."""
        items = await self._request("GET", f"/api/v1/runs/{run_id}/tasks", params={"include_outputs": True})
        trust = self.trust.but(trust_outputs)
        return {item["name"]: TaskResult.from_api(item, trust) for item in items}

    async def get_logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        params = {"task": task} if task else {}
        return (await self._request("GET", f"/api/v1/runs/{run_id}/logs", params=params))["attempts"]

    async def cancel(self, run_id: str) -> dict[str, Any]:
        return await self._request("POST", f"/api/v1/runs/{run_id}/cancel")

    async def stream(self, run_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Yield the run's events live, in order, until ``run_finished``; reconnects where it left off."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        last, failures = after, 0
        while True:
            try:
                async with connect(self.config.ws_url(run_id, last), additional_headers=self.config.headers,
                                   open_timeout=self.config.timeout) as ws:
                    failures = 0
                    async for message in ws:
                        event = json.loads(message)
                        if event.get("type") == "ping":
                            continue
                        last = max(last, int(event.get("seq", last)))
                        yield event
                        if event.get("type") == "run_finished":
                            return
            except (ConnectionClosed, OSError, InvalidStatus, TimeoutError) as exc:
                typed = stream_close_error(exc, run_id)
                if typed is not None:
                    raise typed from None
                failures += 1
                if failures > _RECONNECT_TRIES:
                    raise connection_error(self.config.url, exc) from exc
                await asyncio.sleep(min(2.0, 0.1 * 2**failures))

    async def nodes(self) -> list[dict[str, Any]]:
        return (await self._request("GET", "/api/v1/cluster/nodes"))["nodes"]

    async def health(self) -> dict[str, Any]:
        return await self._request("GET", "/health")
