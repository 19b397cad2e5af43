"""A terminal progress bar for a person waiting on a run (rich), fed from the run's task counts."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

_DONE = ("succeeded", "failed", "cancelled", "skipped")


class RunProgress:
    """One run's bar (transient: it disappears when the wait ends); both clients' wait plan feeds it.

    It is imported only when a bar is shown, so that importing a client does not import rich.
    """

    def __init__(self, run_id: str) -> None:
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]run {task.fields[run]}[/] {task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
        self._task = self._progress.add_task("starting", total=None, run=run_id[:8])
        self._progress.start()

    def update(self, run: dict[str, Any]) -> None:
        counts: dict[str, int] = run.get("task_counts") or {}
        total = sum(counts.values()) or None
        done = sum(counts.get(state, 0) for state in _DONE)
        running = counts.get("running", 0)
        failed = counts.get("failed", 0)
        description = f"{running} running" + (f", [red]{failed} failed[/]" if failed else "")
        self._progress.update(self._task, total=total, completed=done, description=description)

    def close(self) -> None:
        self._progress.stop()
