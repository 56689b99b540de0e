"""The forward ensemble: combination, calibration, manifest (attach, stale, damaged), fit end to end and the CLI."""

import contextlib
import json

import numpy as np
import pytest

from inverse_helpers import save_tiny_model
from model_helpers import write_synthetic_dataset
from vaereg_core.cli import main
from vaereg_core.errors import ModelFileError
from vaereg_core.model.ensemble import (
    MemberPrediction,
    combine,
    coverage,
    fit_scales,
    fit_weights,
    manifest_path,
    read_manifest,
)
from vaereg_core.model.ensemble_fit import SplitPredictions, fit_ensemble
from vaereg_core.model.inference import load_model
from vaereg_core.model.latent_svr import LatentSVR


def test_calibration_on_synthetic_data_reaches_its_coverage():
    rng = np.random.default_rng(1)
    n, p = 20000, 3
    mean = rng.normal(3.0, 0.5, (n, p))
    stated = np.full((n, p), 0.05**2) * rng.uniform(0.5, 2.0, (n, p))
    truth = np.exp(mean + rng.standard_normal((n, p)) * np.sqrt(stated) * np.array([0.5, 1.0, 2.5]))  # under-, well, overconfident
    fit, check = slice(0, 10000), slice(10000, None)
    scale = fit_scales(mean[fit], stated[fit], truth[fit])
    np.testing.assert_allclose(scale, [0.5, 1.0, 2.5], rtol=0.05)
    assert coverage(mean[check], stated[check], truth[check], 1)[2] < 0.4  # as stated: far too narrow
    within1 = coverage(mean[check], stated[check] * scale**2, truth[check], 1)
    within2 = coverage(mean[check], stated[check] * scale**2, truth[check], 2)
    np.testing.assert_allclose(within1, 0.683, atol=0.025)
    np.testing.assert_allclose(within2, 0.954, atol=0.015)


def test_weights_prefer_the_better_member_and_sum_to_one():
    rng = np.random.default_rng(2)
    truth = np.exp(rng.normal(3.0, 0.4, (500, 2)))
    good = np.log(truth) + rng.normal(0, [0.02, 0.2], (500, 2))
    bad = np.log(truth) + rng.normal(0, [0.2, 0.02], (500, 2))
    zeros = np.zeros_like(good)
    w = fit_weights([MemberPrediction(good, zeros, zeros), MemberPrediction(bad, zeros, zeros)], truth)
    np.testing.assert_allclose(w.sum(0), 1.0)
    assert w[0, 0] > 0.9 and w[1, 1] > 0.9
    mean, var = combine([MemberPrediction(good, zeros + 1e-4, zeros), MemberPrediction(bad, zeros + 1e-4, zeros)], w)
    assert mean.shape == var.shape == (500, 2) and np.all(var >= 1e-4 - 1e-12)


