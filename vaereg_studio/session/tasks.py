"""One runner for the app's background work: threads, cancellation and stale results in one place.

Every long job (reading a file, loading a model, finding candidates, a
validation, a design or annealing run, the latent map) is a :class:`Task`.
A task started under a ``key`` supersedes the running task of that key: the
older one is cancelled and its result dropped, so a panel never shows the
answer to an earlier question. Results are handed back through ``post``,
which puts a call on the owner's thread (the app posts to the Qt event loop;
without one, :meth:`TaskRunner.process_pending` runs them, as the tests do).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from psygnal import Signal

from vaereg_studio.design_state import CancelToken

Post = Callable[[Callable[[], None]], None]
"""Runs a callable on the owner's thread, later (it must not block)."""

MAX_THREADS = 8
"""Annealing runs, validations and surfaces go side by side: one thread per core would queue a click behind two runs."""


@dataclass(eq=False)
class Task:
    """A job on the runner.

    Attributes
    ----------
    key : hashable or None
        Tasks of one key supersede each other; ``None``: independent.
    token : CancelToken
        Set when the task is cancelled or superseded; jobs that can stop pass it on.
    """

    key: Hashable | None
    token: CancelToken = field(default_factory=CancelToken)
    dropped: bool = False

    def cancel(self) -> None:
        """Ask the job to stop and drop its result."""
        self.dropped = True
        self.token.cancel()


class TaskRunner:
    """Runs jobs on worker threads and delivers their results on the owner's thread.

    Parameters
    ----------
    post : callable, optional
        Puts a callable on the owner's thread; by default results wait in a
        queue for :meth:`process_pending`.
    max_threads : int
        Worker threads.

    Signals
    -------
    busy(bool)
        Whether any task runs (emitted on the owner's thread when it changes).
    """

    busy = Signal(bool)

    def __init__(self, post: Post | None = None, max_threads: int = MAX_THREADS) -> None:
        self._pending: queue.Queue[Callable[[], None]] = queue.Queue()
        self._post = post if post is not None else self._pending.put
        self._executor = ThreadPoolExecutor(max_threads, thread_name_prefix="vaereg-task")
        self._by_key: dict[Hashable, Task] = {}
        self._running: set[Task] = set()
        self._closed = threading.Event()
        self._working = 0  # jobs inside a worker thread now
        self._lock = threading.Lock()

    @property
    def is_busy(self) -> bool:
        """Whether any task runs."""
        return bool(self._running)

    def submit(
        self,
        function: Callable[..., Any],
        *args: Any,
        key: Hashable | None = None,
        on_result: Callable[[Any], None],
        on_error: Callable[[Exception], None],
        task: Task | None = None,
        **kwargs: Any,
    ) -> Task:
        """Run ``function(*args, **kwargs)`` on a worker; ``on_result`` or ``on_error`` run on the owner's thread.

        ``task`` may be made beforehand so its token can be among the
        arguments; a running task of the same ``key`` is cancelled.
        """
        task = task if task is not None else Task(key)
        task.key = key
        if self._closed.is_set():  # a timer that fired as the window closed: nothing to run it for
            task.cancel()
            return task
        if key is not None:
            if (earlier := self._by_key.get(key)) is not None:
                earlier.cancel()
            self._by_key[key] = task
        was_busy = self.is_busy
        self._running.add(task)
        if not was_busy:
            self.busy.emit(True)

        def work() -> None:
            with self._lock:
                self._working += 1
            try:
                value, failed = function(*args, **kwargs), False
            except Exception as exc:  # noqa: BLE001 (handed to on_error, never lost on the worker)
                value, failed = exc, True
            finally:
                with self._lock:
                    self._working -= 1
            if not self._closed.is_set():
                self._post(lambda: self._deliver(task, value, failed, on_result, on_error))

        self._executor.submit(work)
        return task

    def _deliver(self, task: Task, value: Any, failed: bool, on_result: Callable, on_error: Callable) -> None:
        self._running.discard(task)
        if task.key is not None and self._by_key.get(task.key) is task:
            del self._by_key[task.key]
        try:
            if not task.dropped and not self._closed.is_set():
                (on_error if failed else on_result)(value)
        finally:
            if not self._running and not self._closed.is_set():
                self.busy.emit(False)

    def cancel(self, key: Hashable) -> None:
        """Cancel the running task of ``key`` (if any) and drop its result."""
        if (task := self._by_key.pop(key, None)) is not None:
            task.cancel()

    def stop(self, key: Hashable) -> None:
        """Ask the running task of ``key`` to stop; what it returns (a partial or ``None`` result) still comes."""
        if (task := self._by_key.get(key)) is not None:
            task.token.cancel()

    def running(self, key: Hashable) -> bool:
        """Whether a task of ``key`` runs."""
        return key in self._by_key

    def close(self, wait_s: float = 1.0) -> None:
        """Cancel every task and drop every result from now on; wait up to ``wait_s`` for them to stop.

        Jobs that cannot be cancelled (a prediction, a surface) finish in the
        background, their results unseen.
        """
        self._closed.set()
        for task in list(self._running):
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + wait_s
        while self._working and time.monotonic() < deadline:
            time.sleep(0.01)

    # ------------------------------------------------------------------ without an event loop

    def process_pending(self, timeout_s: float = 0.0) -> int:
        """Run the results waiting in the queue (default ``post`` only); waits up to ``timeout_s`` for a first one."""
        handled = 0
        try:
            call = self._pending.get(timeout=timeout_s) if timeout_s > 0 else self._pending.get_nowait()
        except queue.Empty:
            return 0
        while True:
            call()
            handled += 1
            try:
                call = self._pending.get_nowait()
            except queue.Empty:
                return handled

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Process results until no task runs (default ``post`` only).

        Raises
        ------
        TimeoutError
            Tasks still ran after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while self._running:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._running)} tasks still running after {timeout_s:g} s")
            self.process_pending(0.05)
