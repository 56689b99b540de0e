"""The settings schema: the command line and the app get the same defaults, ranges and refusals from one description."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from vaereg_core.cli import build_parser, main
from vaereg_core.cli.settings import TASK_SETTINGS, flag_of
from vaereg_core.inverse.annealing import AnnealSettings
from vaereg_core.inverse.design import validate
from vaereg_core.inverse.targets import Target
from vaereg_core.inverse.verified import DesignSettings
from vaereg_core.settings import VALIDATION_TOL, SettingError, SolverSettings, TrainingSettings, gui_fields, settings_fields


def _command(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def _cli_defaults(command: str, cls: type) -> dict:
    """The defaults the command's parser gives the fields of ``cls`` it has options for."""
    parser = _command(command)
    dests = {a.dest for a in parser._actions}
    return {f.name: parser.get_default(f.name) for f, s in settings_fields(cls) if flag_of(f.name, s) and f.name in dests}


def _gui_defaults(cls: type, names) -> dict:
    return {g.name: g.default for g in gui_fields(cls, tuple(names))}


@pytest.mark.parametrize(
    ("command", "cls", "expected_options"),
    [
        ("homogenize", SolverSettings, {"tol", "max_iter", "discretization", "backend", "dtype", "device", "hard", "soft"}),
        ("refine", AnnealSettings, {"iterations", "start_temperature", "start_step", "seed"}),
        ("design", DesignSettings, {"seconds", "alternatives", "goal", "proposals", "seed"}),
        ("train", TrainingSettings, {"kind", "device", "epochs", "seed", "split_seed", "time_limit"}),
    ],
    ids=["solver", "annealing", "design", "training"],
)
def test_the_command_line_and_the_app_get_the_same_defaults(command, cls, expected_options):
    cli = _cli_defaults(command, cls)
    assert expected_options <= set(cli)  # the options each command has at least (classes may add more)
    assert cli == _gui_defaults(cls, cli)
    assert cli == {name: getattr(cls(), name) for name in cli}


def test_every_task_has_its_settings_class():
    assert TASK_SETTINGS == {"solver": SolverSettings, "annealing": AnnealSettings, "design": DesignSettings, "training": TrainingSettings}


def test_the_gui_spec_carries_labels_ranges_and_units():
    fields = {g.name: g for g in gui_fields(DesignSettings)}
    assert fields["seconds"].label == "Budget" and fields["seconds"].unit == "s"
    assert (fields["alternatives"].minimum, fields["alternatives"].maximum) == (1, 16)
    temperature = gui_fields(AnnealSettings, ("start_temperature",))[0]
    assert (temperature.minimum, temperature.maximum, temperature.decimals) == (0.0, 10.0, 5)
    assert gui_fields(SolverSettings, ("dtype",))[0].choices == ("float64", "float32")


def test_one_check_refuses_a_value_on_the_command_line_and_in_the_class(capsys):
    with pytest.raises(SettingError) as refused:
        AnnealSettings(start_temperature=20.0)
    assert str(refused.value) == "annealing setting start_temperature must be in (0, 10], got 20"
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["refine", "--target", "C11=40", "--out", ".", "--start", "random", "--temperature", "20"])
    assert exited.value.code == 2
    assert "argument --temperature: must be in (0, 10], got 20" in capsys.readouterr().err


def test_an_unstable_phase_is_named_by_its_option(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.ones((4, 4, 4), dtype=np.uint8))
    assert main(["homogenize", str(tmp_path / "a.npy"), "--soft", "-2", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "argument --soft: is not a stable solid" in err and "Traceback" not in err


def test_a_start_below_the_schedule_end_is_held_not_warmed():
    held = AnnealSettings.from_controls(start_temperature=1e-4, start_step=0.01)
    assert (held.end_temperature, held.end_step) == (1e-4, 0.01)
    temperatures = [held.schedule(i)[0] for i in range(held.iterations)]
    assert max(temperatures) == pytest.approx(1e-4)
    cooled = AnnealSettings.from_controls()
    assert cooled == AnnealSettings()


def test_validation_uses_the_validation_tolerance():
    voxels = np.zeros((8, 8, 8), dtype=np.uint8)
    voxels[:4] = 1
    found = validate(voxels, Target(("C11",), np.array([40.0])))
    assert found.solver["tol"] == VALIDATION_TOL == SolverSettings().tol == DesignSettings().final_tol


def test_training_settings_override_only_what_is_given():
    assert TrainingSettings().config_overrides() == {}
    assert TrainingSettings(epochs=3, split_seed=2).config_overrides() == {"max_epochs": 3, "split_seed": 2}


def test_the_trainable_kinds_are_the_checkpoint_kinds():
    from vaereg_core.model.checkpoint import KINDS
    from vaereg_core.settings import MODEL_KINDS

    assert tuple(KINDS) == MODEL_KINDS
