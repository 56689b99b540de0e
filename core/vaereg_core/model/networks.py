"""The VAE-Regression networks of the paper's appendix A as ``torch.nn`` modules.

Shapes for the ``paper`` configuration (51³ input, 16-d latent, P properties)::

    x (B, 1, 51, 51, 51) -> Trunk -> h (B, 2048)
    h -> Encoder   -> z_mean, z_log_var (B, 16)
    h -> Regressor -> c_mean, c_log_var (B, P)
    c -> Generator -> pi (B, K), mu (B, K, 16), log_var (B, K, 16)
    z -> Decoder   -> probabilities (B, 1, 51, 51, 51)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from vaereg_core.model.config import ModelConfig


class Trunk(nn.Module):
    """Shared convolutional trunk: [Conv3d 3³ 'same', LeakyReLU, MaxPool 2] blocks, flatten, dense ReLU."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, size = 1, config.grid
        for channels in config.trunk_channels:
            layers += [
                nn.Conv3d(in_channels, channels, kernel_size=3, padding=1),
                nn.LeakyReLU(config.negative_slope),
                nn.MaxPool3d(2),
            ]
            in_channels, size = channels, size // 2
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * size**3, config.trunk_dense), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        # Each block pools before its LeakyReLU: the activation is monotone, so
        # max-pooling commutes with it exactly (bit-identical outputs and
        # gradients) and it runs on an eighth of the voxels (the 51³ first block
        # was a third of a prediction's time).
        blocks = self.features
        for i in range(0, len(blocks), 3):
            conv, activation, pool = blocks[i : i + 3]
            x = activation(pool(conv(x)))
        return self.dense(x)


class GaussianHead(nn.Module):
    """Two dense branches from the trunk features: a mean and a log variance (Table 2)."""

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features))
        self.log_var = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(h), self.log_var(h)


class Decoder(nn.Module):
    """Dense stack to a (C, b, b, b) map, [nearest ×2, Conv3d, LeakyReLU] blocks, transposed conv, sigmoid (Table 3)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        slope = config.negative_slope
        first = config.decoder_channels[0]
        self.base = config.decoder_base
        widths = (config.latent_dim, *config.decoder_dense, first * self.base**3)
        dense: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            dense += [nn.Linear(a, b), nn.LeakyReLU(slope)]
        self.dense = nn.Sequential(*dense)
        blocks: list[nn.Module] = []
        in_channels = first
        for channels in config.decoder_channels:
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv3d(in_channels, channels, kernel_size=3, padding=1),
                nn.LeakyReLU(slope, inplace=True),  # on the conv's fresh output: no copy of a 48³ map
            ]
            in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        upsampled = self.base << len(config.decoder_channels)
        # A stride-1 transposed conv grows the grid by kernel - 1: 48 -> 51 with kernel 4.
        self.output = nn.ConvTranspose3d(in_channels, 1, kernel_size=config.grid - upsampled + 1)

    def forward(self, z: Tensor) -> Tensor:
        """Hard-phase probabilities, (B, 1, n, n, n)."""
        return torch.sigmoid(self.logits(z))

    def logits(self, z: Tensor) -> Tensor:
        """Pre-sigmoid output (for a numerically stable BCE)."""
        h = self.dense(z).unflatten(1, (-1, self.base, self.base, self.base))
        return self.output(self.blocks(h))


class Prior(NamedTuple):
    """A diagonal Gaussian-mixture prior per sample: weights (B, K), means and log variances (B, K, D)."""

    pi: Tensor
    mu: Tensor
    log_var: Tensor


class GaussianGenerator(nn.Module):
    """c -> mean and log variance of a Gaussian prior (Table 4), as a one-component mixture."""

    def __init__(self, n_properties: int, latent_dim: int) -> None:
        super().__init__()
        self.mean = nn.Linear(n_properties, latent_dim)
        self.log_var = nn.Linear(n_properties, latent_dim)

    def forward(self, c: Tensor) -> Prior:
        pi = torch.ones(c.shape[0], 1, dtype=c.dtype, device=c.device)
        return Prior(pi, self.mean(c)[:, None], self.log_var(c)[:, None])


class StandardGenerator(nn.Module):
    """The vanilla VAE's prior N(0, I), whatever c."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, c: Tensor) -> Prior:
        zeros = c.new_zeros(c.shape[0], 1, self.latent_dim)
        return Prior(c.new_ones(c.shape[0], 1), zeros, zeros)


