"""The asynchronous client: every operation of :class:`~lattice.LatticeClient`, awaitable.

The same endpoints (:mod:`lattice.client.endpoints`) and plans (:class:`~lattice.client.base.BaseClient`)
as the sync client; only the I/O differs: ``httpx.AsyncClient``, the asyncio ``websockets`` client,
``asyncio.sleep``. ``tests/unit/client/test_parity.py`` compares the two clients' methods and
signatures, so a call added to one and not the other fails the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, TypeVar

from lattice.client import endpoints
from lattice.client.base import BaseClient
from lattice.client.decoding import TaskResult
from lattice.client.endpoints import Call, Plan
from lattice.client.llm import AsyncLLMPools
from lattice.client.retry import DEFAULT_UNAVAILABLE_TIMEOUT
from lattice.client.task import TaskDefinition
from lattice.client.transport import AsyncHeadHTTP
from lattice.client.workflow import AsyncLatticeWorkflow

T = TypeVar("T")


class AsyncLatticeClient(BaseClient):
    """The async twin of :class:`~lattice.LatticeClient`: the same arguments, the same calls, awaited.

    ``progress`` shows a progress bar while a call waits on a run, as for the sync client (default: when
    stderr is a terminal); ``trusted_types``/``trust_outputs`` decide how sandboxed outputs decode;
    ``unavailable_timeout`` how long an unavailable head is ridden out, as for the sync client.
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0,
                 progress: bool | None = None, data_dir: str | Path | None = None,
                 trusted_types: Iterable[type | str] = (), trust_outputs: bool = False,
                 unavailable_timeout: float = DEFAULT_UNAVAILABLE_TIMEOUT) -> None:
        super().__init__(url, token, timeout, progress, data_dir, trusted_types, trust_outputs, unavailable_timeout)
        self._http = AsyncHeadHTTP(self.config, read_timeout=self._read_timeout)
        self._request = self._http.request  # the one I/O call; tests put a fake head here
        self.llm = AsyncLLMPools(self._send, self.config.url)  # model pools: deploy, list, stop

    async def __aenter__(self) -> AsyncLatticeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the I/O ------------------------------------------------------------------------------------

    async def _send(self, call: Call[T]) -> T:
        """One Call, retried through an unavailable head as the client's policy says (lattice.client.retry)."""
        async def once() -> T:
            return call.parse(await self._request(call.method, call.path, params=call.params, json=call.json,
                                                  headers=call.headers))

        return await self.retry.acall(call, once, self.config.url)

    async def _drive(self, plan: Plan[T]) -> T:
        """Run a plan to its end, awaiting each Call it yields (an error is raised into the plan)."""
        try:
            call = next(plan)
            while True:
                try:
                    answer = await self._send(call)
                except BaseException as exc:  # noqa: BLE001 - the plan cleans up (its progress bar) and re-raises
                    call = plan.throw(exc)
                else:
                    call = plan.send(answer)
        except StopIteration as stop:
            return stop.value

    # --- workflows and runs -------------------------------------------------------------------------

    def create_workflow(self, name: str = "workflow") -> AsyncLatticeWorkflow:
        return AsyncLatticeWorkflow(self, name)

    async def submit_workflow(self, spec: dict[str, Any]) -> str:
        """As :meth:`LatticeClient.submit_workflow`."""
        return await self._send(endpoints.submit_workflow(spec))

    async def register_task(self, fn: TaskDefinition, description: str | None = None) -> dict[str, Any]:
        """As :meth:`LatticeClient.register_task`."""
        return await self._send(endpoints.register_task(fn.catalog_entry(description)))

    async def start_run(self, workflow_id: str, priority: int = 0, tags: dict[str, str] | None = None,
                        inputs: dict[str, dict[str, Any]] | None = None, weight: float = 1.0,
                        idempotency_key: str | None = None) -> str:
        """As :meth:`LatticeClient.start_run` (idempotent through its key)."""
        return await self._send(endpoints.start_run(workflow_id, priority, tags, inputs, weight, idempotency_key))

    async def run_many(self, workflow: AsyncLatticeWorkflow | str, inputs: list[dict[str, dict[str, Any]]],
                       priority: int = 0, tags: dict[str, str] | None = None, weight: float = 1.0,
                       idempotency_key: str | None = None) -> list[str]:
        """As :meth:`LatticeClient.run_many`: many runs, one request per 1,000, ids once all are committed."""
        if isinstance(workflow, AsyncLatticeWorkflow):
            return await workflow.map(inputs, priority, tags, weight, idempotency_key)
        runs = [endpoints.run_body(priority, tags, item, weight) for item in inputs]
        return await self._drive(endpoints.start_runs_plan(workflow, runs, idempotency_key))

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """As :meth:`LatticeClient.get_run`."""
        return await self._send(endpoints.get_run(run_id))

    async def list_runs(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """As :meth:`LatticeClient.list_runs`."""
        return await self._send(endpoints.list_runs(state, limit))

    async def wait(self, run_id: str, timeout: float | None = None, progress: bool | None = None) -> dict[str, Any]:
        """As :meth:`LatticeClient.wait`; the event loop runs other tasks while the head holds the request."""
        return await self._drive(self._wait_plan(run_id, timeout, progress))

    async def get_results(self, run_id: str, timeout: float | None = None, progress: bool | None = None,
                          trust_outputs: bool | None = None) -> dict[str, Any]:
        """As :meth:`LatticeClient.get_results`; ``trust_outputs`` overrides the client's setting."""
        return self._results(await self.wait(run_id, timeout, progress), trust_outputs)

    async def get_results_many(self, run_ids: list[str], timeout: float | None = None,
                               trust_outputs: bool | None = None, return_exceptions: bool = False) -> list[Any]:
        """As :meth:`LatticeClient.get_results_many`: each run's outputs in order, long-polled 1,000 at a time."""
        waited = await self._drive(self._wait_many_plan(run_ids, timeout))
        return self._many_results(run_ids, waited, timeout, trust_outputs, return_exceptions)

    async def get_task_results(self, run_id: str, trust_outputs: bool | None = None) -> dict[str, TaskResult]:
        """As :meth:`LatticeClient.get_task_results`."""
        return await self._send(endpoints.task_results(run_id, self.trust.but(trust_outputs)))

    async def get_logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        """As :meth:`LatticeClient.get_logs`."""
        return await self._send(endpoints.get_logs(run_id, task))

    async def get_events(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """As :meth:`LatticeClient.get_events`."""
        return await self._send(endpoints.get_events(run_id, after))

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """As :meth:`LatticeClient.cancel`."""
        return await self._send(endpoints.cancel(run_id))

    async def stream(self, run_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """As :meth:`LatticeClient.stream`: each event once, in order, resumed across a head restart."""
        from websockets.asyncio.client import connect

        cursor = self._cursor(run_id, after)
        retryable = cursor.retryable()
        while True:
            failure: BaseException | None = None
            try:
                async with connect(cursor.url, additional_headers=self.config.headers,
                                   open_timeout=self.config.timeout) as ws:
                    cursor.opened()
                    async for message in ws:
                        event = cursor.read(message)
                        if event is None:
                            continue
                        yield event
                        if cursor.finished:
                            return
                    if cursor.complete(ws.close_code):
                        return
            except retryable as exc:
                failure = exc
            await asyncio.sleep(cursor.retry_after(failure))

    # --- cluster ------------------------------------------------------------------------------------

    async def nodes(self) -> list[dict[str, Any]]:
        """As :meth:`LatticeClient.nodes`."""
        return await self._send(endpoints.nodes())

    async def resources(self) -> dict[str, Any]:
        """As :meth:`LatticeClient.resources`."""
        return await self._send(endpoints.resources())

    async def queues(self) -> dict[str, Any]:
        """As :meth:`LatticeClient.queues`."""
        return await self._send(endpoints.queues())

    async def health(self) -> dict[str, Any]:
        """As :meth:`LatticeClient.health`."""
        return await self._send(endpoints.health())
