"""Voxel polishing: interface flips chosen from the solver's flip estimates close most of a stiffness gap, checked by the solver."""

import numpy as np
from scipy.ndimage import gaussian_filter

from vaereg_core.inverse.verified import FIRST_POLISH_GAIN
from vaereg_core.inverse.voxel_polish import interface_voxels, polish_flips, straighten
from vaereg_core.physics import homogenize

NAMES = ("C11", "C22", "C33", "C12", "C13", "C23")


def _structure(n: int, seed: int) -> np.ndarray:
    field = gaussian_filter(np.random.default_rng(seed).standard_normal((n, n, n)), 1.5, mode="wrap")
    return (field > np.quantile(field, 0.55)).astype(np.uint8)


def _constants(voxels: np.ndarray, **options) -> tuple[np.ndarray, dict]:
    result = homogenize(voxels, tol=1e-6, **options)
    return np.array([result.constants[n] for n in NAMES]), result.extra


def test_polishing_closes_most_of_a_gap_with_few_interface_flips():
    voxels = _structure(32, 3)
    # A target the structure nearly has: its own constants after 200 random interface voxels changed phase.
    rng = np.random.default_rng(1)
    nudged = voxels.reshape(-1).copy()
    nudged[rng.choice(np.flatnonzero(interface_voxels(voxels)), 200, replace=False)] ^= 1
    target, _ = _constants(nudged.reshape(voxels.shape))
    before, extra = _constants(voxels, sensitivity=True)
    change = np.stack([extra["flip_change"][n] for n in NAMES]) / target[:, None, None, None]
    flips = polish_flips(voxels, change, (target - before) / target / FIRST_POLISH_GAIN)
    assert 0 < len(flips) <= 0.005 * voxels.size
    assert interface_voxels(voxels).reshape(-1)[flips].all()
    polished = voxels.reshape(-1).copy()
    polished[flips] ^= 1
    after, _ = _constants(polished.reshape(voxels.shape))
    assert np.mean(np.abs(after - target) / target) < 0.5 * np.mean(np.abs(before - target) / target)


def test_no_residual_no_flips_and_signs_follow_the_phase():
    voxels = _structure(10, 2)
    change = np.ones((1,) + voxels.shape) * 1e-3
    assert polish_flips(voxels, change, np.zeros(1)).size == 0
    # A constant to lower can only lose hard voxels; to raise, only gain soft ones.
    lower = polish_flips(voxels, change, np.array([-0.01]), max_share=0.05)
    raise_ = polish_flips(voxels, change, np.array([0.01]), max_share=0.05)
    assert lower.size and (voxels.reshape(-1)[lower] == 1).all()
    assert raise_.size and (voxels.reshape(-1)[raise_] == 0).all()


def test_straightening_moves_stiffness_into_its_axis_at_the_same_volume_fraction():
    # Struts along x with bumps across it: the majority vote along x raises C11 against C22 and C33.
    field = gaussian_filter(np.random.default_rng(4).standard_normal((20, 20, 20)), (2.5, 1.0, 1.0), mode="wrap")
    voxels = (field > np.quantile(field, 0.6)).astype(np.uint8)
    straight = straighten(voxels, 0)
    assert abs(straight.mean() - voxels.mean()) < 0.01
    assert (straight != voxels).any()
    before, _ = _constants(voxels)
    after, _ = _constants(straight)
    ratio = after / before
    assert ratio[0] > ratio[1] + 0.01 and ratio[0] > ratio[2] + 0.01
