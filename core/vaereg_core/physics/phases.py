"""Isotropic linear-elastic phases and their stiffness tensors (Voigt notation, GPa)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vaereg_core.errors import PhysicsError

VOIGT_PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
"""Tensor index pair of each Voigt index (order 11, 22, 33, 23, 13, 12)."""


@dataclass(frozen=True)
class Phase:
    """An isotropic linear-elastic material, stored by its Lamé constants (GPa).

    Use :meth:`from_young` or :meth:`from_lame`; both check that the material
    is stable (positive-definite stiffness: E > 0 and -1 < nu < 0.5).

    Examples
    --------
    >>> p = Phase.from_young(120.0, 0.3)
    >>> round(p.lam, 6), round(p.mu, 6)
    (69.230769, 46.153846)
    >>> round(p.young, 9), round(p.poisson, 9)
    (120.0, 0.3)
    """

    lam: float
    mu: float

    def __post_init__(self) -> None:
        for name, value in (("lambda", self.lam), ("mu", self.mu)):
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise PhysicsError(f"phase parameter {name} must be a finite number, got {value!r}")
        # Stability of an isotropic solid: mu > 0 and bulk modulus 3 lam + 2 mu > 0.
        if self.mu <= 0 or 3 * self.lam + 2 * self.mu <= 0:
            raise PhysicsError(
                f"unstable phase (lambda={self.lam}, mu={self.mu}): need mu > 0 and 3 lambda + 2 mu > 0, "
                "i.e. E > 0 and -1 < nu < 0.5"
            )
        object.__setattr__(self, "lam", float(self.lam))
        object.__setattr__(self, "mu", float(self.mu))

    @classmethod
    def from_young(cls, young: float, poisson: float) -> "Phase":
        """Phase from Young's modulus E (GPa) and Poisson's ratio nu."""
        for name, value in (("E", young), ("nu", poisson)):
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise PhysicsError(f"phase parameter {name} must be a finite number, got {value!r}")
        if young <= 0:
            raise PhysicsError(f"Young's modulus must be > 0 GPa, got E={young}")
        if not -1.0 < poisson < 0.5:
            raise PhysicsError(f"Poisson's ratio must be in (-1, 0.5), got nu={poisson}")
        lam = young * poisson / ((1 + poisson) * (1 - 2 * poisson))
        mu = young / (2 * (1 + poisson))
        return cls(lam, mu)

    @classmethod
    def from_lame(cls, lam: float, mu: float) -> "Phase":
        """Phase from the Lamé constants lambda and mu (GPa)."""
        return cls(lam, mu)

    @property
    def young(self) -> float:
        """Young's modulus E (GPa)."""
        return self.mu * (3 * self.lam + 2 * self.mu) / (self.lam + self.mu)

    @property
    def poisson(self) -> float:
        """Poisson's ratio nu."""
        return self.lam / (2 * (self.lam + self.mu))

    @property
    def bulk(self) -> float:
        """Bulk modulus K = lambda + 2 mu / 3 (GPa)."""
        return self.lam + 2 * self.mu / 3

    def stiffness(self) -> np.ndarray:
        """The 6x6 Voigt stiffness matrix (engineering shear strains), GPa."""
        return isotropic_stiffness(self.lam, self.mu)

    def __str__(self) -> str:
        return f"E {_recorded(self.young):.4g} GPa ν {self.poisson:.2f}"

    def to_dict(self) -> dict:
        """JSON form: Young's modulus and Poisson's ratio (and the Lamé constants)."""
        return {"E": self.young, "nu": self.poisson, "lambda": self.lam, "mu": self.mu}


def isotropic_stiffness(lam: float, mu: float) -> np.ndarray:
    """6x6 Voigt stiffness of an isotropic material with Lamé constants ``lam``, ``mu``."""
    c = np.zeros((6, 6))
    c[:3, :3] = lam
    c[np.arange(3), np.arange(3)] += 2 * mu
    c[np.arange(3, 6), np.arange(3, 6)] = mu
    return c


