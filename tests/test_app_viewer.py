"""The 3-D viewer's controls, checked on rendered images; screenshots for docs/."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from app_helpers import TIMEOUT_MS, corners, open_and_wait, open_window, sample_file, save_artifact, share_near, share_of_hue, small_structure
from PySide6.QtWidgets import QMessageBox
from vtkmodules.util.numpy_support import vtk_to_numpy

from vaereg_core import voxel_io
from vaereg_studio.latency import EventLoopProbe
from vaereg_studio.structure import surface_mesh
from vaereg_studio.viewer import CAMERA_PRESETS, ViewOptions, slice_plane

pytestmark = pytest.mark.gui


def test_slice_plane_shows_the_voxel_layer():
    voxels = small_structure(12)
    plane = slice_plane(voxels, axis=1, index=4)
    assert plane.GetNumberOfCells() == 12 * 12
    np.testing.assert_array_equal(vtk_to_numpy(plane.GetCellData().GetArray("phase")).reshape(12, 12, order="F"), voxels[:, 4, :])
    assert plane.GetBounds()[2] == plane.GetBounds()[3] == 4.5


def test_view_options_survive_bad_stored_values():
    options = ViewOptions.from_dict({"smooth": "false", "opacity": "7", "hard_colour": "#112233", "show_axes": None, "nonsense": 1})
    assert options.smooth is False and options.opacity == 1.0 and options.hard_colour == "#112233" and options.show_axes


def test_slices_colours_opacity_and_blocky_surface(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path)
    open_and_wait(qtbot, window, sample_file(tmp_path))
    viewer, panel = window.viewer, window.view_panel

    panel.show_slices.setChecked(True)
    panel.opacity.setValue(0.25)
    for axis, slider in enumerate(panel.slice_sliders):
        assert slider.maximum() == window.structure.voxels.shape[axis] - 1
    panel.slice_sliders[0].setValue(10)
    assert viewer.slice_index[0] == 10
    np.testing.assert_array_equal(
        vtk_to_numpy(viewer._planes[0].GetCellData().GetArray("phase")).reshape(51, 51, order="F"), window.structure.voxels[10]
    )
    qtbot.wait(200)
    image = viewer.image()
    save_artifact(window, "app_window_slices.png")
    save_artifact(image, "viewer_slices.png")
    # Slices are unlit: the soft phase appears in its exact colour; the hard phase of a
    # slice lies inside the translucent surface, so only its hue is kept.
    assert share_near(image, viewer.options.soft_colour, tol=3) > 0.03
    assert share_of_hue(image, viewer.options.hard_colour) > 0.05

    viewer.set_colours(hard="#20c040")
    assert panel.hard_colour.colour() == "#20c040"  # the controls follow the viewer
    image = viewer.image()
    assert share_of_hue(image, "#20c040") > 0.05
    assert share_of_hue(image, "#e08a2c") < 0.01

    panel.show_slices.setChecked(False)
    panel.opacity.setValue(1.0)
    panel.style_combo.setCurrentIndex(1)  # blocky
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT_MS)
    assert viewer.options.smooth is False
    panel.show_scale.setChecked(True)
    qtbot.wait(200)
    image = viewer.image()
    save_artifact(window, "app_window_blocky_scale.png")
    assert share_of_hue(image, "#20c040") > 0.2


@pytest.mark.parametrize("preset", CAMERA_PRESETS)
def test_camera_presets_look_along_the_axes(qtbot, tmp_path, preset):
    window = open_window(qtbot, tmp_path)
    open_and_wait(qtbot, window, voxel_io.write_voxels(tmp_path / "s.npy", small_structure(16)))
    window.viewer.set_camera(preset)
    position = np.array(window.viewer.view.camera.GetPosition()) - np.array(window.viewer.view.camera.GetFocalPoint())
    direction = position / np.linalg.norm(position)
    if preset == "isometric":
        np.testing.assert_allclose(np.abs(direction), 1 / np.sqrt(3), atol=1e-6)
    else:
        axis = "xyz".index(preset[1])
        assert direction[axis] == pytest.approx(1.0 if preset[0] == "+" else -1.0)


def test_empty_structure_draws_no_surface(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path)
    open_and_wait(qtbot, window, voxel_io.write_voxels(tmp_path / "empty.npy", np.zeros((8, 8, 8), np.uint8)))
    assert "hard_phase" not in window.viewer.view.actors
    assert window.structure_panel.volume_fraction.text() == "0.0000"
    image = window.viewer.image()
    assert share_near(image, window.viewer.options.background, tol=2) > 0.9
    assert all(np.abs(c - [0x1F, 0x24, 0x30]).max() <= 2 for c in corners(image)[:2])


def test_non_cubic_structure_is_shown_and_flagged(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path)
    open_and_wait(qtbot, window, voxel_io.write_voxels(tmp_path / "slab.vti", small_structure(24)[:, :, :10]))
    assert window.structure_panel.grid.text() == "24 × 24 × 10"
    assert window.structure_panel.grid_warning.isVisibleTo(window.structure_panel)


def test_surfaces_are_built_on_a_worker_thread(qtbot, tmp_path, monkeypatch):
    # The window stays responsive because surface extraction runs off the UI thread
    # (the latency this buys is measured in benchmarks/bench_app.py).
    window = open_window(qtbot, tmp_path)
    threads = []

    def recorded(voxels, smooth):
        threads.append(threading.get_ident())
        return surface_mesh(voxels, smooth)

    monkeypatch.setattr("vaereg_studio.main_window.surface_mesh", recorded)
    with qtbot.waitSignal(window.structureShown, timeout=TIMEOUT_MS):
        window.open_file(voxel_io.write_voxels(tmp_path / "s.npy", small_structure(24)))
    assert threads and threading.main_thread().ident not in threads
    assert "hard_phase" in window.viewer.view.actors


def test_latency_probe_sees_a_blocked_event_loop(qtbot):
    probe = EventLoopProbe()
    probe.start()
    qtbot.wait(30)
    time.sleep(0.2)  # block the UI thread on purpose
    qtbot.wait(30)
    probe.stop()
    assert probe.max_gap_ms >= 190


def test_about_box_names_the_model_state(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path)
    window.about_action.trigger()
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "aboutDialog"]
    assert len(boxes) == 1 and boxes[0].isVisible()
    text = boxes[0].text()
    assert "VAEReg Studio" in text and "Model:" in text and "VTK" in text
    save_artifact(boxes[0], "about_box.png")
    boxes[0].close()
