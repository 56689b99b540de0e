"""Dataset builds on Dask: a worker killed mid-build loses nothing, the table equals a serial build's
bit for bit, and an unreachable scheduler is one clear error with nothing written (issue 20)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vaereg_core.dataset.build import build_dataset
from vaereg_core.dataset.cluster import SchedulerError
from vaereg_core.dataset.materialize import materialize
from vaereg_core.dataset.table import read_table
from vaereg_core.microstructure import Recipe

RECIPE = Recipe(seed=7, n_fields=2, size=13)
STRUCTURES = 8


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "serial.h5"
    build_dataset(path, recipe=RECIPE, limit=STRUCTURES)
    return read_table(path)


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes (their nannies restart a killed one)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        yield cluster, client


def test_a_worker_killed_mid_build_loses_nothing_and_the_table_equals_a_serial_build(tmp_path, serial, cluster):
    local, client = cluster
    pids = client.run(os.getpid)  # {worker address: pid}
    killed = []

    def kill_one_worker(done: int, total: int) -> None:
        if not killed:  # the other worker is computing: the victim's structure is in flight
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    path = tmp_path / "cluster.h5"
    summary = build_dataset(path, recipe=RECIPE, scheduler=local.scheduler_address, limit=STRUCTURES, progress=kill_one_worker)
    assert killed and summary.computed == STRUCTURES and not summary.failures
    table = read_table(path)
    assert len(np.unique(table.sample)) == len(table) == STRUCTURES
    np.testing.assert_array_equal(table.sample, serial.sample)
    np.testing.assert_array_equal(table.properties, serial.properties)  # bit-identical
    np.testing.assert_array_equal(table.iterations, serial.iterations)
    np.testing.assert_array_equal(table.volume_fraction, serial.volume_fraction)
    assert table.solver == serial.solver


def test_a_rerun_on_a_cluster_continues_a_partial_build(tmp_path, serial, cluster):
    local, _ = cluster
    path = tmp_path / "partial.h5"
    build_dataset(path, recipe=RECIPE, limit=3)
    summary = build_dataset(path, recipe=RECIPE, scheduler=local.scheduler_address, limit=STRUCTURES - 3)
    assert summary.already_done == 3 and summary.computed == STRUCTURES - 3
    np.testing.assert_array_equal(read_table(path).properties, serial.properties)


def test_materialize_on_a_cluster_gives_the_same_voxels(tmp_path, cluster):
    import h5py

    local, _ = cluster
    table = tmp_path / "t.h5"
    build_dataset(table, recipe=Recipe(seed=7, n_fields=1, size=9), limit=5)
    here = materialize(table, tmp_path / "here.h5")
    there = materialize(table, tmp_path / "there.h5", scheduler=local.scheduler_address)
    with h5py.File(here) as a, h5py.File(there) as b:
        np.testing.assert_array_equal(a["microstructures"][()], b["microstructures"][()])


def test_an_unreachable_scheduler_is_refused_within_seconds_and_writes_nothing(tmp_path):
    path = tmp_path / "never.h5"
    started = time.monotonic()
    with pytest.raises(SchedulerError, match="--scheduler tcp://127.0.0.1:9: cannot reach the Dask scheduler"):
        build_dataset(path, recipe=RECIPE, scheduler="tcp://127.0.0.1:9", limit=1)
    assert time.monotonic() - started < 15
    assert not path.exists() and not list(tmp_path.iterdir())


def test_the_command_says_so_in_one_line_exit_2(tmp_path, capsys):
    from vaereg_core.cli import main

    out = tmp_path / "never.h5"
    assert main(["dataset", "build", "--out", str(out), "--fields", "1", "--size", "9", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaereg dataset build: error: --scheduler tcp://127.0.0.1:9: cannot reach") and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("address", ["notanaddress", "http://127.0.0.1:8786", "tcp://127.0.0.1:port"])
def test_what_is_no_address_is_refused_before_any_connection(tmp_path, address):
    path = tmp_path / "never.h5"
    started = time.monotonic()
    with pytest.raises(SchedulerError, match="is not a scheduler address"):
        build_dataset(path, recipe=RECIPE, scheduler=address, limit=1)
    assert time.monotonic() - started < 2 and not path.exists()


def test_a_malformed_address_is_one_line_and_no_traceback_at_exit(tmp_path):
    # Run as a process of its own: a half-made Client printed its traceback when collected, after the error line.
    out = tmp_path / "never.h5"
    done = subprocess.run([sys.executable, "-m", "vaereg_core.cli", "dataset", "build", "--out", str(out), "--scheduler", "http://127.0.0.1:8786"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--scheduler 'http://127.0.0.1:8786' is not a scheduler address" in done.stderr and not out.exists()


def test_a_local_cluster_starts_quietly_beside_a_running_clusters_dashboard(recwarn):
    import socket

    from vaereg_core.dataset.cluster import compute_client

    taken = socket.socket()
    try:
        taken.bind(("", 8787))  # where a running cluster's dashboard listens (or it is taken already)
        taken.listen()
    except OSError:
        pass
    with taken, compute_client(workers=1) as client:
        assert client.submit(sum, [1, 2]).result() == 3
    assert not [w for w in recwarn if "already in use" in str(w.message)]
