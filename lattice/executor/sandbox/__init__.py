"""Sandboxed task execution: levels none < subprocess < seccomp < docker.

::

    from lattice.executor.sandbox import SandboxConfig, SandboxLevel, execute, set_sandbox_config

    set_sandbox_config(SandboxConfig(level=SandboxLevel.SECCOMP, timeout=300, max_memory_mb=2048))
    outcome = execute(fn_blob, params, ["result"], get_sandbox_config())
    outcome.result      # InvocationResult: encoded outputs, or an ErrorInfo dict (timeout, ...)

Modules, one job each: ``config`` (levels, limits, process default), ``outcome`` (result and typed
errors), ``levels`` (the level registry: what each level is made of, which runner runs it),
``pool`` (warm launchers), ``zygote`` (the fork server that makes them), ``child`` (what
runs in the sandbox), ``probe_host`` (what this host supports), ``subprocess_level`` (the
worker's watch over a child), ``cgroups``, ``namespaces``, ``seccomp_filter``, ``landlock``,
``violations`` (naming a blocked call), ``protocol`` (frames), ``docker_level`` and
``docker_image``. See docs/security.md for what each level stops.
"""

from __future__ import annotations

import time
from typing import Any

from lattice.executor.sandbox.config import (
    DEFAULT_DOCKER_IMAGE,
    SandboxConfig,
    SandboxLevel,
    get_sandbox_config,
    set_sandbox_config,
)
from lattice.executor.sandbox.levels import profile, runner
from lattice.executor.sandbox.outcome import SandboxOutcome, mark_untrusted


def execute(
    fn_blob: bytes,
    params: dict[str, Any],
    outputs: list[str],
    config: SandboxConfig | None = None,
    env: dict[str, str] | None = None,
) -> SandboxOutcome:
    """Run the cloudpickled ``fn(params) -> dict`` under ``config`` (default: the process default).

    ``params`` are the caller's own values (they are encoded here and decoded again in the sandbox);
    a Ray worker passing on what other tasks produced uses :func:`execute_encoded` instead. Never
    raises for anything the task does: every failure is in ``outcome.result.error``. Safe to call
    from many threads at once. At level ``none`` the task runs in this process (no limits, no
    timeout: the caller's own watchdog applies) and ``env`` is ignored.
    """
    config = config or get_sandbox_config()
    if not profile(config.level).sandboxed:
        from lattice.executor.invoke import invoke

        started = time.monotonic()
        result = invoke(fn_blob, params, outputs, config.max_result_bytes)
        return SandboxOutcome(result, duration_s=time.monotonic() - started)
    from lattice.wire.encoding import encode_value

    return execute_encoded(fn_blob, {name: encode_value(value) for name, value in params.items()}, outputs,
                           config, env)


def execute_encoded(
    fn_blob: bytes,
    inputs: dict[str, tuple[str, bytes]],
    outputs: list[str],
    config: SandboxConfig,
    env: dict[str, str] | None = None,
) -> SandboxOutcome:
    """Run a task whose function and inputs are still encoded, at a level above ``none``.

    Nothing here decodes them: the sandboxed child does. Its pickled outputs come back labelled
    ``sandboxed-pickle`` and its error carries ``detail["sandbox_level"]``, so no one downstream
    mistakes them for trusted bytes.
    """
    outcome = runner(config.level)(fn_blob, inputs, outputs, config, env)
    mark_untrusted(outcome.result, config.level)
    return outcome


def capabilities() -> dict[str, Any]:
    """What this machine gives the sandbox (for logs, ``lattice doctor`` and the tests' skips)."""
    from lattice.executor.sandbox.probe_host import host_capabilities

    return host_capabilities()


__all__ = [
    "DEFAULT_DOCKER_IMAGE",
    "SandboxConfig",
    "SandboxLevel",
    "SandboxOutcome",
    "capabilities",
    "execute",
    "execute_encoded",
    "get_sandbox_config",
    "set_sandbox_config",
]
