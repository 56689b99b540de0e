"""Evaluation report and baselines on a tiny synthetic dataset (stand-in properties)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from model_helpers import block_sockets, write_synthetic_dataset
from vaereg_core.cli import main
from vaereg_core.microstructure import Recipe
from vaereg_core.model.config import named_config
from vaereg_core.experiments.forward_evaluation import voigt_reuss_hill
from vaereg_core.model.metrics import regression_metrics
from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT
from vaereg_core.model.training import train


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    block_sockets(monkeypatch)


def test_metrics():
    true = np.array([10.0, 20.0, 30.0])
    m = regression_metrics(true, true)
    assert m == {"MAPE": 0.0, "MASE": 0.0, "R2": 1.0}
    m = regression_metrics(true, true * 1.1)
    assert np.isclose(m["MAPE"], 10.0) and np.isclose(m["MASE"], 10.0) and m["R2"] < 1


def test_voigt_reuss_hill():
    names = ("C11", "C22", "C33", "C12", "C13", "C23")
    b = voigt_reuss_hill(np.array([0.0, 0.3, 1.0]), names)
    hard, soft = DEFAULT_HARD.stiffness(), DEFAULT_SOFT.stiffness()
    assert np.allclose(b["Voigt"][2, 0], hard[0, 0]) and np.allclose(b["Reuss"][0, 0], soft[0, 0])
    assert np.allclose(b["Voigt"][:, 3], b["Voigt"][:, 4])
    assert np.all(b["Voigt"][1, :3] > b["Hill"][1, :3]) and np.all(b["Hill"][1, :3] > b["Reuss"][1, :3])
    assert np.isclose(hard[0, 0], 120 * 0.7 / (1.3 * 0.4))  # E(1-ν)/((1+ν)(1-2ν))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # GPR on a one-epoch VAE's latents
def test_evaluate_command_writes_every_row(tmp_path, capsys):
    data = write_synthetic_dataset(tmp_path / "tiny.h5")
    base = named_config("tiny")
    quick = dataclasses.replace(base, train=dataclasses.replace(base.train, max_epochs=1))
    train(quick, data, tmp_path / "gm", device="cpu", progress=False)
    train(quick, data, tmp_path / "reg", device="cpu", progress=False, kind="regression-only")
    vae = dataclasses.replace(quick, model=dataclasses.replace(quick.model, prior="standard"), loss=dataclasses.replace(quick.loss, regression_weight=0.0))
    train(vae, data, tmp_path / "vae", device="cpu", progress=False)
    out = tmp_path / "report"
    assert main(["evaluate", str(tmp_path / "gm"), str(tmp_path / "reg"), str(tmp_path / "vae"), "--out", str(out), "--device", "cpu"]) == 0
    text = (out / "report.md").read_text()
    for row in ("VAE-Reg (GM K=2, two-point)", "Reg-only CNN", "VAE latent + GPR", "VAE latent + SVR", "VAE latent + linear",
                "2pt stats + PCA + poly. reg.", "Hill (volume fraction)", "Voigt", "Reuss", "Table 1", "paper range"):
        assert row in text, row
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(metrics["Reg-only CNN"]["C11"]["all"]) == {"MAPE", "MASE", "R2"}
    assert "VAE" not in metrics  # the vanilla VAE's untrained regressor is not a row
    assert (out / "parity_C11.png").stat().st_size > 1000
    reconstruction = json.loads((out / "metrics.json").read_text())["reconstruction"]
    assert set(reconstruction) == {"VAE-Reg (GM K=2, two-point)", "VAE"}  # the generative runs, not the Reg-only CNN
    for label, quality in reconstruction.items():
        assert 0 < quality["count"] <= 32 and quality["physics_count"] == min(8, quality["count"])
        assert 0 <= quality["volume_fraction_error"] <= 1 and np.isfinite(quality["stiffness_error"])
        assert f"| {label} | {quality['count']} |" in text
    assert "## Reconstructions: the decoder" in text and "| KL to the prior (nats) |" in text
    assert (out / "reconstruction_vae-reg-gm-k-2-two-point.png").stat().st_size > 1000
    assert main(["evaluate", str(tmp_path / "gm"), str(tmp_path / "reg")]) == 2
    assert "--out is required" in capsys.readouterr().err


def test_evaluate_on_another_subset_uses_its_test_split(tmp_path):
    from vaereg_core.dataset import MicrostructureDataset

    data = write_synthetic_dataset(tmp_path / "more.h5", Recipe(seed=11, n_fields=8, size=19))
    base = named_config("tiny")
    quick = dataclasses.replace(base, train=dataclasses.replace(base.train, max_epochs=1))
    train(quick, data, tmp_path / "reg", device="cpu", progress=False, kind="regression-only")
    out = tmp_path / "report"
    assert main(["evaluate", str(tmp_path / "reg"), "--subset", "two-morphology", "--no-baselines", "--out", str(out), "--device", "cpu"]) == 0
    size = len(MicrostructureDataset(data, "test", ("C11",), subset="two-morphology"))
    assert 0 < size < len(MicrostructureDataset(data, "test", ("C11",)))
    assert f"test split of the two-morphology subset, whatever each run was trained on ({size} structures)" in (out / "report.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["subset"] == "two-morphology" and metrics["test_structures"] == [size]
