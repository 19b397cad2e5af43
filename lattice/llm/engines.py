"""How each engine is started: its command line, and its own memory setting derived from the lease.

The command is built on the head but runs on the node the resource manager chose (see
``ray_launcher.py``), so it names the engine's executable through that node's Python
(``python -m ...``) and binds the node's address on a port the node picked.

Memory: the lease is the truth, and each engine is told it in its own terms, so two engines on one card
never each assume the whole card (vLLM's "No available memory for the cache blocks" on a second
instance). vLLM: ``--gpu-memory-utilization`` = lease / card memory. llama.cpp and transformers have no
such fraction; they take what the weights need, which NVML then checks against the lease
(``nvml.py``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from lattice.wire.llm import Engine, PoolSpec


class EngineUnavailable(ValueError):
    """This engine cannot be started by Lattice (external pools have no process)."""


@dataclass(frozen=True)
class EngineCommand:
    argv: list[str]
    env: dict[str, str]
    #: the model name the engine answers to, what requests are rewritten to
    served_model: str


def gpu_memory_utilization(lease_mb: int, card_mb: int) -> float:
    """vLLM's fraction of the card for a lease: floor to 0.01 so rounding never takes more than leased."""
    if lease_mb <= 0 or card_mb <= 0:
        return 0.9
    return max(0.01, min(0.99, int(lease_mb / card_mb * 100) / 100))


def command(spec: PoolSpec, host: str, port: int, card_mb: int = 0, python: str = sys.executable) -> EngineCommand:
    env = {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    if spec.engine is Engine.TRANSFORMERS:
        # ``transformers serve`` loads the model a request names; a positional FORCE_MODEL loads ours at
        # start-up and refuses any other name (400), so requests are rewritten to that name.
        argv = [python, "-m", "transformers.cli.transformers", "serve", "--host", host, "--port", str(port),
                spec.model, *spec.engine_args]
        if spec.gpu <= 0 and spec.gpu_memory_mb <= 0:
            env["CUDA_VISIBLE_DEVICES"] = ""
        return EngineCommand(argv, env, spec.model)
    if spec.engine is Engine.VLLM:
        argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--host", host, "--port", str(port),
                "--model", spec.model, "--served-model-name", spec.model,
                "--gpu-memory-utilization", f"{gpu_memory_utilization(spec.gpu_memory_mb, card_mb):.2f}",
                *spec.engine_args]
        return EngineCommand(argv, env, spec.model)
    if spec.engine is Engine.LLAMACPP:
        argv = [python, "-m", "llama_cpp.server", "--host", host, "--port", str(port), "--model", spec.model,
                "--model_alias", spec.model, *spec.engine_args]
        if spec.gpu <= 0 and spec.gpu_memory_mb <= 0:
            argv += ["--n_gpu_layers", "0"]
        return EngineCommand(argv, env, spec.model)
    raise EngineUnavailable(f"engine {spec.engine} has no process to start")