class MixtureGenerator(nn.Module):
    """c -> Dense tanh -> softmax weights, means and log variances of K components (Table 5)."""

    def __init__(self, n_properties: int, latent_dim: int, components: int, hidden: int) -> None:
        super().__init__()
        self.components, self.latent_dim = components, latent_dim
        self.hidden = nn.Sequential(nn.Linear(n_properties, hidden), nn.Tanh())
        self.logits = nn.Linear(hidden, components)
        self.mean = nn.Linear(hidden, components * latent_dim)
        self.log_var = nn.Linear(hidden, components * latent_dim)

    def forward(self, c: Tensor) -> Prior:
        h = self.hidden(c)
        shape = (-1, self.components, self.latent_dim)
        return Prior(torch.softmax(self.logits(h), dim=-1), self.mean(h).view(shape), self.log_var(h).view(shape))


class Output(NamedTuple):
    """Everything one forward pass computes."""

    z_mean: Tensor
    z_log_var: Tensor
    c_mean: Tensor
    c_log_var: Tensor
    prior: Prior
    reconstruction_logits: Tensor


def glorot_init(module: nn.Module) -> None:
    """Keras' default initialisation: Glorot-uniform weights and zero biases for every conv and dense layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class VAERegression(nn.Module):
    """VAE-Regression with a Gaussian or Gaussian-mixture conditional prior (paper section 2, Fig. 1b).

    Properties are in the model's standardised units; :mod:`vaereg_core.model.inference`
    converts to and from GPa.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = Trunk(config)
        self.encoder = GaussianHead(config.trunk_dense, config.head_dense, config.latent_dim)
        self.regressor = GaussianHead(config.trunk_dense, config.head_dense, config.n_properties)
        self.decoder = Decoder(config)
        if config.prior == "gaussian":
            self.generator: nn.Module = GaussianGenerator(config.n_properties, config.latent_dim)
        elif config.prior == "standard":
            self.generator = StandardGenerator(config.latent_dim)
        else:
            self.generator = MixtureGenerator(config.n_properties, config.latent_dim, config.components, config.generator_hidden)
        if config.init == "glorot":
            glorot_init(self)

    def forward(self, x: Tensor) -> Output:
        """Encode, regress, build the prior from the predicted c, and decode a sample of z.

        In training mode z and the generator's input c are drawn with the
        reparameterisation trick (one Monte-Carlo sample, as in the paper); in
        evaluation mode the means are used. c reaches the generator without a
        gradient unless ``config.prior_gradient_to_regressor``.
        """
        h = self.trunk(x)
        z_mean, z_log_var = self.encoder(h)
        c_mean, c_log_var = self.regressor(h)
        if self.training:
            z = z_mean + torch.randn_like(z_mean) * torch.exp(0.5 * z_log_var)
            c = c_mean + torch.randn_like(c_mean) * torch.exp(0.5 * c_log_var)
        else:
            z, c = z_mean, c_mean
        if not self.config.prior_gradient_to_regressor:
            c = c.detach()
        return Output(z_mean, z_log_var, c_mean, c_log_var, self.generator(c), self.decoder.logits(z))


class RegressionOnly(nn.Module):
    """The Reg-only 3-D CNN baseline (Yang et al. 2018 row): the same trunk and regressor, nothing else."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = Trunk(config)
        self.regressor = GaussianHead(config.trunk_dense, config.head_dense, config.n_properties)
        if config.init == "glorot":
            glorot_init(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log variance of the standardised properties."""
        return self.regressor(self.trunk(x))
