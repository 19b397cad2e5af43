"""The escape probes as real tasks: submitted through the client to a head started with ``--sandbox LEVEL``.

Each level gets its own head (Ray workers inherit the head's environment, with a planted secret). All
probes of a level run as one workflow of independent tasks; each task's outcome is read back through
the client. Two probes exist only here: an HTTP call to the head's own API and a TCP connection to
Ray's GCS port, which a task at level ``none`` or ``subprocess`` can reach and ``seccomp``/``docker``
must not.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import tests.sandbox_probes as probes
from lattice import APIError, LatticeClient, task
from lattice.executor.sandbox import capabilities
from tests.integration.sandbox_fixtures import docker_engine, probe_context  # noqa: F401

cloudpickle.register_pickle_by_value(probes)

V = "sandbox_violation"


def call_head_api(params: dict) -> dict:
    import urllib.request

    ctx = params["ctx"]
    try:
        with urllib.request.urlopen(ctx["head_url"] + "/health", timeout=3) as response:
            return {"escaped": response.status == 200}
    except PermissionError:
        raise
    except OSError as exc:
        if isinstance(getattr(exc, "reason", None), PermissionError):
            raise exc.reason from None
        raise


def connect_ray_gcs(params: dict) -> dict:
    import socket

    host, port = params["ctx"]["ray_address"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=3):
        return {"escaped": True}


E2E_PROBES = [
    *probes.PROBES,
    probes.Probe("HTTP to the head's API", call_head_api, probes._e("escaped", V, V)),
    probes.Probe("TCP to Ray's GCS port", connect_ray_gcs, probes._e("escaped", V, V)),
]


def outcome(result: Any) -> str:
    if result.state == "succeeded":
        return "escaped" if result.outputs.get("escaped") else "ok"
    return str(result.error.kind) if result.error else result.state


def as_task(probe: probes.Probe) -> Any:
    """The probe as a @task: its sandbox limits become the task's own declarations."""
    timeout = probe.config.get("timeout", 5.0)
    memory = probe.config.get("max_memory_mb")
    return task(inputs=["ctx", "level"], outputs=list(probe.outputs), timeout=timeout, memory=memory,
                name="p_" + "".join(c if c.isalnum() else "_" for c in probe.name)[:60])(probe.fn)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("level", ["subprocess", "seccomp", "docker"])