DEFAULT_HARD = Phase.from_young(120.0, 0.3)
"""Hard phase (voxel value 1): E = 120 GPa, nu = 0.3 (DESIGN.md section 2)."""

DEFAULT_SOFT = Phase.from_young(2.4, 0.3)
"""Soft phase (voxel value 0): E = 2.4 GPa, nu = 0.3 (contrast 50)."""


def _recorded(value: float) -> float:
    """A modulus as recorded in files: 12 significant digits, so 120 GPa reads 120.0 after the Lamé round trip."""
    return float(f"{value:.12g}")


@dataclass(frozen=True)
class Material:
    """The two phases of a structure: ``hard`` (voxel value 1) and ``soft`` (voxel value 0).

    What a dataset is computed with, a model is trained on and its designs
    are validated with. Records read as ``{"hard": {"E", "nu"}, "soft": {...}}``
    (GPa); a missing record is the paper's pair.

    Examples
    --------
    >>> m = Material.from_record({"hard": {"E": 410, "nu": 0.14}, "soft": {"E": 70, "nu": 0.33}})
    >>> describe(m)
    'hard E 410 GPa ν 0.14 / soft E 70 GPa ν 0.33'
    >>> Material.from_record(None) == PAPER_MATERIAL
    True
    """

    hard: Phase = DEFAULT_HARD
    soft: Phase = DEFAULT_SOFT

    @classmethod
    def from_young(cls, hard: tuple[float, float], soft: tuple[float, float]) -> "Material":
        """The material of ``(E, nu)`` pairs (GPa), checked as :meth:`Phase.from_young` checks."""
        return cls(Phase.from_young(*hard), Phase.from_young(*soft))

    @classmethod
    def from_record(cls, record: object) -> "Material":
        """The material a file records (a dataset's solver settings, a model's metadata); the paper's when absent.

        Raises
        ------
        PhysicsError
            A record that names phases but not as ``{"E": number, "nu": number}`` of a stable solid.
        """
        if not isinstance(record, dict):
            return PAPER_MATERIAL
        phases = []
        for key, default in (("hard", DEFAULT_HARD), ("soft", DEFAULT_SOFT)):
            spec = record.get(key)
            if spec is None:
                phases.append(default)
                continue
            try:
                phases.append(Phase.from_young(float(spec["E"]), float(spec["nu"])))
            except (TypeError, KeyError, ValueError) as exc:
                raise PhysicsError(f"the recorded {key} phase {spec!r} is not {{'E': GPa, 'nu': ratio}} ({type(exc).__name__})") from None
        return cls(*phases)

    def to_record(self) -> dict:
        """The JSON form files store: ``{"hard": {"E", "nu"}, "soft": {"E", "nu"}}``."""
        return {key: {"E": _recorded(p.young), "nu": _recorded(p.poisson)} for key, p in (("hard", self.hard), ("soft", self.soft))}

    def solver_options(self) -> dict:
        """The phases as keyword arguments of :func:`~vaereg_core.physics.homogenize`."""
        return {"hard": self.hard, "soft": self.soft}

    @property
    def inverted(self) -> bool:
        """Whether the "hard" phase is the softer one (lower C11): allowed, but worth saying."""
        return self.hard.stiffness()[0, 0] < self.soft.stiffness()[0, 0]

    @property
    def c11_range(self) -> tuple[float, float]:
        """(lower, upper) of any structure's C11: the two phases' own C11 (GPa)."""
        ends = sorted((float(self.hard.stiffness()[0, 0]), float(self.soft.stiffness()[0, 0])))
        return ends[0], ends[1]


PAPER_MATERIAL = Material()
"""The paper's phases: hard E = 120 GPa, soft E = 2.4 GPa, nu = 0.3 for both."""


def describe(material: Material) -> str:
    """One line naming a material, e.g. ``"hard E 120 GPa ν 0.30 / soft E 2.4 GPa ν 0.30"``.

    >>> describe(PAPER_MATERIAL)
    'hard E 120 GPa ν 0.30 / soft E 2.4 GPa ν 0.30'
    """
    return f"hard {material.hard} / soft {material.soft}"
