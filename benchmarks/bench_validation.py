"""Benchmark: the app's one-shot candidate validation, a child per validation against a warm worker.

Run: ``.venv/bin/python benchmarks/bench_validation.py [--rounds 5]``.

The structures are the default model's candidates for its default target (what "Find candidates"
shows and then validates). Each round, one after the other, every candidate is validated

- *child per validation*: :func:`vaereg_studio.physics_process.run_in_process` (a fresh child
  forked from the forkserver for each, the app's way before warm workers);
- *first after a model load*: the workers :func:`vaereg_studio.physics_process.start_server`
  warms at a model load (idle ones stopped first), then the first validation in one of them;
- *warm worker*: :func:`vaereg_studio.physics_process.validate_in_process` again (a worker
  that has validated before);
- *solve here*: :func:`vaereg_core.inverse.design.validate` in this process (the solve alone).

It prints the median wall time of each (from the call to the answer, as the app's worker thread
waits for it), the solve's own seconds measured in the child, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import numpy as np

from vaereg_core.dataset.table import read_table
from vaereg_core.inverse.design import candidates, validate
from vaereg_core.inverse.feasibility import default_target
from vaereg_core.inverse.targets import parse_target
from vaereg_core.model.inference import default_model
from vaereg_core.resources import default_dataset_path
from vaereg_studio import physics_process


def never() -> bool:
    return False


def timed(call) -> tuple[float, float]:
    """(wall seconds of ``call()``, the solve's own seconds from its Validation)."""
    start = time.perf_counter()
    validation = call()
    return time.perf_counter() - start, validation.seconds


def first_after_load(voxels: np.ndarray, target):
    """Fresh warm workers as a model load starts them, then one validation (timed from there only)."""
    with physics_process._idle_lock:
        stale, physics_process._idle_workers[:] = list(physics_process._idle_workers), []
    for worker in stale:
        worker.kill()
    physics_process.start_server()
    for thread in threading.enumerate():
        if thread.name == physics_process.WARM_UP_THREAD:
            thread.join()
    return lambda: physics_process.validate_in_process(voxels, target, never)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = default_model()
    table = read_table(default_dataset_path())
    target = parse_target(default_target(table, model.property_names), model.property_names, model.ranges)
    structures = [np.ascontiguousarray(c.voxels) for c in candidates(model, target)]
    # Each way prepares (untimed) and returns the timed call.
    ways = {
        "child per validation": lambda v: lambda: physics_process.run_in_process(physics_process._validate, (v, target), never, what="validation"),
        "first after a model load": lambda v: first_after_load(v, target),
        "warm worker": lambda v: lambda: physics_process.validate_in_process(v, target, never),
        "solve here": lambda v: lambda: validate(v, target),
    }
    walls: dict[str, list[float]] = {name: [] for name in ways}
    solves: dict[str, list[float]] = {name: [] for name in ways}
    loads = []
    for _ in range(args.rounds):
        for name, way in ways.items():
            for voxels in structures:
                wall, solve = timed(way(voxels))
                walls[name].append(wall)
                solves[name].append(solve)
        loads.append(os.getloadavg()[0])
    print(f"{len(structures)} candidates of the default model ({structures[0].shape[0]}³), {args.rounds} rounds, "
          f"load average {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores")
    print("| way | median wall s | min wall s | median solve s (in the child) |")
    print("|---|---|---|---|")
    for name in ways:
        print(f"| {name} | {statistics.median(walls[name]):.2f} | {min(walls[name]):.2f} | {statistics.median(solves[name]):.2f} |")


if __name__ == "__main__":
    main()
