"""Regenerate a dataset's voxels from its recipe into an HDF5 cache."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from vaereg_core.dataset.table import DatasetError, read_table
from vaereg_core.microstructure import Recipe
from vaereg_core.parent_death import die_with_parent


def _structure(recipe: Recipe, sample: int) -> np.ndarray:
    return recipe.structure(*recipe.indices(sample))


def materialize(
    table_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a copy of the dataset with its ``microstructures`` regenerated.

    The voxels are a pure function of the recipe (seeded NumPy streams, FFT
    filtering, exact-rank threshold), so the cache is bit-identical on any
    machine. Chunked per structure and gzip-compressed (~15 kB per 51^3
    structure). ``workers`` > 1 generates in that many processes (the
    result is the same).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(out, "file exists; pass --overwrite to replace it")
    table = read_table(table_path)
    n = table.recipe.size
    voxels = np.empty((len(table), n, n, n), dtype=np.uint8)
    samples = [int(sample) for sample in table.sample]
    generate = partial(_structure, table.recipe)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    # Workers die with this process: a killed materialize leaves none computing.
    pool_context = ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) if workers > 1 else nullcontext()
    with pool_context as pool:
        structures = pool.map(generate, samples, chunksize=16) if pool else map(generate, samples)
        for row, structure in enumerate(structures):
            voxels[row] = structure
            if progress is not None:
                progress(row + 1, len(table))
    table.write(out, microstructures=voxels)
    return out
