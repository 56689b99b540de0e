"""A model-dependent panel while its session loads a model: disabled, saying so; as it was once loading ends."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel, QWidget


def loading_text(path: Path) -> str:
    """The panels' words for a model being loaded."""
    return f"Loading model {path.name}…"


class LoadingNotice:
    """Disables ``panel`` and puts "Loading model NAME…" in its ``message`` label while a model loads.

    When loading ends the label gets back what it said before, so a failed
    load leaves the panel showing the model it still has; a successful one is
    followed by the session's ``model`` event, which redraws the panel.

    Parameters
    ----------
    panel : QWidget
        The panel to disable.
    message : QLabel
        The panel's message line.
    title : str
        The panel's name, in bold above the notice.
    """

    def __init__(self, panel: QWidget, message: QLabel, title: str) -> None:
        self.panel, self.message, self.title = panel, message, title
        self._before: tuple[str, bool] | None = None  # the label's text and visibility before loading

    def show_loading(self, path: Path | None) -> None:
        """``path``: a model is being loaded; ``None``: loading ended."""
        if path is not None:
            if self._before is None:
                self._before = (self.message.text(), not self.message.isHidden())
            self.message.setText(f"<b>{self.title}</b><p>{loading_text(path)}</p>")
            self.message.show()
            self.panel.setEnabled(False)
            return
        if self._before is not None:
            text, visible = self._before
            self.message.setText(text)
            self.message.setVisible(visible)
            self._before = None
        self.panel.setEnabled(True)
