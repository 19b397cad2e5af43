"""Every head endpoint a Lattice client calls, described once, as a :class:`Call`.

A Call is one request (method, path, query, JSON body) and how its answer becomes a value; it does no
I/O. Whoever holds a connection sends it: :class:`~lattice.LatticeClient` over ``httpx.Client``,
:class:`~lattice.AsyncLatticeClient` over ``httpx.AsyncClient``, the LangGraph checkpointer and the
CLI over :class:`~lattice.client.transport.HeadHTTP`, a task on a worker over the standard library
(:class:`~lattice.client.worker_http.WorkerHTTP`). So a path, a parameter or the field an answer is
read from is written here and nowhere else, and the sync and async clients cannot drift apart in
what they ask.

An operation that takes several requests (waiting on a run, registering then running a workflow) is
a :data:`Plan`: a generator that yields Calls, is sent each one's parsed answer, and returns the
result; the clients drive it, blocking or awaiting (``_drive``), so its logic is written once too.

Each Call also says whether sending it twice is harmless (``idempotent``): the clients retry those
through a head restart (:mod:`lattice.client.retry`), and never blindly repeat one that is not.
Starting a run is made idempotent with a key the client picks once per call (``Idempotency-Key``):
the head answers a repeated key with the run it already started.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from lattice.client.decoding import TaskResult
from lattice.wire.encoding import value_to_wire
from lattice.wire.http import RESULTS_PAGE
from lattice.wire.restricted_pickle import PickleTrust
from lattice.wire.spec import MAX_BATCH_RUNS

T = TypeVar("T")

API = "/api/v1"
#: methods that HTTP defines as idempotent (RFC 9110 section 9.2.2); a POST is idempotent only when a Call says so
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _as_is(body: Any) -> Any:
    return body


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request to the head and how to read its answer; ``parse`` gets the decoded JSON body.

    Error answers never reach ``parse``: the sender turns them into :class:`~lattice.APIError` and its
    subclasses first (:func:`lattice.client.base.api_error`).
    """

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    parse: Callable[[Any], T] = _as_is
    headers: dict[str, str] | None = None
    #: sending it twice does what sending it once does; None: as its method says (RFC 9110)
    idempotent: bool | None = None
    #: ``time.monotonic()`` after which a failed send is not retried (the caller's own deadline), if any
    give_up_at: float | None = None

    @property
    def retry_safe(self) -> bool:
        """Whether a failure after the request may have reached the head can be answered by sending it again."""
        return self.method in _IDEMPOTENT_METHODS if self.idempotent is None else self.idempotent


#: A multi-request operation: yields Calls, receives each parsed answer, returns its value.
Plan = Generator[Call[Any], Any, T]


# --- workflows and runs -----------------------------------------------------------------------------

def submit_workflow(spec: dict[str, Any]) -> Call[str]:
    """Register a spec. Retried like an idempotent call: a repeat registers an identical workflow that no
    run uses (the client keeps the id it got), which costs a row and changes nothing a user sees."""
    return Call("POST", f"{API}/workflows", json=spec, parse=itemgetter("workflow_id"), idempotent=True)


def start_run(workflow_id: str, priority: int = 0, tags: dict[str, str] | None = None,
              inputs: dict[str, dict[str, Any]] | None = None, weight: float = 1.0,
              idempotency_key: str | None = None) -> Call[str]:
    """A run of a registered workflow; ``inputs`` (``{task: {input: value}}``) are encoded like literals;
    ``weight`` is its fair share relative to the tenant's other runs.

    The key (a fresh random one unless given) makes a repeated send start no second run: the head
    answers it with the run the first one started (``Idempotent-Replayed: true``).
    """
    body = run_body(priority, tags, inputs, weight)
    key = idempotency_key or uuid.uuid4().hex
    return Call("POST", f"{API}/workflows/{workflow_id}/runs", json=body, parse=itemgetter("run_id"),
                headers={"Idempotency-Key": key}, idempotent=True)


def run_body(priority: int = 0, tags: dict[str, str] | None = None, inputs: dict[str, dict[str, Any]] | None = None,
             weight: float = 1.0) -> dict[str, Any]:
    """One run's options as the head reads them (``RunCreate``), inputs encoded like literals."""
    body: dict[str, Any] = {"priority": priority, "tags": tags or {}}
    if weight != 1.0:
        body["weight"] = weight
    if inputs:
        body["inputs"] = {task: {k: value_to_wire(v) for k, v in values.items()} for task, values in inputs.items()}
    return body


