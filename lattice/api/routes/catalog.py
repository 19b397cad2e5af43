"""The task catalog: the builtin tasks a spec can name and the ``@task`` functions users registered, with
their inputs and outputs (the Playground's palette).

Registered tasks are kept in the head's memory, per tenant (a tenant sees its own and the builtins; the
admin sees all): a restarted head starts with the builtins only, and ``client.register_task(fn)`` publishes
a task again. Their code stays base64 here: the head never unpickles it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from lattice.api.deps import Caller, owns, require_submit
from lattice.api.errors import HTTPError
from lattice.wire.catalog import BUILTIN_CATALOG, CATALOG_NAMES, CatalogPort, CatalogTask, RegisterTask, TaskCatalog
from lattice.wire.http import ErrorResponse
from lattice.wire.tenants import ADMIN_TENANT

router = APIRouter(prefix="/catalog", tags=["catalog"])
MAX_REGISTERED = 500  # per tenant: the registry lives in the head's memory


def _registry(request: Request) -> dict[tuple[str, str], CatalogTask]:
    registry = getattr(request.app.state, "registered_tasks", None)
    if registry is None:
        registry = request.app.state.registered_tasks = {}
    return registry


@router.get("/tasks", response_model=TaskCatalog)
async def tasks(request: Request, caller: Caller) -> TaskCatalog:
    """Every builtin with its ports (name, JSON type, required, default) and what it does, then the
    caller's registered tasks (with their code and policy, to put into a spec)."""
    mine = [task for (owner, _), task in sorted(_registry(request).items()) if owns(caller, owner)]
    return TaskCatalog(tasks=[*BUILTIN_CATALOG, *mine])


@router.post("/tasks", status_code=201, response_model=CatalogTask,
             responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}})
async def register(body: RegisterTask, request: Request, caller: Caller) -> CatalogTask:
    """Publish a task (``client.register_task(fn)``); registering a name again replaces it."""
    require_submit(caller)
    if body.name in CATALOG_NAMES:
        raise HTTPError(409, "conflict", f"{body.name!r} is a builtin task's name", "name",
                        "register the task under another name")
    registry = _registry(request)
    owner = caller.name if not caller.is_admin else ADMIN_TENANT
    key = (owner, body.name)
    if key not in registry and sum(1 for o, _ in registry if o == owner) >= MAX_REGISTERED:
        raise HTTPError(409, "conflict", f"this tenant already registered {MAX_REGISTERED} tasks", "name",
                        "re-register an existing name, or restart the head to clear the palette")
    entry = CatalogTask(
        name=body.name, title=body.name, category="registered", kind="registered",
        description=body.description or "(no docstring)",
        inputs=[CatalogPort(name=name) for name in body.inputs],
        outputs=[CatalogPort(name=name) for name in body.outputs], template=body.template)
    registry[key] = entry
    return entry
