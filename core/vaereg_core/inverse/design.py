"""Inverse design with a trained model: mixture candidates, physics validation, refinement.

>>> from vaereg_core.inverse.targets import parse_target
>>> from vaereg_core.model.inference import load_model
>>> from vaereg_core.resources import default_model_path
>>> model = load_model(default_model_path(), "cpu")
>>> target = parse_target("C11=35,C22=35,C33=35,C12=10,C13=10,C23=10", model.property_names, model.ranges)
>>> found = candidates(model, target)
>>> found[0].weight >= found[-1].weight
True
>>> check = validate(found[0].voxels, target)
>>> sorted(check.constants) == sorted(model.property_names)
True
>>> refined = refine(model, target, found[0].z, AnnealSettings(iterations=3), validate_best=False)
>>> refined.anneal.best.value <= refined.anneal.trajectory[0].value
True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vaereg_core.descriptors import volume_fraction
from vaereg_core.errors import Cancelled
from vaereg_core.inverse.annealing import AnnealResult, AnnealSettings, anneal_latent
from vaereg_core.inverse.targets import Target, TargetError


@dataclass
class Validation:
    """Physics-validated properties of a structure against a target."""

    constants: dict[str, float]
    relative_error: dict[str, float]
    mean_relative_error: float
    iterations: dict[str, int]
    seconds: float
    solver: dict

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "constants_GPa": self.constants,
            "relative_error": self.relative_error,
            "mean_relative_error": self.mean_relative_error,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "solver": self.solver,
        }


@dataclass
class Candidate:
    """A structure proposed for a target, with where it came from and what it should have."""

    component: int
    weight: float
    z: np.ndarray
    voxels: np.ndarray
    predicted: np.ndarray
    predicted_std: np.ndarray
    property_names: tuple[str, ...]
    kind: str = "mean"
    sample: int = 0
    validation: Validation | None = None

    @property
    def volume_fraction(self) -> float:
        """Hard-phase volume fraction of the binarised structure."""
        return volume_fraction(self.voxels)

    @property
    def label(self) -> str:
        """Short name for lists and file names, e.g. ``k1`` or ``k1-s3``."""
        return f"k{self.component + 1}" + (f"-s{self.sample}" if self.kind == "sample" else "")

    @property
    def is_predicted(self) -> bool:
        """Whether the model's prediction is in (:func:`candidate_structures` leaves it NaN until :func:`predict_candidates`)."""
        return bool(np.all(np.isfinite(self.predicted)))

    def to_dict(self) -> dict:
        """JSON form (without the voxels; without the prediction while it is not in)."""
        prediction = {
            "predicted_GPa": dict(zip(self.property_names, map(float, self.predicted))),
            "predicted_std_GPa": dict(zip(self.property_names, map(float, self.predicted_std))),
        } if self.is_predicted else {}
        return {
            "label": self.label,
            "component": self.component,
            "weight": self.weight,
            "kind": self.kind,
            "sample": self.sample,
            "latent": self.z.tolist(),
            "volume_fraction": self.volume_fraction,
            **prediction,
            "validation": None if self.validation is None else self.validation.to_dict(),
        }


def complete_target(target: Target, reference: np.ndarray | None = None, neighbours: int = 25) -> np.ndarray:
    """A full property vector for the generator, filling the free properties.

    The generator needs every property. A free property gets the median of
    the ``neighbours`` reference structures (the training data's property table,
    (N, P) GPa) whose constrained properties are closest to the target in
    relative terms: a value that real structures with those constrained
    properties have.
    """
    if target.mask.all():
        return target.values.copy()
    if reference is None:
        free = [n for n, m in zip(target.names, target.mask) if not m]
        raise TargetError(f"leaving {', '.join(free)} free needs the training property table; set every property or give the table")
    ref = np.asarray(reference, dtype=np.float64)
    t = target.values[target.mask]
    distance = np.sum(((ref[:, target.mask] - t) / t) ** 2, axis=1)
    nearest = np.argsort(distance, kind="stable")[:neighbours]
    full = target.values.copy()
    full[~target.mask] = np.median(ref[nearest][:, ~target.mask], axis=0)
    return full


