"""The orchestrator's two model-pool hooks, through the real loop and the in-memory backend.

* ``llm_warm`` hears, at submit, the pools a run's placeable tasks declare (the engine loads early);
* ``llm_access``'s answer reaches the attempt, and a network-off sandboxed task gets the loopback URL
  while the worker's gateway gets the head's URL and the key (``AttemptPayload.pools``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fake_backend import FakeBackend
from test_orchestrator import make_head, t, until

from lattice.core.runs import NETWORK_OFF_LEVELS
from lattice.executor.sandbox.levels import PROFILES
from lattice.wire.encoding import decode_value
from lattice.wire.llm import sandbox_base_url
from lattice.wire.spec import WorkflowSpec


def access(run_id: str, aliases: tuple[str, ...]) -> dict[str, dict[str, str]]:
    return {a: {"base_url": f"http://head/api/v1/llm/{a}/v1", "api_key": f"lpk_{a}.{run_id}", "model": "m"}
            for a in aliases}


async def test_a_submitted_run_warms_the_pools_its_placeable_tasks_declare(tmp_path: Path) -> None:
    warmed: list[frozenset[str]] = []
    head = make_head(tmp_path, FakeBackend(), llm_warm=warmed.append, llm_access=access)
    await head.orchestrator.start()
    try:
        head.run(t("a"), t("b", "a", llm=["p"]), t("c", llm=["q"], cpu=64.0))  # c fits no node: fails at once
        assert warmed == [frozenset({"p"})]  # at submit, before b is ready
        assert head.backend.live_tasks() in ([], ["a"])
        head.run(t("plain"))
        assert warmed == [frozenset({"p"})]  # a run without llm= tasks warms nothing
    finally:
        await head.orchestrator.stop()
        head.store.close()


async def _payload(tmp_path: Path, **task: Any) -> Any:
    head = make_head(tmp_path, FakeBackend(), llm_access=access)
    await head.orchestrator.start()
    try:
        spec = t("ask", llm=["p"], **task)
        workflow_id = head.orchestrator.register_workflow(WorkflowSpec(tasks=[spec]))
        head.orchestrator.create_run(workflow_id)
        await until(lambda: head.backend.live_tasks() == ["ask"])
        return head.backend.submitted[head.backend.attempt_of("ask")].attempt.payload
    finally:
        await head.orchestrator.stop()
        head.store.close()


async def test_a_network_off_sandboxed_task_is_sent_to_the_gateway(tmp_path: Path) -> None:
    payload = await _payload(tmp_path, sandbox="seccomp")
    given = decode_value(*payload.literals["llm"])["p"]
    assert given["base_url"] == sandbox_base_url("p") == payload.env["OPENAI_BASE_URL"]
    assert payload.pools == {"p": {"url": "http://head/api/v1/llm/p/v1", "key": given["api_key"]}}


async def test_a_task_with_the_network_calls_the_head_itself(tmp_path: Path) -> None:
    for i, task in enumerate(({"sandbox": "seccomp", "network": True}, {"sandbox": "subprocess"}, {})):
        (tmp_path / str(i)).mkdir()
        payload = await _payload(tmp_path / str(i), **task)
        assert decode_value(*payload.literals["llm"])["p"]["base_url"] == "http://head/api/v1/llm/p/v1", task
        assert payload.pools == {}, task


def test_the_core_knows_the_network_off_levels_the_executor_defines() -> None:
    assert {str(p.level) for p in PROFILES.values() if p.network_off} == NETWORK_OFF_LEVELS
