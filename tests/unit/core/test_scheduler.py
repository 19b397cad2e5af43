from lattice.core.cluster import Node, ResourceManager
from lattice.core.scheduler import QueuedTask, Scheduler
from lattice.wire.resources import Resources


def q(key, cpu=1.0, gpu=0.0, priority=0, t=0.0, memory=0, cp=1):
    return QueuedTask(key=key, resources=Resources(cpu=cpu, gpu=gpu, memory=memory), priority=priority,
                      enqueued_at=t, critical_path=cp)


class Capacity:
    """A tiny pure placer: free CPU and GPU counts on one node."""

    def __init__(self, cpu, gpu=0.0):
        self.cpu, self.gpu = cpu, gpu

    def __call__(self, task):
        r = task.resources
        if r.cpu <= self.cpu and r.gpu <= self.gpu:
            self.cpu -= r.cpu
            self.gpu -= r.gpu
            return "n1"
        return None


def keys(placements):
    return [p.task.key for p in placements]


def test_priority_then_age():
    s = Scheduler(aging_rate=0.0)
    s.push(q("old-low", t=0, priority=0))
    s.push(q("new-high", t=5, priority=10))
    s.push(q("new-low", t=5, priority=0))
    assert keys(s.schedule(Capacity(3))) == ["new-high", "old-low", "new-low"]


def test_aging_lets_a_long_waiter_overtake():
    s = Scheduler(aging_rate=1.0)
    s.push(q("waited", t=0, priority=0))
    s.push(q("fresh-higher", t=100, priority=5))  # 100 s younger: 5 priority points are not enough
    assert keys(s.schedule(Capacity(1))) == ["waited"]


def test_gpu_task_that_cannot_fit_never_blocks_cpu_tasks():
    s = Scheduler()
    s.push(q("gpu", cpu=1, gpu=1, priority=100))
    for i in range(3):
        s.push(q(f"cpu{i}", t=i))
    placed = keys(s.schedule(Capacity(cpu=2, gpu=0)))
    assert placed == ["cpu0", "cpu1"]
    assert "gpu" in s and len(s) == 2


def test_big_task_is_skipped_for_a_small_one_in_the_same_class():
    s = Scheduler()
    s.push(q("big", cpu=4, priority=10))
    s.push(q("small", cpu=1))
    assert keys(s.schedule(Capacity(cpu=2))) == ["small"]
    assert "big" in s


def test_io_tasks_hold_no_cpu():
    s = Scheduler()
    s.push(q("cpu", cpu=1))
    for i in range(5):
        s.push(q(f"io{i}", cpu=0))
    assert len(s.schedule(Capacity(cpu=0))) == 5


def test_remove_and_requeue():
    s = Scheduler()
    s.push(q("a"))
    assert s.remove("a") and not s.remove("a")
    s.push(q("a", priority=3))
    assert keys(s.schedule(Capacity(1))) == ["a"]
    assert len(s) == 0


def node(cpu=2.0, gpu=0.0, memory=1000, node_id="n1"):
    return Node(node_id=node_id, address="x", cpu=cpu, gpu=gpu, memory_mb=memory)


def test_resource_manager_fitting_and_release():
    rm = ResourceManager()
    rm.update_nodes([node()])
    r = Resources(cpu=1, memory=600)
    assert rm.try_place(r) == "n1"
    assert rm.try_place(r) is None  # memory is full
    assert rm.try_place(Resources(cpu=1)) == "n1"
    assert rm.try_place(Resources(cpu=1)) is None  # cores are full
    assert rm.try_place(Resources(cpu=1), prefetch=True) == "n1"  # a prefetch slot
    assert rm.try_place(Resources(cpu=0)) == "n1"  # I/O needs no core
    rm.release("n1", r)
    assert rm.try_place(Resources(cpu=0.5, memory=600)) is None  # the prefetch slot over-books the cores
    assert rm.fits_anywhere(Resources(cpu=2)) and not rm.fits_anywhere(Resources(cpu=3))
    assert not rm.fits_anywhere(Resources(gpu=1))


def test_places_on_the_node_with_most_headroom_and_skips_dead_nodes():
    rm = ResourceManager()
    rm.update_nodes([node(cpu=2, node_id="small"), node(cpu=8, node_id="big")])
    assert rm.try_place(Resources(cpu=1)) == "big"
    rm.update_nodes([node(cpu=2, node_id="small")])  # "big" left the cluster
    assert rm.nodes["big"].alive is False
    assert rm.try_place(Resources(cpu=4)) is None
    assert rm.fits_anywhere(Resources(cpu=4))  # only a dead node fits: it waits (the node may come back)
    rm.nodes["big"].draining = True  # it had been drained: it left on purpose, so nothing fits any more
    assert rm.nodes["big"].state == "left" and not rm.fits_anywhere(Resources(cpu=4))


def test_gpu_memory_admission_and_fraction():
    from lattice.core.cluster import GPUInfo

    rm = ResourceManager()
    n = node(cpu=4, gpu=1)
    n.gpus = [GPUInfo(0, "H200", 140_000)]
    rm.update_nodes([n])
    r = Resources(cpu=1, gpu_memory=70_000)
    assert rm.nodes["n1"].gpu_fraction(r) == 0.5
    assert rm.try_place(r) == "n1" and rm.try_place(r) == "n1"
    assert rm.try_place(r) is None
    assert not rm.fits_anywhere(Resources(gpu_memory=200_000))


def test_prefetch_depth_follows_task_duration():
    rm = ResourceManager()
    rm.update_nodes([node(cpu=2)])
    n = rm.nodes["n1"]
    assert n.prefetch_per_core() == 3  # nothing learnt yet
    for _ in range(30):
        n.observe(0.001)
    assert n.prefetch_per_core() == 7  # short tasks: a deep queue keeps the cores busy
    for _ in range(30):
        n.observe(2.0)
    assert n.prefetch_per_core() == 0  # long tasks: nothing waits behind them in Ray's queue
    assert rm.try_place(Resources(cpu=2), prefetch=True) == "n1"
    assert rm.try_place(Resources(cpu=1), prefetch=True) is None
