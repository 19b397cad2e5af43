"""Tenants: who a key acts for, what it may do, how much it may hold, and what it waits for.

One typed model shared by the API (authentication, isolation), the core (the scheduler's fair share and
quotas, the key store) and the CLI (``lattice keys``, ``lattice status``). A tenant is a named API key;
the head's bootstrap token is the ``admin`` tenant, which sees everything and manages keys.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

#: the tenant of the head's bootstrap token (and of every run when auth is off); no key may take the name
ADMIN_TENANT = "admin"
#: what a key's name may look like: it is shown in views and events, so short and plain
TENANT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Role(StrEnum):
    """What a key may do. ``admin`` sees every tenant and manages keys; ``submit`` runs workflows and sees
    its own; ``read`` only reads its own tenant's runs and the cluster."""

    ADMIN = "admin"
    SUBMIT = "submit"
    READ = "read"

    @property
    def can_submit(self) -> bool:
        return self is not Role.READ


class TenantQuota(BaseModel):
    """Caps on what a tenant holds at once; None is no cap. Tasks beyond a cap wait, with the reason shown."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_cpu: float | None = Field(None, gt=0, description="CPU cores the tenant's tasks hold at once")
    max_gpu: float | None = Field(None, gt=0, description="GPUs the tenant's tasks hold at once")
    max_gpu_memory_mb: int | None = Field(None, gt=0, description="GPU memory (MB) the tenant's tasks hold at once")
    max_running_runs: int | None = Field(None, gt=0, description="runs of the tenant that run at once; "
                                                                  "later ones wait until one ends")


class TenantPolicy(BaseModel):
    """A tenant as every layer sees it: its name, its role, its share weight and its quota."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=TENANT_NAME_PATTERN)
    role: Role = Role.SUBMIT
    weight: float = Field(1.0, gt=0, le=1000, description="share of the cluster relative to other tenants")
    quota: TenantQuota = Field(default_factory=TenantQuota)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ADMIN_POLICY = TenantPolicy(name=ADMIN_TENANT, role=Role.ADMIN)


# --- HTTP models of /api/v1/keys -------------------------------------------------------------------------


class KeyCreate(BaseModel):
    """``POST /api/v1/keys``: a new named key (one tenant)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TENANT_NAME_PATTERN, description="the tenant's name; letters, digits, _ . -")
    role: Role = Role.SUBMIT
    weight: float = Field(1.0, gt=0, le=1000)
    quota: TenantQuota = Field(default_factory=TenantQuota)


class KeyPublic(BaseModel):
    """A key as listed: never its secret (only a hash of it is stored)."""

    policy: TenantPolicy
    created_at: float
    revoked_at: float | None = None


class KeyCreated(KeyPublic):
    key: str = Field(description="the secret: shown once, send it as 'Authorization: Bearer <key>'")


class KeyList(BaseModel):
    keys: list[KeyPublic]


# --- what waits and why: GET /api/v1/cluster/queues ------------------------------------------------------


class WaitReason(StrEnum):
    """Why a run's ready tasks are not running: its tenant's quota, other runs' fair share, or no node
    with room for them right now."""

    QUOTA = "quota"
    FAIR_SHARE = "fair_share"
    NO_FITTING_NODE = "no_fitting_node"


class Held(BaseModel):
    """What a tenant's or a run's tasks hold now (reserved on nodes, running or about to)."""

    tasks: int = 0
    cpu: float = 0.0
    gpu: float = 0.0
    gpu_memory_mb: int = 0


class RunQueue(BaseModel):
    run_id: str
    weight: float = Field(description="the run's weight with its priority folded in")
    held: Held
    queued: dict[str, int] = Field(description="ready tasks waiting, per resource class")
    admitted: bool = Field(description="false while the tenant's max_running_runs keeps the run waiting")
    waiting: WaitReason | None = None
    waiting_detail: str | None = None


class TenantQueue(BaseModel):
    tenant: str
    weight: float
    quota: TenantQuota
    held: Held
    running_runs: int
    queued: dict[str, int]
    runs: list[RunQueue]


class ClusterQueues(BaseModel):
    scheduling: str = Field(description="'fair' or 'fifo'")
    tenants: list[TenantQueue]
