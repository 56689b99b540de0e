"""Your own material through the pipeline: dataset build with --hard/--soft, the phases recorded and
checked on resume, carried by a trained model, used by feasibility and validation (issue 20)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from model_helpers import TINY_RECIPE, stand_in_properties
from vaereg_core.dataset.build import SolverSettings, build_dataset
from vaereg_core.dataset.table import DatasetError, DatasetTable, read_table
from vaereg_core.errors import PhysicsError
from vaereg_core.microstructure import Recipe
from vaereg_core.physics.phases import DEFAULT_HARD, PAPER_MATERIAL, Material, Phase, describe

OTHER = SolverSettings(hard=(410.0, 0.14), soft=(70.0, 0.33))
"""A metal-matrix composite's phases (the issue's example)."""

SMALL = Recipe(seed=5, n_fields=1, size=11)


def vaereg(capsys, *args: str) -> tuple[int, str]:
    """Exit status and stderr of ``vaereg ARGS`` run in this process."""
    from vaereg_core.cli import main

    try:
        status = main(list(args))
    except SystemExit as exc:  # argparse's refusals
        status = exc.code
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def other_material_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("other") / "other.h5"
    summary = build_dataset(path, recipe=SMALL, subset="two-morphology", settings=OTHER)
    assert summary.computed == 2 and not summary.failures
    return path


def test_a_record_round_trips_and_reads_as_the_papers_when_absent():
    m = OTHER.material
    assert Material.from_record(m.to_record()) == m
    assert m.to_record() == {"hard": {"E": 410.0, "nu": 0.14}, "soft": {"E": 70.0, "nu": 0.33}}
    assert Material.from_record(None) == Material.from_record({"stand_in": "x"}) == PAPER_MATERIAL
    assert PAPER_MATERIAL.hard == DEFAULT_HARD
    assert describe(PAPER_MATERIAL) == "hard E 120 GPa ν 0.30 / soft E 2.4 GPa ν 0.30"
    assert describe(m) == "hard E 410 GPa ν 0.14 / soft E 70 GPa ν 0.33"
    with pytest.raises(PhysicsError, match="recorded hard phase"):
        Material.from_record({"hard": {"E": "stiff"}})
    with pytest.raises(PhysicsError, match="Poisson"):
        Material.from_record({"soft": {"E": 1.0, "nu": 0.5}})
    assert Material(Phase.from_young(1.0, 0.3), Phase.from_young(2.0, 0.3)).inverted and not m.inverted


def test_every_c11_lies_between_the_phases_own_c11(other_material_dataset):
    table = read_table(other_material_dataset)
    assert Material.from_record(table.solver) == OTHER.material
    low, high = OTHER.material.c11_range
    assert 100 < low < high < 430  # 103.7 and 429.6 GPa
    normal = table.properties[:, :3]
    assert np.all(normal > low) and np.all(normal < high), (normal, low, high)


def test_a_resume_with_other_phases_is_refused_naming_both(other_material_dataset, capsys):
    before = other_material_dataset.read_bytes()
    with pytest.raises(DatasetError, match="phase mismatch") as refused:
        build_dataset(other_material_dataset, recipe=SMALL, subset="two-morphology")
    message = str(refused.value)
    assert describe(OTHER.material) in message and describe(PAPER_MATERIAL) in message
    status, err = vaereg(capsys, "dataset", "build", "--out", str(other_material_dataset), "--seed", "5", "--fields", "1", "--size", "11",
                    "--subset", "two-morphology", "--hard", "410", "0.14", "--soft", "70", "0.3")
    assert status == 2 and "phase mismatch" in err and len(err.strip().splitlines()) == 1
    assert other_material_dataset.read_bytes() == before


@pytest.mark.parametrize(
    ("phase", "complaint"),
    [(["--hard", "0", "0.3"], "--hard: E must be > 0"), (["--soft", "-2", "0.3"], "--soft: E must be > 0"),
     (["--hard", "100", "0.5"], "--hard: Poisson's ratio must be in (-1, 0.5)"), (["--soft", "1", "-1"], "--soft: Poisson's ratio"),
     (["--soft", "1", "nan"], "--soft: NU must be a finite number")],
)
def test_bad_phases_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, phase, complaint):
    out = tmp_path / "d.h5"
    status, err = vaereg(capsys, "dataset", "build", "--out", str(out), "--fields", "1", "--size", "9", *phase)
    assert status == 2 and complaint in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_a_hard_phase_softer_than_the_soft_one_is_allowed_and_said(tmp_path, capsys):
    out = tmp_path / "d.h5"
    status, err = vaereg(capsys, "dataset", "build", "--out", str(out), "--seed", "5", "--fields", "1", "--size", "9", "--limit", "1",
                    "--hard", "2", "0.3", "--soft", "100", "0.3")
    assert status == 0, err
    assert "note: the hard phase (voxel value 1) is the softer one" in err
    assert read_table(out).solver["hard"] == {"E": 2.0, "nu": 0.3}


def test_the_tables_solver_options_carry_its_phases(other_material_dataset):
    options = read_table(other_material_dataset).solver_options()
    assert options["hard"] == OTHER.material.hard and options["soft"] == OTHER.material.soft
    assert options["tol"] == 1e-4 and options["discretization"] == "rotated"


def test_a_model_trained_on_another_material_carries_it(tmp_path):
    from vaereg_core.model.checkpoint import load_model_file, save_model
    from vaereg_core.model.config import named_config
    from vaereg_core.model.inference import load_model
    from vaereg_core.model.training import train

    samples = np.arange(TINY_RECIPE.n_structures)
    vf = np.array([TINY_RECIPE.volume_fraction(int(s // 64), int(s % 64)) for s in samples])
    table = DatasetTable(recipe=TINY_RECIPE, solver={**OTHER.to_dict(), "stand_in": "test properties, not physics"})
    table.append(samples, stand_in_properties(vf, samples % 64), vf, np.zeros((samples.size, 3), np.int32))
    data = tmp_path / "other.h5"
    table.write(data, microstructures=np.stack([TINY_RECIPE.structure(int(s // 64), int(s % 64)) for s in samples]))
    config = named_config("tiny")
    config = replace(config, train=replace(config.train, max_epochs=1, max_train_samples=8))
    train(config, data, tmp_path / "run", device="cpu", progress=False)
    model = load_model(tmp_path / "run" / "model.pt", "cpu")
    assert model.material == OTHER.material
    assert describe(model.material) == "hard E 410 GPa ν 0.14 / soft E 70 GPa ν 0.33"
    # A model file that records no material (older files) reads as the paper's.
    legacy = load_model_file(tmp_path / "run" / "model.pt")
    legacy.metadata.pop("material")
    save_model(tmp_path / "legacy.pt", legacy)
    assert load_model(tmp_path / "legacy.pt", "cpu").material == PAPER_MATERIAL
    # The app takes the model's own table (the shipped one is the paper's) and draws its latent map from it.
    from vaereg_studio.design_state import model_training_data
    from vaereg_studio.model_process import compute_map

    training = model_training_data(tuple(model.property_names), model.material, model.file.metadata["data"])
    assert training.path == data and training.properties.shape == (samples.size, 1)
    found, _ = compute_map(model, lambda report: None, lambda: False, tmp_path / "run" / "model.pt", tmp_path / "cache", 64, training.path)
    assert len(found.latents) > 0


def test_feasibility_is_judged_with_the_models_material():
    from vaereg_core.cli.inverse import _feasibility
    from vaereg_core.inverse.targets import parse_target

    target = parse_target(["C11=300"], ("C11",), {"C11": (100.0, 400.0)})
    paper, other = SimpleNamespace(material=PAPER_MATERIAL), SimpleNamespace(material=OTHER.material)
    assert _feasibility(target, None, paper).verdict == "impossible"  # above 120 GPa hard phase's C11 = 161.5
    assert _feasibility(target, None, other).verdict != "impossible"


def test_shipped_models_are_of_the_papers_material():
    from vaereg_core.model.checkpoint import load_model_file
    from vaereg_core.resources import resources_dir

    models = sorted((resources_dir() / "models").glob("*.pt"))
    if not models:
        pytest.skip("no shipped models in this installation")
    for path in models:
        assert load_model_file(path).material == PAPER_MATERIAL, path


def test_the_app_judges_a_model_of_another_material_with_a_table_of_its_phases(other_material_dataset, tmp_path):
    from vaereg_core.inverse.feasibility import IMPOSSIBLE
    from vaereg_core.inverse.targets import parse_target
    from vaereg_studio.design_state import model_training_data, training_data
    from vaereg_studio.design_worker import feasibility

    names = ("C11",)
    shipped = training_data(names)
    if shipped.properties is None:
        pytest.skip("no shipped dataset in this installation")
    assert model_training_data(names, PAPER_MATERIAL, str(other_material_dataset)).path == shipped.path  # the paper's: shipped
    own = model_training_data(names, OTHER.material, str(other_material_dataset))
    assert own.path == other_material_dataset and own.properties.shape == (2, 1)
    missing = model_training_data(names, OTHER.material, str(tmp_path / "gone.h5"))
    assert missing.properties is None and f"not the model's {describe(OTHER.material)}" in missing.reason
    # 28.6 GPa, the paper's typical C11, is below this material's soft phase (103.7 GPa): no structure has it.
    target = parse_target(["C11=28.6"], names, {"C11": (100.0, 400.0)})
    assert feasibility(target, own.properties, OTHER.material).verdict == IMPOSSIBLE
    assert feasibility(target, shipped.properties, PAPER_MATERIAL).verdict != IMPOSSIBLE
