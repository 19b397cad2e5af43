"""The retry policy: the pure decision (delay, backoff, cap, jitter, what is never retried), the delayed
re-queue as the run algorithm sees it, and the decorator's checks. A real head: test_retry_policy_head.py."""

from __future__ import annotations

import pytest

from lattice import NonRetryable, TaskDefinitionError, task
from lattice.core import algorithm
from lattice.core.algorithm import decide_retry
from lattice.core.states import RunState, TaskState
from lattice.wire.failures import ErrorInfo, ErrorKind, error_info_from_exception
from lattice.wire.spec import TaskSpec
from tests.unit.core.test_algorithm import NOW, Loop, new_run, raised


def spec(**policy: object) -> TaskSpec:
    return TaskSpec(name="a", builtin="noop", outputs=["out"], **policy)  # type: ignore[arg-type]


def error(**detail: object) -> ErrorInfo:
    return ErrorInfo(ErrorKind.EXCEPTION, "ValueError", "boom", detail=dict(detail))


class QuotaError(RuntimeError):
    pass


class HardQuotaError(QuotaError):
    pass


def test_exponential_backoff_with_a_cap() -> None:
    policy = spec(retries=6, retry_delay=1.5, backoff=2, max_delay=10)
    delays = [decide_retry(policy, attempt, error()).delay_s for attempt in range(1, 7)]
    assert delays == [1.5, 3.0, 6.0, 10.0, 10.0, 10.0]
    assert decide_retry(policy, 7, error()) == algorithm.RetryDecision(False, reason="no retries left (6 allowed)")


def test_no_delay_by_default_and_a_constant_delay_with_backoff_one() -> None:
    assert decide_retry(spec(retries=2), 1, error()).delay_s == 0
    assert [decide_retry(spec(retries=3, retry_delay=4, backoff=1), n, error()).delay_s for n in (1, 2, 3)] == [4] * 3


def test_jitter_takes_off_at_most_its_fraction_and_differs_between_attempts() -> None:
    policy = spec(retries=1, retry_delay=10, jitter=0.5)
    delays = {decide_retry(policy, 1, error(), f"run:task{i}:1").delay_s for i in range(50)}
    assert all(5 <= d <= 10 for d in delays) and len(delays) > 40
    # pure: the same attempt gets the same delay
    assert decide_retry(policy, 1, error(), "r:t:1") == decide_retry(policy, 1, error(), "r:t:1")


def test_the_delay_an_error_asks_for_wins_but_stays_under_the_cap() -> None:
    assert decide_retry(spec(retries=1, retry_delay=1), 1, error(next_delay_s=7)).delay_s == 7
    assert decide_retry(spec(retries=1, retry_delay=1, max_delay=3), 1, error(next_delay_s=7)).delay_s == 3


def test_what_is_never_retried() -> None:
    policy = spec(retries=5, non_retryable=[f"{QuotaError.__module__}.QuotaError"])
    try:
        raise NonRetryable("the input is wrong")
    except NonRetryable as exc:
        info = error_info_from_exception(exc)
    assert info.detail["retryable"] is False and not info.retryable
    assert decide_retry(policy, 1, info) == algorithm.RetryDecision(False, reason="the task raised NonRetryable")
    # a subclass of a listed type matches: the error names its classes
    hard = error_info_from_exception(HardQuotaError("over"))
    assert hard.detail["exception_types"][:2] == [f"{HardQuotaError.__module__}.HardQuotaError",
                                                  f"{QuotaError.__module__}.QuotaError"]
    decision = decide_retry(policy, 1, hard)
    assert not decision.retry and f"listed: {__name__}.QuotaError" in decision.reason
    assert decide_retry(policy, 1, error_info_from_exception(ValueError("x"))).retry
    unplaceable = ErrorInfo(ErrorKind.RESOURCE_UNAVAILABLE, "ResourceUnavailable", "too big")
    assert decide_retry(policy, 1, unplaceable).reason == "a resource_unavailable failure is not retried"
    # an error without exception_types (e.g. from an older worker) is matched by its type alone
    named = ErrorInfo(ErrorKind.EXCEPTION, f"{QuotaError.__module__}.QuotaError", "q")
    assert not decide_retry(policy, 1, named).retry


