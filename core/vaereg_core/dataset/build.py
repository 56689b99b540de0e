"""Resumable computation of the property table.

The build enumerates the recipe's (field, filter) pairs of a subset,
regenerates each structure, computes C11, C22, C33, C12, C13, C23 with the
FFT solver and rewrites the dataset file atomically after every finished
structure. A kill at any moment loses at most the structures in flight; a
rerun continues where the last one stopped. The structures are computed in
this process, on a Dask ``LocalCluster`` or on a running Dask cluster
(:mod:`vaereg_core.dataset.cluster`); this process alone writes the file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from vaereg_core.dataset.subsets import subset_samples
from vaereg_core.dataset.table import PROPERTY_NAMES, DatasetError, DatasetTable, read_table
from vaereg_core.dataset.execution import runner
from vaereg_core.descriptors import volume_fraction
from vaereg_core.microstructure import Recipe
from vaereg_core.physics.phases import Material, describe

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

    def __post_init__(self) -> None:
        Material.from_young(self.hard, self.soft)  # unstable phases refused here, before any file is written

    @property
    def material(self) -> Material:
        """The two phases (checked: E > 0, -1 < nu < 0.5)."""
        return Material.from_young(self.hard, self.soft)

    def to_dict(self) -> dict:
        """JSON form stored in the file."""
        return {
            "discretization": self.discretization,
            "tol": self.tol,
            "hard": {"E": float(self.hard[0]), "nu": float(self.hard[1])},
            "soft": {"E": float(self.soft[0]), "nu": float(self.soft[1])},
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


def compute_sample(sample: int, recipe: Recipe, settings: SolverSettings) -> tuple[int, np.ndarray, float, np.ndarray]:
    """Regenerate one structure and compute its six constants (a task of the build's workers).

    Returns
    -------
    (sample, properties (6,) GPa, volume fraction, iterations (3,))
    """
    from vaereg_core.physics import homogenize

    voxels = recipe.structure(*recipe.indices(sample))
    result = homogenize(
        voxels,
        **settings.material.solver_options(),
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
    if any(table.solver.get(key) != wanted[key] for key in ("hard", "soft")):
        raise DatasetError(
            path, f"phase mismatch: the file was built for {describe(Material.from_record(table.solver))}, "
            f"the command asks for {describe(settings.material)} (use another --out, or the file's --hard/--soft)"
        )
    for key in SOLVER_KEYS_THAT_MUST_MATCH:
        if table.solver.get(key) != wanted[key]:
            raise DatasetError(path, f"solver mismatch on {key!r}: the file has {table.solver.get(key)!r}, the command asks for {wanted[key]!r}")
    return table


def build_dataset(
    path: str | os.PathLike,
    *,
    recipe: Recipe = Recipe(),
    subset: str = "all",
    settings: SolverSettings = SolverSettings(),
    workers: int = 1,
    scheduler: str | None = None,
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
        Worker processes of a Dask ``LocalCluster`` computing structures in
        parallel; 1 computes in this process.
    scheduler : str, optional
        Address of a running Dask scheduler whose workers compute instead
        (``workers`` is then ignored).
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

    def record(sample: int, result: tuple[int, np.ndarray, float, np.ndarray]) -> None:
        _, props, vf, its = result
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

    # Connected (or the cluster started) before the first write: an unreachable scheduler leaves no file.
    with runner(workers, scheduler) as run:
        if not path.exists():
            table.write(path)
        try:
            run(compute_sample, pending, recipe, settings, on_result=record, on_error=fail)
        except KeyboardInterrupt:
            summary.interrupted = True
    summary.seconds = time.perf_counter() - start
    return summary
