"""Physics work (validation, verified design) in a child process, so the solver never holds the UI process's GIL.

The FFT solver on small grids is many short NumPy calls: run on a thread it
holds the GIL most of the time, and the UI thread waited up to 200–400 ms for
it (measured: six validations at 19³ on two cores). In a child process it
shares nothing with the UI; the worker thread that waits for it only sleeps
on a pipe, and a cancel terminates the child at once.

Children fork from a ``forkserver`` that has imported the solver once, so a
validation starts in milliseconds and never forks the Qt process itself. As
with any ``multiprocessing`` use, a script that starts the app or calls this
needs the ``if __name__ == "__main__":`` guard (children import the main module).

Validations go to warm workers: children that stay after answering and take
the next structure, so a one-shot validation pays neither a process start nor
a fresh process's slower first solve; :func:`start_server` warms them at a
model load (``benchmarks/bench_validation.py``, a 51³ candidate, medians on 2
cores at load 4.3–4.8: a child per validation 2.32 s, the first validation
after a model load 2.11 s, later ones 1.97 s, the solve alone 1.83 s). A cancel kills the worker (the next validation starts a new one);
an idle worker exits when this process ends (its pipe closes).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import multiprocessing.popen_forkserver
import multiprocessing.popen_spawn_posix
import multiprocessing.reduction
import multiprocessing.resource_tracker
import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from vaereg_core.errors import VaeRegError, one_line
from vaereg_core.inverse.annealing import Cancelled
from vaereg_core.inverse.design import validate
from vaereg_core.inverse.targets import Target

# The model code (torch, seconds to import) too: a design's child then only loads the weights.
_PRELOAD = ["vaereg_core.inverse.design", "vaereg_core.physics", "vaereg_core.model.inference", "vaereg_core.inverse.verified"]
_context: Any = None


def _get_context() -> Any:
    global _context
    if _context is None:
        methods = multiprocessing.get_all_start_methods()
        _context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            _context.set_forkserver_preload(_PRELOAD)
    return _context


def start_server() -> None:
    """Start the forkserver now (on a worker: it imports the solver and torch), so the first child starts at once.

    Then, in the background, the warm validation workers, each with a first
    solve behind it, so that the first validations are as quick as the later ones.
    """
    if _get_context().get_start_method() == "forkserver":
        try:
            multiprocessing.forkserver.ensure_running()
        except OSError:  # no process could be started now: the first validation tries again and says why
            return
    threading.Thread(target=_warm_up_workers, name=WARM_UP_THREAD, daemon=True).start()


WARM_UP_THREAD = "physics-workers-warm-up"
WARM_UP_SIZE = 51
"""Grid of the warm-up solve: the shipped models' (a first solve at a size costs ~0.5 s more than the next ones)."""


def _warm_up_workers() -> None:
    """New workers up to the idle ones kept, each after a first solve (on a helper thread)."""
    workers = [_WarmWorker() for _ in range(_MAX_IDLE - len(idle_workers()))]
    try:
        for worker in workers:  # all started first: their solves then run side by side
            worker.start(lambda: False, 0.05)
            worker.conn.send((_warm_up, ()))
        for worker in workers:
            _answer(worker.process, worker.conn, lambda: False, None, 0.05, "warm-up")
    except (OSError, VaeRegError):  # no worker now: the first validation starts one and says what is wrong
        for worker in workers:
            worker.kill()
        return
    for worker in workers:
        _keep_worker(worker)


