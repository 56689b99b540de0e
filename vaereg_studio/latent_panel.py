"""The latent explorer: PCA map of the training structures, click to decode, annealing runs.

The map itself (:mod:`vaereg_studio.latent_map_view`, pyqtgraph) is built
when the first model with a latent space arrives, so the window's first
picture does not wait for pyqtgraph's import.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPoint, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from vaereg_core.inverse.annealing import AnnealSettings, Cancelled
from vaereg_core.inverse.design import Candidate
from vaereg_core.inverse.latent_map import LatentMap
from vaereg_core.inverse.targets import Target, TargetError
from vaereg_studio.design_state import RunOutcome, RunProgress, refinement_metadata
from vaereg_studio.dialogs import describe_exception
from vaereg_studio.loading_notice import LoadingNotice
from vaereg_studio.session import DesignSession
from vaereg_studio.session.records import AnnealRecord, DesignRun, LoadedModel, MapState, model_description
from vaereg_studio.setting_controls import spin_boxes
from vaereg_studio.settings import AppSettings

if TYPE_CHECKING:
    from vaereg_studio.latent_map_view import LatentMapView, RunTrace

# Progress is read at most 10 times a second, however fast a run goes: with
# OpenGL views in the window every repaint composes the whole window, ~40 ms
# on llvmpipe under load, so 20 repaints a second would fill the UI thread.
POLL_MS = 100
RUN_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")
ANNEAL_FIELDS = ("iterations", "start_temperature", "start_step", "seed")  # the controls' settings (the schema's defaults and ranges)


@dataclass
class AnnealRun:
    """The drawing of one of the session's annealing runs: its row, trajectory and best state."""

    record: AnnealRecord
    colour: str
    row: RunRow
    trace: RunTrace
    states: list[np.ndarray] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)
    ui_updates: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def number(self) -> int:
        """1, 2, … in the order the runs started."""
        return self.record.number

    @property
    def target(self) -> Target:
        """The target it anneals towards."""
        return self.record.target

    @property
    def progress(self) -> RunProgress:
        """Its progress (written by the worker)."""
        return self.record.progress

    @property
    def outcome(self) -> RunOutcome | None:
        """Its result, once it has ended."""
        return self.record.outcome

    @property
    def finished(self) -> bool:
        """Whether it has ended."""
        return self.record.finished

    def draw(self, latent: LatentMap) -> None:
        """Redraw the whole trajectory on ``latent``."""
        self.points = list(latent.project(np.stack(self.states))) if self.states else []
        if self.points:
            self.trace.set_points(np.asarray(self.points))


