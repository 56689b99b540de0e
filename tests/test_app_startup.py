"""Start-up: the window and the first structure come before torch and the model."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest
from app_helpers import TIMEOUT_MS, private_settings, save_artifact, share_of_hue, small_structure
from vaereg_core import voxel_io


def test_the_window_modules_import_neither_torch_nor_scikit_learn_nor_pyqtgraph():
    """Seconds of imports that the first picture does not need (the model loads after it, on a worker; the map's plot with it)."""
    code = "import sys, vaereg_studio.main_window, vaereg_studio.model_state as m; m.model_code_available(); print(sorted({'torch', 'sklearn', 'pyqtgraph'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


FIRST_PICTURE = """
import sys
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
import vaereg_studio.__main__ as app
app.open_model_after_first_structure = lambda window, model: None  # the model's imports are not the first picture's
window = app.launch([sys.argv[1]], settings=QSettings(sys.argv[2], QSettings.Format.IniFormat))
def shown(structure):
    heavy = ("matplotlib", "pyvista", "pyvistaqt", "vtkmodules.all", "torch", "pyqtgraph")
    print("LOADED", sorted(name for name in heavy if name in sys.modules), "DRAWN", "hard_phase" in window.viewer.view.actors, flush=True)
    QApplication.instance().exit(0)
window.structureShown.connect(shown)
QApplication.instance().exec()
"""


@pytest.mark.gui
def test_the_first_structure_is_drawn_before_pyvista_matplotlib_or_all_of_vtk_is_imported(tmp_path):
    """The first picture needs VTK's own modules only: pyvista's plotting and its matplotlib took 2.5 s of a 2.8 s wait on 2 cores."""
    sample = voxel_io.write_voxels(tmp_path / "sample.npz", small_structure(19))
    out = subprocess.run([sys.executable, "-c", FIRST_PICTURE, str(sample), str(tmp_path / "settings.ini")],
                         capture_output=True, text=True, timeout=120)
    assert "LOADED [] DRAWN True" in out.stdout, out.stdout + out.stderr


MAP_VIEW_IMPORT = """
import importlib.abc, sys, threading
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
threads = []
class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyqtgraph":
            threads.append(threading.current_thread() is threading.main_thread())
        return None
sys.meta_path.insert(0, Recorder())
from vaereg_studio.__main__ import launch
window = launch([sys.argv[1], "--model", sys.argv[2]], settings=QSettings(sys.argv[3], QSettings.Format.IniFormat))
def loaded(model):
    print("PYQTGRAPH IMPORTED ON THE UI THREAD", threads, "TORCH IN THE APP'S PROCESS", "torch" in sys.modules, flush=True)
    QApplication.instance().exit(0)
window.modelLoaded.connect(loaded)
QApplication.instance().exec()
"""


@pytest.mark.gui
def test_the_map_view_s_pyqtgraph_is_imported_on_a_worker_while_the_model_loads(tmp_path):
    """Its import (0.3-0.9 s) had frozen the window as the model arrived."""
    from inverse_helpers import save_tiny_model

    sample = voxel_io.write_voxels(tmp_path / "sample.npz", small_structure(19))
    model = save_tiny_model(tmp_path / "tiny.pt")
    out = subprocess.run([sys.executable, "-c", MAP_VIEW_IMPORT, str(sample), str(model), str(tmp_path / "settings.ini")],
                         capture_output=True, text=True, timeout=180)
    assert "PYQTGRAPH IMPORTED ON THE UI THREAD [False]" in out.stdout, out.stdout + out.stderr
    assert "TORCH IN THE APP'S PROCESS False" in out.stdout  # the model is in its own process (model_process)


def test_the_physics_server_starts_after_the_model_is_loaded(monkeypatch, tmp_path):
    """Its start (the solver's and torch's import in the server, a 51³ solve a warm worker) no longer competes with the loading."""
    from inverse_helpers import save_tiny_model

    from vaereg_studio import model_process, physics_process
    from vaereg_studio.session import session

    calls = []
    wait_ready = model_process.ModelProcess.wait_ready
    monkeypatch.setattr(model_process.ModelProcess, "wait_ready", lambda self, cancel: calls.append("model") or wait_ready(self, cancel))
    monkeypatch.setattr(physics_process, "start_server", lambda: calls.append("physics server"))
    loaded = session._load_model(save_tiny_model(tmp_path / "tiny.pt"), lambda: False)
    assert calls == ["model", "physics server"] and loaded.info.property_names
    loaded.model.close()


def test_the_model_process_started_with_the_app_is_the_one_the_session_takes(tmp_path):
    """``launch`` starts the model's process before it imports Qt; the session's load then waits for that one."""
    from inverse_helpers import save_tiny_model

    from vaereg_studio import model_process
    from vaereg_studio.session import session

    path = save_tiny_model(tmp_path / "tiny.pt")
    model_process.start_early(path)
    early = model_process._started[path.resolve()]
    loaded = session._load_model(path, lambda: False)
    assert loaded.model is early and path.resolve() not in model_process._started
    again = session._load_model(path, lambda: False)  # the same file opened again: a new process
    assert again.model is not early
    for process in (early, again.model):
        process.close()


@pytest.fixture
def launched(qtbot, tmp_path, monkeypatch):
    """``launch(["--model", tiny model, *args])``; the window is closed at teardown."""
    from inverse_helpers import save_tiny_model

    from vaereg_studio.__main__ import launch

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # launch installs its own
    model = save_tiny_model(tmp_path / "tiny.pt")
    gc.unfreeze()  # an earlier test's launch may have frozen its objects

    def start(*args: str):
        window = launch(["--model", str(model), *args], settings=private_settings(tmp_path))
        qtbot.addWidget(window)
        return window

    yield start
    gc.unfreeze()  # launch freezes start-up's objects once the model is loaded; the next tests collect them again


@pytest.mark.gui
def test_the_window_shows_the_structure_while_the_model_is_still_loading(qtbot, tmp_path, launched, monkeypatch):
    monkeypatch.setattr("vaereg_studio.__main__.MODEL_WAIT_MS", 600_000)  # only the structure starts the model
    sample = voxel_io.write_voxels(tmp_path / "sample.npz", small_structure(19))
    window = launched(str(sample))
    model_when_shown = []
    window.structureShown.connect(lambda structure: model_when_shown.append(window.model))
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS) as loaded:
        pass
    assert model_when_shown == [None]  # drawn first, with no model yet
    assert window.structure.name == "sample.npz" and window.model is loaded.args[0] and loaded.args[0].info.checksum


