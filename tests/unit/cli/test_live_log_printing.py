"""``lattice runs logs --follow`` and ``lattice submit``: live chunks print as they come, and an attempt's final
``task_log`` event then prints only what the live stream did not carry (never the whole log twice)."""

from __future__ import annotations

from typing import Any

import pytest

from lattice.cli.runs import print_log_event


def log(text: str, **data: Any) -> dict[str, Any]:
    return {"type": "task_log", "task": "t", "data": {"stream": "stdout", "attempt_id": "r:t:1", "text": text, **data}}


def test_the_final_event_prints_only_what_the_live_stream_missed(capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[tuple[str, str], str] = {}
    print_log_event(log("one\n", live=True, chunk=0), live_seen=seen)
    print_log_event(log("two\n", live=True, chunk=1), live_seen=seen)
    print_log_event(log("one\ntwo\nthree\n", final=True), live_seen=seen)
    assert capsys.readouterr().out == "t | one\nt | two\nt | three\n"


def test_without_live_chunks_the_final_event_prints_whole(capsys: pytest.CaptureFixture[str]) -> None:
    print_log_event(log("one\ntwo\n", final=True), live_seen={})
    assert capsys.readouterr().out == "t | one\nt | two\n"
