"""Model networks and configurations: the paper's shapes (appendix A) and the configuration schema."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from model_helpers import block_sockets
from vaereg_core.model.config import ALL_PROPERTIES, ModelConfig, RunConfig, load_config, named_config
from vaereg_core.model.networks import RegressionOnly, VAERegression


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    block_sockets(monkeypatch)


@pytest.mark.parametrize("properties", [("C11",), ALL_PROPERTIES])
@pytest.mark.parametrize("prior, k", [("gaussian", 1), ("mixture", 2), ("mixture", 3)])
def test_paper_shapes(properties, prior, k):
    config = ModelConfig(properties=properties, prior=prior, components=k)
    net = VAERegression(config)
    x = (torch.rand(2, 1, 51, 51, 51) > 0.5).float()
    with torch.no_grad():
        features = net.trunk.features(x)
        out = net(x)
    p = len(properties)
    assert features.shape == (2, 256, 1, 1, 1)  # 51 -> 25 -> 12 -> 6 -> 3 -> 1
    assert net.trunk(x).shape == (2, 2048)
    assert out.z_mean.shape == out.z_log_var.shape == (2, 16)
    assert out.c_mean.shape == out.c_log_var.shape == (2, p)
    assert out.prior.pi.shape == (2, k)
    assert out.prior.mu.shape == out.prior.log_var.shape == (2, k, 16)
    assert torch.allclose(out.prior.pi.sum(-1), torch.ones(2))
    assert out.reconstruction_logits.shape == (2, 1, 51, 51, 51)


def test_trunk_pools_before_its_activation_with_the_layer_order_s_exact_outputs_and_gradients():
    torch.manual_seed(0)
    net = VAERegression(ModelConfig(properties=ALL_PROPERTIES))
    x = torch.randn(2, 1, 51, 51, 51)  # negative and positive pre-activations, ties impossible
    layered = net.trunk.dense(net.trunk.features(x))  # the Sequential's order: conv, LeakyReLU, pool
    reordered = net.trunk(x)
    assert torch.equal(reordered, layered)
    grad_layered = torch.autograd.grad(layered.sum(), net.trunk.features[0].weight)[0]
    grad_reordered = torch.autograd.grad(reordered.sum(), net.trunk.features[0].weight)[0]
    assert torch.allclose(grad_reordered, grad_layered, rtol=1e-5, atol=1e-6)


def test_decoder_layers_follow_table_3():
    net = VAERegression(ModelConfig())
    z = torch.randn(3, 16)
    h = net.decoder.dense(z)
    assert h.shape == (3, 13824)  # 64 * 6³
    blocks = net.decoder.blocks(h.view(3, 64, 6, 6, 6))
    assert blocks.shape == (3, 16, 48, 48, 48)
    with torch.no_grad():
        probabilities = net.decoder(z)
    assert probabilities.shape == (3, 1, 51, 51, 51)
    assert float(probabilities.min()) >= 0 and float(probabilities.max()) <= 1


def test_mixture_generator_has_a_tanh_layer_of_8():
    net = VAERegression(ModelConfig(prior="mixture", components=2))
    assert net.generator.hidden[0].out_features == 8


def test_regression_only_shares_the_trunk_and_regressor_layout():
    config = ModelConfig(properties=ALL_PROPERTIES)
    reg = RegressionOnly(config)
    mean, log_var = reg(torch.zeros(1, 1, 51, 51, 51))
    assert mean.shape == log_var.shape == (1, 6)
    vae_keys = {k for k in VAERegression(config).state_dict() if k.startswith(("trunk.", "regressor."))}
    assert set(reg.state_dict()) == vae_keys


def test_train_mode_samples_and_eval_mode_is_deterministic():
    net = VAERegression(named_config("tiny").model)
    x = (torch.rand(2, 1, 19, 19, 19) > 0.5).float()
    net.eval()
    assert torch.equal(net(x).reconstruction_logits, net(x).reconstruction_logits)
    net.train()
    assert not torch.equal(net(x).reconstruction_logits, net(x).reconstruction_logits)


def test_named_configs():
    paper = named_config("paper")
    assert paper.model.grid == 51 and paper.model.latent_dim == 16
    assert paper.model.trunk_channels == (16, 32, 64, 128, 256)
    assert paper.loss.reconstruction == "style-vgg19"
    assert (paper.loss.regression_weight, paper.loss.regression_scale, paper.loss.kl_weight, paper.loss.kl_scale) == (10, 2, 1, 20)
    assert (paper.train.learning_rate, paper.train.batch_size, paper.train.patience) == (5e-4, 8, 10)
    assert named_config("paper-6").model.n_properties == 6
    assert named_config("paper-gaussian").model.n_components == 1
    with pytest.raises(ValueError, match="unknown configuration"):
        named_config("nope")


def test_config_json_round_trip_and_base(tmp_path):
    config = named_config("paper-cpu")
    assert RunConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"base": "tiny", "model": {"components": 3}, "train": {"max_epochs": 2}}))
    loaded = load_config(path)
    assert loaded.model.components == 3 and loaded.train.max_epochs == 2
    assert loaded.model.grid == named_config("tiny").model.grid
    path.write_text(json.dumps({"base": "tiny", "model": {"colour": 3}}))
    with pytest.raises(ValueError, match="colour"):
        load_config(path)
    with pytest.raises(ValueError, match="neither"):
        load_config(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"properties": ("C44",)}, "properties"),
        ({"prior": "flat"}, "prior"),
        ({"components": 0}, "components"),
        ({"grid": 8}, "too small"),
        ({"init": "he"}, "init"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("kind", [VAERegression, RegressionOnly])
def test_glorot_initialisation_is_keras_default(kind):
    net = kind(named_config("tiny").model)
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d, torch.nn.Linear))]
    assert layers
    for layer in layers:
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert torch.count_nonzero(layer.bias) == 0
        assert float(layer.weight.detach().abs().max()) <= bound
        # Uniform on [-bound, bound]: the largest of many draws comes close to the bound.
        assert layer.weight.numel() < 50 or float(layer.weight.detach().abs().max()) > 0.8 * bound


def test_torch_initialisation_is_kept_on_request():
    torch.manual_seed(0)
    net = VAERegression(dataclasses.replace(named_config("tiny").model, init="torch"))
    assert torch.count_nonzero(net.trunk.dense[1].bias) > 0


@pytest.mark.parametrize("through", [False, True])
def test_prior_gradient_reaches_the_regressor_only_when_configured(through):
    config = dataclasses.replace(named_config("tiny").model, prior_gradient_to_regressor=through)
    net = VAERegression(config).train()
    x = (torch.rand(2, 1, 19, 19, 19) > 0.5).float()
    out = net(x)
    out.prior.mu.sum().backward()
    grad = net.regressor.mean[-1].weight.grad
    assert (grad is not None and bool(torch.any(grad != 0))) == through
    assert net.generator.mean.weight.grad is not None  # the generator learns either way