def _warm_up(report: Callable[[Any], None]) -> None:
    """A first solve in a new worker, as validations solve: a laminate at :data:`WARM_UP_SIZE` (a few iterations)."""
    laminate = np.zeros((WARM_UP_SIZE,) * 3, np.uint8)
    laminate[: WARM_UP_SIZE // 2] = 1
    validate(laminate, Target(("C11",), np.ones(1)))


def _child(conn: Connection, function: Callable[..., Any], args: tuple) -> None:
    """Child-process entry: run ``function(*args, report)`` and send its answer.

    ``report(message)`` sends ``("progress", message)``; the end is
    ``("result", value)`` or ``("error", text)``.
    """
    os.nice(10)  # background work: the UI process gets the CPU first
    answer = _run_request(conn, function, args)
    try:
        conn.send(answer)
    except (BrokenPipeError, ConnectionResetError):  # the app closed or gave up on this work: nobody to tell
        pass
    finally:
        conn.close()


def _run_request(conn: Connection, function: Callable, args: tuple) -> tuple[str, Any]:
    """Run one request, its progress sent as it comes: ``("result", value)`` or ``("error", text)``."""
    try:
        return ("result", function(*args, lambda message: conn.send(("progress", message))))
    except BaseException as exc:  # noqa: BLE001 (every failure goes back as a message)
        return ("error", one_line(exc))


def _serve(conn: Connection) -> None:
    """Warm-worker entry: answer ``(function, args)`` requests as :func:`_child` does, until the pipe closes."""
    os.nice(10)
    while True:
        try:
            function, args = conn.recv()
        except (EOFError, OSError):  # the app closed the pipe or ended
            return
        answer = _run_request(conn, function, args)
        try:
            conn.send(answer)
        except OSError:  # the app closed or gave up on this work: nobody to tell
            return


def _validate(voxels: np.ndarray, target: Target, report: Callable[[Any], None]) -> Any:
    """The validation as a child function (it reports nothing until it ends)."""
    return validate(voxels, target)


def _start_unless_cancelled(process: Any, send: Connection, cancel: Callable[[], bool], poll_s: float) -> bool:
    """Start the child on a helper thread; False at once if ``cancel()`` turns true first.

    Starting takes ~0.2 s idle (the forkserver forks, the structure goes down a
    pipe) and longer on a loaded machine, too long to make a cancel wait. A
    child started after a cancel is killed as soon as it exists. A failure to
    start is raised here, as a plain ``process.start()`` would.
    """
    failures: list[BaseException] = []

    def start() -> None:
        try:
            process.start()
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread)
            failures.append(exc)
        finally:
            send.close()  # the child holds its own copy once started

    starter = threading.Thread(target=start, name="physics-process-start", daemon=True)
    starter.start()
    while True:
        starter.join(poll_s)
        if not starter.is_alive():
            if failures:
                raise failures[0]
            return True
        if cancel():
            threading.Thread(target=_kill_once_started, args=(starter, process), daemon=True).start()
            return False


def _kill_once_started(starter: threading.Thread, process: Any) -> None:
    starter.join()
    if process.is_alive():
        process.kill()


class _WarmWorker:
    """A child that runs one request after another (see the module docstring)."""

    def __init__(self) -> None:
        context = _get_context()
        self.conn, self._child_end = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(self._child_end,), daemon=True, name="vaereg-validation-worker")

    def start(self, cancel: Callable[[], bool], poll_s: float) -> bool:
        """Start the child; False (the child killed once it exists) if ``cancel()`` turns true first."""
        if _start_unless_cancelled(self.process, self._child_end, cancel, poll_s):
            return True
        self.conn.close()
        return False

    def kill(self) -> None:
        """End the child now (not waited for: a cancel must return at once)."""
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()


_idle_workers: list[_WarmWorker] = []
_idle_lock = threading.Lock()
_MAX_IDLE = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
"""Idle warm workers kept: as many as validations run at once (one a core, ``design_state.compute_slot``)."""


def idle_workers() -> list[Any]:
    """The processes of the warm workers now waiting for a validation."""
    with _idle_lock:
        return [w.process for w in _idle_workers]


def _take_worker(cancel: Callable[[], bool], poll_s: float) -> _WarmWorker | None:
    """An idle live worker, else a new one started (None: cancelled while it started)."""
    with _idle_lock:
        while _idle_workers:
            worker = _idle_workers.pop()
            if worker.process.is_alive():
                return worker
            worker.kill()
    worker = _WarmWorker()
    return worker if worker.start(cancel, poll_s) else None


def _keep_worker(worker: _WarmWorker) -> None:
    with _idle_lock:
        if len(_idle_workers) < _MAX_IDLE:
            _idle_workers.append(worker)
            return
    worker.kill()


