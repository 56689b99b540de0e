"""How the FFT solver computes a structure's stiffness: the one solver schema of the CLI and the app.

The defaults are those every validation uses (a candidate, a design, an
evaluation): the dataset's tolerance 1e-4, at which C11 is good to ~1e-7 and
C12 to ~1e-5 relative (:data:`vaereg_core.physics.solver.DEFAULT_TOL`), so that a structure's error
against a target measured from the dataset is not the two solves' difference.

Examples
--------
>>> SolverSettings().tol
0.0001
>>> SolverSettings(tol=2)
Traceback (most recent call last):
...
vaereg_core.settings.fields.SettingError: solver setting tol must be in (0, 1), got 2
>>> sorted(SolverSettings(device="cpu").homogenize_options())
['backend', 'device', 'discretization', 'dtype', 'hard', 'max_iter', 'soft', 'tol']
"""

from __future__ import annotations

from dataclasses import dataclass

from vaereg_core.errors import PhysicsError
from vaereg_core.physics.elements import DISCRETIZATIONS
from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT, Phase
from vaereg_core.physics.solver import BACKENDS, DEFAULT_MAX_ITER, DTYPES
from vaereg_core.settings.fields import SettingError, check_settings, setting

VALIDATION_TOL = 1e-4
"""Relative residual of every validation solve (the dataset's)."""
VALIDATION_DTYPE = "float32"
"""Precision of every validation solve (the dataset's; at tol 1e-4 the constants agree with float64 to ~1e-6)."""


def young_pair(phase: Phase) -> tuple[float, float]:
    """``(E, nu)`` of a phase as files record them (12 significant digits: 0.3, not 0.30000000000000004)."""
    return float(f"{phase.young:.12g}"), float(f"{phase.poisson:.12g}")


@dataclass(frozen=True)
class SolverSettings:
    """Tolerance, iteration limit, discretisation, backend, precision, device and phases of a solve."""

    tol: float = setting(VALIDATION_TOL, help="relative residual of the conjugate gradients", minimum=0.0, maximum=1.0,
                         open_minimum=True, open_maximum=True, decimals=6)
    max_iter: int = setting(DEFAULT_MAX_ITER, help="iteration limit per load case", label="Iteration limit", minimum=1)
    discretization: str = setting("rotated", help="rotated (staggered-grid) or fe-full (trilinear finite elements)",
                                  choices=DISCRETIZATIONS, label="Discretisation")
    backend: str = setting("auto", help="array backend", choices=BACKENDS)
    dtype: str = setting("float64", help="precision", choices=DTYPES, label="Precision")
    device: str = setting("auto", help="auto, cpu, cuda, cuda:N or mps", device=True)
    hard: tuple[float, float] = setting(young_pair(DEFAULT_HARD), help="hard phase (voxel value 1): E (GPa) and nu",
                                        metavar=("E", "NU"), label="Hard phase")
    soft: tuple[float, float] = setting(young_pair(DEFAULT_SOFT), help="soft phase (voxel value 0): E (GPa) and nu",
                                        metavar=("E", "NU"), label="Soft phase")

    def __post_init__(self) -> None:
        check_settings(self, "solver")
        self.phases()  # an unstable phase is refused here, not at the first solve

    def phases(self) -> tuple[Phase, Phase]:
        """The hard and soft :class:`~vaereg_core.physics.phases.Phase`.

        Raises
        ------
        SettingError
            A pair that is not a stable isotropic solid, naming the phase.
        """
        found = []
        for name, (young, poisson) in (("hard", self.hard), ("soft", self.soft)):
            try:
                found.append(Phase.from_young(young, poisson))
            except PhysicsError as exc:
                raise SettingError("solver", name, f"is not a stable solid: {exc}") from None
        return found[0], found[1]

    def homogenize_options(self) -> dict:
        """The settings as keyword arguments of :func:`vaereg_core.physics.homogenize`."""
        hard, soft = self.phases()
        return {"tol": self.tol, "max_iter": self.max_iter, "discretization": self.discretization, "backend": self.backend,
                "dtype": self.dtype, "device": self.device, "hard": hard, "soft": soft}
