"""Feasibility of a target stiffness: can two-phase structures of these phases have it, and does the data?

Two questions, asked before any design:

*Physics* — rigorous necessary conditions that every two-phase composite of
the given isotropic, well-ordered phases satisfies, for some hard-phase
fraction φ that is the same for all of them:

- **Voigt–Reuss in the Loewner order.** For every microstructure,
  ``R(φ) ≤ C* ≤ V(φ)`` as symmetric matrices (``V`` the mean stiffness, ``R``
  the inverse mean compliance); the order passes to every principal
  sub-block, so it holds for each block of the normal constants C11…C23 whose
  entries are all given: for one diagonal constant ``R11(φ) ≤ C_ii ≤ V11(φ)``,
  for a pair or all three the block inequalities. (Individual off-diagonal
  constants are *not* bounded by the Voigt and Reuss values; only these
  matrix inequalities are rigorous.)
- **Positive definiteness.** A stable material's normal block is positive
  definite: ``|C_ij| < sqrt(C_ii C_jj)`` (so C12 > C11 = C22 is impossible);
  with a diagonal constant left free it is replaced by its largest possible
  value ``V11(φ)``.
- **Hashin–Shtrikman on the hydrostatic response** (all six given). The
  Voigt-average bulk modulus ``K_V = (C11 + C22 + C33 + 2 (C12 + C13 + C23)) / 9``
  is the energy of a hydrostatic strain. The Hashin–Shtrikman variational
  principle with a hydrostatic polarisation in each phase gives the classical
  HS bulk bounds for it whatever the geometry (isotropic or not), because an
  isotropic comparison medium's Green operator gives a hydrostatic
  polarisation the same energy in every direction of the wave vector:
  ``K_HS-(φ) ≤ K_V ≤ K_HS+(φ)``. (HS bounds on shear moduli need statistical
  isotropy and are not used.)

All hold for the continuum. For the solver's discretisation Voigt–Reuss and
positive definiteness are exact too; the Hashin–Shtrikman argument is the
continuum's (every structure of the shipped dataset passes it, with its
volume fraction inside the allowed range). A slack of ``1e-4`` of the hard
phase's C11 allows for rounding. A target failing one is *impossible*.
Passing them does not make a target achievable.

*Data* — the distance (root mean square of the log ratios over the given
constants, ≈ relative) from the target to the nearest structure of the
property table (the dataset's property cloud). Within three times the cloud's
local spacing (the median nearest-neighbour distance of the ten structures
nearest the target, in the same constants; at least ``tolerance``, 2 %) the
target is *achievable*: a real structure has it, or it lies among real
structures as closely as they lie to each other (98 % of the test split's
structures, all six constants, are inside the training split's cloud by this
rule; this is an empirical criterion, not a proof). Farther away it is
*outside the data*. The nearest structure's given constants are the *nearest
achievable target*; free constants stay free (they are reported from that
structure in ``nearest_constants`` only).

Examples
--------
>>> from vaereg_core.inverse.targets import parse_target
>>> assess(parse_target("C11=30,C22=30,C12=40", PROPERTY_NAMES)).verdict
'impossible'
>>> assess(parse_target("C11=170", PROPERTY_NAMES)).reasons[0]
"C11 = 170 GPa is above the hard phase's C11 = 161.5 GPa (the Voigt bound at φ = 1)"
>>> reference = np.array([[40.0, 40, 40, 15, 15, 15], [60, 60, 60, 20, 20, 20]])
>>> found = assess(parse_target("C11=60", PROPERTY_NAMES), reference=reference)
>>> found.verdict, found.nearest, found.nearest_row
('achievable', {'C11': 60.0}, 1)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from vaereg_core.dataset.table import PROPERTY_NAMES, DatasetTable
from vaereg_core.errors import PhysicsError
from vaereg_core.inverse.targets import Target
from vaereg_core.physics.bounds import hashin_shtrikman_bulk
from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT, Phase

ACHIEVABLE, OUTSIDE, IMPOSSIBLE = "achievable", "outside the data", "impossible"

NORMAL_INDEX: dict[str, tuple[int, int]] = {"C11": (0, 0), "C22": (1, 1), "C33": (2, 2), "C12": (0, 1), "C13": (0, 2), "C23": (1, 2)}
"""Position of each normal constant in the 3x3 normal block of the stiffness."""

SLACK = 1e-4
"""Rounding allowance of the physical checks, relative to the hard phase's C11."""



