"""Inverse-design work behind the target and latent panels (Qt-free, run on worker threads).

Everything numeric comes from :mod:`vaereg_core.inverse`; this module only
bundles it into the units of work a panel starts (find candidates, validate,
refine, load or compute the latent map), carries progress across threads,
and writes the provenance a structure keeps when it is opened or exported.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py  # noqa: F401 (read_table imports it lazily: see below)
import numpy as np

from vaereg_core.dataset.table import PROPERTY_NAMES, read_table
from vaereg_core.errors import VaeRegError
from vaereg_core.inverse.annealing import AnnealSettings, Cancelled
from vaereg_core.inverse.design import Candidate, Refinement, Validation
from vaereg_core.inverse.feasibility import default_target
from vaereg_core.inverse.latent_map import LatentMap
from vaereg_core.inverse.targets import Target
from vaereg_core.physics.phases import Material, describe
from vaereg_core.resources import default_dataset_path
from vaereg_core.voxel_io import level_surface
from vaereg_studio import model_process
from vaereg_studio.meshes import decimated, with_point_normals
from vaereg_studio.model_process import ModelInfo, ModelProcess
from vaereg_studio.physics_process import validate_in_process

# Modules are imported here, not inside the worker functions: PySide6's import
# hook reads the source of every newly imported module while holding the GIL,
# which stalled the UI thread for 50–250 ms when a worker imported lazily.

THUMBNAIL_TRIANGLES = 8000
"""Triangle budget of a candidate's small 3-D view (software OpenGL draws ~1 M triangles/s)."""
THUMBNAIL_BLOCKS = 17
"""Blocks per edge a thumbnail's surface is made from (51³ -> 17³ blocks of 3³ voxels)."""

# Physics and annealing are CPU-bound: more of them at once than there are
# cores only adds contention for the cores and the GIL, which the UI thread
# then waits for (six validations at once on two cores: 200–340 ms event-loop
# gaps, measured). Extra jobs wait for a slot and say "queued".
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_COMPUTE_SLOTS = threading.BoundedSemaphore(max(1, _CORES))


class CancelToken:
    """A thread-safe stop flag; calling it answers "stop now?" (the ``cancel`` callables of vaereg_core)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop."""
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


@contextlib.contextmanager
def compute_slot(cancel: Callable[[], bool]) -> Iterator[None]:
    """Hold one of the CPU-bound job slots; raises :class:`Cancelled` if cancelled while waiting."""
    while not _COMPUTE_SLOTS.acquire(timeout=0.05):
        if cancel():
            raise Cancelled("cancelled before it started")
    try:
        yield
    finally:
        _COMPUTE_SLOTS.release()


# ---------------------------------------------------------------------- training data


@dataclass(frozen=True)
class TrainingData:
    """The training property table for a model's properties, or why there is none.

    Attributes
    ----------
    path : Path or None
        The dataset file looked for.
    properties : (N, P) ndarray or None
        GPa, columns in the model's property order.
    reason : str
        Empty when the table was read; else one sentence saying why not.
    default : dict or None
        The default target: a typical test structure's constants (GPa, the
        model's properties), None without a table or a test split.
    """

    path: Path | None
    properties: np.ndarray | None
    reason: str = ""
    default: dict[str, float] | None = None


def model_training_data(property_names: tuple[str, ...], material: Material, recorded: str | None) -> TrainingData:
    """The property table of a model's own material: the shipped dataset's when its phases are the model's, else the
    table the model records it was trained on (``recorded``), when that file is here and of the same phases.

    A table of other phases would judge targets, fill free properties and seed designs with the wrong
    material's stiffnesses, so without one of the model's phases there is none (and the reason says so).
    """
    shipped = training_data(property_names, material=material)
    if shipped.properties is not None or not recorded:
        return shipped
    own = training_data(property_names, Path(recorded), material=material)
    return own if own.properties is not None else shipped


def training_data(property_names: tuple[str, ...], path: Path | None = None, material: Material | None = None) -> TrainingData:
    """Read the property table the free properties are filled from (default: the shipped dataset), refused when its
    phases are not ``material``'s."""
    path = default_dataset_path() if path is None else Path(path)
    if not path.is_file():
        return TrainingData(path, None, f"No training property table at {path}, so every property needs a value.")
    try:
        table = read_table(path)
    except VaeRegError as exc:
        return TrainingData(path, None, f"The training property table cannot be read ({exc}), so every property needs a value.")
    if len(table) == 0:
        return TrainingData(path, None, f"The training property table {path.name} is empty, so every property needs a value.")
    phases = Material.from_record(table.solver)
    if material is not None and phases != material:
        return TrainingData(path, None, f"The property table {path.name} is for {describe(phases)}, not the model's "
                                        f"{describe(material)}, so every property needs a value.")
    columns = [PROPERTY_NAMES.index(n) for n in property_names]
    try:
        default = default_target(table, property_names)
    except ValueError:  # no test split in this table: the panel falls back to mid-range values
        default = None
    return TrainingData(path, table.properties[:, columns].astype(np.float64), default=default)


