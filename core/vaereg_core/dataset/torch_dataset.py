"""PyTorch ``Dataset`` over a dataset file: cached voxels or regenerated on the fly."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vaereg_core.dataset.subsets import in_two_morphology
from vaereg_core.dataset.table import PROPERTY_NAMES, DatasetError, has_microstructures, read_table


class MicrostructureDataset(Dataset):
    """Structures and their properties (GPa) of one split.

    Parameters
    ----------
    path : path-like
        A dataset file (property table, or a materialised cache with voxels).
    split : {'train', 'val', 'test'} or None
        The 60/20/20 split by the file's recorded seed (or ``split_seed``); None for all rows.
    properties : sequence of str
        Which of C11 C22 C33 C12 C13 C23 to return, in that order.
    subset : {'all', 'two-morphology'}
        Restrict to the two-morphology filters.
    split_seed : int, optional
        Override the file's split seed (for repeated random splits).

    Items are ``(voxels, properties)``: float32 tensors of shape (1, n, n, n)
    with values in {0, 1}, and (P,) in GPa.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str | None = "train",
        properties: Sequence[str] = PROPERTY_NAMES,
        *,
        subset: str = "all",
        split_seed: int | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.table = read_table(path)
        if split_seed is not None:
            self.table.split_seed = split_seed
        unknown = [p for p in properties if p not in PROPERTY_NAMES]
        if unknown:
            raise DatasetError(path, f"unknown properties {unknown}; available: {', '.join(PROPERTY_NAMES)}")
        self.property_names = tuple(properties)
        columns = [PROPERTY_NAMES.index(p) for p in properties]
        rows = self.table.rows(split)
        if subset == "two-morphology":
            rows = rows[in_two_morphology(self.table.filter_index[rows])]
        elif subset != "all":
            raise ValueError(f"unknown subset {subset!r}")
        self.rows = rows
        self.properties = torch.from_numpy(self.table.properties[rows][:, columns].astype(np.float32))
        self.cached = has_microstructures(path)
        self._h5 = None

    def __len__(self) -> int:
        return int(self.rows.size)

    def voxels(self, i: int) -> np.ndarray:
        """Binary structure of item ``i`` as uint8 (n, n, n)."""
        row = int(self.rows[i])
        if self.cached:
            if self._h5 is None:  # opened lazily: each DataLoader worker gets its own handle
                import h5py

                self._h5 = h5py.File(self.path, "r")
            return self._h5["microstructures"][row]
        recipe = self.table.recipe
        return recipe.structure(*recipe.indices(int(self.table.sample[row])))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.voxels(i).astype(np.float32))[None]
        return x, self.properties[i]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_h5"] = None
        return state
