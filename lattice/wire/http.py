"""Response models of the HTTP API (request models are the spec's: ``lattice.wire.spec``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

#: the integer range every integer parameter of the API is bounded to: what a SQL BIGINT (SQLite's
#: INTEGER) holds. Without the bound, ``?offset=10000000000000000001`` reached the store and was a 500.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None
    hint: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class WorkflowCreated(BaseModel):
    workflow_id: str
    name: str
    tasks: list[str]
    sinks: list[str]


#: tasks one page of ``GET /workflows/{id}`` may carry (the default is a tenth of it)
MAX_SPEC_PAGE = 10_000


class WorkflowPublic(WorkflowCreated):
    """A registered workflow, one page of its tasks: ``tasks`` and ``sinks`` are this page's (in the
    topological order; the pages together are the 201's lists), ``spec`` holds their specs."""

    created_at: float
    spec: dict[str, Any] = Field(
        description="the submitted spec with this page's tasks (in the order of `tasks`) and the entries of its "
                    "`code` table they name (code by reference, as stored: base64 and source); secret inputs "
                    "redacted")
    task_count: int = Field(description="how many tasks the workflow has in all")
    next_after: int | None = Field(
        None, description="more tasks follow: ask again with `after` set to this (null: this page is the last)")


class RunCreated(BaseModel):
    run_id: str
    workflow_id: str
    state: str
    results: RunResults | None = Field(
        None, description="with ``wait``: the run's results, as ``GET /runs/{id}/results`` answers them "
                          "(``done`` false when the run was still going when the wait ran out)")


class RunsCreated(BaseModel):
    """The runs a batch started (or, for a repeated Idempotency-Key, had started), in the order of ``runs``."""

    workflow_id: str
    run_ids: list[str]


class TaskError(BaseModel):
    kind: str
    type: str
    message: str
    traceback: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class TaskPublic(BaseModel):
    name: str
    state: str
    attempt: int
    node_losses: int = Field(0, description="attempts this task lost to nodes (or a head) that died under it; "
                                            "not counted as retries, at most 3 before the task fails")
    attempt_id: str | None = None
    node_id: str | None = None
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    error: TaskError | None = None
    outputs: dict[str, dict[str, Any]] | None = Field(
        None, description="with include_outputs=true: {output: {encoding, value|data}}")


class RunPublic(BaseModel):
    run_id: str
    workflow_id: str
    workflow_name: str
    state: str
    priority: int
    tags: dict[str, str]
    inputs: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                              description="this run's values for literal inputs, as given")
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    failed_task: str | None = None
    error: TaskError | None = None
    tasks: list[TaskPublic] | None = None
    task_counts: dict[str, int] | None = None


class RunList(BaseModel):
    runs: list[RunPublic]
    total: int | None = Field(None, description="how many runs match the filters, across all pages")


class RunResults(BaseModel):
    run_id: str
    state: str
    done: bool
    outputs: dict[str, dict[str, Any]] | None = Field(
        None, description="merged outputs of the sink tasks, {output: {encoding, value|data, task}}")
    failed_task: str | None = None
    error: TaskError | None = None
    next_after: int | None = Field(
        None, description="asked with `limit`: more sinks' outputs follow; ask again with `after` set to this "
                          "(null: this page is the last)")
    sinks: int | None = Field(None, description="asked with `limit`: how many sink tasks the run has in all")


#: sink tasks whose outputs one page of ``GET /runs/{id}/results?limit=`` may carry; also what one
#: ``POST /runs/results:batch`` answer carries in all, across its runs
MAX_RESULTS_PAGE = 10_000
#: the SDK's page of sinks; and the most sinks a ``wait`` submit's results carry when not asked for a page
RESULTS_PAGE = 1_000

#: run ids one ``POST /runs/results:batch`` may ask for
MAX_BATCH_RESULTS = 1_000


class ResultsBatchQuery(BaseModel):
    """Which runs' results to answer, and how long to hold the request for them to end (a long poll)."""

    model_config = ConfigDict(extra="forbid")

    run_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=MAX_BATCH_RESULTS,
        description=f"at most {MAX_BATCH_RESULTS} run ids; a repeated id is answered once")
    wait: float = Field(0.0, ge=0, le=60, description="seconds to wait for every one of the runs to end")


class ResultsBatch(BaseModel):
    results: list[RunResults] = Field(description="one per run found, in the order asked")
    not_found: list[str] = Field(default_factory=list,
                                 description="ids that name no run this key may see (as a single run's 404)")


class Event(BaseModel):
    seq: int
    ts: float
    type: str
    task: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class EventList(BaseModel):
    run_id: str
    events: list[Event]
    last_seq: int


class AttemptLog(BaseModel):
    task: str
    attempt: int
    attempt_id: str
    state: str
    node_id: str | None = None
    worker_pid: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    stdout: str = ""
    stderr: str = ""
    error: TaskError | None = None


class LogList(BaseModel):
    run_id: str
    attempts: list[AttemptLog]


class GPUUsage(BaseModel):
    """One GPU's live numbers (NVML, sampled on its node)."""

    index: int
    utilization_percent: float
    memory_used_mb: int
    memory_total_mb: int


class NodeUsage(BaseModel):
    """A node's live utilization, sampled on the node every 2 s (psutil, NVML): the whole machine, not only
    what Lattice runs there (``used`` is what Lattice reserved)."""

    ts: float = Field(description="when the sample was taken (Unix time)")
    cpu_percent: float = Field(description="CPU use over the last sampling interval, 0-100 (all cores)")
    memory_used_mb: int
    memory_total_mb: int
    gpus: list[GPUUsage] = Field(default_factory=list)


class NodePublic(BaseModel):
    node_id: str
    address: str
    alive: bool
    #: alive, draining (takes no new tasks), dead (lost) or left (gone after a drain)
    state: str = "alive"
    labels: dict[str, str]
    total: dict[str, float]
    used: dict[str, float]
    gpus: list[dict[str, Any]]
    running_tasks: int
    usage: NodeUsage | None = Field(None, description="live utilization; null until the node's first sample")


class NodeList(BaseModel):
    nodes: list[NodePublic]


class ClusterResources(BaseModel):
    nodes: int
    cpu: float
    gpu: float
    memory_mb: float
    gpu_memory_mb: float
    used_cpu: float
    used_gpu: float
    used_memory_mb: float
    running_tasks: int
    queued_tasks: dict[str, int]


class JoinInfo(BaseModel):
    ray_address: str
    ray_token: str | None
    ray_version: str


class Health(BaseModel):
    status: str
    version: str
    uptime_s: float


class MetricsSample(BaseModel):
    ts: float
    tasks_per_s: float = Field(description="task attempts finished per second since the previous sample")
    running_tasks: int
    queued: dict[str, int] = Field(description="ready tasks waiting, per resource class")
    used_cpu: float
    active_runs: int


class MetricsHistory(BaseModel):
    every_s: float = Field(description="seconds between samples")
    samples: list[MetricsSample] = Field(description="oldest first; the head keeps the last half hour")


RunCreated.model_rebuild()  # ``results`` names RunResults, defined after it