def start_runs(workflow_id: str, runs: list[dict[str, Any]], idempotency_key: str | None = None) -> Call[list[str]]:
    """Many runs of a registered workflow in one request (``runs``: bodies from :func:`run_body`); the head
    commits all of them before it answers their ids, in order. Idempotent through its key, as
    :func:`start_run` is: a repeat answers the same ids and starts nothing."""
    key = idempotency_key or uuid.uuid4().hex
    return Call("POST", f"{API}/workflows/{workflow_id}/runs:batch", json={"runs": runs},
                parse=itemgetter("run_ids"), headers={"Idempotency-Key": key}, idempotent=True)


def results_many(run_ids: list[str], wait: float, give_up_at: float | None = None,
                 limit: int = RESULTS_PAGE) -> Call[dict[str, Any]]:
    """The results bodies of many runs (``{results, not_found}``); the head holds the request up to
    ``wait`` seconds for all of them to end. Each body is the first page of at most ``limit`` sinks'
    outputs (``next_after`` set when more follow, from :func:`results`). Only reads, so it is idempotent."""
    return Call("POST", f"{API}/runs/results:batch", params={"limit": limit},
                json={"run_ids": run_ids, "wait": wait}, give_up_at=give_up_at, idempotent=True)


def start_runs_plan(workflow_id: str, runs: list[dict[str, Any]],
                    idempotency_key: str | None = None) -> Plan[list[str]]:
    """Start every run of ``runs``, :data:`MAX_BATCH_RUNS` per request (the head's bound), ids in order.

    Each request's key is derived from one key per call (``<key>.<n>``), so a retried request, or the
    whole call made again with the same ``idempotency_key``, starts no run twice.
    """
    key = idempotency_key or uuid.uuid4().hex
    ids: list[str] = []
    for number, start in enumerate(range(0, len(runs), MAX_BATCH_RUNS)):
        chunk = runs[start:start + MAX_BATCH_RUNS]
        ids.extend((yield start_runs(workflow_id, chunk, key if len(runs) <= MAX_BATCH_RUNS else f"{key}.{number}")))
    return ids


def start_run_waiting(workflow_id: str, wait: float, priority: int = 0, tags: dict[str, str] | None = None,
                      inputs: dict[str, dict[str, Any]] | None = None, weight: float = 1.0,
                      idempotency_key: str | None = None) -> Call[dict[str, Any]]:
    """:func:`start_run` with the head holding the answer up to ``wait`` s for the run to end: the whole
    ``RunCreated`` body, its ``results`` included (a results body, ``done`` false if the wait ran out; the
    first page of at most ``RESULTS_PAGE`` sinks' outputs, ``next_after`` set when more follow)."""
    call = start_run(workflow_id, priority, tags, inputs, weight, idempotency_key)
    return Call(call.method, call.path, params={"wait": wait, "limit": RESULTS_PAGE}, json=call.json,
                headers=call.headers, idempotent=True)


def register_task(spec: dict[str, Any]) -> Call[dict[str, Any]]:
    """Publish a task to the head's catalog (the Playground's palette)."""
    return Call("POST", f"{API}/catalog/tasks", json=spec)


def get_run(run_id: str) -> Call[dict[str, Any]]:
    return Call("GET", f"{API}/runs/{run_id}")


def list_runs(state: str | None = None, limit: int = 50) -> Call[list[dict[str, Any]]]:
    params = {"limit": limit, **({"state": state} if state else {})}
    return Call("GET", f"{API}/runs", params=params, parse=itemgetter("runs"))


def results(run_id: str, wait: float, give_up_at: float | None = None, after: int = 0,
            limit: int = RESULTS_PAGE) -> Call[dict[str, Any]]:
    """The run's results body (one page of ``limit`` sinks' outputs from ``after``; the body's
    ``next_after`` says where the next starts); the head holds the request up to ``wait`` seconds for the
    run to end (long poll). A head that does not page ignores ``limit`` and answers every output at once.
    A big run's pages (each a short hold of the head's loop) are put back together by
    :meth:`~lattice.client.base.BaseClient._rest_of_results`.

    ``give_up_at`` is the waiting caller's deadline: a head outage is not ridden out past it.
    """
    return Call("GET", f"{API}/runs/{run_id}/results", params={"wait": wait, "limit": limit, "after": after},
                give_up_at=give_up_at)


def task_results(run_id: str, trust: PickleTrust) -> Call[dict[str, TaskResult]]:
    """Every task of the run with its outputs, decoded under ``trust`` (the call's, not a default)."""
    def parse(items: list[dict[str, Any]]) -> dict[str, TaskResult]:
        return {item["name"]: TaskResult.from_api(item, trust) for item in items}

    return Call("GET", f"{API}/runs/{run_id}/tasks", params={"include_outputs": True}, parse=parse)


