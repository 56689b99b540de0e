"""Verified design in a child process: load the model there, run the loop, send back what the UI shows.

The loop is mostly short NumPy and torch calls (decode, rank, solve); on a
thread of the UI process it would hold the GIL most of the time, as the
validations did (see :mod:`vaereg_studio.physics_process`). In a child it
shares nothing with the UI, and a cancel kills it at once. The child loads
the model from its file (a model is not cheap to pickle, and the file is what
the provenance names) and checks it is the one the app has.

This module is what the child imports: it stays free of Qt and pyvista.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vaereg_core.errors import VaeRegError
from vaereg_core.inverse.targets import Target
from vaereg_core.inverse.verified import DesignResult, DesignSettings, VerifiedState, design

MAX_PATH_POINTS = 40
"""Latent points kept per design's path: enough for the map, small for the pipe."""


@dataclass(frozen=True)
class DesignJob:
    """Everything the child needs (all picklable).

    Attributes
    ----------
    model_path : Path
        The model file the app loaded.
    checksum : str
        Its weights' checksum, so a file replaced since is refused.
    device : str
        Torch device of the app's model (``cpu``, ``cuda:0``); the solver runs there too.
    target : Target
    settings : DesignSettings
    reference : (N, P) ndarray or None
        Training property table (fills free constants).
    """

    model_path: Path
    checksum: str
    device: str
    target: Target
    settings: DesignSettings
    reference: np.ndarray | None


@dataclass
class DesignReply:
    """What comes back from the child.

    Attributes
    ----------
    result : DesignResult
        The designs, best first; ``states`` emptied (every solved voxel grid would cross the pipe).
    predicted : list of (mean, std)
        The model's prediction (GPa) for each design, shown beside the solver's constants.
    paths : list of (n, latent) ndarray
        Each design's way through latent space: its chain's improving states up to the design.
    """

    result: DesignResult
    predicted: list[tuple[np.ndarray, np.ndarray]]
    paths: list[np.ndarray]


def design_in_child(job: DesignJob, report: Callable[[dict], None]) -> DesignReply:
    """Run :func:`vaereg_core.inverse.verified.design` for ``job`` (in the child process).

    ``report`` receives each trajectory entry. Imported here: the child alone
    needs torch, and the UI process's import hook (see design_state) is not involved.

    Raises
    ------
    VaeRegError
        The model file is no longer the one the app loaded.
    """
    import torch

    from vaereg_core.model.inference import load_model

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores - 1))  # as the app's own model: a core stays with the UI
    model = load_model(job.model_path, job.device)
    if model.file.checksum != job.checksum:
        raise VaeRegError(f"{Path(job.model_path).name} has changed since the app loaded it; open the model again")
    solver = {"device": "cuda" if job.device.startswith("cuda") else "cpu"}
    result = design(model, job.target, job.settings, reference=job.reference, progress=report, solver_options=solver)
    predicted = [tuple(np.asarray(a) for a in model.predict(d.state.voxels)) for d in result.designs]
    paths = [chain_path(result.states, d.state) for d in result.designs]
    return DesignReply(replace(result, states=[]), predicted, paths)


def chain_path(states: list[VerifiedState], end: VerifiedState, max_points: int = MAX_PATH_POINTS) -> np.ndarray:
    """Latent vectors of ``end``'s chain that improved on all before them, ending at ``end``.

    A chain moves only when the solver confirms an improvement, so its
    running best is the way it went; ``max_points`` keeps the last ones.
    """
    path: list[np.ndarray] = []
    best = np.inf
    for state in sorted((s for s in states if s.chain == end.chain and s.solver_call <= end.solver_call), key=lambda s: s.solver_call):
        if state.error < best and state is not end:
            best = state.error
            path.append(state.z)
    path.append(end.z)
    return np.array(path[-max_points:])
