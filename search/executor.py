"""Where a search's actors run: on Ray (the default: a local Ray, or a cluster), or on threads of
the driver's own process (`cluster.executor = "local"`).

The local executor is for one machine where Ray cannot be installed, such as a GPU box that has
only torch, triton and pydantic plus kscout's pure-Python dependencies (Ray's wheel alone is
80 MB, with native dependencies of its own). It gives what the driver needs from Ray and nothing
more: actor handles called as `handle.method.remote(*args)`, which return refs that `get`,
`wait` and `cancel` take. As with a Ray actor, a local actor runs its calls one at a time (or on
`max_concurrency` threads), in the order they came, and a ref passed as an argument is resolved
before the call. A candidate still runs in the harness's child process (harness/sandbox.py), so a
crashing kernel takes down neither kind of worker. What the local executor cannot do: place
workers on other machines, or survive the death of its own process (there is no other process:
a crash is resumed from the log with `kscout resume`, as after any driver crash).
"""

from __future__ import annotations

import queue
import threading
import traceback
from concurrent import futures
from typing import Any, Sequence


class Executor:
    """The driver's view of its actors. `errors` are what `get` raises when an actor call failed;
    `worker_lost(e)` says whether the actor itself died (the attempt may be retried elsewhere)
    rather than its method raising (a harness error: retrying would not help)."""

    name = ""
    errors: tuple[type[BaseException], ...] = ()

    def hardware_worker(self, *args: Any, resources: dict[str, float], num_gpus: int = 0) -> Any:
        raise NotImplementedError

    def proposer(self, *args: Any, max_concurrency: int = 1) -> Any:
        raise NotImplementedError

    def get(self, refs: Any) -> Any:
        raise NotImplementedError

    def wait(self, refs: Sequence[Any], num_returns: int, timeout: float | None) -> tuple[list, list]:
        raise NotImplementedError

    def cancel(self, ref: Any) -> None:
        raise NotImplementedError

    def worker_lost(self, error: BaseException) -> bool:
        raise NotImplementedError


class RayExecutor(Executor):
    """Actors are Ray actors (search/workers.py); Ray must already be initialised (kscout.run.start_ray)."""

    name = "ray"

    def __init__(self) -> None:
        import ray
        from ray.exceptions import RayError
        self._ray = ray
        self.errors = (RayError,)

    def hardware_worker(self, *args: Any, resources: dict[str, float], num_gpus: int = 0) -> Any:
        from search.workers import HardwareWorker
        gpus = {"num_gpus": num_gpus} if num_gpus else {}
        return HardwareWorker.options(resources=resources, **gpus).remote(*args)

    def proposer(self, *args: Any, max_concurrency: int = 1) -> Any:
        from search.workers import ProposerActor, on_this_node
        return ProposerActor.options(max_concurrency=max_concurrency, scheduling_strategy=on_this_node()).remote(*args)

    def get(self, refs: Any) -> Any:
        return self._ray.get(refs)

    def wait(self, refs: Sequence[Any], num_returns: int, timeout: float | None) -> tuple[list, list]:
        return self._ray.wait(list(refs), num_returns=num_returns, timeout=timeout)

    def cancel(self, ref: Any) -> None:
        self._ray.cancel(ref)

    def worker_lost(self, error: BaseException) -> bool:
        from ray.exceptions import RayTaskError
        return not isinstance(error, RayTaskError)


class LocalTaskError(RuntimeError):
    """A local actor's method (or its constructor) raised; the message carries its traceback, as a
    RayTaskError's does."""


class LocalActor:
    """An object living on its own thread(s): `handle.method.remote(*args)` queues the call and
    returns a Future. The object is built on the first thread, so a slow constructor (a hardware
    worker times its baselines) runs while the driver goes on, as a Ray actor's would. Threads are
    daemons: Ctrl-C ends the driver without waiting for a kernel still being timed (the kernel's
    own process is bounded by its CPU-time limit)."""

    def __init__(self, cls: type, args: tuple, max_concurrency: int = 1) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._obj: Any = None
        self._init_error: LocalTaskError | None = None
        self._cls = cls
        for i in range(max(1, max_concurrency)):
            threading.Thread(target=self._serve, args=(args if i == 0 else None,), daemon=True,
                             name=f"kscout-{cls.__name__}-{i}").start()

    def _serve(self, args: tuple | None) -> None:
        if args is not None:
            try:
                self._obj = self._cls(*args)
            except BaseException as e:   # every call on this actor fails with it, as on a dead Ray actor
                self._init_error = LocalTaskError(f"{self._cls.__name__}() failed: {_described(e)}")
            self._ready.set()
        while True:
            fut, name, args_ = self._calls.get()
            if not fut.set_running_or_notify_cancel():   # cancelled while queued
                continue
            self._ready.wait()
            try:
                if self._init_error is not None:
                    raise self._init_error
                fut.set_result(getattr(self._obj, name)(*[_resolved(a) for a in args_]))
            except LocalTaskError as e:
                fut.set_exception(e)
            except BaseException as e:
                fut.set_exception(LocalTaskError(f"{self._cls.__name__}.{name}() failed: {_described(e)}"))

    def __getattr__(self, name: str) -> "_LocalMethod":
        if name.startswith("_"):
            raise AttributeError(name)
        return _LocalMethod(self, name)


class _LocalMethod:
    def __init__(self, actor: LocalActor, name: str) -> None:
        self._actor, self._name = actor, name

    def remote(self, *args: Any) -> futures.Future:
        fut: futures.Future = futures.Future()
        self._actor._calls.put((fut, self._name, args))
        return fut


def _resolved(arg: Any) -> Any:
    return arg.result() if isinstance(arg, futures.Future) else arg


def _described(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exception(e))[-4000:]


class LocalExecutor(Executor):
    """Actors on threads of this process. One bench slot per hardware worker, as a local Ray
    gives; a GPU worker uses cuda:0 (this process's first visible device), so a local search has
    at most one GPU worker."""

    name = "local"
    errors = (LocalTaskError,)

    def hardware_worker(self, *args: Any, resources: dict[str, float], num_gpus: int = 0) -> Any:
        from search.actors import Hardware
        return LocalActor(Hardware, args)

    def proposer(self, *args: Any, max_concurrency: int = 1) -> Any:
        from search.actors import Proposer
        return LocalActor(Proposer, args, max_concurrency=max_concurrency)

    def get(self, refs: Any) -> Any:
        if isinstance(refs, (list, tuple)):
            return [self.get(r) for r in refs]
        try:
            return refs.result()
        except futures.CancelledError:
            raise LocalTaskError("the call was cancelled before it ran") from None

    def wait(self, refs: Sequence[Any], num_returns: int, timeout: float | None) -> tuple[list, list]:
        pending = list(refs)
        done = [r for r in pending if r.done()]
        if len(done) < num_returns and (timeout is None or timeout > 0):
            futures.wait(pending, timeout=timeout, return_when=futures.FIRST_COMPLETED)
            done = [r for r in pending if r.done()]
        ready = set(map(id, done))
        return done, [r for r in pending if id(r) not in ready]

    def cancel(self, ref: Any) -> None:
        ref.cancel()

    def worker_lost(self, error: BaseException) -> bool:
        return False   # a local actor dies only with this process: every failure is the call's own


def executor(name: str) -> Executor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor()
    raise ValueError(f"executor '{name}': use 'ray' or 'local'")
