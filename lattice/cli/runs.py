"""``lattice runs``: list, show, follow the logs of, cancel and retry runs (like ``ray job`` or
``prefect flow-run``). Every command talks to the head through the SDK (:class:`~lattice.LatticeClient`),
found as ``lattice status`` finds it (:mod:`lattice.cli.target`).

``runs retry`` starts a **new run** of the same workflow with the same inputs, priority and tags (plus
the tag ``retry_of``), rather than resuming the failed tasks of the old run: a finished run is a
record (its events, attempts, logs and error stay as they were, so the two can be compared), the head
has no "resume a finished run" operation, and a new run is what a person retrying after fixing the
cause (a key, a quota, a flaky service) needs. The cost: tasks that succeeded before run again.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Column, Table

from lattice.cli.target import Target, head_errors, resolve_target, target_options
from lattice.core.states import RunState

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
RUN_STATES = click.Choice([state.value for state in RunState])
_TERMINAL = {state.value for state in RunState if state.terminal}


@click.group()
def runs() -> None:
    """List, inspect, follow, cancel and retry runs."""


def _target(url: str | None, token: str | None, data_dir: Path | None) -> Target:
    return resolve_target(url, token, data_dir)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _duration(run: dict[str, Any]) -> str:
    start, end = run.get("started_at"), run.get("finished_at")
    if not start:
        return "-"
    return f"{(end or time.time()) - start:.1f} s"


def error_line(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    return f"{error.get('type', 'error')}: {error.get('message', '')}".strip()


@runs.command("list")
@target_options
@click.option("--status", "state", type=RUN_STATES, default=None, help="Only runs in this state.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Newest N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def list_runs(url: str | None, data_dir: Path | None, token: str | None, state: str | None, limit: int,
              as_json: bool) -> None:
    """Runs, newest first."""
    target = _target(url, token, data_dir)
    with head_errors(target), target.client() as client:
        items = client.list_runs(state=state, limit=limit)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        err.print("no runs" + (f" in state {state}" if state else ""))
        return
    table = Table("workflow", "state", "created", "duration", "failed task")
    table.columns.insert(0, Column("run", no_wrap=True, min_width=32))  # whole ids: they are what you paste
    for run in items:
        table.add_row(run["run_id"], run["workflow_name"], run["state"], _when(run["created_at"]), _duration(run),
                      run.get("failed_task") or "")
    out.print(table)


@runs.command("show")
@target_options
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run (with its tasks) as JSON.")
def show(url: str | None, data_dir: Path | None, token: str | None, run_id: str, as_json: bool) -> None:
    """A run's state, timings, error and each task's state."""
    target = _target(url, token, data_dir)
    with head_errors(target), target.client() as client:
        run = client.get_run(run_id)
    if as_json:
        click.echo(json.dumps(run, indent=2))
        return
    out.print(f"[bold]run[/] {run['run_id']}  workflow {run['workflow_name']} ({run['workflow_id']})", highlight=False)
    out.print(f"state: {run['state']}   created: {_when(run['created_at'])}   started: {_when(run['started_at'])}"
              f"   finished: {_when(run['finished_at'])}   duration: {_duration(run)}", highlight=False)
    if run.get("tags"):
        out.print("tags: " + ", ".join(f"{k}={v}" for k, v in run["tags"].items()), highlight=False)
    if run.get("failed_task"):
        out.print(f"[red]failed task[/] {run['failed_task']}: {error_line(run.get('error'))}", highlight=False)
    table = Table("task", "state", "attempt", "node", "duration", "error")
    for task in run.get("tasks") or []:
        duration = f"{task['duration_s']:.3f} s" if task.get("duration_s") is not None else "-"
        table.add_row(task["name"], task["state"], str(task["attempt"]), (task.get("node_id") or "")[:12], duration,
                      error_line(task.get("error")))
    out.print(table)


def print_log_event(event: dict[str, Any], task: str | None = None, all_to_stderr: bool = False,
                    live_seen: dict[tuple[str, str], str] | None = None) -> None:
    """A ``task_log`` event's text, each line prefixed with its task; stderr lines go to stderr (all
    lines do with ``all_to_stderr``: ``lattice submit`` keeps stdout for the results).

    With ``live_seen`` (one dict per stream followed), an attempt whose output came live is not printed twice:
    its final event (the attempt's tail) prints only what follows the last live text, which is what the live
    stream may have missed in the attempt's last moments."""
    if event.get("type") != "task_log" or (task and event.get("task") != task):
        return
    data = event.get("data") or {}
    text = str(data.get("text", ""))
    if live_seen is not None:
        key = (str(data.get("attempt_id")), str(data.get("stream")))
        if data.get("live"):
            live_seen[key] = (live_seen.get(key, "") + text)[-256:]
        elif data.get("final") and key in live_seen:
            seen = live_seen.pop(key)
            at = text.rfind(seen) if seen else -1
            text = text[at + len(seen):] if at >= 0 else text
    stream = sys.stderr if all_to_stderr or data.get("stream") == "stderr" else sys.stdout
    for line in text.splitlines():
        print(f"{event.get('task')} | {line}", file=stream, flush=True)


@runs.command("logs")
@target_options
@click.argument("run_id")
@click.option("--task", default=None, help="Only this task's attempts.")
@click.option("--follow", "-f", is_flag=True, help="Stream the logs live until the run ends.")
def logs(url: str | None, data_dir: Path | None, token: str | None, run_id: str, task: str | None,
         follow: bool) -> None:
    """Each attempt's stdout and stderr; with --follow, live as tasks print, until the run ends."""
    target = _target(url, token, data_dir)
    with head_errors(target), target.client() as client:
        if follow:  # the stream replays the run's past events first, so nothing before now is missed
            live_seen: dict[tuple[str, str], str] = {}
            for event in client.stream(run_id):
                print_log_event(event, task, live_seen=live_seen)
            return
        attempts = client.get_logs(run_id, task)
    if not attempts:
        err.print(f"no attempts{f' of task {task}' if task else ''} have finished in run {run_id} yet")
    for attempt in attempts:
        header = (f"== {attempt['task']} (attempt {attempt['attempt']}, {attempt['state']}, node "
                  f"{(attempt.get('node_id') or '-')[:12]}) ==")
        click.echo(header)
        if attempt.get("stdout"):
            click.echo(attempt["stdout"].rstrip("\n"))
        if attempt.get("stderr"):
            click.echo(attempt["stderr"].rstrip("\n"), err=True)
        if attempt.get("error"):
            click.echo(f"error: {error_line(attempt['error'])}")


@runs.command("cancel")
@target_options
@click.argument("run_id")
def cancel(url: str | None, data_dir: Path | None, token: str | None, run_id: str) -> None:
    """Cancel a run: queued tasks never start, running ones are stopped. A finished run is left as it is."""
    target = _target(url, token, data_dir)
    with head_errors(target), target.client() as client:
        before = client.get_run(run_id)["state"]
        after = client.cancel(run_id)["state"]
    if before in _TERMINAL:
        err.print(f"run {run_id} had already finished ({before}); nothing to cancel", highlight=False)
    else:
        err.print(f"run {run_id}: {after}", highlight=False)


@runs.command("retry")
@target_options
@click.argument("run_id")
@click.option("--wait/--no-wait", default=False, show_default=True,
              help="Wait for the new run, streaming its progress; exit 0 if it succeeds, 1 if not.")
def retry(url: str | None, data_dir: Path | None, token: str | None, run_id: str, wait: bool) -> None:
    """Start a new run of the same workflow with the same inputs, priority and tags; prints its id.

    The old run is left as it was (tagged retry_of on the new one); every task runs again.
    """
    from lattice.cli.submit import follow_run
    from lattice.client import endpoints
    from lattice.client.transport import HeadHTTP

    target = _target(url, token, data_dir)
    with head_errors(target), target.client() as client:
        run = client.get_run(run_id)
        tags = {**(run.get("tags") or {}), "retry_of": run_id}
        call = endpoints.start_run(run["workflow_id"], run["priority"], tags)
        # the stored inputs are already in wire form ({value} or {encoding, data}): sent as they are,
        # never decoded here (a pickled input is only ever unpickled by its task)
        if run.get("inputs"):
            call = dataclasses.replace(call, json={**call.json, "inputs": run["inputs"]})
        with HeadHTTP(client.config) as head:
            new_id = head.send(call)
        click.echo(new_id)
        err.print(f"started run {new_id}, a retry of {run_id}", highlight=False)
        if wait:
            sys.exit(follow_run(client, new_id))


__all__ = ["error_line", "print_log_event", "runs"]