def get_logs(run_id: str, task: str | None = None) -> Call[list[dict[str, Any]]]:
    return Call("GET", f"{API}/runs/{run_id}/logs", params={"task": task} if task else {},
                parse=itemgetter("attempts"))


def get_events(run_id: str, after: int = 0) -> Call[list[dict[str, Any]]]:
    return Call("GET", f"{API}/runs/{run_id}/events", params={"after": after}, parse=itemgetter("events"))


def post_event(run_id: str, data: dict[str, Any], task: str | None = None) -> Call[dict[str, Any]]:
    """A ``custom`` event on the run (what a task streams to its client); the head answers with the event.

    Not idempotent: a repeat would store the event twice, so it is resent only when it never left.
    """
    return Call("POST", f"{API}/runs/{run_id}/events", json={"task": task, "data": data})


def cancel(run_id: str) -> Call[dict[str, Any]]:
    """Cancel a run; cancelling a cancelled (or finished) run changes nothing, so it is idempotent."""
    return Call("POST", f"{API}/runs/{run_id}/cancel", idempotent=True)


def event_stream(run_id: str, after: int) -> str:
    """The path (with query) of the run's live events over WebSocket, from the event after ``after``."""
    return f"{API}/runs/{run_id}/events/ws?{urlencode({'after': after})}"


# --- cluster ----------------------------------------------------------------------------------------

def nodes() -> Call[list[dict[str, Any]]]:
    return Call("GET", f"{API}/cluster/nodes", parse=itemgetter("nodes"))


def resources() -> Call[dict[str, Any]]:
    return Call("GET", f"{API}/cluster/resources")


def queues() -> Call[dict[str, Any]]:
    """Per tenant and per run: held, queued and why it waits (a tenant's key sees its own only)."""
    return Call("GET", f"{API}/cluster/queues")


# --- named API keys (tenants; admin only) ------------------------------------------------------------

def create_key(name: str, role: str = "submit", weight: float = 1.0,
               quota: dict[str, Any] | None = None) -> Call[dict[str, Any]]:
    """A new key; the answer's ``key`` is its secret, shown this once."""
    return Call("POST", f"{API}/keys", json={"name": name, "role": role, "weight": weight, "quota": quota or {}})


def list_keys() -> Call[list[dict[str, Any]]]:
    return Call("GET", f"{API}/keys", parse=itemgetter("keys"))


def revoke_key(name: str) -> Call[dict[str, Any]]:
    return Call("DELETE", f"{API}/keys/{name}")


def cluster_join() -> Call[dict[str, Any]]:
    """What a worker needs to join the head's Ray cluster (its address and Ray token); used by the CLI."""
    return Call("GET", f"{API}/cluster/join")


def health() -> Call[dict[str, Any]]:
    """``/health``: the one route that needs no token."""
    return Call("GET", "/health")


# --- LangGraph checkpoints (the head stores the saver's bytes and never decodes them) ---------------

def list_checkpoints(params: dict[str, Any]) -> Call[list[dict[str, Any]]]:
    return Call("GET", f"{API}/checkpoints", params=params, parse=itemgetter("checkpoints"))


def put_checkpoint(body: dict[str, Any]) -> Call[dict[str, Any]]:
    """Save or replace one checkpoint (keyed by thread, namespace and id): idempotent."""
    return Call("POST", f"{API}/checkpoints", json=body, idempotent=True)


def put_writes(body: dict[str, Any]) -> Call[dict[str, Any]]:
    """Save writes keyed by task and index (a regular one is kept once, a special one replaced): idempotent."""
    return Call("POST", f"{API}/checkpoints/writes", json=body, idempotent=True)


def delete_thread(thread_id: str) -> Call[dict[str, Any]]:
    return Call("DELETE", f"{API}/checkpoints", params={"thread_id": thread_id})


# --- model pools (lattice/llm) ---------------------------------------------------------------------

def llm_deploy(spec: dict[str, Any]) -> Call[dict[str, Any]]:
    return Call("POST", f"{API}/llm/pools", json=spec)


def llm_list() -> Call[list[dict[str, Any]]]:
    return Call("GET", f"{API}/llm/pools", parse=itemgetter("pools"))


def llm_stop(alias: str) -> Call[dict[str, Any]]:
    return Call("DELETE", f"{API}/llm/pools/{alias}")


def llm_base_url(head_url: str, alias: str) -> str:
    """The pool's OpenAI-compatible base URL (what the ``openai`` client takes as ``base_url``)."""
    return f"{head_url.rstrip('/')}{API}/llm/{alias}/v1"
