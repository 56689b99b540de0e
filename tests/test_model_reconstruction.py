"""Reconstruction figures of a decoder: the structure comparison and the report's section."""

from __future__ import annotations

import numpy as np
import pytest

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


class _FakeModel:
    """Encodes with given posteriors and decodes every latent to the same structure: only the latent figures matter."""

    property_names = ("C11",)

    def __init__(self, means: np.ndarray, stds: np.ndarray, structure: np.ndarray) -> None:
        self.means, self.stds, self.structure = means, stds, structure

    def encode(self, voxels):
        return self.means[: len(voxels)], self.stds[: len(voxels)]

    def decode(self, z, binary=False):
        return np.repeat(self.structure[None], len(z), axis=0)


def test_active_units_count_the_latent_dimensions_that_vary_over_the_structures():
    from vaereg_core.model.reconstruction import reconstruction_quality

    rng = np.random.default_rng(0)
    voxels = (rng.random((12, 9, 9, 9)) < 0.4).astype(np.uint8)
    means = np.zeros((12, 4))
    means[:, 1] = rng.normal(0, 1.0, 12)  # informative
    means[:, 2] = rng.normal(0, 0.01, 12)  # varies, but by less than the threshold
    collapsed = _FakeModel(means, np.full((12, 4), 0.98), voxels[0])
    quality, decoded = reconstruction_quality(collapsed, voxels, np.ones((12, 1)), physics_count=0)
    assert quality.active_units == 1 and quality.posterior_std == pytest.approx(0.98)
    assert decoded.shape == voxels.shape and quality.count == 12 and np.isnan(quality.stiffness_error)