def test_probes_through_the_head(level: str, head_factory, probe_context, request) -> None:  # noqa: F811
    caps = capabilities()
    env_config = {"max_processes": 32}
    if level == "docker":
        env_config["docker_host"] = request.getfixturevalue("docker_engine")
    elif level == "seccomp" and not caps["seccomp"]:
        pytest.skip("seccomp is not usable here")
    os.environ["LATTICE_SANDBOX_CONFIG"] = json.dumps(env_config)
    os.environ["LATTICE_PLANTED_SECRET"] = probe_context.secret  # the head, its Ray and workers hold it
    try:
        head = head_factory(extra_args=["--num-cpus", "2", "--sandbox", level, "--max-output-mb", "8"])
    finally:
        del os.environ["LATTICE_SANDBOX_CONFIG"], os.environ["LATTICE_PLANTED_SECRET"]
    info = json.loads((head.data_dir / "head.json").read_text())
    ctx = probe_context.params(level)["ctx"] | {"head_url": head.url, "ray_address": info["ray_address"]}

    with LatticeClient(head.url, token=head.token, progress=False) as client:
        workflow = client.create_workflow(f"probes-{level}")
        chosen = [p for p in E2E_PROBES if all(caps.get(need) for need in p.requires) or level == "docker"]
        names = {}
        for probe in chosen:
            handle = workflow.add_task(as_task(probe), inputs={"ctx": ctx, "level": level})
            names[handle.name] = probe
        run_id = workflow.run()
        try:
            workflow.get_results(run_id, timeout=400)
        except Exception:  # noqa: BLE001 - most probes fail their task on purpose; each is checked below
            pass
        results = workflow.get_task_results(run_id)
        wrong = []
        for name, probe in names.items():
            got = outcome(results[name])
            if got not in probe.expect[level]:
                error = results[name].error
                wrong.append(f"{probe.name}: got {got}, expected {sorted(probe.expect[level])}"
                             f" ({error.type + ': ' + error.message[:300] if error else ''})")
            if results[name].error is not None and results[name].error.kind in (V, "timeout", "memory_exceeded"):
                assert results[name].error.detail.get("stderr_tail") is not None, probe.name
        assert not wrong, "\n".join(wrong)
        assert probe_context.decoy.poll() is None and probe_context.holder.poll() is None
        records = probes.markers("default-arg")
        assert not any(r["ray"] or r["pytest"] for r in records), f"a payload ran in a Ray worker: {records}"
        assert client.health()["status"] == "ok"  # the head stayed responsive throughout

        if level == "subprocess":
            # A task may ask for a stricter level than the head's default, never a weaker one.
            stricter = client.create_workflow("stricter")
            tcp = next(p for p in E2E_PROBES if p.fn is probes.tcp_connect)
            stricter.add_task(task(inputs=["ctx", "level"], outputs=["escaped"], sandbox="seccomp", timeout=5)(tcp.fn),
                              inputs={"ctx": ctx, "level": "seccomp"})
            run_id = stricter.run()
            with pytest.raises(Exception):  # noqa: B017 - the exact class is checked below
                stricter.get_results(run_id, timeout=60)
            assert next(iter(stricter.get_task_results(run_id).values())).error.kind == V
            weaker = client.create_workflow("weaker")
            weaker.add_task(task(outputs=["x"], sandbox="none")(lambda params: {"x": 1}))
            with pytest.raises(APIError) as err:
                weaker.run()
            assert err.value.status == 422 and err.value.field == "tasks[0].sandbox"


def read_head_secrets(params: dict) -> dict:
    """From a head started in $HOME: its token, Ray's token, the store, ~/.ssh; and what sys.path offers."""
    import sys

    ctx = params["ctx"]
    read, first_error = [], None
    for path in ctx["secret_paths"]:
        try:
            with open(path, "rb") as fh:
                fh.read(16)
            read.append(path)
        except FileNotFoundError:
            continue  # not in this filesystem (a container)
        except OSError as exc:
            first_error = first_error or exc
    if read:
        return {"escaped": True, "read": read, "home_on_path": False}
    if first_error is not None:
        raise first_error
    return {"escaped": False, "home_on_path": any(p.startswith(ctx["home_dir"]) for p in sys.path)}


def import_path_of_worker(params: dict) -> dict:
    import sys

    return {"escaped": False, "home_on_path": any(p.startswith(params["ctx"]["home_dir"]) for p in sys.path)}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("level", ["none", "seccomp", "docker"])
def test_head_started_in_home_keeps_its_secrets(level: str, head_factory, tmp_path, request) -> None:
    """A head started from $HOME: no sandboxed task reads its data dir or ~/.ssh, and no task (level
    ``none`` included: Ray would put its driver's working directory there) has $HOME on sys.path."""
    env = {}
    if level == "docker":
        env["LATTICE_SANDBOX_CONFIG"] = json.dumps({"docker_host": request.getfixturevalue("docker_engine")})
    elif not capabilities()["seccomp"]:
        pytest.skip("seccomp is not usable here")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN PRIVATE KEY----- not really")
    data_dir = home / ".lattice"
    sandbox = ["--sandbox", level] if level != "none" else []
    head = head_factory(data_dir=data_dir, cwd=home, env={"HOME": str(home), **env},
                        extra_args=["--num-cpus", "2", *sandbox])
    ctx = {"home_dir": str(home), "secret_paths": [str(data_dir / "token"), str(data_dir / "ray_token"),
                                                   str(data_dir / "lattice.db"), str(home / ".ssh" / "id_rsa")]}
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        workflow = client.create_workflow("home")
        plain = workflow.add_task(task(inputs=["ctx"], outputs=["escaped", "home_on_path"], cpu=0)(
            import_path_of_worker), inputs={"ctx": ctx})
        if level != "none":
            probe = workflow.add_task(task(inputs=["ctx"], outputs=["escaped", "home_on_path"], timeout=30)(
                read_head_secrets), inputs={"ctx": ctx})
        run_id = workflow.run()
        with contextlib.suppress(Exception):
            workflow.get_results(run_id, timeout=200)
        results = workflow.get_task_results(run_id)
    assert results[plain.name].outputs == {"escaped": False, "home_on_path": False}, results[plain.name]
    if level == "none":
        return
    got = results[probe.name]
    if level == "seccomp":
        assert got.state == "failed" and got.error.kind == V, (got.state, got.outputs, got.error)
    else:
        assert got.state == "succeeded" and got.outputs == {"escaped": False, "home_on_path": False}, got