def run_in_warm_worker(function: Callable[..., Any], args: tuple, cancel: Callable[[], bool], poll_s: float = 0.05, what: str = "physics") -> Any:
    """``function(*args, report)`` in a warm worker (call from a worker thread); raises as :func:`run_in_process`.

    The worker goes back to the idle ones once it has answered (with an error
    too); a cancel, or a worker that died, ends it. ``function`` reports
    nothing (its progress messages are dropped).
    """
    if cancel():
        raise Cancelled(f"{what} cancelled")
    worker = _take_worker(cancel, poll_s)
    if worker is None:
        raise Cancelled(f"{what} cancelled")
    try:
        try:
            worker.conn.send((function, args))
        except OSError:  # it died after it was last seen alive: a fresh one
            worker.kill()
            worker = _take_worker(cancel, poll_s)
            if worker is None:
                raise Cancelled(f"{what} cancelled") from None
            worker.conn.send((function, args))
        kind, value = _answer(worker.process, worker.conn, cancel, None, poll_s, what)
    except BaseException:
        if worker is not None:
            worker.kill()
        raise
    _keep_worker(worker)
    if kind == "error":
        raise VaeRegError(value)
    return value


def validate_in_process(voxels: np.ndarray, target: Target, cancel: Callable[[], bool], poll_s: float = 0.05):
    """:func:`vaereg_core.inverse.design.validate` in a child process (call from a worker thread).

    Raises
    ------
    Cancelled
        ``cancel()`` became true (seen within ``poll_s``).
    VaeRegError
        The solver failed (its message), or the child died without an answer.
    """
    return run_in_warm_worker(_validate, (np.ascontiguousarray(voxels), target), cancel, poll_s=poll_s, what="validation")


def run_in_process(
    function: Callable[..., Any],
    args: tuple,
    cancel: Callable[[], bool],
    progress: Callable[[Any], None] | None = None,
    poll_s: float = 0.05,
    what: str = "physics",
) -> Any:
    """``function(*args, report)`` in a child process; its return value (call from a worker thread).

    Parameters
    ----------
    function : callable
        A module-level function (the child imports it by name); its last
        argument ``report`` sends a picklable message back.
    args : tuple
        Picklable arguments.
    cancel : callable
        Polled every ``poll_s`` seconds.
    progress : callable, optional
        Called here (on the calling thread) with each reported message.
    what : str
        Names the work in the messages ("validation cancelled").

    Raises
    ------
    Cancelled
        ``cancel()`` became true (seen within ``poll_s``); the child is killed and
        not waited for: on a loaded machine a niced child can take seconds to be
        scheduled to die, and a cancel must return at once.
    VaeRegError
        ``function`` failed (its message), or the child died without an answer.
    """
    if cancel():
        raise Cancelled(f"{what} cancelled")
    context = _get_context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, function, args), daemon=True)
    if not _start_unless_cancelled(process, send, cancel, poll_s):
        receive.close()
        raise Cancelled(f"{what} cancelled")
    cancelled = False
    try:
        kind, value = _answer(process, receive, cancel, progress, poll_s, what)
    except Cancelled:
        cancelled = True
        raise
    finally:
        if process.is_alive():
            process.kill()
        if not cancelled:
            process.join(timeout=5)
        receive.close()
    if kind == "error":
        raise VaeRegError(value)
    return value


def _answer(process: Any, receive: Connection, cancel: Callable[[], bool], progress: Callable[[Any], None] | None,
            poll_s: float, what: str) -> tuple[str, Any]:
    """Wait for the child's ``("result" | "error", value)``, handing progress messages on; Cancelled on a cancel."""
    while True:
        if cancel():
            raise Cancelled(f"{what} cancelled")
        if not receive.poll(poll_s):
            if not process.is_alive() and not receive.poll():
                raise VaeRegError(f"the physics process ended without an answer (exit code {process.exitcode})")
            continue
        try:
            kind, value = receive.recv()
        except EOFError:  # the child died (killed, out of memory) and its end of the pipe closed
            raise VaeRegError(f"the physics process ended without an answer (exit code {process.exitcode})") from None
        if kind != "progress":
            return kind, value
        if progress is not None:
            progress(value)
