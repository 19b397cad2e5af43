"""The smallest Lattice program: one task, one run.

Start a head first (`lattice start --head`), then either `python examples/hello.py` or
`lattice submit examples/hello.py`. `LatticeClient()` finds the head by itself: `$LATTICE_URL`, else
the local head's `head.json` in `$LATTICE_HOME` or `~/.lattice` (with its token file).
"""

from typing import Any

from lattice import LatticeClient, task


@task(inputs=["text"], outputs=["result"])
def my_task(params):
    text: Any = params.get("text")
    return {"result": f"Hello {text}"}


client = LatticeClient()  # no I/O yet: it only finds the head's URL and token
workflow = client.create_workflow("hello")
workflow.add_task(my_task, inputs={"text": "Lattice"})

if __name__ == "__main__":
    run_id = workflow.run()
    print(workflow.get_results(run_id))
