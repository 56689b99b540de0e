"""Voxel polishing: the last few per cent of a design by flipping interface voxels the solver picks.

A decoded structure is a morphology the network knows; its constants are near
the target but rarely within a per cent. The solver's flip estimates
(:func:`~vaereg_core.physics.sensitivity.phase_flip_change`) say how much each
voxel would move each constant if it changed phase; a small set of voxels on
the phase interface — a few hundred of 51³, so the morphology stays the same —
is chosen so that their estimated changes add up to the residual, and the
solver then checks the polished structure (the design loop keeps it only if
it is better). The choice is greedy: a voxel is taken only when it brings the
estimated residual closer.
"""

from __future__ import annotations

import numpy as np

ROUND = 256  # candidates walked per ranking of the greedy choice


def interface_voxels(voxels: np.ndarray) -> np.ndarray:
    """Voxels with a face neighbour (periodic) of the other phase.

    >>> x = np.zeros((4, 4, 4), np.uint8); x[1, 1, 1] = 1
    >>> int(interface_voxels(x).sum())  # the voxel and its six neighbours
    7
    """
    v = np.asarray(voxels)
    out = np.zeros(v.shape, bool)
    for axis in range(v.ndim):
        for shift in (1, -1):
            out |= np.roll(v, shift, axis) != v
    return out


def flippable_voxels(voxels: np.ndarray) -> np.ndarray:
    """Interface voxels whose flip neither bridges a gap nor cuts a strut.

    A voxel with the other phase on both opposite faces along some axis sits in
    a one-voxel gap (or strut): flipping it joins (or splits) two regions, a
    change of connectivity whose effect no local estimate gets right. Those are
    left out.

    >>> x = np.zeros((5, 5, 5), np.uint8); x[1] = 1; x[3] = 1   # one-voxel layers, periodic
    >>> ok = flippable_voxels(x)
    >>> bool(ok[2, 0, 0]), bool(ok[1, 0, 0])   # the gap between the layers; a layer itself
    (False, False)
    >>> bool(ok[0, 0, 0])   # beside one layer only
    True
    """
    v = np.asarray(voxels)
    sandwiched = np.zeros(v.shape, bool)
    for axis in range(v.ndim):
        sandwiched |= (np.roll(v, 1, axis) != v) & (np.roll(v, -1, axis) != v)
    return interface_voxels(v) & ~sandwiched


def polish_flips(
    voxels: np.ndarray, flip_change: np.ndarray, residual: np.ndarray, *, keep: float = 0.05, max_share: float = 0.005
) -> np.ndarray:
    """Interface voxels whose flips together cancel most of ``residual`` by the solver's estimates.

    Parameters
    ----------
    voxels : (nx, ny, nz) array of 0/1
    flip_change : (P, nx, ny, nz) ndarray
        Estimated change of each of P constants per voxel made hard, relative
        to each constant's target (so that the P rows weigh alike).
    residual : (P,) ndarray
        Wanted relative change of each constant, ``(target - current) / target``.
    keep : float
        Stop once the estimated leftover is at most this share of the residual's norm.
    max_share : float
        At most this share of all voxels flips (0.5 %: 663 of 51³), since the
        estimates are first order and flips that sit together interact.

    Returns
    -------
    (M,) int ndarray
        Flat indices of the voxels to flip (may be empty).

    Examples
    --------
    Voxels that each add 1 % to a constant: a 3 % shortfall takes three of them.

    >>> x = np.zeros((6, 6, 6), np.uint8); x[:3] = 1
    >>> change = np.full((1, 6, 6, 6), 0.01) * interface_voxels(x)
    >>> len(polish_flips(x, change, np.array([0.03]), max_share=0.05))
    3
    """
    v = np.asarray(voxels).reshape(-1)
    candidates = np.flatnonzero(flippable_voxels(voxels))
    sign = np.where(v[candidates] == 1, -1.0, 1.0)  # a hard voxel can only lose, a soft one only gain
    a = flip_change.reshape(len(flip_change), -1)[:, candidates] * sign
    b = np.asarray(residual, dtype=np.float64)
    if not candidates.size or not np.any(b):
        return np.empty(0, dtype=np.intp)
    norms = np.einsum("pn,pn->n", a, a)
    limit = max(1, int(max_share * v.size))
    left = b.copy()
    taken = np.zeros(candidates.size, bool)
    goal = keep * np.linalg.norm(b)
    # Greedy in 0/1: a flip is taken only if it brings the estimated residual closer, so no pair is
    # taken for estimates that cancel (the solver would not confirm such a pair). Each round ranks the
    # candidates once by how much each alone reduces |left|^2, then walks down the ranking.
    while taken.sum() < limit and np.linalg.norm(left) > goal:
        reduction = 2 * (left @ a) - norms
        reduction[taken] = -np.inf
        ranked = np.argsort(-reduction, kind="stable")[:ROUND]
        added = 0
        for i in ranked:
            if reduction[i] <= 0 or taken.sum() >= limit:
                break
            if 2 * float(left @ a[:, i]) > norms[i]:  # still helps, with the flips taken before it
                taken[i] = True
                left -= a[:, i]
                added += 1
                if np.linalg.norm(left) <= goal:
                    break
        if not added:
            break
    return candidates[taken]


def straighten(voxels: np.ndarray, axis: int, length: int = 5) -> np.ndarray:
    """Each voxel takes the majority phase of the ``length`` voxels around it along ``axis`` (periodic).

    Polishing adds or removes material at the interface, which moves every
    constant the same way: it cannot raise one diagonal constant alone. A
    structure whose stiffest direction falls short needs straighter struts and
    plates along that axis, and a median along it gives that — bumps across
    the axis go, one- and two-voxel gaps along it close — at about the same
    volume fraction, so stiffness moves from the other directions to this one.

    Examples
    --------
    A column along axis 0 with a one-voxel gap is closed, and a one-voxel bump beside it goes:

    >>> x = np.zeros((6, 4, 4), np.uint8); x[:, 1, 1] = 1; x[2, 1, 1] = 0; x[3, 2, 1] = 1
    >>> y = straighten(x, 0, length=3)
    >>> bool(y[2, 1, 1]), bool(y[3, 2, 1]), int(y.sum())
    (True, False, 6)
    """
    from scipy import ndimage  # here, not at the top: the app imports this module before its first render

    size = [1] * np.ndim(voxels)
    size[axis] = length
    return ndimage.median_filter(np.asarray(voxels, np.uint8), size=size, mode="wrap")
