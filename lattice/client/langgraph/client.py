"""``LangGraphClient``: decorate LangGraph nodes so that they run on a Lattice cluster."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, overload

from lattice.client.client import LatticeClient
from lattice.client.langgraph.checkpointer import LatticeSaver
from lattice.client.langgraph.node import make_node
from lattice.client.langgraph.remote import langgraph_trust
from lattice.wire.restricted_pickle import PickleTrust


class LangGraphClient:
    """Runs decorated LangGraph nodes as Lattice runs; the graph itself stays on the client.

    One client is shared by every node of every graph and is thread-safe: LangGraph calls the nodes
    of a superstep (and each ``Send``) concurrently, and each call blocks only its own thread on its
    own run. ``graph`` names the graph in the runs' tags (a graph's ``run_name`` config wins).
    ``worker_url`` is the head's address as workers see it, for ``get_stream_writer()`` inside a
    remote node (default: ``url``). ``max_concurrency`` bounds concurrent async node calls.

    A node that ran in a sandbox (above level ``none``) is untrusted, and so is what it returns, raises
    or streams: it is decoded without running code, accepting safe standard types, LangGraph's and
    LangChain's data types (:func:`~lattice.client.langgraph.remote.langgraph_safe_types`) and
    ``trusted_types``; ``trust_outputs=True`` decodes everything in full, as for nodes at level ``none``.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, graph: str = "langgraph",
                 worker_url: str | None = None, timeout: float = 60.0, max_concurrency: int = 256,
                 data_dir: str | Path | None = None, trusted_types: Iterable[type | str] = (),
                 trust_outputs: bool = False) -> None:
        self.lattice = LatticeClient(url, token=token, timeout=timeout, progress=False, data_dir=data_dir,
                                     trusted_types=trusted_types, trust_outputs=trust_outputs)
        self.url = self.lattice.config.url
        self.token = self.lattice.config.token
        self.worker_url = (worker_url or self.url).rstrip("/")
        self.graph = graph
        self.pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="lattice-langgraph")

    @functools.cached_property
    def trust(self) -> PickleTrust:
        """The Lattice client's trust plus the LangGraph safe set: how node outcomes and chunks are decoded."""
        return langgraph_trust(self.lattice.trust)

    def __enter__(self) -> LangGraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.lattice.close()

    @overload
    def task(self, fn: Any, /) -> Any: ...
    @overload
    def task(self, fn: None = None, /, *, cpu: float | None = None, gpu: float | None = None,
             memory: int | None = None, gpu_memory: int | None = None, timeout: float | None = None,
             retries: int = 0, sandbox: str | None = None, priority: int = 0, network: bool | None = None) -> Any: ...

    def task(self, fn: Any = None, /, *, cpu: float | None = None, gpu: float | None = None,
             memory: int | None = None, gpu_memory: int | None = None, timeout: float | None = None,
             retries: int = 0, sandbox: str | None = None, priority: int = 0, network: bool | None = None) -> Any:
        """Run this node on the cluster with these resources (``cpu=0``: I/O-bound, holds no core).

        ``timeout`` is a hard limit: the node's process is stopped and the graph sees
        :class:`~lattice.TaskTimeout`. ``retries`` are Lattice's (for crashes and kills); use
        LangGraph's ``RetryPolicy`` for the node's own exceptions, which reach the graph unchanged.
        Declarations are checked here, so a bad one fails where the node is defined.
        """
        policy = {"cpu": cpu, "gpu": gpu, "memory": memory, "gpu_memory": gpu_memory, "timeout": timeout,
                  "retries": retries, "sandbox": sandbox, "priority": priority, "network": network}

        def decorate(func: Any) -> Any:
            return make_node(self, func, policy)

        return decorate(fn) if fn is not None else decorate

    def checkpointer(self, **kwargs: Any) -> LatticeSaver:
        """A LangGraph checkpointer that keeps threads in the head's store (survives this process)."""
        return LatticeSaver(self.url, token=self.token, **kwargs)
