"""The head's side of live logs: the per-attempt bound in :class:`LiveLogSink`, and the orchestrator turning
chunks of running attempts (only those) into stored, published ``task_log`` events."""

from __future__ import annotations

from pathlib import Path

from test_orchestrator import make_head, t, until

from lattice.core.livelogs import LiveLogSink
from lattice.wire.livelog import LiveLogChunk, encode_batch


class Target:
    def __init__(self) -> None:
        self.posted: list[LiveLogChunk] = []

    def post_task_logs(self, chunks: list[LiveLogChunk]) -> None:
        self.posted.extend(chunks)


def chunk(text: str, n: int, attempt: str = "r:t:1") -> LiveLogChunk:
    return LiveLogChunk("r", "t", attempt, "stdout", text, n)


def test_the_sink_bounds_each_attempt_and_refuses_malformed_batches() -> None:
    target = Target()
    sink = LiveLogSink(target, cap_chars=10)
    sink.deliver(encode_batch([chunk("123456", 0), chunk("789abc", 1), chunk("dropped", 2)]))
    sink.deliver(encode_batch([chunk("other attempt", 0, attempt="r:t:2")]))
    sink.deliver(b"{not json")
    marker = "\n[lattice: the head keeps at most 10 live characters per attempt]\n"
    # r:t:1: 6 characters, then 4 of the next chunk and the marker; its third chunk is dropped whole
    assert [c.text for c in target.posted] == ["123456", "789a" + marker, "other atte" + marker]
    assert [c.chunk for c in target.posted] == [0, 1, 0]
    assert sink.dropped_chars == 2 + 7 + 3
    assert sink.refused_batches == 1


async def test_live_chunks_of_a_running_attempt_become_events(tmp_path: Path) -> None:
    head = make_head(tmp_path)
    await head.orchestrator.start()
    try:
        fake = head.backend
        run_id = head.run(t("a"))
        await until(lambda: fake.live_tasks() == ["a"])
        attempt = fake.attempt_of("a")
        head.orchestrator.post_task_logs([
            LiveLogChunk(run_id, "a", attempt, "stdout", "live line\n", 0),
            LiveLogChunk(run_id, "a", f"{run_id}:a:9", "stdout", "not this attempt\n", 0),
            LiveLogChunk(run_id, "nope", attempt, "stdout", "no such task\n", 0),
        ])
        await until(lambda: ("task_log", "a") in head.events(run_id))
        live = [e for e in head.store.get_events(run_id) if e["type"] == "task_log"]
        assert [e["data"] for e in live] == [{"stream": "stdout", "text": "live line\n", "attempt_id": attempt,
                                              "chunk": 0, "live": True}]
        fake.succeed(attempt, stdout="live line\n")
        await head.finished(run_id)
        head.orchestrator.post_task_logs([LiveLogChunk(run_id, "a", attempt, "stdout", "too late\n", 1)])
        await head.orchestrator.flush()
        logs = [e["data"] for e in head.store.get_events(run_id) if e["type"] == "task_log"]
        assert [d.get("live", False) for d in logs] == [True, False] and logs[1]["final"] is True
    finally:
        await head.orchestrator.stop()
        head.store.close()
