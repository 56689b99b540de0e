"""Settings persist across a restart: dock layout, geometry, view options, recent files, folders."""

from __future__ import annotations

import pytest
from app_helpers import open_and_wait, open_window, private_settings, small_structure
from PySide6.QtCore import QSettings

from vaereg_core import voxel_io
from vaereg_studio.settings import MAX_RECENT, AppSettings

pytestmark = pytest.mark.gui


def test_layout_view_options_and_recent_files_survive_a_restart(qtbot, tmp_path):
    first = tmp_path / "first.npy"
    second = tmp_path / "second.h5"
    voxel_io.write_voxels(first, small_structure(12))
    voxel_io.write_voxels(second, small_structure(12, seed=5))

    window = open_window(qtbot, tmp_path)
    open_and_wait(qtbot, window, first)
    open_and_wait(qtbot, window, second)
    window.docks["latent"].hide()
    window.docks["view"].setFloating(True)
    window.resize(1000, 700)
    window.view_panel.opacity.setValue(0.5)
    window.view_panel.show_scale.setChecked(True)
    window.viewer.set_colours(soft="#aa00aa")
    window.view_panel.style_combo.setCurrentIndex(1)
    qtbot.waitUntil(lambda: not window.is_busy)
    window.close()

    again = open_window(qtbot, tmp_path)
    assert again.docks["latent"].isHidden()
    assert again.docks["view"].isFloating()
    assert (again.width(), again.height()) == (1000, 700)
    options = again.viewer.options
    assert (options.opacity, options.show_scale, options.soft_colour, options.smooth) == (0.5, True, "#aa00aa", False)
    assert again.view_panel.style_combo.currentIndex() == 1 and again.view_panel.opacity.value() == 0.5
    assert again.settings.recent_files() == [second.resolve(), first.resolve()]
    assert again.settings.last_dir("open") == str(tmp_path)

    again.reset_layout()
    assert not again.docks["latent"].isHidden() and not again.docks["view"].isFloating()


def test_recent_files_are_bounded_deduplicated_and_existing(tmp_path):
    settings = AppSettings(private_settings(tmp_path))
    files = [tmp_path / f"s{i}.npy" for i in range(MAX_RECENT + 3)]
    for f in files:
        f.write_bytes(b"x")
        settings.add_recent_file(f)
    settings.add_recent_file(files[-1])
    recent = settings.recent_files()
    assert recent == [f.resolve() for f in reversed(files)][:MAX_RECENT]
    files[-1].unlink()
    assert settings.recent_files()[0] == files[-2].resolve()
    settings.clear_recent_files()
    assert settings.recent_files() == []


def test_single_recent_file_and_missing_folders_read_back(tmp_path):
    store = private_settings(tmp_path)
    settings = AppSettings(store)
    f = tmp_path / "only.vti"
    f.write_bytes(b"x")
    settings.add_recent_file(f)
    store.sync()
    # A fresh store reads the INI file back: a one-element list comes back as a string.
    assert AppSettings(QSettings(store.fileName(), QSettings.Format.IniFormat)).recent_files() == [f.resolve()]
    settings.set_last_dir("export", tmp_path / "gone" / "x.npy")
    assert settings.last_dir("export") != str(tmp_path / "gone")
