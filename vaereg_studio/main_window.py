"""The main window: 3-D view in the centre, dockable panels, File/View/Help menus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMenu, QWidget

from vaereg_core import voxel_io
from vaereg_core.errors import NotBinaryError, VaeRegError
from vaereg_core.inverse.targets import TargetError
from vaereg_core.resources import default_model_path, default_sample_path
from vaereg_studio import APP_NAME, ORGANIZATION, __version__, model_state
from vaereg_studio.design_state import CancelToken
from vaereg_studio.dialogs import ask_index, ask_threshold, confirm_overwrite, describe_exception, show_about, show_error
from vaereg_studio.latent_panel import LatentPanel
from vaereg_studio.loading_notice import loading_text
from vaereg_studio.panels import StructurePanel, ViewPanel
from vaereg_studio.physics_process import run_in_process
from vaereg_studio.session import DesignSession, TaskRunner
from vaereg_studio.session.records import LoadedModel
from vaereg_studio.session.report import session_report, write_report_in_child
from vaereg_studio.session.session_file import SUFFIX as SESSION_SUFFIX
from vaereg_studio.settings import AppSettings
from vaereg_studio.structure import Structure, export_metadata, read_structure, stack_size, surface_mesh
from vaereg_studio.target_panel import TargetPanel
from vaereg_studio.ui_thread import post_to_ui_thread
from vaereg_studio.viewer import VoxelViewer

FORMAT_NAMES = {
    ".vti": "VTK image, opens in ParaView (*.vti)",
    ".npy": "NumPy array (*.npy)",
    ".npz": "NumPy compressed (*.npz)",
    ".h5": "HDF5, dataset layout (*.h5 *.hdf5)",
    ".tif": "Multi-page TIFF, opens in Fiji (*.tif *.tiff)",
    ".raw": "Raw bytes + JSON sidecar (*.raw)",
}
OPEN_FILTER = (
    f"Voxel files ({' '.join('*' + e for e in voxel_io.READ_EXTENSIONS)});;"
    + ";;".join(FORMAT_NAMES.values())
    + ";;All files (*)"
)


def output_paths(path: Path) -> list[Path]:
    """Files an export to ``path`` creates (the data file and, for .raw/.npy, its JSON sidecar)."""
    if path.suffix.lower() in (".raw", ".npy"):
        return [path, path.with_name(path.name + ".json")]
    return [path]


class MainWindow(QMainWindow):
    """VAEReg Studio's main window.

    Parameters
    ----------
    settings : QSettings, optional
        Where layout, recent files and folders are kept (tests give an INI
        file); the user's settings by default.
    load_default_model : bool
        Load the bundled model (on a worker) when it exists.
    parent : QWidget, optional
        Qt parent.

    Signals
    -------
    structureShown(Structure)
        A structure was drawn (after its first render).
    errorShown(str, str)
        An error dialog was opened (title, message).
    exported(Path)
        A file was written by an export.
    modelLoaded(object)
        A model was loaded.
    predicted(str)
        The predicted-properties text for the shown structure was filled in.
    sessionRestored()
        A saved session was reopened and the panels were told.
    """

    structureShown = Signal(object)
    sessionRestored = Signal()
    modelLoaded = Signal(object)
    predicted = Signal(str)
    errorShown = Signal(str, str)
    exported = Signal(object)

    def __init__(self, settings: QSettings | None = None, load_default_model: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_NAME)
        self.settings = AppSettings(settings if settings is not None else QSettings(ORGANIZATION, APP_NAME))
        # Results come back on this (the GUI) thread; once the window closes the
        # runner drops them, as the widgets they would update are being torn down.
        self.runner = TaskRunner(post_to_ui_thread())
        cache = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)) / "latent-maps"
        self.session = DesignSession(self.runner, map_cache_dir=cache)
        self._drawn: Structure | None = None  # the structure in the 3-D view
        self.setAcceptDrops(True)

        self.viewer = VoxelViewer(self.settings.view_options(), self)
        self.session.view_options = self.viewer.options
        self.setCentralWidget(self.viewer)
        self.view_panel = ViewPanel(self.viewer)
        self.view_panel.smoothChanged.connect(self.set_smooth)
        self.structure_panel = StructurePanel()
        self.target_panel = TargetPanel(self.session, self.settings)
        self.latent_panel = LatentPanel(self.session, self.settings)
        events = self.session.events
        events.structure.connect(self._structure_set)
        events.model.connect(self._model_set)
        events.model_loading.connect(lambda path: self._show_model_words())
        events.error.connect(self.report_error)
        events.restored.connect(self._restored)
        self.docks = {
            "view": self._add_dock("View", "viewDock", self.view_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            "structure": self._add_dock("Structure", "structureDock", self.structure_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            "target": self._add_dock("Target properties", "targetDock", self.target_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "latent": self._add_dock("Latent explorer", "latentDock", self.latent_panel, Qt.DockWidgetArea.RightDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["target"], self.docks["latent"])
        self.tabifyDockWidget(self.docks["view"], self.docks["structure"])
        self.docks["target"].raise_()
        self.docks["view"].raise_()
        self.resizeDocks([self.docks["target"]], [520], Qt.Orientation.Horizontal)
        self._default_state = self.saveState()

        self._build_status_bar()
        self._show_model_state()
        self.runner.busy.connect(lambda busy: self.busy.setVisible(busy))  # shown or hidden only: a count would repaint the window per task
        self._build_menus()
        self.resize(1200, 800)
        self.settings.restore_window(self)
        self._update_actions()
        if load_default_model and model_state.model_code_available() and default_model_path().is_file():
            self.open_model(default_model_path())

    # ------------------------------------------------------------------ building

    def _add_dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState/restoreState match docks by object name
        dock.setWidget(widget)
        widget.setMinimumWidth(280)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        # A static label, not an indeterminate QProgressBar: that animates
        # forever, and with OpenGL views in the window every repaint composes
        # the whole window (~35 ms per frame on llvmpipe), which kept the UI
        # thread a third busy while any worker ran.
        self.busy = QLabel("working…")
        self.busy.setObjectName("statusBusy")
        self.busy.hide()
        self.vf_label = QLabel("")
        self.vf_label.setObjectName("statusVolumeFraction")
        self.model_label = QLabel("no model")
        self.model_label.setObjectName("statusModel")
        self.statusBar().addPermanentWidget(self.busy)
        self.statusBar().addPermanentWidget(self.vf_label)
        self.statusBar().addPermanentWidget(self.model_label)

    def _action(self, text: str, slot: Callable[[], Any], shortcut: QKeySequence | str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.triggered.connect(lambda _=False: slot())
        return action

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = self._action("&Open…", self.open_dialog, QKeySequence.StandardKey.Open, "Open a voxel file")
        file_menu.addAction(self.open_action)
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addMenu(self.recent_menu)
        self.open_sample_action = self._action("Open &Bundled Sample", self.open_default_sample, tip="Open the bundled sample structure")
        file_menu.addAction(self.open_sample_action)
        self.open_model_action = self._action("Open &Model…", self.open_model_dialog, "Ctrl+M", "Load a trained model file (.pt)")
        self.open_model_action.setEnabled(model_state.model_code_available())
        file_menu.addAction(self.open_model_action)
        file_menu.addSeparator()
        self.export_action = self._action("&Export Structure…", self.export_structure_dialog, "Ctrl+E", "Write the voxels to .vti/.npy/.npz/.h5/.tif/.raw")
        self.export_stl_action = self._action("Export &Surface (STL)…", self.export_surface_dialog, "Ctrl+Shift+E", "Write the hard-phase surface for 3-D printing")
        self.screenshot_action = self._action("Save Screens&hot…", self.screenshot_dialog, "F12", "Save the 3-D view as PNG")
        for action in (self.export_action, self.export_stl_action, self.screenshot_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        self.save_session_action = self._action("Save &Session…", self.save_session_dialog, "Ctrl+Shift+S", "Save the target, candidates, designs and runs to one file")
        self.open_session_action = self._action("Open Sess&ion…", self.open_session_dialog, tip="Reopen a saved session (its model is loaded first if needed)")
        self.report_action = self._action("Export Re&port…", self.export_report_dialog, tip="Write the session as one self-contained HTML report")
        for action in (self.save_session_action, self.open_session_action, self.report_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        file_menu.addAction(self.quit_action)

        view_menu = self.menuBar().addMenu("&View")
        self.reset_camera_action = self._action("&Reset Camera", lambda: self.viewer.set_camera("isometric"), "Ctrl+R")
        view_menu.addAction(self.reset_camera_action)
        for preset in ("+x", "+y", "+z"):
            view_menu.addAction(self._action(f"View From {preset}", lambda p=preset: self.viewer.set_camera(p)))
        view_menu.addSeparator()
        panels = view_menu.addMenu("&Panels")
        for dock in self.docks.values():
            panels.addAction(dock.toggleViewAction())
        view_menu.addAction(self._action("Reset &Layout", self.reset_layout))

        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = self._action(f"&About {APP_NAME}", self.show_about)
        help_menu.addAction(self.about_action)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        for path in recent:
            self.recent_menu.addAction(self._action(path.name, lambda p=path: self.open_file(p), tip=str(path)))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction(self._action("Clear Recent Files", self.settings.clear_recent_files))
        else:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _update_actions(self) -> None:
        loaded = self.structure is not None
        for action in (self.export_action, self.export_stl_action, self.screenshot_action):
            action.setEnabled(loaded)
        for action in (self.save_session_action, self.report_action):
            action.setEnabled(self.session.model is not None)

    # ------------------------------------------------------------------ state

    @property
    def structure(self) -> Structure | None:
        """The session's structure (the one shown)."""
        return self.session.structure

    @property
    def model(self) -> Any:
        """The session's model, in its process (``None``: none loaded)."""
        return self.session.model.model if self.session.model is not None else None

    @property
    def model_description(self) -> str:
        """The loaded model in one paragraph, or why there is none."""
        return self.session.model.description if self.session.model is not None else model_state.no_model_reason()

    @property
    def is_busy(self) -> bool:
        """Whether background work is running."""
        return self.runner.is_busy

    def report_error(self, title: str, exc_or_message: BaseException | str) -> None:
        """Show an error dialog (never a traceback) and keep going."""
        message = exc_or_message if isinstance(exc_or_message, str) else describe_exception(exc_or_message)
        self.statusBar().showMessage(title, 5000)
        show_error(self, title, message)
        self.errorShown.emit(title, message)

    # ------------------------------------------------------------------ opening

    def open_dialog(self) -> None:
        """Ask for a voxel file and open it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open voxel file", self.settings.last_dir("open"), OPEN_FILTER)
        if path:
            self.open_file(path)

    def open_default_sample(self) -> None:
        """Open the sample structure bundled with the app."""
        path = default_sample_path()
        if not path.is_file():
            self.report_error("The bundled sample is missing.", f"{path}: file does not exist; use File → Open instead.")
            return
        self.open_file(path)

    def open_file(self, path: str | Path, threshold: float | None = None, index: int | None = None) -> None:
        """Read ``path`` and its surface on a worker, then show it; the current structure stays on failure.

        Grey-scale data ask for an explicit threshold, and a stack of structures
        (HDF5 dataset) for the index of the one to open.
        """
        path = Path(path)
        self.statusBar().showMessage(f"Opening {path.name}…")

        def loaded(structure: Structure) -> None:
            self.settings.add_recent_file(path)
            self.settings.set_last_dir("open", path)
            self.session.set_structure(structure)

        def failed(exc: Exception) -> None:
            if isinstance(exc, NotBinaryError):
                chosen = ask_threshold(self, exc.reason)
                if chosen is not None:
                    self.open_file(path, threshold=chosen, index=index)
                    return
            count = stack_size(exc) if index is None else None
            if count:
                chosen_index = ask_index(self, path.name, count)
                if chosen_index is not None:
                    self.open_file(path, threshold=threshold, index=chosen_index)
                    return
            self.report_error(f"Cannot open {path.name}.", exc)

        # A later open supersedes this one.
        self.runner.submit(read_structure, path, threshold=threshold, index=index, key="structure", on_result=loaded, on_error=failed)

    def _structure_set(self, structure: Structure) -> None:
        """The session has a new structure: make its surface on a worker, then draw it."""
        self.runner.cancel("structure")  # a file still being read would replace it

        def done(surface: Any) -> None:
            self.show_structure(structure, surface)

        self.runner.submit(
            surface_mesh, structure.voxels, self.viewer.options.smooth, key="surface",
            on_result=done, on_error=lambda e: self.report_error(f"Cannot show {structure.name}.", e),
        )

    def show_structure(self, structure: Structure, surface: Any) -> None:
        """Draw ``structure`` with its precomputed surface and describe it in the panels."""
        first = self._drawn is None
        self._drawn = structure
        self.viewer.show_structure(structure.voxels, surface, reset_camera=first)
        self.view_panel.structure_changed()
        self.structure_panel.show_structure(structure)
        vf = structure.volume_fraction
        self.vf_label.setText(f"{structure.shape_text} voxels · hard-phase volume fraction {vf:.3f}")
        self.setWindowTitle(f"{structure.name} — {APP_NAME}")
        self.statusBar().showMessage(f"Opened {structure.name} ({self.viewer.last_render_s * 1000:.0f} ms per frame)", 5000)
        self._update_actions()
        self.structureShown.emit(structure)
        self._predict()

    def set_smooth(self, smooth: bool) -> None:
        """Switch between the smooth and the blocky surface (recomputed on a worker)."""
        self.viewer.options.smooth = smooth
        if self._drawn is None:
            return
        self.runner.submit(
            surface_mesh, self._drawn.voxels, smooth, key="surface",
            on_result=self.viewer.set_surface, on_error=lambda e: self.report_error("Cannot draw the surface.", e),
        )

    # ------------------------------------------------------------------ model

    def open_model_dialog(self) -> None:
        """Ask for a model file and load it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open model", self.settings.last_dir("model"), "VAEReg Studio model (*.pt);;All files (*)")
        if path:
            self.open_model(path)

    def open_model(self, path: str | Path) -> None:
        """Load a model on a worker (the map's view is imported beside it); the current model stays if it fails."""
        path = Path(path)
        self.statusBar().showMessage(f"Loading model {path.name}…")
        self.session.load_model(path)
        self.latent_panel.prepare_map_view()

    def _model_set(self, loaded: LoadedModel | None) -> None:
        self._update_actions()
        if loaded is not None:
            self.settings.set_last_dir("model", loaded.path)
            self.statusBar().showMessage(f"Model {loaded.path.name} loaded", 5000)
        self._show_model_state()
        self.modelLoaded.emit(self.model)
        self._predict()

    def _show_model_words(self) -> None:
        """The status bar's model and, without a model, why there is no prediction (one is loading, or none is open)."""
        loaded, loading = self.session.model, self.session.loading_model
        if loading is not None:
            self.model_label.setText(loading_text(loading))
        else:
            self.model_label.setText("no model" if loaded is None else model_state.status_text(loaded.info, loaded.path))
        self.model_label.setToolTip("" if loaded is None else loaded.description)
        if loaded is None or self._drawn is None:  # with a structure drawn, its prediction follows
            self.structure_panel.set_model_status(loading_text(loading) if loading is not None else self.model_description)

    def _show_model_state(self) -> None:
        self._show_model_words()
        if self.model is None:
            return
        self.structure_panel.model_grid = self.model.info.grid
        if self.structure is not None:
            self.structure_panel.show_structure(self.structure)  # re-check the grid against the model's

    def _predict(self) -> None:
        """Fill in the predicted properties of the shown structure (on a worker)."""
        if self.model is None or self._drawn is None:
            return
        self.structure_panel.set_model_status("Predicting…")

        def done(text: str) -> None:
            self.structure_panel.set_model_status(text)
            self.predicted.emit(text)

        # A later structure or model supersedes this prediction.
        self.runner.submit(
            model_state.prediction_text, self.model, self._drawn.voxels, key="predict",
            on_result=done, on_error=lambda e: self.report_error("The model could not predict.", e),
        )

    # ------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept a dragged local voxel file."""
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile() and Path(urls[0].toLocalFile()).suffix.lower() in voxel_io.READ_EXTENSIONS:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """Open the dropped file."""
        self.open_file(event.mimeData().urls()[0].toLocalFile())
        event.acceptProposedAction()

    # ------------------------------------------------------------------ exporting

    def _ask_save_path(self, title: str, purpose: str, filters: dict[str, str]) -> Path | None:
        """A save-file dialog; adds the extension of the chosen filter when the name has none."""
        stem = Path(self.structure.name).stem if self.structure else "structure"
        start = str(Path(self.settings.last_dir(purpose)) / stem)
        name, chosen = QFileDialog.getSaveFileName(
            self, title, start, ";;".join(filters.values()), options=QFileDialog.Option.DontConfirmOverwrite
        )
        if not name:
            return None
        path = Path(name)
        if not path.suffix:
            path = path.with_suffix(next((ext for ext, label in filters.items() if label == chosen), next(iter(filters))))
        return path

    def _may_write(self, paths: list[Path]) -> bool | None:
        """``None``: the user declined; else whether existing files are to be replaced."""
        existing = [p for p in paths if p.exists()]
        if existing and not confirm_overwrite(self, existing):
            self.statusBar().showMessage("Export cancelled; nothing was written.", 5000)
            return None
        return bool(existing)

    def export_structure_dialog(self) -> None:
        """Ask where to export the current structure, then export it."""
        path = self._ask_save_path("Export structure", "export", FORMAT_NAMES)
        if path is not None:
            self.export_structure(path)

    def export_structure(self, path: str | Path) -> None:
        """Write the current structure and its provenance to ``path`` (asks before replacing files)."""
        if self.structure is None:
            return
        path = Path(path)
        overwrite = self._may_write(output_paths(path))
        if overwrite is None:
            return
        self.settings.set_last_dir("export", path)
        metadata = export_metadata(self.structure, __version__)
        self.runner.submit(
            voxel_io.write_voxels,
            path,
            self.structure.voxels,
            metadata=metadata,
            overwrite=overwrite,
            on_result=self._exported,
            on_error=lambda e: self.report_error(f"Cannot export {path.name}.", e),
        )

    def export_surface_dialog(self) -> None:
        """Ask where to write the hard-phase surface as STL, then write it."""
        path = self._ask_save_path("Export hard-phase surface", "export", {".stl": "STL surface (*.stl)"})
        if path is not None:
            self.export_surface(path)

    def export_surface(self, path: str | Path) -> None:
        """Write the hard-phase surface (smooth or blocky as shown) to an STL file."""
        if self.structure is None:
            return
        path = Path(path)
        overwrite = self._may_write([path])
        if overwrite is None:
            return
        self.settings.set_last_dir("export", path)
        self.runner.submit(
            voxel_io.export_stl,
            path,
            self.structure.voxels,
            smooth=self.viewer.options.smooth,
            overwrite=overwrite,
            on_result=self._exported,
            on_error=lambda e: self.report_error(f"Cannot export {path.name}.", e),
        )

    # ------------------------------------------------------------------ sessions and reports

    def save_session_dialog(self) -> None:
        """Ask where to save the session, then save it."""
        path = self._ask_save_path("Save session", "session", {SESSION_SUFFIX: f"VAEReg Studio session (*{SESSION_SUFFIX})"})
        if path is not None:
            self.save_session(path)

    def save_session(self, path: str | Path) -> None:
        """Save the session to ``path`` on a worker (asks before replacing a file)."""
        path = Path(path)
        overwrite = self._may_write([path])
        if overwrite is None:
            return
        self.settings.set_last_dir("session", path)
        try:
            self.session.save(path, overwrite=overwrite, on_saved=self._exported)
        except VaeRegError as exc:
            self.report_error("Cannot save the session.", exc)

    def open_session_dialog(self) -> None:
        """Ask for a session file and reopen it."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open session", self.settings.last_dir("session"), f"VAEReg Studio session (*{SESSION_SUFFIX});;All files (*)"
        )
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> None:
        """Reopen a saved session: target, candidates, designs, runs and view options come back in the panels."""
        path = Path(path)
        self.settings.set_last_dir("session", path)
        self.statusBar().showMessage(f"Opening session {path.name}…")
        self.session.open(path)

    def _restored(self) -> None:
        """A reopened session's view options drawn (the session set the viewer's options object)."""
        o = self.viewer.options
        self.viewer.set_colours(hard=o.hard_colour, soft=o.soft_colour)
        self.viewer.set_opacity(o.opacity)
        for show, visible in ((self.viewer.set_surface_visible, o.show_surface), (self.viewer.set_slices_visible, o.show_slices),
                              (self.viewer.set_axes_visible, o.show_axes), (self.viewer.set_scale_visible, o.show_scale)):
            show(visible)
        self.view_panel.sync()
        self.set_smooth(o.smooth)
        self.statusBar().showMessage("Session reopened", 5000)
        self.sessionRestored.emit()

    def export_report_dialog(self) -> None:
        """Ask where to write the design report, then write it."""
        path = self._ask_save_path("Export design report", "report", {".html": "HTML report (*.html)"})
        if path is not None:
            self.export_report(path)

    def export_report(self, path: str | Path) -> None:
        """Write the session's design report (self-contained HTML) to ``path`` (asks before replacing a file).

        The pictures render off-screen in a child process, away from the window's OpenGL views.
        """
        path = Path(path)
        try:
            report = session_report(self.session)
        except TargetError as exc:
            self.report_error("There is no report to write yet.", exc)
            return
        overwrite = self._may_write([path])
        if overwrite is None:
            return
        self.settings.set_last_dir("report", path)
        self.statusBar().showMessage(f"Writing the report {path.name}…")
        self.runner.submit(
            run_in_process, write_report_in_child, (path, report, overwrite), CancelToken(), what="report",
            on_result=self._exported, on_error=lambda e: self.report_error(f"Cannot write the report {path.name}.", e),
        )

    def _exported(self, path: Path) -> None:
        self.statusBar().showMessage(f"Wrote {path}", 5000)
        self.exported.emit(Path(path))

    def screenshot_dialog(self) -> None:
        """Ask for a PNG file name and save the 3-D view there."""
        path = self._ask_save_path("Save screenshot", "screenshot", {".png": "PNG image (*.png)"})
        if path is not None:
            self.save_screenshot(path)

    def save_screenshot(self, path: str | Path) -> None:
        """Save the 3-D view as PNG (asks before replacing a file)."""
        path = Path(path)
        overwrite = self._may_write([path])
        if overwrite is None:
            return
        self.settings.set_last_dir("screenshot", path)
        try:
            self.viewer.save_screenshot(path, overwrite=overwrite)
        except Exception as exc:  # any failure becomes a dialog; the view is unaffected
            self.report_error(f"Cannot save {path.name}.", exc)
            return
        self._exported(path)

    # ------------------------------------------------------------------ misc

    def show_about(self) -> None:
        """The About box, naming the loaded model."""
        show_about(self, self.model_description)

    def reset_layout(self) -> None:
        """Put every panel back where it starts."""
        for dock in self.docks.values():
            dock.show()
        self.restoreState(self._default_state)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Keep layout and view options, stop the workers' results, release the render windows.

        Workers that cannot be cancelled (a prediction, a surface) finish in the
        background; their results are dropped, never shown in a closed window.
        """
        self.settings.save_window(self)
        self.settings.set_view_options(self.viewer.options)
        self.settings.sync()
        self.session.stop_all()
        self.target_panel.close_question()
        self.runner.close(wait_s=1.0)  # cancelled runs stop within 0.5 s
        self.session.close_model()
        self.target_panel.close_views()
        self.viewer.close_view()
        super().closeEvent(event)
