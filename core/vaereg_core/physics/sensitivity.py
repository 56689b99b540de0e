"""How the effective normal constants respond to changing the phase of single voxels.

Both functions take the strain fields the solver found under the three unit
normal strains (``homogenize(..., sensitivity=True)`` computes them and puts the
results in ``extra``), so a response costs a few array products, no solve.

- :func:`stiffness_derivative` is the exact derivative with respect to a voxel's
  hard-phase fraction, Lamé constants interpolated linearly.
- :func:`phase_flip_change` estimates the change when one voxel changes phase
  outright. At a contrast of 50 the derivative is a poor guide to that (a soft
  voxel made hard does not keep its large strain: the derivative overstates
  the gain ~25 times); the estimate treats the voxel as a small spherical
  inclusion of the other phase in its current strain field (Eshelby's dilute
  solution: the topological derivative of the energy).
"""

from __future__ import annotations

import itertools

import numpy as np

from vaereg_core.physics.phases import Phase


def _pairs(strain: dict[int, np.ndarray]):
    """(name, field a, field b) for every constant C_ij whose cases i and j were solved."""
    for i, j in itertools.combinations_with_replacement(sorted(strain), 2):
        yield f"C{i + 1}{j + 1}", strain[i], strain[j]


def _trace(e: np.ndarray) -> np.ndarray:
    return e[0] + e[1] + e[2]


def stiffness_derivative(strain: dict[int, np.ndarray], hard: Phase, soft: Phase) -> dict[str, np.ndarray]:
    """Derivatives of the effective normal constants with respect to each voxel's hard-phase fraction.

    With ``lam = lam_s + rho (lam_h - lam_s)`` (``mu`` alike) the effective
    stiffness of a strain-driven periodic cell is stationary in the
    displacement, so ``dC_ij / drho(x) = eps_i(x) . (D_h - D_s) . eps_j(x) / N``
    (``eps_k`` the strain under unit macroscopic strain ``k``, ``N`` voxels):
    exact for the rotated scheme, an energy (one-point finite element)
    discretisation. The tests check it against finite differences.

    Parameters
    ----------
    strain : dict
        Normal load case (0, 1, 2) -> its total strain field, (6, nx, ny, nz)
        Voigt with engineering shears.
    hard, soft : Phase

    Returns
    -------
    dict
        ``C11``… -> float32 (nx, ny, nz), GPa per unit fraction, for every
        constant whose two load cases are in ``strain``.

    Examples
    --------
    A homogeneous cell strains uniformly: each voxel carries 1/N of the phases'
    difference in C11.

    >>> from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT
    >>> e = np.zeros((6, 2, 2, 2)); e[0] = 1.0
    >>> s = stiffness_derivative({0: e}, DEFAULT_HARD, DEFAULT_SOFT)["C11"]
    >>> d = DEFAULT_HARD.lam + 2 * DEFAULT_HARD.mu - DEFAULT_SOFT.lam - 2 * DEFAULT_SOFT.mu
    >>> bool(np.allclose(s, d / 8))
    True
    """
    d_lam, d_mu = hard.lam - soft.lam, hard.mu - soft.mu
    fields = {}
    for name, a, b in _pairs(strain):
        normal = a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
        shear = a[3] * b[3] + a[4] * b[4] + a[5] * b[5]
        fields[name] = ((d_lam * _trace(a) * _trace(b) + 2 * d_mu * normal + d_mu * shear) / a[0].size).astype(np.float32)
    return fields


def _dilute_concentration(matrix: Phase, inclusion: Phase) -> tuple[float, float]:
    """Strain in a spherical inclusion over the strain far from it: (volumetric, deviatoric) (Eshelby)."""
    k, mu = matrix.lam + 2 * matrix.mu / 3, matrix.mu
    alpha = 3 * k / (3 * k + 4 * mu)
    beta = 6 * (k + 2 * mu) / (5 * (3 * k + 4 * mu))
    k_inc = inclusion.lam + 2 * inclusion.mu / 3
    return 1 / (1 + alpha * (k_inc - k) / k), 1 / (1 + beta * (inclusion.mu - mu) / mu)


def phase_flip_change(strain: dict[int, np.ndarray], voxels: np.ndarray, hard: Phase, soft: Phase) -> dict[str, np.ndarray]:
    """Estimated change of each effective normal constant if voxel x alone changed phase.

    Soft voxels are scored as becoming hard (a gain), hard ones as becoming soft
    (a loss), both for a sign of change of +1 in the hard fraction: so
    ``sum(field * (new - old))`` estimates the change of a constant when several
    voxels change (first order: neighbours that change together interact).

    Parameters
    ----------
    strain : dict
        As :func:`stiffness_derivative`.
    voxels : (nx, ny, nz) array of 0/1
        The structure the strain fields belong to.
    hard, soft : Phase

    Returns
    -------
    dict
        ``C11``… -> float32 (nx, ny, nz), GPa per voxel changed from soft to hard.

    Examples
    --------
    In a uniformly strained hard cell a voxel made soft loses less than the
    derivative says: its strain grows around it.

    >>> from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT
    >>> e = np.zeros((6, 2, 2, 2)); e[0] = 1.0
    >>> ones = np.ones((2, 2, 2), np.uint8)
    >>> flip = phase_flip_change({0: e}, ones, DEFAULT_HARD, DEFAULT_SOFT)["C11"]
    >>> derivative = stiffness_derivative({0: e}, DEFAULT_HARD, DEFAULT_SOFT)["C11"]
    >>> bool(np.all(flip > derivative))
    True
    """
    is_hard = np.asarray(voxels).astype(bool)
    k_soft_in_hard, m_soft_in_hard = _dilute_concentration(hard, soft)
    k_hard_in_soft, m_hard_in_soft = _dilute_concentration(soft, hard)
    a_k = np.where(is_hard, k_soft_in_hard, k_hard_in_soft)
    a_m = np.where(is_hard, m_soft_in_hard, m_hard_in_soft)
    d_k = (hard.lam + 2 * hard.mu / 3) - (soft.lam + 2 * soft.mu / 3)
    d_mu = hard.mu - soft.mu
    fields = {}
    for name, a, b in _pairs(strain):
        ta, tb = _trace(a), _trace(b)
        deviatoric = sum((a[k] - ta / 3) * (b[k] - tb / 3) for k in range(3)) + 0.5 * (a[3] * b[3] + a[4] * b[4] + a[5] * b[5])
        fields[name] = ((d_k * a_k * ta * tb + 2 * d_mu * a_m * deviatoric) / a[0].size).astype(np.float32)
    return fields
