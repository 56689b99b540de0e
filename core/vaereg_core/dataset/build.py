"""Resumable computation of the property table.

The build enumerates the recipe's (field, filter) pairs of a subset,
regenerates each structure, computes C11, C22, C33, C12, C13, C23 with the
FFT solver and rewrites the dataset file atomically after every finished
structure. A kill at any moment loses at most the structures in flight; a
rerun continues where the last one stopped.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from vaereg_core.dataset.subsets import subset_samples
from vaereg_core.dataset.table import PROPERTY_NAMES, DatasetError, DatasetTable, read_table
from vaereg_core.descriptors import volume_fraction
from vaereg_core.errors import VaeRegError
from vaereg_core.microstructure import Recipe
from vaereg_core.parent_death import die_with_parent

SOLVER_KEYS_THAT_MUST_MATCH = ("discretization", "tol", "hard", "soft")
"""Solver settings that change the numbers; backend, device and dtype only change the speed."""


@dataclass(frozen=True)
class SolverSettings:
    """How the dataset's properties are computed."""

    discretization: str = "rotated"
    tol: float = 1e-4
    hard: tuple[float, float] = (120.0, 0.3)
    soft: tuple[float, float] = (2.4, 0.3)
    backend: str = "auto"
    device: str = "cpu"
    dtype: str = "float32"

    def to_dict(self) -> dict:
        """JSON form stored in the file."""
        return {
            "discretization": self.discretization,
            "tol": self.tol,
            "hard": {"E": self.hard[0], "nu": self.hard[1]},
            "soft": {"E": self.soft[0], "nu": self.soft[1]},
            "backend": self.backend,
            "device": self.device,
            "dtype": self.dtype,
        }


@dataclass
class BuildSummary:
    """What a build run did."""

    total: int
    computed: int
    already_done: int
    failures: dict[int, str]
    seconds: float
    interrupted: bool = False

    def __str__(self) -> str:
        rate = self.seconds / self.computed if self.computed else float("nan")
        state = "interrupted" if self.interrupted else "finished"
        return (
            f"{state}: {self.already_done + self.computed}/{self.total} structures in the file "
            f"({self.computed} computed now in {self.seconds:.0f} s, {rate:.2f} s each; "
            f"{len(self.failures)} failed{': ' + ', '.join(map(str, sorted(self.failures)[:10])) if self.failures else ''})"
        )


def compute_sample(recipe: Recipe, sample: int, settings: SolverSettings) -> tuple[int, np.ndarray, float, np.ndarray]:
    """Regenerate one structure and compute its six constants.

    Returns
    -------
    (sample, properties (6,) GPa, volume fraction, iterations (3,))
    """
    from vaereg_core.physics import Phase, homogenize

    voxels = recipe.structure(*recipe.indices(sample))
    result = homogenize(
        voxels,
        Phase.from_young(*settings.hard),
        Phase.from_young(*settings.soft),
        constants="normal",
        tol=settings.tol,
        discretization=settings.discretization,
        backend=settings.backend,
        device=settings.device,
        dtype=settings.dtype,
    )
    props = np.array([result.constants[name] for name in PROPERTY_NAMES])
    iterations = np.array([result.iterations[case] for case in ("e11", "e22", "e33")])
    return sample, props, volume_fraction(voxels), iterations


def open_or_create(path: Path, recipe: Recipe, settings: SolverSettings) -> DatasetTable:
    """Load an existing build to resume it, or start an empty table.

    An existing file must be a VAEReg dataset of the same recipe and solver
    settings; otherwise it is refused and left untouched.
    """
    if not path.exists():
        return DatasetTable(recipe=recipe, solver=settings.to_dict())
    table = read_table(path)
    if table.recipe != recipe:
        raise DatasetError(path, f"recipe mismatch: the file was built with {table.recipe.to_dict()}, the command asks for {recipe.to_dict()}")
    wanted = settings.to_dict()
    for key in SOLVER_KEYS_THAT_MUST_MATCH:
        if table.solver.get(key) != wanted[key]:
            raise DatasetError(path, f"solver mismatch on {key!r}: the file has {table.solver.get(key)!r}, the command asks for {wanted[key]!r}")
    return table


def _init_worker(threads: int, parent_pid: int) -> None:
    """Set up a build worker: its share of the threads, and death with the build (no orphans after a kill)."""
    die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)


def build_dataset(
    path: str | os.PathLike,
    *,
    recipe: Recipe = Recipe(),
    subset: str = "all",
    settings: SolverSettings = SolverSettings(),
    workers: int = 1,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BuildSummary:
    """Compute (or continue computing) the property table of a subset.

    Parameters
    ----------
    path : path-like
        The dataset file; created, or resumed when it exists.
    recipe : Recipe
        The structures' recipe; must match an existing file.
    subset : str
        ``"two-morphology"`` or ``"all"``.
    settings : SolverSettings
        Solver settings; those that change the numbers must match an existing file.
    workers : int
        Processes computing structures in parallel (each with its share of
        the CPU threads); 1 computes in this process.
    limit : int, optional
        Compute at most this many structures in this run.
    progress : callable(done, total), optional
        Called after each finished structure.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path = Path(path)
    table = open_or_create(path, recipe, settings)
    wanted = subset_samples(recipe, subset)
    done = table.done()
    pending = [s for s in wanted if s not in done]
    summary = BuildSummary(total=len(wanted), computed=0, already_done=len(wanted) - len(pending), failures={}, seconds=0.0)
    if limit is not None:
        pending = pending[:limit]
    start = time.perf_counter()

    def record(result: tuple[int, np.ndarray, float, np.ndarray]) -> None:
        sample, props, vf, its = result
        table.failures.pop(sample, None)
        table.append([sample], props[None], [vf], its[None])
        table.write(path)
        summary.computed += 1
        if progress is not None:
            progress(summary.already_done + summary.computed, summary.total)

    def fail(sample: int, exc: Exception) -> None:
        table.failures[sample] = str(exc)
        summary.failures[sample] = str(exc)
        table.write(path)

    if not path.exists():
        table.write(path)
    try:
        if workers <= 1:
            for sample in pending:
                try:
                    record(compute_sample(recipe, sample, settings))
                except VaeRegError as exc:
                    fail(sample, exc)
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            import multiprocessing

            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(threads, os.getpid())) as pool:
                queue = iter(pending)
                running = {}
                for sample in queue:
                    running[pool.submit(compute_sample, recipe, sample, settings)] = sample
                    if len(running) >= 2 * workers:
                        break
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        sample = running.pop(future)
                        try:
                            record(future.result())
                        except VaeRegError as exc:
                            fail(sample, exc)
                        nxt = next(queue, None)
                        if nxt is not None:
                            running[pool.submit(compute_sample, recipe, nxt, settings)] = nxt
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.seconds = time.perf_counter() - start
    return summary
