"""Inverse design with a (tiny, random) model: candidates, refinement, validation."""

import threading
import time

import numpy as np
import pytest

from inverse_helpers import tiny_model
from vaereg_core.inverse import AnnealSettings, parse_target
from vaereg_core.inverse.design import candidate_structures, candidates, complete_target, log_prior_density, predict_candidates, refine
from vaereg_core.inverse.targets import TargetError


@pytest.fixture(scope="module")
def model():
    return tiny_model(components=3)


def target_for(model, spec="C11=40,C22=40,C33=40,C12=15,C13=15,C23=15"):
    return parse_target(spec, model.property_names, model.ranges)


def test_k_candidates_ordered_by_weight(model):
    found = candidates(model, target_for(model))
    assert len(found) == 3
    weights = [c.weight for c in found]
    assert weights == sorted(weights, reverse=True) and sum(weights) == pytest.approx(1.0, abs=1e-5)
    assert sorted(c.component for c in found) == [0, 1, 2]
    assert len({c.z.tobytes() for c in found}) == 3
    for c in found:
        assert c.voxels.shape == (19, 19, 19) and c.voxels.dtype == np.uint8
        assert c.predicted.shape == (6,) and np.all(c.predicted_std > 0)
        d = c.to_dict()
        assert d["label"] == f"k{c.component + 1}" and set(d["predicted_GPa"]) == set(model.property_names)


def test_decoded_candidates_come_first_and_their_prediction_after_exactly_as_in_one_call(model):
    target = target_for(model)
    whole = candidates(model, target, samples_per_component=1, seed=2)
    first = candidate_structures(model, target, samples_per_component=1, seed=2)
    assert [c.label for c in first] == [c.label for c in whole] and not any(c.is_predicted for c in first)
    assert all("predicted_GPa" not in c.to_dict() for c in first)
    mean, std = predict_candidates(model, first)
    for a, b, m, s in zip(first, whole, mean, std):
        assert np.array_equal(a.voxels, b.voxels) and np.array_equal(m, b.predicted) and np.array_equal(s, b.predicted_std)
    assert all(c.is_predicted and "predicted_GPa" in c.to_dict() for c in whole)


def test_samples_around_each_component(model):
    found = candidates(model, target_for(model), samples_per_component=2, seed=3)
    assert len(found) == 9
    assert [c.kind for c in found[:3]] == ["mean", "sample", "sample"]
    again = candidates(model, target_for(model), samples_per_component=2, seed=3)
    assert all(np.array_equal(a.z, b.z) for a, b in zip(found, again))


def test_gaussian_prior_has_one_component():
    found = candidates(tiny_model(prior="gaussian"), target_for(tiny_model(prior="gaussian")))
    assert len(found) == 1 and found[0].weight == pytest.approx(1.0)


def test_free_properties_need_and_use_the_reference_table(model):
    partial = target_for(model, "C11=40")
    with pytest.raises(TargetError, match="free needs the training property table"):
        candidates(model, partial)
    rng = np.random.default_rng(0)
    reference = rng.uniform(5, 100, size=(500, 6))
    reference[:, 1] = reference[:, 0] * 0.5  # C22 tied to C11 in this made-up table
    full = complete_target(partial, reference)
    assert full[0] == 40 and full[1] == pytest.approx(20, rel=0.05)
    assert len(candidates(model, partial, reference=reference)) == 3


def test_target_for_another_model_is_refused(model):
    one = tiny_model(properties=("C11",))
    with pytest.raises(TargetError, match="model predicts C11"):
        candidates(one, target_for(model))


def test_refinement_lowers_the_objective_and_is_reproducible(model):
    target = target_for(model)
    start = candidates(model, target)[0]
    settings = AnnealSettings(iterations=40, start_step=1.0, end_step=0.1, seed=5)
    a = refine(model, target, start.z, settings, validate_best=False)
    b = refine(model, target, start.z, settings, validate_best=False)
    assert a.anneal.best.value <= a.anneal.trajectory[0].value
    assert a.anneal.best.value < a.anneal.trajectory[0].value, "40 proposals found nothing better"
    assert np.array_equal(a.anneal.best.z, b.anneal.best.z)
    assert a.validation is None and a.to_dict()["forward_model"] == "regressor"
    np.testing.assert_allclose(target.relative_error(a.predicted), a.anneal.best.value, rtol=1e-5)


def test_refinement_with_prior_term_and_separate_forward_model(model):
    target = target_for(model)
    other = tiny_model(components=3, seed=1)
    r = refine(model, target, np.zeros(model.latent_dim), AnnealSettings(iterations=10), forward=other, prior_weight=0.5, validate_best=False)
    assert r.forward == "separate forward model" and r.prior_weight == 0.5
    pi, mu, sigma = model.prior_components(target.as_dict())
    # The prior term is added on top of the prediction error.
    mean, _ = other.predict(model.decode(r.anneal.best.z, binary=True))
    expected = target.relative_error(mean) + 0.5 * -log_prior_density(r.anneal.best.z, pi, mu, sigma) / model.latent_dim
    assert r.anneal.best.value == pytest.approx(expected, rel=1e-5)