@dataclass
class Feasibility:
    """Whether a target can be reached, why, and the nearest target that can.

    Attributes
    ----------
    verdict : {"achievable", "outside the data", "impossible"}
        *impossible*: no two-phase structure of these phases has it (rigorous);
        *outside the data*: possible by the bounds but farther from every
        dataset structure than they are from each other (or no table given);
        *achievable*: within the cloud's local spacing of a dataset structure.
    reasons : list of str
        One line each: the failed physical conditions, then the data's verdict.
    nearest : dict or None
        The nearest dataset structure's values of the *given* constants (GPa);
        free constants stay free. None without a property table.
    distance : float or None
        RMS of the log ratios target / nearest over the given constants.
    threshold : float or None
        The distance that counts as inside the data.
    nearest_row : int or None
        Row of the nearest structure in the property table.
    nearest_constants : dict or None
        All its constants (GPa), the free ones included.
    fractions : (float, float) or None
        Hard-phase fractions the physical conditions allow (None when impossible).
    """

    verdict: str
    reasons: list[str]
    nearest: dict[str, float] | None = None
    distance: float | None = None
    threshold: float | None = None
    nearest_row: int | None = None
    nearest_constants: dict[str, float] | None = None
    fractions: tuple[float, float] | None = None

    def nearest_text(self) -> str:
        """``C11=35.2 C22=30.1 GPa``, or a sentence saying there is no nearest target."""
        if self.nearest is None:
            return "no property table to find one in"
        return " ".join(f"{n}={v:.4g}" for n, v in self.nearest.items()) + " GPa"

    def line(self) -> str:
        """One line for a terminal, e.g. ``feasibility: achievable — 1.2 % from dataset structure 17 (…)``."""
        if self.verdict == IMPOSSIBLE:
            return f"feasibility: impossible — {self.reasons[0]}; nearest achievable target {self.nearest_text()}"
        if self.distance is None:
            return f"feasibility: {self.verdict} — {self.reasons[-1]}"
        where = f"{100 * self.distance:.1f} % from dataset structure {self.nearest_row} (inside: ≤ {100 * self.threshold:.1f} %)"
        if self.verdict == ACHIEVABLE:
            return f"feasibility: achievable — {where}"
        return f"feasibility: outside the data — {where}; nearest achievable target {self.nearest_text()}"

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "nearest_target_GPa": self.nearest,
            "distance": self.distance,
            "threshold": self.threshold,
            "nearest_row": self.nearest_row,
            "nearest_constants_GPa": self.nearest_constants,
            "hard_fractions": None if self.fractions is None else list(self.fractions),
        }


# ---------------------------------------------------------------------- physics


@dataclass(frozen=True)
class _Range:
    """Hard-phase fractions one condition allows, and what sets each end."""

    low: float
    high: float
    low_because: str
    high_because: str


def _first_true(ok: Callable[[float], bool]) -> float:
    """Smallest φ in [0, 1] with ``ok(φ)`` for a predicate false-then-true (``ok(1)`` holds)."""
    if ok(0.0):
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(40):  # 1e-12: far below any fraction that matters
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def _last_true(ok: Callable[[float], bool]) -> float:
    """Largest φ in [0, 1] with ``ok(φ)`` for a predicate true-then-false (``ok(0)`` holds)."""
    return 1.0 - _first_true(lambda phi: ok(1.0 - phi))


def _fraction_range(
    what: str,
    below_upper: Callable[[float], bool],
    above_lower: Callable[[float], bool],
    upper: str,
    lower: str,
) -> _Range | str:
    """The fractions where a quantity lies between a rising upper and a rising lower bound, or why none.

    ``below_upper`` must hold at φ = 1 (else: above the hard phase) and
    ``above_lower`` at φ = 0 (else: below the soft phase).
    """
    if not below_upper(1.0):
        return f"{what} exceeds the hard phase's ({upper} at φ = 1)"
    if not above_lower(0.0):
        return f"{what} is below the soft phase's ({lower} at φ = 0)"
    return _Range(_first_true(below_upper), _last_true(above_lower), f"{what} ({upper})", f"{what} ({lower})")


def _lowest_eigenvalue(m: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(m)[0])


@dataclass(frozen=True)
class _Bounds:
    """Voigt and Reuss bounds of two phases as functions of φ (the matrices computed once: bisection calls them often)."""

    hard: np.ndarray
    soft: np.ndarray
    hard_compliance: np.ndarray
    soft_compliance: np.ndarray

    @classmethod
    def of(cls, hard: Phase, soft: Phase) -> "_Bounds":
        h, s = hard.stiffness(), soft.stiffness()
        return cls(h, s, np.linalg.inv(h), np.linalg.inv(s))

    def voigt(self, phi: float) -> np.ndarray:
        return phi * self.hard + (1 - phi) * self.soft

    def reuss(self, phi: float) -> np.ndarray:
        return np.linalg.inv(phi * self.hard_compliance + (1 - phi) * self.soft_compliance)


