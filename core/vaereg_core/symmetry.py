"""The cube's 48 symmetries acting on voxel structures and on the stiffness constants they determine.

A symmetry is an axis permutation ``p`` after reflections ``flips``: the
transformed structure is ``np.transpose(np.flip(s, flipped axes), p)``, so its
axis ``k`` is the original's axis ``p[k]`` and, for the normal and shear-free
constants a model predicts, ``C'_kl = C_{p(k) p(l)}``. Reflections leave all
six constants unchanged (they flip the sign of shear couplings only, which are
not among them). A network is not equivariant, so predicting every transformed
copy and mapping the constants back gives several estimates of the same
truth: their mean is a better prediction, their spread a measure of doubt.

Examples
--------
>>> s = CubeSymmetry((1, 0, 2))
>>> s.constant_sources(("C11", "C22", "C33", "C12", "C13", "C23"))
(1, 0, 2, 3, 5, 4)
>>> [len(cube_symmetries(w)) for w in SYMMETRY_SETS]
[1, 3, 6, 12, 48]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Voigt indices of the constants a model may predict: name -> (i, j), 0-based axes.
CONSTANT_AXES = {"C11": (0, 0), "C22": (1, 1), "C33": (2, 2), "C12": (0, 1), "C13": (0, 2), "C23": (1, 2)}
SYMMETRY_SETS = ("identity", "cyclic", "permutations", "permutations+inversion", "all")
CYCLIC = ((0, 1, 2), (1, 2, 0), (2, 0, 1))


@dataclass(frozen=True)
class CubeSymmetry:
    """One of the 48: reflect the axes marked in ``flips``, then permute the axes by ``permutation``."""

    permutation: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)

    @property
    def code(self) -> int:
        """A number that names this symmetry (for files): permutation rank × 8 + the flip bits.

        >>> CubeSymmetry().code, CubeSymmetry((2, 1, 0), (True, False, False)).code
        (0, 41)
        """
        rank = list(itertools.permutations(range(3))).index(self.permutation)
        return rank * 8 + sum(1 << a for a, f in enumerate(self.flips) if f)

    def apply(self, voxels: np.ndarray) -> np.ndarray:
        """The transformed structure(s): the last three axes of ``voxels`` are x, y, z (a view where possible)."""
        lead = voxels.ndim - 3
        flipped = np.flip(voxels, axis=tuple(lead + a for a, f in enumerate(self.flips) if f)) if any(self.flips) else voxels
        return np.transpose(flipped, tuple(range(lead)) + tuple(lead + a for a in self.permutation))

    def constant_sources(self, names: tuple[str, ...]) -> tuple[int, ...]:
        """For each constant of the transformed structure, the index (into ``names``) of the original's equal constant.

        ``C'[k] = C[sources[k]]``; ``names`` must be closed under the permutation
        (all three diagonal or all three off-diagonal constants, or all six).
        """
        position = {tuple(sorted(CONSTANT_AXES[n])): i for i, n in enumerate(names)}
        try:
            return tuple(position[tuple(sorted(self.permutation[a] for a in CONSTANT_AXES[n]))] for n in names)
        except KeyError:
            raise ValueError(f"constants {', '.join(names)} are not closed under the axis permutation {self.permutation}") from None

    def to_original(self, values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """Constants predicted for the transformed structure (..., P) -> estimates of the original's (..., P)."""
        out = np.empty_like(values)
        out[..., list(self.constant_sources(names))] = values
        return out


def map_back(values: np.ndarray, symmetries: Sequence[CubeSymmetry], names: tuple[str, ...]) -> np.ndarray:
    """Constants predicted for each symmetric copy (N, T, P) -> estimates of the original's constants (N, T, P).

    >>> map_back(np.array([[[1.0, 2.0, 3.0]]]), [CubeSymmetry((1, 2, 0))], ("C11", "C22", "C33")).tolist()
    [[[3.0, 1.0, 2.0]]]
    """
    out = np.empty_like(values)
    for t, symmetry in enumerate(symmetries):
        out[:, t] = symmetry.to_original(values[:, t], tuple(names))
    return out


def constant_orbits(names: tuple[str, ...], symmetries: Sequence[CubeSymmetry]) -> tuple[tuple[int, ...], ...]:
    """The constants the symmetries carry into each other, as groups of indices into ``names``.

    A prediction averaged over a group of symmetries stays equivariant only if
    whatever is fitted per constant afterwards (ensemble weights, ± scales) is
    the same within each group.

    >>> names = ("C11", "C22", "C33", "C12", "C13", "C23")
    >>> constant_orbits(names, cube_symmetries("cyclic")), constant_orbits(names, cube_symmetries("identity"))
    (((0, 1, 2), (3, 4, 5)), ((0,), (1,), (2,), (3,), (4,), (5,)))
    """
    orbit = {i: {i} for i in range(len(names))}
    for symmetry in symmetries:
        for k, source in enumerate(symmetry.constant_sources(tuple(names))):
            merged = orbit[k] | orbit[source]
            for i in merged:
                orbit[i] = merged
    return tuple(sorted({tuple(sorted(group)) for group in orbit.values()}))


def cube_symmetries(which: str = "all") -> tuple[CubeSymmetry, ...]:
    """A named set of symmetries, the identity first; each set is a group.

    ``identity``; ``cyclic`` (the 3 cyclic axis permutations x→y→z→x);
    ``permutations`` (all 6 axis permutations); ``permutations+inversion``
    (those and the same with all three axes reflected, 12); ``all`` (48).
    """
    if which not in SYMMETRY_SETS:
        raise ValueError(f"symmetry set must be one of {', '.join(SYMMETRY_SETS)}, got {which!r}")
    permutations = list(itertools.permutations(range(3)))
    flips = {
        "identity": [(False,) * 3],
        "cyclic": [(False,) * 3],
        "permutations": [(False,) * 3],
        "permutations+inversion": [(False,) * 3, (True,) * 3],
        "all": list(itertools.product((False, True), repeat=3)),
    }[which]
    if which == "identity":
        permutations = permutations[:1]
    elif which == "cyclic":
        permutations = list(CYCLIC)
    return tuple(CubeSymmetry(p, f) for f in flips for p in permutations)


def symmetries_for(names: tuple[str, ...], which: str = "all") -> tuple[CubeSymmetry, ...]:
    """The symmetries of a named set that map the constants ``names`` onto themselves.

    All of them for the three diagonal or all six constants; for C11 alone only
    those that keep the x axis in place (reflections, and swapping y and z).

    >>> len(symmetries_for(("C11",), "all")), len(symmetries_for(("C11", "C22", "C33"), "permutations"))
    (16, 6)
    """
    usable = []
    for symmetry in cube_symmetries(which):
        try:
            symmetry.constant_sources(names)
        except ValueError:
            continue
        usable.append(symmetry)
    return tuple(usable)