def candidates(
    model,
    target: Target,
    *,
    samples_per_component: int = 0,
    seed: int = 0,
    reference: np.ndarray | None = None,
) -> list[Candidate]:
    """Candidates for a target from the model's conditional prior p(z | c*).

    Each mixture component's mean is decoded and binarised at 0.5; optionally
    ``samples_per_component`` more latent vectors are drawn from each component.
    Candidates are ordered by component weight (then mean before samples), and
    carry the regressor's prediction for the decoded structure.

    Parameters
    ----------
    model : vaereg_core.model.inference.LoadedModel
        A VAE-Regression model (Gaussian prior: one component).
    target : Target
        From :func:`~vaereg_core.inverse.targets.parse_target` with the model's names.
    samples_per_component : int
        Extra samples around each component mean.
    seed : int
        Seed of those samples.
    reference : (N, P) array, optional
        Training property table, needed only when some properties are free.
    """
    found = candidate_structures(model, target, samples_per_component=samples_per_component, seed=seed, reference=reference)
    mean, std = predict_candidates(model, found)
    for candidate, m, s in zip(found, mean, std):
        candidate.predicted, candidate.predicted_std = m, s
    return found


def candidate_structures(
    model,
    target: Target,
    *,
    samples_per_component: int = 0,
    seed: int = 0,
    reference: np.ndarray | None = None,
) -> list[Candidate]:
    """:func:`candidates` decoded but not predicted yet (``predicted`` and ``predicted_std`` NaN).

    The app draws these first (a decode is half of :func:`candidates`' time)
    and fills in :func:`predict_candidates`' answer when it comes.
    """
    if not model.is_generative:
        raise TargetError("this is a regression-only model: it has no prior to draw candidates from")
    if tuple(target.names) != tuple(model.property_names):
        raise TargetError(f"the target is for {', '.join(target.names)}, the model predicts {', '.join(model.property_names)}")
    full = complete_target(target, reference)
    pi, mu, sigma = model.prior_components(dict(zip(model.property_names, map(float, full))))
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(len(pi)):
        rows.append((k, "mean", 0, mu[k]))
        for s in range(samples_per_component):
            rows.append((k, "sample", s + 1, mu[k] + sigma[k] * rng.standard_normal(mu.shape[1])))
    z = np.stack([r[3] for r in rows])
    voxels = model.decode(z, binary=True)
    pending = np.full(len(model.property_names), np.nan)
    return [
        Candidate(k, float(pi[k]), zi, v, pending.copy(), pending.copy(), tuple(model.property_names), kind, sample)
        for (k, kind, sample, zi), v in zip(rows, voxels)
    ]


def predict_candidates(model, found: list[Candidate]) -> tuple[np.ndarray, np.ndarray]:
    """The model's prediction for each candidate's structure, in one batch: (mean, std) GPa, each (N, P)."""
    return model.predict(np.stack([c.voxels for c in found]))


def validate(
    voxels: np.ndarray,
    target: Target,
    *,
    cancel: Callable[[], bool] | None = None,
    **solver_options,
) -> Validation:
    """Compute a structure's properties with the FFT solver and compare them with the target.

    ``cancel`` is polled by the solver every iteration; cancelling raises
    :class:`~vaereg_core.errors.SolverCancelled` (a
    :class:`~vaereg_core.errors.Cancelled`). ``solver_options`` go to
    :func:`vaereg_core.physics.homogenize`; the tolerance and precision default
    to those of every validation, :data:`~vaereg_core.settings.VALIDATION_TOL`
    and :data:`~vaereg_core.settings.VALIDATION_DTYPE` (the dataset's), in the
    app as on the command line.
    """
    from vaereg_core.physics import homogenize
    from vaereg_core.settings import VALIDATION_DTYPE, VALIDATION_TOL

    start = time.perf_counter()
    result = homogenize(voxels, constants="normal", cancel=cancel, **{"tol": VALIDATION_TOL, "dtype": VALIDATION_DTYPE, **solver_options})
    constants = {n: float(result.constants[n]) for n in target.names}
    errors = {n: abs(constants[n] - v) / v for n, v in target.as_dict().items()}
    return Validation(
        constants=constants,
        relative_error=errors,
        mean_relative_error=float(np.mean(list(errors.values()))),
        iterations=dict(result.iterations),
        seconds=time.perf_counter() - start,
        solver={"discretization": result.discretization, "tol": result.tol, "backend": result.backend},
    )


