"""Model pools, as the API, the CLI, the SDK and the head's pool manager all speak of them.

A *pool* is a named set of engine replicas (or one external provider) behind the head's
OpenAI-compatible endpoint ``/api/v1/llm/{alias}/v1``. Its spec is what the user declares; the view is
what the head reports back (replicas, leases, load).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lattice.wire.ports import SANDBOX_POOL_PORT

#: an alias is a path segment of the endpoint and a key's scope: short, URL-safe, not a route of ours
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
RESERVED_ALIASES = frozenset({"pools"})
Alias = Annotated[str, Field(pattern=ALIAS_PATTERN)]


class Engine(StrEnum):
    TRANSFORMERS = "transformers"
    VLLM = "vllm"
    LLAMACPP = "llamacpp"
    EXTERNAL = "external"


class PoolSpec(BaseModel):
    """One pool as declared by ``lattice llm deploy`` / ``client.llm.deploy``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alias: Alias
    engine: Engine
    model: str = Field(min_length=1, max_length=1000, description="a local path or a model id the engine loads")
    gpu: float = Field(0.0, ge=0, description="GPUs per replica")
    gpu_memory_mb: int = Field(0, ge=0, description="GPU memory leased per replica; sets the engine's own limit")
    cpu: float = Field(1.0, ge=0, description="CPU cores leased per replica")
    memory_mb: int = Field(0, ge=0, description="host memory leased per replica")
    min_replicas: int = Field(0, ge=0, le=64, description="0 scales to zero after the idle timeout")
    max_replicas: int = Field(1, ge=1, le=64)
    max_concurrency: int = Field(8, ge=1, le=100_000, description="requests in flight at once, whole pool")
    max_concurrency_per_replica: int | None = Field(None, ge=1, le=100_000,
                                                    description="in flight per replica [default: the pool's]")
    max_queue: int = Field(64, ge=0, le=1_000_000, description="requests waiting beyond the cap; more get 429")
    queue_timeout_s: float = Field(300.0, gt=0, description="longest a request waits in the queue (then 503)")
    idle_timeout_s: float = Field(300.0, gt=0, description="stop the replicas after this long without requests")
    start_timeout_s: float = Field(300.0, gt=0, description="a replica not ready after this long failed to start")
    pinned: bool = Field(False, description="never evicted to make room for another pool")
    stop_over_lease: bool = Field(False, description="stop a replica NVML sees using more GPU memory than leased")
    engine_args: list[str] = Field(default_factory=list, description="extra arguments for the engine")
    # external providers
    base_url: str | None = Field(None, description="external: the provider's OpenAI-compatible base URL")
    api_key_env: str | None = Field(None, description="external: the head's environment variable with the key")
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> PoolSpec:
        if self.alias in RESERVED_ALIASES:
            raise ValueError(f"alias {self.alias!r} is reserved; pick another name")
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        if self.engine is Engine.EXTERNAL:
            if not self.base_url:
                raise ValueError("an external pool needs base_url (the provider's OpenAI-compatible URL)")
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        elif self.base_url:
            raise ValueError("base_url is only for engine 'external'")
        return self

    @property
    def per_replica_cap(self) -> int:
        return self.max_concurrency_per_replica or self.max_concurrency


class ReplicaView(BaseModel):
    replica_id: str
    state: str
    node_id: str | None = None
    address: str | None = None
    pid: int | None = None
    gpu_memory_leased_mb: int = 0
    gpu_memory_used_mb: int | None = None
    in_flight: int = 0
    restarts: int = 0
    error: str | None = None


class PoolView(BaseModel):
    """What ``lattice llm list`` and ``lattice status`` show of a pool."""

    alias: str
    engine: Engine
    model: str
    state: str
    replicas: list[ReplicaView] = Field(default_factory=list)
    in_flight: int = 0
    queued: int = 0
    max_concurrency: int = 0
    max_queue: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_per_s: float = 0.0
    requests: int = 0
    rejected: int = 0
    last_used: float | None = None
    error: str | None = None
    spec: PoolSpec


class LLMAccess(BaseModel):
    """What a task that declared ``llm="alias"`` gets in ``params["llm"][alias]``."""

    base_url: str
    api_key: str
    model: str


#: SANDBOX_POOL_PORT (imported above from ``lattice.wire.ports``, which the sandbox child imports
#: without pydantic) is the loopback port a network-off sandboxed task reaches its declared pools on


def sandbox_base_url(alias: str) -> str:
    """The base URL a network-off sandboxed task gets for ``alias`` (same path as the head's endpoint)."""
    return f"http://127.0.0.1:{SANDBOX_POOL_PORT}/api/v1/llm/{alias}/v1"
