"""``lattice submit SCRIPT[:NAME]``: run a workflow defined in a Python file, stream its progress, and
exit by its outcome (0 succeeded, 1 failed or cancelled), like ``ray job submit``.

What it does, precisely:

1. It points the SDK at the head it found (``LATTICE_URL`` and ``LATTICE_TOKEN`` are set for the
   script), so a ``LatticeClient()`` in the script talks to the same head.
2. It loads ``SCRIPT`` as a module named ``__lattice_submit__`` with the script's folder first on
   ``sys.path`` (as ``python SCRIPT`` would); an ``if __name__ == "__main__":`` block does **not** run.
3. It takes the workflow ``NAME`` (default ``workflow``; without one, the only workflow in the
   module) from it: a :class:`~lattice.LatticeWorkflow` (or any workflow builder), or a function
   taking no arguments that returns one.
4. It registers the workflow's spec and starts one run through its own client (``--input``,
   ``--priority`` and ``--tag`` as for ``workflow.run``), prints the run id on stderr, then each
   task's progress and log lines as they happen (on stderr), and on success the outputs of the sink tasks as
   JSON on stdout. ``--detach`` prints the run id on stdout and exits at once.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from lattice.cli.runs import error_line, print_log_event
from lattice.cli.target import head_errors, resolve_target, target_options

err = Console(stderr=True, soft_wrap=True, highlight=False)
EXIT_SUCCEEDED, EXIT_FAILED = 0, 1


def _parse_input(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    inputs: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        task, dot, name = key.partition(".")
        if not sep or not dot or not task or not name:
            raise click.BadParameter(f"{item!r} is not TASK.INPUT=JSON (e.g. my_task.text='\"hi\"')", param=param)
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw  # a bare word is a string: --input my_task.text=hello
        inputs.setdefault(task, {})[name] = value
    return inputs


def _parse_tags(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param=param)
        tags[key] = value
    return tags


@contextmanager
def _script_environment(script: Path, url: str, token: str | None) -> Iterator[None]:
    """The script sees the head (LATTICE_URL/TOKEN) and its own folder on sys.path; both undone after."""
    saved = {key: os.environ.get(key) for key in ("LATTICE_URL", "LATTICE_TOKEN")}
    os.environ["LATTICE_URL"] = url
    if token:
        os.environ["LATTICE_TOKEN"] = token
    sys.path.insert(0, str(script.parent))
    try:
        yield
    finally:
        sys.path.remove(str(script.parent))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_workflow(script: Path, name: str | None) -> Any:
    """The workflow ``name`` of ``script`` (see the module's docstring); a click error says what is missing."""
    from lattice.client.workflow import WorkflowBuilder

    try:
        namespace = runpy.run_path(str(script), run_name="__lattice_submit__")
    except SystemExit as exc:
        raise click.ClickException(f"{script} called sys.exit({exc.code}) while loading; "
                                   "move that code under 'if __name__ == \"__main__\":'") from None
    except Exception as exc:
        raise click.ClickException(f"{script} raised while loading: {type(exc).__name__}: {exc}") from exc
    if name is None:
        found = [key for key, value in namespace.items() if isinstance(value, WorkflowBuilder)]
        if "workflow" in namespace:
            name = "workflow"
        elif len(found) == 1:
            name = found[0]
        else:
            raise click.ClickException(
                f"{script} defines {'no workflow' if not found else 'several workflows: ' + ', '.join(found)}; "
                f"name one: lattice submit {script}:NAME (a workflow, or a function that returns one)")
    if name not in namespace:
        raise click.ClickException(f"{script} has no {name!r}")
    value = namespace[name]
    if callable(value) and not isinstance(value, WorkflowBuilder):
        value = value()
    if not isinstance(value, WorkflowBuilder):
        raise click.ClickException(f"{script}:{name} is a {type(value).__name__}, not a workflow "
                                   "(client.create_workflow(...), or a function returning one)")
    return value


def _progress_line(event: dict[str, Any]) -> str | None:
    kind, task, data = event.get("type"), event.get("task"), event.get("data") or {}
    if kind == "task_started":
        return f"  {task}: running (attempt {data.get('attempt')}, node {(data.get('node_id') or '-')[:12]})"
    if kind == "task_succeeded":
        return f"  {task}: [green]succeeded[/] in {data.get('duration_s', 0):.2f} s"
    if kind == "task_retrying":
        return f"  {task}: [yellow]retrying[/] ({error_line(data.get('error'))}; {data.get('retries_left')} left)"
    if kind == "task_failed":
        return f"  {task}: [red]failed[/] {error_line(data.get('error'))}"
    if kind == "task_skipped":
        return f"  {task}: skipped (because {data.get('because')} failed)"
    if kind == "task_cancelled":
        return f"  {task}: cancelled"
    return None


def follow_run(client: Any, run_id: str) -> int:
    """Stream the run's progress to stderr until it ends; print its results; return the exit status."""
    from lattice.errors import LatticeError

    live_seen: dict[tuple[str, str], str] = {}
    for event in client.stream(run_id):
        line = _progress_line(event)
        if line:
            err.print(line)
        print_log_event(event, all_to_stderr=True, live_seen=live_seen)
    run = client.get_run(run_id)
    if run["state"] != "succeeded":
        cause = f": task {run['failed_task']} {error_line(run.get('error'))}" if run.get("failed_task") else ""
        err.print(f"run {run_id} [red]{run['state']}[/]{cause}")
        err.print(f"  details: lattice runs show {run_id}   logs: lattice runs logs {run_id}")
        return EXIT_FAILED
    err.print(f"run {run_id} [green]succeeded[/] in {run['finished_at'] - run['started_at']:.2f} s")
    try:
        outputs = client.get_results(run_id)
    except LatticeError as exc:  # e.g. a sandboxed output of an untrusted type: the run still succeeded
        err.print(f"[yellow]the outputs could not be decoded here:[/] {exc}")
        return EXIT_SUCCEEDED
    click.echo(json.dumps(outputs, indent=2, default=repr))
    return EXIT_SUCCEEDED


@click.command()
@target_options
@click.argument("script", metavar="SCRIPT[:NAME]")
@click.option("--input", "inputs", multiple=True, callback=_parse_input, metavar="TASK.INPUT=JSON",
              help="This run's value for a literal input (repeatable); a value that is not JSON is a string.")
@click.option("--priority", type=click.IntRange(-1000, 1000), default=0, show_default=True)
@click.option("--tag", "tags", multiple=True, callback=_parse_tags, metavar="KEY=VALUE", help="A run tag (repeatable).")
@click.option("--detach", is_flag=True, help="Print the run id and exit at once, without waiting.")
def submit(url: str | None, data_dir: Path | None, token: str | None, script: str,
           inputs: dict[str, dict[str, Any]], priority: int, tags: dict[str, str], detach: bool) -> None:
    """Run the workflow defined in SCRIPT (a Python file) and exit 0 if it succeeds, 1 if not.

    NAME is the workflow's variable (default: workflow), or a function returning one; the script's
    'if __name__ == "__main__":' block does not run.
    """
    path_text, _, name = script.partition(":") if not Path(script).is_file() else (script, "", "")
    path = Path(path_text)
    if not path.is_file():
        raise click.BadParameter(f"{path} is not a file", param_hint="SCRIPT")
    target = resolve_target(url, token, data_dir)
    with head_errors(target), target.client() as client:
        with _script_environment(path.resolve(), target.url, client.config.token):
            workflow = load_workflow(path.resolve(), name or None)
            spec = workflow.to_spec()
        workflow_id = client.submit_workflow(spec)
        run_id = client.start_run(workflow_id, priority=priority, tags=tags, inputs=inputs or None)
        if detach:
            click.echo(run_id)
            return
        err.print(f"run [bold]{run_id}[/] of {spec['name']} ({len(spec['tasks'])} tasks) on {target.url}")
        sys.exit(follow_run(client, run_id))


__all__ = ["follow_run", "load_workflow", "submit"]
