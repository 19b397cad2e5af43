"""Port numbers the wire fixes, in a module with no imports at all.

The sandbox's zygote imports this: every module it holds is copied into each launcher's and each
task's page tables at fork (two forks per sandboxed task), so it must not pull in pydantic through
``lattice.wire.llm`` (~90 modules and ~10 MB of resident memory; measured: the fork and the
copy-on-write faults after it are the largest part of a no-op sandboxed task's CPU).
"""

from __future__ import annotations

#: the loopback port a network-off sandboxed task (levels seccomp and docker without ``network=True``)
#: reaches its declared pools on: inside the task's own network namespace, where nothing else listens,
#: a forwarder outside the task's control carries each connection to the worker's pool gateway
#: (``lattice.executor.pool_gateway``), which passes on only that task's pools' three routes
SANDBOX_POOL_PORT = 18080

__all__ = ["SANDBOX_POOL_PORT"]
