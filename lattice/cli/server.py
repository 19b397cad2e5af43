"""Runs a head: Ray (embedded or joined), the store, the orchestrator and the HTTP server.

The composition root: the one place that picks the concrete parts (the Ray backend, the SQL store)
and hands them to the API layer, which knows them only by their interfaces. This is what
``lattice start --head`` calls. It owns the Ray processes it started and stops them, and
only them, when it exits (SIGTERM, Ctrl-C or ``lattice stop``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import uvicorn

from lattice.api.app import begin_draining, create_app
from lattice.api.state import HeadState
from lattice.core.cluster import ResourceManager
from lattice.core.config import HeadSettings
from lattice.core.events import EventBus
from lattice.core.livelogs import LiveLogSink
from lattice.core.orchestrator import Orchestrator, OrchestratorSettings
from lattice.core.store import Store
from lattice.core.tenants import KeyRing
from lattice.core.tracing import RunTracing
from lattice.executor.dispatch import RayBackend
from lattice.executor.livelog_relay import LiveLogReader
from lattice.executor.node_usage import NodeUsageMonitor
from lattice.executor.ray_process import RayProcess, apply_ray_env, ray_version, user_ray_token
from lattice.llm.manager import PoolManager
from lattice.utils import otel
from lattice.utils.procs import ProcessIdentity
from lattice.utils.tokens import load_or_create_token

log = logging.getLogger("lattice.head")

HEAD_INFO_FILE = "head.json"
LAST_HEAD_INFO_FILE = "head.last.json"


class _Server(uvicorn.Server):
    """uvicorn's server, calling ``on_bound`` once its port is bound (and not when binding failed), and
    draining the app when shutdown begins."""

    def __init__(self, config: uvicorn.Config, on_bound: Any) -> None:
        super().__init__(config)
        self._on_bound = on_bound

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_bound()

    async def shutdown(self, sockets: Any = None) -> None:
        # tell the app the moment shutdown begins: waiting requests end with 503 at once (instead of being
        # cancelled after the grace period with a bare 500), and new ones get 503 (lattice.api.draining)
        begin_draining(self.config.app)
        await super().shutdown(sockets)


def serve(settings: HeadSettings, announce: Any = print, access_log: bool = False) -> None:
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"data_dir": data_dir})
    token = load_or_create_token(settings.token_path) if settings.auth else None
    _check_ray_version(ray_version())
    _prepare_store(settings.resolved_store_url, announce)

    ray_proc: RayProcess | None = None
    ray_token: str | None
    if settings.ray_address:
        # The user's cluster: its own auth, its token found where Ray's CLI keeps it (else none).
        ray_token = user_ray_token()
        if ray_token:
            apply_ray_env(ray_token)
    else:
        ray_token = load_or_create_token(data_dir / "ray_token")
        apply_ray_env(ray_token)
    if settings.ray_address:
        ray_address = settings.ray_address  # the user's cluster: never stopped by this head
    else:
        ray_proc = RayProcess(data_dir, "ray-head.log")
        adopted = _adopt_leftover_ray(data_dir, ray_proc)
        if adopted is not None:
            announce(f"adopted the embedded Ray a previous head of this data dir left running ({adopted})")
            ray_address = adopted
        else:
            announce("starting an embedded Ray cluster ...")
            ray_address = ray_proc.start_head(settings.num_cpus, settings.num_gpus, settings.object_store_mb)

    info_path = data_dir / HEAD_INFO_FILE
    _write_info(info_path, settings, ray_proc, ray_address)

    backends: list[RayBackend] = []  # the one built below; the API layer never sees the concrete backend
    readers: list[LiveLogReader | NodeUsageMonitor] = []  # threads of the head that read the cluster

    def build_state() -> HeadState:
        store = Store(settings.resolved_store_url)
        backend = RayBackend(ray_address, io_slots=settings.io_slots)
        # ray.init installs a SIGTERM handler that raises SystemExit inside the event loop; keep
        # uvicorn's, which shuts the head down in order (and then stops the Ray processes we own).
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        backend.connect()
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        resources = ResourceManager(io_slots_per_node=settings.io_slots)
        bus = EventBus()
        provider = otel.tracer_provider("lattice-head")  # None unless OTEL_* asks for traces
        orchestrator = Orchestrator(store, resources, backend, bus, OrchestratorSettings(
            default_sandbox=settings.sandbox, min_sandbox=settings.min_sandbox,
            sandbox_defaults=_sandbox_defaults(settings), max_output_bytes=settings.max_output_mb * 1024 * 1024,
            scheduling=settings.scheduling),
            tracing=RunTracing(provider.get_tracer("lattice")) if provider is not None else None)
        live_logs = LiveLogReader(LiveLogSink(orchestrator).deliver)  # running tasks' output, as it comes
        live_logs.start()
        readers.append(live_logs)
        usage = NodeUsageMonitor(resources.alive_node_ids, backend.sample_usage)  # a sample per node every 2 s
        readers.append(usage)
        resources.update_nodes(backend.nodes())
        backend.warm_up([node for node in resources.nodes.values() if node.alive])
        usage.start()
        # The head allocates many short-lived objects per task; move what start-up built out of the
        # collector's sight and collect the young generation less often.
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        backends.append(backend)
        llm = _pool_manager(settings, resources, orchestrator)
        return HeadState(settings=settings, token=token, store=store, resources=resources,
                         bus=bus, orchestrator=orchestrator, ray_address=ray_address, ray_token=ray_token,
                         ray_version=ray_version(), keys=KeyRing(store, orchestrator.set_tenant), llm=llm,
                         node_usage=usage.latest)

    def close_state(state: HeadState) -> None:
        for reader in readers:
            reader.stop()
        for backend in backends:
            backend.shutdown()
        state.store.close()
        otel.shutdown()

    app = create_app(build_state, close_state, settings.max_body_mb * 1024 * 1024)
    # log_config=None, log_level=None: uvicorn logs through the handlers lattice.utils.logs installed
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, log_level=None,
                            access_log=access_log, timeout_graceful_shutdown=3, ws="websockets-sansio",
                            lifespan="on",
                            ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
                            ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None)

    def on_bound() -> None:  # only now is the head reachable: say so in head.json, then announce it
        from lattice.cli.banner import head_banner
        from lattice.utils.gctune import tune_for_head

        tune_for_head()  # start-up is over: freeze what it made, collect in larger batches from now on
        _write_info(info_path, settings, ray_proc, ray_address, listening=True)
        for line in head_banner(settings, ray_address, os.getpid()):
            announce(line)

    server = _Server(config, on_bound)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown with the handlers it found; make
    # those raise SystemExit so the Ray processes below are stopped instead of the process just dying.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    try:
        server.run()
    finally:
        if ray_proc is not None:
            ray_proc.stop()
        retire_head_info(data_dir)


def _adopt_leftover_ray(data_dir: Path, ray_proc: RayProcess) -> str | None:
    """A head killed without its shutdown (SIGKILL, OOM) leaves its embedded Ray running, recorded in
    ``head.json``. Its head process is gone (``lattice start`` refuses while it lives), so the Ray is this data
    dir's: adopt it when it answers (the restart is faster, and it is stopped with this head), else stop it.
    Never a Ray this data dir did not start: the group's leader must have the recorded start time."""
    from lattice.executor.ray_process import kill_process_group
    from lattice.utils.procs import group_is_ours, recorded_identity

    info = read_head_info(data_dir)
    if not info:
        return None
    identity = recorded_identity(info)
    if identity is not None and identity.alive():
        return None  # a live head: its Ray is its own (preflight refused to start a second one)
    pgid, address = info.get("ray_pgid"), info.get("ray_address")
    if not isinstance(pgid, int) or not group_is_ours(pgid, info.get("ray_create_time")):
        return None
    if isinstance(address, str) and ray_proc.adopt(pgid, address):
        log.warning("the previous head (pid %s) died without stopping its Ray (group %d); adopted it",
                    info.get("pid"), pgid)
        return address
    log.warning("the previous head (pid %s) left its Ray (group %d) running and it does not answer; stopping it",
                info.get("pid"), pgid)
    kill_process_group(pgid, timeout=5)
    return None


