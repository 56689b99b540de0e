"""The solver's voxel sensitivities against finite differences and against single-voxel flips solved outright."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from vaereg_core.errors import PhysicsError
from vaereg_core.physics import DEFAULT_HARD, DEFAULT_SOFT, homogenize, homogenize_batch
from vaereg_core.physics.elements import element, inverse_symbol, stiffness_symbol
from vaereg_core.physics.solver import make_operator, reference_medium, solve_cases, unit_strain

NAMES = ("C11", "C22", "C33", "C12", "C13", "C23")


def _structure(n: int, seed: int, fraction: float = 0.4) -> np.ndarray:
    field = gaussian_filter(np.random.default_rng(seed).standard_normal((n, n, n)), 1.5, mode="wrap")
    return (field > np.quantile(field, 1 - fraction)).astype(np.uint8)


def _normal_stiffness_of_fraction(rho: np.ndarray) -> np.ndarray:
    """3x3 normal block for a continuous hard fraction per voxel (Lamé constants linear in it)."""
    hard, soft = DEFAULT_HARD, DEFAULT_SOFT
    lam = (soft.lam + rho * (hard.lam - soft.lam))[None]
    mu = (soft.mu + rho * (hard.mu - soft.mu))[None]
    el = element("rotated")
    green = inverse_symbol(stiffness_symbol(el, *reference_medium(hard, soft, "cg"), rho.shape))
    operator = make_operator("numpy", "cpu", el, lam, mu, 3, green, "float64")
    strains = np.array([unit_strain(c) for c in range(3)])
    u, _, _ = solve_cases(operator, strains, tol=1e-12, max_iter=3000)
    return operator.mean_stress(u, strains)[:, :3]  # row: load case j, column: stress i -> C_ij


def test_derivative_matches_central_differences():
    voxels = _structure(10, 0)
    result = homogenize(voxels, tol=1e-11, sensitivity=True)
    derivative = result.extra["sensitivity"]
    rng = np.random.default_rng(3)
    points = [tuple(int(v) for v in rng.integers(0, 10, 3)) for _ in range(4)]
    points += [tuple(int(v) for v in np.argwhere(voxels == phase)[0]) for phase in (0, 1)]
    h = 1e-4
    for x in points:
        up, down = voxels.astype(float), voxels.astype(float)
        up[x] += h
        down[x] -= h
        fd = (_normal_stiffness_of_fraction(up) - _normal_stiffness_of_fraction(down)) / (2 * h)
        for name in NAMES:
            i, j = int(name[1]) - 1, int(name[2]) - 1
            assert derivative[name][x] == pytest.approx(fd[j, i], rel=2e-4, abs=1e-7), (name, x)


def test_flip_estimate_follows_single_voxel_flips_and_the_derivative_does_not():
    voxels = _structure(14, 1)
    base = homogenize(voxels, tol=1e-9, sensitivity=True)
    rng = np.random.default_rng(4)
    points = [tuple(int(v) for v in np.argwhere(voxels == phase)[k]) for phase in (0, 1) for k in rng.choice(500, 6, replace=False)]
    flipped = []
    for x in points:
        w = voxels.copy()
        w[x] ^= 1
        flipped.append(w)
    results = homogenize_batch(np.stack(flipped), tol=1e-9)
    ratios, derivative_ratios = [], []
    for x, result in zip(points, results):
        sign = 1.0 if voxels[x] == 0 else -1.0
        for name in ("C11", "C22", "C12"):
            actual = result.constants[name] - base.constants[name]
            estimate = sign * base.extra["flip_change"][name][x]
            if abs(actual) > 1e-5:
                ratios.append(actual / estimate)
                if voxels[x] == 0:
                    derivative_ratios.append(actual / (sign * base.extra["sensitivity"][name][x]))
    ratios = np.array(ratios)
    assert np.mean(ratios > 0) >= 0.9  # the estimate gives the direction of a flip's change
    assert 0.8 < np.median(ratios) < 2.5  # and its size within a factor (cubes interact more than spheres)
    assert np.median(derivative_ratios) < 0.15  # the linear derivative overstates a soft voxel made hard


def test_spectral_and_gather_operators_give_the_same_fields():
    voxels = _structure(8, 2)
    a = homogenize(voxels, tol=1e-10, sensitivity=True)
    b = homogenize(voxels, tol=1e-10, sensitivity=True, operator="gather")
    for key in ("sensitivity", "flip_change"):
        for name in NAMES:
            np.testing.assert_allclose(a.extra[key][name], b.extra[key][name], rtol=1e-5, atol=1e-9)


def test_sensitivities_need_both_load_cases_and_the_rotated_scheme():
    voxels = _structure(8, 3)
    only_first = homogenize(voxels, load_cases=(0,), sensitivity=True)
    assert set(only_first.extra["sensitivity"]) == {"C11"}
    with pytest.raises(PhysicsError, match="rotated scheme"):
        homogenize(voxels, discretization="fe-full", sensitivity=True)
