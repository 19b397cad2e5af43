"""The smallest Lattice program: one task, one run. Start a head first: `lattice start --head --port 8000`."""

from typing import Any

from lattice import LatticeClient, task


@task(inputs=["text"], outputs=["result"])
def my_task(params):
    text: Any = params.get("text")
    return {"result": f"Hello {text}"}


if __name__ == "__main__":
    client = LatticeClient("http://localhost:8000")
    workflow = client.create_workflow()
    workflow.add_task(my_task, inputs={"text": "Lattice"})
    run_id = workflow.run()
    print(workflow.get_results(run_id))
