"""Reconstruction figures of a decoder: the structure comparison and the report's section."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from vaereg_core.microstructure import Recipe  # noqa: E402
from vaereg_core.model.reconstruction import feature_lengths, structure_errors  # noqa: E402


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



def test_kl_to_the_prior_is_zero_for_a_collapsed_posterior_and_grows_with_what_z_tells():
    from inverse_helpers import tiny_model

    from vaereg_core.model.posteriors import kl_per_structure, posteriors_of

    model = tiny_model(prior="gaussian", properties=("C11",))
    properties = np.array([[30.0], [60.0]])
    priors = [model.prior_components({"C11": float(c)}) for c in properties[:, 0]]
    means, stds = np.stack([p[1][0] for p in priors]), np.stack([p[2][0] for p in priors])

    def kl(means):
        return kl_per_structure(model.network.generator, posteriors_of(model, means, stds, properties)).numpy()

    np.testing.assert_allclose(kl(means), 0.0, atol=1e-4)
    shifted = kl(means + stds)  # one prior standard deviation off in every dimension
    np.testing.assert_allclose(shifted, 0.5 * model.latent_dim, rtol=1e-4)


def test_reconstruction_quality_reports_the_posteriors():
    from inverse_helpers import tiny_model

    from vaereg_core.model.reconstruction import reconstruction_quality

    model = tiny_model(components=2, properties=("C11",))
    voxels = (np.random.default_rng(0).random((6, 19, 19, 19)) < 0.4).astype(np.uint8)
    quality, decoded = reconstruction_quality(model, voxels, np.full((6, 1), 30.0), physics_count=0)
    assert decoded.shape == voxels.shape and decoded.dtype == np.uint8 and quality.count == 6
    assert quality.kl_to_prior > 0 and quality.posterior_std > 0 and np.isnan(quality.stiffness_error)
