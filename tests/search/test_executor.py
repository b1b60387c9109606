"""The local executor (threads of the driver's process, no Ray): the actor semantics the driver
relies on, checked directly."""

from __future__ import annotations

import threading
import time

import pytest

from search.executor import LocalActor, LocalExecutor, LocalTaskError, executor


class Counter:
    def __init__(self, start: int = 0, fail: bool = False, gate: threading.Event | None = None):
        if fail:
            raise RuntimeError("no hardware here")
        self.n = start
        self.seen: list[int] = []
        self.gate = gate or threading.Event()

    def add(self, k: int) -> int:
        self.seen.append(k)
        self.n += k
        return self.n

    def blocked(self) -> str:
        self.gate.wait(10)
        return "released"

    def release(self) -> None:
        self.gate.set()

    def boom(self) -> None:
        raise ValueError("bad kernel source")

    def thread(self) -> str:
        return threading.current_thread().name


def test_calls_run_in_order_one_at_a_time_and_refs_are_resolved_as_arguments():
    ex = LocalExecutor()
    a = LocalActor(Counter, (10,))
    refs = [a.add.remote(k) for k in range(1, 6)]
    assert ex.get(refs) == [11, 13, 16, 20, 25]            # in the order they were sent
    assert ex.get(a.add.remote(refs[0])) == 36              # a Future argument is its value (11)
    assert ex.get(a.thread.remote()) != threading.current_thread().name


def test_a_method_that_raises_is_a_task_error_with_its_traceback_not_a_lost_worker():
    ex = LocalExecutor()
    a = LocalActor(Counter, ())
    with pytest.raises(LocalTaskError) as e:
        ex.get(a.boom.remote())
    assert "ValueError: bad kernel source" in str(e.value) and "in boom" in str(e.value)
    assert not ex.worker_lost(e.value)
    assert ex.get(a.add.remote(2)) == 2                     # the actor lives on
    with pytest.raises(LocalTaskError):                      # a failed argument fails the call that takes it
        ex.get(a.add.remote(a.boom.remote()))


def test_a_constructor_that_raises_fails_every_call_saying_why():
    ex = LocalExecutor()
    a = LocalActor(Counter, (0, True))
    for _ in range(2):
        with pytest.raises(LocalTaskError, match=r"Counter\(\) failed: RuntimeError: no hardware here"):
            ex.get(a.add.remote(1))


def test_wait_returns_what_is_done_and_cancel_drops_a_queued_call():
    ex = LocalExecutor()
    gate = threading.Event()
    a = LocalActor(Counter, (0, False, gate))
    slow = a.blocked.remote()
    queued = a.add.remote(5)
    time.sleep(0.05)
    ready, rest = ex.wait([slow, queued], num_returns=2, timeout=0)
    assert ready == [] and rest == [slow, queued]
    ex.cancel(queued)                                        # not started: it never runs
    threading.Timer(0.1, gate.set).start()
    ready, rest = ex.wait([slow], num_returns=1, timeout=None)
    assert ready == [slow] and ex.get(slow) == "released"
    with pytest.raises(LocalTaskError, match="cancelled"):
        ex.get(queued)
    assert ex.get(a.add.remote(1)) == 1                     # the cancelled add(5) was never applied


def test_max_concurrency_runs_calls_side_by_side():
    ex = LocalExecutor()
    a = LocalActor(Counter, (), max_concurrency=2)
    first = a.blocked.remote()
    second = a.release.remote()        # would deadlock on one thread: it runs beside the blocked call
    assert ex.get([first, second]) == ["released", None]


def test_the_executor_is_named_in_config():
    assert executor("local").name == "local"
    with pytest.raises(ValueError, match="use 'ray' or 'local'"):
        executor("threads")
