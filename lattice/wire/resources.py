"""What a task asks for, as one small value shared by the SDK, the spec and the scheduler."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: 1 EiB in MB: past any machine, and a bound, so that no size overflows a float or a store column
MAX_MB = 2**40


class ResourceClass(StrEnum):
    """The ready queue a task waits in, so a task that cannot be placed never blocks another class."""

    GPU = "gpu"
    CPU = "cpu"
    IO = "io"


class Resources(BaseModel):
    """CPU cores (fractions allowed; 0 means I/O-bound, holding no core), GPUs, and memory in MB."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: float = Field(1.0, ge=0, description="CPU cores; 0 marks an I/O-bound task that holds no core.")
    gpu: float = Field(0.0, ge=0, description="GPUs; fractions share one GPU.")
    memory: int = Field(0, ge=0, le=MAX_MB, description="Memory in MB, reserved on the node and enforced by sandboxes.")
    gpu_memory: int = Field(0, ge=0, le=MAX_MB, description="GPU memory in MB, admitted against the GPU's capacity.")
    custom: dict[str, float] = Field(default_factory=dict,
                                     description="Custom resources a node offers (`--resources`), e.g. {'my_res': 1}.")
    node_labels: dict[str, str] = Field(default_factory=dict,
                                        description="Labels the node must have (`--labels`), e.g. {'zone': 'a'}.")

    def __hash__(self) -> int:  # the dict fields are part of the value; frozen, so hashing them once is safe
        return hash((self.cpu, self.gpu, self.memory, self.gpu_memory, tuple(sorted(self.custom.items())),
                     tuple(sorted(self.node_labels.items()))))

    @field_validator("custom")
    @classmethod
    def _custom_non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if amount < 0:
                raise ValueError(f"custom resource {name!r} must be >= 0, got {amount}")
        return value

    @property
    def resource_class(self) -> ResourceClass:
        if self.gpu > 0 or self.gpu_memory > 0:
            return ResourceClass.GPU
        if self.cpu > 0:
            return ResourceClass.CPU
        return ResourceClass.IO


RESOURCE_ALIASES: dict[str, str] = {
    "cpu": "cpu",
    "cpus": "cpu",
    "num_cpus": "cpu",
    "gpu": "gpu",
    "gpus": "gpu",
    "num_gpus": "gpu",
    "memory": "memory",
    "cpu_mem": "memory",
    "mem": "memory",
    "gpu_mem": "gpu_memory",
    "gpu_memory": "gpu_memory",
}


#: a key that starts like a built-in resource is a typo of one, never a custom resource
_BUILTIN_PREFIXES = ("cpu", "gpu", "mem", "num_", "object_store")


def normalize_resources(values: dict[str, Any]) -> dict[str, Any]:
    """Map the accepted spellings (``cpu_mem``, ``gpu_mem``, ...) to field names; unknown keys raise."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("custom", "node_labels"):
            out[key] = value
            continue
        if key not in RESOURCE_ALIASES and isinstance(value, int | float) and not isinstance(value, bool) \
                and not key.lower().startswith(_BUILTIN_PREFIXES):
            out.setdefault("custom", {})[key] = float(value)  # a custom resource a node offers (--resources)
            continue
        if key not in RESOURCE_ALIASES:
            raise ValueError(
                f"unknown resource {key!r}; accepted keys are {sorted(set(RESOURCE_ALIASES))}, or a "
                "custom resource a worker offers (a name not starting like cpu, gpu or mem)"
            )
        out[RESOURCE_ALIASES[key]] = value
    return out
