"""Trilinear hexahedral voxel elements: the discretisations of the solver.

Every voxel is a unit trilinear hexahedron whose 8 corner nodes carry the
periodic displacement fluctuation. The two discretisations differ only in the
quadrature of the element stiffness:

``"rotated"``
    One-point (reduced) integration at the voxel centre. This is exactly the
    finite-difference "rotated" scheme of Willot (2015): its discrete gradient
    in Fourier space is ``(e^{i xi_1} - 1)(1 + e^{i xi_2})(1 + e^{i xi_3}) / 4``.
    It does not ring at high contrast and is the closest of the cheap schemes
    to the grid-converged answer (FACTS-physics.md).
``"fe-full"``
    Full 2x2x2 Gauss integration: the conventional trilinear finite element
    (what SfePy/PyMKS and most FE codes compute). Stiffer on voxel staircases.

Isotropic materials make each element stiffness linear in the Lamé constants,
``K_e = lam_e K_lam + mu_e K_mu``, so one pair of 24x24 unit matrices serves
every voxel; the solver uses their low-rank factors ``K = L^T L``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vaereg_core.errors import PhysicsError

DISCRETIZATIONS: tuple[str, ...] = ("rotated", "fe-full")

NODE_OFFSETS = np.array([[(a >> 2) & 1, (a >> 1) & 1, a & 1] for a in range(8)])
"""(8, 3) corner offsets of node ``a`` of the voxel at grid index x: node x + offset."""

VOLUMETRIC = np.array([1.0, 1, 1, 0, 0, 0])
"""Voigt vector m with m . eps = trace(eps)."""

SHEAR_WEIGHTS = np.array([2.0, 2, 2, 1, 1, 1])
"""The mu-part of an isotropic Voigt stiffness: C = lam m m^T + mu diag(2,2,2,1,1,1)."""


def strain_matrix(point: np.ndarray) -> np.ndarray:
    """Voigt strain-displacement matrix B (6x24) of the unit trilinear hex at ``point``.

    Parameters
    ----------
    point : (3,) array
        Local coordinates in [0, 1]^3.

    Returns
    -------
    (6, 24) ndarray; degree of freedom ``3 a + i`` is component ``i`` of node ``a``.
    Rows are eps11, eps22, eps33, gamma23, gamma13, gamma12 (engineering shears).
    """
    grad = np.empty((8, 3))  # dN_a / dx_d
    for a, offset in enumerate(NODE_OFFSETS):
        factors = [p if o else 1.0 - p for p, o in zip(point, offset)]
        slopes = [1.0 if o else -1.0 for o in offset]
        for d in range(3):
            grad[a, d] = slopes[d] * np.prod([factors[e] for e in range(3) if e != d])
    b = np.zeros((6, 24))
    for a in range(8):
        gx, gy, gz = grad[a]
        col = 3 * a
        b[0, col], b[1, col + 1], b[2, col + 2] = gx, gy, gz
        b[3, col + 1], b[3, col + 2] = gz, gy
        b[4, col], b[4, col + 2] = gz, gx
        b[5, col], b[5, col + 1] = gy, gx
    return b


def quadrature(discretization: str) -> tuple[np.ndarray, np.ndarray]:
    """Points (q, 3) and weights (q,) of the element quadrature of a discretisation."""
    if discretization == "rotated":
        return np.full((1, 3), 0.5), np.ones(1)
    if discretization == "fe-full":
        g = np.array([0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0)])
        points = np.array([[x, y, z] for x in g for y in g for z in g])
        return points, np.full(8, 1.0 / 8)
    raise PhysicsError(f"unknown discretization {discretization!r}; choose one of {', '.join(DISCRETIZATIONS)}")


@dataclass(frozen=True)
class Element:
    """Unit element matrices of one discretisation and their low-rank factors.

    Attributes
    ----------
    discretization : str
    k_lam, k_mu : (24, 24) ndarray
        Element stiffness per unit lambda and per unit mu.
    factor : (r, 24) ndarray
        Rows ``factor[:r_lam]`` factor ``k_lam``, the rest factor ``k_mu``:
        ``k_lam = F_lam^T F_lam`` and ``k_mu = F_mu^T F_mu``.
    r_lam : int
        Number of rows that are scaled by lambda (the others by mu).
    centre : (6, 24) ndarray
        B at the voxel centre: the voxel-average strain for both discretisations
        (the gradient of a trilinear field is bilinear, whose mean is its centre value).
    """

    discretization: str
    k_lam: np.ndarray
    k_mu: np.ndarray
    factor: np.ndarray
    r_lam: int
    centre: np.ndarray


def _low_rank_factor(k: np.ndarray) -> np.ndarray:
    """Rows F with F^T F = k for a symmetric positive semi-definite k."""
    values, vectors = np.linalg.eigh(k)
    keep = values > 1e-12 * values.max()
    return (vectors[:, keep] * np.sqrt(values[keep])).T


@lru_cache(maxsize=None)
def element(discretization: str) -> Element:
    """The (cached) unit element of a discretisation."""
    points, weights = quadrature(discretization)
    k_lam = np.zeros((24, 24))
    k_mu = np.zeros((24, 24))
    for point, weight in zip(points, weights):
        b = strain_matrix(point)
        k_lam += weight * np.outer(VOLUMETRIC @ b, VOLUMETRIC @ b)
        k_mu += weight * b.T @ (SHEAR_WEIGHTS[:, None] * b)
    f_lam, f_mu = _low_rank_factor(k_lam), _low_rank_factor(k_mu)
    factor = np.vstack([f_lam, f_mu])
    for array in (k_lam, k_mu, factor):
        array.setflags(write=False)
    return Element(discretization, k_lam, k_mu, factor, len(f_lam), strain_matrix(np.full(3, 0.5)))


def gradient_symbols(point: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Fourier symbols g_d(xi) of the gradient at a local point of the voxel.

    ``(grad u)_{id}`` at that point of voxel x is ``g_d(xi) u_hat_i exp(i xi . x)``
    for ``u = u_hat exp(i xi . x)``: ``g_d = sum_a exp(i xi . o_a) dN_a/dx_d(point)``.

    Returns
    -------
    (3, nx, ny, nz // 2 + 1) complex ndarray (the half spectrum of ``rfftn``).
    """
    nx, ny, nz = shape
    e = [np.exp(2j * np.pi * f) for f in (np.fft.fftfreq(nx), np.fft.fftfreq(ny), np.fft.rfftfreq(nz))]
    out = np.zeros((3, nx, ny, nz // 2 + 1), complex)
    b = strain_matrix(point)
    for a, (i, j, k) in enumerate(NODE_OFFSETS):
        phase = (e[0] ** i)[:, None, None] * (e[1] ** j)[None, :, None] * (e[2] ** k)[None, None, :]
        for d in range(3):
            out[d] += b[d, 3 * a + d] * phase  # rows 0..2 of B hold dN_a/dx_d
    return out


def stiffness_symbol(el: Element, lam: float, mu: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Fourier symbol of the global stiffness of a homogeneous (lam, mu) medium.

    For a periodic displacement ``u(x) = u_hat exp(i xi . x)`` the nodal forces
    are ``K_hat(xi) u_hat exp(i xi . x)`` with
    ``K_hat_ij = sum_q w_q [lam conj(g_i) g_j + mu (|g|^2 delta_ij + g_i conj(g_j))]``
    and ``g`` the gradient symbols at quadrature point q. Centro-symmetric
    elements make it real.

    Parameters
    ----------
    el : Element
    lam, mu : float
        Lamé constants of the medium.
    shape : (nx, ny, nz)
        Grid; the symbol is returned on the half spectrum of ``rfftn``.

    Returns
    -------
    (3, 3, nx, ny, nz // 2 + 1) float64 ndarray, symmetric in its first two axes.
    """
    points, weights = quadrature(el.discretization)
    symbol = np.zeros((3, 3, shape[0], shape[1], shape[2] // 2 + 1), complex)
    for point, weight in zip(points, weights):
        g = gradient_symbols(point, shape)
        norm2 = (g.conj() * g).real.sum(axis=0)
        for i in range(3):
            for j in range(3):
                symbol[i, j] += weight * (lam * g[i].conj() * g[j] + mu * g[i] * g[j].conj())
            symbol[i, i] += weight * mu * norm2
    imag = np.abs(symbol.imag).max()
    if imag > 1e-9 * np.abs(symbol.real).max():  # pragma: no cover - guards the derivation
        raise PhysicsError(f"stiffness symbol is not real (|imag| = {imag:.2e}); element not centro-symmetric")
    return np.ascontiguousarray(symbol.real)


def inverse_symbol(symbol: np.ndarray) -> np.ndarray:
    """Pseudo-inverse of a field of symmetric 3x3 matrices (the Green operator).

    Zero-energy modes (the rigid translation at xi = 0, and for the one-point
    rule on even grids the hourglass modes at the Nyquist frequency) get a zero
    inverse, which keeps the solution orthogonal to them.

    Returns
    -------
    (6, ...) ndarray: entries 00, 11, 22, 12, 02, 01 of the inverse.
    """
    s = symbol
    # Adjugate / determinant, with an eigen-decomposition only where the block is singular.
    adj = np.empty((6,) + s.shape[2:])
    adj[0] = s[1, 1] * s[2, 2] - s[1, 2] ** 2
    adj[1] = s[0, 0] * s[2, 2] - s[0, 2] ** 2
    adj[2] = s[0, 0] * s[1, 1] - s[0, 1] ** 2
    adj[3] = s[0, 1] * s[0, 2] - s[0, 0] * s[1, 2]
    adj[4] = s[0, 1] * s[1, 2] - s[1, 1] * s[0, 2]
    adj[5] = s[0, 2] * s[1, 2] - s[2, 2] * s[0, 1]
    det = s[0, 0] * adj[0] + s[0, 1] * adj[5] + s[0, 2] * adj[4]
    scale = np.abs(s).max()
    singular = det <= (1e-8 * scale) ** 3
    inv = adj / np.where(singular, 1.0, det)
    if singular.any():
        m = np.moveaxis(symbol, (0, 1), (-2, -1))[singular]
        values, vectors = np.linalg.eigh(m)
        inv_values = np.where(values > 1e-8 * scale, 1.0 / np.where(values > 1e-8 * scale, values, 1.0), 0.0)
        pinv = np.einsum("...ik,...k,...jk->...ij", vectors, inv_values, vectors)
        for n, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
            inv[n][singular] = pinv[:, i, j]
    return inv
