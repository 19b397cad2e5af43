"""GPU discovery through NVML, run on each node that Ray says has GPUs."""

from __future__ import annotations

from typing import Any


def probe_gpus() -> list[dict[str, Any]]:
    """Index, name and total memory (MB) of every GPU NVML sees on this machine; [] without NVML."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver on this machine
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append({
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_total_mb": int(memory.total // (1024 * 1024)),
                "memory_used_mb": int(memory.used // (1024 * 1024)),
            })
        return gpus
    finally:
        pynvml.nvmlShutdown()
