"""Export from the app: every voxel format round-trips, STL, screenshots, no silent overwrite."""

from __future__ import annotations

import numpy as np
import pytest
import pyvista as pv
from app_helpers import TIMEOUT_MS, open_and_wait, open_window, small_structure
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from vaereg_core import voxel_io

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path)
    open_and_wait(qtbot, window, voxel_io.write_voxels(tmp_path / "source.npz", small_structure(), metadata={"seed": 3}))
    return window


def export(qtbot, window, path):
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS) as blocker:
        window.export_structure(path)
    return blocker.args[0]


@pytest.mark.parametrize("ext", [".npy", ".npz", ".h5", ".vti", ".tif", ".raw"])
def test_exported_structure_reloads_identical_with_provenance(qtbot, window, tmp_path, ext):
    written = export(qtbot, window, tmp_path / f"out{ext}")
    voxels, metadata = voxel_io.read_voxel_file(written)
    np.testing.assert_array_equal(voxels, window.structure.voxels)
    assert metadata["exported_by"].startswith("VAEReg Studio")
    assert metadata["seed"] == 3  # provenance of the source is kept
    assert metadata["volume_fraction"] == pytest.approx(window.structure.volume_fraction)
    assert not list(tmp_path.glob(".*.tmp*")), "temporary files left behind"


def test_export_asks_before_overwriting(qtbot, window, tmp_path, monkeypatch):
    target = tmp_path / "out.raw"
    export(qtbot, window, target)
    before = target.read_bytes(), (tmp_path / "out.raw.json").read_text()
    asked = []
    monkeypatch.setattr("vaereg_studio.main_window.confirm_overwrite", lambda parent, paths: asked.append(paths) or False)
    window.export_structure(target)
    qtbot.wait(200)
    assert asked and set(asked[0]) == {target, tmp_path / "out.raw.json"}
    assert (target.read_bytes(), (tmp_path / "out.raw.json").read_text()) == before
    assert not window.is_busy

    monkeypatch.setattr("vaereg_studio.main_window.confirm_overwrite", lambda parent, paths: True)
    open_and_wait(qtbot, window, voxel_io.write_voxels(tmp_path / "other.npy", small_structure(seed=9)))
    export(qtbot, window, target)
    np.testing.assert_array_equal(voxel_io.read_voxels(target), window.structure.voxels)


def test_export_error_is_a_dialog(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.errorShown, timeout=TIMEOUT_MS) as blocker:
        window.export_structure(tmp_path / "missing-folder" / "out.vti")
    assert "does not exist" in blocker.args[1]


def test_export_shortcut_and_dialog_add_the_chosen_extension(qtbot, window, tmp_path, monkeypatch):
    from vaereg_studio.main_window import FORMAT_NAMES

    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "by-shortcut"), FORMAT_NAMES[".h5"]))
    window.activateWindow()
    qtbot.waitActive(window)
    window.viewer.view.setFocus()  # without a focus widget the first key press is lost
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.viewer.view)
    with qtbot.waitSignal(window.exported, timeout=10_000) as blocker:
        # Sent to the 3-D view: a key event sent to the QMainWindow itself skips the shortcut map.
        qtbot.keyClick(window.viewer.view, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args[0] == tmp_path / "by-shortcut.h5"
    np.testing.assert_array_equal(voxel_io.read_voxels(blocker.args[0]), window.structure.voxels)


@pytest.mark.parametrize("smooth", [True, False])
def test_surface_export_writes_the_shown_surface_as_stl(qtbot, window, tmp_path, smooth):
    if window.viewer.options.smooth != smooth:
        window.view_panel.style_combo.setCurrentIndex(0 if smooth else 1)
        qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
        window.export_surface(tmp_path / "surface.stl")
    mesh = pv.read(tmp_path / "surface.stl")
    assert mesh.n_cells > 100
    np.testing.assert_allclose(mesh.bounds, (0, 24) * 3, atol=0.5)
    if smooth:  # voxel faces meeting only along an edge make the blocky surface non-manifold there
        assert mesh.extract_feature_edges(boundary_edges=True, feature_edges=False, manifold_edges=False).n_cells == 0


def test_screenshot_is_the_view_as_png(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
        window.save_screenshot(tmp_path / "view.png")
    image = Image.open(tmp_path / "view.png")
    size = window.viewer.view.window_size
    assert image.format == "PNG" and image.size == tuple(size)
