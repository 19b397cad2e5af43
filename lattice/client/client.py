"""The synchronous client: submit workflows, start runs, wait for results, follow events."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lattice.client.base import (
    RESULT_POLL_S,
    ClientConfig,
    HeadHTTP,
    TaskResult,
    connection_error,
    results_or_raise,
    stream_close_error,
)
from lattice.client.progress import RunProgress
from lattice.client.workflow import LatticeWorkflow
from lattice.errors import LatticeError
from lattice.wire.encoding import value_to_wire
from lattice.wire.restricted_pickle import PickleTrust

_RECONNECT_TRIES = 5


class LatticeClient:
    """Talks to a Lattice head.

    ``url`` defaults to ``$LATTICE_URL``, then the local head's ``head.json``, then
    ``http://localhost:8000``; ``token`` to ``$LATTICE_TOKEN``, then the local head's token file.
    ``progress`` shows a progress bar while waiting on a run (default: when stderr is a terminal).

    Outputs of tasks that ran in a sandbox are untrusted: they are decoded without running their code,
    so only safe standard types and ``trusted_types`` (classes or ``"module.Name"`` strings) come back;
    anything else raises :class:`~lattice.UntrustedOutputError`. ``trust_outputs=True`` decodes them in
    full, as outputs of tasks at sandbox level ``none`` always are.
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0,
                 progress: bool | None = None, data_dir: str | Path | None = None,
                 trusted_types: Iterable[type | str] = (), trust_outputs: bool = False) -> None:
        self.config = ClientConfig(url, token, timeout, data_dir)
        self.progress = progress
        self.trust = PickleTrust.of(trusted_types, trust_outputs)
        self._http = HeadHTTP(self.config, read_timeout=RESULT_POLL_S + timeout)
        self._request = self._http.request

    def __enter__(self) -> LatticeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- workflows and runs -------------------------------------------------------------------------

    def create_workflow(self, name: str = "workflow") -> LatticeWorkflow:
        return LatticeWorkflow(self, name)

    def submit_workflow(self, spec: dict[str, Any]) -> str:
        return self._request("POST", "/api/v1/workflows", json=spec)["workflow_id"]

    def start_run(self, workflow_id: str, priority: int = 0, tags: dict[str, str] | None = None,
                        inputs: dict[str, dict[str, Any]] | None = None) -> str:
        """Start a run; ``inputs`` gives this run's values for literal inputs: ``{task: {input: value}}``."""
        body: dict[str, Any] = {"priority": priority, "tags": tags or {}}
        if inputs:
            body["inputs"] = {task: {k: value_to_wire(v) for k, v in values.items()}
                              for task, values in inputs.items()}
        return self._request("POST", f"/api/v1/workflows/{workflow_id}/runs", json=body)["run_id"]

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's state, timings and each task's state (a plain dict, as the API returns it)."""
        return self._request("GET", f"/api/v1/runs/{run_id}")

    def list_runs(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params = {"limit": limit, **({"state": state} if state else {})}
        return self._request("GET", "/api/v1/runs", params=params)["runs"]

    def wait(self, run_id: str, timeout: float | None = None, progress: bool | None = None) -> dict[str, Any]:
        """Wait until the run ends and return its results body (does not raise for a failed run)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        show = self.progress if progress is None else progress
        if show is None:
            show = sys.stderr.isatty()
        bar = RunProgress(run_id) if show else None
        try:
            while True:
                remaining = RESULT_POLL_S if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise LatticeError(f"run {run_id} did not finish within {timeout} s")
                wait = min(remaining, 1.0 if bar else RESULT_POLL_S)
                body = self._request("GET", f"/api/v1/runs/{run_id}/results", params={"wait": wait})
                if bar is not None:
                    bar.update(self.get_run(run_id))
                if body["done"]:
                    return body
        finally:
            if bar is not None:
                bar.close()

    def get_results(self, run_id: str, timeout: float | None = None, progress: bool | None = None,
                    trust_outputs: bool | None = None) -> dict[str, Any]:
        """Wait for the run and return the merged outputs of its sink tasks.

        Raises :class:`~lattice.TaskFailed` (or a more specific subclass) naming the failed task, or
        :class:`~lattice.RunCancelled`; :class:`~lattice.UntrustedOutputError` for a sandboxed task's
        output that needs an untrusted type. ``trust_outputs`` overrides the client's setting.
        """
        return results_or_raise(self.wait(run_id, timeout, progress), self.trust.but(trust_outputs))

    def get_task_results(self, run_id: str, trust_outputs: bool | None = None) -> dict[str, TaskResult]:
        """Every task of the run: state, outputs, attempt, node, timings and error (outputs as in get_results)."""
        items = self._request("GET", f"/api/v1/runs/{run_id}/tasks", params={"include_outputs": True})
        trust = self.trust.but(trust_outputs)
        return {item["name"]: TaskResult.from_api(item, trust) for item in items}

    def get_logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        params = {"task": task} if task else {}
        return self._request("GET", f"/api/v1/runs/{run_id}/logs", params=params)["attempts"]

    def get_events(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        return self._request("GET", f"/api/v1/runs/{run_id}/events", params={"after": after})["events"]

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/runs/{run_id}/cancel")

    def stream(self, run_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """Yield the run's events live, in order, until ``run_finished``; reconnects where it left off."""
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.sync.client import connect

        last, failures = after, 0
        while True:
            try:
                with connect(self.config.ws_url(run_id, last), additional_headers=self.config.headers,
                             open_timeout=self.config.timeout) as ws:
                    failures = 0
                    for message in ws:
                        event = _parse(message)
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
                time.sleep(min(2.0, 0.1 * 2**failures))

    # --- cluster ------------------------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/v1/cluster/nodes")["nodes"]

    def resources(self) -> dict[str, Any]:
        return self._request("GET", "/api/v1/cluster/resources")

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")


def _parse(message: str | bytes) -> dict[str, Any]:
    import json

    return json.loads(message)
