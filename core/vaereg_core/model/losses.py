"""The terms of the VAE-Regression loss (paper eq. 4) and the pluggable reconstruction losses.

Every function returns one value per sample, shape (B,); the training loop
weights, scales and averages them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaereg_core.model.config import DEFAULT_RECONSTRUCTION_SCALE, LossConfig
from vaereg_core.model.networks import Output
from vaereg_core.model.priors import prior_kl


def beta_nll(mean: Tensor, log_var: Tensor, target: Tensor, beta: float) -> Tensor:
    """β-NLL (Seitzer et al., ICLR 2022): the Gaussian NLL per sample weighted by the detached σ^(2β).

    The NLL is without its constant and summed over properties.

    β = 0 is the plain NLL, whose 1/σ² weighting of the mean's gradient makes
    training unstable: a sample the model is unsure of stops teaching the mean.
    β = 1 gives the mean the gradient of the squared error while σ² still
    learns the spread.
    """
    nll = 0.5 * (log_var + (target - mean) ** 2 * torch.exp(-log_var))
    if beta:
        nll = nll * torch.exp(beta * log_var.detach())
    return nll.sum(dim=-1)


def volume_fraction_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """(φ̂ - φ)² per sample, φ the mean of each (B, 1, n, n, n) volume.

    Examples
    --------
    >>> full, half = torch.ones(1, 1, 4, 4, 4), torch.full((1, 1, 4, 4, 4), 0.5)
    >>> volume_fraction_loss(half, full).tolist()
    [0.25]
    """
    spatial = tuple(range(1, reconstruction.ndim))
    return (reconstruction.mean(dim=spatial) - target.mean(dim=spatial)) ** 2


def two_point_correlation(x: Tensor) -> Tensor:
    """Periodic two-point autocorrelation S2(r) of (B, 1, n, n, n) hard-phase probabilities, by FFT.

    ``S2(0)`` is E[x²] (the volume fraction for a binary structure). Differentiable.
    """
    spatial = (-3, -2, -1)
    # FFTs need float32 or float64 (not the half types of mixed precision).
    f = torch.fft.rfftn(x if x.dtype == torch.float64 else x.float(), dim=spatial)
    return torch.fft.irfftn(f.real**2 + f.imag**2, s=x.shape[-3:], dim=spatial) / x[0].numel()


def lag_window(s2: Tensor, window: int | None) -> Tensor:
    """The lags |r_i| <= window of a periodic S2 (all lags if None), flattened per sample."""
    n = s2.shape[-1]
    if window is None or 2 * window + 1 >= n:
        return s2.flatten(1)
    idx = torch.cat([torch.arange(0, window + 1), torch.arange(n - window, n)]).to(s2.device)
    return s2[..., idx, :, :][..., idx, :][..., idx].flatten(1)


def two_point_loss(reconstruction: Tensor, target: Tensor, window: int | None = None) -> Tensor:
    """Two-point statistics mismatch per sample: autocorrelation, volume fraction and binarity.

    ``1e3 · mean_r (S2 - S2*)² + 1e2 · ((phi - phi*)² + (S2(0) - S2*(0))²)``: the
    autocorrelations are compared over lags up to ``window`` voxels along each
    axis (the short-range part that describes shapes; at long range S2 tends to
    phi² for every structure). S2(0) = E[x²] equals the volume fraction E[x] only
    for a binary field, so its term penalises grey reconstructions, which the
    lag average alone would dilute. The factors bring a poor reconstruction to
    O(100) and a good one to O(1).

    A limit, measured on the shipped models: the gradient of S2 with respect to
    the field is a convolution with the field itself, so it only reaches the
    Fourier modes the reconstruction already has. A decoder trained with this
    loss alone sharpens the smooth blob it starts from but never draws a
    texture; the style loss (ReLU features, broadband gradients) does, which
    is why the shipped decoders get a ``style-vgg19`` finishing stage
    (``train.stage = "decoder"``).

    Examples
    --------
    >>> x = (torch.rand(2, 1, 8, 8, 8) > 0.5).float()
    >>> two_point_loss(x, x).tolist()
    [0.0, 0.0]
    """
    s2 = two_point_correlation(reconstruction)
    with torch.no_grad():
        s2_target = two_point_correlation(target)
    lags = torch.mean((lag_window(s2, window) - lag_window(s2_target, window)) ** 2, dim=1)
    origin = (s2[:, 0, 0, 0, 0] - s2_target[:, 0, 0, 0, 0]) ** 2
    phi = (reconstruction.flatten(1).mean(1) - target.flatten(1).mean(1)) ** 2
    return 1e3 * lags + 1e2 * (phi + origin)


def bce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Voxel-wise binary cross-entropy (pixel-by-pixel reconstruction), mean over voxels."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(1)


def gram_matrix(features: Tensor) -> Tensor:
    """Normalised Gram matrix F Fᵀ / (H W) of (N, C, H, W) feature maps, (N, C, C)."""
    f = features.flatten(2)
    return f @ f.transpose(1, 2) / f.shape[-1]


def volume_slices(x: Tensor, per_axis: int | None = None) -> Tensor:
    """2-D slices of (B, 1, n, n, n) volumes along all three axes, as (B, S, 1, n, n).

    Parameters
    ----------
    per_axis : int, optional
        Slices drawn at random (same positions for every sample) per axis; all if None.
    """
    n = x.shape[-1]
    stacks = []
    for axis in (2, 3, 4):
        idx = None if per_axis is None or per_axis >= n else torch.randperm(n)[:per_axis].to(x.device)
        volume = x if idx is None else x.index_select(axis, idx)
        # Move the sliced axis next to the batch axis: (B, S, 1, n, n).
        stacks.append(volume.movedim(axis, 1))
    return torch.cat(stacks, dim=1)


class StyleLoss(nn.Module):
    """The paper's reconstruction loss: Gram matrices of VGG19 features of slices along x, y and z.

    Sum over the style layers of the mean squared Gram difference, averaged
    over slices, per sample.
    """

    def __init__(self, weights: str | None = None, per_axis: int | None = None) -> None:
        super().__init__()
        from vaereg_core.model.vgg import VGGFeatures

        self.vgg = VGGFeatures(weights)
        self.per_axis = per_axis

    def forward(self, reconstruction: Tensor, target: Tensor) -> Tensor:
        b = reconstruction.shape[0]
        # Slicing both volumes in one call takes the same random slices of each.
        slices = volume_slices(torch.cat([reconstruction, target]), self.per_axis)
        s = slices.shape[1]
        loss = torch.zeros(b, device=reconstruction.device)
        for feats in self.vgg(slices.flatten(0, 1)):
            c = feats.shape[1]
            g = gram_matrix(feats).view(2, b, s, c, c)
            loss = loss + ((g[0] - g[1].detach()) ** 2).mean(dim=(1, 2, 3))
        return loss


class LossTerms(NamedTuple):
    """Per-batch means of the weighted total and of each raw term."""

    total: Tensor
    regression: Tensor
    reconstruction: Tensor
    kl: Tensor


class VAERegLoss(nn.Module):
    """Paper eq. 4: weighted regression NLL + reconstruction + KL to the conditional prior.

    The regression term is the β-NLL of :func:`beta_nll` (``regression_beta``;
    0 is the paper's plain NLL).
    """

    def __init__(self, config: LossConfig) -> None:
        super().__init__()
        self.config = config
        scale = config.reconstruction_scale
        self.reconstruction_scale = DEFAULT_RECONSTRUCTION_SCALE[config.reconstruction] if scale is None else scale
        self.style = StyleLoss(config.vgg_weights, config.style_slices) if config.reconstruction == "style-vgg19" else None

    def reconstruction(self, logits: Tensor, target: Tensor) -> Tensor:
        """The configured reconstruction loss, per sample, with the volume-fraction term if weighted."""
        kind = self.config.reconstruction
        if kind == "bce":
            loss = bce_loss(logits, target)
        elif kind == "two-point":
            loss = two_point_loss(torch.sigmoid(logits), target, self.config.two_point_window)
        else:
            loss = self.style(torch.sigmoid(logits), target)
        if self.config.volume_fraction_weight:
            loss = loss + self.config.volume_fraction_weight * volume_fraction_loss(torch.sigmoid(logits), target)
        return loss

    def regression(self, mean: Tensor, log_var: Tensor, properties: Tensor, beta: float | None = None) -> Tensor:
        """The regression term, a batch mean; ``beta`` overrides the configured β (0 for validation, see :meth:`Trainer.validate`)."""
        return beta_nll(mean, log_var, properties, self.config.regression_beta if beta is None else beta).mean()

    def forward(self, out: Output, voxels: Tensor, properties: Tensor, regression_beta: float | None = None) -> LossTerms:
        """Loss terms of a batch; ``regression_beta`` overrides the configured β (see :meth:`regression`)."""
        c = self.config
        regression = self.regression(out.c_mean, out.c_log_var, properties, regression_beta)
        reconstruction = self.reconstruction(out.reconstruction_logits, voxels).mean()
        kl = prior_kl(out.z_mean, out.z_log_var, out.prior).mean()
        total = (
            c.regression_weight * c.regression_scale * regression
            + c.reconstruction_weight * self.reconstruction_scale * reconstruction
            + c.kl_weight * c.kl_scale * kl
        )
        return LossTerms(total, regression.detach(), reconstruction.detach(), kl.detach())
