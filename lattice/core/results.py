"""Which sinks one page of a run's results carries, and how their outputs are named on every page.

A run's results are its sink tasks' outputs merged into one dict, a name two sinks share kept as
``task.output``. Paged (``GET /runs/{id}/results?limit=``, the results a ``wait`` submit carries,
``POST /runs/results:batch?limit=``), a page holds at most ``limit`` sinks in the graph's sink order;
which names are shared is worked out from every sink's *declared* outputs (:func:`shared_outputs`, once
per workflow), not from the page's blobs, so a name is spelled the same whichever page carries it (a
succeeded task stored each of its declared outputs, so the two agree for a succeeded run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResultsPage:
    sinks: tuple[str, ...]
    #: output names more than one of the run's sinks declare (named ``task.output`` in the answer)
    shared: frozenset[str]
    #: where the next page starts, or None after the last one
    next_after: int | None


def shared_outputs(sinks: tuple[str, ...], outputs: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """The output names more than one sink declares."""
    seen: dict[str, int] = {}
    for sink in sinks:
        for name in outputs.get(sink, ()):
            seen[name] = seen.get(name, 0) + 1
    return frozenset(name for name, count in seen.items() if count > 1)


def results_page(sinks: tuple[str, ...], shared: frozenset[str], after: int, limit: int) -> ResultsPage:
    """The sinks from the ``after``-th on, at most ``limit`` of them (``limit`` 0: none, the next page
    starting at ``after``)."""
    end = after + limit
    return ResultsPage(sinks=sinks[after:end], shared=shared, next_after=end if end < len(sinks) else None)
