"""Settings fields: a dataclass field that carries what a control needs to show and check it.

A settings class is a frozen dataclass whose fields are made with
:func:`setting`. The field's :class:`Setting` (help text, unit, range, step,
choices, command-line flag) is the one description of the value: the
command line builds its options from it (:mod:`vaereg_core.cli.settings`),
the app its spin boxes (:func:`gui_fields`), and the class checks its values
with it in ``__post_init__`` (:func:`check_settings`), so every entry point
refuses the same values with the same words.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Budget:
...     seconds: float = setting(60.0, help="wall-time budget", unit="s", minimum=0, open_minimum=True)
...     def __post_init__(self):
...         check_settings(self, "budget")
>>> Budget(seconds=-1)
Traceback (most recent call last):
...
vaereg_core.settings.fields.SettingError: budget setting seconds must be > 0, got -1
>>> gui_fields(Budget)[0].default
60.0
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import typing
from dataclasses import dataclass
from typing import Any

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
"""Device names every setting and command accepts (``cuda:N`` picks one GPU)."""

METADATA_KEY = "vaereg_setting"


class SettingError(ValueError):
    """A settings value that is not allowed; ``field`` names it, ``problem`` says why (without the name)."""

    def __init__(self, what: str, field: str, problem: str) -> None:
        super().__init__(f"{what} setting {field} {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Setting:
    """What the command line and the app need to know about one settings field.

    Parameters
    ----------
    help : str
        One sentence saying what the value does.
    label : str
        The app's label (default: the field name, capitalised, with spaces).
    unit : str
        Unit shown after values (``"s"``, ``"GPa"``), empty for none.
    minimum, maximum : float, optional
        Allowed range (inclusive unless ``open_minimum`` / ``open_maximum``).
    open_minimum, open_maximum : bool
        Whether the bound itself is excluded (a tolerance in (0, 1)).
    step : float, optional
        The app's spin-box step.
    decimals : int, optional
        Decimals the app shows.
    flag : str or None
        Command-line flag; ``""`` (the default) means ``--field-name``, ``None`` not on the command line.
    choices : tuple
        The allowed values of a text setting.
    device : bool
        A device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
    metavar : str or tuple, optional
        Command-line placeholder(s); a tuple for a pair of numbers.
    """

    help: str
    label: str = ""
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    open_maximum: bool = False
    step: float | None = None
    decimals: int | None = None
    flag: str | None = ""
    choices: tuple = ()
    device: bool = False
    metavar: str | tuple[str, ...] | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (``"must be > 0, got -1"``), or None when it is."""
        if value is None:
            return None
        if isinstance(value, tuple):
            return next((p for p in map(self.problem, value) if p), None)
        if self.device:
            return None if isinstance(value, str) and DEVICE_PATTERN.match(value) else f"unknown device {value!r}; choose auto, cpu, cuda, cuda:N or mps"
        if self.choices:
            return None if value in self.choices else f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        if not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        return self._range_problem(value)

    def _range_problem(self, value: float) -> str | None:
        low, high = self.minimum, self.maximum
        below = low is not None and (value <= low if self.open_minimum else value < low)
        above = high is not None and (value >= high if self.open_maximum else value > high)
        if not (below or above):
            return None
        shown = _number_text(value)
        if low is not None and high is not None:
            brackets = ("(" if self.open_minimum else "[") + f"{_number_text(low)}, {_number_text(high)}" + (")" if self.open_maximum else "]")
            return f"must be in {brackets}, got {shown}"
        if below:
            if self.open_minimum:
                return f"must be > {_number_text(low)}, got {shown}"
            return f"must be at least {_number_text(low)}, got {shown}"
        return f"must be < {_number_text(high)}, got {shown}" if self.open_maximum else f"must be at most {_number_text(high)}, got {shown}"


def _number_text(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting(default: Any, **metadata: Any) -> Any:
    """A dataclass field with default ``default`` described by :class:`Setting` (keyword arguments)."""
    return dataclasses.field(default=default, metadata={METADATA_KEY: Setting(**metadata)})


def setting_of(field: dataclasses.Field) -> Setting | None:
    """The :class:`Setting` of a dataclass field, or None for a plain field."""
    return field.metadata.get(METADATA_KEY)


def settings_fields(cls: type) -> list[tuple[dataclasses.Field, Setting]]:
    """The described fields of a settings class, in declaration order."""
    return [(f, s) for f in dataclasses.fields(cls) if (s := setting_of(f)) is not None]


def field_type(cls: type, name: str) -> type:
    """The value type of field ``name``: ``float``, ``int``, ``str``, ``bool`` or ``tuple`` (Optional removed)."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    if type(None) in args:  # Optional[X] or X | None
        hint = next(a for a in args if a is not type(None))
    return typing.get_origin(hint) or hint


def element_type(cls: type, name: str) -> type:
    """The type of the elements of a tuple field (``tuple[float, float]`` → ``float``)."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    return args[0] if args else float


def check_settings(obj: Any, what: str) -> None:
    """Refuse a settings object whose described fields break their :class:`Setting`.

    Raises
    ------
    SettingError
        ``"{what} setting {field} must be ..., got ..."`` for the first bad field.
    """
    for field, described in settings_fields(type(obj)):
        problem = described.problem(getattr(obj, field.name))
        if problem:
            raise SettingError(what, field.name, problem)


@dataclass(frozen=True)
class GuiField:
    """What the app needs to build the control of one setting.

    ``minimum``/``maximum`` are the spin box's range: an open bound is given as
    the bound itself (the app's step keeps values off it), a missing one as None.
    """

    name: str
    label: str
    default: Any
    help: str
    unit: str
    minimum: float | None
    maximum: float | None
    step: float | None
    decimals: int | None
    choices: tuple


def gui_fields(cls: type, names: tuple[str, ...] | None = None) -> list[GuiField]:
    """Defaults, ranges, labels and help of a settings class's fields (all, or ``names`` in that order)."""
    described = {f.name: (f, s) for f, s in settings_fields(cls)}
    chosen = names if names is not None else tuple(described)
    out = []
    for name in chosen:
        field, s = described[name]
        out.append(GuiField(
            name=name, label=s.label or name.replace("_", " ").capitalize(), default=field.default, help=s.help,
            unit=s.unit, minimum=s.minimum, maximum=s.maximum, step=s.step, decimals=s.decimals, choices=s.choices,
        ))
    return out


def defaults(cls: type) -> dict[str, Any]:
    """The default value of every described field of a settings class."""
    return {f.name: f.default for f, _ in settings_fields(cls)}