class RunRow(QFrame):
    """A run in the list: colour, progress, best error, Cancel and Show best."""

    def __init__(self, number: int, colour: str, start: str, iterations: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("annealRun")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QGridLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        swatch = QLabel()
        swatch.setFixedSize(14, 14)
        swatch.setStyleSheet(f"background: {colour}; border: 1px solid #444;")
        layout.addWidget(swatch, 0, 0)
        layout.addWidget(QLabel(f"Run {number} from {start}"), 0, 1)
        self.bar = QProgressBar()
        self.bar.setRange(0, iterations)
        self.bar.setFormat("%v / %m")
        layout.addWidget(self.bar, 0, 2)
        self.cancel_button = QPushButton("Cancel")
        layout.addWidget(self.cancel_button, 0, 3)
        self.status = QLabel("queued")
        self.status.setWordWrap(True)
        layout.addWidget(self.status, 1, 0, 1, 3)
        self.show_button = QPushButton("Show best")
        self.show_button.setEnabled(False)
        layout.addWidget(self.show_button, 1, 3)
        layout.setColumnStretch(2, 1)
        self.status_text = "queued"

    def set_status(self, text: str, short: str) -> None:
        """Status line (``short`` is the machine-readable state)."""
        self.status.setText(text)
        self.status_text = short


class LatentPanel(QWidget):
    """PCA map of the latent space with candidates, clicked points and annealing runs.

    Parameters
    ----------
    session : DesignSession
        The model, map, candidates, designs and annealing runs this panel shows.
    settings : AppSettings
        Keeps the annealing controls' values between runs of the app.

    Signals
    -------
    mapReady(object)
        The map is drawn (the :class:`LatentMap`).
    pointDecoded(object)
        A clicked map point was decoded and sent to the viewer (the point).
    runFinished(object)
        An annealing run ended (its :class:`AnnealRun`).
    """

    mapReady = Signal(object)
    pointDecoded = Signal(object)
    runFinished = Signal(object)

    def __init__(self, session: DesignSession, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.settings = session, settings
        self.runs: list[AnnealRun] = []
        self.candidates: list[Candidate] = []
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._build()
        self.loading = LoadingNotice(self, self.message, "Latent explorer and annealing")
        events = session.events
        events.model_loading.connect(self.loading.show_loading)
        events.model.connect(self.set_model)
        events.latent_map.connect(self._map_done)
        events.candidates.connect(lambda entries: self.set_candidates([e.found.candidate for e in entries]))
        events.design_finished.connect(self._design_finished)
        events.point_decoded.connect(self._decoded)
        events.anneal_started.connect(self._run_started)
        events.anneal_finished.connect(self._run_finished)
        events.restored.connect(self._restored)
        self.set_model(session.model)
        self.loading.show_loading(session.loading_model)

    @property
    def map(self) -> LatentMap | None:
        """The session's latent map (``None`` while there is none)."""
        return self.session.map.map if self.session.map is not None else None

    @property
    def map_path(self) -> Path | None:
        """Where the map is stored."""
        return self.session.map.path if self.session.map is not None else None

    @property
    def clicked(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The last decoded map point and its latent vector."""
        return self.session.clicked

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.message = QLabel()
        self.message.setObjectName("latentMessage")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        map_progress = QHBoxLayout()
        self.map_bar = QProgressBar()
        self.map_bar.setFormat("encoding %v / %m")
        self.map_cancel = QPushButton("Cancel")
        self.map_cancel.clicked.connect(self.cancel_map)
        map_progress.addWidget(self.map_bar, 1)
        map_progress.addWidget(self.map_cancel)
        self.map_progress_box = QWidget()
        self.map_progress_box.setLayout(map_progress)
        layout.addWidget(self.map_progress_box)

        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        colour_row = QHBoxLayout()
        colour_row.addWidget(QLabel("Colour by"))
        self.colour_combo = QComboBox()
        self.colour_combo.currentTextChanged.connect(self._recolour)
        colour_row.addWidget(self.colour_combo, 1)
        self.map_info = QLabel()
        self.map_info.setStyleSheet("color: gray;")
        colour_row.addWidget(self.map_info)
        body.addLayout(colour_row)

        self.designs: list[tuple[str, np.ndarray]] = []  # (label, latent path) of the verified designs
        self.map_view: LatentMapView | None = None  # built with the first model that has a latent space
        self._map_slot = QVBoxLayout()
        body.addLayout(self._map_slot, 1)
        hint = QLabel("Click the map to decode that point; the stars are the current candidates, the diamonds the verified designs.")
        hint.setStyleSheet("color: gray;")
        hint.setWordWrap(True)
        body.addWidget(hint)

        anneal_box = QGroupBox("Simulated annealing towards the target")
        grid = QGridLayout(anneal_box)
        self.start_combo = QComboBox()
        self.start_combo.setToolTip("Start from a candidate of the target panel or from the last clicked map point")
        grid.addWidget(QLabel("Start from"), 0, 0)
        grid.addWidget(self.start_combo, 0, 1, 1, 3)
        boxes = spin_boxes(AnnealSettings, ANNEAL_FIELDS)
        self.iterations, self.temperature, self.step, self.seed = (boxes[name] for name in ANNEAL_FIELDS)
        self.prior_weight = _double(0.0, 100.0, 3, "Weight of the prior log-density term (0: none); keeps the search where the model has seen data")
        self.start_button = QPushButton("Start run")
        self.start_button.setObjectName("startRun")
        self.start_button.clicked.connect(self.start_run)
        cells = (("Iterations", self.iterations), ("Seed", self.seed), ("Start temperature", self.temperature), ("Start step", self.step), ("Prior weight", self.prior_weight))
        for i, (label, widget) in enumerate(cells):
            grid.addWidget(QLabel(label), 1 + i // 2, 2 * (i % 2))
            grid.addWidget(widget, 1 + i // 2, 2 * (i % 2) + 1)
        grid.addWidget(self.start_button, 3, 2, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        body.addWidget(anneal_box)

        self.run_area = QWidget()
        self.run_list = QVBoxLayout(self.run_area)
        self.run_list.setContentsMargins(0, 0, 0, 0)
        self.run_list.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.run_area)
        scroll.setMinimumHeight(90)
        body.addWidget(scroll)
        layout.addWidget(self.body, 1)

        stored = self.settings.group_values("anneal", {
            "iterations": self.iterations.value(), "temperature": self.temperature.value(), "step": self.step.value(),
            "seed": self.seed.value(), "prior_weight": 0.0, "colour_by": "",
        })  # the schema's defaults, where nothing is stored yet
        self.iterations.setValue(stored["iterations"])
        self.temperature.setValue(stored["temperature"])
        self.step.setValue(stored["step"])
        self.seed.setValue(stored["seed"])
        self.prior_weight.setValue(stored["prior_weight"])
        self._colour_by = stored["colour_by"]
        for widget in (self.iterations, self.seed):
            widget.valueChanged.connect(self._save_values)
        for widget in (self.temperature, self.step, self.prior_weight):
            widget.valueChanged.connect(self._save_values)

    def _save_values(self) -> None:
        self.settings.set_group_values("anneal", {
            "iterations": self.iterations.value(),
            "temperature": self.temperature.value(),
            "step": self.step.value(),
            "seed": self.seed.value(),
            "prior_weight": self.prior_weight.value(),
            "colour_by": self.colour_combo.currentText() or self._colour_by,
        })

    # ------------------------------------------------------------------ model and map

    def prepare_map_view(self) -> None:
        """Import the map's view (pyqtgraph) on a worker while a model loads, not on the UI thread when it arrives.

        There the import (0.3-0.9 s on 2 cores) froze the window as the model came.
        """
        if self.map_view is None:
            import importlib

            self.session.runner.submit(importlib.import_module, "vaereg_studio.latent_map_view", key="map view import",
                                       on_result=lambda module: None, on_error=lambda exc: None)  # set_model's import says why

    def set_model(self, loaded: LoadedModel | None) -> None:
        """Show the new model's map once the session has it (``None`` or regression-only: say why not)."""
        if self.map_view is not None:
            self.map_view.clear_map()
        self.set_candidates([])
        self.set_designs([])
        self.map_progress_box.hide()
        if loaded is None or not loaded.is_generative:
            description = model_description(loaded)
            why = description if loaded is None else f"{description}<br>This is a regression-only model: it has no latent space."
            self._say(f"<b>Latent explorer and annealing</b><p>{why}</p><p>This panel needs a trained VAE-Regression model (File → Open Model…).</p>")
            self.body.hide()
            return
        if self.map_view is None:
            from vaereg_studio.latent_map_view import LatentMapView  # pyqtgraph: only now, after the first picture

            self.map_view = LatentMapView(self.decode_at)
            self._map_slot.addWidget(self.map_view)
        self.body.show()
        self._update_start_choices()
        self._say("Loading the latent map…")
        self.map_bar.setRange(0, 0)
        self.map_progress_box.show()
        self._timer.start()

    def _say(self, html: str) -> None:
        self.message.setText(html)
        self.message.setVisible(bool(html))

    def _map_done(self, result: MapState | Exception) -> None:
        self.map_progress_box.hide()
        if not isinstance(result, MapState):
            reason = "cancelled" if isinstance(result, Cancelled) else describe_exception(result)
            self._say(f"<b>No latent map</b> ({reason}). The map needs the model's training structures; annealing from candidates still works.")
            return
        name = result.path.name if result.path else ""
        where = f"saved as {name}" if result.path else "not saved (no writable folder)"
        self._say(f"Map of {len(result.map.latents)} training structures {'computed now, ' + where if result.computed else 'from ' + name}.")
        self.message.setToolTip(str(result.path or ""))
        self._draw_map()

    def cancel_map(self) -> None:
        """Stop computing the map."""
        self.session.stop_map()

    def _draw_map(self) -> None:
        m = self.map
        self.colour_combo.blockSignals(True)
        self.colour_combo.clear()
        self.colour_combo.addItems(list(m.property_names))
        if self._colour_by in m.property_names:
            self.colour_combo.setCurrentText(self._colour_by)
        self.colour_combo.blockSignals(False)
        v1, v2 = m.explained_variance
        self.map_info.setText(f"PC1 {100 * v1:.0f} %, PC2 {100 * v2:.0f} % of variance")
        self._recolour(self.colour_combo.currentText())
        self._mark_candidates()
        self._draw_designs()
        for run in self.runs:  # runs started before the map was ready
            run.draw(m)
        self.map_view.fit()
        self.mapReady.emit(m)

    def _recolour(self, name: str) -> None:
        if self.map is None or name not in self.map.property_names:
            return
        values = self.map.properties[:, self.map.property_names.index(name)]
        self.map_view.show_points(self.map.coordinates, values, name)
        self._colour_by = name
        self._save_values()

    # ------------------------------------------------------------------ candidates and points

    def set_candidates(self, candidates: list[Candidate]) -> None:
        """The target panel's current candidates: marked on the map and offered as starts."""
        self.candidates = list(candidates)
        self._mark_candidates()
        self._update_start_choices()

    def _mark_candidates(self) -> None:
        if self.map_view is None:
            return
        if self.map is None or not self.candidates:
            self.map_view.mark_candidates([], None)
            return
        xy = self.map.project(np.stack([c.z for c in self.candidates]))
        self.map_view.mark_candidates([c.label for c in self.candidates], xy)

    def set_designs(self, designs: list[tuple[str, np.ndarray]]) -> None:
        """The verified designs: each one's way through latent space, ending in a diamond with its label."""
        self.designs = list(designs)
        self._draw_designs()

    def _draw_designs(self) -> None:
        if self.map_view is None:
            return
        paths = [] if self.map is None else [(label, self.map.project(np.asarray(path))) for label, path in self.designs]
        self.map_view.draw_designs(paths)

    def _update_start_choices(self) -> None:
        current = self.start_combo.currentText()
        self.start_combo.clear()
        for c in self.candidates:
            self.start_combo.addItem(f"candidate {c.label} (π = {c.weight:.2f})", (f"candidate {c.label}", c.z))
        if self.clicked is not None:
            x, y = self.clicked[0]
            self.start_combo.addItem(f"clicked point ({x:.2f}, {y:.2f})", (f"map point ({x:.2f}, {y:.2f})", self.clicked[1]))
        if self.start_combo.findText(current) >= 0:
            self.start_combo.setCurrentText(current)
        self.start_button.setEnabled(self.start_combo.count() > 0)
        self.start_button.setToolTip("" if self.start_combo.count() else "Find candidates in the target panel or click the map first")

    def view_to_widget(self, x: float, y: float) -> QPoint:
        """Viewport coordinates of map point (x, y) (for clicking it in tests and scripts)."""
        return self.map_view.view_to_widget(x, y)

    def decode_at(self, point: np.ndarray) -> None:
        """Decode the structure at a map point (the session shows it)."""
        if self.map is None:
            return
        point = np.asarray(point, dtype=np.float64)
        self.map_view.mark_click(point)
        self.session.decode(point)

    def _decoded(self, clicked: tuple[np.ndarray, np.ndarray]) -> None:
        self._update_start_choices()
        self.start_combo.setCurrentIndex(self.start_combo.count() - 1)
        self.pointDecoded.emit(clicked[0])

    def _design_finished(self, run: DesignRun) -> None:
        if run.status == "done":
            self.set_designs([(f.candidate.label, f.path) for f in run.outcome.designs])

    # ------------------------------------------------------------------ annealing

    def start_run(self) -> AnnealRun | None:
        """Start an annealing run with the controls' settings; returns it (``None`` if it could not start)."""
        errors = self.session.events.error
        if self.start_combo.currentData() is None:
            errors.emit("No starting point.", "Find candidates in the target panel or click the map first.")
            return None
        start, z = self.start_combo.currentData()
        try:
            settings = AnnealSettings.from_controls(
                iterations=self.iterations.value(), start_temperature=self.temperature.value(), start_step=self.step.value(), seed=self.seed.value(),
            )
        except ValueError as exc:
            errors.emit("These annealing settings cannot run.", exc)
            return None
        try:
            self.session.start_anneal(start, np.asarray(z), settings, self.prior_weight.value())
        except TargetError as exc:
            errors.emit("Set a usable target in the target panel first.", exc)
            return None
        return self.runs[-1]

    def _run_started(self, record: AnnealRecord) -> AnnealRun:
        """Draw a session's run: its row in the list and its trajectory on the map."""
        colour = RUN_COLOURS[(record.number - 1) % len(RUN_COLOURS)]
        row = RunRow(record.number, colour, record.start, record.settings.iterations)
        self.run_list.insertWidget(self.run_list.count() - 1, row)
        run = AnnealRun(record, colour, row, self.map_view.add_run(colour))
        self.runs.append(run)
        row.cancel_button.clicked.connect(record.progress.token.cancel)
        row.show_button.clicked.connect(lambda: self.show_best(run))
        self._timer.start()
        return run

    def _run_finished(self, record: AnnealRecord) -> None:
        run = next(r for r in self.runs if r.record is record)
        if record.outcome is not None:
            self._poll_run(run)  # the last states before the result
            self._finish(run)
            return
        run.row.cancel_button.setEnabled(False)
        if record.status == "cancelled":
            run.row.set_status("cancelled before it started", "cancelled")
        else:
            run.row.set_status("failed", "failed")
        self.runFinished.emit(run)

    def _poll(self) -> None:
        """Timer tick: show the progress of the map and of every active run."""
        map_running = self.session.map_running
        if map_running:
            done, total = self.session.map_progress
            if total:
                self.map_bar.setRange(0, total)
                self.map_bar.setValue(done)
        active = [run for run in self.runs if not run.finished]
        for run in active:
            self._poll_run(run)
        if not active and not map_running:
            self._timer.stop()

    def _poll_run(self, run: AnnealRun) -> None:
        phase, iteration, best, new = run.progress.snapshot()
        run.row.bar.setValue(iteration)
        if phase == "queued":
            run.row.set_status("queued: waiting for a free CPU core", phase)
        elif phase == "annealing":
            run.row.set_status(f"annealing · best error {100 * best:.2f} % (model)", phase)
        elif phase == "validating":
            run.row.set_status(f"best error {100 * best:.2f} % (model) · validating with the FFT solver…", phase)
        run.states.extend(new)
        if new and self.map is not None:
            run.points.extend(self.map.project(np.stack(new)))
            run.trace.set_points(np.asarray(run.points))
            run.ui_updates += 1

    def _finish(self, run: AnnealRun, show: bool = True) -> None:
        outcome = run.outcome
        a = outcome.refinement.anneal
        row = run.row
        row.cancel_button.setEnabled(False)
        row.show_button.setEnabled(True)
        row.bar.setValue(a.iterations_done)
        if self.map is not None:
            run.trace.set_best(self.map.project(a.best.z[None]))
            self.map_view.fit()  # a run may wander off the part of the map in view
        text = f"best error {100 * a.best.value:.2f} % (model) at iteration {a.best.iteration}, {a.accepted} accepted"
        if run.record.status == "cancelled":
            row.set_status(f"cancelled after {a.iterations_done} iterations · {text}", "cancelled")
        else:
            v = outcome.validation
            physics = "" if v is None else f" · physics: mean |error| {100 * v.mean_relative_error:.1f} %"
            row.set_status(text + physics, "done")
            if v is not None:
                row.status.setToolTip("\n".join(f"{n}: {v.constants[n]:.1f} GPa ({100 * e:+.1f} %)" for n, e in v.relative_error.items()))
            # While other runs are in flight the main view is not taken over (each
            # redraw stalls the UI on a software renderer); "Show best" is there.
            if show and all(other.finished for other in self.runs):
                self.show_best(run)
        self.runFinished.emit(run)

    def show_best(self, run: AnnealRun) -> None:
        """Show a run's best structure in the viewer, with its provenance."""
        outcome = run.outcome
        if outcome is None:
            return
        metadata = refinement_metadata(outcome.refinement, run.target, self.session.model.identity, run.record.start, outcome.validation)
        self.session.show_voxels(outcome.refinement.voxels, f"run {run.number} best", metadata)

    def _restored(self) -> None:
        """A reopened session: its designs' paths and its finished annealing runs."""
        last = self.session.last_design
        if last is not None:
            self._design_finished(last)
        drawn = {id(run.record) for run in self.runs}
        for record in self.session.anneal_runs:
            if id(record) not in drawn and record.outcome is not None:
                run = self._run_started(record)
                run.states = [s.z for s in record.outcome.refinement.anneal.trajectory]
                if self.map is not None:
                    run.draw(self.map)
                self._finish(run, show=False)


def _double(low: float, high: float, decimals: int, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(10 ** -(decimals - 1))
    box.setToolTip(tip)
    return box