def log_prior_density(z: np.ndarray, pi: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """log p(z | c) of the mixture prior (diagonal Gaussian components)."""
    z = np.asarray(z, dtype=np.float64)
    log_components = (
        np.log(pi)
        - 0.5 * np.sum(((z - mu) / sigma) ** 2 + 2 * np.log(sigma) + math.log(2 * math.pi), axis=1)
    )
    top = log_components.max()
    return float(top + math.log(np.sum(np.exp(log_components - top))))


@dataclass
class Refinement:
    """Result of :func:`refine`: the annealing run and its physics-validated best state."""

    anneal: AnnealResult
    voxels: np.ndarray
    predicted: np.ndarray
    validation: Validation | None
    settings: AnnealSettings
    prior_weight: float
    forward: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON form (without the voxels)."""
        a = self.anneal
        return {
            "best_latent": a.best.z.tolist(),
            "best_objective": a.best.value,
            "best_iteration": a.best.iteration,
            "iterations_done": a.iterations_done,
            "accepted": a.accepted,
            "cancelled": a.cancelled,
            "seconds": float(a.seconds_per_iteration[-1]) if a.iterations_done else 0.0,
            "predicted_GPa": self.predicted.tolist(),
            "volume_fraction": volume_fraction(self.voxels),
            "settings": self.settings.__dict__,
            "prior_weight": self.prior_weight,
            "forward_model": self.forward,
            "trajectory": [{"iteration": s.iteration, "objective": s.value, "latent": s.z.tolist()} for s in a.trajectory],
            "validation": None if self.validation is None else self.validation.to_dict(),
        }


def refine(
    model,
    target: Target,
    start: np.ndarray,
    settings: AnnealSettings = AnnealSettings(),
    *,
    forward=None,
    prior_weight: float = 0.0,
    reference: np.ndarray | None = None,
    progress: Callable | None = None,
    cancel: Callable[[], bool] | None = None,
    validate_best: bool = True,
    solver_options: dict | None = None,
) -> Refinement:
    """Simulated annealing in the model's latent space towards a target.

    The objective of a latent vector z is the mean relative error between the
    target and the forward prediction of the decoded, binarised structure,
    plus ``prior_weight * (-log p(z | c*)) / d`` when a prior term is asked
    for (it keeps the search where the model has seen data).

    Parameters
    ----------
    model : LoadedModel
        VAE-Regression model: its decoder maps z to structures.
    target : Target
        The target properties.
    start : (d,) array
        Starting latent vector (a candidate's ``z``, a map point, or random).
    settings : AnnealSettings
        Iterations, temperatures, steps, seed.
    forward : LoadedModel, optional
        Forward model for the objective: the VAE-Regression's own regressor
        (default) or a separately trained regression-only CNN.
    prior_weight : float
        Weight of the prior log-density term (0: none).
    reference : (N, P) array, optional
        Training property table, for free properties in the prior term.
    progress, cancel : callables
        As in :func:`~vaereg_core.inverse.annealing.anneal_latent`.
    validate_best : bool
        Run the physics solver on the best state (skipped when cancelled).
    """
    forward = model if forward is None else forward
    if tuple(forward.property_names) != tuple(target.names):
        raise TargetError(f"the forward model predicts {', '.join(forward.property_names)}, the target is for {', '.join(target.names)}")
    prior = None
    if prior_weight > 0:
        full = complete_target(target, reference)
        prior = model.prior_components(dict(zip(model.property_names, map(float, full))))
    d = model.latent_dim

    def objective(z: np.ndarray) -> float:
        # The network alone, not averaged: the objective is called hundreds of times per run.
        mean, _ = forward.predict(model.decode(z, binary=True), symmetries="identity")
        value = float(target.relative_error(mean))
        if prior is not None:
            value += prior_weight * -log_prior_density(z, *prior) / d
        return value

    result = anneal_latent(objective, np.asarray(start, dtype=np.float64), settings, progress=progress, cancel=cancel)
    voxels = model.decode(result.best.z, binary=True)
    predicted, _ = forward.predict(voxels)
    validation = None
    if validate_best and not result.cancelled:
        try:
            validation = validate(voxels, target, cancel=cancel, **(solver_options or {}))
        except Cancelled:
            result.cancelled = True
    return Refinement(result, voxels, predicted, validation, settings, prior_weight, "regressor" if forward is model else "separate forward model")