#: the first Ray with token auth; an older one ignores RAY_AUTH_MODE=token and runs its cluster with no auth
MIN_RAY_VERSION = (2, 52)


def _check_ray_version(version: str) -> None:
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return  # a development build: let it be
    if found < MIN_RAY_VERSION:
        need = ".".join(map(str, MIN_RAY_VERSION))
        raise SystemExit(f"lattice: Ray {version} has no token auth, so its cluster would accept anyone; "
                         f"install ray>={need} (pip install -U 'ray>={need}')")


def _prepare_store(url: str, announce: Any) -> None:
    """Bring the store's schema to this code's before anything starts, or exit saying why (a store a
    newer Lattice upgraded, an unreachable database): ``lattice.core.migrations``."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from lattice.cli.banner import redact_url
    from lattice.core import migrations

    engine = create_engine(url)
    try:
        before = migrations.status(engine)
        after = migrations.ensure(engine)
    except migrations.SchemaError as exc:
        raise SystemExit(f"lattice: {exc}") from exc
    except SQLAlchemyError as exc:
        raise SystemExit(f"lattice: cannot open the store at {redact_url(url)}: {exc}") from exc
    finally:
        engine.dispose()
    if before.current != after.current:
        was = "an unversioned store" if before.legacy else (before.current or "empty")
        announce(f"store schema upgraded from {was} to {after.current}")


def _pool_manager(settings: HeadSettings, resources: ResourceManager, orchestrator: Orchestrator) -> PoolManager:
    """Model pools (``lattice/llm``): engines started through Ray on the nodes the resource manager leases;
    tasks with ``llm=`` get scoped keys from it, and each request they make is an event of their run."""
    from lattice.llm.ray_launcher import RayLauncher

    def on_request(run_id: str, alias: str, data: dict[str, Any]) -> None:
        if run_id in orchestrator.runs:
            with contextlib.suppress(Exception):  # the run may end between the request and its event
                orchestrator.emit_custom_event(run_id, None, {"llm": alias, **data})

    manager = PoolManager(resources, RayLauncher(str(settings.data_dir / "llm")), settings.url,
                          on_request=on_request, specs=orchestrator.store)
    orchestrator.settings.llm_access = manager.access
    orchestrator.settings.llm_warm = manager.warm
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a log line per proxied request
    return manager


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _sandbox_defaults(settings: HeadSettings) -> dict[str, Any]:
    """The limits every sandboxed task starts from: this process's ``set_sandbox_config(...)``, then
    ``LATTICE_SANDBOX_CONFIG`` (JSON of SandboxConfig fields); a task's own timeout, memory and network
    override them. The level itself is per task (``--sandbox`` is the default and the minimum)."""
    from lattice.executor.sandbox import SandboxConfig, get_sandbox_config

    config = get_sandbox_config()
    if settings.sandbox_config:
        try:
            config = config.merged(**json.loads(settings.sandbox_config))
        except (ValueError, TypeError) as exc:
            raise SystemExit(f"LATTICE_SANDBOX_CONFIG is not valid: {exc}") from exc
    data = config.to_dict()
    data.pop("level", None)
    defaults = SandboxConfig().to_dict()
    return {k: v for k, v in data.items() if v != defaults.get(k)}


def _write_info(path: Path, settings: HeadSettings, ray_proc: RayProcess | None, ray_address: str,
                listening: bool = False) -> None:
    """``head.json``: how to reach and stop this head. The pid comes with its start time (and Ray's
    group leader's), so ``lattice stop`` never signals a process that merely reuses the pid later."""
    ray_pgid = ray_proc.pgid if ray_proc else None
    info = {
        "pid": os.getpid(), "create_time": ProcessIdentity.of().create_time, "url": settings.url,
        "host": settings.host, "port": settings.port, "data_dir": str(settings.data_dir),
        "ray_address": ray_address, "ray_pgid": ray_pgid,
        "ray_create_time": ProcessIdentity.of(ray_pgid).create_time if ray_pgid else None,
        "started_at": time.time(), "listening": listening,
    }
    tmp = path.with_name(path.name + ".tmp")  # readers (lattice start, status) never see half a file
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, path)


def read_head_info(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / HEAD_INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def retire_head_info(data_dir: Path) -> None:
    """Move ``head.json`` aside as ``head.last.json``: ``lattice status`` can then say which head was
    here and that it stopped, instead of forgetting it and asking some default address."""
    try:
        os.replace(data_dir / HEAD_INFO_FILE, data_dir / LAST_HEAD_INFO_FILE)
    except OSError:
        pass
