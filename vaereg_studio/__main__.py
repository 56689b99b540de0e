"""``vaereg-studio [FILE]``: start the app on FILE or on the bundled sample; ``--self-test`` checks the installation."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vaereg_studio import APP_NAME, ORGANIZATION, __version__

if TYPE_CHECKING:  # Qt is imported only when the app starts, so --help answers without a display
    from PySide6.QtCore import QSettings

    from vaereg_studio.gui_thread_gc import GuiThreadCollector
    from vaereg_studio.main_window import MainWindow


MODEL_WAIT_MS = 4000
"""The longest the model waits for the first structure (the bundled sample takes about 1 s after the window)."""


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the app."""
    parser = argparse.ArgumentParser(prog="vaereg-studio", description=f"{APP_NAME}: design microstructures for a target stiffness.")
    parser.add_argument("file", nargs="?", help="voxel file to open (default: the bundled sample)")
    parser.add_argument("--model", metavar="PATH", help="model file to open (default: the bundled model)")
    parser.add_argument("--reset-layout", action="store_true", help="start with the default window layout")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation (model, prediction, inverse design, annealing, physics, rendering, window), print one line per step and exit",
    )
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    return parser


def launch(argv: Sequence[str] | None = None, settings: QSettings | None = None) -> MainWindow:
    """Create the application and the window, and start opening the file; no event loop yet.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (without the program name).
    settings : QSettings, optional
        Settings store; the user's by default.
    """
    args = build_parser().parse_args(argv)
    model = args.model if args.model is not None else startup_model()
    if model is not None:  # first: its process imports torch on another core while the window is built
        from vaereg_studio import model_process

        model_process.start_early(model)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from vaereg_studio.dialogs import install_excepthook
    from vaereg_studio.gui_thread_gc import GuiThreadCollector
    from vaereg_studio.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    collector = app.findChild(GuiThreadCollector)
    if collector is None:
        collector = GuiThreadCollector(parent=app)
        collector.start()
    window = MainWindow(settings, load_default_model=False)
    freeze_start_up_objects(window, collector)
    if args.reset_layout:
        window.reset_layout()
    install_excepthook(window.report_error)
    window.show()
    # Open after the window is up, so it appears at once and the file loads on a worker.
    QTimer.singleShot(0, (lambda: window.open_file(args.file)) if args.file else window.open_default_sample)
    if model is not None:
        open_model_after_first_structure(window, model)
    return window


def freeze_start_up_objects(window: MainWindow, collector: GuiThreadCollector) -> None:
    """Freeze start-up's objects out of the collections once the first model is in; unfreeze them when it is replaced.

    The frozen start-up model would otherwise stay in memory after another
    model replaces it: it holds reference cycles, which only the collector frees.
    """
    loaded = 0

    def model_loaded(model: object) -> None:
        nonlocal loaded
        loaded += 1
        if loaded == 1:
            collector.freeze()
        elif loaded == 2:
            collector.unfreeze()

    window.modelLoaded.connect(model_loaded)


def startup_model() -> Path | None:
    """The bundled default model, when this installation has it and the model code."""
    from vaereg_core.resources import default_model_path

    from vaereg_studio import model_state

    path = default_model_path()
    return path if model_state.model_code_available() and path.is_file() else None


def open_model_after_first_structure(window: MainWindow, model: str | Path) -> None:
    """Load ``model`` once the first structure is drawn (or could not be opened), at the latest after :data:`MODEL_WAIT_MS`.

    The model's process has been importing torch since the start; taking the
    model (its training table, the panels built for it) and starting the physics
    server are CPU that competed with the first structure's reading and drawing
    for the cores and the interpreter lock. The limit keeps a large file's long
    read from holding the model back.
    """
    from PySide6.QtCore import QTimer

    window.session.expect_model(model)  # the panels say "Loading model…" from the start
    started = False

    def start(*_: object) -> None:
        nonlocal started
        if not started:
            started = True
            window.structureShown.disconnect(start)
            window.errorShown.disconnect(start)
            window.open_model(model)

    window.structureShown.connect(start)
    window.errorShown.connect(start)
    QTimer.singleShot(MODEL_WAIT_MS, window, start)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the application (or its self-test); returns the exit status."""
    # First: in a frozen bundle, the physics child process and multiprocessing's
    # helper processes start this executable again, and this runs their code instead.
    multiprocessing.freeze_support()
    args = build_parser().parse_args(argv)
    if args.self_test:
        from vaereg_studio.self_test import run

        return run(args.model)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    launch(argv)
    from PySide6.QtWidgets import QApplication

    return QApplication.instance().exec()


if __name__ == "__main__":
    sys.exit(main())
