"""The target-property panel: target stiffness in, mixture candidates side by side out.

A view of the session's target and candidates: the rows set the session's
target, "Find candidates" asks the session, and each candidate of the
session gets a card (:mod:`vaereg_studio.candidate_card`) with its own small
3-D view. Cards are created one per event-loop turn (each new OpenGL view
costs 0.1–0.4 s) and reused by later searches instead of being rebuilt.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
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

from vaereg_core.inverse.targets import Target, TargetError, parse_target
from vaereg_studio.candidate_card import CARD_WIDTH, ERROR_STYLE, WARNING_STYLE, CandidateCard
from vaereg_studio.design_panel import DesignBox
from vaereg_studio.design_state import TrainingData, candidate_metadata
from vaereg_studio.loading_notice import LoadingNotice
from vaereg_studio.session import DesignSession
from vaereg_studio.session.records import CandidateEntry, LoadedModel, model_description
from vaereg_studio.settings import AppSettings

SLIDER_STEPS = 1000
MAX_SAMPLES = 4  # per component: K × 5 cards at most, each with an OpenGL view


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


class _ResizeWatcher(QObject):
    """Calls back when the watched widget is resized (to reflow the cards)."""

    def __init__(self, callback, parent: QObject) -> None:
        super().__init__(parent)
        self.callback = callback

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.callback()
        return False


class TargetPanel(QWidget):
    """Target properties, "Find candidates", and the candidates' cards.

    Parameters
    ----------
    session : DesignSession
        The model, target and candidates this panel shows and sets.
    settings : AppSettings
        Keeps the controls' values between runs of the app.

    Signals
    -------
    candidatesDrawn(list)
        Every card of a search is drawn, perhaps before the model's predictions are in; the :class:`Candidate` objects.
    candidatesShown(list)
        Every card of a search is drawn with its prediction (validations start then); the :class:`Candidate` objects.
    validated(str, object)
        A card's validation finished: its label and the :class:`Validation` (``None``: cancelled).
    """

    candidatesDrawn = Signal(list)
    candidatesShown = Signal(list)
    validated = Signal(str, object)

    def __init__(self, session: DesignSession, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.settings = session, settings
        self.rows: list[PropertyRow] = []
        self.cards: list[CandidateCard] = []
        self._drawing = 0  # a newer search's cards replace an older one's being drawn
        self._drawn = -1  # the search whose cards are all drawn
        self._shown = -1  # the search whose cards are drawn with their predictions
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
        self.card_area = QWidget()  # the candidates' and the designs' cards
        self.design_box = DesignBox(session, settings, self.card_area)
        self.design_box.cardsChanged.connect(self.reflow)
        self.design_box.nearestChosen.connect(self.set_target_values)
        layout.addWidget(self.design_box)

        self.status = QLabel()
        self.status.setObjectName("candidateStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.card_grid = QGridLayout(self.card_area)
        self.card_grid.setContentsMargins(0, 0, 0, 0)
        self.card_grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.scroll.setWidget(self.card_area)
        self.scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.scroll.viewport().installEventFilter(_ResizeWatcher(self.reflow, self))
        layout.addWidget(self.scroll, 1)
        self.samples.valueChanged.connect(self._save_values)
        self.seed.valueChanged.connect(self._save_values)
        self.loading = LoadingNotice(self, self.message, "Target properties and candidates")
        events = session.events
        events.model_loading.connect(self.loading.show_loading)
        events.model.connect(self.set_model)
        events.searching.connect(self._searching)
        events.candidates.connect(self._show_candidates)
        events.predictions.connect(self._show_predictions)
        events.validation.connect(self._validation_changed)
        events.restored.connect(self._restored)
        self.set_model(session.model)
        self.loading.show_loading(session.loading_model)

    @property
    def training(self) -> TrainingData:
        """The model's training property table (or why there is none)."""
        m = self.session.model
        return m.training if m is not None else TrainingData(None, None, "No model loaded.")

    # ------------------------------------------------------------------ model

    def set_model(self, loaded: LoadedModel | None) -> None:
        """Build the controls for the model's properties (``None``: say why there is none)."""
        self._drawing += 1
        self.design_box.reset()
        for row in self.rows:
            for widget in row.widgets():
                widget.deleteLater()
        self.rows = []
        for card in self.cards:
            card.hide()
        self.status.clear()
        if loaded is None or not loaded.is_generative:
            description = model_description(loaded)
            why = description if loaded is None else f"{description}<br>This is a regression-only model: it has no prior to draw candidates from."
            self.message.setText(f"<b>Target properties and candidates</b><p>{why}</p><p>This panel needs a trained VAE-Regression model (File → Open Model…).</p>")
            self.message.show()
            self.target_box.hide()
            self.design_box.hide()
            self.scroll.hide()
            return
        model = loaded.info
        stored = self.settings.group_values("design", {"samples": 0, "seed": 0})
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
        if self.session.model is None:
            raise TargetError("no model is loaded")
        model = self.session.model.info
        return parse_target({r.name: r.value for r in self.rows if r.value is not None}, model.property_names, model.ranges)

    def _target_changed(self) -> None:
        try:
            target = self.target()
        except TargetError as exc:
            self.problem.setText(str(exc))
            self.problem.show()
            self.warning.hide()
            self.find_button.setEnabled(False)
            self.session.set_target(None)
            return
        self.problem.hide()
        self.find_button.setEnabled(not self.session.searching)
        self.session.set_target(target)
        self.warning.setText(extrapolation_text(target, self.session.model.info.ranges))
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
        self.settings.set_group_values("design", values)

    # ------------------------------------------------------------------ candidates

    def find_candidates(self) -> None:
        """Ask the session for the model's candidates for the current target."""
        try:
            self.session.find_candidates(self.samples.value(), self.seed.value())
        except TargetError as exc:
            self.session.events.error.emit("The target is not usable.", exc)

    def _searching(self, running: bool) -> None:
        self.find_button.setEnabled(not running and self.session.target is not None)
        if running:
            self.status.setText(f"Finding candidates for {self.session.target}…")
        elif not self.session.candidates:
            self.status.setText("No candidates.")

    def _show_candidates(self, entries: list[CandidateEntry]) -> None:
        """The session's new candidates: a card each (drawn one per event-loop turn), then validated."""
        self._drawing += 1
        if entries:
            self.status.setText(f"{len(entries)} candidates for {entries[0].target}; click one to show it in the 3-D view.")
        for card in self.cards[len(entries) :]:
            card.hide()
        self._fill_card(0, self._drawing)

    def _fill_card(self, index: int, drawing: int) -> None:
        """Draw card ``index``, then the next one on the next event-loop turn (the UI stays live)."""
        entries = self.session.candidates
        if drawing != self._drawing:
            return
        if index == len(entries):
            self.reflow()
            self._drawn = drawing
            self.candidatesDrawn.emit([e.found.candidate for e in entries])
            self._complete_search()
            return
        if index == len(self.cards):
            options = self.session.view_options
            card = CandidateCard(options.background, options.hard_colour, self.card_area)
            card.openRequested.connect(self.open_card)
            card.validateRequested.connect(self.validate_card)
            self.cards.append(card)
            self.reflow()
        card, entry = self.cards[index], entries[index]
        card.show()
        card.show_candidate(entry.found, entry.target)
        self._validation_changed(index)
        QTimer.singleShot(0, lambda: self._fill_card(index + 1, drawing))

    def _show_predictions(self, entries: list[CandidateEntry]) -> None:
        """The model's predictions for the drawn cards are in: fill in their tables."""
        for card in self.cards[: len(entries)]:
            if card.found is not None and any(card.found is e.found for e in entries):
                card.show_prediction()
        self._complete_search()

    def _complete_search(self) -> None:
        """Once the search's cards are drawn and predicted: say so, and validate them in the background.

        Not before the predictions: the solver's processes would take the
        cores from the forward ensemble.
        """
        entries = self.session.candidates
        if self._drawn != self._drawing or self._shown == self._drawing or not all(e.found.candidate.is_predicted for e in entries):
            return
        self._shown = self._drawing
        self.candidatesShown.emit([e.found.candidate for e in entries])
        self.session.validate_all()  # one compute slot each

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
        return [c for c in self.cards[: len(self.session.candidates)] if not c.isHidden()]

    def open_card(self, card: CandidateCard) -> None:
        """Show a card's candidate in the main viewer, with its provenance."""
        c = card.found.candidate
        metadata = candidate_metadata(c, card.target, self.session.model.identity, self.session.search_seed)
        if card.validation is not None:
            metadata["validation"] = card.validation.to_dict()
        self.session.show_voxels(c.voxels, f"candidate {c.label}", metadata)

    def validate_card(self, card: CandidateCard) -> None:
        """Validate a card's candidate with the physics solver (or stop a running validation)."""
        index = self.cards.index(card)
        if self.session.candidates[index].status == "validating":
            self.session.stop_validation(index)
        else:
            self.session.validate(index)

    def _validation_changed(self, index: int) -> None:
        """Show candidate ``index``'s validation state on its card."""
        if index >= len(self.cards) or self.cards[index].found is not self.session.candidates[index].found:
            return  # its card is not drawn yet
        card, entry = self.cards[index], self.session.candidates[index]
        if entry.status == "validating":
            card.set_validating(True)
        elif entry.status in ("validated", "cancelled", "failed"):
            card.set_validation(entry.validation)
            if entry.status != "failed":
                self.validated.emit(entry.label, entry.validation if entry.status == "validated" else None)

    def _restored(self) -> None:
        """A reopened session: the target's values in the rows (its candidates come as a new search)."""
        target = self.session.target
        if target is None:
            return
        values = target.as_dict()
        for row in self.rows:
            row.free.setChecked(row.name not in values and row.free.isEnabled())
        self.set_target_values(values)

    def close_question(self) -> None:
        """Close the design box's open question (the window is closing)."""
        self.design_box.close_question()

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
