"""Train / validation / test split (60/20/20) by a recorded seed.

The split is a permutation of *all* the recipe's sample numbers: a sample's
split depends only on (split seed, sample number), never on which other
samples a (partially built) file holds. On the full dataset the fractions are
exactly 60/20/20; on a subset they are close.
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")
FRACTIONS = (0.6, 0.2, 0.2)
DEFAULT_SPLIT_SEED = 1234


def split_of(samples: np.ndarray, n_structures: int, split_seed: int = DEFAULT_SPLIT_SEED) -> np.ndarray:
    """Split name ('train', 'val' or 'test') of each sample number.

    Parameters
    ----------
    samples : array of int
        Recipe sample numbers (field_index * 64 + filter_index).
    n_structures : int
        Number of structures the recipe defines.
    split_seed : int
        The recorded seed.
    """
    rank = np.empty(n_structures, dtype=np.int64)
    rank[np.random.default_rng(split_seed).permutation(n_structures)] = np.arange(n_structures)
    bounds = np.round(np.cumsum(FRACTIONS) * n_structures).astype(np.int64)
    which = np.searchsorted(bounds, rank[np.asarray(samples)], side="right")
    return np.asarray(SPLITS)[which]


def split_indices(samples: np.ndarray, n_structures: int, split: str, split_seed: int = DEFAULT_SPLIT_SEED) -> np.ndarray:
    """Row indices (into ``samples``) belonging to ``split``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return np.nonzero(split_of(samples, n_structures, split_seed) == split)[0]
