"""A dataset split read as a trained run saw it: its subset and split seed, optionally a random part."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vaereg_core.model.config import ALL_PROPERTIES, RunConfig


@dataclass
class Split:
    """The structures and properties of one split, all six constants in GPa."""

    voxels: np.ndarray | None
    properties: np.ndarray
    volume_fraction: np.ndarray


def load_split(
    data: str | os.PathLike, split: str, config: RunConfig, max_structures: int | None = None, seed: int = 0, *, voxels: bool = True
) -> Split:
    """Read a split of the dataset file as the run saw it (subset, split seed).

    ``max_structures`` keeps a random subset of that many (drawn with ``seed``,
    in dataset order), so big splits need not be materialised whole. Without
    ``voxels`` only the properties are read (``Split.voxels`` is None).
    """
    from vaereg_core.dataset import MicrostructureDataset

    t = config.train
    ds = MicrostructureDataset(data, split, ALL_PROPERTIES, subset=t.subset, split_seed=t.split_seed)
    rows = np.arange(len(ds))
    if max_structures is not None and max_structures < rows.size:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_structures, replace=False))
    stack = np.stack([ds.voxels(int(i)) for i in rows]).astype(np.uint8) if voxels else None
    return Split(stack, ds.properties.numpy().astype(np.float64)[rows], ds.table.volume_fraction[ds.rows][rows])
