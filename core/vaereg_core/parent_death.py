"""Worker processes that end when the process that started them dies.

A parent killed with SIGKILL runs no cleanup: a ``ProcessPoolExecutor``'s
workers then keep computing (and hold the multiprocessing resource tracker
open) with nobody to collect the result. Call :func:`die_with_parent` first
thing in a worker (a pool's ``initializer``): on Linux the kernel sends the
worker SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a
daemon thread notices the parent's pid change within a second and exits. With
every worker gone the resource tracker reads end-of-file and exits too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
"""``prctl`` option from ``<linux/prctl.h>``."""

POLL_SECONDS = 1.0
"""How often the fallback thread checks the parent's pid."""


def _linux_pdeathsig() -> bool:
    """Ask the kernel for SIGKILL at the parent's death; False where prctl is not there."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (its parent) dies.

    Parameters
    ----------
    parent_pid : int
        The parent's pid as the parent saw it (``os.getpid()`` there), passed to
        the worker: if the parent died before this call, the worker has already
        been re-parented and exits at once.
    """
    if not _linux_pdeathsig():
        threading.Thread(target=_watch, args=(parent_pid,), name="die-with-parent", daemon=True).start()
    # The parent may have died before prctl took effect (no signal comes then).
    if os.getppid() != parent_pid:
        os._exit(1)
