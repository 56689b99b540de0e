"""Command-line options made from a settings class's fields, and the settings made from the parsed options.

Every described field with a flag becomes one option whose type checks the
field's range or choices as it is parsed, so ``--tol 2`` reads
``argument --tol: must be in (0, 1), got 2``; :func:`settings_from` then
builds the settings object, and a value its class refuses as a whole (a
phase that is not a stable solid) is reported under the option's flag.

Examples
--------
>>> from vaereg_core.cli.arguments import OneLineParser
>>> from vaereg_core.settings import SolverSettings
>>> parser = OneLineParser(prog="demo")
>>> add_settings(parser, SolverSettings, names=("tol", "max_iter"))
>>> settings_from(parser.parse_args(["--tol", "1e-3"]), SolverSettings).tol
0.001
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from vaereg_core.cli.arguments import UsageError, device, parse_number
from vaereg_core.inverse.annealing import AnnealSettings
from vaereg_core.inverse.verified import DesignSettings
from vaereg_core.settings import SettingError, SolverSettings, TrainingSettings
from vaereg_core.settings.fields import Setting, element_type, field_type, settings_fields

TASK_SETTINGS: dict[str, type] = {
    "solver": SolverSettings,
    "annealing": AnnealSettings,
    "design": DesignSettings,
    "training": TrainingSettings,
}
"""The settings class of each task, as the command line and the app share them."""


def flag_of(name: str, described: Setting) -> str | None:
    """The command-line flag of a field (``max_iter`` → ``--max-iter``), None when it has none."""
    if described.flag is None:
        return None
    return described.flag or "--" + name.replace("_", "-")


def add_settings(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    names: tuple[str, ...] | None = None,
    defaults: Any = None,
    help_overrides: dict[str, str] | None = None,
) -> None:
    """Add an option for each field of ``cls`` that has a flag (only ``names`` when given).

    Parameters
    ----------
    defaults : instance of ``cls``, optional
        Where the options' defaults come from (default ``cls()``); a command
        whose defaults differ says so here, in one place.
    help_overrides : dict, optional
        Field name → help text for a command that uses the field its own way.
    """
    base = defaults if defaults is not None else cls()
    for field, described in settings_fields(cls):
        flag = flag_of(field.name, described)
        if flag is None or (names is not None and field.name not in names):
            continue
        default = getattr(base, field.name)
        text = (help_overrides or {}).get(field.name, described.help)
        options: dict[str, Any] = {"dest": field.name, "default": default, "help": _help(text, described, default)}
        kind = field_type(cls, field.name)
        if described.choices:
            options["choices"] = described.choices
        elif kind is tuple:
            options.update(nargs=len(default), type=_value_parser(described, element_type(cls, field.name)))
        else:
            options["type"] = _value_parser(described, kind)
        if described.metavar is not None:
            options["metavar"] = described.metavar
        elif not described.choices:
            options["metavar"] = flag.lstrip("-").upper().replace("-", "_")  # the flag's name, not the field's
        parser.add_argument(flag, **options)


def add_device(parser: argparse.ArgumentParser, what: str = "", default: str = "auto") -> None:
    """The ``--device`` option every command shares: one parser (names checked, availability too) and one help text."""
    purpose = f" ({what})" if what else ""
    parser.add_argument("--device", type=device, default=default, help=f"auto, cpu, cuda, cuda:N or mps{purpose} (default {default})")


def settings_from(args: argparse.Namespace, cls: type, **fixed: Any) -> Any:
    """The settings of ``cls`` from parsed options (fields without an option keep their defaults, or ``fixed``).

    A class's ``from_controls`` classmethod, when it has one, builds the object
    (the app calls the same one), otherwise the class itself.

    Raises
    ------
    UsageError
        The class refuses the values, with the option's flag in the message.
    """
    values = {f.name: getattr(args, f.name) for f, s in settings_fields(cls) if flag_of(f.name, s) and hasattr(args, f.name)}
    build: Callable[..., Any] = getattr(cls, "from_controls", cls)
    try:
        return build(**values, **fixed)
    except SettingError as exc:
        described = {f.name: s for f, s in settings_fields(cls)}.get(exc.field)
        flag = flag_of(exc.field, described) if described is not None else None
        raise UsageError(f"argument {flag}: {exc.problem}" if flag else str(exc)) from None


def _help(text: str, described: Setting, default: Any) -> str:
    if default is None:
        return text
    shown = " ".join(map(_shown, default)) if isinstance(default, tuple) else _shown(default)
    unit = f" {described.unit}" if described.unit else ""
    return f"{text} (default {shown}{unit})"


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value_parser(described: Setting, kind: type) -> Callable[[str], Any]:
    """The argparse ``type`` of a field: the text parsed as ``kind``, then the field's own check."""
    if described.device:
        return device

    def parse(text: str) -> Any:
        value = parse_number(text, int if kind is int else float) if kind in (int, float) else text
        problem = described.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid <type> value" messages
    return parse
