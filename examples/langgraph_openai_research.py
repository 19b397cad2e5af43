"""A small research agent on Lattice that calls an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, ...).

    export OPENAI_API_KEY=...            # or OPENAI_BASE_URL=http://localhost:11434/v1 for Ollama
    export OPENAI_MODEL=gpt-4o-mini      # optional
    lattice start --head                 # started in this environment, so its workers see the key
    python examples/langgraph_openai_research.py "How do heat pumps work in cold climates?"

plan -> one ``Send`` per sub-question (each a Lattice run, all in flight at once, ``cpu=0`` because
they wait on the network) -> write. The key is read on the worker from its environment, never put in
the graph's state or config (the head stores those). Without a key the script says so and exits.
"""

from __future__ import annotations

import operator
import sys
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, Send

from lattice import LangGraphClient
from lattice.llm.openai_compat import LLMError, OpenAICompatClient, configured

client = LangGraphClient(graph="research-example")


class Research(TypedDict):
    question: str
    subquestions: list[str]
    notes: Annotated[list[str], operator.add]
    answer: str


@client.task(cpu=0, timeout=120)
def plan(state: Research) -> dict[str, Any]:
    text = OpenAICompatClient().chat([
        {"role": "system", "content": "Split the question into 3 short, independent sub-questions, one per line."},
        {"role": "user", "content": state["question"]}])
    lines = [line.strip("-• 0123456789.").strip() for line in text.splitlines()]
    return {"subquestions": [line for line in lines if line][:3]}


@client.task(cpu=0, timeout=120)
def research(item: dict[str, str]) -> dict[str, Any]:
    text = OpenAICompatClient().chat([
        {"role": "system", "content": "Answer in at most three sentences."},
        {"role": "user", "content": item["subquestion"]}])
    return {"notes": [f"Q: {item['subquestion']}\nA: {text}"]}


@client.task(cpu=0, timeout=120)
def write(state: Research) -> dict[str, Any]:
    text = OpenAICompatClient().chat([
        {"role": "system", "content": "Write a short, well-structured answer from these notes."},
        {"role": "user", "content": state["question"] + "\n\n" + "\n\n".join(state["notes"])}])
    return {"answer": text}


def build() -> Any:
    g = StateGraph(Research)
    g.add_node(plan)
    g.add_node(research, retry_policy=RetryPolicy(retry_on=LLMError, max_attempts=3))
    g.add_node(write)
    g.add_edge(START, "plan")
    g.add_conditional_edges(
        "plan", lambda s: [Send("research", {"subquestion": q}) for q in s["subquestions"]], ["research"])
    g.add_edge("research", "write")
    g.add_edge("write", END)
    return g.compile()


def main() -> None:
    if not configured():
        print("Set OPENAI_API_KEY (or OPENAI_BASE_URL for a local endpoint) to run this example; "
              "examples/langgraph_risk.py needs no key.")
        return
    question = " ".join(sys.argv[1:]) or "What limits the range of electric cars in winter?"
    result = build().invoke({"question": question, "subquestions": [], "notes": []})
    print(result["answer"])


if __name__ == "__main__":
    main()
