"""The FFT solver against an independent finite-element code (written here, from scratch).

A conventional periodic FE assembly with scipy.sparse and a direct solve:
trilinear hexahedra with one-point (reduced) integration must equal the
rotated scheme, with 2x2x2 Gauss integration the "fe-full" option. Nothing
is shared with vaereg_core.physics except the phase constants.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from vaereg_core.microstructure import filter_index, generate
from vaereg_core.physics import DEFAULT_HARD, DEFAULT_SOFT, homogenize


def shape_gradients(xi: float, eta: float, zeta: float) -> np.ndarray:
    """(8, 3) derivatives of the trilinear shape functions on the unit cube; node order
    (0,0,0) (1,0,0) (0,1,0) (1,1,0) (0,0,1) (1,0,1) (0,1,1) (1,1,1) (x fastest)."""
    nodes = [(i, j, k) for k in (0, 1) for j in (0, 1) for i in (0, 1)]
    out = np.zeros((8, 3))
    p = (xi, eta, zeta)
    for a, node in enumerate(nodes):
        lin = [p[d] if node[d] else 1 - p[d] for d in range(3)]
        sgn = [1 if node[d] else -1 for d in range(3)]
        out[a] = [sgn[0] * lin[1] * lin[2], sgn[1] * lin[0] * lin[2], sgn[2] * lin[0] * lin[1]]
    return out


NODES = [(i, j, k) for k in (0, 1) for j in (0, 1) for i in (0, 1)]


def b_matrix(grad: np.ndarray) -> np.ndarray:
    """Engineering-strain B (6 x 24), strains 11 22 33 23 13 12, dofs node-major."""
    b = np.zeros((6, 24))
    for a in range(8):
        dx, dy, dz = grad[a]
        b[0, 3 * a] = dx
        b[1, 3 * a + 1] = dy
        b[2, 3 * a + 2] = dz
        b[3, 3 * a + 1], b[3, 3 * a + 2] = dz, dy
        b[4, 3 * a], b[4, 3 * a + 2] = dz, dx
        b[5, 3 * a], b[5, 3 * a + 1] = dy, dx
    return b


def isotropic(e: float, nu: float) -> np.ndarray:
    lam = e * nu / ((1 + nu) * (1 - 2 * nu))
    mu = e / (2 * (1 + nu))
    c = np.zeros((6, 6))
    c[:3, :3] = lam
    c[range(3), range(3)] = lam + 2 * mu
    c[range(3, 6), range(3, 6)] = mu
    return c


def fe_stiffness(voxels: np.ndarray, gauss: int) -> np.ndarray:
    """Full 6x6 effective stiffness of a periodic voxel mesh by sparse FE (direct solve)."""
    n0, n1, n2 = voxels.shape
    if gauss == 1:
        points, weights = [(0.5, 0.5, 0.5)], [1.0]
    else:
        g = (0.5 - 0.5 / 3**0.5, 0.5 + 0.5 / 3**0.5)
        points, weights = list(itertools.product(g, g, g)), [0.125] * 8
    bs = [b_matrix(shape_gradients(*p)) for p in points]
    mats = {1: isotropic(120.0, 0.3), 0: isotropic(2.4, 0.3)}
    kes = {m: sum(w * b.T @ c @ b for w, b in zip(weights, bs)) for m, c in mats.items()}
    bbar = sum(w * b for w, b in zip(weights, bs))

    def node_id(i, j, k):
        return ((i % n0) * n1 + (j % n1)) * n2 + (k % n2)

    ndof = 3 * n0 * n1 * n2
    rows, cols, vals = [], [], []
    elem_dofs = []
    for i, j, k in itertools.product(range(n0), range(n1), range(n2)):
        dofs = np.array([3 * node_id(i + a, j + b, k + c) + d for (a, b, c) in NODES for d in range(3)])
        elem_dofs.append(dofs)
        ke = kes[int(voxels[i, j, k])]
        rows.append(np.repeat(dofs, 24))
        cols.append(np.tile(dofs, 24))
        vals.append(ke.ravel())
    k_global = scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(ndof, ndof))
    free = np.arange(3, ndof)  # node 0 pinned: removes the rigid translation
    k_free = k_global[free][:, free].tocsc()
    lu = scipy.sparse.linalg.splu(k_free)
    flat = voxels.reshape(-1)
    c_eff = np.zeros((6, 6))
    for case in range(6):
        strain = np.zeros(6)
        strain[case] = 1.0
        f = np.zeros(ndof)
        for e, dofs in enumerate(elem_dofs):
            f[dofs] -= bbar.T @ mats[int(flat[e])] @ strain
        u = np.zeros(ndof)
        u[free] = lu.solve(f[free])
        stress = np.zeros(6)
        for e, dofs in enumerate(elem_dofs):
            c = mats[int(flat[e])]
            for w, b in zip(weights, bs):
                stress += w * c @ (strain + b @ u[dofs])
        c_eff[:, case] = stress / flat.size
    return c_eff


@pytest.fixture(scope="module")
def small_structure() -> np.ndarray:
    return generate(seed=3, field_index=2, filter_index=filter_index((1, 2, 1)), volume_fraction=0.45, size=7)


@pytest.mark.parametrize("discretization,gauss", [("rotated", 1), ("fe-full", 2)])
def test_fft_solver_equals_sparse_fe(small_structure, discretization, gauss):
    reference = fe_stiffness(small_structure, gauss)
    r = homogenize(small_structure, DEFAULT_HARD, DEFAULT_SOFT, constants="all", discretization=discretization, tol=1e-11)
    assert np.max(np.abs(r.stiffness_raw - reference)) / np.max(np.abs(reference)) < 1e-8


def test_non_cubic_grid_equals_sparse_fe():
    v = generate(seed=5, field_index=0, filter_index=filter_index((1, 1, 2)), volume_fraction=0.5, size=9)[:5, :7, :9]
    reference = fe_stiffness(v, 1)
    r = homogenize(v, constants="all", tol=1e-11)
    assert np.max(np.abs(r.stiffness_raw - reference)) / np.max(np.abs(reference)) < 1e-8
