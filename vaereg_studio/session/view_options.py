"""How the 3-D view draws a structure (Qt-free: kept in the settings and in a saved session)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class ViewOptions:
    """How the structure is drawn; kept in the settings between sessions.

    Colours are ``#rrggbb`` strings so they store and compare easily.
    """

    smooth: bool = True
    show_surface: bool = True
    show_slices: bool = False
    show_axes: bool = True
    show_scale: bool = False
    hard_colour: str = "#e08a2c"
    soft_colour: str = "#3a6ea5"
    background: str = "#1f2430"
    opacity: float = 1.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ViewOptions:
        """Options from stored values; unknown keys and wrong types fall back to defaults."""
        options = cls()
        for f in fields(cls):
            value = values.get(f.name)
            default = getattr(options, f.name)
            if isinstance(default, bool) and isinstance(value, str):
                value = value.lower() == "true"  # QSettings' INI format returns strings
            try:
                setattr(options, f.name, type(default)(value) if value is not None else default)
            except (TypeError, ValueError):
                pass
        options.opacity = min(max(options.opacity, 0.05), 1.0)
        return options

    def to_dict(self) -> dict[str, Any]:
        """Plain values for storing."""
        return asdict(self)
