"""The workflow spec (format ``lattice.workflow/v1``): the one document a client submits.

It holds everything a run needs, so the head can validate it before anything runs and re-run it after
a restart: each task's code (cloudpickle bytes, base64, never unpickled by the head, plus its source
for display) or a builtin's name, its inputs (literal values or references to another task's output),
its declared outputs, resources and policy.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lattice.wire.llm import ALIAS_PATTERN
from lattice.wire.resources import Resources

WORKFLOW_FORMAT = "lattice.workflow/v1"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)
#: tasks in one workflow: 100,000 no-ops fanning into a tree of fan-ins (101,011 tasks) are measured to run on
#: one 2-core machine within the head's memory target (bench/bench_scale.py); the bound leaves that headroom
MAX_TASKS = 120_000
#: runs one ``POST /workflows/{id}/runs:batch`` may start: one request, one commit, ids back in one answer
MAX_BATCH_RUNS = 1_000
#: tasks one batch may create across its runs (runs x tasks per run): what one commit is sized for
MAX_BATCH_TASKS = 200_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeSpec(_Strict):
    """A task function shipped by value."""

    pickle: str = Field(description="base64 of the cloudpickled function; only an executor unpickles it")
    name: str = Field("task", description="the function's qualified name, for display")
    source: str | None = Field(None, description="the function's source text, for display")


class InputSpec(_Strict):
    """One input: a literal (``value``, or ``encoding``+``data`` for a pickled value) or a reference."""

    task: str | None = Field(None, description="name of the upstream task (a reference)")
    output: str | None = Field(None, description="name of the upstream task's output (a reference)")
    value: Any = Field(None, description="a JSON literal")
    encoding: Literal["json", "pickle"] | None = None
    data: str | None = Field(None, description="base64 bytes of an encoded literal")

    @model_validator(mode="after")
    def _one_form(self) -> InputSpec:
        has_value = "value" in self.model_fields_set
        if self.task is not None or self.output is not None:
            if self.task is None or self.output is None:
                raise ValueError("a reference needs both 'task' and 'output'")
            if has_value or self.encoding is not None or self.data is not None:
                raise ValueError("an input is either a reference {task, output} or a literal, not both")
        elif self.encoding == "pickle":
            if self.data is None or has_value:
                raise ValueError("a pickled literal needs 'data' (base64) and no 'value'")
        elif not has_value or self.data is not None:
            raise ValueError("an input needs 'value' (JSON), 'encoding': 'pickle' with 'data', "
                             "or a reference {task, output}")
        return self

    @property
    def is_reference(self) -> bool:
        return self.task is not None


Name = Annotated[str, Field(pattern=NAME_PATTERN)]


#: a key of a workflow's code table (``WorkflowSpec.code``)
CodeKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


class TaskSpec(_Strict):
    name: Name
    code: CodeSpec | None = None
    code_ref: CodeKey | None = Field(
        None, description="the task's function by its key in the workflow's `code` table (instead of `code`)")
    builtin: str | None = Field(None, description="a builtin task instead of code: noop, echo, sleep")
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    outputs: list[Name] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    timeout: float | None = Field(None, gt=0, description="seconds before the task is stopped")
    retries: int = Field(0, ge=0, le=100)
    retry_delay: float = Field(0.0, ge=0, le=86_400, description="seconds before the first retry")
    backoff: float = Field(2.0, ge=1, le=100, description="each further retry waits this many times longer")
    max_delay: float | None = Field(None, gt=0, le=86_400, description="cap on the delay between attempts")
    jitter: float = Field(0.0, ge=0, le=1, description="take up to this fraction off each delay, per attempt")
    non_retryable: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=100,
        description="exception types (as ErrorInfo.type names them, e.g. 'ValueError', 'pkg.mod.Error') that "
                    "fail the task without a retry; subclasses match too")
    priority: int = Field(0, ge=-1000, le=1000)
    sandbox: str | None = Field(None, description="none, subprocess, seccomp or docker")
    network: bool | None = Field(None, description="allow network in a sandbox that blocks it by default")
    llm: list[Annotated[str, Field(pattern=ALIAS_PATTERN)]] = Field(
        default_factory=list, max_length=16, description="model pools the task calls (params['llm'][alias])")

    @model_validator(mode="after")
    def _code_or_builtin(self) -> TaskSpec:
        if sum(x is not None for x in (self.code, self.code_ref, self.builtin)) != 1:
            raise ValueError("a task needs exactly one of 'code', 'code_ref' or 'builtin'")
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"duplicate output names in {self.outputs}")
        if self.max_delay is not None and self.max_delay < self.retry_delay:
            raise ValueError(f"max_delay ({self.max_delay}) is smaller than retry_delay ({self.retry_delay})")
        return self

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for key in value:
            if not _NAME_RE.match(key):
                raise ValueError(f"input name {key!r} is not a valid name ({NAME_PATTERN})")
        return value


class WorkflowSpec(_Strict):
    format: Literal["lattice.workflow/v1"] = WORKFLOW_FORMAT
    name: str = Field("workflow", max_length=200)
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS)
    code: dict[CodeKey, CodeSpec] = Field(
        default_factory=dict,
        description="each distinct function's code once, keyed; a task names its function with `code_ref`. "
                    "A fan-out of one function then sends its bytes once, not once per task (a 100,000-task "
                    "@task workflow was a 133 MB request with the code inline)")

    @model_validator(mode="after")
    def _refs_in_table(self) -> WorkflowSpec:
        for index, task in enumerate(self.tasks):
            if task.code_ref is not None and task.code_ref not in self.code:
                known = sorted(self.code)[:10]
                raise ValueError(f"tasks[{index}].code_ref: {task.code_ref!r} is not a key of the workflow's "
                                 f"'code' table (its keys: {known}); add the function there or fix the key")
        return self

    def code_of(self, task: TaskSpec) -> CodeSpec | None:
        """A task's code, inline or from the table (None for a builtin)."""
        return task.code if task.code_ref is None else self.code[task.code_ref]


class RunCreate(_Strict):
    """Options of one run of a registered workflow."""

    priority: int = Field(0, ge=-1000, le=1000, description="added to every task's own priority; under fair "
                                                            "scheduling it also scales the run's share (x2 per 10)")
    weight: float = Field(1.0, gt=0, le=1000, description="the run's share of its tenant's capacity, relative "
                                                         "to the tenant's other runs (fair scheduling)")
    tags: dict[str, str] = Field(default_factory=dict, description="free labels, e.g. graph/thread/node")
    inputs: dict[str, dict[str, InputSpec]] = Field(
        default_factory=dict,
        description="per-run values for literal inputs: {task: {input: {value} or {encoding, data}}}; "
                    "a workflow registered once can run with new arguments each time")


class RunBatchCreate(_Strict):
    """Many runs of one registered workflow in one request (``workflow.map``, ``client.run_many``).

    Each item is one run's options, as for a single run; the runs are created and committed together,
    so either every id comes back or none was started.
    """

    runs: list[RunCreate] = Field(min_length=1, max_length=MAX_BATCH_RUNS,
                                  description=f"one entry per run, at most {MAX_BATCH_RUNS} (the SDK splits "
                                              "longer lists into several requests)")
