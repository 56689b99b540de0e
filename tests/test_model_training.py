"""Training: the loss falls, resume equals uninterrupted, run folders, and the train/predict commands."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from model_helpers import block_sockets, write_synthetic_dataset
from vaereg_core.cli import main
from vaereg_core.model.config import named_config
from vaereg_core.model.inference import load_model
from vaereg_core.model.training import RunFolderError, train
from vaereg_core.voxel_io import write_voxels


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    block_sockets(monkeypatch)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "tiny.h5")


def tiny(**train):
    config = named_config("tiny")
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train))


def test_tiny_model_loss_falls(data, tmp_path):
    result = train(tiny(max_epochs=6, patience=6, max_train_samples=24), data, tmp_path / "run", device="cpu", progress=False)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(history) == result.epochs == 6
    assert history[-1]["train_total"] < 0.8 * history[0]["train_total"]
    for name in ("model.pt", "last.pt", "metrics.csv", "loss_curves.png", "config.json"):
        assert (tmp_path / "run" / name).is_file(), name
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "val_mape_C11" in header and "train_kl" in header


def test_resume_equals_uninterrupted(data, tmp_path):
    config = tiny(max_epochs=3, max_train_samples=16)
    train(config, data, tmp_path / "straight", device="cpu", progress=False)
    stopped = train(config, data, tmp_path / "resumed", device="cpu", progress=False, callback=lambda record: False)
    assert stopped.interrupted and stopped.epochs == 1
    with pytest.raises(RunFolderError, match="--resume"):
        train(config, data, tmp_path / "resumed", device="cpu", progress=False)
    train(config, data, tmp_path / "resumed", device="cpu", progress=False, resume=True)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["network"].items():
        assert torch.equal(value, b["network"][key]), key
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(a["history"]) == drop(b["history"])
    other = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=5))
    with pytest.raises(RunFolderError, match="same configuration"):
        train(other, data, tmp_path / "resumed", device="cpu", progress=False, resume=True)


def test_regression_only_kind_trains(data, tmp_path):
    train(tiny(max_epochs=1, max_train_samples=8), data, tmp_path / "reg", device="cpu", progress=False, kind="regression-only")
    assert not load_model(tmp_path / "reg", device="cpu").is_generative


def test_train_and_predict_commands(data, tmp_path, capsys):
    run = tmp_path / "cli-run"
    assert main(["train", "--config", "tiny", "--data", str(data), "--out", str(run), "--device", "cpu", "--epochs", "1", "--quiet"]) == 0
    assert "best epoch 1" in capsys.readouterr().out
    structure = (np.random.default_rng(0).random((19, 19, 19)) > 0.5).astype(np.uint8)
    files = [write_voxels(tmp_path / f"s{i}.npy", structure) for i in range(2)]
    assert main(["predict", *map(str, files), "--model", str(run / "model.pt"), "--device", "cpu"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.startswith("forward model: VAE-Reg regressor alone")  # no ensemble manifest beside the run's model
    assert len(lines) == 2 and lines[0].startswith(str(files[0])) and "C11" in lines[0] and "±" in lines[0] and lines[0].endswith("GPa")
    assert main(["predict", str(files[0]), "--model", str(run), "--json", "--device", "cpu"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["units"] == "GPa" and record["properties"]["C11"]["mean"] > 0
    write_voxels(tmp_path / "big.npy", np.zeros((21, 21, 21), np.uint8))
    assert main(["predict", str(tmp_path / "big.npy"), "--model", str(run), "--device", "cpu"]) == 2
    assert "19x19x19" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # refused while the options are parsed
        main(["predict", str(files[0]), "--model", str(tmp_path / "absent.pt")])
    assert stopped.value.code == 2 and "absent.pt: does not exist" in capsys.readouterr().err


def test_train_time_limit_stops_after_a_whole_epoch(data, tmp_path, capsys):
    run = tmp_path / "limited"
    assert main(["train", "--config", "tiny", "--data", str(data), "--out", str(run), "--device", "cpu",
                 "--epochs", "3", "--time-limit", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "best epoch 1 of 1" in out and "stopped by time limit" in out
    assert len(json.loads((run / "metrics.json").read_text())) == 1


def test_predict_without_a_default_model_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEREG_RESOURCES", str(tmp_path))
    path = write_voxels(tmp_path / "s.npy", np.zeros((19, 19, 19), np.uint8))
    assert main(["predict", str(path)]) == 2
    assert "no bundled default model" in capsys.readouterr().err


def test_init_from_starts_the_trunk_and_regressor_of_a_trained_model(data, tmp_path):
    config = tiny(max_epochs=1, max_train_samples=8)
    train(config, data, tmp_path / "reg", device="cpu", progress=False, kind="regression-only")
    source = load_model(tmp_path / "reg", device="cpu").network.state_dict()
    stopped = train(config, data, tmp_path / "warm", device="cpu", progress=False, init_from=tmp_path / "reg" / "model.pt",
                    callback=lambda record: False)
    assert stopped.epochs == 1
    # Before its first step, a network started from the model holds the model's trunk and regressor.
    from vaereg_core.model.training import Trainer, split_datasets

    trainer = Trainer(config, split_datasets(config, data), tmp_path / "fresh", device="cpu", init_from=tmp_path / "reg" / "model.pt", progress=False)
    state = trainer.network.state_dict()
    for key, value in source.items():
        assert torch.equal(state[key], value.float()), key
    assert load_model(tmp_path / "warm", device="cpu").file.metadata["init_from"].endswith("model.pt")
    record = json.loads((tmp_path / "warm" / "config.json").read_text())
    assert record["init_from"] == str((tmp_path / "reg" / "model.pt").resolve())


def test_init_from_refuses_a_model_of_other_properties(data, tmp_path):
    config = tiny(max_epochs=1, max_train_samples=8)
    train(config, data, tmp_path / "reg", device="cpu", progress=False, kind="regression-only")
    assert config.model.properties == ("C11",)
    other = dataclasses.replace(config, model=dataclasses.replace(config.model, properties=("C11", "C22")))
    with pytest.raises(RunFolderError, match="same properties"):
        train(other, data, tmp_path / "warm", device="cpu", progress=False, init_from=tmp_path / "reg" / "model.pt")


def test_validation_scores_the_regression_with_the_plain_nll(data, tmp_path):
    from vaereg_core.model.losses import beta_nll
    from vaereg_core.model.training import Trainer, split_datasets

    config = tiny(max_epochs=1, max_train_samples=8)
    trainer = Trainer(config, split_datasets(config, data), tmp_path / "run", device="cpu", kind="regression-only", progress=False)
    with torch.no_grad():
        trainer.network.regressor.log_var[-1].bias.fill_(-2.0)  # σ² far from 1: β-NLL and NLL differ
    terms, _ = trainer.validate()
    x = torch.stack([trainer.val_set[i][0] for i in range(len(trainer.val_set))])
    y = trainer.scaler.transform(torch.stack([trainer.val_set[i][1] for i in range(len(trainer.val_set))]))
    with torch.no_grad():
        mean, log_var = trainer.network(x)
    assert terms["regression"] == pytest.approx(float(beta_nll(mean, log_var, y, 0.0).mean()), rel=1e-4)
    assert terms["regression"] != pytest.approx(float(beta_nll(mean, log_var, y, 1.0).mean()), rel=1e-2)


def test_decoder_stage_changes_only_the_decoder_and_keeps_the_scaler(data, tmp_path):
    train(tiny(max_epochs=1, max_train_samples=8), data, tmp_path / "joint", device="cpu", progress=False)
    source = load_model(tmp_path / "joint", device="cpu")
    # A different training subset would fit a different scaler; the stage must keep the source's.
    stage = tiny(max_epochs=2, max_train_samples=12, stage="decoder")
    with pytest.raises(ValueError, match="init_from"):
        train(stage, data, tmp_path / "no-source", device="cpu", progress=False)
    stopped = train(stage, data, tmp_path / "decoder", device="cpu", progress=False, init_from=tmp_path / "joint" / "model.pt",
                    callback=lambda record: False)
    assert stopped.epochs == 1
    train(stage, data, tmp_path / "decoder", device="cpu", progress=False, init_from=tmp_path / "joint" / "model.pt", resume=True)
    tuned = load_model(tmp_path / "decoder", device="cpu")
    before, after = source.network.state_dict(), tuned.network.state_dict()
    changed = {k for k in before if not torch.equal(before[k].float(), after[k].float())}
    assert changed and all(k.startswith("decoder.") for k in changed)
    x = np.stack([np.eye(19, dtype=np.uint8)[None].repeat(19, 0)] * 2)
    np.testing.assert_allclose(tuned.predict(x)[0], source.predict(x)[0], rtol=1e-5)
    assert tuned.ranges == source.ranges


def test_generative_stage_relearns_the_latent_space_and_keeps_the_forward_model(data, tmp_path):
    train(tiny(max_epochs=1, max_train_samples=8), data, tmp_path / "joint", device="cpu", progress=False)
    source = load_model(tmp_path / "joint", device="cpu")
    train(tiny(max_epochs=1, max_train_samples=12, stage="generative"), data, tmp_path / "gen", device="cpu", progress=False,
          init_from=tmp_path / "joint" / "model.pt")
    tuned = load_model(tmp_path / "gen", device="cpu")
    before, after = source.network.state_dict(), tuned.network.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k].float(), after[k].float())}
    assert changed == {"encoder", "decoder", "generator"}
    x = np.stack([np.eye(19, dtype=np.uint8)[None].repeat(19, 0)] * 2)
    np.testing.assert_allclose(tuned.predict(x)[0], source.predict(x)[0], rtol=1e-5)
    assert not np.allclose(tuned.encode(x)[0], source.encode(x)[0])


def test_decoder_stage_refuses_a_regression_only_model(data, tmp_path):
    train(tiny(max_epochs=1, max_train_samples=8), data, tmp_path / "reg", device="cpu", progress=False, kind="regression-only")
    with pytest.raises(RunFolderError, match="VAE-Regression"):
        train(tiny(max_epochs=1, stage="decoder"), data, tmp_path / "d", device="cpu", progress=False, init_from=tmp_path / "reg" / "model.pt")


def test_epoch_samples_draw_a_fresh_subset_each_epoch(data, tmp_path):
    from vaereg_core.model.training import Trainer, split_datasets

    config = tiny(epoch_samples=6, max_val_samples=5)
    trainer = Trainer(config, split_datasets(config, data), tmp_path / "run", device="cpu", progress=False)
    assert len(trainer.val_set) == 5
    drawn = []
    for epoch in (0, 1):
        trainer.epoch = epoch
        drawn.append(list(trainer._loader(trainer.train_set, shuffle=True).sampler))
    assert all(len(d) == 6 == len(set(d)) for d in drawn) and drawn[0] != drawn[1]
    with pytest.raises(ValueError, match="stage"):
        tiny(stage="encoder")


def test_symmetry_augmentation_moves_structures_and_constants_together(data):
    from vaereg_core.model.training import InMemory, SymmetryAugmented, split_datasets

    config = tiny(symmetry_augmentation=True)
    base = InMemory(split_datasets(config, data)["train"])
    augmented = SymmetryAugmented(base, config.model.properties, seed=3)
    names = config.model.properties
    moved = 0
    for i in range(12):
        (x, y), (x0, y0) = augmented[i], base[i]
        s = augmented.symmetries[int(np.random.default_rng((3, 0, i)).integers(len(augmented.symmetries)))]
        np.testing.assert_array_equal(x.numpy(), s.apply(x0.numpy()))
        np.testing.assert_array_equal(y.numpy(), y0.numpy()[list(s.constant_sources(names))])
        moved += not np.array_equal(x.numpy(), x0.numpy())
    assert moved >= 10
    again = SymmetryAugmented(base, names, seed=3)
    assert torch.equal(again[5][0], augmented[5][0])  # a function of (seed, epoch, index): resumable
    again.epoch = 1
    assert any(not torch.equal(again[i][0], augmented[i][0]) for i in range(6))


def test_training_with_symmetry_augmentation_runs(data, tmp_path):
    result = train(tiny(max_epochs=2, max_train_samples=16, symmetry_augmentation=True), data, tmp_path / "run", device="cpu", progress=False)
    assert result.epochs == 2
    assert load_model(tmp_path / "run", "cpu").file.config.train.symmetry_augmentation
