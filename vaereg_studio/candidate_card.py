"""A candidate's card: its small 3-D view, weight, volume fraction, predicted and validated constants.

Measured under Xvfb with Mesa's llvmpipe (2 cores): a 3-D view costs
100–400 ms to create (one OpenGL context each) and a 51³ smooth surface (78k
triangles) 80–130 ms per frame at 200×150, a decimated one (8k) 10–20 ms; an
offscreen ``pyvista.Plotter`` thumbnail costs 300 ms per image. So cards keep
live views (they can be turned with the mouse), draw surfaces decimated on
the worker, and are reused by later searches instead of being rebuilt.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from vaereg_core.inverse.design import Validation
from vaereg_core.inverse.targets import Target
from vaereg_studio.design_state import FoundCandidate
from vaereg_studio.scene_view import SceneView, outline_actor, surface_actor

CARD_WIDTH = 226
WARNING_STYLE = "color: #b35c00; font-weight: bold;"
ERROR_STYLE = "color: #b00020;"


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
        self._cancelled = False  # the last validation was cancelled
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.title = QLabel()
        self.title.setObjectName("candidateTitle")
        layout.addWidget(self.title)
        self.view = SceneView(background, self)
        self.view.setFixedSize(CARD_WIDTH - 14, 140)
        self.view.setAcceptDrops(False)
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
        self.found, self.target, self.validation, self._cancelled = found, target, None, False
        c = found.candidate
        self.title.setText(f"<b>{c.label}</b> · π<sub>{c.component + 1}</sub> = {c.weight:.3f} · vf {c.volume_fraction:.3f}")
        self.view.remove_actor("hard_phase")
        if found.thumbnail is not None:
            self.view.set_actor("hard_phase", surface_actor(found.thumbnail, self.colour))
        n = c.voxels.shape[0]
        self.view.set_actor("outline", outline_actor(c.voxels.shape))
        self.view.look_at((1.5 * n, 1.2 * n, 1.8 * n), (n / 2, n / 2, n / 2), (0.0, 0.0, 1.0))
        self.view.render()
        self.set_validating(False)
        self._fill_table()

    def set_validating(self, running: bool) -> None:
        """Switch the button between "Validate" and "Cancel"."""
        self.validate_button.setText("Cancel" if running else ("Validate again" if self.validation else "Validate"))
        self.open_button.setEnabled(True)

    def set_validation(self, validation: Validation | None) -> None:
        """Fill in the physics results (``None``: the validation was cancelled)."""
        self.validation, self._cancelled = validation, validation is None
        self.set_validating(False)
        self._fill_table()

    def show_prediction(self) -> None:
        """Fill in the model's prediction, which came after the card was drawn."""
        self._fill_table()

    def _fill_table(self) -> None:
        c, target = self.found.candidate, self.target
        goals = target.as_dict()
        rows = [f"<tr><th></th><th align='right'>predicted</th><th align='right'>{self.physics_header}</th><th align='right'>error</th></tr>"]
        for name, mean, std in zip(c.property_names, c.predicted, c.predicted_std):
            # Placeholders keep the label's size: a card that changes size re-lays out (and redraws) them all.
            predicted = f"{mean:.1f} ± {std:.1f}" if c.is_predicted else "…"
            physics = error = "—"
            if self.validation is not None:
                achieved = self.validation.constants[name]
                physics = f"{achieved:.1f}"
                error = f"{100 * (achieved - goals[name]) / goals[name]:+.1f} %" if name in goals else "free"
            rows.append(f"<tr><td>{name}</td><td align='right'>{predicted}</td><td align='right'>{physics}</td><td align='right'>{error}</td></tr>")
        self.table.setText(f"<table style='font-size: small' cellspacing='2'>{''.join(rows)}</table><small>GPa<br>{self.note(self._cancelled)}</small>")

    def note(self, cancelled: bool = False) -> str:
        """The line under the table: whether and how the candidate was validated."""
        if self.validation is not None:
            return f"FFT solver {self.validation.seconds:.1f} s · mean |error| {100 * self.validation.mean_relative_error:.1f} %"
        return "validation cancelled" if cancelled else "not validated yet"

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """A click anywhere on the card (outside the 3-D view and buttons) opens the candidate."""
        if event.button() == Qt.MouseButton.LeftButton and self.found is not None:
            self.openRequested.emit(self)
        super().mousePressEvent(event)

    def close_view(self) -> None:
        """Release the render window."""
        self.view.close()
