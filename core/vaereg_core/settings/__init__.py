"""The settings of each task, described once for the command line and the app.

Each task's settings are one frozen dataclass whose fields carry their help,
unit, range and flag (:mod:`vaereg_core.settings.fields`): the solver's
(:class:`SolverSettings`), training's (:class:`TrainingSettings`), and, kept
beside the algorithms they drive, annealing's
(:class:`vaereg_core.inverse.annealing.AnnealSettings`) and verified design's
(:class:`vaereg_core.inverse.verified.DesignSettings`).
:mod:`vaereg_core.cli.settings` makes command-line options of them, and
:func:`gui_fields` gives the app its controls' defaults and ranges.
"""

from vaereg_core.settings.fields import GuiField, Setting, SettingError, check_settings, gui_fields, setting, settings_fields
from vaereg_core.settings.solver import VALIDATION_DTYPE, VALIDATION_TOL, SolverSettings
from vaereg_core.settings.training import MODEL_KINDS, TrainingSettings

__all__ = [
    "GuiField",
    "MODEL_KINDS",
    "Setting",
    "SettingError",
    "SolverSettings",
    "TrainingSettings",
    "VALIDATION_DTYPE",
    "VALIDATION_TOL",
    "check_settings",
    "gui_fields",
    "setting",
    "settings_fields",
]
