"""The app's verified design, Qt-free: feasibility first, the loop in a child process, cards' data back.

:func:`run_design` is the unit of work the design box starts on a worker
thread; it waits for the child (:mod:`vaereg_studio.design_process`) and
hands each progress entry to a callable, which the box turns into a Qt
signal (so no widget is touched off the UI thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vaereg_core.errors import Cancelled
from vaereg_core.inverse.design import Candidate, Validation
from vaereg_core.inverse.feasibility import Feasibility, assess
from vaereg_core.inverse.targets import Target
from vaereg_core.inverse.verified import Design, DesignResult
from vaereg_core.physics.phases import Material
from vaereg_studio.design_process import DesignJob, design_in_child
from vaereg_studio.design_state import compute_slot, thumbnail_mesh
from vaereg_studio.physics_process import run_in_process


@dataclass
class DesignCandidate(Candidate):
    """A verified design in the shape of a candidate (what a card shows), labelled ``d1``, ``d2``, …"""

    rank: int = 1

    @property
    def label(self) -> str:
        """``d<rank>``: designs are ranked by verified error."""
        return f"d{self.rank}"


@dataclass
class FoundDesign:
    """One design with what its card and the latent map need.

    Attributes
    ----------
    design : Design
        The engine's design (state, verified constants, errors).
    candidate : DesignCandidate
        Label, latent vector, voxels and the model's prediction ± std.
    validation : Validation
        The verified constants in the form a card's validation takes.
    thumbnail : vtkPolyData or None
        The card's small surface.
    path : (n, latent) ndarray
        The design's chain through latent space.
    """

    design: Design
    candidate: DesignCandidate
    validation: Validation
    thumbnail: Any
    path: np.ndarray


@dataclass
class DesignOutcome:
    """A finished run: the engine's result and its designs, best first."""

    result: DesignResult
    designs: list[FoundDesign]


def feasibility(target: Target, reference: np.ndarray | None, material: Material) -> Feasibility:
    """The target's feasibility for the model's material against its training property table (tens of ms: a worker's job)."""
    return assess(target, reference=reference, hard=material.hard, soft=material.soft)


def run_design(job: DesignJob, progress: Callable[[dict], None], cancel: Callable[[], bool]) -> DesignOutcome | None:
    """Design in a child process (call from a worker thread); ``None`` when cancelled.

    ``progress`` gets each trajectory entry, on this thread. The run holds one
    of the app's compute slots (waiting for one counts as "queued").
    """
    try:
        with compute_slot(cancel):
            progress({"phase": "starting"})
            reply = run_in_process(design_in_child, (job,), cancel, progress=progress, what="design")
    except Cancelled:
        return None
    result = reply.result
    found = [
        FoundDesign(d, design_candidate(d, rank, mean, std, job.target), design_validation(d, result), thumbnail_mesh(d.state.voxels), path)
        for rank, (d, (mean, std), path) in enumerate(zip(result.designs, reply.predicted, reply.paths), start=1)
    ]
    return DesignOutcome(result, found)


def design_candidate(d: Design, rank: int, mean: np.ndarray, std: np.ndarray, target: Target) -> DesignCandidate:
    """A design as a card's candidate; its "component" is the prior component its chain started from."""
    s = d.state
    return DesignCandidate(s.chain, float("nan"), s.z, s.voxels, np.asarray(mean), np.asarray(std), tuple(target.names), kind="design", rank=rank)


def design_validation(d: Design, result: DesignResult) -> Validation:
    """A design's final solve as a :class:`Validation` (errors as magnitudes, as validations give them).

    ``seconds`` is the whole run's: the verified constants cost all of it.
    """
    return Validation(
        constants=dict(d.constants),
        relative_error={n: abs(e) for n, e in d.errors.items()},
        mean_relative_error=d.mean_error,
        iterations=dict(d.solver.get("iterations", {})),
        seconds=result.seconds,
        solver={k: v for k, v in d.solver.items() if k != "iterations"},
    )


def design_metadata(found: FoundDesign, result: DesignResult, verdict: Feasibility | None, model: str) -> dict[str, Any]:
    """Provenance of a design opened in the viewer or exported: the design's dict and the run's."""
    c = found.candidate
    entry = found.design.to_dict()
    return {
        "origin": "inverse design (verified by the FFT solver)",
        "model": model,
        "target_GPa": result.target.as_dict(),
        "extrapolated": list(result.target.extrapolated),
        "label": c.label,
        "rank": c.rank,
        "proposal": entry.pop("origin"),  # where the design loop found it, e.g. "k2 move"
        **entry,
        "predicted_GPa": dict(zip(c.property_names, map(float, c.predicted))),
        "predicted_std_GPa": dict(zip(c.property_names, map(float, c.predicted_std))),
        "run": {
            "goal": result.settings.goal,
            "met": result.met,
            "solver_calls": result.solver_calls,
            "seconds": round(result.seconds, 2),
            "settings": asdict(result.settings),
        },
        "feasibility": None if verdict is None else verdict.to_dict(),
    }