def _block_checks(given: Mapping[str, float], hard: Phase, soft: Phase, slack: float) -> list[_Range | str]:
    """Positive definiteness and Voigt–Reuss for every normal sub-block whose entries are all given."""
    c = np.full((3, 3), np.nan)
    for name, value in given.items():
        i, j = NORMAL_INDEX[name]
        c[i, j] = c[j, i] = value
    bounds = _Bounds.of(hard, soft)
    hard11, soft11 = float(bounds.hard[0, 0]), float(bounds.soft[0, 0])
    out: list[_Range | str] = []
    blocks = [list(s) for k in (1, 2, 3) for s in itertools.combinations(range(3), k) if not np.isnan(c[np.ix_(s, s)]).any()]
    for idx in blocks:
        block = c[np.ix_(idx, idx)]
        names = [n for n, (i, j) in NORMAL_INDEX.items() if i in idx and j in idx]
        if len(idx) == 1:
            name = names[0]
            value = given[name]
            if value > hard11 + slack:
                out.append(f"{name} = {value:g} GPa is above the hard phase's C11 = {hard11:.1f} GPa (the Voigt bound at φ = 1)")
                continue
            if value < soft11 - slack:
                out.append(f"{name} = {value:g} GPa is below the soft phase's C11 = {soft11:.2f} GPa (the Reuss bound at φ = 0)")
                continue
            what = f"{name} = {value:g} GPa"
        else:
            what = "the block " + " ".join(names)
            if _lowest_eigenvalue(block) <= 0:
                out.append(_not_positive_definite(block, idx, names))
                continue
        sel = np.ix_(idx, idx)
        out.append(
            _fraction_range(
                what,
                lambda phi, sel=sel, block=block: _lowest_eigenvalue(bounds.voigt(phi)[sel] - block) >= -slack,
                lambda phi, sel=sel, block=block: _lowest_eigenvalue(block - bounds.reuss(phi)[sel]) >= -slack,
                "Voigt bound",
                "Reuss bound",
            )
        )
    return out


def _not_positive_definite(block: np.ndarray, idx: list[int], names: list[str]) -> str:
    """The reason a given normal block is not positive definite, naming the offending pair when there is one."""
    labels = {v: k for k, v in NORMAL_INDEX.items()}
    for a, b in itertools.combinations(range(len(idx)), 2):
        limit = math.sqrt(block[a, a] * block[b, b])
        if abs(block[a, b]) >= limit:
            off, d1, d2 = labels[(idx[a], idx[b])], labels[(idx[a], idx[a])], labels[(idx[b], idx[b])]
            return f"{off} = {block[a, b]:g} GPa ≥ √({d1}·{d2}) = {limit:.3g} GPa: no stable material has it (not positive definite)"
    return f"the block {' '.join(names)} is not positive definite: no stable material has it"


def _lone_off_diagonal_checks(given: Mapping[str, float], hard: Phase, soft: Phase, slack: float) -> list[_Range | str]:
    """``C_ij² < C_ii C_jj`` for an off-diagonal constant whose diagonal partners are not both given.

    A free diagonal constant is at most ``V11(φ)`` (Voigt), which makes the
    condition a lower bound on φ.
    """
    labels = {v: k for k, v in NORMAL_INDEX.items()}
    hard11, soft11 = float(hard.stiffness()[0, 0]), float(soft.stiffness()[0, 0])
    out: list[_Range | str] = []
    for name, (i, j) in NORMAL_INDEX.items():
        if i == j or name not in given or (labels[(i, i)] in given and labels[(j, j)] in given):
            continue
        value = given[name]

        def largest_product(phi: float, i: int = i, j: int = j) -> float:
            v11 = phi * hard11 + (1 - phi) * soft11
            return given.get(labels[(i, i)], v11) * given.get(labels[(j, j)], v11)

        free = " and ".join(labels[(k, k)] for k in (i, j) if labels[(k, k)] not in given)
        what = f"{name} = {value:g} GPa with {free} free"
        if value**2 >= largest_product(1.0) + slack:
            out.append(f"{what} needs {name}² < {labels[(i, i)]}·{labels[(j, j)]} (positive definite), more than the hard phase allows")
            continue
        out.append(_Range(_first_true(lambda phi: value**2 < largest_product(phi) + slack), 1.0, f"{what} (positive definiteness)", ""))
    return out


