"""Choosing K: refitting the conditional prior on a trained encoder's posteriors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from inverse_helpers import save_tiny_model, tiny_model, tiny_model_file  # noqa: E402
from model_helpers import write_synthetic_dataset  # noqa: E402

from vaereg_core.cli import main  # noqa: E402
from vaereg_core.inverse.component_count import (  # noqa: E402
    best_fits,
    component_study,
    fit_generator,
    used_components,
    with_generator,
)
from vaereg_core.model.posteriors import Posteriors, mean_kl  # noqa: E402
from vaereg_core.model.priors import gaussian_kl  # noqa: E402


def two_morphologies(n: int, seed: int) -> Posteriors:
    """Posteriors where every c has two clusters of z: the situation a two-component prior is for."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, size=(n, 1))
    branch = rng.integers(0, 2, size=(n, 1))
    mean = np.concatenate([c + 3 * (2 * branch - 1), -c, rng.normal(0, 0.1, (n, 1))], axis=1)
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return Posteriors(as_tensor(mean), torch.full((n, 3), -3.0), as_tensor(c))


def test_two_components_explain_two_morphologies_and_more_add_nothing_used():
    train, val = two_morphologies(200, 0), two_morphologies(100, 1)
    fits = best_fits(component_study(train, val, hidden=8, components=(1, 2, 3), seeds=2, steps=1500))
    assert fits[2].val_kl < fits[1].val_kl - 1.0  # one Gaussian must cover both clusters
    assert fits[1].used == 1 and fits[2].used == 2
    assert fits[3].val_kl < fits[1].val_kl


def test_one_component_fit_is_scored_with_the_closed_form_kl():
    train = two_morphologies(50, 0)
    g = fit_generator(train, 1, hidden=4, steps=10)
    prior = g(train.c)
    closed = gaussian_kl(train.mean, train.log_var, prior.mu[:, 0], prior.log_var[:, 0]).mean().detach()
    assert mean_kl(g, train) == pytest.approx(float(closed), rel=1e-6)
    assert used_components(g, train) == 1


def test_fits_are_deterministic_for_a_seed():
    train = two_morphologies(50, 0)
    a, b, c = (fit_generator(train, 2, hidden=4, steps=20, seed=s) for s in (0, 0, 1))
    assert mean_kl(a, train) == mean_kl(b, train) != mean_kl(c, train)


def test_a_twin_with_another_generator_leaves_the_model_alone():
    model = tiny_model(components=2, properties=("C11",))
    original = model.network.generator
    train = Posteriors(torch.randn(20, model.latent_dim), torch.zeros(20, model.latent_dim), torch.randn(20, 1))
    twin = with_generator(model, fit_generator(train, 4, hidden=8, steps=5))
    assert model.network.generator is original and len(model.prior_components({"C11": 30})[0]) == 2
    assert len(twin.prior_components({"C11": 30})[0]) == 4
    assert twin.network.decoder is model.network.decoder


def test_cli_evaluate_components_end_to_end(tmp_path, capsys):
    data = write_synthetic_dataset(tmp_path / "data.h5")
    gm = save_tiny_model(tmp_path / "gm.pt", components=2, properties=("C11",))
    out = tmp_path / "k"
    args = ["evaluate-components", "--model", str(gm), "--data", str(data), "--out", str(out),
            "--components", "1", "3", "--seeds", "2", "--steps", "30", "--targets", "2", "--max-structures", "20", "--device", "cpu"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(f["components"], f["seed"]) for f in results["fits"]] == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert set(results["physics"]) == {"1", "3"} and "20 training, 20 validation" in results["setup"]["data"]
    assert len(results["candidates"]) == 2 * (1 + 3)  # two targets x all components of each K
    assert all(np.isfinite(c["error_percent"]) for c in results["candidates"])
    text = (out / "report.md").read_text()
    assert "| 3 |" in text and "trained with K = 2" in text
    assert (out / "components.png").stat().st_size > 10_000
    assert str(out / "report.md") in capsys.readouterr().out


def test_cli_evaluate_components_refuses_a_regression_only_model(tmp_path, capsys):
    from vaereg_core.model.checkpoint import save_model
    from vaereg_core.model.networks import RegressionOnly

    data = write_synthetic_dataset(tmp_path / "data.h5", with_voxels=False)
    file = tiny_model_file(properties=("C11",))
    file.network = RegressionOnly(file.config.model)
    reg = save_model(tmp_path / "reg.pt", file)
    assert main(["evaluate-components", "--model", str(reg), "--data", str(data), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "no prior to refit" in capsys.readouterr().err


def test_cli_refit_prior_writes_a_model_whose_prior_fits_its_encoder_better(tmp_path, capsys):
    from vaereg_core.model.splits import load_split
    from vaereg_core.model.inference import load_model
    from vaereg_core.model.posteriors import encode_posteriors

    data = write_synthetic_dataset(tmp_path / "data.h5")
    gm = save_tiny_model(tmp_path / "gm.pt", components=2, properties=("C11",))
    out = tmp_path / "refit.pt"
    args = ["refit-prior", "--model", str(gm), "--data", str(data), "--components", "3", "--out", str(out),
            "--seeds", "1", "--steps", "200", "--device", "cpu"]
    assert main(args) == 0 and "K = 3" in capsys.readouterr().out
    old, new = load_model(gm, "cpu"), load_model(out, "cpu")
    assert new.file.config.model.components == 3 and len(new.prior_components({"C11": 30})[0]) == 3
    assert new.file.metadata["prior_refit"]["components"] == 3
    val = load_split(data, "val", old.file.config)
    posteriors = encode_posteriors(new, val.voxels, val.properties[:, :1])
    assert mean_kl(new.network.generator, posteriors) < mean_kl(old.network.generator, posteriors)
    # Only the prior changed: same encoder, regressor and decoder (up to float16 storage).
    x = val.voxels[:2]
    np.testing.assert_allclose(new.predict(x)[0], old.predict(x)[0], rtol=2e-3)
    np.testing.assert_allclose(new.encode(x)[0], old.encode(x)[0], atol=2e-3)
    assert main(args) == 2 and "exists" in capsys.readouterr().err
