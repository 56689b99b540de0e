"""The target-property panel: target stiffness in, mixture candidates side by side out.

Each candidate gets a card with its own small 3-D view. Measured under Xvfb
with Mesa's llvmpipe (2 cores): a ``QtInteractor`` costs 100–400 ms to create
(one OpenGL context each) and a 51³ smooth surface (78k triangles) 80–130 ms
per frame at 200×150, a decimated one (8k) 10–20 ms; an offscreen
``pyvista.Plotter`` thumbnail costs 300 ms per image. So the cards keep live
views (they can be turned with the mouse), draw surfaces decimated on the
worker, are created one per event-loop turn, and are reused by later searches
instead of being rebuilt.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pyvista as pv
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from pyvistaqt import QtInteractor

from vaereg_core.inverse.design import Validation
from vaereg_core.inverse.targets import Target, TargetError, parse_target
from vaereg_studio.design_state import CancelToken, FoundCandidate, TrainingData, candidate_metadata, find_candidates, validate_structure

if TYPE_CHECKING:
    from vaereg_studio.main_window import MainWindow

SLIDER_STEPS = 1000
MAX_SAMPLES = 4  # per component: K × 5 cards at most, each with an OpenGL view
CARD_WIDTH = 226
WARNING_STYLE = "color: #b35c00; font-weight: bold;"
ERROR_STYLE = "color: #b00020;"


class PropertyRow:
    """One property's controls: spin box (GPa), slider over the training range, "free" box.

    The spin box accepts values outside the training range (the target is
    then flagged as extrapolated); the slider spans the range only.
    """

    def __init__(self, name: str, low: float, high: float, grid: QGridLayout, row: int) -> None:
        self.name, self.low, self.high = name, low, high
        self.label = QLabel(name)
        self.spin = QDoubleSpinBox()
        self.spin.setObjectName(f"target_{name}")
        self.spin.setRange(0.01, 10_000.0)
        self.spin.setDecimals(1)
        self.spin.setSuffix(" GPa")
        self.spin.setKeyboardTracking(False)
        self.spin.setToolTip(f"Target {name}; the training data span {low:.1f}–{high:.1f} GPa")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setMinimumWidth(60)
        self.free = QCheckBox("free")
        self.free.setToolTip(f"Leave {name} free: it is filled in from training structures that match the other targets")
        self.range_label = QLabel(f"{low:.0f}–{high:.0f}")
        self.range_label.setStyleSheet("color: gray;")
        for column, widget in enumerate((self.label, self.spin, self.slider, self.free, self.range_label)):
            grid.addWidget(widget, row, column)
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(self._spin_changed)
        self.free.toggled.connect(self._free_toggled)

    @property
    def value(self) -> float | None:
        """Target in GPa, ``None`` when free."""
        return None if self.free.isChecked() else self.spin.value()

    def set_value(self, value: float) -> None:
        """Set the spin box (and so the slider)."""
        self.spin.setValue(value)
        self._spin_changed(self.spin.value())

    def _slider_moved(self, position: int) -> None:
        value = self.low + (self.high - self.low) * position / SLIDER_STEPS
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.spin.valueChanged.emit(self.spin.value())  # one change signal for listeners

    def _spin_changed(self, value: float) -> None:
        fraction = (value - self.low) / (self.high - self.low) if self.high > self.low else 0.0
        self.slider.blockSignals(True)
        self.slider.setValue(round(SLIDER_STEPS * min(max(fraction, 0.0), 1.0)))
        self.slider.blockSignals(False)

    def _free_toggled(self, free: bool) -> None:
        self.spin.setEnabled(not free)
        self.slider.setEnabled(not free)

    def widgets(self) -> tuple[QWidget, ...]:
        """Every widget of the row (to remove them)."""
        return self.label, self.spin, self.slider, self.free, self.range_label


class CandidateCard(QFrame):
    """One candidate: its small 3-D view, weight, volume fraction, predicted and validated properties.

    Signals
    -------
    openRequested(CandidateCard)
        The card was clicked: show the candidate in the main viewer.
    validateRequested(CandidateCard)
        "Validate" was pressed (or "Cancel" while a validation runs).
    """

    openRequested = Signal(object)
    validateRequested = Signal(object)
    physics_header = "physics"  # the column of solver-computed constants

    def __init__(self, background: str, colour: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("candidateCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFixedWidth(CARD_WIDTH)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.colour = colour
        self.found: FoundCandidate | None = None
        self.target: Target | None = None
        self.validation: Validation | None = None
        self.token: CancelToken | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.title = QLabel()
        self.title.setObjectName("candidateTitle")
        layout.addWidget(self.title)
        self.view = QtInteractor(self, auto_update=False, multi_samples=0)
        self.view.setFixedSize(CARD_WIDTH - 14, 140)
        self.view.setAcceptDrops(False)
        if self.view.iren is not None:
            self.view.clear_events_for_key("q")  # pyvista's "q" prepares to close the plotter
        self.view.set_background(background)
        layout.addWidget(self.view)
        self.table = QLabel()
        self.table.setObjectName("candidateTable")
        self.table.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.validate_button = QPushButton("Validate")
        self.validate_button.setToolTip("Compute this structure's stiffness with the FFT solver and compare it with the target")
        self.validate_button.clicked.connect(lambda: self.validateRequested.emit(self))
        self.open_button = QPushButton("Show")
        self.open_button.setToolTip("Show this candidate in the main 3-D view (to inspect or export it)")
        self.open_button.clicked.connect(lambda: self.openRequested.emit(self))
        buttons.addWidget(self.validate_button)
        buttons.addWidget(self.open_button)
        layout.addLayout(buttons)

    @property
    def label(self) -> str:
        """The candidate's label (``k1``, ``k1-s2``)."""
        return self.found.candidate.label if self.found else ""

    def show_candidate(self, found: FoundCandidate, target: Target) -> None:
        """Draw ``found`` and describe it against ``target``."""
        self.found, self.target, self.validation, self.token = found, target, None, None
        c = found.candidate
        self.title.setText(f"<b>{c.label}</b> · π<sub>{c.component + 1}</sub> = {c.weight:.3f} · vf {c.volume_fraction:.3f}")
        self.view.remove_actor("hard_phase", render=False)
        if found.thumbnail is not None:
            self.view.add_mesh(found.thumbnail, color=self.colour, smooth_shading=True, name="hard_phase", reset_camera=False, show_scalar_bar=False, render=False)
        n = c.voxels.shape[0]
        self.view.add_mesh(_outline(n), color="#9aa3b5", name="outline", reset_camera=False, render=False)
        self.view.camera_position = [(1.5 * n, 1.2 * n, 1.8 * n), (n / 2, n / 2, n / 2), (0.0, 0.0, 1.0)]
        self.view.renderer.reset_camera(render=False)  # Plotter.reset_camera renders whatever it is told
        self.view.render()
        self.set_validating(False)
        self._fill_table()

    def set_validating(self, running: bool) -> None:
        """Switch the button between "Validate" and "Cancel"."""
        self.validate_button.setText("Cancel" if running else ("Validate again" if self.validation else "Validate"))
        self.open_button.setEnabled(True)

    def set_validation(self, validation: Validation | None) -> None:
        """Fill in the physics results (``None``: the validation was cancelled)."""
        self.validation = validation
        self.token = None
        self.set_validating(False)
        self._fill_table(cancelled=validation is None)

    def _fill_table(self, cancelled: bool = False) -> None:
        c, target = self.found.candidate, self.target
        goals = target.as_dict()
        rows = [f"<tr><th></th><th align='right'>predicted</th><th align='right'>{self.physics_header}</th><th align='right'>error</th></tr>"]
        for name, mean, std in zip(c.property_names, c.predicted, c.predicted_std):
            # Placeholders keep the label's size: a card that changes size re-lays out (and redraws) them all.
            physics = error = "—"
            if self.validation is not None:
                achieved = self.validation.constants[name]
                physics = f"{achieved:.1f}"
                error = f"{100 * (achieved - goals[name]) / goals[name]:+.1f} %" if name in goals else "free"
            rows.append(f"<tr><td>{name}</td><td align='right'>{mean:.1f} ± {std:.1f}</td><td align='right'>{physics}</td><td align='right'>{error}</td></tr>")
        self.table.setText(f"<table style='font-size: small' cellspacing='2'>{''.join(rows)}</table><small>GPa<br>{self.note(cancelled)}</small>")

    def note(self, cancelled: bool = False) -> str:
        """The line under the table: whether and how the candidate was validated."""
        if self.validation is not None:
            return f"FFT solver {self.validation.seconds:.1f} s · mean |error| {100 * self.validation.mean_relative_error:.1f} %"
        return "validation cancelled" if cancelled else "not validated yet"

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        """A click anywhere on the card (outside the 3-D view and buttons) opens the candidate."""
        if event.button() == Qt.MouseButton.LeftButton and self.found is not None:
            self.openRequested.emit(self)
        super().mousePressEvent(event)

    def close_view(self) -> None:
        """Release the render window."""
        self.view.close()


