"""Reconstruction figures of a decoder: the structure comparison and the report's section."""

from __future__ import annotations

import numpy as np

from vaereg_core.microstructure import Recipe
from vaereg_core.model.reconstruction import feature_lengths, structure_errors


def needles(axis: int, n: int = 16) -> np.ndarray:
    """Square rods 4 voxels wide on a 8-voxel pitch, running along ``axis``."""
    stripe = np.arange(n) % 8 < 4
    section = np.outer(stripe, stripe).astype(np.uint8)
    return np.repeat(np.expand_dims(section, axis), n, axis=axis)


def test_identical_and_shifted_structures_have_no_error():
    x = np.stack([needles(0), needles(2)])
    shifted = np.roll(x, (3, 5, 1), axis=(1, 2, 3))
    for other in (x, shifted):
        phi, length = structure_errors(x, other)
        np.testing.assert_allclose(phi, 0)
        np.testing.assert_allclose(length, 0, atol=1e-9)


def test_a_turned_structure_keeps_its_volume_fraction_but_not_its_feature_lengths():
    along_x, along_z = needles(0), needles(2)
    assert feature_lengths(along_x)[0] == 8  # capped at half the box: the rods span it
    assert feature_lengths(along_x)[2] < 4
    phi, length = structure_errors(along_x[None], along_z[None])
    assert phi[0] == 0 and length[0] > 50


def test_empty_reconstructions_have_finite_errors():
    recipe = Recipe(size=16)
    x = recipe.structure(0, 5)[None]
    phi, length = structure_errors(x, np.zeros_like(x))
    assert np.isclose(phi[0], x.mean()) and np.isfinite(length[0])
    np.testing.assert_array_equal(feature_lengths(np.zeros((8, 8, 8), np.uint8)), 4)