def _bulk_check(given: Mapping[str, float], hard: Phase, soft: Phase, slack: float) -> list[_Range | str]:
    """Hashin–Shtrikman bounds on the Voigt-average bulk modulus, when all six normal constants are given."""
    if any(n not in given for n in NORMAL_INDEX):
        return []
    k_v = (given["C11"] + given["C22"] + given["C33"] + 2 * (given["C12"] + given["C13"] + given["C23"])) / 9
    return [
        _fraction_range(
            f"the bulk modulus K_V = {k_v:.3g} GPa",
            lambda phi: k_v <= hashin_shtrikman_bulk(hard, soft, phi)[1] + slack,
            lambda phi: k_v >= hashin_shtrikman_bulk(hard, soft, phi)[0] - slack,
            "Hashin–Shtrikman upper bound",
            "Hashin–Shtrikman lower bound",
        )
    ]


def physical_checks(
    given: Mapping[str, float], hard: Phase = DEFAULT_HARD, soft: Phase = DEFAULT_SOFT
) -> tuple[list[str], tuple[float, float] | None]:
    """The rigorous two-phase conditions (module docstring) on the given normal constants.

    Parameters
    ----------
    given : mapping name -> GPa
        Constrained constants; names other than C11…C23 are not checked.
    hard, soft : Phase
        The phases; the hard one must be stiffer in bulk and shear modulus.

    Returns
    -------
    reasons : list of str
        One line per failed condition; empty when all hold.
    fractions : (float, float) or None
        The hard-phase fractions they allow together (None when they fail).

    Examples
    --------
    >>> physical_checks({"C11": 150.0, "C22": 5.0})[0]  # doctest: +ELLIPSIS
    ['C11 = 150 GPa (Voigt bound) needs a hard-phase fraction ≥ 0.93, but C22 = 5 GPa (Reuss bound) allows at most 0...']
    """
    if hard.bulk < soft.bulk or hard.mu < soft.mu:
        raise PhysicsError("the hard phase must have the larger bulk and shear moduli (well-ordered phases)")
    slack = SLACK * float(hard.stiffness()[0, 0])
    normal = {n: float(v) for n, v in given.items() if n in NORMAL_INDEX}
    checks = _block_checks(normal, hard, soft, slack) + _lone_off_diagonal_checks(normal, hard, soft, slack) + _bulk_check(normal, hard, soft, slack)
    reasons = list(dict.fromkeys(c for c in checks if isinstance(c, str)))  # a pair's failure shows in the triple too
    ranges = [c for c in checks if isinstance(c, _Range)]
    if reasons:
        return reasons, None
    if not ranges:
        return [], (0.0, 1.0)
    low = max(ranges, key=lambda r: r.low)
    high = min(ranges, key=lambda r: r.high)
    if low.low > high.high:
        return [f"{low.low_because} needs a hard-phase fraction ≥ {low.low:.2f}, but {high.high_because} allows at most {high.high:.2f}"], None
    return [], (low.low, high.high)


# ---------------------------------------------------------------------- data


LOCAL_NEIGHBOURS = 10
"""Structures around the target whose spacing sets the local scale of the cloud."""

LOCAL_FACTOR = 3.0
"""Inside the data: within this many local spacings of a structure (98 % of held-out test structures are, against the training split)."""


