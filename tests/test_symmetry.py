"""The cube symmetries and the constants they permute: checked by the solver, not by the map itself."""

import numpy as np
import pytest

from vaereg_core.model.ensemble import MemberPrediction
from vaereg_core.symmetry import CubeSymmetry, cube_symmetries, symmetries_for
from vaereg_core.physics import homogenize

NAMES = ("C11", "C22", "C33", "C12", "C13", "C23")


@pytest.fixture(scope="module")
def anisotropic():
    """A 12³ structure with three different feature lengths, and its six constants by the solver."""
    rng = np.random.default_rng(3)
    field = rng.standard_normal((12, 12, 12))
    k = np.fft.fftfreq(12)
    kx, ky, kz = np.meshgrid(k, k, k, indexing="ij")
    smooth = np.fft.ifftn(np.fft.fftn(field) * np.exp(-((kx * 4) ** 2 + (ky * 1.5) ** 2 + (kz * 0.7) ** 2) * 8)).real
    voxels = (smooth > np.quantile(smooth, 0.6)).astype(np.uint8)
    constants = homogenize(voxels, tol=1e-6).constants
    return voxels, np.array([constants[n] for n in NAMES])


@pytest.mark.parametrize("symmetry", [CubeSymmetry((1, 2, 0)), CubeSymmetry((2, 1, 0), (True, False, True)), CubeSymmetry((0, 2, 1), (False, True, False))])
def test_constants_of_a_transformed_structure_are_the_mapped_constants(anisotropic, symmetry):
    voxels, original = anisotropic
    assert np.ptp(original[:3]) > 0.05 * original[:3].mean()  # the test needs a structure whose C11, C22, C33 differ
    solved = homogenize(np.ascontiguousarray(symmetry.apply(voxels)), tol=1e-6).constants
    transformed = np.array([solved[n] for n in NAMES])
    np.testing.assert_allclose(transformed, original[list(symmetry.constant_sources(NAMES))], rtol=1e-4)
    np.testing.assert_allclose(symmetry.to_original(transformed, NAMES), original, rtol=1e-4)


def test_sets_are_distinct_group_elements_and_act_on_stacks():
    every = cube_symmetries("all")
    assert len(set(every)) == 48 and every[0] == CubeSymmetry()
    stack = np.arange(2 * 27).reshape(2, 3, 3, 3)
    images = {s.apply(stack).tobytes() for s in every}
    assert len(images) == 48
    s = CubeSymmetry((2, 0, 1), (False, True, False))
    np.testing.assert_array_equal(s.apply(stack)[1], s.apply(stack[1]))


def test_single_constant_models_keep_only_the_symmetries_that_fix_it():
    kept = symmetries_for(("C11",), "all")
    assert len(kept) == 16 and all(s.permutation[0] == 0 for s in kept)
    with pytest.raises(ValueError, match="not closed"):
        CubeSymmetry((1, 0, 2)).constant_sources(("C11",))


def test_combining_adds_the_spread_to_the_mean_variance():
    mean = np.array([[[1.0, 2.0], [3.0, 2.0]]])  # (N=1, T=2, P=2)
    var = np.full_like(mean, 0.5)
    part = MemberPrediction.from_transformed(mean, var)
    point, total = part.mean, part.variance
    np.testing.assert_allclose(point, [[2.0, 2.0]])
    np.testing.assert_allclose(total, [[1.5, 0.5]])


@pytest.mark.parametrize("which", ["permutations", "all"])
def test_averaged_prediction_of_a_transformed_structure_is_the_transformed_prediction(which):
    from inverse_helpers import tiny_model

    model = tiny_model()
    model.symmetries = which
    voxels = (np.random.default_rng(0).random((19, 19, 19)) < 0.4).astype(np.uint8)
    plain = model.predict(voxels, "identity")[0]
    mean, std = model.predict(voxels)
    for symmetry in cube_symmetries(which)[1:4]:
        moved_mean, moved_std = model.predict(symmetry.apply(voxels))
        sources = list(symmetry.constant_sources(NAMES))
        np.testing.assert_allclose(moved_mean, mean[sources], rtol=1e-5)
        np.testing.assert_allclose(moved_std, std[sources], rtol=1e-4)
    assert not np.allclose(plain, mean, rtol=1e-4)  # the average is not the plain network's answer
