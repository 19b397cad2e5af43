"""The key ring: named API keys (tenants), stored hashed, checked on every request.

A key's secret is shown once, when it is made; the store keeps only its SHA-256 (a secret of 32 random
bytes needs no slow hash: nobody can guess it, so there is nothing to brute-force), and the ring keeps a
map from hash to policy in memory, so checking a request is one hash and one dict lookup. Revoking a key
takes it out of that map at once and sets the key's revocation event, which open WebSockets wait on.

The head's bootstrap token is not in the ring: it is the ``admin`` tenant (``lattice.api.deps``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from lattice.core.errors import Conflict, NotFound
from lattice.core.store import Store
from lattice.wire.tenants import ADMIN_TENANT, KeyCreate, KeyCreated, KeyPublic, Role, TenantPolicy, TenantQuota

#: what a new key's secret starts with, so a leaked one is easy to recognise (and to grep for)
KEY_PREFIX = "lk_"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRing:
    def __init__(self, store: Store, on_policy: Callable[[TenantPolicy], None] = lambda _policy: None) -> None:
        """``on_policy`` hears of every live tenant's policy (at start and when a key is made): the scheduler."""
        self.store = store
        self._on_policy = on_policy
        self._by_hash: dict[str, TenantPolicy] = {}
        self._revoked: dict[str, asyncio.Event] = {}
        for row in store.list_keys():
            if row["revoked_at"] is None:
                policy = _policy(row)
                self._by_hash[row["key_hash"]] = policy
                on_policy(policy)

    def authenticate(self, secret: str) -> TenantPolicy | None:
        """The policy of a live key, or None (unknown or revoked)."""
        return self._by_hash.get(hash_key(secret))

    def create(self, request: KeyCreate) -> KeyCreated:
        if request.name == ADMIN_TENANT:
            raise Conflict(f"the name {ADMIN_TENANT!r} is the head's own token; choose another name")
        if any(row["name"] == request.name for row in self.store.list_keys()):
            raise Conflict(f"a key named {request.name!r} exists (names are never reused, also after a revoke); "
                           "choose another name")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        policy = TenantPolicy(name=request.name, role=request.role, weight=request.weight, quota=request.quota)
        now = time.time()
        quota = policy.quota
        self.store.add_key({
            "name": policy.name, "key_hash": hash_key(secret), "role": str(policy.role), "weight": policy.weight,
            "max_cpu": quota.max_cpu, "max_gpu": quota.max_gpu, "max_gpu_memory_mb": quota.max_gpu_memory_mb,
            "max_running_runs": quota.max_running_runs, "created_at": now, "revoked_at": None})
        self._by_hash[hash_key(secret)] = policy
        self._on_policy(policy)
        return KeyCreated(policy=policy, created_at=now, key=secret)

    def list(self) -> list[KeyPublic]:
        return [KeyPublic(policy=_policy(row), created_at=row["created_at"], revoked_at=row["revoked_at"])
                for row in self.store.list_keys()]

    def revoke(self, name: str) -> KeyPublic:
        """Revoke at once: the next request with the key is a 401, and its open WebSockets are closed."""
        rows = {row["name"]: row for row in self.store.list_keys()}
        if name not in rows:
            raise NotFound("key", name)
        self.store.revoke_key(name, time.time())
        self._by_hash = {h: p for h, p in self._by_hash.items() if p.name != name}
        self.revoked_event(name).set()
        row = self.store.list_keys()
        return next(KeyPublic(policy=_policy(r), created_at=r["created_at"], revoked_at=r["revoked_at"])
                    for r in row if r["name"] == name)

    def revoked_event(self, name: str) -> asyncio.Event:
        """Set when the tenant's key is revoked (a WebSocket waits on it next to its events)."""
        event = self._revoked.get(name)
        if event is None:
            event = self._revoked[name] = asyncio.Event()
            if name not in {p.name for p in self._by_hash.values()} and name != ADMIN_TENANT:
                event.set()  # already revoked (or never existed)
        return event


def _policy(row: dict[str, Any]) -> TenantPolicy:
    return TenantPolicy(name=row["name"], role=Role(row["role"]), weight=float(row["weight"] or 1.0),
                        quota=TenantQuota(max_cpu=row["max_cpu"], max_gpu=row["max_gpu"],
                                          max_gpu_memory_mb=row["max_gpu_memory_mb"],
                                          max_running_runs=row["max_running_runs"]))
