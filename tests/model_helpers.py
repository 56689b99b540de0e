"""Helpers for the model tests (test_model_*.py): a small synthetic dataset file and a network guard."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np

from vaereg_core.dataset.table import DatasetTable
from vaereg_core.microstructure import Recipe

# 19³ structures: the size of the `tiny` model configuration.
TINY_RECIPE = Recipe(seed=11, n_fields=2, size=19)


def stand_in_properties(volume_fraction: np.ndarray, filter_index: np.ndarray) -> np.ndarray:
    """TEST STAND-IN for the six stiffness constants (GPa), not physics.

    A smooth function of the volume fraction (between the Reuss and Voigt
    bounds of the dataset's phases) with a small filter-dependent factor, so
    that a regressor has something learnable in a few steps.
    """
    hard, soft = 120.0, 2.4
    phi = np.asarray(volume_fraction, np.float64)[:, None]
    shape = 1.0 + 0.1 * (np.asarray(filter_index)[:, None] % 4) / 3
    base = soft + (hard - soft) * phi**2 * shape
    return (base * np.array([1.0, 1.0, 1.0, 0.4, 0.4, 0.4])).astype(np.float32)


def write_synthetic_dataset(path: Path, recipe: Recipe = TINY_RECIPE, *, with_voxels: bool = True) -> Path:
    """A dataset file in the project's format over every sample of ``recipe``, with stand-in properties."""
    samples = np.arange(recipe.n_structures)
    fields, filters = samples // 64, samples % 64
    vf = np.array([recipe.volume_fraction(int(f), int(g)) for f, g in zip(fields, filters)])
    table = DatasetTable(recipe=recipe, solver={"stand_in": "test properties, not physics"})
    table.append(samples, stand_in_properties(vf, filters), vf, np.zeros((samples.size, 3), np.int32))
    voxels = np.stack([recipe.structure(int(f), int(g)) for f, g in zip(fields, filters)]) if with_voxels else None
    table.write(path, microstructures=voxels)
    return path


def block_sockets(monkeypatch) -> None:
    """Make any attempt to open a network socket fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
