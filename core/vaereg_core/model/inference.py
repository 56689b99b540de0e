"""Using a trained model from the application, the CLI and inverse design; everything in GPa and NumPy.

>>> model = load_model("resources/models/default.pt")          # doctest: +SKIP
>>> c, std = model.predict(voxels)                              # doctest: +SKIP
>>> pi, mu, sigma = model.prior_components({"C11": 35.0})      # doctest: +SKIP
>>> candidates = model.decode(mu, binary=True)                  # doctest: +SKIP

Single structures (n, n, n) give unbatched results; stacks (N, n, n, n) batched ones.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import torch

from vaereg_core.device import resolve_device
from vaereg_core.errors import ModelFileError
from vaereg_core.model.checkpoint import ModelFile, load_model_file
from vaereg_core.model.networks import VAERegression


class LoadedModel:
    """A trained model ready for inference.

    Attributes
    ----------
    property_names : tuple of str
        Predicted constants, in output order.
    units : str
        ``"GPa"``.
    ranges : dict
        {name: (min, max)} of each property in the training data (GPa): the
        range where predictions and targets are trustworthy.
    grid : int
        Edge of the structures the model takes.
    latent_dim : int
    """

    units = "GPa"

    def __init__(self, model: ModelFile, device: torch.device, batch_size: int = 16) -> None:
        self.file = model
        self.network = model.network.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.property_names = model.property_names
        self.ranges = dict(model.ranges)
        self.grid = model.config.model.grid
        self.latent_dim = model.config.model.latent_dim

    @property
    def is_generative(self) -> bool:
        """Whether the model has an encoder, decoder and prior (a Reg-only model does not)."""
        return isinstance(self.network, VAERegression)

    def _require_generative(self, what: str) -> VAERegression:
        if not self.is_generative:
            raise ValueError(f"{what} needs a VAE-Regression model; this is a regression-only model")
        return self.network

    def _voxel_batches(self, voxels: np.ndarray):
        """Check the grid and yield float tensors (b, 1, n, n, n) on the device."""
        v = np.asarray(voxels)
        if v.ndim not in (3, 4) or v.shape[-3:] != (self.grid,) * 3:
            raise ValueError(f"structures must be ({self.grid}, {self.grid}, {self.grid}) or a stack of them, got shape {v.shape}")
        v = v.reshape(-1, *v.shape[-3:])
        for start in range(0, len(v), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(v[start : start + self.batch_size], dtype=np.float32))
            yield chunk[:, None].to(self.device)

    @staticmethod
    def _unbatch(single: bool, *arrays: np.ndarray):
        out = tuple(a[0] if single else a for a in arrays)
        return out if len(out) > 1 else out[0]

    @torch.inference_mode()
    def predict(self, voxels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted properties: (point estimate, standard deviation) in GPa, (P,) or (N, P)."""
        means, stds = [], []
        for x in self._voxel_batches(voxels):
            h = self.network.trunk(x)
            m, s = self.file.scaler.inverse(*self.network.regressor(h))
            means.append(m.cpu().numpy())
            stds.append(s.cpu().numpy())
        return self._unbatch(np.ndim(voxels) == 3, np.concatenate(means), np.concatenate(stds))

    @torch.inference_mode()
    def encode(self, voxels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior q(z|x): (mean, standard deviation), (D,) or (N, D)."""
        network = self._require_generative("encode")
        means, stds = [], []
        for x in self._voxel_batches(voxels):
            m, log_var = network.encoder(network.trunk(x))
            means.append(m.cpu().numpy())
            stds.append(torch.exp(0.5 * log_var).cpu().numpy())
        return self._unbatch(np.ndim(voxels) == 3, np.concatenate(means), np.concatenate(stds))

    @torch.inference_mode()
    def decode(self, z: np.ndarray, *, binary: bool = False) -> np.ndarray:
        """Structures from latent vectors (D,) or (N, D): hard-phase probabilities (float32), or uint8 at 0.5."""
        network = self._require_generative("decode")
        z = np.asarray(z, dtype=np.float32)
        if z.shape[-1] != self.latent_dim or z.ndim not in (1, 2):
            raise ValueError(f"latent vectors must have shape ({self.latent_dim},) or (N, {self.latent_dim}), got {z.shape}")
        flat = torch.from_numpy(z.reshape(-1, self.latent_dim))
        out = [network.decoder(chunk.to(self.device))[:, 0].float().cpu().numpy() for chunk in flat.split(self.batch_size)]
        probabilities = np.concatenate(out)
        result = (probabilities >= 0.5).astype(np.uint8) if binary else probabilities
        return self._unbatch(z.ndim == 1, result)

    def standardise_target(self, target: Mapping[str, float] | Sequence[float]) -> torch.Tensor:
        """A target property vector in GPa -> the model's standardised units, (1, P)."""
        if isinstance(target, Mapping):
            missing = [n for n in self.property_names if n not in target]
            unknown = [n for n in target if n not in self.property_names]
            if missing or unknown:
                raise ValueError(
                    f"target must give exactly {', '.join(self.property_names)}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown {', '.join(unknown)}" if unknown else "")
                )
            values = [float(target[n]) for n in self.property_names]
        else:
            values = [float(v) for v in target]
            if len(values) != len(self.property_names):
                raise ValueError(f"target must have {len(self.property_names)} values ({', '.join(self.property_names)})")
        if self.file.scaler.log and min(values) <= 0:
            raise ValueError("target stiffness values must be > 0 GPa")
        return self.file.scaler.transform(torch.tensor([values], dtype=torch.float32, device=self.device))

    @torch.inference_mode()
    def prior_components(self, target: Mapping[str, float] | Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Conditional prior p(z | c = target): weights pi (K,), means mu (K, D), standard deviations sigma (K, D).

        Components are sorted by decreasing weight.
        """
        network = self._require_generative("prior_components")
        prior = network.generator(self.standardise_target(target))
        pi = prior.pi[0].cpu().numpy()
        mu = prior.mu[0].cpu().numpy()
        sigma = torch.exp(0.5 * prior.log_var[0]).cpu().numpy()
        order = np.argsort(-pi, kind="stable")
        return pi[order], mu[order], sigma[order]


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> LoadedModel:
    """Load a model file (or a run folder's ``model.pt``) for inference.

    Raises
    ------
    ModelFileError
        If the file is missing or not a valid model.
    """
    resolved = resolve_device(device)
    return LoadedModel(load_model_file(path, resolved), resolved)


def default_model() -> LoadedModel:
    """The bundled default model, or a clear error if this installation has none."""
    from vaereg_core.resources import default_model_path

    path = default_model_path()
    if not path.is_file():
        raise ModelFileError(path, "no bundled default model in this installation; train one with `vaereg train` and pass --model")
    return load_model(path)