def fit_tiny_ensemble(folder, **options):
    """Two tiny models (different weights) in ``folder`` and their ensemble fitted on a tiny dataset there."""
    data = write_synthetic_dataset(folder / "tiny.h5")
    gm = save_tiny_model(folder / "gm.pt", seed=0)
    other = save_tiny_model(folder / "other.pt", seed=1)
    metrics = fit_ensemble(gm, [other], data, folder / "report", cache=folder / "cache", device="cpu", **options)
    return data, gm, other, metrics


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The tiny ensemble over the six permutations."""
    folder = tmp_path_factory.mktemp("ensemble")
    return (folder, *fit_tiny_ensemble(folder, symmetries="permutations"))


def test_fit_writes_report_and_manifest_and_loading_attaches_it(fitted):
    folder, data, gm, other, metrics = fitted
    assert (folder / "report" / "report.md").read_text().count("ensemble") >= 2
    assert metrics["passes_per_structure"] == 12 and len(metrics["labels"]) == 3 and metrics["ensemble"] in metrics["rows"]
    spec = read_manifest(manifest_path(gm))
    assert spec["symmetries"] == "permutations" and spec["weights"].shape == (3, 6)
    assert [m["kind"] for m in spec["members"]] == ["network", "network", "latent-svr"]
    model = load_model(gm, "cpu")
    assert model.forward is not None and model.forward_note is None
    assert len(model.forward.networks) == 2 and len(model.forward.svrs) == 1 and model.forward.networks[0] is model
    voxels = np.random.default_rng(0).integers(0, 2, (19, 19, 19), dtype=np.uint8)
    mean, std = model.predict(voxels)
    log_mean, log_var = model.forward.predict_log(voxels[None])
    np.testing.assert_allclose(mean, np.exp(log_mean[0]), rtol=1e-6)
    assert np.all(std > 0) and mean.shape == (6,)
    own = model.predict(voxels, "identity")[0]
    assert not np.allclose(own, mean)


def test_a_replaced_member_makes_the_manifest_stale(fitted, tmp_path):
    folder, data, gm, other, _ = fitted
    copy_gm, copy_other = tmp_path / "gm.pt", tmp_path / "other.pt"
    copy_gm.write_bytes(gm.read_bytes())
    save_tiny_model(copy_other, seed=5)  # another network under the member's name
    manifest = json.loads(manifest_path(gm).read_text())
    manifest_path(copy_gm).write_text(json.dumps(manifest))
    model = load_model(copy_gm, "cpu")
    assert model.forward is None and "stale" in model.forward_note
    assert model.predict(np.zeros((19, 19, 19), np.uint8))[0].shape == (6,)


@pytest.mark.parametrize("damage", ["not json", json.dumps([1, 2]), json.dumps({"format": "vaereg-forward-ensemble", "version": 99}),
                                    json.dumps({"format": "vaereg-forward-ensemble", "version": 1, "properties": ["C11"]})])
def test_a_damaged_manifest_is_a_clear_error(fitted, tmp_path, damage):
    _, _, gm, _, _ = fitted
    copy = tmp_path / "gm.pt"
    copy.write_bytes(gm.read_bytes())
    manifest_path(copy).write_text(damage)
    with pytest.raises(ModelFileError, match="gm.forward.json"):
        load_model(copy, "cpu")


def test_cli_predict_prints_the_ensembles_values(fitted, capsys):
    folder, _, gm, _, _ = fitted
    structure = folder / "s.npy"
    np.save(structure, np.random.default_rng(3).integers(0, 2, (19, 19, 19), dtype=np.uint8))
    assert main(["predict", str(structure), "--model", str(gm), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    expected = load_model(gm, "cpu").predict(np.load(structure))[0]
    assert "ensemble of 3" in out and f"C11 {expected[0]:.2f} ±" in out


def test_cli_fit_ensemble_resumes_from_its_cache(fitted, capsys):
    folder, data, gm, other, metrics = fitted
    code = main(["fit-ensemble", "--model", str(gm), "--member", str(other), "--data", str(data), "--report", str(folder / "again"),
                 "--cache", str(folder / "cache"), "--no-manifest", "--device", "cpu"])
    assert code == 0 and "test MAPE % of the ensemble" in capsys.readouterr().out
    again = json.loads((folder / "again" / "metrics.json").read_text())
    assert again["rows"] == json.loads(json.dumps(metrics["rows"]))


def test_a_changed_svr_file_makes_the_manifest_stale(fitted, tmp_path):
    folder, _, gm, other, _ = fitted
    for name in ("gm.pt", "other.pt", "gm.forward.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    svr = LatentSVR.load(folder / "gm.latent-svr.npz")
    svr.with_residual_var(svr.residual_var * 2).save(tmp_path / "gm.latent-svr.npz")
    model = load_model(tmp_path / "gm.pt", "cpu")
    assert model.forward is None and "gm.latent-svr.npz has changed" in model.forward_note


def test_latent_svr_predicts_as_scikit_learn_and_survives_a_round_trip(tmp_path):
    from sklearn.svm import SVR

    rng = np.random.default_rng(4)
    z = rng.normal(size=(300, 4))
    truth = np.exp(np.stack([np.sin(z[:, 0]) + 3, 0.3 * z[:, 1] ** 2 + 2], axis=1))
    svr = LatentSVR.fit(z, truth, ("C11", "C12"), "abc")
    x = (z - z.mean(0)) / z.std(0)
    reference = SVR(C=10.0, epsilon=0.01, gamma="scale").fit(x, np.log(truth[:, 0])).predict(x[:50])
    np.testing.assert_allclose(svr.predict_log(z[:50])[:, 0], reference, atol=1e-8)
    again = LatentSVR.load(svr.save(tmp_path / "s.latent-svr.npz"))
    np.testing.assert_array_equal(again.predict_log(z[:7]), svr.predict_log(z[:7]))
    assert again.predict_log(z[:6].reshape(2, 3, 4)).shape == (2, 3, 2)


def test_a_pickled_or_damaged_svr_file_is_refused_without_running_it(tmp_path):
    import pickle

    class Hostile:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    path = tmp_path / "x.latent-svr.npz"
    np.savez(path, format=np.array([Hostile()], dtype=object))
    with pytest.raises(ModelFileError, match="x.latent-svr.npz"):
        LatentSVR.load(path)
    assert not (tmp_path / "ran").exists()
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match="unreadable"):
        LatentSVR.load(path)


@pytest.fixture(scope="module")
def fitted_with_head(tmp_path_factory):
    """The tiny ensemble again, with a feature head on both networks' trunk features."""
    folder = tmp_path_factory.mktemp("ensemble-head")
    _, gm, _, metrics = fit_tiny_ensemble(folder, symmetries="cyclic", feature_head=True)
    return folder, gm, metrics