def _outline(n: int) -> pv.PolyData:
    return pv.ImageData(dimensions=(n + 1,) * 3).outline()


class _ResizeWatcher(QObject):
    """Calls back when the watched widget is resized (to reflow the cards)."""

    def __init__(self, callback, parent: QObject) -> None:
        super().__init__(parent)
        self.callback = callback

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Resize:
            self.callback()
        return False


class TargetPanel(QWidget):
    """Target properties, "Find candidates", and the candidates' cards.

    Parameters
    ----------
    host : MainWindow
        Runs the workers, shows structures and errors, keeps the settings.

    Signals
    -------
    candidatesShown(list)
        Every card of a search is drawn; the list holds the :class:`Candidate` objects.
    validated(str, object)
        A card's validation finished: its label and the :class:`Validation` (``None``: cancelled).
    """

    candidatesShown = Signal(list)
    validated = Signal(str, object)

    def __init__(self, host: MainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.model: Any = None
        self.model_identity = ""
        self.training = TrainingData(None, None, "No model loaded.")
        self.rows: list[PropertyRow] = []
        self.cards: list[CandidateCard] = []
        self.found: list[FoundCandidate] = []
        self.search_target: Target | None = None
        self.search_seed = 0
        self._search_token = 0
        layout = QVBoxLayout(self)

        self.message = QLabel()
        self.message.setObjectName("targetMessage")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

        self.target_box = QGroupBox("Target stiffness")
        box_layout = QVBoxLayout(self.target_box)
        self.grid = QGridLayout()
        self.grid.setColumnStretch(2, 1)
        box_layout.addLayout(self.grid)
        self.free_note = QLabel()
        self.free_note.setWordWrap(True)
        self.free_note.setStyleSheet("color: gray;")
        box_layout.addWidget(self.free_note)
        self.warning = QLabel()
        self.warning.setObjectName("extrapolationWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARNING_STYLE)
        box_layout.addWidget(self.warning)
        self.problem = QLabel()
        self.problem.setObjectName("targetProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(ERROR_STYLE)
        box_layout.addWidget(self.problem)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Samples / component"))
        self.samples = QSpinBox()
        self.samples.setRange(0, MAX_SAMPLES)
        self.samples.setToolTip("Extra structures drawn around each mixture component's mean")
        controls.addWidget(self.samples)
        controls.addWidget(QLabel("Seed"))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        controls.addWidget(self.seed)
        controls.addStretch(1)
        box_layout.addLayout(controls)
        self.find_button = QPushButton("Find candidates")
        self.find_button.setObjectName("findCandidates")
        self.find_button.clicked.connect(self.find_candidates)
        box_layout.addWidget(self.find_button)
        layout.addWidget(self.target_box)
        # Imported here: the design box's cards build on this module's CandidateCard.
        from vaereg_studio.design_panel import DesignBox

        self.design_box = DesignBox(self)
        layout.addWidget(self.design_box)

        self.status = QLabel()
        self.status.setObjectName("candidateStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.card_area = QWidget()
        self.card_grid = QGridLayout(self.card_area)
        self.card_grid.setContentsMargins(0, 0, 0, 0)
        self.card_grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.scroll.setWidget(self.card_area)
        self.scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.scroll.viewport().installEventFilter(_ResizeWatcher(self.reflow, self))
        layout.addWidget(self.scroll, 1)
        self.samples.valueChanged.connect(self._save_values)
        self.seed.valueChanged.connect(self._save_values)
        self.set_model(None, "No model loaded.")

    # ------------------------------------------------------------------ model

    def set_model(self, model: Any, description: str, identity: str = "", training: TrainingData | None = None) -> None:
        """Build the controls for ``model``'s properties (``None``: say why there is none)."""
        self.model, self.model_identity = model, identity
        self._search_token += 1  # results of a search for the previous model are dropped
        self.design_box.reset()
        for row in self.rows:
            for widget in row.widgets():
                widget.deleteLater()
        self.rows = []
        self.found = []
        for card in self.cards:
            card.hide()
        self.status.clear()
        if model is None or not getattr(model, "is_generative", False):
            why = description if model is None else f"{description}<br>This is a regression-only model: it has no prior to draw candidates from."
            self.message.setText(f"<b>Target properties and candidates</b><p>{why}</p><p>This panel needs a trained VAE-Regression model (File → Open Model…).</p>")
            self.message.show()
            self.target_box.hide()
            self.design_box.hide()
            self.scroll.hide()
            return
        self.training = training or TrainingData(None, None, "No training property table was looked for.")
        stored = self.host.settings.group_values("design", {"samples": 0, "seed": 0})
        self.samples.setValue(min(stored["samples"], MAX_SAMPLES))
        self.seed.setValue(stored["seed"])
        reference = self.training.properties
        for i, name in enumerate(model.property_names):
            low, high = model.ranges.get(name, (1.0, 100.0))
            row = PropertyRow(name, float(low), float(high), self.grid, i)
            # A real test structure's constants (achievable); mid-range values only without the table.
            default = self.training.default[name] if self.training.default else math.sqrt(low * high)
            row.set_value(_float(stored.get(f"target_{name}"), default))
            can_free = reference is not None
            row.free.setEnabled(can_free)
            row.free.setChecked(can_free and str(stored.get(f"free_{name}", "false")).lower() == "true")
            if not can_free:
                row.free.setToolTip(self.training.reason)
            row.spin.valueChanged.connect(self._target_changed)
            row.free.toggled.connect(self._target_changed)
            self.rows.append(row)
        notes = [] if reference is not None else [f"“free” is off: {self.training.reason}"]
        if self.training.default is None:
            notes.append("The default target is the middle of each range, not a real structure's constants.")
        self.free_note.setText(" ".join(notes))
        self.free_note.setVisible(bool(notes))
        self._target_changed()
        # Shown after the rows exist: widgets added to an already visible parent stay hidden.
        self.message.hide()
        self.target_box.show()
        self.design_box.show()
        self.scroll.show()

    # ------------------------------------------------------------------ target

    def target(self) -> Target:
        """The target as set in the controls.

        Raises
        ------
        TargetError
            No model, or no property constrained.
        """
        if self.model is None:
            raise TargetError("no model is loaded")
        return parse_target({r.name: r.value for r in self.rows if r.value is not None}, self.model.property_names, self.model.ranges)

    def _target_changed(self) -> None:
        try:
            target = self.target()
        except TargetError as exc:
            self.problem.setText(str(exc))
            self.problem.show()
            self.warning.hide()
            self.find_button.setEnabled(False)
            self.design_box.target_changed(usable=False)
            return
        self.problem.hide()
        self.find_button.setEnabled(True)
        self.design_box.target_changed(usable=True)
        self.warning.setText(extrapolation_text(target, self.model.ranges))
        self.warning.setVisible(bool(target.extrapolated))
        self._save_values()

    def set_target_values(self, values: dict[str, float]) -> None:
        """Set these properties' targets (GPa) and constrain them; the others stay as they are."""
        for row in self.rows:
            if row.name in values:
                row.free.setChecked(False)
                row.set_value(values[row.name])
        self._target_changed()

    def _save_values(self) -> None:
        values: dict[str, Any] = {"samples": self.samples.value(), "seed": self.seed.value()}
        for row in self.rows:
            values[f"target_{row.name}"] = row.spin.value()
            values[f"free_{row.name}"] = row.free.isChecked()
        self.host.settings.set_group_values("design", values)

    # ------------------------------------------------------------------ candidates

    def find_candidates(self) -> None:
        """Draw the model's candidates for the current target (on a worker)."""
        try:
            target = self.target()
        except TargetError as exc:
            self.host.report_error("The target is not usable.", exc)
            return
        self._search_token += 1
        token, seed = self._search_token, self.seed.value()
        self.find_button.setEnabled(False)
        self.status.setText(f"Finding candidates for {target}…")

        def found(result: list[FoundCandidate]) -> None:
            if token != self._search_token:
                return
            self.find_button.setEnabled(True)
            self.search_target, self.search_seed, self.found = target, seed, result
            self.status.setText(f"{len(result)} candidates for {target}; click one to show it in the 3-D view.")
            for card in self.cards[len(result) :]:
                card.hide()
            self._fill_card(0, token)

        def failed(exc: Exception) -> None:
            if token == self._search_token:
                self.find_button.setEnabled(True)
                self.status.setText("No candidates.")
                self.host.report_error("Cannot find candidates.", exc)

        self.host.run_worker(
            find_candidates, self.model, target, self.samples.value(), seed, self.training.properties,
            on_result=found, on_error=failed,
        )

    def _fill_card(self, index: int, token: int) -> None:
        """Draw card ``index``, then the next one on the next event-loop turn (the UI stays live)."""
        if token != self._search_token:
            return
        if index == len(self.found):
            self.reflow()
            self.candidatesShown.emit([f.candidate for f in self.found])
            for card in self.visible_cards():  # validated in the background, one compute slot each
                if card.token is None:
                    self.validate_card(card)
            return
        if index == len(self.cards):
            options = self.host.viewer.options
            card = CandidateCard(options.background, options.hard_colour, self.card_area)
            card.openRequested.connect(self.open_card)
            card.validateRequested.connect(self.validate_card)
            self.cards.append(card)
            self.reflow()
        card = self.cards[index]
        if card.token is not None:
            card.token.cancel()  # a validation of the previous candidate in this card is obsolete
        card.show()
        card.show_candidate(self.found[index], self.search_target)
        QTimer.singleShot(0, lambda: self._fill_card(index + 1, token))

    def reflow(self) -> None:
        """Lay the visible cards out (designs first) in as many columns as the panel is wide."""
        cards = [*self.design_box.cards, *self.cards]
        visible = [c for c in cards if not c.isHidden()]
        spacing = max(self.card_grid.horizontalSpacing(), 0)
        columns = max(1, (self.scroll.viewport().width() + spacing) // (CARD_WIDTH + spacing))
        for card in cards:
            self.card_grid.removeWidget(card)
        for i, card in enumerate(visible):
            self.card_grid.addWidget(card, i // columns, i % columns, Qt.AlignmentFlag.AlignTop)

    def visible_cards(self) -> list[CandidateCard]:
        """Cards of the current search, in order."""
        return [c for c in self.cards[: len(self.found)] if not c.isHidden()]

    def open_card(self, card: CandidateCard) -> None:
        """Show a card's candidate in the main viewer, with its provenance."""
        c = card.found.candidate
        metadata = candidate_metadata(c, card.target, self.model_identity, self.search_seed)
        if card.validation is not None:
            metadata["validation"] = card.validation.to_dict()
        self.host.show_voxels(c.voxels, f"candidate {c.label}", metadata)

    def validate_card(self, card: CandidateCard) -> None:
        """Validate a card's candidate with the physics solver (or cancel a running validation)."""
        if card.token is not None:
            card.token.cancel()
            return
        card.token = token = CancelToken()
        found, target = card.found, card.target
        card.set_validating(True)

        def done(validation: Validation | None) -> None:
            if card.found is found:  # the card may show another candidate by now
                card.set_validation(validation)
                self.validated.emit(card.label, validation)

        def failed(exc: Exception) -> None:
            if card.found is found:
                card.set_validation(None)
            self.host.report_error(f"Cannot validate candidate {found.candidate.label}.", exc)

        self.host.run_worker(validate_structure, found.candidate.voxels, target, token, on_result=done, on_error=failed)

    def cancel_validations(self) -> None:
        """Stop every running validation and design."""
        self.design_box.cancel()
        for card in self.cards:
            if card.token is not None:
                card.token.cancel()

    def close_views(self) -> None:
        """Release the cards' render windows (before the window goes)."""
        self.design_box.close_views()
        for card in self.cards:
            card.close_view()


def extrapolation_text(target: Target, ranges: dict[str, tuple[float, float]]) -> str:
    """The warning for targets outside the training range ("" when all are inside)."""
    if not target.extrapolated:
        return ""
    values = target.as_dict()
    parts = [f"{n} = {values[n]:g} GPa (data: {ranges[n][0]:.1f}–{ranges[n][1]:.1f})" for n in target.extrapolated]
    return "⚠ Extrapolation: " + "; ".join(parts) + ". The model has not seen such structures; check candidates with Validate."


def _float(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default
