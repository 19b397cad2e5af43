"""The head's live parts, built once at start-up and shared by every route."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lattice.core.cluster import ResourceManager
from lattice.core.config import HeadSettings
from lattice.core.events import EventBus
from lattice.core.orchestrator import Orchestrator
from lattice.core.store import Store
from lattice.core.tenants import KeyRing
from lattice.llm.manager import PoolManager
from lattice.wire.http import NodeUsage


@dataclass
class HeadState:
    settings: HeadSettings
    token: str | None
    store: Store
    resources: ResourceManager
    bus: EventBus
    orchestrator: Orchestrator
    ray_address: str
    ray_token: str | None
    ray_version: str
    started_at: float = field(default_factory=time.time)
    #: the named API keys (tenants); the bootstrap ``token`` is the admin
    keys: KeyRing | None = None
    #: model pools and their endpoint (``lattice/llm``); None on a head built without one
    llm: PoolManager | None = None
    #: each node's latest utilization sample (``lattice.executor.node_usage``), by node id
    node_usage: Callable[[], Mapping[str, NodeUsage]] | None = None
