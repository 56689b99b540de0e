"""Using a trained model from the application, the CLI and inverse design; everything in GPa and NumPy.

>>> from vaereg_core.resources import default_model_path
>>> model = load_model(default_model_path(), "cpu")
>>> voxels = np.zeros((model.grid,) * 3, np.uint8)
>>> voxels[: model.grid // 2] = 1
>>> c, std = model.predict(voxels)
>>> c.shape == std.shape == (len(model.property_names),)
True
>>> pi, mu, sigma = model.prior_components(dict(zip(model.property_names, c)))
>>> candidates = model.decode(mu, binary=True)
>>> candidates.shape == (len(pi), model.grid, model.grid, model.grid)
True

Single structures (n, n, n) give unbatched results; stacks (N, n, n, n) batched ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from vaereg_core.device import resolve_device
from vaereg_core.errors import ModelFileError
from vaereg_core.model.checkpoint import ModelFile, load_model_file
from vaereg_core.model.ensemble import MemberPrediction, attach_ensemble
from vaereg_core.model.networks import VAERegression
from vaereg_core.symmetry import CubeSymmetry, map_back, symmetries_for


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
    material : Material
        The phases of the model's training data (hard = voxel value 1, soft =
        0); designs and candidates are validated with them.
        :func:`vaereg_core.physics.phases.describe` names them in one line.
    """

    units = "GPa"

    def __init__(self, model: ModelFile, device: torch.device, batch_size: int = 16) -> None:
        self.file = model
        # channels_last_3d: 1.6x faster forward passes on the CPU (benchmarks/bench_predict.py), same numbers.
        self.network = model.network.to(device).to(memory_format=torch.channels_last_3d).eval()
        self.device = device
        self.batch_size = batch_size
        self.property_names = model.property_names
        self.ranges = dict(model.ranges)
        self.grid = model.config.model.grid
        self.latent_dim = model.config.model.latent_dim
        self.material = model.material
        #: Cube symmetries :meth:`predict_own` averages over (a name of :data:`~vaereg_core.symmetry.SYMMETRY_SETS`).
        self.symmetries = "identity"
        #: The forward ensemble :meth:`predict` uses, when the model file has a manifest beside it.
        self.forward = None
        #: Why no forward ensemble is attached (None when one is).
        self.forward_note: str | None = "no ensemble manifest"

    @property
    def is_generative(self) -> bool:
        """Whether the model has an encoder, decoder and prior (a Reg-only model does not)."""
        return isinstance(self.network, VAERegression)

    def _require_generative(self, what: str) -> VAERegression:
        if not self.is_generative:
            raise ValueError(f"{what} needs a VAE-Regression model; this is a regression-only model")
        return self.network

    def _check_grid(self, voxels: np.ndarray) -> np.ndarray:
        """Structures as a stack (N, n, n, n), or a clear error."""
        v = np.asarray(voxels)
        if v.ndim not in (3, 4) or v.shape[-3:] != (self.grid,) * 3:
            raise ValueError(f"structures must be ({self.grid}, {self.grid}, {self.grid}) or a stack of them, got shape {v.shape}")
        return v.reshape(-1, *v.shape[-3:])

    def _voxel_batches(self, voxels: np.ndarray):
        """Check the grid and yield float tensors (b, 1, n, n, n) on the device."""
        v = self._check_grid(voxels)
        for start in range(0, len(v), self.batch_size):
            yield self._as_input(v[start : start + self.batch_size])

    def _as_input(self, stack: np.ndarray) -> torch.Tensor:
        """Structures (b, n, n, n) -> the network's input (b, 1, n, n, n) on the device, in its memory format."""
        x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None].to(self.device)
        return x.contiguous(memory_format=torch.channels_last_3d)

    @staticmethod
    def _unbatch(single: bool, *arrays: np.ndarray):
        out = tuple(a[0] if single else a for a in arrays)
        return out if len(out) > 1 else out[0]

    @torch.inference_mode()
    def predict_transformed(
        self, voxels: np.ndarray, symmetries: Sequence[CubeSymmetry], *, latents: bool = False, features: bool = False
    ) -> tuple[np.ndarray, ...]:
        """The regressor's Gaussian for each symmetric copy, mapped back to the original's constants.

        Returns (mean, variance) of f(C) (f = log for a log-scaled model, else
        the identity; natural units: log-GPa or GPa), each (N, T, P) for N
        structures and T symmetries; with ``latents`` also the posterior means
        (N, T, D) of a generative model's encoder, from the same trunk pass,
        and with ``features`` (last) the trunk's features (N, T, F) of each
        copy, for :class:`~vaereg_core.model.feature_head.FeatureHead` members.
        Copies of a structure go through the network in one batch.
        """
        v = self._check_grid(voxels)
        names = tuple(self.property_names)
        per_batch = max(1, self.batch_size // len(symmetries))
        mean = np.empty((len(v), len(symmetries), len(names)))
        var = np.empty_like(mean)
        network = self._require_generative("latents") if latents else self.network
        z = np.empty((len(v), len(symmetries), self.latent_dim)) if latents else None
        trunk_features = np.empty((len(v), len(symmetries), self.file.config.model.trunk_dense), np.float32) if features else None
        scale_mean, scale_std = (np.asarray(a) for a in (self.file.scaler.mean, self.file.scaler.std))
        for start in range(0, len(v), per_batch):
            chunk = v[start : start + per_batch]
            copies = np.stack([s.apply(chunk) for s in symmetries], axis=1).reshape(-1, *chunk.shape[1:])
            x = self._as_input(copies)
            h = network.trunk(x)
            y_mean, y_log_var = network.regressor(h)
            if latents:
                z[start : start + len(chunk)] = network.encoder(h)[0].double().cpu().numpy().reshape(len(chunk), len(symmetries), -1)
            if features:
                trunk_features[start : start + len(chunk)] = h.float().cpu().numpy().reshape(len(chunk), len(symmetries), -1)
            m = y_mean.double().cpu().numpy().reshape(len(chunk), len(symmetries), -1) * scale_std + scale_mean
            s2 = np.exp(y_log_var.double().cpu().numpy()).reshape(m.shape) * scale_std**2
            mean[start : start + len(chunk)] = map_back(m, symmetries, names)
            var[start : start + len(chunk)] = map_back(s2, symmetries, names)
        return (mean, var) + ((z,) if latents else ()) + ((trunk_features,) if features else ())

    def predict(self, voxels: np.ndarray, symmetries: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted properties: (point estimate, standard deviation) in GPa, (P,) or (N, P).

        With a forward ensemble attached (:attr:`forward`, read from the
        manifest beside the model file) it answers; otherwise this network's
        own regressor averaged over the cube symmetries ``symmetries`` (default
        :attr:`symmetries`; ``"identity"`` for the plain network).
        """
        if self.forward is not None and symmetries is None:
            mean, std = self.forward.predict(voxels)
        else:
            mean, std = self.predict_own(voxels, symmetries)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError("the model predicts NaN or infinite values: its weights are damaged (retrain or reinstall it)")
        return mean, std

    def describe_forward(self) -> str:
        """What answers :meth:`predict`, in one line (CLI, status bar, reports)."""
        if self.forward is not None:
            return self.forward.describe()
        own = "VAE-Reg regressor" if self.is_generative else "Reg-only CNN"
        return f"{own} alone, {self.symmetries} symmetries ({self.forward_note})"

    def predict_own(self, voxels: np.ndarray, symmetries: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """This network's regressor alone, averaged over ``symmetries`` (default :attr:`symmetries`)."""
        which = symmetries_for(self.property_names, self.symmetries if symmetries is None else symmetries)
        part = MemberPrediction.from_transformed(*self.predict_transformed(voxels, which))
        return self._unbatch(np.ndim(voxels) == 3, *self.to_gpa(part.mean, part.variance))

    def to_gpa(self, mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A Gaussian of f(C) -> (point estimate, standard deviation) in GPa (log-normal median and sd for f = log)."""
        if not self.file.scaler.log:
            return mean, np.sqrt(var)
        return np.exp(mean), np.exp(mean + var / 2) * np.sqrt(np.expm1(var))

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

    def decode_vjp(self, z: np.ndarray, fields: np.ndarray) -> np.ndarray:
        """Gradients ``d/dz sum_x p(x; z) f_m(x)`` of the decoded probabilities against fields.

        Parameters
        ----------
        z : (D,) ndarray
        fields : (M, nx, ny, nz) ndarray
            One weight per voxel each, e.g. the change of a constant per voxel
            made hard (:mod:`vaereg_core.physics.sensitivity`).

        Returns
        -------
        (M, D) float64 ndarray
            Row m: the field's first-order response to moving ``z`` — with the
            fields of several constants, their Jacobian in latent space.
        """
        network = self._require_generative("decode_vjp")
        z = np.asarray(z, dtype=np.float32)
        if z.shape != (self.latent_dim,):
            raise ValueError(f"a latent vector must have shape ({self.latent_dim},), got {z.shape}")
        weights = torch.from_numpy(np.asarray(fields, dtype=np.float32)).to(self.device)
        # One batched pass for the M products: on a CPU ~2x faster than M backward passes.
        copies = torch.from_numpy(np.repeat(z[None], len(weights), axis=0)).to(self.device).requires_grad_(True)
        with torch.enable_grad():
            probabilities = network.decoder(copies)[:, 0]
            (grad,) = torch.autograd.grad((probabilities * weights).sum(), copies)
        return grad.double().cpu().numpy()

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


def load_model(path: str | os.PathLike, device: str | torch.device = "auto", *, ensemble: bool = True) -> LoadedModel:
    """Load a model file (or a run folder's ``model.pt``) for inference.

    With ``ensemble`` (default) the forward ensemble its manifest names
    (:mod:`vaereg_core.model.ensemble`) is attached and answers
    :meth:`LoadedModel.predict`; :attr:`LoadedModel.forward_note` says why
    none was attached.

    Raises
    ------
    ModelFileError
        If the file is missing or not a valid model, or its manifest is damaged.
    """
    resolved = resolve_device(device)
    model = LoadedModel(load_model_file(path, resolved), resolved)
    if ensemble:
        file = Path(path) / "model.pt" if Path(path).is_dir() else Path(path)
        model.forward_note = attach_ensemble(model, file)
    return model


def default_model() -> LoadedModel:
    """The bundled default model, or a clear error if this installation has none."""
    from vaereg_core.resources import default_model_path

    path = default_model_path()
    if not path.is_file():
        raise ModelFileError(path, "no bundled default model in this installation; train one with `vaereg train` and pass --model")
    return load_model(path)
