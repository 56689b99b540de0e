"""Helpers for the GUI tests (test_app_*.py): windows with private settings, screenshots, colour checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor

from vaereg_core import microstructure, voxel_io
from vaereg_core.resources import default_sample_path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
TIMEOUT_MS = 60_000  # generous: 2 shared cores and software OpenGL


def private_settings(folder: Path) -> QSettings:
    """A settings store in ``folder``, so tests never touch the user's settings."""
    return QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)


def small_structure(size: int = 24, seed: int = 3, volume_fraction: float = 0.4) -> np.ndarray:
    """A quick recipe structure (isotropic sigma 2) for tests where the size does not matter."""
    index = microstructure.filter_index((2, 2, 2))
    return microstructure.generate(seed=seed, field_index=0, filter_index=index, volume_fraction=volume_fraction, size=size)


def sample_file(tmp_path: Path) -> Path:
    """The bundled default sample, or a generated stand-in when it is missing."""
    path = default_sample_path()
    if path.is_file():
        return path
    path = tmp_path / "default.vti"
    index = microstructure.filter_index((2, 2, 8))
    voxels = microstructure.generate(seed=7, field_index=0, filter_index=index, volume_fraction=0.45, size=51)
    return voxel_io.write_voxels(path, voxels)


def synthetic_resources(folder: Path, monkeypatch) -> Path:
    """A resources folder holding only the synthetic 19³ dataset (with voxels), set as VAEREG_RESOURCES."""
    from model_helpers import write_synthetic_dataset

    (folder / "dataset").mkdir(parents=True)
    write_synthetic_dataset(folder / "dataset" / "elastic.h5")
    monkeypatch.setenv("VAEREG_RESOURCES", str(folder))
    return folder


def rgb(colour: str) -> np.ndarray:
    """``#rrggbb`` as an int array."""
    c = QColor(colour)
    return np.array([c.red(), c.green(), c.blue()])


def share_near(image: np.ndarray, colour: str, tol: int = 12) -> float:
    """Fraction of pixels within ``tol`` of ``colour`` in every channel."""
    return float(np.mean(np.all(np.abs(image[..., :3].astype(int) - rgb(colour)) <= tol, axis=-1)))


def share_of_hue(image: np.ndarray, colour: str, tol_deg: float = 12.0) -> float:
    """Fraction of saturated pixels whose hue is within ``tol_deg`` of ``colour``'s hue.

    Shading changes the brightness of a lit surface but keeps its hue, so this
    counts the pixels of a shaded mesh of that colour.
    """
    rgb_ = image[..., :3].astype(float) / 255.0
    mx, mn = rgb_.max(-1), rgb_.min(-1)
    chroma = mx - mn
    r, g, b = rgb_[..., 0], rgb_[..., 1], rgb_[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        hue = np.where(
            mx == r, ((g - b) / chroma) % 6, np.where(mx == g, (b - r) / chroma + 2, (r - g) / chroma + 4)
        ) * 60.0
    target = QColor(colour).hueF() * 360.0
    distance = np.abs((hue - target + 180.0) % 360.0 - 180.0)
    return float(np.mean((chroma > 0.15) & (mx > 0.1) & (distance <= tol_deg)))


def corners(image: np.ndarray, size: int = 6) -> list[np.ndarray]:
    """Mean colour of the four corner patches."""
    return [image[s].reshape(-1, image.shape[-1])[:, :3].mean(0) for s in (
        np.s_[:size, :size], np.s_[:size, -size:], np.s_[-size:, :size], np.s_[-size:, -size:])]


def save_artifact(image_or_widget, name: str) -> Path:
    """Save a screenshot under test-artifacts/screenshots/ (a QWidget is grabbed, 3-D views included)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    if isinstance(image_or_widget, np.ndarray):
        from PIL import Image

        Image.fromarray(image_or_widget[..., :3]).save(path)
    else:
        grab_with_3d_views(image_or_widget).save(str(path))
    return path


def grab_with_3d_views(widget):
    """``widget.grab()`` with each visible 3-D view's own rendering painted in.

    A render window is a native OpenGL window, which ``QWidget.grab`` cannot
    read (it comes out as noise or blank); VTK reads it back itself.
    """
    from PySide6.QtCore import QPoint, QRect
    from PySide6.QtGui import QImage, QPainter

    from vaereg_studio.scene_view import SceneView

    pixmap = widget.grab()
    painter = QPainter(pixmap)
    for view in widget.findChildren(SceneView):
        if not view.isVisibleTo(widget):
            continue
        # Parents clip their children (a scroll area shows part of a card): intersect up the chain.
        clip = QRect(view.mapTo(widget, QPoint(0, 0)), view.size())
        parent = view.parentWidget()
        while parent is not None and parent is not widget:
            clip &= QRect(parent.mapTo(widget, QPoint(0, 0)), parent.size())
            parent = parent.parentWidget()
        if clip.isEmpty():
            continue
        image = view.image()
        frame = QImage(image.data, image.shape[1], image.shape[0], 3 * image.shape[1], QImage.Format.Format_RGB888)
        painter.setClipRect(clip)
        painter.drawImage(view.mapTo(widget, QPoint(0, 0)), frame.scaled(view.size()))
    painter.end()
    return pixmap


def open_window(qtbot, folder: Path):
    """A shown main window with private settings in ``folder``; closed by qtbot at teardown."""
    from vaereg_studio.main_window import MainWindow

    window = MainWindow(private_settings(folder), load_default_model=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def open_and_wait(qtbot, window, path: Path) -> None:
    """Open ``path`` and wait until it is drawn."""
    with qtbot.waitSignal(window.structureShown, timeout=TIMEOUT_MS):
        window.open_file(path)
