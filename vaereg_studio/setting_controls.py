"""Spin boxes built from the settings schema (:func:`vaereg_core.settings.gui_fields`): one range, step and help for CLI and app."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox

from vaereg_core.settings import GuiField, gui_fields


def spin_box(field: GuiField) -> QAbstractSpinBox:
    """A spin box for ``field`` showing its default: integer fields get a ``QSpinBox``.

    Values the schema refuses (an open bound) are refused once, by the
    settings class, when a run is started with them.
    """
    box: QSpinBox | QDoubleSpinBox
    if isinstance(field.default, int):
        box = QSpinBox()
        box.setRange(int(field.minimum if field.minimum is not None else -(2**31)), int(field.maximum if field.maximum is not None else 2**31 - 1))
    else:
        box = QDoubleSpinBox()
        whole_steps = field.step is not None and float(field.step).is_integer()
        box.setDecimals(field.decimals if field.decimals is not None else (0 if whole_steps else 3))
        box.setRange(field.minimum if field.minimum is not None else -1e9, field.maximum if field.maximum is not None else 1e9)
    if field.step is not None:
        box.setSingleStep(field.step)
    if field.unit:
        box.setSuffix(f" {field.unit}")
    box.setToolTip(field.help[:1].upper() + field.help[1:])
    box.setValue(field.default)
    return box


def spin_boxes(cls: type, names: tuple[str, ...]) -> dict[str, QAbstractSpinBox]:
    """Spin boxes for these fields of a settings class, by name."""
    return {f.name: spin_box(f) for f in gui_fields(cls, names)}
