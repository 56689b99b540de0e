"""Physics validation in a child process, so the solver never holds the UI process's GIL.

The FFT solver on small grids is many short NumPy calls: run on a thread it
holds the GIL most of the time, and the UI thread waited up to 200–400 ms for
it (measured: six validations at 19³ on two cores). In a child process it
shares nothing with the UI; the worker thread that waits for it only sleeps
on a pipe, and a cancel terminates the child at once.

Children fork from a ``forkserver`` that has imported the solver once, so a
validation starts in milliseconds and never forks the Qt process itself. As
with any ``multiprocessing`` use, a script that starts the app or calls this
needs the ``if __name__ == "__main__":`` guard (children import the main module).
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

from vaereg_core.errors import VaeRegError
from vaereg_core.inverse.annealing import Cancelled
from vaereg_core.inverse.design import validate
from vaereg_core.inverse.targets import Target

_PRELOAD = ["vaereg_core.inverse.design", "vaereg_core.physics"]
_context: Any = None


def _get_context() -> Any:
    global _context
    if _context is None:
        methods = multiprocessing.get_all_start_methods()
        _context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            _context.set_forkserver_preload(_PRELOAD)
    return _context


def _child(conn: Connection, voxels: np.ndarray, target: Target) -> None:
    """Child-process entry: validate and send ``(True, Validation)`` or ``(False, message)``."""
    os.nice(10)  # background work: the UI process gets the CPU first
    try:
        conn.send((True, validate(voxels, target)))
    except BaseException as exc:  # noqa: BLE001 (every failure goes back as a message)
        # Exceptions with their own constructor arguments do not always unpickle: send text.
        conn.send((False, str(exc) if isinstance(exc, VaeRegError) else f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


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


def validate_in_process(voxels: np.ndarray, target: Target, cancel: Callable[[], bool], poll_s: float = 0.05):
    """:func:`vaereg_core.inverse.design.validate` in a child process (call from a worker thread).

    Raises
    ------
    Cancelled
        ``cancel()`` became true (seen within ``poll_s``); the child is killed and
        not waited for: on a loaded machine a niced child can take seconds to be
        scheduled to die, and a cancel must return at once.
    VaeRegError
        The solver failed (its message), or the child died without an answer.
    """
    if cancel():
        raise Cancelled("validation cancelled")
    context = _get_context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, np.ascontiguousarray(voxels), target), daemon=True)
    if not _start_unless_cancelled(process, send, cancel, poll_s):
        receive.close()
        raise Cancelled("validation cancelled")
    cancelled = False
    try:
        while not receive.poll(poll_s):
            if cancel():
                cancelled = True
                raise Cancelled("validation cancelled")
            if not process.is_alive() and not receive.poll():
                raise VaeRegError(f"the physics process ended without an answer (exit code {process.exitcode})")
        ok, value = receive.recv()
    finally:
        if process.is_alive():
            process.kill()
        if not cancelled:
            process.join(timeout=5)
        receive.close()
    if not ok:
        raise VaeRegError(value)
    return value
