"""The target panel's "Design" box: the verified loop (the FFT solver decides) for the panel's target.

A thin view of the session's design runs: the feasibility line (assessed by
the session after the target settles), budget and alternatives, a progress
bar with the solver's best verified error, Cancel, and the designs as cards
beside the candidates (marked "verified", the solver's constants next to the
model's prediction). The run itself is in a child process, waited for on a
worker thread; its progress comes to the UI thread as a Qt signal.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vaereg_core.inverse.feasibility import IMPOSSIBLE, Feasibility
from vaereg_core.inverse.targets import Target, TargetError
from vaereg_core.inverse.verified import DesignSettings
from vaereg_studio.candidate_card import ERROR_STYLE, WARNING_STYLE, CandidateCard
from vaereg_studio.design_state import FoundCandidate
from vaereg_studio.design_worker import DesignOutcome, FoundDesign, design_metadata, feasibility
from vaereg_studio.session import DesignSession
from vaereg_studio.session.records import DesignRun
from vaereg_studio.setting_controls import spin_boxes
from vaereg_studio.settings import AppSettings

FEASIBILITY_DELAY_MS = 250  # the target settles (a slider drag) before it is assessed
VERIFIED_STYLE = "color: #1b7f3b; font-weight: bold;"
VERDICT_STYLES = {"achievable": "color: #1b7f3b;", "outside the data": WARNING_STYLE, IMPOSSIBLE: ERROR_STYLE}


class DesignCard(CandidateCard):
    """A verified design's card: the solver's constants filled in as its validation, no Validate button."""

    physics_header = "solver"

    def show_design(self, found: FoundDesign, target: Target) -> None:
        """Draw ``found`` and its verified constants against ``target``."""
        self.design = found
        self.show_candidate(FoundCandidate(found.candidate, found.thumbnail), target)
        c = found.candidate
        self.title.setText(f"<b>{c.label}</b> · <span style='{VERIFIED_STYLE}'>✓ verified</span> · vf {c.volume_fraction:.3f} · from k{c.component + 1}")
        self.set_validation(found.validation)
        self.validate_button.hide()

    def note(self, cancelled: bool = False) -> str:
        """Says the constants are the solver's, at which tolerance."""
        v = self.validation
        if v is None:  # between drawing the card and filling in its constants
            return super().note(cancelled)
        return f"verified by the solver (tol {v.solver.get('tol', 1e-4):g})<br>mean |error| {100 * v.mean_relative_error:.1f} %"