def test_a_delayed_retry_waits_in_retrying_until_it_is_due() -> None:
    loop = Loop(new_run(spec(retries=1, retry_delay=5)))
    loop.start()
    assert loop.finish("a", raised()) == []  # not re-queued at once
    assert loop.state("a") is TaskState.RETRYING
    retrying = [e for e in loop.take_all_events() if e[0] == "task_retrying"]
    assert retrying == [("task_retrying", {"attempt": 1, "delay_s": 5.0, "retry_at": NOW + 5})]
    assert loop.last_retry_later == [("a", 1, 5.0)]
    assert not algorithm.retry_due(loop.run, "a", 2, NOW + 5, loop.fx)  # a timer for another attempt
    assert algorithm.retry_due(loop.run, "a", 1, NOW + 5, loop.fx)
    assert loop.place_all() == ["a"] and loop.state("a") is TaskState.RUNNING
    loop.take()
    loop.finish("a")
    assert loop.run.state is RunState.SUCCEEDED


def test_cancel_during_the_delay_cancels_and_the_timer_then_does_nothing() -> None:
    loop = Loop(new_run(spec(retries=3, retry_delay=60)))
    loop.start()
    loop.finish("a", raised())
    algorithm.cancel_run(loop.run, NOW + 1, loop.fx)
    loop.take()
    assert loop.state("a") is TaskState.CANCELLED and loop.run.state is RunState.CANCELLED
    assert not algorithm.retry_due(loop.run, "a", 1, NOW + 60, loop.fx)
    assert not loop.fx


def test_a_restart_during_the_delay_retries_at_once_with_the_attempt_count_kept() -> None:
    run = new_run(spec(retries=2, retry_delay=60))
    tasks, active, reset = algorithm.restore_tasks(run.graph, {"a": run.tasks["a"].spec}, {"a": ("retrying", 1)})
    assert reset == ["a"] and active == 1 and tasks["a"].attempt == 1
    run.tasks = tasks
    fx = algorithm.Effects()
    algorithm.resume_run(run, reset, NOW, fx)
    assert [item.key for item in fx.enqueue] == [("r1", "a")] and tasks["a"].state is TaskState.READY


def test_giving_up_says_why_on_the_event() -> None:
    loop = Loop(new_run(spec(retries=1)))
    loop.start()
    loop.finish("a", raised())
    loop.finish("a", raised())
    failed = [data for type_, data in loop.take_all_events() if type_ == "task_failed"]
    assert failed[-1]["not_retried"] == "no retries left (1 allowed)"


def test_the_decorator_checks_and_ships_the_policy() -> None:
    @task(outputs=["y"], retries=3, retry_delay=0.5, backoff=3, max_delay=4, jitter=0.1,
          non_retryable=[KeyError, QuotaError])
    def step(params):
        return {"y": 1}

    assert step.policy()["retry_delay"] == 0.5 and step.policy()["backoff"] == 3
    assert step.policy()["non_retryable"] == ["KeyError", f"{QuotaError.__module__}.QuotaError"]
    TaskSpec(name="step", builtin="noop", **step.policy())  # the head's model takes it

    @task(outputs=["y"], retries=1)
    def plain(params):
        return {"y": 1}

    assert not {"retry_delay", "backoff", "max_delay", "jitter", "non_retryable"} & set(plain.policy())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"retry_delay": -1}, "retry_delay (seconds) must be a number from 0 to 86400"),
    ({"retry_delay": "5"}, "retry_delay (seconds) must be a number"),
    ({"backoff": 0.5}, "backoff must be a number from 1 to 100"),
    ({"retry_delay": 5, "max_delay": 2}, "max_delay must be > 0 and >= retry_delay (5)"),
    ({"jitter": 1.5}, "jitter (a fraction of each delay) must be a number from 0 to 1"),
    ({"non_retryable": KeyError}, "non_retryable must be a list of exception types"),
    ({"non_retryable": ["KeyError"]}, "non_retryable entry 'KeyError' is not an exception type"),
])
def test_bad_retry_settings_fail_where_the_task_is_declared(kwargs: dict, message: str) -> None:
    with pytest.raises(TaskDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        task(outputs=["y"], retries=1, **kwargs)(lambda params: {"y": 1})


def test_the_head_model_refuses_a_cap_below_the_delay() -> None:
    with pytest.raises(ValueError, match="max_delay"):
        spec(retries=1, retry_delay=5, max_delay=1)
