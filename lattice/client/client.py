"""The synchronous client: submit workflows, start runs, wait for results, follow events.

Each method sends an endpoint described in :mod:`lattice.client.endpoints` or drives a plan of
:class:`~lattice.client.base.BaseClient`; what is here is only the blocking I/O (``httpx.Client``,
the sync ``websockets`` client, ``time.sleep``). :class:`~lattice.AsyncLatticeClient` has the same
methods, awaitable (``tests/unit/client/test_parity.py`` fails when they drift apart).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from lattice.client import endpoints
from lattice.client.base import BaseClient
from lattice.client.decoding import TaskResult
from lattice.client.endpoints import Call, Plan
from lattice.client.llm import LLMPools
from lattice.client.retry import DEFAULT_UNAVAILABLE_TIMEOUT
from lattice.client.task import TaskDefinition
from lattice.client.transport import HeadHTTP
from lattice.client.workflow import LatticeWorkflow

T = TypeVar("T")


class LatticeClient(BaseClient):
    """Talks to a Lattice head.

    ``url`` defaults to ``$LATTICE_URL``, then the local head's ``head.json``, then
    ``http://localhost:8000``; ``token`` to ``$LATTICE_TOKEN``, then the local head's token file.
    ``progress`` shows a progress bar while waiting on a run (default: when stderr is a terminal).

    Outputs of tasks that ran in a sandbox are untrusted: they are decoded without running their code,
    so only safe standard types and ``trusted_types`` (classes or ``"module.Name"`` strings) come back;
    anything else raises :class:`~lattice.UntrustedOutputError`. ``trust_outputs=True`` decodes them in
    full, as outputs of tasks at sandbox level ``none`` always are.

    A head that cannot be reached, or answers 502/503/504 (it restarts, or shuts down), is ridden out:
    idempotent calls, the wait for results and event streams are retried with backoff and jitter
    for up to ``unavailable_timeout`` seconds from the first failure (0: not at all), then
    :class:`~lattice.HeadUnavailableError` is raised (:mod:`lattice.client.retry` says which calls).
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0,
                 progress: bool | None = None, data_dir: str | Path | None = None,
                 trusted_types: Iterable[type | str] = (), trust_outputs: bool = False,
                 unavailable_timeout: float = DEFAULT_UNAVAILABLE_TIMEOUT) -> None:
        super().__init__(url, token, timeout, progress, data_dir, trusted_types, trust_outputs, unavailable_timeout)
        self._http = HeadHTTP(self.config, read_timeout=self._read_timeout)
        self._request = self._http.request  # the one I/O call; tests put a fake head here
        self.llm = LLMPools(self._send, self.config.url)  # model pools: deploy, list, stop

    def __enter__(self) -> LatticeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- the I/O ------------------------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        """One Call, retried through an unavailable head as the client's policy says (lattice.client.retry)."""
        def once() -> T:
            return call.parse(self._request(call.method, call.path, params=call.params, json=call.json,
                                            headers=call.headers))

        return self.retry.call(call, once, self.config.url)

    def _drive(self, plan: Plan[T]) -> T:
        """Run a plan to its end, answering each Call it yields (an error is raised into the plan)."""
        try:
            call = next(plan)
            while True:
                try:
                    answer = self._send(call)
                except BaseException as exc:  # noqa: BLE001 - the plan cleans up (its progress bar) and re-raises
                    call = plan.throw(exc)
                else:
                    call = plan.send(answer)
        except StopIteration as stop:
            return stop.value

    # --- workflows and runs -------------------------------------------------------------------------

    def create_workflow(self, name: str = "workflow") -> LatticeWorkflow:
        return LatticeWorkflow(self, name)

    def submit_workflow(self, spec: dict[str, Any]) -> str:
        """Register a raw ``lattice.workflow/v1`` spec; returns the workflow's id."""
        return self._send(endpoints.submit_workflow(spec))

    def register_task(self, fn: TaskDefinition, description: str | None = None) -> dict[str, Any]:
        """Publish a ``@task`` to the Playground's palette (its ports, docstring, code and policy); the head
        keeps it in memory for this key's tenant until it restarts. Returns the catalog entry."""
        return self._send(endpoints.register_task(fn.catalog_entry(description)))

    def start_run(self, workflow_id: str, priority: int = 0, tags: dict[str, str] | None = None,
                  inputs: dict[str, dict[str, Any]] | None = None, weight: float = 1.0,
                  idempotency_key: str | None = None) -> str:
        """Start a run; ``inputs`` gives this run's values for literal inputs: ``{task: {input: value}}``;
        ``weight`` is its fair share relative to the tenant's other runs.

        Safe to retry: the request carries an idempotency key (``idempotency_key``, else a fresh one), and
        the head answers a repeated key with the run it started the first time.
        """
        return self._send(endpoints.start_run(workflow_id, priority, tags, inputs, weight, idempotency_key))

    def run_many(self, workflow: LatticeWorkflow | str, inputs: list[dict[str, dict[str, Any]]], priority: int = 0,
                 tags: dict[str, str] | None = None, weight: float = 1.0,
                 idempotency_key: str | None = None) -> list[str]:
        """Start one run of ``workflow`` (a workflow, registered first if it changed, or a workflow id) per
        item of ``inputs`` (each ``{task: {input: value}}``, as for one run), in one request per 1,000 runs;
        returns the run ids in the order of ``inputs``, once every run is committed on the head.

        Safe to retry, as :meth:`start_run` is: the same ``idempotency_key`` starts no run twice.
        """
        if isinstance(workflow, LatticeWorkflow):
            return workflow.map(inputs, priority, tags, weight, idempotency_key)
        runs = [endpoints.run_body(priority, tags, item, weight) for item in inputs]
        return self._drive(endpoints.start_runs_plan(workflow, runs, idempotency_key))

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's state, timings and each task's state (a plain dict, as the API returns it)."""
        return self._send(endpoints.get_run(run_id))

    def list_runs(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Runs, newest first."""
        return self._send(endpoints.list_runs(state, limit))

    def wait(self, run_id: str, timeout: float | None = None, progress: bool | None = None) -> dict[str, Any]:
        """Wait until the run ends and return its results body (does not raise for a failed run)."""
        return self._drive(self._wait_plan(run_id, timeout, progress))

    def get_results(self, run_id: str, timeout: float | None = None, progress: bool | None = None,
                    trust_outputs: bool | None = None) -> dict[str, Any]:
        """Wait for the run and return the merged outputs of its sink tasks.

        Raises :class:`~lattice.TaskFailed` (or a more specific subclass) naming the failed task, or
        :class:`~lattice.RunCancelled`; :class:`~lattice.UntrustedOutputError` for a sandboxed task's
        output that needs an untrusted type. ``trust_outputs`` overrides the client's setting.
        """
        return self._results(self.wait(run_id, timeout, progress), trust_outputs)

    def get_results_many(self, run_ids: list[str], timeout: float | None = None, trust_outputs: bool | None = None,
                         return_exceptions: bool = False) -> list[Any]:
        """Wait for many runs and return each one's outputs (as :meth:`get_results`), in the order of ``run_ids``.

        The head is long-polled for up to 1,000 runs per request. A failed or cancelled run raises its
        error (:class:`~lattice.TaskFailed`, :class:`~lattice.RunCancelled`), an unknown run
        :class:`~lattice.NotFoundError`, a run still going after ``timeout`` :class:`~lattice.WaitTimeout`,
        the first in order; with ``return_exceptions=True`` each error takes its run's place instead.
        """
        waited = self._drive(self._wait_many_plan(run_ids, timeout))
        return self._many_results(run_ids, waited, timeout, trust_outputs, return_exceptions)

    def get_task_results(self, run_id: str, trust_outputs: bool | None = None) -> dict[str, TaskResult]:
        """Every task of the run: state, outputs, attempt, node, timings and error (outputs as in get_results)."""
        return self._send(endpoints.task_results(run_id, self.trust.but(trust_outputs)))

    def get_logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        """One entry per attempt (of ``task``, or of every task): its stdout, stderr, node and error."""
        return self._send(endpoints.get_logs(run_id, task))

    def get_events(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The stored events with ``seq > after`` (a page of up to 1,000); :meth:`stream` follows them live."""
        return self._send(endpoints.get_events(run_id, after))

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel the run and its running tasks; returns the run."""
        return self._send(endpoints.cancel(run_id))

    def stream(self, run_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """Yield the run's events live, in order, each once, until the stream is over.

        A finished run's stream is its replay from ``after``, then the end. A dropped connection (a head
        restart) is resumed after the last event yielded, with backoff, until ``unavailable_timeout``
        (then :class:`~lattice.HeadUnavailableError`).
        """
        from websockets.sync.client import connect

        cursor = self._cursor(run_id, after)
        retryable = cursor.retryable()
        while True:
            failure: BaseException | None = None
            try:
                with connect(cursor.url, additional_headers=self.config.headers,
                             open_timeout=self.config.timeout) as ws:
                    cursor.opened()
                    for message in ws:
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
            time.sleep(cursor.retry_after(failure))

    # --- cluster ------------------------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        """Per node: address, liveness, labels, total and used capacity, GPUs, running tasks."""
        return self._send(endpoints.nodes())

    def resources(self) -> dict[str, Any]:
        """Cluster totals, used capacity and queued tasks per class."""
        return self._send(endpoints.resources())

    def queues(self) -> dict[str, Any]:
        """Per tenant and per run: what is held, queued, and why it waits (``GET /cluster/queues``)."""
        return self._send(endpoints.queues())

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version": ..., "uptime_s": ...}``; needs no token."""
        return self._send(endpoints.health())
