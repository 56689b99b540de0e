"""Benchmark: ``dataset build`` on a Dask LocalCluster against the process pool it replaced, side by side.

Run: ``flock /tmp/bench.lock .venv/bin/python benchmarks/bench_dataset_cluster.py [--structures 6] [--rounds 2] [--size 51] [--workers 2]``.

Each round builds the same first ``--structures`` structures of the paper's recipe into a fresh file
twice, in alternating order (pool first in even rounds, Dask first in odd ones, so that a change in
the shared CPU's load hits both): once with the old engine (a spawn ``ProcessPoolExecutor`` of
``--workers`` processes, two tasks in flight per worker, every result committed by the table writer
in the parent, kept here as the baseline) and once with :func:`vaereg_core.dataset.build.build_dataset`
on a ``LocalCluster`` of as many worker processes. Both compute with the same solver settings and the
same threads per process (SciPy's FFT and BLAS: the process's cores, as the build's own process does).

Printed per run: the wall time with the workers' start; the throughput while every worker runs
(from the ``--workers``-th result to the ``--workers``-th last, so that each engine's warm-up of every
worker and the drain at the end, where workers run out of structures one by one, are left out alike:
a LocalCluster worker holds one structure in reserve, so its drain can leave a core idle for up to
one structure's time, which a short build feels and a long one does not); the CPU seconds per structure of all
the engine's processes (the build's own, scheduler and nannies included, and its workers), over the
whole build and once every worker runs (``running``); and the share of the machine the build got
(CPU seconds / wall / CPUs: below 1 when other jobs took cores or the engine left them idle). Then
the ratios Dask / pool of each round (running throughput; whole-build throughput = pool wall / Dask
wall; structures per CPU second once running, which other jobs' load moves far less than wall
times: on an otherwise idle machine, where both engines keep every core busy, it is the running
throughput ratio) and their medians, with the load average before and after. The two tables must be equal (same numbers), which the benchmark checks.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

import numpy as np
import psutil

from vaereg_core.dataset.build import SolverSettings, build_dataset, compute_sample
from vaereg_core.dataset.subsets import subset_samples
from vaereg_core.dataset.table import DatasetTable, read_table
from vaereg_core.microstructure import Recipe
from vaereg_core.parent_death import die_with_parent


def _init_pool_worker(threads: int, parent_pid: int) -> None:
    """The old pool's initializer: its share of the threads, death with the build."""
    die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)


def pool_build(path: Path, recipe: Recipe, samples: list[int], workers: int, mark: Callable[[], None]) -> None:
    """The engine ``dataset build --workers N`` had before Dask (its scheduling and commits, unchanged)."""
    settings = SolverSettings()
    table = DatasetTable(recipe=recipe, solver=settings.to_dict())
    table.write(path)
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_pool_worker, initargs=(threads, os.getpid())) as pool:
        queue = iter(samples)
        running = {pool.submit(compute_sample, s, recipe, settings): s for _, s in zip(range(2 * workers), queue)}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                sample = running.pop(future)
                _, props, vf, its = future.result()
                table.append([sample], props[None], [vf], its[None])
                table.write(path)
                mark()
                nxt = next(queue, None)
                if nxt is not None:
                    running[pool.submit(compute_sample, nxt, recipe, settings)] = nxt


def dask_build(path: Path, recipe: Recipe, samples: list[int], workers: int, mark: Callable[[], None]) -> None:
    """Today's ``dataset build --workers N``: a LocalCluster."""
    build_dataset(path, recipe=recipe, workers=workers, limit=len(samples), progress=lambda done, total: mark())


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its children that have ended (an engine's workers, once it closed)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def running_cpu_seconds() -> float:
    """User + system CPU time of this process and of its living children (an engine's workers, while it runs)."""
    total = 0.0
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def timed(engine, folder: Path, name: str, recipe: Recipe, samples: list[int], workers: int) -> dict:
    """Wall time, running throughput and CPU time (all of the build, and per structure once every worker runs) of one build."""
    path = folder / f"{name}.h5"
    path.unlink(missing_ok=True)
    marks: list[tuple[float, float]] = []
    cpu, start = cpu_seconds(), time.perf_counter()
    engine(path, recipe, samples, workers, lambda: marks.append((time.perf_counter(), running_cpu_seconds())))
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    # While every worker runs: from the moment each has delivered once (its first task: imports, caches) to
    # the moment the first of them runs out of work (the last ``workers`` results drain the build).
    (t0, c0), (t1, c1) = marks[workers - 1], marks[-workers]
    steady = len(marks) - 2 * workers + 1
    return {"wall": wall, "throughput": steady / (t1 - t0), "cpu": cpu / len(samples), "steady_cpu": (c1 - c0) / steady,
            "share": cpu / wall / (os.cpu_count() or 1), "table": read_table(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=int, default=6, help="structures per build (default 6; at least 2 × workers + 1)")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of builds (default 2)")
    parser.add_argument("--size", type=int, default=51, help="grid edge (default 51)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of both engines (default 2)")
    args = parser.parse_args()
    if args.structures < 2 * args.workers + 1:
        parser.error(f"--structures must be at least {2 * args.workers + 1} for {args.workers} workers (warm-up and drain are left out)")
    recipe = Recipe(size=args.size)
    samples = subset_samples(recipe, "all")[: args.structures]
    engines = {"pool": pool_build, "dask": dask_build}
    print(f"{args.structures} structures of {args.size}^3 per build, {args.workers} workers, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'round':>5} {'engine':>6} {'wall s':>8} {'structures/s running':>21} {'CPU s/structure':>16} {'running':>8} {'machine share':>14}")
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            order = ("pool", "dask") if round_ % 2 == 0 else ("dask", "pool")
            runs = {name: timed(engines[name], Path(folder), name, recipe, samples, args.workers) for name in order}
            for name in order:
                run = runs[name]
                print(f"{round_:>5} {name:>6} {run['wall']:8.1f} {run['throughput']:21.3f} {run['cpu']:16.2f} {run['steady_cpu']:8.2f} {run['share']:14.2f}")
            a, b = runs["pool"]["table"], runs["dask"]["table"]
            assert np.array_equal(a.sample, b.sample) and np.array_equal(a.properties, b.properties), (
                f"the engines disagree: samples {a.sample} / {b.sample}, largest difference {np.abs(a.properties - b.properties).max() if a.properties.shape == b.properties.shape else 'shapes differ'}")
            ratios.append((runs["dask"]["throughput"] / runs["pool"]["throughput"], runs["pool"]["wall"] / runs["dask"]["wall"],
                           runs["pool"]["steady_cpu"] / runs["dask"]["steady_cpu"]))
            print(f"      dask / pool: running throughput {ratios[-1][0]:.3f}, whole build (1 / wall) {ratios[-1][1]:.3f}, "
                  f"structures per CPU second running {ratios[-1][2]:.3f}")
    running, whole, per_cpu = (statistics.median(r[i] for r in ratios) for i in (0, 1, 2))
    print(f"median dask / pool over {args.rounds} rounds: running throughput {running:.3f}, whole build {whole:.3f}, "
          f"structures per CPU second running {per_cpu:.3f} (goal >= 0.95); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
