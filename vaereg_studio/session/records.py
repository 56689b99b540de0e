"""What a design session holds, as plain records (Qt-free): the model, candidates, design and annealing runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaereg_core.inverse.annealing import AnnealSettings
from vaereg_core.inverse.design import Validation
from vaereg_core.inverse.feasibility import Feasibility
from vaereg_core.inverse.latent_map import LatentMap
from vaereg_core.inverse.targets import Target
from vaereg_core.inverse.verified import DesignSettings
from vaereg_studio.design_state import FoundCandidate, RunOutcome, RunProgress, TrainingData
from vaereg_studio.model_process import ModelInfo
from vaereg_studio.model_state import no_model_reason
from vaereg_studio.design_worker import DesignOutcome


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded for the session.

    Attributes
    ----------
    model : vaereg_studio.model_process.ModelProcess
        The network, loaded in its own process (predict, decode, prior).
    path : Path
        The file it came from.
    identity : str
        File name and checksum prefix, e.g. ``default.pt (sha256 1a2b3c4d5e6f)``.
    training : TrainingData
        Its training property table (free properties, feasibility), or why there is none.
    description : str
        One paragraph naming it (the About box and the panels).
    """

    model: Any
    path: Path
    identity: str
    training: TrainingData
    description: str

    @property
    def info(self) -> ModelInfo:
        """Its property names, ranges, grid, material and the like."""
        return self.model.info

    @property
    def checksum(self) -> str:
        """The checksum of the weights (what a saved session and a latent map are tied to)."""
        return self.info.checksum

    @property
    def is_generative(self) -> bool:
        """Whether it has a latent space and a prior (regression-only models have neither)."""
        return self.info.is_generative


def model_description(loaded: LoadedModel | None) -> str:
    """The panels' first line about the model: what it is, or why there is none."""
    return f"Model: {loaded.description}" if loaded is not None else no_model_reason()


@dataclass
class CandidateEntry:
    """A mixture candidate of the last search and its validation by the solver.

    ``status`` is "not validated", "validating", "validated", "cancelled" or "failed".
    """

    found: FoundCandidate
    target: Target
    seed: int
    validation: Validation | None = None
    status: str = "not validated"

    @property
    def label(self) -> str:
        """``k1``, ``k1-s2``, …"""
        return self.found.candidate.label


@dataclass
class DesignRun:
    """One run of the verified loop. ``status`` is "running", "done", "cancelled" or "failed"."""

    target: Target
    verdict: Feasibility | None
    settings: DesignSettings
    status: str = "running"
    outcome: DesignOutcome | None = None


@dataclass
class AnnealRecord:
    """One annealing run from a start in latent space. ``status`` is "running", "done", "cancelled" or "failed"."""

    number: int
    start: str
    z: np.ndarray
    target: Target
    settings: AnnealSettings
    prior_weight: float
    progress: RunProgress
    status: str = "running"
    outcome: RunOutcome | None = None

    @property
    def finished(self) -> bool:
        """Whether the run has ended (in any way)."""
        return self.status != "running"


@dataclass
class MapState:
    """The latent map of the session's model, where it is stored, and whether it was computed now."""

    map: LatentMap
    path: Path | None
    computed: bool

