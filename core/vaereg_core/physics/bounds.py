"""Exact references and bounds for two-phase effective stiffness.

Voigt and Reuss bounds hold for every microstructure (in the Loewner order,
and for the discrete schemes too: the uniform strain is admissible, and every
discrete strain field has the prescribed mean). Hashin–Shtrikman bounds hold
for the bulk and shear moduli of statistically isotropic composites. A
laminate's stiffness is exact (Backus averaging), for any volume fraction.

Examples
--------
>>> from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT
>>> lo, hi = hashin_shtrikman_bulk(DEFAULT_HARD, DEFAULT_SOFT, 0.5)
>>> round(lo, 3), round(hi, 3)
(5.031, 29.665)
"""

from __future__ import annotations

import numpy as np

from vaereg_core.physics.phases import Phase

NORMAL_BLOCKS: dict[int, tuple[int, int, int]] = {0: (0, 4, 5), 1: (1, 3, 5), 2: (2, 3, 4)}
"""Voigt components whose stress is continuous across layers normal to each axis."""


def voigt_bound(hard: Phase, soft: Phase, fraction: float) -> np.ndarray:
    """Arithmetic mean of the stiffnesses (upper bound), 6x6 GPa."""
    return fraction * hard.stiffness() + (1 - fraction) * soft.stiffness()


def reuss_bound(hard: Phase, soft: Phase, fraction: float) -> np.ndarray:
    """Inverse of the mean compliance (lower bound), 6x6 GPa."""
    compliance = fraction * np.linalg.inv(hard.stiffness()) + (1 - fraction) * np.linalg.inv(soft.stiffness())
    return np.linalg.inv(compliance)


def _ordered(hard: Phase, soft: Phase, fraction: float) -> tuple[Phase, Phase, float, float]:
    return hard, soft, fraction, 1 - fraction


def hashin_shtrikman_bulk(hard: Phase, soft: Phase, fraction: float) -> tuple[float, float]:
    """(lower, upper) Hashin–Shtrikman bounds on the effective bulk modulus (GPa).

    Well-ordered phases assumed (the hard phase has the larger bulk and shear moduli).
    """

    def bound(p1: Phase, f1: float, p2: Phase, f2: float) -> float:
        k1, m1, k2 = p1.bulk, p1.mu, p2.bulk
        if f2 == 0 or k1 == k2:
            return k1 if f2 == 0 else k1
        return k1 + f2 / (1 / (k2 - k1) + 3 * f1 / (3 * k1 + 4 * m1))

    return bound(soft, 1 - fraction, hard, fraction), bound(hard, fraction, soft, 1 - fraction)


def hashin_shtrikman_shear(hard: Phase, soft: Phase, fraction: float) -> tuple[float, float]:
    """(lower, upper) Hashin–Shtrikman bounds on the effective shear modulus (GPa)."""

    def bound(p1: Phase, f1: float, p2: Phase, f2: float) -> float:
        k1, m1, m2 = p1.bulk, p1.mu, p2.mu
        if f2 == 0 or m1 == m2:
            return m1
        return m1 + f2 / (1 / (m2 - m1) + 6 * f1 * (k1 + 2 * m1) / (5 * m1 * (3 * k1 + 4 * m1)))

    return bound(soft, 1 - fraction, hard, fraction), bound(hard, fraction, soft, 1 - fraction)


def hashin_shtrikman_c11(hard: Phase, soft: Phase, fraction: float) -> tuple[float, float]:
    """Bounds on C11 = K + 4 G / 3 of an isotropic composite, from the HS bounds on K and G."""
    k_lo, k_hi = hashin_shtrikman_bulk(hard, soft, fraction)
    g_lo, g_hi = hashin_shtrikman_shear(hard, soft, fraction)
    return k_lo + 4 * g_lo / 3, k_hi + 4 * g_hi / 3


def isotropic_projection(c: np.ndarray) -> tuple[float, float]:
    """(bulk, shear) of the Voigt isotropic average of a 6x6 stiffness.

    The bulk modulus is the exact response to a hydrostatic strain,
    ``(C11 + C22 + C33 + 2 (C12 + C13 + C23)) / 9``.
    """
    a = c[0, 0] + c[1, 1] + c[2, 2]
    b = c[0, 1] + c[0, 2] + c[1, 2]
    s = c[3, 3] + c[4, 4] + c[5, 5]
    return (a + 2 * b) / 9, (a - b + 3 * s) / 15


def laminate_stiffness(c_a: np.ndarray, c_b: np.ndarray, fraction_a: float, normal_axis: int) -> np.ndarray:
    """Exact effective stiffness of a laminate of two layers (Backus averaging).

    Across layers normal to ``normal_axis`` the traction components (set N) are
    uniform and the in-plane strains (set T) are uniform; eliminating the others
    gives, with ``<.>`` the volume average,
    ``C_NN = <C_NN^-1>^-1``, ``C_NT = C_NN <C_NN^-1 C_NT>`` and
    ``C_TT = <C_TT - C_TN C_NN^-1 C_NT> + <C_TN C_NN^-1> C_NN <C_NN^-1 C_NT>``.

    Parameters
    ----------
    c_a, c_b : (6, 6) ndarray
        Voigt stiffnesses of the two layer materials (any anisotropy).
    fraction_a : float
        Volume fraction of material a.
    normal_axis : {0, 1, 2}
        Axis normal to the layers.

    Returns
    -------
    (6, 6) ndarray
    """
    n = list(NORMAL_BLOCKS[normal_axis])
    t = [i for i in range(6) if i not in n]
    w = (fraction_a, 1 - fraction_a)
    cs = (np.asarray(c_a, float), np.asarray(c_b, float))
    inv_nn = [np.linalg.inv(c[np.ix_(n, n)]) for c in cs]
    c_nn = np.linalg.inv(sum(wi * m for wi, m in zip(w, inv_nn)))
    a_nt = sum(wi * m @ c[np.ix_(n, t)] for wi, m, c in zip(w, inv_nn, cs))
    b_tn = sum(wi * c[np.ix_(t, n)] @ m for wi, m, c in zip(w, inv_nn, cs))
    c_tt = sum(wi * (c[np.ix_(t, t)] - c[np.ix_(t, n)] @ m @ c[np.ix_(n, t)]) for wi, m, c in zip(w, inv_nn, cs)) + b_tn @ c_nn @ a_nt
    out = np.zeros((6, 6))
    out[np.ix_(n, n)] = c_nn
    out[np.ix_(n, t)] = c_nn @ a_nt
    out[np.ix_(t, n)] = (c_nn @ a_nt).T
    out[np.ix_(t, t)] = c_tt
    return out
