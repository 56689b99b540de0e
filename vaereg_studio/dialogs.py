"""Message boxes and small questions: errors, thresholds, overwrites, About."""

from __future__ import annotations

import logging
import platform
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox, QWidget

import vaereg_core
from vaereg_core.errors import VaeRegError
from vaereg_studio import APP_NAME, __version__

log = logging.getLogger(__name__)


def show_error(parent: QWidget | None, title: str, message: str) -> QMessageBox:
    """Show a readable error without blocking the event loop.

    The box is window-modal and opened with ``open()``, so workers, timers
    and repaints go on while it is up; it deletes itself when closed.
    """
    box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, title, QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText(message)
    box.setObjectName("errorDialog")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.open()
    return box


def describe_exception(exc: BaseException) -> str:
    """One line a user can read: our own errors speak for themselves, others get their type."""
    if isinstance(exc, VaeRegError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Not enough memory for this operation."
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def ask_threshold(parent: QWidget | None, reason: str) -> float | None:
    """Ask for the grey-scale threshold explicitly; ``None`` if the user cancels.

    Voxels above the threshold become the hard phase (the rule of
    :func:`vaereg_core.voxel_io.as_binary`).
    """
    value, ok = QInputDialog.getDouble(
        parent,
        "Grey-scale data",
        f"{reason}\n\nVoxels above this threshold become the hard phase:",
        0.5,
        -1e12,
        1e12,
        4,
    )
    return value if ok else None


def ask_index(parent: QWidget | None, name: str, count: int) -> int | None:
    """Ask which structure of a stack of ``count`` to open; ``None`` if the user cancels."""
    value, ok = QInputDialog.getInt(parent, "Stack of structures", f"{name} holds {count} structures. Open which one?", 0, 0, count - 1)
    return value if ok else None


def confirm_overwrite(parent: QWidget | None, paths: Sequence[Path]) -> bool:
    """Ask before replacing existing files; ``True`` to replace."""
    names = "\n".join(str(p) for p in paths)
    answer = QMessageBox.question(
        parent,
        "Replace existing file?",
        f"This already exists:\n{names}\n\nReplace it?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def about_text(model_description: str) -> str:
    """Rich text of the About box, naming the loaded model."""
    from vtkmodules.vtkCommonCore import vtkVersion  # not `import vtk`: that loads every VTK module

    return (
        f"<h3>{APP_NAME} {__version__}</h3>"
        "<p>Design 3-D two-phase microstructures for a target elastic stiffness with a "
        "VAE-Regression network and a multimodal (Gaussian-mixture) prior.</p>"
        f"<p><b>Model:</b> {model_description}</p>"
        f"<p>vaereg_core {vaereg_core.__version__} · Python {platform.python_version()} · "
        f"PySide6 {pyside_version} · VTK {vtkVersion.GetVTKVersion()}</p>"
        "<p>BSD-3-Clause licence.</p>"
    )


def show_about(parent: QWidget | None, model_description: str) -> QMessageBox:
    """Open the About box (non-blocking)."""
    box = QMessageBox(QMessageBox.Icon.Information, f"About {APP_NAME}", about_text(model_description), QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("aboutDialog")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def install_excepthook(report: Callable[[str, str], None]) -> None:
    """Turn uncaught exceptions into an error dialog instead of a traceback on screen.

    Parameters
    ----------
    report : callable
        ``report(title, message)`` shows the dialog (the main window's
        ``report_error``). The traceback still goes to the log (stderr) for bug
        reports, and the app keeps running.
    """

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.error("Unexpected error:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        report("Something went wrong.", f"{describe_exception(exc)}\n\nThe application keeps running; details are in the log.")

    sys.excepthook = hook
