"""Simulated annealing of a latent vector against an objective.

Gaussian proposals whose step shrinks geometrically, Metropolis acceptance
with a geometric cooling schedule, every accepted state recorded. Generic over
the objective: :mod:`vaereg_core.inverse.design` builds the objective from a
model and a target.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vaereg_core.errors import Cancelled
from vaereg_core.settings.fields import check_settings, setting

__all__ = ["AnnealResult", "AnnealSettings", "Cancelled", "State", "anneal_latent"]

@dataclass(frozen=True)
class AnnealSettings:
    """Parameters of one annealing run.

    Temperatures are in units of the objective (a relative error: 0.01 = 1 %);
    steps are standard deviations of the Gaussian proposal in latent units.
    The command line and the app set the start values only and build the
    settings with :meth:`from_controls`.

    Examples
    --------
    A start below the default end is held there, not warmed up to it:

    >>> s = AnnealSettings.from_controls(start_temperature=1e-4)
    >>> s.schedule(0)[0] == s.schedule(199)[0] == 1e-4
    True
    """

    iterations: int = setting(200, help="annealing iterations", minimum=1, maximum=100_000)
    start_temperature: float = setting(0.05, help="start temperature (relative error units: 0.05 = 5 %)", flag="--temperature",
                                       minimum=0.0, maximum=10.0, open_minimum=True, step=1e-4, decimals=5)
    end_temperature: float = setting(5e-4, help="temperature of the last iteration", flag=None,
                                     minimum=0.0, maximum=10.0, open_minimum=True, decimals=5)
    start_step: float = setting(0.5, help="start standard deviation of the Gaussian proposals (latent units)", flag="--step",
                                minimum=0.0, maximum=10.0, open_minimum=True, step=0.01, decimals=3)
    end_step: float = setting(0.02, help="proposal step of the last iteration", flag=None,
                              minimum=0.0, maximum=10.0, open_minimum=True, decimals=3)
    seed: int = setting(0, help="seed of the proposals and acceptances", minimum=0, maximum=2**31 - 1)

    def __post_init__(self) -> None:
        # An infinite start would make the geometric schedule inf * 0 = NaN from the first step.
        check_settings(self, "annealing")

    @classmethod
    def from_controls(cls, **values: float) -> "AnnealSettings":
        """Settings from the start values a user sets; an end above its start is lowered to the start.

        Cooling from a start below the default end would warm the chain instead;
        such a start is held constant. This is the one rule for ``vaereg refine``
        and the app.
        """
        defaults = cls()
        temperature = values.get("start_temperature", defaults.start_temperature)
        step = values.get("start_step", defaults.start_step)
        ends = {"end_temperature": min(defaults.end_temperature, temperature), "end_step": min(defaults.end_step, step)}
        return cls(**{**ends, **values})

    def schedule(self, i: int) -> tuple[float, float]:
        """(temperature, step) at iteration ``i`` (geometric interpolation)."""
        f = i / max(1, self.iterations - 1)
        temperature = self.start_temperature * (self.end_temperature / self.start_temperature) ** f
        step = self.start_step * (self.end_step / self.start_step) ** f
        return temperature, step


@dataclass
class State:
    """One accepted state of the chain."""

    iteration: int
    z: np.ndarray
    value: float
    seconds: float


@dataclass
class AnnealResult:
    """What a run found and how it got there."""

    best: State
    trajectory: list[State]
    best_per_iteration: np.ndarray
    seconds_per_iteration: np.ndarray
    iterations_done: int
    accepted: int
    cancelled: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float:
        """Accepted proposals per iteration."""
        return self.accepted / max(1, self.iterations_done)


def anneal_latent(
    objective: Callable[[np.ndarray], float],
    start: np.ndarray,
    settings: AnnealSettings = AnnealSettings(),
    *,
    progress: Callable[[int, int, State, State], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> AnnealResult:
    """Minimise ``objective(z)`` by simulated annealing from ``start``.

    Parameters
    ----------
    objective : callable
        Maps a latent vector (d,) to a float to minimise.
    start : (d,) array
        Initial latent vector.
    settings : AnnealSettings
        Iterations, cooling and step schedules, seed.
    progress : callable(iteration, total, current, best), optional
        Called after every iteration.
    cancel : callable() -> bool, optional
        Polled before every objective evaluation; when it returns True the run
        stops and returns what it has (``cancelled=True``).

    Returns
    -------
    AnnealResult
        Deterministic for a seed and a deterministic objective.
    """
    rng = np.random.default_rng(settings.seed)
    t0 = time.perf_counter()
    z = np.asarray(start, dtype=np.float64).copy()
    current = State(0, z, float(objective(z)), time.perf_counter() - t0)
    best = current
    trajectory = [current]
    best_values = np.full(settings.iterations, np.nan)
    seconds = np.full(settings.iterations, np.nan)
    accepted = 0
    done = 0
    cancelled = False
    for i in range(settings.iterations):
        if cancel is not None and cancel():
            cancelled = True
            break
        temperature, step = settings.schedule(i)
        proposal = current.z + step * rng.standard_normal(current.z.shape)
        value = float(objective(proposal))
        # Metropolis: always accept improvements, worse states with exp(-delta / T).
        if value <= current.value or rng.random() < math.exp(-(value - current.value) / temperature):
            current = State(i + 1, proposal, value, time.perf_counter() - t0)
            trajectory.append(current)
            accepted += 1
            if value < best.value:
                best = current
        best_values[i] = best.value
        seconds[i] = time.perf_counter() - t0
        done = i + 1
        if progress is not None:
            progress(done, settings.iterations, current, best)
    return AnnealResult(
        best=best,
        trajectory=trajectory,
        best_per_iteration=best_values[:done],
        seconds_per_iteration=seconds[:done],
        iterations_done=done,
        accepted=accepted,
        cancelled=cancelled,
    )
