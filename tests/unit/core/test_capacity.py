"""The resource manager as the one owner of capacity: reservations, cores executing, the wait for a core."""

from __future__ import annotations

from lattice.core.cluster import Node, ResourceManager
from lattice.wire.resources import Resources

ONE = Resources(cpu=1)
IO = Resources(cpu=0)


def manager(cpu: float = 2) -> ResourceManager:
    rm = ResourceManager()
    rm.update_nodes([Node("n1", "x", cpu=cpu, gpu=0, memory_mb=1000)])
    return rm


def test_attempts_beyond_the_free_cores_wait_first_come_first_served() -> None:
    rm = manager(cpu=2)
    for _ in range(5):
        assert rm.try_place(ONE, prefetch=True) == "n1"  # cores plus prefetch slots
    assert [rm.start("n1", key, ONE) for key in "abcde"] == [True, True, False, False, False]
    assert rm.busy_cpu("n1") == 2 and rm.waiting("n1") == ["c", "d", "e"]
    assert list(rm.release("n1", ONE, "a")) == ["c"]  # a's core goes to the first in line
    assert rm.busy_cpu("n1") == 2 and rm.waiting("n1") == ["d", "e"]
    assert list(rm.release("n1", ONE, "e")) == []  # leaving the queue frees no core
    assert rm.waiting("n1") == ["d"]
    assert list(rm.release("n1", ONE, "b")) == ["d"]
    assert list(rm.release("n1", ONE, "c")) == [] and list(rm.release("n1", ONE, "d")) == []
    assert rm.busy_cpu("n1") == 0 and rm.nodes["n1"].used_cpu == 0 and rm.nodes["n1"].running == 0


def test_io_tasks_never_wait_for_a_core() -> None:
    rm = manager(cpu=1)
    rm.try_place(ONE)
    assert rm.start("n1", "cpu", ONE)
    assert all(rm.start("n1", f"io{i}", IO) for i in range(3))
    assert rm.busy_cpu("n1") == 1
    assert list(rm.release("n1", IO, "io0")) == []
    assert rm.busy_cpu("n1") == 1


def test_a_bigger_task_at_the_front_holds_back_the_queue_but_not_a_new_attempt_that_fits() -> None:
    rm = manager(cpu=2)
    two = Resources(cpu=2)
    assert rm.start("n1", "a", ONE) and not rm.start("n1", "big", two)
    assert rm.start("n1", "small", ONE)  # the free core is taken at once, as before the split
    assert not rm.start("n1", "later", ONE)
    assert rm.waiting("n1") == ["big", "later"]
    assert list(rm.release("n1", ONE, "a")) == []  # big needs two cores; later stays behind it
    assert list(rm.release("n1", ONE, "small")) == ["big"]
    assert list(rm.release("n1", two, "big")) == ["later"]


def test_a_reservation_released_before_the_attempt_started_frees_no_core() -> None:
    rm = manager(cpu=1)
    assert rm.try_place(ONE) == "n1"
    assert rm.start("n1", "a", ONE)
    assert rm.try_place(ONE, prefetch=True) == "n1"
    assert list(rm.release("n1", ONE)) == []  # placed, never handed to the backend
    assert rm.busy_cpu("n1") == 1 and rm.nodes["n1"].used_cpu == 1


def test_an_unknown_node_or_attempt_changes_nothing() -> None:
    rm = manager()
    assert list(rm.release("gone", ONE, "a")) == []
    rm.try_place(ONE)
    rm.start("n1", "a", ONE)
    assert list(rm.release("n1", ONE, "never-started")) == []
    assert rm.busy_cpu("n1") == 1  # only a started attempt gives its core back


def test_capacity_views_for_the_loop() -> None:
    rm = manager()
    rm.observe("n1", 0.001)
    rm.observe(None, 1.0)  # an attempt whose node is unknown teaches nothing
    assert rm.nodes["n1"].task_seconds == 0.001
    assert rm.gpu_fraction("n1", Resources(cpu=1, gpu=0.5)) == 0.5
    assert rm.alive_node_ids() == {"n1"}
    rm.update_nodes([])
    assert rm.alive_node_ids() == set()


def test_why_a_task_never_fits_names_the_missing_label_or_resource_and_what_nodes_have() -> None:
    rm = ResourceManager()
    rm.update_nodes([Node("n1", "x", cpu=2, gpu=0, memory_mb=1000, labels={"zone": "b", "ray.io/node-id": "ab12"},
                         custom={"tpu": 2.0})])
    labelled = Resources(cpu=1, node_labels={"zone": "a"})
    assert not rm.fits_anywhere(labelled)
    assert rm.why_never_fits(labelled) == ("no node has label zone=a (labels in the cluster: zone=b; custom "
                                           "resources: 'tpu' (up to 2))")
    assert "no node has 4 of 'tpu'" in rm.why_never_fits(Resources(cpu=1, custom={"tpu": 4}))
    too_big = Resources(cpu=8, node_labels={"zone": "b"})  # the label exists: the size is what does not fit
    assert not rm.fits_anywhere(too_big)
    assert rm.why_never_fits(too_big).startswith("the largest node has {'cpu': 2")