@pytest.mark.gui
def test_the_model_loads_even_when_the_first_file_cannot_be_opened(qtbot, tmp_path, launched):
    window = launched(str(tmp_path / "missing.npz"))
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        pass
    assert window.structure is None and window.model is not None


@pytest.mark.gui
def test_the_status_bar_names_the_model_and_its_material(qtbot, tmp_path, launched):
    from PySide6.QtWidgets import QLabel

    window = launched()
    label = window.findChild(QLabel, "statusModel")
    assert label.text() == "Loading model tiny.pt…"
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        pass
    assert label.text() == "tiny.pt · trained for hard E 120 GPa ν 0.30 / soft E 2.4 GPa ν 0.30"  # the paper's phases
    assert "tiny.pt" in label.toolTip()


@pytest.mark.gui
def test_a_slow_first_file_does_not_hold_the_model_back(qtbot, tmp_path, launched, monkeypatch):
    import threading

    from vaereg_studio import structure

    release = threading.Event()
    read = structure.read_structure
    monkeypatch.setattr("vaereg_studio.main_window.read_structure", lambda *a, **k: release.wait(60) and read(*a, **k))
    monkeypatch.setattr("vaereg_studio.__main__.MODEL_WAIT_MS", 200)
    window = launched(str(voxel_io.write_voxels(tmp_path / "slow.npz", small_structure(19))))
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        pass
    assert window.structure is None  # still reading
    release.set()
    qtbot.waitUntil(lambda: window.structure is not None, timeout=TIMEOUT_MS)


@pytest.mark.gui
def test_the_model_panels_say_loading_model_until_the_model_is_ready(qtbot, tmp_path, launched, monkeypatch):
    import threading

    import numpy as np
    from PySide6.QtWidgets import QLabel

    from vaereg_studio.session import session

    release = threading.Event()
    load = session._load_model
    monkeypatch.setattr(session, "_load_model", lambda path, cancel: release.wait(60) and load(path, cancel))
    window = launched(str(voxel_io.write_voxels(tmp_path / "sample.npz", small_structure(19))))
    panels = (window.target_panel, window.latent_panel)
    for panel in panels:  # from the first moment, before the model load starts
        assert not panel.isEnabled() and panel.message.text().endswith("<p>Loading model tiny.pt…</p>")
    qtbot.waitUntil(lambda: window.structure is not None and window.session.runner.running("model"), timeout=TIMEOUT_MS)
    qtbot.wait(200)  # the panels laid out
    image = window.viewer.image()
    save_artifact(window, "app_window_model_loading.png")
    assert share_of_hue(image, window.viewer.options.hard_colour) > 0.05  # the sample is drawn
    for panel in panels:
        assert not panel.isEnabled() and panel.message.isVisible() and "Loading model tiny.pt…" in panel.message.text()
    assert window.findChild(QLabel, "statusModel").text() == "Loading model tiny.pt…"
    assert window.structure_panel.predicted.text() == "Loading model tiny.pt…"
    assert window.model is None and not window.target_panel.find_button.isVisible()

    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        release.set()
    for panel in panels:
        assert panel.isEnabled() and "Loading model" not in panel.message.text()
    assert window.target_panel.find_button.isVisible() and window.target_panel.find_button.isEnabled()
    assert window.latent_panel.body.isVisible()
    assert window.findChild(QLabel, "statusModel").text().startswith("tiny.pt · trained for")
    assert np.isfinite(window.target_panel.target().as_dict()[window.model.info.property_names[0]])


@pytest.mark.gui
def test_a_model_that_fails_to_load_leaves_the_panels_saying_why(qtbot, tmp_path, launched):
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    window = launched()
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        pass
    with qtbot.waitSignal(window.errorShown, timeout=TIMEOUT_MS):
        window.open_model(tmp_path / "broken.pt")
    for panel in (window.target_panel, window.latent_panel):
        assert panel.isEnabled() and "Loading model" not in panel.message.text()
    assert window.target_panel.find_button.isVisible()  # the model it had stays
    assert window.model is not None


@pytest.mark.gui
def test_start_up_objects_are_frozen_until_another_model_replaces_the_first(qtbot, tmp_path, launched):
    import weakref

    from inverse_helpers import save_tiny_model

    window = launched()
    assert gc.get_freeze_count() == 0
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        pass
    assert gc.get_freeze_count() > 100_000  # torch and the model among them: full collections skip them
    first = weakref.ref(window.model)
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        window.open_model(save_tiny_model(tmp_path / "other.pt"))
    assert gc.get_freeze_count() == 0
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT_MS)
    gc.collect()
    assert first() is None  # the replaced model's cycles were collected
