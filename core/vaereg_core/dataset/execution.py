"""How a pipeline step runs its tasks: here, one after the other, or on Dask (:mod:`vaereg_core.dataset.cluster`).

Both runners take ``(function, items, *args, on_result=, on_error=)``; Dask
is imported only when a cluster is used (its import alone takes a second).
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterable, Iterator

from vaereg_core.errors import VaeRegError

Runner = Callable[..., None]
"""``runner(function, items, *args, on_result=, on_error=)``."""


def run_here(
    function: Callable[..., Any],
    items: Iterable[Any],
    *args: Any,
    on_result: Callable[[Any, Any], None],
    on_error: Callable[[Any, Exception], None],
) -> None:
    """Call ``function(item, *args)`` in this process for each item in order; a VaeRegError goes to ``on_error``."""
    for item in items:
        try:
            value = function(item, *args)
        except VaeRegError as exc:
            on_error(item, exc)
        else:
            on_result(item, value)


@contextmanager
def runner(workers: int = 1, scheduler: str | None = None) -> Iterator[Runner]:
    """The runner for ``--workers``/``--scheduler``: :func:`run_here` for one worker and no scheduler, else Dask's.

    Entering connects to the scheduler (or starts the ``LocalCluster``), so a
    caller that writes nothing before entering leaves nothing behind when the
    scheduler cannot be reached (:class:`~vaereg_core.dataset.cluster.SchedulerError`).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if scheduler is None and workers == 1:
        yield run_here
        return
    from vaereg_core.dataset.cluster import compute_client, run_on

    with compute_client(workers, scheduler) as client:
        yield partial(run_on, client)
