"""Model files (format, version, checksum, clear errors) and the inference API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_helpers import block_sockets
from vaereg_core.errors import ModelFileError
from vaereg_core.model.checkpoint import ModelFile, load_model_file, save_model
from vaereg_core.model.config import ALL_PROPERTIES, RunConfig, named_config
from vaereg_core.model.inference import load_model
from vaereg_core.model.networks import RegressionOnly, VAERegression
from vaereg_core.model.scaling import PropertyScaler


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    block_sockets(monkeypatch)


def tiny_model_file(properties=("C11",), kind=VAERegression) -> ModelFile:
    import dataclasses

    base = named_config("tiny")
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, properties=properties, components=3))
    torch.manual_seed(0)
    values = np.exp(np.random.default_rng(0).uniform(np.log(5), np.log(110), (50, len(properties))))
    scaler = PropertyScaler.fit(values)
    ranges = {n: (5.0, 110.0) for n in properties}
    return ModelFile(kind(config.model), config, scaler, ranges, {"note": "test"})


@pytest.fixture
def model_path(tmp_path):
    return save_model(tmp_path / "model.pt", tiny_model_file(ALL_PROPERTIES))


def structures(n: int = 3, size: int = 19) -> np.ndarray:
    return (np.random.default_rng(1).random((n, size, size, size)) > 0.5).astype(np.uint8)


def test_round_trip_keeps_weights_and_description(model_path, tmp_path):
    loaded = load_model_file(model_path)
    assert isinstance(loaded.config, RunConfig) and loaded.property_names == ALL_PROPERTIES
    assert loaded.ranges["C11"] == (5.0, 110.0) and loaded.metadata["note"] == "test"
    original = tiny_model_file(ALL_PROPERTIES)
    for (k, a), b in zip(original.network.state_dict().items(), loaded.network.state_dict().values()):
        assert torch.equal(a, b), k
    assert load_model_file(tmp_path).property_names == ALL_PROPERTIES  # a run folder means its model.pt


def test_inference_api(model_path):
    model = load_model(model_path, device="cpu")
    assert model.property_names == ALL_PROPERTIES and model.units == "GPa" and model.is_generative
    x = structures()
    mean, std = model.predict(x)
    assert mean.shape == std.shape == (3, 6) and np.all(mean > 0) and np.all(std > 0)
    one_mean, one_std = model.predict(x[0])
    assert one_mean.shape == (6,) and np.allclose(one_mean, mean[0], rtol=1e-5)
    z, z_std = model.encode(x)
    assert z.shape == z_std.shape == (3, 4)
    probabilities = model.decode(z)
    assert probabilities.shape == (3, 19, 19, 19) and probabilities.dtype == np.float32
    binary = model.decode(z[0], binary=True)
    assert binary.shape == (19, 19, 19) and binary.dtype == np.uint8 and set(np.unique(binary)) <= {0, 1}
    pi, mu, sigma = model.prior_components({n: 30.0 for n in ALL_PROPERTIES})
    assert pi.shape == (3,) and mu.shape == sigma.shape == (3, 4)
    assert np.isclose(pi.sum(), 1) and np.all(np.diff(pi) <= 0) and np.all(sigma > 0)
    same = model.prior_components([30.0] * 6)
    assert np.allclose(same[1], mu)


def test_inference_input_errors(model_path):
    model = load_model(model_path, device="cpu")
    with pytest.raises(ValueError, match=r"\(19, 19, 19\)"):
        model.predict(np.zeros((20, 20, 20), np.uint8))
    with pytest.raises(ValueError, match="missing C22"):
        model.prior_components({"C11": 30.0})
    with pytest.raises(ValueError, match="> 0"):
        model.prior_components([0.0] * 6)
    with pytest.raises(ValueError, match="latent"):
        model.decode(np.zeros(5))


def test_regression_only_model_predicts_but_does_not_generate(tmp_path):
    path = save_model(tmp_path / "reg.pt", tiny_model_file(kind=RegressionOnly))
    model = load_model(path, device="cpu")
    assert not model.is_generative and model.predict(structures(1)[0])[0].shape == (1,)
    with pytest.raises(ValueError, match="regression-only"):
        model.encode(structures(1))


def test_missing_truncated_foreign_and_corrupted_files(model_path, tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model_file(tmp_path / "absent.pt")
    data = model_path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model_file(tmp_path / "truncated.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelFileError, match="not a VAEReg Studio model"):
        load_model_file(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ModelFileError, match="foreign"):
        load_model_file(tmp_path / "foreign.pt")
    payload = torch.load(model_path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "newer.pt")
    with pytest.raises(ModelFileError, match="newer"):
        load_model_file(tmp_path / "newer.pt")
    payload = torch.load(model_path, weights_only=True)
    payload["state_dict"]["trunk.dense.1.bias"][0] += 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(ModelFileError, match="checksum"):
        load_model_file(tmp_path / "tampered.pt")


def test_scaler_round_trip_in_gpa():
    values = np.array([[5.0, 1.0], [50.0, 10.0], [110.0, 30.0]])
    scaler = PropertyScaler.fit(values)
    y = scaler.transform(torch.tensor(values))
    assert torch.allclose(y.mean(0), torch.zeros(2, dtype=y.dtype), atol=1e-12)
    point, std = scaler.inverse(y, torch.full_like(y, -20.0))
    assert torch.allclose(point, torch.tensor(values)) and torch.all(std / point < 1e-4)
