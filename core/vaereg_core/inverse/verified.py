"""Physics-verified inverse design: the network proposes, the FFT solver decides.

A structure is only ever scored by what the solver computes for it. The model
supplies the places to look — its conditional prior's components and samples
for the target — and the moves between them; the solver's own sensitivities
supply the direction. One chain starts from each prior component, so
different morphologies (the multimodal prior's point) are explored side by
side. Each solve (at the loop tolerance, 1e-3: the constants move by ~2e-5
relative against 1e-4, shared/FACTS-physics.md) also gives every voxel's
estimated effect on every constant (:mod:`vaereg_core.physics.sensitivity`),
and a chain moves in four ways, each confirmed by the solver:

- *polishing* (:mod:`~vaereg_core.inverse.voxel_polish`): the interface voxels
  whose flips, by those estimates, add up to the residual are flipped — a few
  hundred of 51³ per solve, the morphology stays — until the solver sees no gain;
- *straightening* (:func:`~vaereg_core.inverse.voxel_polish.straighten`): when
  polishing has stalled with most of the error in one diagonal constant that
  falls short, a majority vote along that axis moves stiffness into it from
  the other directions, and the result is polished again (flips move every
  constant together and cannot fix that alone);
- *trust-region steps* in latent space: the estimates carried through the
  decoder give the Jacobian of log C in z; the step minimises the linearised
  error within a radius that grows on success and shrinks on failure, its
  scale corrected from each step's outcome;
- *random moves* ranked by the model's forward ensemble (its own regressor
  when it has none; one pass a network), corrected at the chain's
  state by the solver's residual there (once the trust radius has shrunk to
  nothing, or with ``search="random"``).

A polished structure is no decoder output (``changed_voxels`` says by how
much), so latent moves start from the chain's best decoded state, which is
polished again once latent moves have improved it enough.

When the budget is spent or the goal is met, up to N designs are picked from
every solved state, best first, each differing from those already picked in
morphology — the relative distance between their two-point autocorrelations
(:func:`morphology_distance`) at least ``min_distance`` — and each is solved
again at the final tolerance (the validation tolerance): those are the
reported constants.

>>> result = design(model, parse_target("C11=30", model.property_names))   # doctest: +SKIP
>>> result.designs[0].mean_error                                           # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from vaereg_core.descriptors import two_point_autocorrelation
from vaereg_core.errors import Cancelled
from vaereg_core.inverse.targets import Target, TargetError
from vaereg_core.inverse.voxel_polish import polish_flips, straighten
from vaereg_core.physics import homogenize_batch, load_cases_for
from vaereg_core.settings.fields import check_settings, setting
from vaereg_core.settings.solver import VALIDATION_TOL
from vaereg_core.symmetry import CONSTANT_AXES, CubeSymmetry

MORPHOLOGY_LAGS = 12  # voxels per axis over which two structures' autocorrelations are compared


@dataclass(frozen=True)
class DesignSettings:
    """How a verified design run spends its budget.

    Parameters
    ----------
    seconds : float
        Wall-time budget, final solves included.
    alternatives : int
        Designs to return, differing in morphology.
    goal : float
        Stop once the best verified mean relative error is at most this (and
        every alternative's chain has reached it or stalled).
    samples_per_component : int
        Prior samples solved per component before the chains start.
    proposals : int
        Latent moves ranked by the surrogate per chain step.
    checks : int
        Of those, how many the solver checks per step.
    step : float
        First move size, in units of the component's prior standard deviation.
    min_distance : float
        Smallest morphology distance between two reported designs.
    loop_tol, final_tol : float
        Solver tolerances inside the loop and for the reported designs.
    search : {"gradient", "random"}
        ``"gradient"``: each chain steps to the minimum of its linearised error
        within a trust radius (the Jacobian from the solver's voxel
        sensitivities through the decoder), falling back to random moves when
        the radius has shrunk to nothing; ``"random"``: random moves only.
    polish : int
        At most this many solves each time a chain's best decoded structure is
        polished (interface voxels flipped as the solver's flip estimates say,
        :mod:`~vaereg_core.inverse.voxel_polish`); a polishing ends sooner when
        the solver rejects two polishes in a row. 0 reports decoder outputs only.
    seed : int
    max_solves : int, optional
        Also stop after this many loop solves: a budget that does not depend on
        the machine's speed, so that a seed gives the same designs anywhere.
    """

    seconds: float = setting(60.0, help="wall-time budget, the final solves included", unit="s", minimum=0.0, open_minimum=True,
                             maximum=86_400.0, step=5.0, label="Budget")
    alternatives: int = setting(1, help="designs of different morphology to return", minimum=1, maximum=16)
    goal: float = setting(0.01, help="stop once the verified mean relative error is at most this", minimum=0.0, maximum=1.0,
                          open_minimum=True, step=0.005, decimals=3)
    samples_per_component: int = setting(2, help="prior samples solved per component before the chains start", minimum=0, flag=None)
    proposals: int = setting(12, help="latent moves ranked by the surrogate per step", minimum=1)
    checks: int = setting(2, help="ranked moves the solver checks per step", minimum=1, flag=None)
    step: float = setting(0.5, help="first move size (prior standard deviations)", minimum=0.0, open_minimum=True, flag=None)
    min_distance: float = setting(0.15, help="smallest morphology distance between two designs", minimum=0.0, flag=None)
    loop_tol: float = setting(1e-3, help="solver tolerance inside the loop", minimum=0.0, maximum=1.0, open_minimum=True,
                              open_maximum=True, flag=None)
    final_tol: float = setting(VALIDATION_TOL, help="solver tolerance of the reported designs", minimum=0.0, maximum=1.0,
                               open_minimum=True, open_maximum=True, flag=None)
    search: str = setting("gradient", help="how chains move: trust-region steps from the solver's voxel sensitivities, "
                          "or random moves ranked by the regressor", choices=("gradient", "random"))
    polish: int = setting(40, help="most voxel-polish solves per polishing of a chain; it stops sooner once the solver "
                          "rejects two polishes in a row (0: designs are the decoder's structures)", minimum=0, maximum=200)
    seed: int = setting(0, help="seed of the prior samples and moves", minimum=0)
    max_solves: int | None = setting(None, help="also stop after this many loop solves (a machine-independent budget)",
                                     minimum=1, flag=None)

    def __post_init__(self) -> None:
        check_settings(self, "design")


@dataclass
class VerifiedState:
    """A decoded structure the solver has computed."""

    z: np.ndarray
    voxels: np.ndarray
    constants: np.ndarray
    error: float
    chain: int
    origin: str
    solver_call: int
    seconds: float
    #: Estimated change of each constrained constant per voxel made hard, (P', nx, ny, nz);
    #: kept only while the state is its chain's current one (it is 3 MB at 51³).
    flip_change: np.ndarray | None = field(default=None, repr=False)
    #: Voxels changed by polishing from the decoded structure of ``z`` (0: the decoder's own).
    changed_voxels: int = 0


@dataclass
class Design:
    """A reported design: a solved state re-solved at the final tolerance."""

    state: VerifiedState
    constants: dict[str, float]
    errors: dict[str, float]
    mean_error: float
    solver: dict
    distance_to_best: float

    def to_dict(self) -> dict:
        """JSON form (without the voxels; ``file`` is added by whoever writes them)."""
        return {
            "verified_GPa": self.constants,
            "errors": self.errors,
            "mean_error": self.mean_error,
            "solver_calls": self.state.solver_call,
            "seconds": round(self.state.seconds, 2),
            "latent": [float(v) for v in self.state.z],
            "chain": self.state.chain,
            "changed_voxels": self.state.changed_voxels,
            "origin": self.state.origin,
            "volume_fraction": float(self.state.voxels.mean()),
            "morphology_distance_to_best": round(self.distance_to_best, 4),
            "solver": self.solver,
        }


@dataclass
class DesignResult:
    """Everything a run found: designs best first, the trajectory, and what was spent."""

    target: Target
    designs: list[Design]
    trajectory: list[dict]
    solver_calls: int
    seconds: float
    settings: DesignSettings
    cancelled: bool = False
    states: list[VerifiedState] = field(default_factory=list)

    @property
    def met(self) -> bool:
        """Whether the best design's verified error is within the goal."""
        return bool(self.designs) and self.designs[0].mean_error <= self.settings.goal

    def to_dict(self) -> dict:
        return {
            "target_GPa": self.target.as_dict(),
            "goal": self.settings.goal,
            "met": self.met,
            "cancelled": self.cancelled,
            "solver_calls": self.solver_calls,
            "seconds": round(self.seconds, 2),
            "settings": asdict(self.settings),
            "designs": [d.to_dict() for d in self.designs],
            "trajectory": self.trajectory,
        }


def morphology_distance(a: np.ndarray, b: np.ndarray, lags: int = MORPHOLOGY_LAGS) -> float:
    """Relative L2 distance between two structures' two-point autocorrelations over lags < ``lags`` per axis.

    0 for the same structure, or one shifted periodically (S2 is translation
    invariant); needles along x and plates normal to x of the same volume
    fraction are far apart.

    >>> x = np.zeros((8, 8, 8), np.uint8); x[:, :2, :2] = 1
    >>> round(morphology_distance(x, np.roll(x, 3, axis=1)), 12)
    0.0
    >>> morphology_distance(x, x.transpose(1, 0, 2)) > 0.5
    True
    """
    window = tuple(slice(0, lags) for _ in range(3))
    sa = two_point_autocorrelation(a, centered=False)[window]
    sb = two_point_autocorrelation(b, centered=False)[window]
    return float(np.linalg.norm(sa - sb) / max(np.linalg.norm(sa), 1e-12))


MIN_RADIUS, MAX_RADIUS = 0.02, 2.0  # trust radii, in prior standard deviations
# The solver changes by ~2.5x the linearised change of a step (the flip estimate treats voxels as
# isolated spheres; the decoder's soft output moves less than its thresholded one): measured on the
# shipped model, and refined per chain from each step's outcome (:func:`_updated_gain`).
FIRST_GAIN = 2.0
FIRST_POLISH_GAIN = 1.4  # single voxels flipped outright change ~1.4x their flip estimates (tests/test_physics_sensitivity.py)
# Share of the voxels one polish may flip: halved after a polish the solver rejects, grown after one it
# confirms (the estimates are first order; flips that sit together interact).
FIRST_POLISH_SHARE, MIN_POLISH_SHARE, MAX_POLISH_SHARE = 0.005, 0.001, 0.008
REPOLISH = 0.8  # polish a chain's base again once its error has fallen below this share of the last polished one's
# Polishing moves all constants together; when one diagonal constant's shortfall is at least this share of a
# chain's summed error after polishing, its struts are straightened along that axis and polished again.
STRAIGHTEN_SHARE = 0.5
# Voxels of the majority vote along the axis (voxel_polish.straighten), tried in this order on one state
# while the ones before did not give the chain a better state.
STRAIGHTEN_LENGTHS = (5, 3, 9)
DIAGONAL_AXES = {n: a for n, (a, b) in CONSTANT_AXES.items() if a == b}  # C11 -> 0, C22 -> 1, C33 -> 2


def latent_jacobian(model, state: VerifiedState, names: list[str]) -> np.ndarray:
    """d log C / dz of a solved state's constrained constants, (P', D).

    The solver's estimate of each voxel's flip (:func:`~vaereg_core.physics.sensitivity.phase_flip_change`)
    carried through the decoder's soft output: a first-order model of how the
    decoded structure's constants move with the latent vector.
    """
    values = np.array([state.constants[i] for i, n in enumerate(model.property_names) if n in names])
    return model.decode_vjp(state.z, state.flip_change) / values[:, None]


def trust_region_step(jacobian: np.ndarray, residual: np.ndarray, radius: float, sigma: np.ndarray) -> np.ndarray:
    """The latent move that best cancels ``residual`` to first order within ``radius`` prior standard deviations.

    Minimises ``|J dz - r|`` over ``|dz / sigma| <= radius`` (Levenberg–Marquardt:
    the damping found by bisection on the step length; the least-norm
    solution when it is shorter).

    >>> J = np.array([[2.0, 0.0]]); sigma = np.ones(2)
    >>> trust_region_step(J, np.array([1.0]), 10.0, sigma)
    array([0.5, 0. ])
    >>> float(np.linalg.norm(trust_region_step(J, np.array([1.0]), 0.1, sigma)))
    0.1
    """
    u, singular, vt = np.linalg.svd(jacobian * sigma[None], full_matrices=False)
    b = u.T @ residual
    keep = singular > singular.max() * 1e-9

    def step(damping: float) -> np.ndarray:
        return vt[keep].T @ (singular[keep] * b[keep] / (singular[keep] ** 2 + damping))

    x = step(0.0)
    if np.linalg.norm(x) > radius:
        low, high = 0.0, float(singular.max() ** 2 * np.linalg.norm(b) / radius + 1e-30)
        for _ in range(60):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if np.linalg.norm(step(middle)) > radius else (low, middle)
        x = step(high)
        x *= radius / max(np.linalg.norm(x), 1e-300)
    return x * sigma


def _updated_gain(gain: float, predicted: np.ndarray, actual: np.ndarray) -> float:
    """A chain's Jacobian scale after a step: the geometric mean of the old one and the step's own least-squares ratio, in [0.5, 8].

    >>> _updated_gain(2.0, np.array([0.01, -0.02]), np.array([0.04, -0.08]))
    2.8284271247461903
    """
    power = float(predicted @ predicted)
    observed = float(actual @ predicted) / power if power > 0 else gain
    return float(np.clip(np.sqrt(gain * max(observed, 0.5)), 0.5, 8.0))


def _chains_to_step(best_errors: dict[int, float], alternatives: int) -> list[int]:
    """The chains worth a step: all of them for several alternatives; for one, those near the best.

    >>> _chains_to_step({0: 0.05, 1: 0.03, 2: 0.035}, 1)
    [1, 2]
    """
    if alternatives > 1:
        return sorted(best_errors)
    best = min(best_errors.values())
    return sorted(k for k, error in best_errors.items() if error <= 1.25 * best)


class _Solver:
    """Counts and times solver calls; the loop's only source of properties."""

    def __init__(self, target: Target, cancel: Callable[[], bool] | None, options: dict, *, sensitivity: bool) -> None:
        self.target, self.cancel, self.options, self.calls = target, cancel, options, 0
        self.case_seconds: list[float] = []
        constrained = [n for n, m in zip(target.names, target.mask) if m]
        self.sensitivity = sensitivity
        # Inside the loop only the load cases the constrained constants need (C11 alone: one of
        # three); a sensitivity of C_ij needs both cases i and j.
        self.loop_cases = (tuple(sorted({int(d) - 1 for n in constrained for d in n[1:3]})) if sensitivity
                           else load_cases_for(constrained))

    def __call__(self, voxels: np.ndarray, tol: float, *, every_case: bool = False) -> list:
        cases = None if every_case else self.loop_cases
        started = time.perf_counter()
        results = homogenize_batch(voxels, tol=tol, cancel=self.cancel, load_cases=cases,
                                   sensitivity=self.sensitivity and not every_case, **{"dtype": "float32", **self.options})
        if not every_case:
            self.case_seconds.append((time.perf_counter() - started) / (len(voxels) * len(self.loop_cases)))
        self.calls += len(voxels)
        return results

    def final_seconds(self, designs: int) -> float:
        """Time to keep for the final solves: all three cases per design at the final tolerance.

        From this machine's measured time per load case in the loop (×1.3: the final
        tolerance takes ~20 % more iterations); 2.5 s per design before the first solve.
        """
        if not self.case_seconds:
            return 2.5 * designs
        return 1.3 * 3 * float(np.median(self.case_seconds)) * designs

    def constants(self, results) -> np.ndarray:
        """(N, P) GPa in the target's order; NaN for constants the solved cases do not give."""
        return np.array([[r.constants.get(n, np.nan) for n in self.target.names] for r in results])


def design(
    model,
    target: Target,
    settings: DesignSettings = DesignSettings(),
    *,
    reference: np.ndarray | None = None,
    progress: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    solver_options: dict | None = None,
) -> DesignResult:
    """Design structures whose solver-computed constants meet ``target``.

    Parameters
    ----------
    model : LoadedModel
        A VAE-Regression model (its prior, decoder and regressor).
    target : Target
        The target; free constants stay free (the generator gets them from
        ``reference``, the training property table).
    settings : DesignSettings
    progress : callable, optional
        Called after every solver step with the trajectory's latest entry.
    cancel : callable, optional
        Polled between steps and inside the solver; the run then ends with what
        it has verified (no final solves), ``cancelled`` set.
    solver_options : dict, optional
        Passed to :func:`~vaereg_core.physics.homogenize_batch` (backend, device; the phases
        default to the model's material).
    """
    if not model.is_generative:
        raise TargetError("verified design needs a VAE-Regression model: a regression-only model has no prior to propose from")
    if tuple(target.names) != tuple(model.property_names):
        raise TargetError(f"the target is for {', '.join(target.names)}, the model predicts {', '.join(model.property_names)}")
    run = _Run(model, target, settings, reference, progress, cancel, {**model.material.solver_options(), **(solver_options or {})})
    try:
        run.start()
        run.search()
    except Cancelled:
        run.cancelled = True
    designs = [] if run.cancelled or not run.states else _final_designs(run.states, target, settings, run.solve)
    return DesignResult(target, designs, run.trajectory, run.solve.calls, run.elapsed(), settings, run.cancelled, run.states)


class _Run:
    """One design run: the chains, their moves, and everything the solver has checked.

    Chain k starts at prior component k. Its *current* state is the best
    decoded structure it has reached, the base of its latent moves (trust-region
    steps on the solver-linearised error, or random moves ranked by the
    corrected regressor); polishing (:mod:`~vaereg_core.inverse.voxel_polish`)
    refines a copy of it voxel by voxel, and those polished states compete for
    the reported designs but are never the base of a latent move (their voxels
    are no decoder output).
    """

    def __init__(self, model, target: Target, settings: DesignSettings, reference, progress, cancel, solver_options: dict) -> None:
        from vaereg_core.inverse.design import complete_target

        self.model, self.target, self.settings = model, target, settings
        self.progress, self.cancel = progress, cancel
        self.started = time.perf_counter()
        self.rng = np.random.default_rng(settings.seed)
        self.solve = _Solver(target, cancel, solver_options, sensitivity=settings.search == "gradient" or settings.polish > 0)
        full = complete_target(target, reference)
        self.pi, self.mu, self.sigma = model.prior_components(dict(zip(model.property_names, map(float, full))))
        self.constrained = [n for n, m in zip(target.names, target.mask) if m]
        self.states: list[VerifiedState] = []
        self.trajectory: list[dict] = []
        self.seen: set[bytes] = set()
        self.cancelled = False
        self.current: dict[int, VerifiedState] = {}
        self.polished_at: dict[int, float] = {}  # chain -> error of the decoded state it last polished
        self.straightened: dict[int, tuple[int, int]] = {}  # chain -> (solver call of the state it last straightened, lengths tried)
        self.polish_gain = FIRST_POLISH_GAIN
        self.polish_share = FIRST_POLISH_SHARE
        # Per chain, set when the search starts: the regressor's correction, the random-move size, the
        # trust radius, the latent Jacobian and its scale.
        self.residual: dict[int, np.ndarray] = {}
        self.step: dict[int, float] = {}
        self.radius: dict[int, float] = {}
        self.jacobian: dict[int, np.ndarray] = {}
        self.gain: dict[int, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def budget_left(self) -> bool:
        settings = self.settings
        return self.elapsed() < settings.seconds - self.solve.final_seconds(settings.alternatives) and (
            settings.max_solves is None or self.solve.calls < settings.max_solves
        )

    def chain_best(self, k: int) -> float:
        return self.chain_best_state(k).error

    def chain_best_state(self, k: int) -> VerifiedState:
        """Chain k's best solved state (decoded, polished or straightened)."""
        return min((s for s in self.states if s.chain == k), key=lambda s: s.error)

    def goal_met(self) -> bool:
        met = sum(self.chain_best(k) <= self.settings.goal for k in self.current)
        return met >= min(self.settings.alternatives, len(self.current))

    def verify(self, z: np.ndarray, voxels: np.ndarray, chain: list[int], origin: list[str]) -> list[VerifiedState]:
        results = self.solve(voxels, self.settings.loop_tol)
        constants = self.solve.constants(results)
        new = []
        for i, c in enumerate(constants):
            state = VerifiedState(z[i], voxels[i], c, float(self.target.relative_error(c)), chain[i], origin[i],
                                  self.solve.calls - len(voxels) + i + 1, self.elapsed())
            flips = results[i].extra.get("flip_change")
            if flips is not None:
                state.flip_change = np.stack([flips[n] for n in self.constrained])
            self.states.append(state)
            new.append(state)
        best = min(self.states, key=lambda s: s.error)
        self.trajectory.append({"seconds": round(self.elapsed(), 3), "solver_calls": self.solve.calls, "best_error": best.error,
                                "step_errors": [s.error for s in new], "chain_of_best": best.chain})
        if self.progress is not None:
            self.progress(self.trajectory[-1])
        return new

    def surrogate(self, voxels: np.ndarray) -> np.ndarray:
        """log C (N, P) by the model's forward ensemble (one pass a network) or, without one, its own regressor."""
        if self.model.forward is not None:
            return self.model.forward.predict_log(voxels, symmetries="identity")[0]
        return self.model.predict_transformed(voxels, (CubeSymmetry(),))[0][:, 0]

    def correction(self, state: VerifiedState) -> np.ndarray:
        # The solver's residual at a checked state; 0 for constants it did not compute (free ones).
        return np.nan_to_num(np.log(state.constants) - self.surrogate(state.voxels[None])[0])

    def start(self) -> None:
        """Every component's mean, then a few samples of each while the budget lasts."""
        settings, mu, sigma = self.settings, self.mu, self.sigma
        z0, chains, origins, means = [], [], [], []
        for k in range(len(self.pi)):
            means.append(len(z0))
            z0.append(mu[k])
            chains.append(k)
            origins.append(f"k{k + 1}")
            for s in range(settings.samples_per_component):
                z0.append(mu[k] + sigma[k] * self.rng.standard_normal(mu.shape[1]))
                chains.append(k)
                origins.append(f"k{k + 1}-s{s + 1}")
        z0 = np.array(z0)
        voxels0 = self.model.decode(z0, binary=True)
        for v in voxels0:
            self.seen.add(v.tobytes())
        self.verify(z0[means], voxels0[means], [chains[i] for i in means], [origins[i] for i in means])
        for i in (i for i in range(len(z0)) if i not in means):
            if not self.budget_left():
                break
            self.verify(z0[i : i + 1], voxels0[i : i + 1], [chains[i]], [origins[i]])
        self.current = {k: min((s for s in self.states if s.chain == k), key=lambda s: s.error) for k in range(len(self.pi))}
        for state in self.states:
            if state is not self.current[state.chain]:
                state.flip_change = None

    def search(self) -> None:
        """Polish and move the chains until the goal is met or the budget is spent."""
        settings, current = self.settings, self.current
        self.residual.update({k: self.correction(current[k]) for k in current})
        self.step.update(dict.fromkeys(current, settings.step))
        self.radius.update(dict.fromkeys(current, settings.step))
        if settings.search == "gradient":
            self.jacobian.update({k: latent_jacobian(self.model, current[k], self.constrained) for k in current})
        self.gain.update(dict.fromkeys(current, FIRST_GAIN))
        active = set(current)
        while active and self.budget_left():
            if self.cancel is not None and self.cancel():
                raise Cancelled()
            if self.goal_met():
                break
            for k in _chains_to_step({j: self.chain_best(j) for j in active}, settings.alternatives):
                if self.worth_polishing(k):
                    self.polish(k)
                elif (axis := self.axis_to_straighten(k)) is not None:
                    self.straighten(k, axis)
                elif k in self.jacobian and self.radius[k] >= MIN_RADIUS:
                    self.trust_region_move(k)
                else:
                    self.random_move(k)
                if self.chain_best(k) <= settings.goal:
                    active.discard(k)
                if not self.budget_left() or self.goal_met():
                    break

    def worth_polishing(self, k: int) -> bool:
        """Whether chain k's base is to be polished now: at first, then once latent moves improved it by a fifth."""
        return bool(self.settings.polish) and self.current[k].error < REPOLISH * self.polished_at.get(k, np.inf)

    def axis_to_straighten(self, k: int) -> int | None:
        """The axis along which chain k's best state falls short, if that shortfall is most of its error and a straightening length is left to try."""
        best, target = self.chain_best_state(k), self.target
        if not self.settings.polish or best.error <= self.settings.goal or self.lengths_tried(k) == len(STRAIGHTEN_LENGTHS):
            return None
        relative = (best.constants - target.values) / target.values
        shortfall = {axis: -relative[i] for i, (n, m) in enumerate(zip(target.names, target.mask)) if m and (axis := DIAGONAL_AXES.get(n)) is not None}
        if not shortfall:
            return None
        axis = max(shortfall, key=shortfall.get)
        return axis if shortfall[axis] >= STRAIGHTEN_SHARE * best.error * int(target.mask.sum()) else None

    def lengths_tried(self, k: int) -> int:
        """How many straightening lengths chain k's best state has had."""
        state, tried = self.straightened.get(k, (None, 0))
        return tried if state == self.chain_best_state(k).solver_call else 0

    def straighten(self, k: int, axis: int) -> None:
        """Straighten chain k's best state along ``axis`` (:func:`~vaereg_core.inverse.voxel_polish.straighten`) with the next length and polish the result."""
        best, tried = self.chain_best_state(k), self.lengths_tried(k)
        self.straightened[k] = (best.solver_call, tried + 1)
        voxels = straighten(best.voxels, axis, STRAIGHTEN_LENGTHS[tried])
        if voxels.tobytes() in self.seen or not self.budget_left():
            return
        self.seen.add(voxels.tobytes())
        # The decoder's structure of best.z is a solved state already (the base it was polished from).
        decoded = next((s.voxels for s in self.states if s.changed_voxels == 0 and np.array_equal(s.z, best.z)), None)
        if decoded is None:
            decoded = self.model.decode(best.z[None], binary=True)[0]
        new = self.verify(best.z[None], voxels[None], [k], [f"k{k + 1} straightened"])[0]
        new.changed_voxels = int(np.count_nonzero(voxels != decoded))
        self.polish(k, start=new, decoded=decoded)

    def accept(self, k: int, state: VerifiedState) -> None:
        """Make ``state`` chain k's base for latent moves."""
        self.current[k].flip_change = None
        self.current[k] = state
        self.residual[k] = self.correction(state)
        if k in self.jacobian:
            self.jacobian[k] = latent_jacobian(self.model, state, self.constrained)

    def trust_region_move(self, k: int) -> None:
        """A step to the minimum of the linearised error within the chain's trust radius; the solver judges it."""
        base, target = self.current[k], self.target
        move = base.z + trust_region_step(self.gain[k] * self.jacobian[k], np.log(target.values[target.mask] / base.constants[target.mask]),
                                          self.radius[k], self.sigma[k])
        decoded = self.model.decode(move[None], binary=True)
        if decoded[0].tobytes() in self.seen:
            # Too small a move to change a voxel, or back to a solved state: reach further,
            # and past the largest radius leave the chain to random moves.
            self.radius[k] = self.radius[k] * 2.0 if self.radius[k] < MAX_RADIUS else 0.0
            return
        self.seen.add(decoded[0].tobytes())
        new = self.verify(move[None], decoded, [k], [f"k{k + 1} step"])[0]
        self.gain[k] = _updated_gain(self.gain[k], self.jacobian[k] @ (move - base.z),
                                     np.log(new.constants[target.mask] / base.constants[target.mask]))
        if new.error < base.error:
            self.accept(k, new)
            self.radius[k] = min(self.radius[k] * 1.5, MAX_RADIUS)
        else:
            new.flip_change = None
            self.radius[k] *= 0.4

    def random_move(self, k: int) -> None:
        """Random latent moves around the chain's base, the best few by the corrected regressor solved."""
        settings, base = self.settings, self.current[k]
        moves = base.z + self.step[k] * self.sigma[k] * self.rng.standard_normal((settings.proposals, self.mu.shape[1]))
        decoded = self.model.decode(moves, binary=True)
        fresh = [i for i, v in enumerate(decoded) if v.tobytes() not in self.seen]
        if not fresh:
            self.step[k] *= 1.5  # every move decodes to a structure already solved: look further
            return
        predicted = np.exp(self.surrogate(decoded[fresh]) + self.residual[k])
        ranked = [fresh[i] for i in np.argsort(self.target.relative_error(predicted), kind="stable")[: settings.checks]]
        for i in ranked:
            self.seen.add(decoded[i].tobytes())
        new = self.verify(moves[ranked], decoded[ranked], [k] * len(ranked), [f"k{k + 1} move"] * len(ranked))
        best = min(new, key=lambda s: s.error)
        for state in new:
            if state is not best or best.error >= base.error:
                state.flip_change = None
        if best.error < base.error:
            self.accept(k, best)
            self.step[k] = min(self.step[k] * 1.3, 2.0)
            self.radius[k] = settings.step  # a new place: the linearisation is worth trying again
        else:
            self.step[k] = max(self.step[k] * 0.7, 0.02)

    def polish(self, k: int, start: VerifiedState | None = None, decoded: np.ndarray | None = None) -> None:
        """Polish chain k's base (or ``start``, whose latent vector decodes to ``decoded``) voxel by voxel while the solver confirms each gain (up to ``settings.polish`` solves)."""
        base, target = (self.current[k] if start is None else start), self.target
        if start is None:
            self.polished_at[k] = base.error
        reference = base.voxels if decoded is None else decoded
        values = target.values[target.mask]
        best, rejected = base, 0
        for _ in range(self.settings.polish):
            if best.error <= self.settings.goal or not self.budget_left():
                break
            wanted = (values - best.constants[target.mask]) / values
            change = best.flip_change / values[:, None, None, None]
            flips = polish_flips(best.voxels, change, wanted / self.polish_gain, max_share=self.polish_share)
            voxels = best.voxels.reshape(-1).copy()
            voxels[flips] ^= 1
            voxels = voxels.reshape(best.voxels.shape)
            if not flips.size or voxels.tobytes() in self.seen:
                break
            self.seen.add(voxels.tobytes())
            new = self.verify(best.z[None], voxels[None], [k], [f"{base.origin} polished"])[0]
            new.changed_voxels = int(np.count_nonzero(voxels != reference))
            predicted = change.reshape(len(values), -1)[:, flips] @ np.where(best.voxels.reshape(-1)[flips] == 1, -1.0, 1.0)
            self.polish_gain = _updated_gain(self.polish_gain, predicted, (new.constants[target.mask] - best.constants[target.mask]) / values)
            if new.error >= best.error:
                new.flip_change = None
                # Fewer flips interact less: one retry with half as many (not below a floor).
                rejected, self.polish_share = rejected + 1, max(0.5 * self.polish_share, MIN_POLISH_SHARE)
                if rejected > 1:
                    break
                continue
            rejected = 0
            self.polish_share = min(1.5 * self.polish_share, MAX_POLISH_SHARE)
            if best is not base:
                best.flip_change = None
            best = new
        if best is not base:
            best.flip_change = None
        if start is not None:
            start.flip_change = None


def _final_designs(states: list[VerifiedState], target: Target, settings: DesignSettings, solve: _Solver) -> list[Design]:
    """Best states of distinct morphology, re-solved at the final tolerance, best first."""
    picked: list[VerifiedState] = []
    for state in sorted(states, key=lambda s: s.error):
        if len(picked) == settings.alternatives:
            break
        if all(morphology_distance(state.voxels, p.voxels) >= settings.min_distance for p in picked):
            picked.append(state)
    results = solve(np.stack([p.voxels for p in picked]), settings.final_tol, every_case=True)
    designs = []
    for state, result in zip(picked, results):
        values = np.array([result.constants[n] for n in target.names])
        errors = {n: float((v - t) / t) for n, v, t, m in zip(target.names, values, target.values, target.mask) if m}
        designs.append(Design(
            state,
            {n: float(v) for n, v in zip(target.names, values)},
            errors,
            float(target.relative_error(values)),
            {"tol": settings.final_tol, "discretization": result.discretization, "backend": result.backend,
             "dtype": result.dtype, "iterations": result.iterations},
            morphology_distance(state.voxels, picked[0].voxels),
        ))
    return sorted(designs, key=lambda d: d.mean_error)