def nearest_in_cloud(
    cloud: np.ndarray, queries: np.ndarray, tolerance: float = 0.02
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest cloud point of each query, its distance, and the distance that counts as inside the cloud.

    Distances are the RMS over columns of the log ratios (≈ relative). The
    cloud is denser in some places than others, so "inside" is local:
    ``LOCAL_FACTOR`` times the median nearest-neighbour spacing of the
    query's ``LOCAL_NEIGHBOURS`` nearest cloud points, and at least ``tolerance``.

    Parameters
    ----------
    cloud : (N, m) array
        Positive properties of the data's structures (GPa).
    queries : (Q, m) array
        Positive targets (GPa), the same columns.
    tolerance : float
        Smallest distance that counts as inside.

    Returns
    -------
    rows, distances, thresholds : (Q,) arrays

    Examples
    --------
    >>> cloud = np.array([[10.0], [11.0], [12.0]])
    >>> rows, d, inside = nearest_in_cloud(cloud, np.array([[11.0], [20.0]]))
    >>> rows.tolist(), d.round(3).tolist(), inside.round(3).tolist()
    ([1, 2], [0.0, 0.511], [0.261, 0.261])
    """
    from scipy.spatial import cKDTree

    scale = 1 / math.sqrt(cloud.shape[1])  # Euclidean distance of scaled logs = RMS of the log ratios
    x = np.log(cloud) * scale
    tree = cKDTree(x)
    spacing = tree.query(x, k=[2])[0][:, 0] if len(x) > 1 else np.zeros(1)
    distance, index = tree.query(np.log(queries) * scale, k=list(range(1, min(LOCAL_NEIGHBOURS, len(x)) + 1)))
    threshold = np.maximum(tolerance, LOCAL_FACTOR * np.median(spacing[index], axis=1))
    return index[:, 0], distance[:, 0], threshold


def assess(
    target: Target,
    *,
    reference: np.ndarray | None = None,
    hard: Phase = DEFAULT_HARD,
    soft: Phase = DEFAULT_SOFT,
    tolerance: float = 0.02,
) -> Feasibility:
    """Whether a target is achievable, outside the data, or impossible (module docstring).

    Parameters
    ----------
    target : Target
        From :func:`~vaereg_core.inverse.targets.parse_target`; free constants are not constrained.
    reference : (N, P) array, optional
        The property table (GPa), columns in ``target.names`` order. Without
        it the data check is not made and a physically possible target is
        reported "outside the data" (not known to be achievable).
    hard, soft : Phase
        The phases (see :func:`phases_of` for a dataset's).
    tolerance : float
        Smallest distance (RMS log ratio) that counts as inside the data.
    """
    given = target.as_dict()
    reasons, fractions = physical_checks(given, hard, soft)
    if reference is None:
        note = "no property table given: whether this material's structures reach it is not known"
        return Feasibility(IMPOSSIBLE if reasons else OUTSIDE, reasons + [note], fractions=fractions)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[1] != len(target.names) or len(ref) == 0 or not np.all(ref > 0):
        raise ValueError(f"reference must be a non-empty (N, {len(target.names)}) table of positive stiffnesses in GPa")
    mask = target.mask
    rows, distances, thresholds = nearest_in_cloud(ref[:, mask], target.values[mask][None], tolerance)
    row, distance, threshold = int(rows[0]), float(distances[0]), float(thresholds[0])
    found = dict(
        nearest={n: float(ref[row, i]) for i, n in enumerate(target.names) if mask[i]},
        distance=distance,
        threshold=threshold,
        nearest_row=row,
        nearest_constants={n: float(v) for n, v in zip(target.names, ref[row])},
        fractions=fractions,
    )
    where = (
        f"{100 * distance:.1f} % (RMS over {', '.join(given)}) from the nearest of {len(ref)} dataset structures; "
        f"inside the data is within {100 * threshold:.1f} % here"
    )
    if reasons:
        return Feasibility(IMPOSSIBLE, reasons + [where], **found)
    if distance > threshold:
        beyond = [f"{', '.join(target.extrapolated)} outside the data's range"] if target.extrapolated else []
        return Feasibility(OUTSIDE, beyond + [where], **found)
    return Feasibility(ACHIEVABLE, [where], **found)


def phases_of(solver: Mapping) -> tuple[Phase, Phase]:
    """The (hard, soft) phases a dataset's solver settings name (``{"hard": {"E", "nu"}, ...}``), else the defaults.

    Examples
    --------
    >>> hard, soft = phases_of({"hard": {"E": 100.0, "nu": 0.25}})
    >>> round(hard.young, 6), soft == DEFAULT_SOFT
    (100.0, True)
    """
    def phase(key: str, default: Phase) -> Phase:
        spec = solver.get(key)
        return Phase.from_young(float(spec["E"]), float(spec["nu"])) if isinstance(spec, Mapping) else default

    return phase("hard", DEFAULT_HARD), phase("soft", DEFAULT_SOFT)


def default_target(table: DatasetTable, names: Sequence[str] | None = None, split: str = "test") -> dict[str, float]:
    """A typical real structure's constants: the ``split`` structure closest to the cloud's median in log space.

    A per-constant median is no structure's combination; this one is a real
    structure's, so it is achievable by construction.

    Parameters
    ----------
    table : DatasetTable
        The property table.
    names : sequence of str, optional
        The constants wanted (default all six), in this order.
    split : {"train", "val", "test"}
        Split the structure is drawn from.

    Raises
    ------
    ValueError
        The table has no structure in ``split``.
    """
    names = tuple(PROPERTY_NAMES if names is None else names)
    columns = [PROPERTY_NAMES.index(n) for n in names]
    rows = table.rows(split)
    if rows.size == 0:
        raise ValueError(f"the property table has no {split} structures")
    log = np.log(np.asarray(table.properties, dtype=np.float64)[:, columns])
    median = np.median(log, axis=0)
    best = rows[int(np.argmin(np.sum((log[rows] - median) ** 2, axis=1)))]
    return {n: float(table.properties[best, c]) for n, c in zip(names, columns)}
