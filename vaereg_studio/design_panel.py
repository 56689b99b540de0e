"""The target panel's "Design" box: the verified loop (the FFT solver decides) for the panel's target.

A thin widget over :mod:`vaereg_studio.design_worker`: the feasibility line
(on a worker, after the target settles), budget and alternatives, a progress
bar with the solver's best verified error, Cancel, and the designs as cards
beside the candidates (marked "verified", the solver's constants next to the
model's prediction). The run itself is in a child process, waited for on a
worker thread; its progress comes to the UI thread as a Qt signal.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget

from vaereg_core.inverse.feasibility import IMPOSSIBLE, Feasibility
from vaereg_core.inverse.targets import Target, TargetError
from vaereg_core.inverse.verified import DesignSettings
from vaereg_studio.design_process import DesignJob
from vaereg_studio.design_state import CancelToken, FoundCandidate
from vaereg_studio.design_worker import DesignOutcome, FoundDesign, design_metadata, feasibility, run_design
from vaereg_studio.target_panel import ERROR_STYLE, WARNING_STYLE, CandidateCard

if TYPE_CHECKING:
    from vaereg_studio.target_panel import TargetPanel

DESIGN_DEFAULTS = {"seconds": 60, "alternatives": 2}
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
    panel : TargetPanel
        Gives the target, the model and the training table; lays out the cards.

    Signals
    -------
    designsShown(list)
        Every card of a run is drawn; the list holds ``(label, path)`` pairs,
        ``path`` the design's latent vectors (for the latent map).
    finished(object)
        A run ended: the :class:`DesignOutcome`, or ``None`` when cancelled.
    """

    designsShown = Signal(list)
    finished = Signal(object)
    _progressed = Signal(dict)  # emitted on the worker thread, delivered on the UI thread

    def __init__(self, panel: TargetPanel, parent: QWidget | None = None) -> None:
        super().__init__("Verified design — the FFT solver decides", parent)
        self.setObjectName("designBox")
        self.panel = panel
        self.cards: list[DesignCard] = []
        self.outcome: DesignOutcome | None = None
        self.verdict: Feasibility | None = None  # of the target as set now
        self.run_verdict: Feasibility | None = None  # of the finished run's target
        self.last_entry: dict | None = None
        self.question: QMessageBox | None = None
        self.token: CancelToken | None = None
        self.started, self.budget = 0.0, 0.0
        self._run = 0  # results of a run for an earlier model or target are dropped
        self._assessed = 0
        layout = QVBoxLayout(self)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Budget"))
        self.seconds = QSpinBox()
        self.seconds.setObjectName("designSeconds")
        self.seconds.setRange(5, 3600)
        self.seconds.setSuffix(" s")
        self.seconds.setToolTip("Wall-time budget of the run, the final solves included")
        controls.addWidget(self.seconds)
        controls.addWidget(QLabel("Alternatives"))
        self.alternatives = QSpinBox()
        self.alternatives.setObjectName("designAlternatives")
        self.alternatives.setRange(1, 8)
        self.alternatives.setToolTip("Designs of different morphology to return (fewer when the run finds fewer)")
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
        stored = panel.host.settings.group_values("verified_design", DESIGN_DEFAULTS)
        self.seconds.setValue(stored["seconds"])
        self.alternatives.setValue(stored["alternatives"])
        self.seconds.valueChanged.connect(self._save_values)
        self.alternatives.valueChanged.connect(self._save_values)

    def _save_values(self) -> None:
        self.panel.host.settings.set_group_values("verified_design", {"seconds": self.seconds.value(), "alternatives": self.alternatives.value()})

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self.token is not None

    # ------------------------------------------------------------------ feasibility

    def target_changed(self, usable: bool) -> None:
        """The panel's target changed: re-assess it once it settles (``usable``: it parses)."""
        self._assessed += 1
        self.verdict = None
        self.button.setEnabled(self.running or usable)
        if usable:
            self.feasibility_label.setText("Feasibility: checking…")
            self.feasibility_label.setStyleSheet("color: gray;")
            self._assess_timer.start()
        else:
            self._assess_timer.stop()
            self.feasibility_label.clear()

    def _assess(self) -> None:
        try:
            target = self.panel.target()
        except TargetError:
            return
        ticket = self._assessed

        def done(verdict: Feasibility) -> None:
            if ticket == self._assessed:
                self.show_verdict(verdict)

        self.panel.host.run_worker(
            feasibility, target, self.panel.training.properties,
            on_result=done, on_error=lambda e: self.feasibility_label.setText(f"Feasibility not known: {e}"),
        )

    def show_verdict(self, verdict: Feasibility) -> None:
        """Show the feasibility line (``Feasibility: achievable — …``)."""
        self.verdict = verdict
        line = verdict.line()
        self.feasibility_label.setText(line[0].upper() + line[1:])
        self.feasibility_label.setStyleSheet(VERDICT_STYLES.get(verdict.verdict, ""))

    # ------------------------------------------------------------------ running

    def design_or_cancel(self) -> None:
        """Start a run for the panel's target (an impossible one only when confirmed), or cancel the running one."""
        if self.token is not None:
            self.token.cancel()
            return
        try:
            target = self.panel.target()
        except TargetError as exc:
            self.panel.host.report_error("The target is not usable.", exc)
            return
        # Assessed now if the last change has not been yet: a run never starts unassessed.
        verdict = self.verdict if self.verdict is not None else feasibility(target, self.panel.training.properties)
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
                self.panel.set_target_values(verdict.nearest)
                self.status.setText("The target is now the nearest achievable one; press Design.")

        box.finished.connect(answered)
        self.question = box
        box.open()

    def start(self, target: Target, verdict: Feasibility) -> None:
        """Run the verified loop for ``target`` on a worker (the loop itself in a child process)."""
        panel, host = self.panel, self.panel.host
        if host.model_path is None or panel.model is None:
            host.report_error("No model to design with.", "Open a model first (File → Open Model…).")
            return
        try:
            settings = DesignSettings(seconds=float(self.seconds.value()), alternatives=self.alternatives.value())
        except ValueError as exc:
            host.report_error("These design settings cannot run.", exc)
            return
        job = DesignJob(host.model_path, panel.model.file.checksum, str(panel.model.device), target, settings, panel.training.properties)
        self._run += 1
        run, self.token = self._run, CancelToken()
        token = self.token
        self.started, self.last_entry, self.budget = time.perf_counter(), None, settings.seconds
        self.button.setText("Cancel")
        self.bar.setValue(0)
        self.bar.show()
        self.status.setStyleSheet("")
        self.status.setText("Queued: waiting for a free CPU core…")

        def done(outcome: DesignOutcome | None) -> None:
            if run == self._run:
                self._finish(outcome, target, verdict)

        def failed(exc: Exception) -> None:
            if run == self._run:
                self._stopped()
                self.status.setText("The design run failed.")
                host.report_error("The design run failed.", exc)

        host.run_worker(run_design, job, self._progressed.emit, token, on_result=done, on_error=failed)

    def _show_progress(self, entry: dict) -> None:
        """A progress entry from the worker (UI thread): the solver's best verified error so far."""
        if self.token is None or self.token():
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
        self.token = None
        self.button.setText("Design")
        self.bar.hide()

    def _finish(self, outcome: DesignOutcome | None, target: Target, verdict: Feasibility) -> None:
        self._stopped()
        if outcome is None:
            e = self.last_entry
            so_far = "" if e is None else f"; best verified error then {100 * e['best_error']:.2f} % after {e['solver_calls']} solves"
            self.status.setText(f"Cancelled after {time.perf_counter() - self.started:.1f} s{so_far}. No designs: they are re-solved only when a run ends.")
            self.finished.emit(None)
            return
        self.outcome, self.run_verdict = outcome, verdict
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
        run = self._run
        QTimer.singleShot(0, lambda: self._fill_card(0, run, target))  # the result callback returns at once

    def _fill_card(self, index: int, run: int, target: Target) -> None:
        """Draw card ``index``, then the next on the next event-loop turn (each new 3-D view costs 0.1–0.4 s)."""
        if run != self._run or self.outcome is None:
            return
        designs = self.outcome.designs
        if index == len(designs):
            self.panel.reflow()
            self.designsShown.emit([(f.candidate.label, f.path) for f in designs])
            self.finished.emit(self.outcome)
            return
        if index == len(self.cards):
            options = self.panel.host.viewer.options
            card = DesignCard(options.background, options.hard_colour, self.panel.card_area)
            card.openRequested.connect(self.open_card)
            self.cards.append(card)
        card = self.cards[index]
        card.show()
        card.show_design(designs[index], target)
        self.panel.reflow()
        QTimer.singleShot(0, lambda: self._fill_card(index + 1, run, target))

    def open_card(self, card: DesignCard) -> None:
        """Show a design in the main viewer, its provenance the design's dict."""
        if self.outcome is None:
            return
        metadata = design_metadata(card.design, self.outcome.result, self.run_verdict, self.panel.model_identity)
        self.panel.host.show_voxels(card.design.candidate.voxels, f"design {card.label}", metadata)

    def cancel(self) -> None:
        """Stop the running design (returns at once; the child is killed)."""
        if self.token is not None:
            self.token.cancel()
        if self.question is not None:
            self.question.reject()

    def reset(self) -> None:
        """A new model: stop any run and drop its designs."""
        self.cancel()
        self._run += 1
        self._stopped()
        self.outcome = None
        self.status.clear()
        self.feasibility_label.clear()
        for card in self.cards:
            card.hide()
        self.designsShown.emit([])

    def visible_cards(self) -> list[DesignCard]:
        """The current run's cards, best first."""
        return [c for c in self.cards if not c.isHidden()]

    def close_views(self) -> None:
        """Release the cards' render windows."""
        for card in self.cards:
            card.close_view()