class DesignBox(QGroupBox):
    """Budget, alternatives, "Design"/"Cancel", feasibility, live progress and the design cards.

    Parameters
    ----------
    session : DesignSession
        Gives the target, the model and its training table; runs the designs.
    settings : AppSettings
        Keeps the budget and the alternatives between runs of the app.
    card_area : QWidget
        Where the design cards go (the target panel lays them out on ``cardsChanged``).

    Signals
    -------
    cardsChanged()
        Cards were shown or hidden: lay them out again.
    nearestChosen(dict)
        The user chose the nearest achievable target (``{name: GPa}``) for an impossible one.
    finished(object)
        A run ended and its cards are drawn: the :class:`DesignOutcome`, or ``None`` when cancelled.
    """

    cardsChanged = Signal()
    nearestChosen = Signal(dict)
    finished = Signal(object)
    _progressed = Signal(dict)  # emitted on the worker thread, delivered on the UI thread

    def __init__(self, session: DesignSession, settings: AppSettings, card_area: QWidget, parent: QWidget | None = None) -> None:
        super().__init__("Verified design — the FFT solver decides", parent)
        self.setObjectName("designBox")
        self.session, self.settings, self.card_area = session, settings, card_area
        self.cards: list[DesignCard] = []
        self.run: DesignRun | None = None  # the running one
        self._cancelling = False  # Cancel was pressed: the run's last progress entries are not shown
        self.outcome: DesignOutcome | None = None
        self.verdict: Feasibility | None = None  # of the target as set now
        self.run_verdict: Feasibility | None = None  # of the finished run's target
        self.last_entry: dict | None = None
        self.question: QMessageBox | None = None
        self.started, self.budget = 0.0, 0.0
        self._drawing = 0  # cards of an older run (or model) stop being drawn
        layout = QVBoxLayout(self)
        controls = QHBoxLayout()
        boxes = spin_boxes(DesignSettings, ("seconds", "alternatives"))
        self.seconds, self.alternatives = boxes["seconds"], boxes["alternatives"]
        self.seconds.setObjectName("designSeconds")
        self.alternatives.setObjectName("designAlternatives")
        controls.addWidget(QLabel("Budget"))
        controls.addWidget(self.seconds)
        controls.addWidget(QLabel("Alternatives"))
        controls.addWidget(self.alternatives)
        controls.addStretch(1)
        self.button = QPushButton("Design")
        self.button.setObjectName("designButton")
        self.button.setToolTip("Design structures whose stiffness, computed by the FFT solver, meets the target")
        self.button.clicked.connect(self.design_or_cancel)
        controls.addWidget(self.button)
        layout.addLayout(controls)
        self.feasibility_label = QLabel()
        self.feasibility_label.setObjectName("designFeasibility")
        self.feasibility_label.setWordWrap(True)
        layout.addWidget(self.feasibility_label)
        self.bar = QProgressBar()
        self.bar.setObjectName("designProgress")
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(10)
        self.bar.hide()
        layout.addWidget(self.bar)
        self.status = QLabel()
        self.status.setObjectName("designStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._assess_timer = QTimer(self)
        self._assess_timer.setSingleShot(True)
        self._assess_timer.setInterval(FEASIBILITY_DELAY_MS)
        self._assess_timer.timeout.connect(self._assess)
        self._progressed.connect(self._show_progress)
        events = session.events
        events.target.connect(self.target_changed)
        events.feasibility.connect(self._assessed)
        events.design_finished.connect(self._run_finished)
        events.restored.connect(self._restored)
        stored = settings.group_values("verified_design", {"seconds": self.seconds.value(), "alternatives": self.alternatives.value()})
        self.seconds.setValue(stored["seconds"])
        self.alternatives.setValue(stored["alternatives"])
        self.seconds.valueChanged.connect(self._save_values)
        self.alternatives.valueChanged.connect(self._save_values)

    def _save_values(self) -> None:
        self.settings.set_group_values("verified_design", {"seconds": self.seconds.value(), "alternatives": self.alternatives.value()})

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self.run is not None

    # ------------------------------------------------------------------ feasibility

    def target_changed(self, target: Target | None) -> None:
        """The session's target changed: re-assess it once it settles (``None``: no usable target)."""
        self.verdict = None
        self.button.setEnabled(self.running or target is not None)
        if target is not None:
            self.feasibility_label.setText("Feasibility: checking…")
            self.feasibility_label.setStyleSheet("color: gray;")
            self._assess_timer.start()
        else:
            self._assess_timer.stop()
            self.feasibility_label.clear()

    def _assess(self) -> None:
        try:
            self.session.assess()
        except TargetError:
            return

    def _assessed(self, verdict: Feasibility | Exception) -> None:
        if isinstance(verdict, Feasibility):
            self.show_verdict(verdict)
        else:
            self.feasibility_label.setText(f"Feasibility not known: {verdict}")

    def show_verdict(self, verdict: Feasibility) -> None:
        """Show the feasibility line (``Feasibility: achievable — …``)."""
        self.verdict = verdict
        line = verdict.line()
        self.feasibility_label.setText(line[0].upper() + line[1:])
        self.feasibility_label.setStyleSheet(VERDICT_STYLES.get(verdict.verdict, ""))

    # ------------------------------------------------------------------ running

    def design_or_cancel(self) -> None:
        """Start a run for the session's target (an impossible one only when confirmed), or cancel the running one."""
        if self.run is not None:
            self._cancelling = True
            self.session.stop_design()
            return
        try:
            target = self.session.require_target()
        except TargetError as exc:
            self.session.events.error.emit("The target is not usable.", exc)
            return
        # Assessed now if the last change has not been yet: a run never starts unassessed.
        verdict = self.verdict if self.verdict is not None else feasibility(target, self.session.model.training.properties, self.session.model.info.material)
        self.show_verdict(verdict)
        if verdict.verdict == IMPOSSIBLE:
            self._ask_impossible(target, verdict)
            return
        self.start(target, verdict)

    def _ask_impossible(self, target: Target, verdict: Feasibility) -> None:
        """Ask (without blocking the event loop) whether to design an impossible target anyway."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Impossible target", f"No two-phase structure of these phases has {target}.", QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("impossibleTarget")
        box.setInformativeText(f"{verdict.reasons[0]}.\n\nNearest achievable target: {verdict.nearest_text()}.")
        anyway = box.addButton("Design anyway", QMessageBox.ButtonRole.AcceptRole)
        nearest = box.addButton("Use the nearest target", QMessageBox.ButtonRole.ActionRole)
        nearest.setEnabled(verdict.nearest is not None)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered() -> None:
            self.question = None
            if box.clickedButton() is anyway:
                self.start(target, verdict)
            elif box.clickedButton() is nearest:
                self.nearestChosen.emit(verdict.nearest)
                self.status.setText("The target is now the nearest achievable one; press Design.")

        box.finished.connect(answered)
        self.question = box
        box.open()

    def start(self, target: Target, verdict: Feasibility) -> None:
        """Run the verified loop for ``target`` (the session's) in a child process, waited for on a worker."""
        if self.session.model is None:
            self.session.events.error.emit("No model to design with.", "Open a model first (File → Open Model…).")
            return
        try:
            settings = DesignSettings(seconds=float(self.seconds.value()), alternatives=self.alternatives.value())
        except ValueError as exc:
            self.session.events.error.emit("These design settings cannot run.", exc)
            return
        self._drawing += 1
        self._cancelling = False
        self.started, self.last_entry, self.budget = time.perf_counter(), None, settings.seconds
        self.button.setText("Cancel")
        self.bar.setValue(0)
        self.bar.show()
        self.status.setStyleSheet("")
        self.status.setText("Queued: waiting for a free CPU core…")
        self.run = self.session.start_design(settings, verdict, self._progressed.emit)

    def _show_progress(self, entry: dict) -> None:
        """A progress entry from the worker (UI thread): the solver's best verified error so far."""
        if self.run is None or self._cancelling:
            return
        if entry.get("phase") == "starting":
            self.status.setText("Starting: loading the model in the design process…")
            return
        self.last_entry = entry
        budget = self.budget
        self.bar.setValue(round(1000 * min(entry["seconds"] / budget, 1.0)))
        self.status.setText(
            f"Best error <b>{100 * entry['best_error']:.2f} %</b> verified by the solver · "
            f"{entry['solver_calls']} solves · {entry['seconds']:.0f} of {budget:.0f} s"
        )

    def _stopped(self) -> None:
        self.run = None
        self.button.setText("Design")
        self.bar.hide()

    def _run_finished(self, run: DesignRun) -> None:
        if run is not self.run:
            return  # a run of an earlier model
        self._stopped()
        if run.status == "failed":
            self.status.setText("The design run failed.")
        elif run.status == "cancelled":
            e = self.last_entry
            so_far = "" if e is None else f"; best verified error then {100 * e['best_error']:.2f} % after {e['solver_calls']} solves"
            self.status.setText(f"Cancelled after {time.perf_counter() - self.started:.1f} s{so_far}. No designs: they are re-solved only when a run ends.")
            self.finished.emit(None)
        else:
            self.show_run(run)

    def show_run(self, run: DesignRun) -> None:
        """Describe a finished run and draw its designs' cards (one per event-loop turn)."""
        outcome, target = run.outcome, run.target
        self.outcome, self.run_verdict = outcome, run.verdict
        r = outcome.result
        if not outcome.designs:
            self.status.setText(f"No designs: {r.solver_calls} solves in {r.seconds:.1f} s found none.")
        else:
            best = outcome.designs[0].design.mean_error
            met = "goal met" if r.met else f"goal {100 * r.settings.goal:g} % not met"
            self.status.setText(
                f"{len(outcome.designs)} verified design{'s' * (len(outcome.designs) > 1)} for {target}: best "
                f"<b>{100 * best:.2f} %</b> mean error by the solver ({met}); {r.solver_calls} solves in {r.seconds:.0f} s."
            )
        self.status.setStyleSheet(VERDICT_STYLES["achievable"] if r.met else "")
        for card in self.cards[len(outcome.designs):]:
            card.hide()
        self._drawing += 1
        drawing = self._drawing
        QTimer.singleShot(0, lambda: self._fill_card(0, drawing, target))  # the result callback returns at once

    def _fill_card(self, index: int, drawing: int, target: Target) -> None:
        """Draw card ``index``, then the next on the next event-loop turn (each new 3-D view costs 0.1–0.4 s)."""
        if drawing != self._drawing or self.outcome is None:
            return
        designs = self.outcome.designs
        if index == len(designs):
            self.cardsChanged.emit()
            self.finished.emit(self.outcome)
            return
        if index == len(self.cards):
            options = self.session.view_options
            card = DesignCard(options.background, options.hard_colour, self.card_area)
            card.openRequested.connect(self.open_card)
            self.cards.append(card)
        card = self.cards[index]
        card.show()
        card.show_design(designs[index], target)
        self.cardsChanged.emit()
        QTimer.singleShot(0, lambda: self._fill_card(index + 1, drawing, target))

    def open_card(self, card: DesignCard) -> None:
        """Show a design in the main viewer, its provenance the design's dict."""
        if self.outcome is None:
            return
        metadata = design_metadata(card.design, self.outcome.result, self.run_verdict, self.session.model.identity)
        self.session.show_voxels(card.design.candidate.voxels, f"design {card.label}", metadata)

    def _restored(self) -> None:
        run = self.session.last_design
        if run is not None:
            self.show_run(run)

    def close_question(self) -> None:
        """Close an open question (the impossible-target dialog)."""
        if self.question is not None:
            self.question.reject()

    def reset(self) -> None:
        """A new model: forget the running run (the session stops it) and hide the designs."""
        self.close_question()
        self._drawing += 1
        self._stopped()
        self.outcome = None
        self.status.clear()
        self.feasibility_label.clear()
        for card in self.cards:
            card.hide()

    def visible_cards(self) -> list[DesignCard]:
        """The current run's cards, best first."""
        return [c for c in self.cards if not c.isHidden()]

    def close_views(self) -> None:
        """Release the cards' render windows."""
        for card in self.cards:
            card.close_view()
