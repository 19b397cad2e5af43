import itertools

import pytest

from lattice.core.states import (
    TASK_TRANSITIONS,
    InvalidTransition,
    RunState,
    TaskState,
    check_run_transition,
    check_task_transition,
)


def test_happy_path_and_retry():
    path = [TaskState.PENDING, TaskState.READY, TaskState.SCHEDULED, TaskState.RUNNING, TaskState.RETRYING,
            TaskState.READY, TaskState.SCHEDULED, TaskState.RUNNING, TaskState.SUCCEEDED]
    for a, b in itertools.pairwise(path):
        check_task_transition(a, b)


def test_terminal_states_are_final():
    for state in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED):
        assert state.terminal and not TASK_TRANSITIONS[state]
        with pytest.raises(InvalidTransition):
            check_task_transition(state, TaskState.READY)


def test_no_shortcuts():
    with pytest.raises(InvalidTransition):
        check_task_transition(TaskState.PENDING, TaskState.RUNNING)
    with pytest.raises(InvalidTransition):
        check_task_transition(TaskState.READY, TaskState.SUCCEEDED)
    with pytest.raises(InvalidTransition):
        check_run_transition(RunState.SUCCEEDED, RunState.FAILED)
    check_run_transition(RunState.RUNNING, RunState.CANCELLED)
