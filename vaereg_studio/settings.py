"""Settings kept between sessions (QSettings): window layout, recent files, folders, view options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

from vaereg_studio.session.view_options import ViewOptions

MAX_RECENT = 10


class AppSettings:
    """Typed access to the application's QSettings.

    Parameters
    ----------
    settings : QSettings
        The store; tests pass an INI file in a temporary folder.
    """

    def __init__(self, settings: QSettings) -> None:
        self.store = settings

    # ---------------------------------------------------------------- recent files

    def recent_files(self) -> list[Path]:
        """Recently opened files, newest first, that still exist."""
        return [Path(p) for p in self._list("files/recent") if Path(p).is_file()]

    def add_recent_file(self, path: str | Path) -> list[Path]:
        """Put ``path`` first in the recent files; returns the new list."""
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self._list("files/recent") if p != path]
        self.store.setValue("files/recent", recent[:MAX_RECENT])
        return self.recent_files()

    def clear_recent_files(self) -> None:
        """Forget the recent files."""
        self.store.setValue("files/recent", [])

    # ---------------------------------------------------------------- folders

    def last_dir(self, purpose: str) -> str:
        """Folder last used for ``purpose`` ("open", "export", "screenshot"), or the home folder."""
        folder = str(self.store.value(f"dirs/{purpose}", "") or "")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def set_last_dir(self, purpose: str, path: str | Path) -> None:
        """Remember the folder of ``path`` (a file or a folder) for ``purpose``."""
        path = Path(path)
        self.store.setValue(f"dirs/{purpose}", str(path if path.is_dir() else path.parent))

    # ---------------------------------------------------------------- panel values

    def group_values(self, group: str, defaults: dict[str, Any]) -> dict[str, Any]:
        """Stored values of a panel's controls, typed like ``defaults`` (which fill the gaps).

        Keys absent from ``defaults`` are returned as stored (strings), so a
        panel can keep per-property values whose names it learns later.
        """
        self.store.beginGroup(group)
        stored = {key: self.store.value(key) for key in self.store.childKeys()}
        self.store.endGroup()
        values = dict(stored)
        for key, default in defaults.items():
            values[key] = _typed(stored.get(key), default)
        return values

    def set_group_values(self, group: str, values: dict[str, Any]) -> None:
        """Store a panel's control values."""
        for key, value in values.items():
            self.store.setValue(f"{group}/{key}", value)

    # ---------------------------------------------------------------- view and window

    def view_options(self) -> ViewOptions:
        """Drawing options of the 3-D view."""
        self.store.beginGroup("view")
        values = {key: self.store.value(key) for key in self.store.childKeys()}
        self.store.endGroup()
        return ViewOptions.from_dict(values)

    def set_view_options(self, options: ViewOptions) -> None:
        """Store the drawing options of the 3-D view."""
        for key, value in options.to_dict().items():
            self.store.setValue(f"view/{key}", value)

    def save_window(self, window: QMainWindow) -> None:
        """Store the window geometry and the dock layout."""
        self.store.setValue("window/geometry", window.saveGeometry())
        self.store.setValue("window/state", window.saveState())

    def restore_window(self, window: QMainWindow) -> bool:
        """Restore geometry and dock layout; ``False`` when nothing was stored."""
        geometry, state = self.store.value("window/geometry"), self.store.value("window/state")
        if not isinstance(geometry, QByteArray) or not isinstance(state, QByteArray):
            return False
        return window.restoreGeometry(geometry) and window.restoreState(state)

    def sync(self) -> None:
        """Write pending changes to disk."""
        self.store.sync()

    def _list(self, key: str) -> list[str]:
        value: Any = self.store.value(key, [])
        # QSettings returns a single string for a one-element list and None for an empty one.
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value]


def _typed(value: Any, default: Any) -> Any:
    """``value`` as the type of ``default`` (QSettings' INI files give strings), or ``default``."""
    if value is None:
        return default
    if isinstance(default, bool):
        return value.lower() == "true" if isinstance(value, str) else bool(value)
    try:
        return type(default)(value)
    except (TypeError, ValueError):
        return default
