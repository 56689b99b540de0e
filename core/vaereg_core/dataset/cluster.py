"""Pipeline tasks on Dask: a ``LocalCluster`` of worker processes, or a running cluster's workers.

The client submits one task per structure and hands each result, as it
arrives, to the caller, who commits it (the build's resumable table writer).
Dask recomputes on another worker the tasks of a worker that died; a client
that dies takes its ``LocalCluster`` with it (each worker process is asked to
die with the client, :mod:`vaereg_core.parent_death`), and a remote cluster
forgets the dead client's tasks. Workers import only ``vaereg_core``.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.scheduler import KilledWorker

from vaereg_core.errors import VaeRegError
from vaereg_core.parent_death import die_with_parent

CONNECT_TIMEOUT_S = 5.0
"""How long to try to reach a scheduler before giving up."""


WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ": {},
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Dask settings of the LocalCluster (see :func:`compute_client`)."""


class SchedulerError(VaeRegError):
    """The Dask scheduler named by ``--scheduler`` cannot be reached."""


class _DieWithClient(WorkerPlugin):
    """Worker plugin: a ``LocalCluster`` worker process ends when the client's process dies (SIGKILL included)."""

    name = "vaereg-die-with-client"

    def __init__(self, client_pid: int) -> None:
        self.client_pid = client_pid

    def setup(self, worker: Any) -> None:  # noqa: ARG002 - the WorkerPlugin signature
        # Dask's own watch of the parent is a thread that needs the GIL; the kernel's signal does not.
        # A LocalCluster's nannies run in the client's process: it is each worker process's parent.
        if os.getppid() == self.client_pid:
            die_with_parent(self.client_pid)


def check_address(scheduler: str) -> None:
    """Refuse what cannot be a scheduler's address (no port, an unknown scheme) before a ``Client`` exists.

    A ``Client`` that fails on its address prints a traceback when it is
    garbage-collected; it is never made for such an address.

    Raises
    ------
    SchedulerError
        ``scheduler`` is not an address Dask can connect to.
    """
    from distributed.comm.addressing import get_address_host_port, parse_address

    try:
        if parse_address(scheduler)[0] != "inproc":  # an in-process scheduler's address has no port
            get_address_host_port(scheduler)
    except ValueError as exc:
        raise SchedulerError(f"--scheduler {scheduler!r} is not a scheduler address ({exc}); give tcp://HOST:PORT") from None


@contextmanager
def compute_client(workers: int = 1, scheduler: str | None = None) -> Iterator[Client]:
    """A Dask client: of a new ``LocalCluster``, or of a running scheduler.

    Parameters
    ----------
    workers : int
        Worker processes of the ``LocalCluster`` started when no ``scheduler``
        is given (one thread each: one structure per process).
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``, a ``dask
        scheduler`` or a dask-jobqueue cluster's); its workers do the work.

    Raises
    ------
    SchedulerError
        ``scheduler`` is not an address, or the scheduler cannot be reached
        within :data:`CONNECT_TIMEOUT_S`.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if scheduler is not None:
        check_address(scheduler)
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise SchedulerError(f"--scheduler {scheduler}: cannot reach the Dask scheduler within {CONNECT_TIMEOUT_S:g} s ({reason})") from None
        with client:
            yield client
        return
    # Workers inherit this process's environment, so they compute as the build's own process (and the old
    # process pool) did (Dask's defaults pin BLAS to one thread and trim malloc eagerly). Tasks take seconds:
    # the profiler (every 10 ms) and the loop's 20 ms tick and 100 ms monitors only took the GIL and CPU
    # time from the solver (about 10 % more CPU per structure on 2 cores).
    with dask.config.set(WORKER_CONFIG):
        cluster = LocalCluster(
            # Quiet: a task's failure comes back through its future; the log would add shutdown races
            # (a worker's last heartbeat to the closing scheduler) to the build's output.
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.CRITICAL,
            # No dashboard, but the scheduler's HTTP routes (health, metrics) still listen: on a free local port,
            # not on 8787, where a running cluster's dashboard made it print a three-line warning.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
    with cluster, Client(cluster, set_as_default=False) as client:
        client.register_plugin(_DieWithClient(os.getpid()))
        yield client


def run_on(
    client: Client,
    function: Callable[..., Any],
    items: Iterable[Any],
    *args: Any,
    on_result: Callable[[Any, Any], None],
    on_error: Callable[[Any, Exception], None],
) -> None:
    """Call ``function(item, *args)`` for every item as a task of the cluster, handing each outcome over as it arrives.

    Earlier items have a higher priority; outcomes come in the order they
    finish. ``on_result(item, value)`` receives a value; ``on_error(item,
    exc)`` a :class:`~vaereg_core.errors.VaeRegError` of the function or a
    task that killed the workers it ran on (Dask's ``KilledWorker``, after
    Dask's own retries); any other exception propagates.
    """
    items = list(items)
    futures = {client.submit(function, item, *args, priority=len(items) - rank, pure=False): item for rank, item in enumerate(items)}
    try:
        for future in as_completed(futures, loop=client.loop):
            item = futures.pop(future)
            try:
                value = future.result()
            except (VaeRegError, KilledWorker) as exc:
                on_error(item, exc)
            else:
                on_result(item, value)
            future.release()
    finally:
        # An interrupted run leaves nothing queued on a shared cluster.
        client.cancel(list(futures))
