"""Feasibility of a target (issue 15): rigorous two-phase conditions, the dataset's property cloud, the default target."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import numpy as np
import pytest

from vaereg_core.dataset.table import PROPERTY_NAMES, read_table
from vaereg_core.inverse import feasibility
from vaereg_core.inverse.feasibility import assess, default_target, nearest_in_cloud, phases_of, physical_checks
from vaereg_core.inverse.targets import Target, parse_target
from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT
from vaereg_core.resources import default_dataset_path

HARD_C11 = float(DEFAULT_HARD.stiffness()[0, 0])
SOFT_C11 = float(DEFAULT_SOFT.stiffness()[0, 0])


@pytest.fixture(scope="module")
def table():
    return read_table(default_dataset_path())


@pytest.fixture(scope="module")
def cloud(table) -> np.ndarray:
    return table.properties.astype(np.float64)


def target(spec) -> Target:
    return parse_target(spec, PROPERTY_NAMES)


def six(values) -> dict[str, float]:
    return dict(zip(PROPERTY_NAMES, map(float, values)))


def test_doctests_run():
    assert doctest.testmod(feasibility).failed == 0


def test_c12_above_c11_is_impossible_and_the_nearest_achievable_target_is_a_real_one(cloud):
    found = assess(target(six([30, 30, 30, 40, 10, 10])), reference=cloud)
    assert found.verdict == "impossible" and found.fractions is None
    assert found.reasons[0].startswith("C12 = 40 GPa ≥ √(C11·C22) = 30 GPa")
    assert set(found.nearest) == set(PROPERTY_NAMES)
    np.testing.assert_allclose(list(found.nearest.values()), cloud[found.nearest_row])
    assert assess(target(found.nearest), reference=cloud).verdict == "achievable"
    assert "nearest achievable target C11=" in found.line()


def test_c11_outside_the_phases_is_impossible():
    above = assess(target({"C11": HARD_C11 * 1.05}))
    assert above.verdict == "impossible" and "above the hard phase's C11 = 161.5 GPa" in above.reasons[0]
    below = assess(target({"C11": SOFT_C11 * 0.9}))
    assert below.verdict == "impossible" and "below the soft phase's C11 = 3.23 GPa" in below.reasons[0]
    # At the phases' own values: possible (a structure of one phase), only not in the data.
    assert physical_checks({"C11": HARD_C11})[0] == [] and physical_checks({"C33": SOFT_C11})[0] == []


def test_constants_needing_incompatible_fractions_are_impossible():
    # C11 = 150 needs nearly all hard phase (Voigt); C22 = 5 then lies below the Reuss bound.
    reasons, fractions = physical_checks({"C11": 150.0, "C22": 5.0})
    assert fractions is None and "≥ 0.93" in reasons[0] and "C22 = 5 GPa (Reuss bound)" in reasons[0]
    # Each alone is possible.
    assert physical_checks({"C11": 150.0})[0] == [] and physical_checks({"C22": 5.0})[0] == []


def test_hashin_shtrikman_bound_on_the_bulk_modulus_rules_out_what_voigt_reuss_allow():
    given = six([41, 65, 63, 34, 46, 36])
    reasons, _ = physical_checks(given)
    assert len(reasons) == 1 and "Hashin–Shtrikman upper bound" in reasons[0] and "K_V = 44.6 GPa" in reasons[0]
    without_c23 = {k: v for k, v in given.items() if k != "C23"}  # no K_V: the Voigt–Reuss blocks alone allow it
    assert physical_checks(without_c23)[0] == []


def test_every_sampled_dataset_structure_passes_and_its_fraction_is_allowed(table, cloud):
    hard, soft = phases_of(table.solver)
    for row in np.random.default_rng(0).choice(len(cloud), 150, replace=False):
        reasons, (low, high) = physical_checks(six(cloud[row]), hard, soft)
        assert reasons == [] and low <= table.volume_fraction[row] <= high, row


def test_a_dataset_structure_is_achievable_at_distance_zero(cloud):
    for row in (0, 17, len(cloud) - 1):
        found = assess(target(six(cloud[row])), reference=cloud)
        assert found.verdict == "achievable" and found.distance == pytest.approx(0, abs=1e-6)
        np.testing.assert_allclose(list(found.nearest_constants.values()), cloud[row], rtol=1e-6)


def test_held_out_structures_lie_inside_the_training_cloud(table, cloud):
    train, test = cloud[table.rows("train")], cloud[table.rows("test")]
    _, distance, threshold = nearest_in_cloud(train, test)
    assert np.mean(distance <= threshold) >= 0.95


def test_outside_the_cloud_but_possible_gives_the_nearest_structure(cloud):
    found = assess(target({"C11": 130.0}), reference=cloud)
    assert found.verdict == "outside the data" and found.fractions is not None
    assert found.nearest == {"C11": pytest.approx(cloud[:, 0].max())}
    anisotropic = assess(target(six([80, 10, 10, 5, 5, 5])), reference=cloud)
    assert anisotropic.verdict == "outside the data" and anisotropic.distance > anisotropic.threshold
    assert assess(target(anisotropic.nearest), reference=cloud).verdict == "achievable"


def test_per_constant_medians_are_no_structures_combination(cloud):
    # The app's old default target (issue 15): each constant's median.
    medians = six(np.median(cloud, axis=0))
    assert assess(target(medians), reference=cloud).verdict == "outside the data"


def test_free_constants_stay_free(cloud):
    found = assess(target({"C11": 40.0, "C22": 40.0}), reference=cloud)
    assert set(found.nearest) == {"C11", "C22"}
    assert set(found.nearest_constants) == set(PROPERTY_NAMES)
    np.testing.assert_allclose(list(found.nearest_constants.values()), cloud[found.nearest_row])
    # A lone off-diagonal constant is bounded through its free diagonal partners' largest value.
    assert physical_checks({"C12": HARD_C11 * 1.01})[1] is None
    assert physical_checks({"C11": 20.0, "C12": 30.0})[1] is not None  # C22 free could be stiff enough


def test_without_a_property_table_only_physics_is_judged():
    assert assess(target({"C11": 40.0})).verdict == "outside the data"
    assert "no property table" in assess(target({"C11": 40.0})).reasons[-1]
    assert assess(target(six([30, 30, 30, 40, 10, 10]))).verdict == "impossible"


def test_default_target_is_a_typical_real_test_structure(table, cloud):
    default = default_target(table)
    assert list(default) == list(PROPERTY_NAMES)
    test_rows = cloud[table.rows("test")]
    assert np.any(np.all(test_rows == np.array(list(default.values())), axis=1))
    assert assess(target(default), reference=cloud).verdict == "achievable"
    assert default_target(table, ["C11"]) == {"C11": pytest.approx(float(np.median(cloud[table.rows("test"), 0])), rel=0.05)}


def test_cli_inverse_refuses_an_impossible_target_unless_forced(tmp_path):
    from inverse_helpers import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny.pt")
    impossible = ["C11=30", "C22=30", "C33=30", "C12=40", "C13=10", "C23=10"]

    def vaereg(*args):
        return subprocess.run([sys.executable, "-m", "vaereg_core.cli", "inverse", "--model", model, *map(str, args)], capture_output=True, text=True)

    r = vaereg("--target", *impossible, "--out", tmp_path / "no")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "target impossible: C12 = 40 GPa" in r.stderr and "nearest achievable target C11=" in r.stderr
    assert not (tmp_path / "no" / "candidates.json").exists()
    r = vaereg("--target", *impossible, "--out", tmp_path / "forced", "--force")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("feasibility: impossible")
    assert json.loads((tmp_path / "forced" / "candidates.json").read_text())["feasibility"]["verdict"] == "impossible"
