"""Benchmark: ``dataset build`` on a Dask LocalCluster against the process pool it replaced, side by side.

Run: ``nice -n 5 .venv/bin/python benchmarks/bench_dataset_cluster.py [--structures 6] [--rounds 2] [--size 51] [--workers 2]``.

Each round builds the same first ``--structures`` structures of the paper's recipe into a fresh file
twice, in alternating order (pool first in even rounds, Dask first in odd ones, so that a change in
the shared CPU's load hits both): once with the old engine (a spawn ``ProcessPoolExecutor`` of
``--workers`` processes, two tasks in flight per worker, every result committed by the table writer
in the parent, kept here as the baseline) and once with :func:`vaereg_core.dataset.build.build_dataset`
on a ``LocalCluster`` of as many worker processes. Printed per run: the wall time with the workers'
start, and the throughput once they run (structures after the first result / time from the first to
the last result); then the ratios Dask / pool of each round (running throughput, and whole-build
throughput = pool wall / Dask wall) and their medians. The two tables must be equal (same numbers),
which the benchmark checks.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

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


def pool_build(path: Path, recipe: Recipe, samples: list[int], workers: int, finished: list[float]) -> None:
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
                finished.append(time.perf_counter())
                nxt = next(queue, None)
                if nxt is not None:
                    running[pool.submit(compute_sample, nxt, recipe, settings)] = nxt


def dask_build(path: Path, recipe: Recipe, samples: list[int], workers: int, finished: list[float]) -> None:
    """Today's ``dataset build --workers N``: a LocalCluster."""
    build_dataset(path, recipe=recipe, workers=workers, limit=len(samples), progress=lambda done, total: finished.append(time.perf_counter()))


def timed(engine, folder: Path, name: str, recipe: Recipe, samples: list[int], workers: int) -> dict:
    """Wall time and running throughput of one build."""
    path = folder / f"{name}.h5"
    path.unlink(missing_ok=True)
    finished: list[float] = []
    start = time.perf_counter()
    engine(path, recipe, samples, workers, finished)
    wall = time.perf_counter() - start
    running = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 1 else float("nan")
    return {"wall": wall, "throughput": running, "table": read_table(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=int, default=6, help="structures per build (default 6)")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of builds (default 2)")
    parser.add_argument("--size", type=int, default=51, help="grid edge (default 51)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of both engines (default 2)")
    args = parser.parse_args()
    recipe = Recipe(size=args.size)
    samples = subset_samples(recipe, "all")[: args.structures]
    engines = {"pool": pool_build, "dask": dask_build}
    print(f"{args.structures} structures of {args.size}^3 per build, {args.workers} workers, {os.cpu_count()} CPUs")
    print(f"{'round':>5} {'engine':>6} {'wall s':>8} {'structures/s running':>21}")
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            order = ("pool", "dask") if round_ % 2 == 0 else ("dask", "pool")
            runs = {name: timed(engines[name], Path(folder), name, recipe, samples, args.workers) for name in order}
            for name in order:
                print(f"{round_:>5} {name:>6} {runs[name]['wall']:8.1f} {runs[name]['throughput']:21.3f}")
            a, b = runs["pool"]["table"], runs["dask"]["table"]
            assert np.array_equal(a.sample, b.sample) and np.array_equal(a.properties, b.properties), (
                f"the engines disagree: samples {a.sample} / {b.sample}, largest difference {np.abs(a.properties - b.properties).max() if a.properties.shape == b.properties.shape else 'shapes differ'}")
            ratios.append((runs["dask"]["throughput"] / runs["pool"]["throughput"], runs["pool"]["wall"] / runs["dask"]["wall"]))
            print(f"      dask / pool: running throughput {ratios[-1][0]:.3f}, whole build (1 / wall) {ratios[-1][1]:.3f}")
    running, whole = (statistics.median(r[i] for r in ratios) for i in (0, 1))
    print(f"median dask / pool over {args.rounds} rounds: running throughput {running:.3f}, whole build {whole:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
