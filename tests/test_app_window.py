"""The first app window (issue 2, item 8): real window under Xvfb, real VTK rendering."""

from __future__ import annotations

import operator
import sys
import time

import numpy as np
import pytest
from app_helpers import (
    TIMEOUT_MS,
    corners,
    open_and_wait,
    open_window,
    private_settings,
    sample_file,
    save_artifact,
    share_of_hue,
    small_structure,
)
from PySide6.QtWidgets import QFileDialog, QMessageBox

from vaereg_core import descriptors, voxel_io

pytestmark = pytest.mark.gui


def error_boxes(window) -> list[QMessageBox]:
    return [b for b in window.findChildren(QMessageBox) if b.objectName() == "errorDialog" and b.isVisible()]


def test_window_opens_sample_and_renders_it(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path)
    path = sample_file(tmp_path)
    open_and_wait(qtbot, window, path)

    voxels = voxel_io.read_voxels(path)
    np.testing.assert_array_equal(window.structure.voxels, voxels)
    vf = descriptors.volume_fraction(voxels)
    assert f"{vf:.3f}" in window.vf_label.text()
    assert window.structure_panel.volume_fraction.text() == f"{vf:.4f}"
    assert path.name in window.windowTitle()

    qtbot.wait(200)  # let Qt lay out the updated panels before grabbing the window
    image = window.viewer.image()
    save_artifact(image, "viewer_default_sample.png")
    save_artifact(window, "app_window_default_sample.png")
    background = np.array([0x1F, 0x24, 0x30])
    for corner in corners(image)[:2]:  # the bottom-left corner holds the axes widget
        assert np.abs(corner - background).max() <= 2, corner
    # The lit surface keeps the hard-phase hue: a large share of the view is that colour.
    assert share_of_hue(image, window.viewer.options.hard_colour) > 0.25
    assert window.viewer.last_render_s < 5.0


def test_file_open_dialog_opens_the_chosen_file(qtbot, tmp_path, monkeypatch):
    window = open_window(qtbot, tmp_path)
    path = voxel_io.write_voxels(tmp_path / "chosen.npz", small_structure())
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    with qtbot.waitSignal(window.structureShown, timeout=TIMEOUT_MS):
        window.open_action.trigger()
    assert window.structure.name == "chosen.npz"
    assert window.settings.recent_files()[0] == path.resolve()


@pytest.mark.parametrize(
    "name, content",
    [("broken.npy", b"\x93NUMPY garbage"), ("empty.vti", b""), ("notes.txt", b"hello")],
)
def test_bad_file_shows_a_dialog_and_keeps_the_structure(qtbot, tmp_path, name, content):
    window = open_window(qtbot, tmp_path)
    good = voxel_io.write_voxels(tmp_path / "good.npy", small_structure())
    open_and_wait(qtbot, window, good)
    bad = tmp_path / name
    bad.write_bytes(content)
    with qtbot.waitSignal(window.errorShown, timeout=TIMEOUT_MS) as blocker:
        window.open_file(bad)
    title, message = blocker.args
    assert name in title and name in message
    assert "Traceback" not in message
    boxes = error_boxes(window)
    assert len(boxes) == 1 and name in boxes[0].informativeText()
    boxes[0].close()
    assert window.structure.name == "good.npy"  # nothing lost


def test_greyscale_file_asks_for_a_threshold(qtbot, tmp_path, monkeypatch):
    window = open_window(qtbot, tmp_path)
    grey = np.linspace(0.0, 1.0, 16**3).reshape(16, 16, 16)
    path = tmp_path / "grey.npy"
    np.save(path, grey)
    asked = []
    monkeypatch.setattr("vaereg_studio.main_window.ask_threshold", lambda parent, reason: asked.append(reason) or 0.75)
    open_and_wait(qtbot, window, path)
    assert asked and "threshold" in asked[0]
    np.testing.assert_array_equal(window.structure.voxels, (grey > 0.75).astype(np.uint8))
    assert window.structure.threshold == 0.75


def test_cancelled_threshold_opens_nothing(qtbot, tmp_path, monkeypatch):
    window = open_window(qtbot, tmp_path)
    path = tmp_path / "grey.npy"
    np.save(path, np.linspace(0.0, 1.0, 8**3).reshape(8, 8, 8))
    monkeypatch.setattr("vaereg_studio.main_window.ask_threshold", lambda parent, reason: None)
    with qtbot.waitSignal(window.errorShown, timeout=TIMEOUT_MS):
        window.open_file(path)
    assert window.structure is None


def test_command_line_opens_the_given_file(qtbot, tmp_path, monkeypatch):
    from vaereg_studio.__main__ import launch

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # launch installs its own; restore it afterwards
    path = voxel_io.write_voxels(tmp_path / "cli.tif", small_structure(20))
    window = launch([str(path)], settings=private_settings(tmp_path))
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.structure is not None, timeout=TIMEOUT_MS)
    assert window.structure.name == "cli.tif"

    # An uncaught exception becomes a readable dialog, not a traceback.
    with qtbot.waitSignal(window.errorShown, timeout=TIMEOUT_MS) as blocker:
        sys.excepthook(ValueError, ValueError("boom"), None)
    assert "ValueError: boom" in blocker.args[1] and "Traceback" not in blocker.args[1]


def test_command_line_without_file_opens_the_bundled_sample(qtbot, tmp_path, monkeypatch):
    from vaereg_core.resources import default_sample_path
    from vaereg_studio.__main__ import launch

    if not default_sample_path().is_file():
        pytest.skip("no bundled default sample in this checkout")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    window = launch([], settings=private_settings(tmp_path))
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.structure is not None, timeout=TIMEOUT_MS)
    assert window.structure.path == default_sample_path()


def test_stack_of_structures_asks_which_one(qtbot, tmp_path, monkeypatch):
    import h5py

    stack = np.stack([small_structure(12, seed=s) for s in (1, 2, 3)])
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("microstructures", data=stack)
    window = open_window(qtbot, tmp_path)
    asked = []
    monkeypatch.setattr("vaereg_studio.main_window.ask_index", lambda parent, name, count: asked.append(count) or 2)
    open_and_wait(qtbot, window, path)
    assert asked == [3]
    np.testing.assert_array_equal(window.structure.voxels, stack[2])
    assert window.structure.name == "stack.h5 [2]"


def test_results_of_workers_still_running_at_close_are_dropped(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path)
    results, errors = [], []
    window.runner.submit(time.sleep, 0.5, on_result=results.append, on_error=errors.append)
    window.runner.submit(operator.truediv, 1, 0, on_result=results.append, on_error=errors.append)
    window.close()
    qtbot.wait(1500)  # both workers have finished and their signals were delivered
    assert results == [] and errors == []