def test_a_feature_head_joins_the_ensemble_and_keeps_it_symmetric(fitted_with_head):
    from vaereg_core.symmetry import CubeSymmetry

    folder, gm, metrics = fitted_with_head
    spec = read_manifest(manifest_path(gm))
    assert [m["kind"] for m in spec["members"]] == ["network", "network", "latent-svr", "feature-head"]
    assert spec["members"][-1]["features_from"] == [0, 1] and (folder / "gm.feature-head.npz").is_file()
    assert metrics["feature_head_training"]["best_epoch"] >= 1 and any("feature head" in label for label in metrics["rows"])
    model = load_model(gm, "cpu")
    assert model.forward is not None and len(model.forward.heads) == 1
    voxels = np.random.default_rng(5).integers(0, 2, (19, 19, 19), dtype=np.uint8)
    parts = model.forward.member_predictions(voxels[None])
    assert len(parts) == 4 and np.all(np.isfinite(parts[-1].mean)) and np.all(parts[-1].variance > 0)
    # Averaged over the cyclic copies, a cyclically permuted structure's prediction is the permuted prediction.
    shift = CubeSymmetry((1, 2, 0))
    mean = model.predict(voxels)[0]
    moved = model.predict(np.ascontiguousarray(shift.apply(voxels)))[0]
    np.testing.assert_allclose(moved, mean[list(shift.constant_sources(model.property_names))], rtol=1e-5)
    # The identity set (one pass a network, for ranking proposals) is the members' plain predictions combined.
    single = model.forward.predict_log(voxels[None], symmetries="identity")[0]
    plain = [network.predict_transformed(voxels[None], (CubeSymmetry(),))[0][:, 0] for network in model.forward.networks]
    assert not np.allclose(single, np.log(mean))
    np.testing.assert_allclose(model.forward.member_predictions(voxels[None], "identity")[1].mean, plain[1], rtol=1e-12)


