"""A killed ``dataset build --workers 2`` takes its Dask LocalCluster's workers and the resource tracker with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def kill_and_reap(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigkill_of_a_build_ends_its_workers(tmp_path):
    build = subprocess.Popen(
        [sys.executable, "-m", "vaereg_core.cli", "dataset", "build", "--out", str(tmp_path / "d.h5"),
         "--subset", "two-morphology", "--workers", "2", "--size", "24", "--fields", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # Two Dask worker processes and the resource tracker (the nannies and the scheduler run in the build).
        assert wait_until(lambda: len(children(build.pid)) >= 3, 60), "the build did not start its workers"
        time.sleep(0.5)  # workers past their initializer, computing
        spawned = children(build.pid)
    finally:
        build.kill()
        build.wait()
    try:
        assert wait_until(lambda: not any(alive(p) for p in spawned), 5), f"left running: {[p for p in spawned if alive(p)]}"
    finally:
        kill_and_reap(spawned)


WORKER = """
import os, sys, time
import vaereg_core.parent_death as pd
pd._linux_pdeathsig = lambda: False  # the portable fallback: a thread watching the parent's pid
pd.POLL_SECONDS = 0.1
pd.die_with_parent(int(sys.argv[1]))
print(os.getpid(), flush=True)
time.sleep(60)
"""

PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(__import__("os").getpid())], stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


def test_fallback_watch_ends_a_worker_whose_parent_died():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, WORKER], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    try:
        assert wait_until(lambda: not alive(worker), 5)
    finally:
        kill_and_reap([worker])