# ---------------------------------------------------------------------- candidates


@dataclass
class FoundCandidate:
    """A candidate with the small surface its card draws."""

    candidate: Candidate
    thumbnail: Any  # vtkPolyData or None (no hard phase)


def thumbnail_mesh(voxels: np.ndarray, max_triangles: int = THUMBNAIL_TRIANGLES):
    """A smooth hard-phase surface of about ``max_triangles`` or fewer (``None``: no hard phase).

    The hard-phase fraction averaged over blocks of voxels is contoured at 0.5
    (blocks of 3³ at 51³: ~7k triangles): ~20 ms, where decimating the full
    surface (~80k triangles) took ~2 s a structure (issue 18's measurement).
    """
    v = np.asarray(voxels, dtype=np.float32)
    if not v.any():
        return None
    block = max(1, round(max(v.shape) / THUMBNAIL_BLOCKS))
    cropped = v[tuple(slice(0, n - n % block) for n in v.shape)]
    coarse = cropped.reshape([x for n in cropped.shape for x in (n // block, block)]).mean(axis=(1, 3, 5))
    surface = level_surface(coarse, spacing=block)  # closed at the box faces
    if surface.GetNumberOfCells() == 0:  # all blocks below half hard: fall back to the full surface
        surface = level_surface(v)
    if surface.GetNumberOfCells() > max_triangles:
        surface = decimated(surface, 1.0 - max_triangles / surface.GetNumberOfCells())
    return with_point_normals(surface)


def find_candidates(model: ModelProcess, target: Target, samples_per_component: int, seed: int, reference: np.ndarray | None) -> list[FoundCandidate]:
    """The model's candidates for ``target`` with their thumbnails, not predicted yet (worker thread; :func:`predict_found` follows)."""
    found = model.call(model_process.decode_candidates, target, samples_per_component, seed, reference)
    return [FoundCandidate(c, thumbnail_mesh(c.voxels)) for c in found]


def predict_found(model: ModelProcess, found: list[FoundCandidate]) -> tuple[np.ndarray, np.ndarray]:
    """The model's prediction (mean, std GPa, each (N, P)) for candidates from :func:`find_candidates` (worker thread)."""
    return model.call(model_process.predict, np.stack([f.candidate.voxels for f in found]))


def validate_structure(voxels: np.ndarray, target: Target, cancel: CancelToken) -> Validation | None:
    """Physics-validated properties of ``voxels`` (solved in a child process); ``None`` when cancelled."""
    try:
        with compute_slot(cancel):
            return validate_in_process(voxels, target, cancel)
    except Cancelled:
        return None


# ---------------------------------------------------------------------- provenance


def model_identity(path: Path | None) -> str:
    """The model's file name and the start of its SHA-256, e.g. ``default.pt (sha256 1a2b3c4d)``."""
    if path is None or not Path(path).is_file():
        return "unknown model"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).name} (sha256 {digest.hexdigest()[:12]})"


def candidate_metadata(candidate: Candidate, target: Target, model: str, seed: int) -> dict[str, Any]:
    """Provenance of a candidate opened in the viewer or exported."""
    info = candidate.to_dict()
    return {
        "origin": "inverse design (mixture candidate)",
        "model": model,
        "target_GPa": target.as_dict(),
        "extrapolated": list(target.extrapolated),
        "seed": seed,
        **info,
    }


def refinement_metadata(refinement: Refinement, target: Target, model: str, start: str, validation: Validation | None) -> dict[str, Any]:
    """Provenance of an annealing run's best state."""
    a = refinement.anneal
    return {
        "origin": "inverse design (latent annealing)",
        "model": model,
        "target_GPa": target.as_dict(),
        "extrapolated": list(target.extrapolated),
        "start": start,
        "seed": refinement.settings.seed,
        "settings": dict(refinement.settings.__dict__),
        "prior_weight": refinement.prior_weight,
        "latent": a.best.z.tolist(),
        "best_objective": a.best.value,
        "iterations_done": a.iterations_done,
        "cancelled": a.cancelled,
        "predicted_GPa": dict(zip(target.names, map(float, refinement.predicted))),
        "validation": None if validation is None else validation.to_dict(),
    }


def point_metadata(point: np.ndarray, z: np.ndarray, model: str) -> dict[str, Any]:
    """Provenance of a structure decoded from a point of the latent map."""
    return {"origin": "latent map point", "model": model, "map_point": [float(p) for p in point], "latent": z.tolist()}


# ---------------------------------------------------------------------- annealing


@dataclass
class RunProgress:
    """Progress of an annealing run, written by the worker and read by a UI timer.

    The worker's callback only stores; the UI polls :meth:`snapshot` at its
    own pace, so a fast run cannot flood the event loop with signals.
    """

    total: int
    token: CancelToken = field(default_factory=CancelToken)
    phase: str = "queued"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _iteration: int = 0
    _best: float = float("nan")
    _accepted: list[np.ndarray] = field(default_factory=list, repr=False)
    _taken: int = 0

    def begin(self, start: np.ndarray) -> None:
        """Record the starting state (the first point of the trajectory)."""
        with self._lock:
            self.phase = "annealing"
            self._accepted.append(np.asarray(start, dtype=np.float64))

    def update(self, iteration: int, best: float, accepted: np.ndarray | None) -> None:
        """An annealing report (:func:`vaereg_studio.model_process.anneal`): iterations done, best objective, a newly accepted state."""
        with self._lock:
            self._iteration = iteration
            self._best = best
            if accepted is not None:
                self._accepted.append(accepted)

    def set_phase(self, phase: str) -> None:
        """"queued", "annealing", "validating", "done" or "cancelled"."""
        with self._lock:
            self.phase = phase

    def snapshot(self) -> tuple[str, int, float, list[np.ndarray]]:
        """(phase, iterations done, best objective, accepted states not taken before)."""
        with self._lock:
            new = self._accepted[self._taken :]
            self._taken = len(self._accepted)
            return self.phase, self._iteration, self._best, new


@dataclass
class RunOutcome:
    """What an annealing run gives back to the UI."""

    refinement: Refinement
    validation: Validation | None


def run_refinement(
    model: ModelProcess,
    target: Target,
    start: np.ndarray,
    settings: AnnealSettings,
    prior_weight: float,
    reference: np.ndarray | None,
    progress: RunProgress,
) -> RunOutcome:
    """Anneal from ``start``, then validate the best state with the physics solver (worker thread).

    Validation is a separate step (not ``refine(validate_best=True)``) so the
    run reports the "validating" phase and a cancel during it keeps the
    annealing result.

    Raises
    ------
    Cancelled
        When cancelled before it could start (all compute slots busy).
    """
    with compute_slot(progress.token):
        progress.begin(start)
        refinement = model.call(model_process.anneal, target, start, settings, prior_weight, reference,
                                progress=lambda report: progress.update(*report), cancel=progress.token, keep_partial=True)
    validation = None
    if not refinement.anneal.cancelled:
        progress.set_phase("validating")
        validation = validate_structure(refinement.voxels, target, progress.token)
    progress.set_phase("cancelled" if progress.token() else "done")
    return RunOutcome(refinement, validation)


# ---------------------------------------------------------------------- latent map


def load_cached_map(info: ModelInfo, model_path: Path, cache_dir: Path) -> tuple[LatentMap, Path] | None:
    """A stored map made by this very model (its weights' checksum), with its latent size and properties."""
    for path in model_process.latent_cache_paths(model_path, cache_dir):
        if not path.is_file():
            continue
        try:
            found = LatentMap.load(path)
        except (OSError, ValueError, KeyError):
            continue  # an unreadable cache is recomputed
        # File times say nothing after a git checkout or a copy; the checksum ties the map to the weights.
        if (
            found.model_checksum == info.checksum
            and found.latents.shape[1] == info.latent_dim
            and found.property_names == tuple(info.property_names)
        ):
            return found, path
    return None


def load_or_compute_map(
    model: ModelProcess,
    model_path: Path,
    cache_dir: Path,
    max_structures: int,
    progress: Callable[[int, int], None],
    cancel: CancelToken,
    dataset_path: Path | None = None,
) -> tuple[LatentMap, Path | None, bool]:
    """The stored map if one fits the model, else a new one from ``dataset_path`` (default: the shipped dataset; worker thread).

    Returns the map, where it is stored, and whether it was computed now.
    """
    cached = load_cached_map(model.info, model_path, cache_dir)
    if cached is not None:
        return cached[0], cached[1], False
    found, path = model.call(model_process.compute_map, model_path, cache_dir, max_structures, dataset_path,
                             progress=lambda report: progress(*report), cancel=cancel)
    return found, path, True


def decode_point(model: ModelProcess, latent: LatentMap, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The latent vector at a map point (other components from the nearest training structure) and its structure."""
    z = latent.lift(np.asarray(point, dtype=np.float64))
    return z, model.call(model_process.decode, z)
