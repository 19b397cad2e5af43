"""A DAG with parallel CPU-bound branches, an I/O-bound step, a failure that is handled, and live events.

Start a head first (`lattice start --head`), then: `python examples/parallel_pipeline.py` (`LatticeClient()`
finds the local head and its token by itself).

    fetch (cpu=0, I/O) ─┬─> score(part 0) ─┐
                        ├─> score(part 1) ─┼─> report
                        └─> score(part 2) ─┘

The three `score` tasks are pure Python and CPU-bound: each runs in its own Ray worker process, so on a
machine with N cores N of them truly run at once (no GIL between them).
"""

from __future__ import annotations

import time

from lattice import LatticeClient, TaskFailed, task


@task(inputs=["n"], outputs=["numbers"], cpu=0)
def fetch(params):
    time.sleep(0.2)  # stands in for an HTTP call: cpu=0 holds no core while it waits
    return {"numbers": list(range(params["n"]))}


@task(inputs=["numbers", "part", "parts"], outputs=["score"], cpu=1, timeout=60, retries=1)
def score(params):
    numbers = params["numbers"][params["part"]::params["parts"]]
    total = 0
    for x in numbers:  # deliberately CPU-bound pure Python
        for k in range(2_000):
            total = (total + x * k) % 1_000_003
    return {"score": total}


@task(inputs=["a", "b", "c"], outputs=["report"])
def report(params):
    scores = [params["a"], params["b"], params["c"]]
    return {"report": {"scores": scores, "sum": sum(scores)}}


@task(inputs=["x"], outputs=["y"])
def fragile(params):
    raise ValueError(f"cannot handle {params['x']!r}")


def main() -> None:
    client = LatticeClient()
    workflow = client.create_workflow("parallel-pipeline")
    fetched = workflow.add_task(fetch, inputs={"n": 3_000})
    parts = [workflow.add_task(score, inputs={"numbers": fetched.outputs["numbers"], "part": i, "parts": 3})
             for i in range(3)]
    workflow.add_task(report, inputs={name: p.outputs["score"] for name, p in zip("abc", parts, strict=True)})

    run_id = workflow.run()
    for event in workflow.stream(run_id):  # live, in order; reconnects where it left off
        if event["type"] in ("task_started", "task_succeeded", "run_finished"):
            print(f"  [{event['seq']:3}] {event['type']:15} {event.get('task') or ''}")
    print(workflow.get_results(run_id))
    for name, result in workflow.get_task_results(run_id).items():
        print(f"  {name:8} {result.state:9} {result.duration_s or 0:.3f} s on node {str(result.node_id)[:8]}")

    # The same workflow again, with other arguments for one task (no re-registration).
    print(workflow.get_results(workflow.run(inputs={"fetch": {"n": 300}})))

    # A failure: the exception type, message and remote traceback reach the client.
    failing = client.create_workflow("failing")
    failing.add_task(fragile, inputs={"x": 42})
    try:
        failing.get_results(failing.run())
    except TaskFailed as exc:
        print(f"task {exc.task!r} failed with {exc.error.type}: {exc.error.message}")


if __name__ == "__main__":
    main()
