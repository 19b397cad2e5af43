"""A financial-risk graph whose CPU-bound Monte Carlo nodes run on Lattice (no API key needed).

    lattice start --head                  # in another terminal
    python examples/langgraph_risk.py     # add --plain to run the same graph without Lattice

The graph is ordinary LangGraph: start -> three risk models in parallel -> report. Only the
decorator differs; plain LangGraph runs the three models in threads that share one GIL, Lattice runs
each in its own process with the core it declares.
"""

from __future__ import annotations

import operator
import random
import sys
import time
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from lattice import LangGraphClient

PATHS = 4_000_000


class RiskState(TypedDict):
    portfolio: str
    risks: Annotated[list[tuple[str, float]], operator.add]
    report: str


def expected_shortfall(seed: int, paths: int = PATHS) -> float:
    """Average of the worst daily returns (below -3%) of a toy return model: pure Python, holds the GIL."""
    rng = random.Random(seed)
    tail, count = 0.0, 0
    for _ in range(paths):
        r = rng.gauss(0.0005, 0.02)
        if r < -0.03:
            tail += r
            count += 1
    return tail / max(count, 1)


def build(node: Any) -> Any:
    @node
    def market_risk(state: RiskState) -> dict[str, Any]:
        return {"risks": [("market", expected_shortfall(1))]}

    @node
    def credit_risk(state: RiskState) -> dict[str, Any]:
        return {"risks": [("credit", expected_shortfall(2))]}

    @node
    def liquidity_risk(state: RiskState) -> dict[str, Any]:
        return {"risks": [("liquidity", expected_shortfall(3))]}

    def report(state: RiskState) -> dict[str, Any]:
        lines = [f"{name:>10}: {value:+.4%}" for name, value in sorted(state["risks"])]
        return {"report": f"risk report for {state['portfolio']}\n" + "\n".join(lines)}

    g = StateGraph(RiskState)
    g.add_node("start", lambda state: {"portfolio": state["portfolio"].upper()})
    for fn in (market_risk, credit_risk, liquidity_risk):
        g.add_node(fn)
        g.add_edge("start", fn.__name__)
    g.add_node("report", report)
    g.add_edge(START, "start")
    g.add_edge(["market_risk", "credit_risk", "liquidity_risk"], "report")
    g.add_edge("report", END)
    return g.compile()


def main() -> None:
    if "--plain" in sys.argv:
        graph = build(lambda fn: fn)
    else:
        client = LangGraphClient(graph="risk-example")  # finds the local head and its token
        graph = build(client.task(cpu=1, memory=512, timeout=120))
    started = time.perf_counter()
    result = graph.invoke({"portfolio": "demo fund", "risks": []})
    print(result["report"])
    print(f"took {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
