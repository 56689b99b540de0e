"""Encoder posteriors q(z | x) of a set of structures, and their KL to the model's prior p(z | c).

The KL term of the loss (paper eq. 3: closed form for a Gaussian prior, the
variational approximation for a mixture) measures what the latent vector tells
about a structure beyond its properties: near zero, the posterior has
collapsed onto the prior. Used by the reconstruction check and by the
refitting of the prior (:mod:`vaereg_core.inverse.component_count`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from vaereg_core.model.inference import LoadedModel
from vaereg_core.model.priors import prior_kl


@dataclass
class Posteriors:
    """Posteriors (means, log-variances; (N, D)) and the structures' standardised properties c (N, P), on the CPU."""

    mean: torch.Tensor
    log_var: torch.Tensor
    c: torch.Tensor

    def __len__(self) -> int:
        return self.mean.shape[0]


def posteriors_of(model: LoadedModel, means: np.ndarray, stds: np.ndarray, properties: np.ndarray) -> Posteriors:
    """Posteriors from :meth:`LoadedModel.encode`'s output and the properties (N, P) in GPa, in the model's order."""
    c = model.file.scaler.transform(torch.as_tensor(properties, dtype=torch.float32, device=model.device)).cpu()
    mean = torch.as_tensor(means, dtype=torch.float32)
    return Posteriors(mean, 2.0 * torch.log(torch.as_tensor(stds, dtype=torch.float32)), c)


def encode_posteriors(model: LoadedModel, voxels: np.ndarray, properties: np.ndarray) -> Posteriors:
    """Encode structures (N, n, n, n) and standardise their properties (N, P) in GPa, in the model's order."""
    means, stds = model.encode(voxels)
    return posteriors_of(model, means, stds, properties)


def kl_per_structure(generator: torch.nn.Module, data: Posteriors) -> torch.Tensor:
    """KL(q(z | x) || p(z | c)) in nats for each structure (N,), under ``generator``'s prior, on the CPU."""
    # A loaded model's generator may sit on a GPU; the standard-normal prior has no weights to say where.
    weights = next(itertools.chain(generator.parameters(), generator.buffers()), None)
    device = weights.device if weights is not None else data.c.device
    with torch.no_grad():
        return prior_kl(data.mean.to(device), data.log_var.to(device), generator(data.c.to(device))).cpu()


def mean_kl(generator: torch.nn.Module, data: Posteriors) -> float:
    """Mean KL term (the training loss's, eq. 3) of ``data`` under ``generator``'s prior."""
    return float(kl_per_structure(generator, data).mean())
