"""The design session: the app's state, Qt-free and evented, and the actions that change it.

Widgets observe :attr:`DesignSession.events` (psygnal signals, as napari's
models have) and call the session's methods; long work goes through the
session's :class:`~vaereg_studio.session.tasks.TaskRunner`, and every change
of state is made, and announced, on the runner's owner thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from vaereg_core.errors import Cancelled
from vaereg_core.inverse.annealing import AnnealSettings
from vaereg_core.inverse.design import Validation
from vaereg_core.inverse.feasibility import Feasibility
from vaereg_core.inverse.targets import Target, TargetError
from vaereg_core.inverse.verified import DesignSettings
from vaereg_studio import model_process, physics_process
from vaereg_studio.design_process import DesignJob
from vaereg_studio.design_state import (
    FoundCandidate,
    RunOutcome,
    RunProgress,
    decode_point,
    find_candidates,
    load_or_compute_map,
    model_identity,
    model_training_data,
    point_metadata,
    predict_found,
    run_refinement,
    thumbnail_mesh,
    validate_structure,
)
from vaereg_studio.design_worker import DesignOutcome, FoundDesign, feasibility, run_design
from vaereg_studio.session.records import AnnealRecord, CandidateEntry, DesignRun, LoadedModel, MapState
from vaereg_studio.session.session_file import SessionDocument, SessionFileError, read_session, write_session
from vaereg_studio.session.tasks import Task, TaskRunner
from vaereg_studio.session.view_options import ViewOptions
from vaereg_studio.structure import Structure

MAP_STRUCTURES = 2000
"""Training structures encoded for the latent map."""

CONTENT_KEYS = frozenset({"target", "verdict", "search_seed", "candidates", "design_runs", "anneal_runs", "view_options"})
"""What a saved session holds (:meth:`DesignSession.document`)."""


class SessionEvents(SignalGroup):
    """What a session announces; each signal carries the new value (or the record that changed)."""

    structure = Signal(object)  # Structure: the structure to show
    model = Signal(object)  # LoadedModel | None
    model_loading = Signal(object)  # Path of the model being loaded; None once it is loaded or has failed
    target = Signal(object)  # Target | None
    feasibility = Signal(object)  # Feasibility, or the exception when it could not be assessed
    searching = Signal(bool)  # a candidate search started (True) or ended
    candidates = Signal(list)  # list[CandidateEntry]: a new search's candidates (their predictions may follow)
    predictions = Signal(list)  # list[CandidateEntry]: the model's predictions for the search's candidates are in
    validation = Signal(int)  # the index of the candidate whose validation changed
    design_started = Signal(object)  # DesignRun
    design_finished = Signal(object)  # DesignRun (status done, cancelled or failed)
    anneal_started = Signal(object)  # AnnealRecord
    anneal_finished = Signal(object)  # AnnealRecord
    latent_map = Signal(object)  # MapState, or the exception when there is none
    point_decoded = Signal(object)  # (map point, latent vector)
    restored = Signal()  # a saved session was opened: panels redraw everything
    error = Signal(str, object)  # title and the exception or message, for a dialog


class DesignSession:
    """Structure, model, target, candidates with their validations, design and annealing runs, latent map.

    Parameters
    ----------
    runner : TaskRunner
        Runs the session's long work; results arrive on its owner thread.
    map_cache_dir : Path, optional
        Where latent maps are kept when the model's folder is not writable.

    Attributes
    ----------
    events : SessionEvents
        Signals for every change.
    view_options : ViewOptions
        How structures are drawn (saved with the session).
    """

    def __init__(self, runner: TaskRunner, map_cache_dir: Path | None = None) -> None:
        self.runner = runner
        self.events = SessionEvents()
        self.structure: Structure | None = None
        self.model: LoadedModel | None = None
        self.loading_model: Path | None = None  # the model file being (or about to be) loaded
        self.target: Target | None = None
        self.verdict: Feasibility | None = None
        self.candidates: list[CandidateEntry] = []
        self.search_seed = 0
        self.design_runs: list[DesignRun] = []
        self.anneal_runs: list[AnnealRecord] = []
        self.map: MapState | None = None
        self.map_cache_dir = Path(map_cache_dir) if map_cache_dir is not None else Path.home() / ".cache" / "vaereg-studio"
        self.map_structures = MAP_STRUCTURES
        self.map_progress = (0, 0)  # (encoded, total): written by the worker, read by a UI timer
        self.clicked: tuple[np.ndarray, np.ndarray] | None = None  # (map point, latent vector)
        self.view_options = ViewOptions()

    # ------------------------------------------------------------------ structure

    def set_structure(self, structure: Structure) -> None:
        """Make ``structure`` the one shown (a file read, a candidate, a design, a decoded point)."""
        self.structure = structure
        self.events.structure.emit(structure)

    def show_voxels(self, voxels: np.ndarray, name: str, metadata: dict[str, Any]) -> None:
        """Show a structure made in the app; ``metadata`` is its provenance (kept with an export)."""
        self.set_structure(Structure(voxels=voxels, name=name, metadata=metadata))

    # ------------------------------------------------------------------ model

    def load_model(self, path: str | Path) -> Task:
        """Load a model on a worker; the current one stays if loading fails."""
        path = Path(path)
        return self._submit_model_load(path, self.set_model, lambda e: self.events.error.emit(f"Cannot load the model {path.name}.", e))

    def expect_model(self, path: str | Path) -> None:
        """Announce that ``path`` will be loaded soon (the app starts it after its first picture), so panels wait for it."""
        self._set_loading(Path(path))

    def _submit_model_load(self, path: Path, on_loaded: Callable[[LoadedModel], None], on_failed: Callable[[Exception], None]) -> Task:
        """Load ``path`` on a worker, announcing the loading while it lasts; a later load supersedes it."""
        self._set_loading(path)

        def loaded(model: LoadedModel) -> None:
            self._set_loading(None)
            on_loaded(model)

        def failed(exc: Exception) -> None:
            self._set_loading(None)
            on_failed(exc)

        task = Task("model")
        return self.runner.submit(_load_model, path, task.token, key="model", task=task, on_result=loaded, on_error=failed)

    def _set_loading(self, path: Path | None) -> None:
        self.loading_model = path
        self.events.model_loading.emit(path)

    def set_model(self, loaded: LoadedModel | None) -> None:
        """Use ``loaded``: the candidates, designs, annealing runs and map of the previous model go, and its process ends."""
        for key in ("candidates", "design", "map", "feasibility", "decode"):
            self.runner.cancel(key)
        self._drop_candidates()
        if self.model is not None and self.model is not loaded:
            for record in self.anneal_runs:
                record.progress.token.cancel()  # before the process goes, so the runs end "cancelled", not "failed"
            self.model.model.close()
        self.model, self.target, self.verdict, self.map, self.clicked = loaded, None, None, None, None
        self.design_runs = []
        self.events.model.emit(loaded)
        if loaded is not None and loaded.is_generative:
            self.load_map()

    # ------------------------------------------------------------------ target and feasibility

    def set_target(self, target: Target | None) -> None:
        """The target being designed for (``None``: the controls give none); its old verdict goes."""
        self.target, self.verdict = target, None
        self.runner.cancel("feasibility")
        self.events.target.emit(target)

    def require_target(self) -> Target:
        """The target; raises :class:`TargetError` when there is no model or no usable target."""
        if self.model is None:
            raise TargetError("no model is loaded")
        if self.target is None:
            raise TargetError("the target panel gives no usable target")
        return self.target

    def assess(self) -> None:
        """Assess the target's feasibility against the training table (on a worker)."""
        target = self.require_target()

        def done(verdict: Feasibility) -> None:
            if target is self.target:
                self.verdict = verdict
                self.events.feasibility.emit(verdict)

        self.runner.submit(feasibility, target, self.model.training.properties, self.model.info.material, key="feasibility",
                           on_result=done, on_error=self.events.feasibility.emit)

    # ------------------------------------------------------------------ candidates

    def find_candidates(self, samples_per_component: int, seed: int) -> None:
        """The model's mixture candidates for the target (on a worker), announced as soon as they are decoded.

        Their predictions follow (:attr:`SessionEvents.predictions`), from a
        second task: the decoded structures are half the search's time, so the
        cards are drawn while the forward ensemble runs.
        """
        target, model = self.require_target(), self.model

        def found(result: list[FoundCandidate]) -> None:
            self._drop_candidates()
            self.search_seed = seed
            self.candidates = entries = [CandidateEntry(f, target, seed) for f in result]
            self.events.candidates.emit(entries)
            self.runner.submit(predict_found, model.model, result, key="candidates", on_result=lambda p: predicted(entries, p), on_error=failed)

        def predicted(entries: list[CandidateEntry], prediction: tuple[np.ndarray, np.ndarray]) -> None:
            if entries is not self.candidates:  # a reopened session replaced them
                return
            for entry, mean, std in zip(entries, *prediction):
                entry.found.candidate.predicted, entry.found.candidate.predicted_std = mean, std
            self.events.searching.emit(False)
            self.events.predictions.emit(entries)

        def failed(exc: Exception) -> None:
            self.events.searching.emit(False)
            self.events.error.emit("Cannot find candidates.", exc)

        self.events.searching.emit(True)
        self.runner.submit(
            find_candidates, model.model, target, samples_per_component, seed, model.training.properties,
            key="candidates", on_result=found, on_error=failed,
        )

    def _drop_candidates(self) -> None:
        for index in range(len(self.candidates)):
            self.runner.cancel(("validate", index))
        self.candidates = []

    def validate(self, index: int) -> None:
        """Validate candidate ``index`` with the solver (child process, on a worker)."""
        entry = self.candidates[index]
        task = Task(("validate", index))

        def done(validation: Validation | None) -> None:
            entry.validation = validation if validation is not None else entry.validation
            entry.status = "cancelled" if validation is None else "validated"
            self.events.validation.emit(index)

        def failed(exc: Exception) -> None:
            entry.status = "failed"
            self.events.validation.emit(index)
            self.events.error.emit(f"Cannot validate candidate {entry.label}.", exc)

        entry.status = "validating"
        self.runner.submit(validate_structure, entry.found.candidate.voxels, entry.target, task.token, key=task.key, task=task, on_result=done, on_error=failed)
        self.events.validation.emit(index)

    def stop_validation(self, index: int) -> None:
        """Stop candidate ``index``'s validation (it then reads "cancelled")."""
        self.runner.stop(("validate", index))

    def validate_all(self) -> None:
        """Validate every candidate not validated or validating yet."""
        for index, entry in enumerate(self.candidates):
            if entry.status not in ("validating", "validated"):
                self.validate(index)

    # ------------------------------------------------------------------ verified design

    def start_design(self, settings: DesignSettings, verdict: Feasibility | None, progress: Callable[[dict], None]) -> DesignRun:
        """Run the verified loop for the target (a child process waited for on a worker).

        ``progress`` gets each trajectory entry on the worker thread (the design
        box turns it into a Qt signal).
        """
        target, loaded = self.require_target(), self.model
        job = DesignJob(loaded.path, loaded.checksum, loaded.info.device, target, settings, loaded.training.properties)
        run = DesignRun(target, verdict, settings)
        task = Task("design")

        def done(outcome: DesignOutcome | None) -> None:
            run.outcome, run.status = outcome, "done" if outcome is not None else "cancelled"
            self.events.design_finished.emit(run)

        def failed(exc: Exception) -> None:
            run.status = "failed"
            self.events.design_finished.emit(run)
            self.events.error.emit("The design run failed.", exc)

        self.design_runs.append(run)
        self.runner.submit(run_design, job, progress, task.token, key="design", task=task, on_result=done, on_error=failed)
        self.events.design_started.emit(run)
        return run

    def stop_design(self) -> None:
        """Stop the running design (its designs are not re-solved: the run reads "cancelled")."""
        self.runner.stop("design")

    @property
    def last_design(self) -> DesignRun | None:
        """The latest design run that finished with designs."""
        return next((r for r in reversed(self.design_runs) if r.status == "done"), None)

    # ------------------------------------------------------------------ annealing

    def start_anneal(self, start: str, z: np.ndarray, settings: AnnealSettings, prior_weight: float) -> AnnealRecord:
        """Anneal from latent vector ``z`` towards the target, then validate the best state (on a worker)."""
        target, loaded = self.require_target(), self.model
        record = AnnealRecord(len(self.anneal_runs) + 1, start, np.asarray(z), target, settings, prior_weight, RunProgress(settings.iterations))
        task = Task(("anneal", record.number), token=record.progress.token)

        def done(outcome: RunOutcome) -> None:
            record.outcome = outcome
            cancelled = outcome.refinement.anneal.cancelled or outcome.validation is None and record.progress.token()
            record.status = "cancelled" if cancelled else "done"
            self.events.anneal_finished.emit(record)

        def failed(exc: Exception) -> None:
            record.status = "cancelled" if isinstance(exc, Cancelled) else "failed"
            self.events.anneal_finished.emit(record)
            if not isinstance(exc, Cancelled):
                self.events.error.emit(f"Annealing run {record.number} failed.", exc)

        self.anneal_runs.append(record)
        self.runner.submit(
            run_refinement, loaded.model, target, record.z, settings, prior_weight, loaded.training.properties, record.progress,
            key=task.key, task=task, on_result=done, on_error=failed,
        )
        self.events.anneal_started.emit(record)
        return record

    # ------------------------------------------------------------------ latent map

    def load_map(self) -> None:
        """The model's latent map: from its cache if one fits, else computed (on a worker)."""
        loaded = self.model
        task = Task("map")
        self.map, self.map_progress = None, (0, 0)

        def progress(done: int, total: int) -> None:  # worker thread: only store
            self.map_progress = (done, total)

        def done(result: tuple[Any, Path | None, bool]) -> None:
            self.map = MapState(*result)
            self.events.latent_map.emit(self.map)

        # The map is of the model's own training table (its material's), when the app has one.
        dataset = loaded.training.path if loaded.training.properties is not None else None
        self.runner.submit(
            load_or_compute_map, loaded.model, loaded.path, self.map_cache_dir, self.map_structures, progress, task.token, dataset,
            key="map", task=task, on_result=done, on_error=self.events.latent_map.emit,
        )

    def stop_map(self) -> None:
        """Stop computing the map (it then reads "cancelled")."""
        self.runner.stop("map")

    @property
    def searching(self) -> bool:
        """Whether a candidate search runs."""
        return self.runner.running("candidates")

    @property
    def map_running(self) -> bool:
        """Whether the map is being loaded or computed."""
        return self.runner.running("map")

    def decode(self, point: np.ndarray) -> None:
        """Decode the structure at a map point (on a worker) and show it."""
        if self.map is None or self.model is None:
            return
        point, loaded = np.asarray(point, dtype=np.float64), self.model

        def decoded(result: tuple[np.ndarray, np.ndarray]) -> None:
            z, voxels = result
            self.clicked = (point, z)
            self.show_voxels(voxels, f"map point ({point[0]:.2f}, {point[1]:.2f})", point_metadata(point, z, loaded.identity))
            self.events.point_decoded.emit(self.clicked)

        self.runner.submit(
            decode_point, loaded.model, self.map.map, point, key="decode",
            on_result=decoded, on_error=lambda e: self.events.error.emit("Cannot decode that point.", e),
        )

    # ------------------------------------------------------------------ save and reopen

    def document(self) -> SessionDocument:
        """The session as a file holds it (finished work only: running jobs are not saved).

        Raises
        ------
        SessionFileError
            No model is loaded (a session belongs to a model).
        """
        if self.model is None:
            raise SessionFileError(Path("session"), "no model is loaded, so there is no session to save")
        m = self.model
        candidates = [
            {"candidate": e.found.candidate, "target": e.target, "seed": e.seed, "validation": e.validation,
             "status": e.status if e.status in ("validated", "failed") else "not validated"}
            for e in self.candidates if e.found.candidate.is_predicted  # cards still waiting for their predictions are running work
        ]
        designs = [
            {"target": r.target, "verdict": r.verdict, "settings": r.settings, "result": dataclasses.replace(r.outcome.result, states=[]),
             "designs": [{"design": f.design, "candidate": f.candidate, "validation": f.validation, "path": f.path} for f in r.outcome.designs]}
            for r in self.design_runs if r.status == "done"
        ]
        runs = [
            {"number": r.number, "start": r.start, "z": r.z, "target": r.target, "settings": r.settings, "prior_weight": r.prior_weight,
             "status": r.status, "refinement": r.outcome.refinement, "validation": r.outcome.validation}
            for r in self.anneal_runs if r.outcome is not None
        ]
        content = {"target": self.target, "verdict": self.verdict, "search_seed": self.search_seed, "candidates": candidates, "design_runs": designs,
                   "anneal_runs": runs, "view_options": self.view_options.to_dict()}
        return SessionDocument({"name": m.path.name, "checksum": m.checksum, "path": str(m.path)}, content)

    def save(self, path: str | Path, overwrite: bool = False, on_saved: Callable[[Path], None] | None = None) -> None:
        """Write the session to ``path`` on a worker (atomically; an existing file only with ``overwrite``)."""
        document, path = self.document(), Path(path)
        self.runner.submit(
            write_session, path, document, overwrite=overwrite, key="save",
            on_result=on_saved or (lambda written: None), on_error=lambda e: self.events.error.emit(f"Cannot save the session {path.name}.", e),
        )

    def open(self, path: str | Path) -> None:
        """Reopen a saved session (read on a worker); its model is loaded first when another one is."""
        path = Path(path)

        def fail(exc: BaseException | str) -> None:
            self.events.error.emit(f"Cannot open the session {path.name}.", exc)

        def opened(result: tuple[SessionDocument, dict[str, Any]]) -> None:
            document, content = result
            checksum = str(document.model.get("checksum", ""))
            if self.model is not None and self.model.checksum == checksum:
                self._restore(content)
                return
            model_file = Path(str(document.model.get("path", "")))
            if not model_file.is_file():
                fail(SessionFileError(path, f"it was made with the model {document.model.get('name')} (weights {checksum[:12]}), "
                                            f"which is not at {model_file}; open that model first (File → Open Model…)"))
                return

            def loaded(model: LoadedModel) -> None:
                if model.checksum != checksum:
                    fail(SessionFileError(path, f"{model_file} has changed since the session was saved (weights {checksum[:12]}); open the model it was made with first"))
                    return
                self.set_model(model)
                self._restore(content)

            self._submit_model_load(model_file, loaded, fail)

        self.runner.submit(_read_session_content, path, key="open", on_result=opened, on_error=fail)

    def _restore(self, content: dict[str, Any]) -> None:
        """Take a reopened session's records (made on the worker); the panels redraw on ``restored``."""
        for key in ("candidates", "design"):
            self.runner.cancel(key)
        self._drop_candidates()
        self.target, self.verdict, self.search_seed = content["target"], content["verdict"], content["search_seed"]
        self.candidates = content["candidates"]
        self.design_runs = content["design_runs"]
        for record in self.anneal_runs:
            record.progress.token.cancel()
        self.anneal_runs = content["anneal_runs"]
        restored = ViewOptions.from_dict(content["view_options"])
        for name, value in restored.to_dict().items():
            setattr(self.view_options, name, value)  # the viewer's own options object
        self.events.restored.emit()
        self.events.candidates.emit(self.candidates)

    # ------------------------------------------------------------------ closing

    def stop_all(self) -> None:
        """Stop every running job of the session (before the app closes)."""
        for key in ("map", "design"):
            self.runner.stop(key)
        for index in range(len(self.candidates)):
            self.stop_validation(index)
        for record in self.anneal_runs:
            record.progress.token.cancel()


    def close_model(self) -> None:
        """End the model's process and any the app started for a model it has not taken (the window closes)."""
        if self.model is not None:
            self.model.model.close()
        model_process.close_unclaimed()


