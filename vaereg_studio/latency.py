"""Event-loop latency probe: how long the UI thread went without serving events."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer


class EventLoopProbe(QObject):
    """Measure the gaps between ticks of a fast timer on the UI thread.

    A timer that should fire every ``interval_ms`` fires late when the event
    loop is blocked; the largest gap between two ticks is the longest time the
    window could not repaint or react to input.

    Parameters
    ----------
    interval_ms : int
        Timer interval. Gaps are at least this long.
    parent : QObject, optional
        Qt parent.

    Examples
    --------
    >>> probe = EventLoopProbe()  # doctest: +SKIP
    >>> probe.start(); ...; probe.stop()  # doctest: +SKIP
    >>> probe.max_gap_ms < 100  # doctest: +SKIP
    """

    def __init__(self, interval_ms: int = 5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self.gaps_ms: list[float] = []

    def start(self) -> None:
        """Forget earlier gaps and start measuring."""
        self.gaps_ms = []
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> list[float]:
        """Stop measuring; return the gaps (ms) between consecutive ticks."""
        self._timer.stop()
        self._tick()
        return self.gaps_ms

    @property
    def max_gap_ms(self) -> float:
        """Longest gap seen, in milliseconds (0 before any tick)."""
        return max(self.gaps_ms, default=0.0)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps_ms.append(1000.0 * (now - self._last))
        self._last = now
