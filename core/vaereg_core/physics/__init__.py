"""Effective elastic stiffness of periodic two-phase voxel structures (DESIGN.md section 2).

FFT-accelerated conjugate gradients on the voxel mesh (Willot's rotated
scheme by default, full-integration hexahedra as an option), NumPy and
PyTorch backends, exact bounds for validation.

Examples
--------
>>> import numpy as np
>>> from vaereg_core.physics import homogenize
>>> r = homogenize(np.ones((3, 3, 3), np.uint8))
>>> round(r.constants["C11"], 4), round(r.constants["C12"], 4)
(161.5385, 69.2308)
"""

from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT, Phase, isotropic_stiffness
from vaereg_core.physics.solver import (
    ALL_CONSTANTS,
    DEFAULT_TOL,
    LOAD_CASES,
    NORMAL_CONSTANTS,
    HomogenizationResult,
    homogenize,
    homogenize_batch,
    load_cases_for,
)

__all__ = [
    "ALL_CONSTANTS",
    "DEFAULT_HARD",
    "DEFAULT_SOFT",
    "DEFAULT_TOL",
    "LOAD_CASES",
    "NORMAL_CONSTANTS",
    "HomogenizationResult",
    "Phase",
    "homogenize",
    "homogenize_batch",
    "load_cases_for",
    "isotropic_stiffness",
]
