"""Cyclic garbage collection on the GUI thread only.

Python's cyclic collector runs on whichever thread crosses an allocation
threshold. The app's workers allocate a lot (torch, NumPy), so a reference
cycle holding a Qt widget or a VTK render object could be freed on a worker
thread, which neither Qt nor VTK allows (a CI run aborted with heap
corruption inside a GUI test). Automatic collection is therefore switched off
while the app runs, and a timer on the GUI thread collects instead — the
approach of pyqtgraph's ``GarbageCollector``, with a ``stop`` that gives
automatic collection back (the tests need that).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadCollector(QObject):
    """Run the cyclic garbage collector from a timer on the thread that owns this object.

    Parameters
    ----------
    interval_ms : int
        How often the generation counts are checked.
    parent : QObject, optional
        Qt parent (keeps the collector alive with it).
    """

    def __init__(self, interval_ms: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)

    def start(self) -> None:
        """Switch automatic collection off and collect on the timer instead."""
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Stop the timer and give collection back to Python."""
        self._timer.stop()
        gc.enable()

    def freeze(self) -> None:
        """Move every object alive now into the permanent generation, which later collections skip.

        For when start-up has made its long-lived objects (modules, torch, the
        model): a full collection scanned all of them, ~0.3 s of the UI thread
        with torch loaded (0 ms once frozen). Frozen objects are still freed by
        reference counting; cycles among them (a model is one) wait for :meth:`unfreeze`.
        """
        gc.freeze()

    def unfreeze(self) -> None:
        """Give the frozen objects back to the collector (what was long-lived may be garbage now)."""
        gc.unfreeze()

    @property
    def is_active(self) -> bool:
        """Whether the timer collects (automatic collection is off)."""
        return self._timer.isActive()

    def collect_due(self) -> None:
        """Collect the oldest generation whose count passed its threshold, as Python would."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if self._thresholds[generation] and counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                return