def unsandboxed_patch_target(params: dict) -> dict:
    return {"escaped": False}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("level", ["subprocess", "seccomp"])
def test_pickles_from_tasks_run_only_in_sandboxes(level: str, head_factory, probe_context) -> None:  # noqa: F811
    """Malicious pickles — an output consumed downstream, a literal, a default argument, a cpu=0 task that
    patches its executor — run (if at all) inside a sandbox, never in a Ray worker; the next, unrelated
    run is still sandboxed; and the client refuses the malicious output."""
    from lattice import UntrustedOutputError

    if level == "seccomp" and not capabilities()["seccomp"]:
        pytest.skip("seccomp is not usable here")
    head = head_factory(extra_args=["--num-cpus", "2", "--sandbox", level])
    ctx = probe_context.params(level)["ctx"]
    tag = f"e2e-{level}-{ctx['marker']}"
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        first = client.create_workflow("payloads")
        producer = first.add_task(task(inputs=["tag"], outputs=["value"])(probes.returns_payload),
                                  inputs={"tag": tag + "-output"})
        consumer = first.add_task(task(inputs=["value"], outputs=["escaped", "got"])(probes.consumes),
                                  inputs={"value": producer.outputs["value"]})
        literal = first.add_task(task(inputs=["value"], outputs=["escaped", "got"], name="literal")(probes.consumes),
                                 inputs={"value": probes.MarkerPayload(tag + "-literal")})

        def patcher(params: dict, _payload: Any = probes.MarkerPayload(tag + "-patch", patch_runner=True)) -> dict:
            return {"escaped": False}

        patch = first.add_task(task(outputs=["escaped"], cpu=0, name="patcher")(patcher))
        run_id = first.run()
        first.get_results(run_id, timeout=200)  # the sinks' outputs are JSON: no refusal there
        with pytest.raises(UntrustedOutputError) as refused:
            first.get_task_results(run_id)
        assert refused.value.task == producer.name
        state = client.get_run(run_id)
        for name in (consumer.name, literal.name, patch.name):
            assert next(t for t in state["tasks"] if t["name"] == name)["state"] == "succeeded", state

        second = client.create_workflow("unrelated")
        tcp = second.add_task(task(inputs=["ctx", "level"], outputs=["escaped"], cpu=0, timeout=10)(probes.tcp_connect),
                              inputs={"ctx": ctx, "level": level})
        run_id = second.run()
        with contextlib.suppress(Exception):
            second.get_results(run_id, timeout=60)
        result = second.get_task_results(run_id)[tcp.name]
    if level == "seccomp":
        assert result.state == "failed" and result.error.kind == V, (result.state, result.error)
    else:
        assert result.state == "succeeded" and result.outputs["escaped"] is True  # subprocess: network stays on
    records = [r for suffix in ("output", "literal", "patch") for r in probes.markers(f"{tag}-{suffix}")]
    assert not any(r["ray"] or r["pytest"] for r in records), records
    if level == "seccomp":
        assert records == [], f"Landlock should have kept every payload from writing its marker: {records}"
    else:
        assert {r["pid"] for r in records} <= {1, 2}, records  # PID 1 (or its child) of a task's own namespace
