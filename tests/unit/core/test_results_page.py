"""Which sinks one page of a run's results carries, and that a shared output name is spelled alike on
every page (``lattice.core.results``), so the pages merged are the whole answer."""

from __future__ import annotations

from lattice.api.routes.runs import merge_sink_outputs
from lattice.core.results import results_page, shared_outputs


def test_pages_cover_every_sink_once_in_order() -> None:
    sinks = tuple(f"s{i}" for i in range(7))
    outputs = shared_outputs(sinks, {s: ("v",) for s in sinks})
    pages, after = [], 0
    while after is not None:
        page = results_page(sinks, outputs, after, 3)
        pages.append(page.sinks)
        after = page.next_after
    assert pages == [sinks[0:3], sinks[3:6], sinks[6:7]]
    assert results_page(sinks, outputs, 6, 3).next_after is None
    assert results_page(sinks, outputs, 100, 3).sinks == ()  # past the end: an empty last page
    empty = results_page(sinks, outputs, 0, 0)  # nothing room for (a batch answer's budget spent): all to come
    assert (empty.sinks, empty.next_after) == ((), 0)


def test_a_name_shared_across_pages_is_task_dot_output_on_each_and_merges_to_the_whole() -> None:
    sinks = ("a", "b", "c")
    declared = {"a": ("result",), "b": ("result", "other"), "c": ("only_c",)}
    blobs = {name: {out: ("json", b"1") for out in outs} for name, outs in declared.items()}
    whole = merge_sink_outputs(sinks, blobs)
    merged: dict = {}
    for after in range(3):
        page = results_page(sinks, shared_outputs(sinks, declared), after, 1)
        assert page.shared == frozenset({"result"})
        merged.update(merge_sink_outputs(page.sinks, {s: blobs[s] for s in page.sinks}, page.shared))
    assert merged == whole
    assert set(whole) == {"a.result", "b.result", "other", "only_c"}
