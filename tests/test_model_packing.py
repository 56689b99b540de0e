"""Shipping a trained model (issue 9): float16 weights, checksum, training log, evaluation of the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("vaereg_core.model.inference")
from inverse_helpers import save_tiny_model  # noqa: E402
from model_helpers import write_synthetic_dataset  # noqa: E402

from vaereg_core.cli import main  # noqa: E402
from vaereg_core.errors import ModelFileError  # noqa: E402
from vaereg_core.model.checkpoint import load_model_file  # noqa: E402
from vaereg_core.model.packing import check_structures, pack_run, training_summary  # noqa: E402

METRICS = "epoch,seconds,train_total,val_total,val_mape_C11\n1,3600,5.0,4.0,20.0\n2,1800,3.0,2.5,8.5\n3,1800,2.0,2.7,9.0\n"


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_tiny_model(run / "model.pt", components=2)
    (run / "metrics.csv").write_text(METRICS)
    (run / "config.json").write_text("{}")
    return run


def test_training_summary_names_the_best_epoch(run_dir):
    assert training_summary(run_dir / "metrics.csv") == {"epochs_run": 3, "best_epoch": 2, "training_hours": 2.0, "val_mape_C11": 8.5}


def test_pack_halves_the_file_and_keeps_predictions(run_dir, tmp_path):
    out = tmp_path / "models" / "default.pt"
    out.parent.mkdir()
    path, figures = pack_run(run_dir, out, data="resources/dataset/elastic.h5", notes={"hardware": "2 CPU cores"})
    full, packed = load_model_file(run_dir / "model.pt"), load_model_file(path)
    assert path.stat().st_size < 0.65 * (run_dir / "model.pt").stat().st_size
    raw = torch.load(path, weights_only=True)
    assert {t.dtype for t in raw["state_dict"].values() if t.is_floating_point()} == {torch.float16}
    assert next(packed.network.parameters()).dtype == torch.float32  # loaded back into the float32 network
    assert packed.metadata["data"] == "resources/dataset/elastic.h5" and packed.metadata["hardware"] == "2 CPU cores"
    assert packed.metadata["training"]["best_epoch"] == 2 and packed.metadata["weights"] == "float16"
    assert packed.ranges == full.ranges and packed.config == full.config
    assert 0 < figures["max_relative_change"] < 1e-2
    assert sorted(p.name for p in figures["log"].iterdir()) == ["config.json", "metrics.csv"]
    with pytest.raises(Exception, match="exists"):
        pack_run(run_dir, out)


def test_packed_weights_are_checked_at_load(run_dir, tmp_path):
    path, _ = pack_run(run_dir, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    name = next(k for k, v in raw["state_dict"].items() if v.is_floating_point())
    raw["state_dict"][name] = raw["state_dict"][name] + 1
    torch.save(raw, path)
    with pytest.raises(ModelFileError, match="checksum"):
        load_model_file(path)


def test_check_structures_are_binary_at_the_grid():
    s = check_structures(19)
    assert s.shape == (4, 19, 19, 19) and set(np.unique(s)) == {0, 1}


def test_cli_pack_then_evaluate_the_model_file(run_dir, tmp_path, capsys):
    data = write_synthetic_dataset(tmp_path / "data.h5", with_voxels=False)
    out = tmp_path / "shipped.pt"
    assert main(["pack", str(run_dir), "--out", str(out), "--data", str(data), "--note", "hardware=test"]) == 0
    assert "MB" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--out", str(tmp_path / "report"), "--no-baselines", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["data"] == str(data) and metrics["runs"] == [str(out)]
    assert main(["evaluate", str(out), "--device", "cpu"]) == 2  # a model file needs --out
    assert "--out is required" in capsys.readouterr().err