def test_refinement_cancels_within_half_a_second(model):
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    t = time.perf_counter()
    r = refine(model, target_for(model), np.zeros(model.latent_dim), AnnealSettings(iterations=100_000), cancel=stop.is_set)
    assert r.anneal.cancelled and r.validation is None
    assert time.perf_counter() - t - 0.2 < 0.5


def test_log_prior_density_matches_scipy():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(1)
    pi = np.array([0.7, 0.3])
    mu = rng.normal(size=(2, 3))
    sigma = rng.uniform(0.5, 2, size=(2, 3))
    z = rng.normal(size=3)
    expected = np.log(sum(p * multivariate_normal(m, np.diag(s**2)).pdf(z) for p, m, s in zip(pi, mu, sigma)))
    assert log_prior_density(z, pi, mu, sigma) == pytest.approx(expected, rel=1e-10)


def test_cli_inverse_and_refine_end_to_end(tmp_path):
    import json
    import subprocess
    import sys

    from inverse_helpers import save_tiny_model
    from vaereg_core.voxel_io import read_voxel_file

    model = save_tiny_model(tmp_path / "tiny.pt")
    target = ["C11=40", "C22=40", "C33=40", "C12=15", "C13=15", "C23=15"]

    def vaereg(*args):
        return subprocess.run([sys.executable, "-m", "vaereg_core.cli", *map(str, args)], capture_output=True, text=True)

    r = vaereg("inverse", "--model", model, "--target", *target, "--out", tmp_path / "inv", "--format", "h5")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "inv" / "candidates.json").read_text())
    assert [c["label"] for c in summary["candidates"]] == ["k1", "k2", "k3"]
    voxels, meta = read_voxel_file(tmp_path / "inv" / "k2.h5")
    assert meta["target_GPa"]["C11"] == 40 and meta["label"] == "k2" and voxels.shape == (19, 19, 19)
    r = vaereg("inverse", "--model", model, "--target", *target, "--out", tmp_path / "inv")
    assert r.returncode == 2 and "exists" in r.stderr
    r = vaereg("refine", "--model", model, "--target", *target, "--start", f"{tmp_path / 'inv' / 'candidates.json'}#k2",
               "--iterations", 5, "--out", tmp_path / "ref", "--no-validate", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["iterations_done"] == 5 and len(out["trajectory"]) >= 1 and out["start"].endswith("#k2")
    r = vaereg("refine", "--model", model, "--target", "C11=40", "--start", "1,2", "--out", tmp_path / "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = vaereg("inverse", "--model", tmp_path / "missing.pt", "--target", "C11=40", "--out", tmp_path / "x")
    assert r.returncode == 2 and "missing.pt" in r.stderr


def test_latent_map_of_a_dataset_saves_and_projects_candidates(tmp_path, model):
    from model_helpers import write_synthetic_dataset
    from vaereg_core.dataset import MicrostructureDataset
    from vaereg_core.inverse import LatentMap, latent_map

    data = write_synthetic_dataset(tmp_path / "synthetic.h5")
    dataset = MicrostructureDataset(data, split="train")
    calls = []
    m = latent_map(model, dataset, max_structures=40, progress=lambda d, n: calls.append((d, n)))
    assert m.latents.shape == (40, model.latent_dim) and m.properties.shape == (40, 6)
    assert calls[-1] == (40, 40)
    full = latent_map(model, MicrostructureDataset(data, split="val"))
    # Each row is the model's encoding of that structure.
    val = MicrostructureDataset(data, split="val")
    np.testing.assert_allclose(full.latents[3], model.encode(val.voxels(3))[0], rtol=1e-5, atol=1e-6)
    path = m.save(tmp_path / "map.npz")
    again = LatentMap.load(path)
    np.testing.assert_allclose(again.coordinates, m.coordinates, atol=1e-5)
    assert again.property_names == m.property_names and again.model_checksum == m.model_checksum == model.file.checksum
    points = m.project(np.stack([c.z for c in candidates(model, target_for(model))]))
    assert points.shape == (3, 2) and np.all(np.isfinite(points))


def test_validation_against_physics_and_its_cancellation(model):
    from vaereg_core.errors import Cancelled
    from vaereg_core.inverse.design import validate
    from vaereg_core.microstructure import generate
    from vaereg_core.physics import homogenize

    voxels = generate(seed=0, field_index=0, filter_index=21, volume_fraction=0.5, size=15)
    target = target_for(model)
    v = validate(voxels, target)
    exact = homogenize(voxels, constants="normal").constants
    for name in target.names:
        assert v.constants[name] == pytest.approx(exact[name], rel=1e-4)
        assert v.relative_error[name] == pytest.approx(abs(exact[name] - target.as_dict()[name]) / target.as_dict()[name], rel=1e-3)
    assert v.mean_relative_error == pytest.approx(np.mean(list(v.relative_error.values())))
    assert v.solver["discretization"] == "rotated"
    with pytest.raises(Cancelled):
        validate(voxels, target, cancel=lambda: True)