def _read_session_content(path: Path) -> tuple[SessionDocument, dict[str, Any]]:
    """Read a session file and rebuild its records with the cards' surfaces (worker thread)."""
    document = read_session(path)
    c = document.content
    if not isinstance(c, dict) or (missing := CONTENT_KEYS - set(c)):
        raise SessionFileError(path, f"damaged session: no {', '.join(sorted(missing)) if isinstance(c, dict) else 'content'}")
    try:
        candidates = [
            CandidateEntry(FoundCandidate(e["candidate"], thumbnail_mesh(e["candidate"].voxels)), e["target"], e["seed"], e["validation"], e["status"])
            for e in c["candidates"]
        ]
        design_runs = [
            DesignRun(r["target"], r["verdict"], r["settings"], "done", DesignOutcome(r["result"], [
                FoundDesign(d["design"], d["candidate"], d["validation"], thumbnail_mesh(d["candidate"].voxels), d["path"]) for d in r["designs"]
            ]))
            for r in c["design_runs"]
        ]
        anneal_runs = []
        for r in c["anneal_runs"]:
            record = AnnealRecord(r["number"], r["start"], r["z"], r["target"], r["settings"], r["prior_weight"], RunProgress(r["settings"].iterations),
                                  r["status"], RunOutcome(r["refinement"], r["validation"]))
            record.progress.set_phase(r["status"])
            anneal_runs.append(record)
        content = {**c, "candidates": candidates, "design_runs": design_runs, "anneal_runs": anneal_runs}
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise SessionFileError(path, f"damaged session ({type(exc).__name__}: {exc})") from None
    return document, content


def _load_model(path: Path, cancel: Callable[[], bool]) -> LoadedModel:
    """Load a model in its process with its training table and identity (worker thread), then start the physics server.

    The process is the one the app started as it started when it is for this
    file (:func:`vaereg_studio.model_process.start_early`). The server (it
    imports the solver and torch) and its warm workers (a 51³ solve each)
    start after the model, not beside it: on 2 cores they had competed with
    torch's import and the loading.
    """
    process = model_process.open_model(path)
    try:
        info = process.wait_ready(cancel)
        training = model_training_data(info.property_names, info.material, info.recorded_data)
        identity = model_identity(path)
    except BaseException:
        process.close()
        raise
    if cancel():  # a later load superseded this one
        process.close()
        raise Cancelled("model loading superseded")
    physics_process.start_server()  # validations and designs then start in a fraction of a second
    return LoadedModel(process, path, identity, training, info.description)
