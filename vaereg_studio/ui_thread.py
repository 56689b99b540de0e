"""Posting calls onto the Qt event loop's thread: how the task runner delivers results in the app."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal


class _Poster(QObject):
    """Calls what is emitted to it on its own (the GUI) thread, through a queued connection."""

    posted = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.posted.connect(self._call, Qt.ConnectionType.QueuedConnection)

    def _call(self, function: Callable[[], None]) -> None:
        function()


_POSTER: _Poster | None = None  # one for the process, never deleted: workers may post until they end


def post_to_ui_thread() -> Callable[[Callable[[], None]], None]:
    """A ``post`` for :class:`~vaereg_studio.session.tasks.TaskRunner`; call it on the GUI thread first."""
    global _POSTER
    if _POSTER is None:
        _POSTER = _Poster()
    return _POSTER.posted.emit
