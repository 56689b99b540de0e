"""Physics-verified inverse design: the network proposes, the FFT solver decides.

A structure is only ever scored by what the solver computes for it. The
model supplies proposals — its conditional prior's components and samples for
the target, then moves in latent space around the best verified state of each
chain — and a cheap surrogate to rank them: the model's own regressor,
corrected at each chain's current state by the solver's residual there
(log C_solver − log C_regressor, so the surrogate is exact where it was last
checked and is trusted only for the direction of a small move). Each step the
best-ranked few proposals are solved (at the loop tolerance, 1e-3: the
constants move by ~2e-5 relative against 1e-4, shared/FACTS-physics.md); a
chain moves only when the solver confirms an improvement, and its step size
grows on success and shrinks on failure. One chain starts from each prior
component, so different morphologies (the multimodal prior's point) are
explored side by side.

When the budget is spent or the goal is met, up to N designs are picked from
every solved state, best first, each differing from those already picked in
morphology — the relative distance between their two-point autocorrelations
(:func:`morphology_distance`) at least ``min_distance`` — and each is solved
again at the final tolerance (1e-4, the dataset's): those are the reported
constants.

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
from vaereg_core.physics import homogenize_batch, load_cases_for
from vaereg_core.settings.fields import check_settings, setting
from vaereg_core.settings.solver import VALIDATION_TOL
from vaereg_core.symmetry import CubeSymmetry

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


class _Solver:
    """Counts and times solver calls; the loop's only source of properties."""

    def __init__(self, target: Target, cancel: Callable[[], bool] | None, options: dict) -> None:
        self.target, self.cancel, self.options, self.calls = target, cancel, options, 0
        self.case_seconds: list[float] = []
        # Inside the loop only the load cases the constrained constants need (C11 alone: one of three).
        self.loop_cases = load_cases_for([n for n, m in zip(target.names, target.mask) if m])

    def __call__(self, voxels: np.ndarray, tol: float, *, every_case: bool = False) -> list:
        cases = None if every_case else self.loop_cases
        started = time.perf_counter()
        results = homogenize_batch(voxels, tol=tol, cancel=self.cancel, load_cases=cases, **{"dtype": "float32", **self.options})
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
    from vaereg_core.inverse.design import complete_target

    if not model.is_generative:
        raise TargetError("verified design needs a VAE-Regression model: a regression-only model has no prior to propose from")
    if tuple(target.names) != tuple(model.property_names):
        raise TargetError(f"the target is for {', '.join(target.names)}, the model predicts {', '.join(model.property_names)}")
    started = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    solve = _Solver(target, cancel, {**model.material.solver_options(), **(solver_options or {})})
    full = complete_target(target, reference)
    pi, mu, sigma = model.prior_components(dict(zip(model.property_names, map(float, full))))
    states: list[VerifiedState] = []
    trajectory: list[dict] = []
    seen: set[bytes] = set()
    cancelled = False

    def elapsed() -> float:
        return time.perf_counter() - started

    def surrogate(voxels: np.ndarray) -> np.ndarray:
        return model.predict_transformed(voxels, (CubeSymmetry(),))[0][:, 0]  # log C, (N, P)

    def budget_left() -> bool:
        return elapsed() < settings.seconds - solve.final_seconds(settings.alternatives) and (
            settings.max_solves is None or solve.calls < settings.max_solves
        )

    def verify(z: np.ndarray, voxels: np.ndarray, chain: list[int], origin: list[str]) -> list[VerifiedState]:
        results = solve(voxels, settings.loop_tol)
        constants = solve.constants(results)
        new = []
        for i, c in enumerate(constants):
            state = VerifiedState(z[i], voxels[i], c, float(target.relative_error(c)), chain[i], origin[i], solve.calls - len(voxels) + i + 1, elapsed())
            states.append(state)
            new.append(state)
        best = min(s.error for s in states)
        trajectory.append({"seconds": round(elapsed(), 3), "solver_calls": solve.calls, "best_error": best,
                           "step_errors": [s.error for s in new], "chain_of_best": min(states, key=lambda s: s.error).chain})
        if progress is not None:
            progress(trajectory[-1])
        return new

    # Start: every component's mean and a few samples, solved.
    z0, chains, origins, means = [], [], [], []
    for k in range(len(pi)):
        means.append(len(z0))
        z0.append(mu[k])
        chains.append(k)
        origins.append(f"k{k + 1}")
        for s in range(settings.samples_per_component):
            z0.append(mu[k] + sigma[k] * rng.standard_normal(mu.shape[1]))
            chains.append(k)
            origins.append(f"k{k + 1}-s{s + 1}")
    z0 = np.array(z0)
    voxels0 = model.decode(z0, binary=True)
    for v in voxels0:
        seen.add(v.tobytes())
    try:
        # The component means first (one chain each), then their samples while the budget lasts.
        verify(z0[means], voxels0[means], [chains[i] for i in means], [origins[i] for i in means])
        for i in (i for i in range(len(z0)) if i not in means):
            if not budget_left():
                break
            verify(z0[i : i + 1], voxels0[i : i + 1], [chains[i]], [origins[i]])
        current = {k: min((s for s in states if s.chain == k), key=lambda s: s.error) for k in range(len(pi))}

        def correction(state: VerifiedState) -> np.ndarray:
            # The solver's residual at a checked state; 0 for constants it did not compute (free ones).
            return np.nan_to_num(np.log(state.constants) - surrogate(state.voxels[None])[0])

        residual = {k: correction(current[k]) for k in current}
        step = dict.fromkeys(current, settings.step)
        active = set(current)
        while active and budget_left():
            if cancel is not None and cancel():
                raise Cancelled()
            if sum(state.error <= settings.goal for state in current.values()) >= min(settings.alternatives, len(current)):
                break
            for k in sorted(active):
                base = current[k]
                moves = base.z + step[k] * sigma[k] * rng.standard_normal((settings.proposals, mu.shape[1]))
                decoded = model.decode(moves, binary=True)
                fresh = [i for i, v in enumerate(decoded) if v.tobytes() not in seen]
                if not fresh:
                    step[k] *= 1.5  # every move decodes to a structure already solved: look further
                    continue
                predicted = np.exp(surrogate(decoded[fresh]) + residual[k])
                ranked = [fresh[i] for i in np.argsort(target.relative_error(predicted), kind="stable")[: settings.checks]]
                for i in ranked:
                    seen.add(decoded[i].tobytes())
                new = verify(moves[ranked], decoded[ranked], [k] * len(ranked), [f"k{k + 1} move"] * len(ranked))
                best_new = min(new, key=lambda s: s.error)
                if best_new.error < base.error:
                    current[k] = best_new
                    residual[k] = correction(best_new)
                    step[k] = min(step[k] * 1.3, 2.0)
                else:
                    step[k] = max(step[k] * 0.7, 0.02)
                if current[k].error <= settings.goal:
                    active.discard(k)
                if not budget_left():
                    break
    except Cancelled:
        cancelled = True
    designs = [] if cancelled or not states else _final_designs(states, target, settings, solve)
    return DesignResult(target, designs, trajectory, solve.calls, elapsed(), settings, cancelled, states)


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
