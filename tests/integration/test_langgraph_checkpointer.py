"""``LatticeSaver`` against LangGraph's own checkpointer conformance suite, on a real head."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from lattice import APIError
from lattice.client.langgraph import LatticeSaver


async def test_lattice_saver_passes_the_conformance_suite(head: Any) -> None:
    @checkpointer_test(name="LatticeSaver")
    async def lattice_saver() -> AsyncGenerator[LatticeSaver, None]:
        saver = LatticeSaver(head.url, token=head.token)
        try:
            yield saver
        finally:
            saver.close()

    report = await validate(lattice_saver, progress=ProgressCallbacks.verbose())
    report.print_report()
    for capability in BASE_CAPABILITIES:
        result = report.results[capability.value]
        assert result.passed, f"{capability.value}: {result.failures}"
    assert report.passed_all_base()


def test_checkpoints_survive_the_client_and_the_head_rejects_bad_bytes(head: Any) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    thread = f"durable-{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"answer": 42}
    with_writer = LatticeSaver(head.url, token=head.token)
    saved = with_writer.put(config, checkpoint, {"source": "input", "step": -1}, {})
    with_writer.close()
    reader = LatticeSaver(head.url, token=head.token)  # a new client, as another process would be
    found = reader.get_tuple(saved)
    assert found is not None and found.checkpoint["channel_values"] == {"answer": 42}
    with pytest.raises(APIError) as info:
        reader._request("POST", "/api/v1/checkpoints", json={
            "thread_id": thread, "checkpoint_id": "x", "checkpoint": {"type": "pickle", "data": "!!"},
            "metadata": {"type": "json", "data": ""}})
    assert info.value.status == 422
    reader.delete_thread(thread)
    assert reader.get_tuple(config) is None