def test_the_numpy_members_predict_on_one_blas_thread_as_on_several(fitted_with_head, monkeypatch):
    from threadpoolctl import threadpool_info

    from vaereg_core.model import ensemble

    _, gm, _ = fitted_with_head
    model = load_model(gm, "cpu")
    voxels = np.random.default_rng(6).integers(0, 2, (3, 19, 19, 19), dtype=np.uint8)
    seen = []
    predict = type(model.forward.heads[0][1]).predict_log

    def recording(head, features):
        seen.append({lib["internal_api"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
        return predict(head, features)

    monkeypatch.setattr(type(model.forward.heads[0][1]), "predict_log", recording)
    limited = model.forward.predict_log(voxels)
    assert seen and all(set(threads.values()) == {1} for threads in seen)
    monkeypatch.setattr(ensemble, "_blas_single_thread", contextlib.nullcontext)
    several = model.forward.predict_log(voxels)
    for a, b in zip(limited, several):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_overlapping_predictions_leave_the_process_s_blas_threads_as_they_were():
    # threadpoolctl's limit is the process's: without the lock the second exit restored the first's limit of 1.
    import threading

    from threadpoolctl import threadpool_info

    from vaereg_core.model.ensemble import _blas_single_thread

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with _blas_single_thread():
            first_in.set()
            second_in.wait(0.5)  # the second waits at the lock: it never comes in here
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with _blas_single_thread():
            second_in.set()
            first_out.wait(10)

    before = blas_threads()
    if max(before, default=1) < 2:  # (an outer threadpool_limits(2) here hid the race: a worker's limit went unseen)
        pytest.skip("BLAS runs on one thread already: there is no limit to restore wrongly")
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert blas_threads() == before


def test_a_changed_feature_head_makes_the_manifest_stale(fitted_with_head, tmp_path):
    from vaereg_core.model.feature_head import FeatureHead

    folder, gm, _ = fitted_with_head
    for name in ("gm.pt", "other.pt", "gm.forward.json", "gm.latent-svr.npz"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    head = FeatureHead.load(folder / "gm.feature-head.npz")
    FeatureHead(head.names, head.sources, head.x_mean, head.x_scale, head.y_mean + 0.1, head.y_scale, head.layers).save(tmp_path / "gm.feature-head.npz")
    model = load_model(tmp_path / "gm.pt", "cpu")
    assert model.forward is None and "gm.feature-head.npz has changed" in model.forward_note


def test_a_feature_head_learns_and_is_deterministic_for_a_seed():
    from vaereg_core.model.feature_head import fit_feature_head

    rng = np.random.default_rng(6)
    x = rng.normal(size=(600, 2, 8)).astype(np.float32)
    y = np.stack([np.tanh(x[..., 0]) + 0.5 * x[..., 1], x[..., 2] * x[..., 3] * 0.3], axis=-1) + 3.0
    fit, held = slice(0, 500), slice(500, None)

    def error(head):
        return float(np.mean(np.abs(head.predict_log(x[held])[0] - y[held])))

    baseline = float(np.mean(np.abs(y[fit].mean((0, 1)) - y[held])))
    options = dict(val_score=error, hidden=32, epochs=25, learning_rate=3e-3, dropout=0.0, batch_size=64)
    head, log = fit_feature_head(x[fit], y[fit], ("C11", "C12"), ("abc",), **options)
    assert error(head) < 0.5 * baseline and log["best_val_score"] == pytest.approx(error(head))
    again, _ = fit_feature_head(x[fit], y[fit], ("C11", "C12"), ("abc",), **options)
    np.testing.assert_array_equal(again.predict_log(x[:5])[0], head.predict_log(x[:5])[0])


def test_a_feature_head_survives_a_round_trip_and_a_damaged_one_is_refused(tmp_path):
    import pickle

    from vaereg_core.model.feature_head import FeatureHead

    head = FeatureHead.untrained(("C11", "C22"), ("abc", "def"), features=6, hidden=4, seed=1)
    again = FeatureHead.load(head.save(tmp_path / "h.feature-head.npz"))
    features = np.random.default_rng(7).normal(size=(3, 2, 6))
    np.testing.assert_allclose(again.predict_log(features)[0], head.predict_log(features)[0], rtol=1e-6)
    assert again.sources == ("abc", "def") and again.predict_log(features)[1].shape == (3, 2, 2)
    broken = dict(np.load(tmp_path / "h.feature-head.npz"))
    broken["mean_w2"] = broken["mean_w2"][:, :1]
    np.savez(tmp_path / "bad.npz", **broken)
    with pytest.raises(ModelFileError, match="bad.npz.*inconsistent"):
        FeatureHead.load(tmp_path / "bad.npz")
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match="unreadable"):
        FeatureHead.load(tmp_path / "p.npz")


def _synthetic_features(rng, n):
    """Trunk-feature stand-ins (n, 1, 8) of one network and truths (n, 3) GPa that depend on them non-linearly."""
    x = rng.normal(size=(n, 1, 8)).astype(np.float16)
    f = x[:, 0].astype(np.float64)
    log_c = np.stack([np.tanh(f[:, 0]) + 0.5 * f[:, 1], 0.3 * f[:, 2] * f[:, 3], np.sin(f[:, 4])], axis=-1) * 0.3 + 3.0
    zeros = np.zeros((n, 1, 3))
    return SplitPredictions(zeros, zeros + 1.0, np.exp(log_c), features=x)


def test_extra_structures_train_the_feature_head_beside_the_validation_split():
    from vaereg_core.model.ensemble_fit import stacked, train_feature_head
    from vaereg_core.symmetry import CubeSymmetry

    rng = np.random.default_rng(7)
    names, identity = ("C11", "C22", "C33"), [CubeSymmetry()]
    val, test = _synthetic_features(rng, 80), _synthetic_features(rng, 400)
    extra = stacked([_synthetic_features(rng, 400), _synthetic_features(rng, 400)])
    assert extra.features.shape == (800, 1, 8) and extra.truth.shape == (800, 3) and extra.latent is None
    options = dict(hidden=32, epochs=25, learning_rate=3e-3, dropout=0.0, batch_size=64)

    def test_mape(head):
        guess = np.exp(head.predict_log(test.features)[0][:, 0])
        return float(np.mean(np.abs(guess / test.truth - 1)))

    alone, out_of_fold, log = train_feature_head([val], identity, names, ("a",), **options)
    helped, helped_out_of_fold, helped_log = train_feature_head([val], identity, names, ("a",), extra=[extra], **options)
    assert log["structures"] == {"val": 80, "extra": 0} and helped_log["structures"] == {"val": 80, "extra": 800}
    # Out-of-fold predictions stay one per validation structure; the extra ones only train.
    assert helped_out_of_fold.mean.shape == out_of_fold.mean.shape == (80, 1, 3)
    assert test_mape(helped) < 0.7 * test_mape(alone)


@pytest.mark.parametrize("change, message", [
    ({}, "has the seed of"),
    ({"seed": 99, "volume_fraction_range": (0.3, 0.7)}, "volume_fraction_range differ"),
])
def test_head_data_of_the_same_seed_or_another_recipe_is_refused_in_one_line(fitted_with_head, tmp_path, capsys, change, message):
    from dataclasses import replace

    from model_helpers import TINY_RECIPE

    folder, gm, _ = fitted_with_head
    extra = write_synthetic_dataset(tmp_path / "extra.h5", replace(TINY_RECIPE, **change), with_voxels=False)
    code = main(["fit-ensemble", "--model", str(gm), "--data", str(folder / "tiny.h5"), "--report", str(tmp_path / "r"),
                 "--symmetries", "cyclic", "--feature-head", "--head-data", str(extra), "--cache", str(folder / "cache"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != 0 and "extra.h5" in err and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_cli_head_data_needs_the_feature_head(fitted, capsys):
    folder, data, gm, _, _ = fitted
    code = main(["fit-ensemble", "--model", str(gm), "--data", str(data), "--report", str(folder / "r"), "--head-data", str(data)])
    assert code != 0 and "--head-data trains the feature head" in capsys.readouterr().err


def test_head_data_of_another_seed_joins_the_heads_training_and_the_manifest_says_so(tmp_path):
    from dataclasses import replace

    from model_helpers import TINY_RECIPE

    folder = tmp_path
    extra = write_synthetic_dataset(folder / "seed-99.h5", replace(TINY_RECIPE, seed=99), with_voxels=False)
    _, gm, _, metrics = fit_tiny_ensemble(folder, symmetries="cyclic", feature_head=True, head_data=[extra])
    count = TINY_RECIPE.n_structures
    training = metrics["feature_head_training"]
    assert training["head_data"] == {str(extra): count} and training["structures"]["extra"] == count
    assert read_manifest(manifest_path(gm))["fitted"]["feature_head_also_on"] == {str(extra): count}
    assert list((folder / "cache").glob("*-seed-99-*.npz"))  # cached like the splits: a rerun costs nothing
    assert load_model(gm, "cpu").forward is not None


def test_a_table_that_grew_keeps_the_predictions_of_the_rows_it_had(tmp_path):
    from dataclasses import replace

    from model_helpers import TINY_RECIPE, stand_in_properties
    from vaereg_core.dataset.table import DatasetTable
    from vaereg_core.model.ensemble_fit import cached_predictions
    from vaereg_core.symmetry import symmetries_for

    recipe = replace(TINY_RECIPE, seed=5, n_fields=3)

    def write_fields(fields):
        """The table of a build that has solved these fields' structures (rows sorted by sample, as a build keeps them)."""
        samples = np.concatenate([np.arange(f * 64, (f + 1) * 64) for f in fields])
        vf = np.array([recipe.volume_fraction(int(s) // 64, int(s) % 64) for s in samples])
        table = DatasetTable(recipe=recipe, solver={"stand_in": "test properties, not physics"})
        table.append(samples[::-1], stand_in_properties(vf, samples % 64)[::-1], vf[::-1], np.zeros((samples.size, 3), np.int32))
        table.write(tmp_path / "fresh.h5")
        return tmp_path / "fresh.h5"

    model = load_model(save_tiny_model(tmp_path / "m.pt", seed=0), "cpu", ensemble=False)
    which = symmetries_for(model.property_names, "cyclic")
    first = cached_predictions(model, write_fields([0, 2]), None, which, tmp_path / "cache", tag="cyclic", features=True)
    seen = []
    predict = model.predict_transformed
    model.predict_transformed = lambda voxels, *a, **k: seen.append(len(voxels)) or predict(voxels, *a, **k)
    grown = cached_predictions(model, write_fields([0, 1, 2]), None, which, tmp_path / "cache", tag="cyclic", features=True)
    # Field 1's structures came in between the others: only they are predicted, the rest are found again.
    assert sum(seen) == 64 and grown.mean.shape[0] == 192 and np.isfinite(grown.mean).all()
    moved = np.r_[0:64, 128:192]
    np.testing.assert_array_equal(grown.mean[moved], first.mean)
    np.testing.assert_array_equal(grown.features[moved], first.features)
    np.testing.assert_array_equal(grown.truth[moved], first.truth)


def test_a_feature_head_whose_weights_overflow_is_an_error_not_a_nan_file():
    from vaereg_core.model.feature_head import fit_feature_head

    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 2, 8)).astype(np.float32)
    y = np.stack([np.tanh(x[..., 0]), x[..., 2] * x[..., 3] * 0.3], axis=-1) + 3.0
    with pytest.raises(ValueError, match="diverged in its first epoch at learning rate 1"):
        fit_feature_head(x, y, ("C11", "C12"), ("abc",), hidden=32, epochs=3, learning_rate=1.0, dropout=0.0, batch_size=64)
